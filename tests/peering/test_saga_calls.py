"""One provisioning run makes the minimum AWS calls plus two looks, each audited once (a
deterministic performance property, against the sandbox; timings live in bench/, never in tests)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from requests_app.aws.gateway import get_gateway
from requests_app.models import PeeringRequest
from requests_app.peering.saga import runner
from tests.fixtures.world import DemoWorld

pytestmark = pytest.mark.django_db


def _file(api: Any, username: str, requester: Any, accepter: Any) -> str:
    response = api(username).post(
        "/api/v1/peering-requests/",
        {"requester_vpc": requester.vpc_id, "accepter_vpc": accepter.vpc_id, "justification": "bench"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def test_one_provisioning_run_makes_the_minimum_calls_plus_two_looks(demo_world: DemoWorld, api: Any) -> None:
    """finance-app (two CIDRs, one table) ↔ services-use1 (two tables): five routes.

    The bare minimum is create + accept + five CreateRoute. The portal adds two looks: one for a
    connection an earlier run (or someone else) made between the pair, one for the new
    connection's state before accepting (real AWS answers `initiating-request` at first)."""
    vpcs = demo_world.vpcs
    request_id = _file(api, "fiona", vpcs["finance-app"], vpcs["services-use1"])
    assert (
        api("nina")
        .post(f"/api/v1/peering-requests/{request_id}/approve/", {"comment": "ok"}, format="json")
        .status_code
        == 200
    )
    calls: Counter[str] = Counter()
    get_gateway().add_hook("before-call.ec2", lambda model, **_: calls.update([model.name]))

    assert runner.run(request_id, "provision") == "done"

    assert PeeringRequest.objects.get(pk=request_id).status == "active"
    assert calls == {
        "DescribeVpcPeeringConnections": 2,
        "CreateVpcPeeringConnection": 1,
        "AcceptVpcPeeringConnection": 1,
        "CreateRoute": 5,
    }
    # Every one of them is in the audit trail, once as sent ("started" for mutations) and once answered.
    answered = Counter(
        PeeringRequest.objects.get(pk=request_id)
        .events.filter(action="aws.call", result="ok")
        .values_list("operation", flat=True)
    )
    assert answered == calls
