"""Deterministic performance properties: AWS calls per provisioning run, query counts that do not
grow with rows, and the EC2 rate-limit buckets. (Timings live in bench/, never in tests.)"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from requests_app import audit
from requests_app.aws import ratelimit
from requests_app.aws.gateway import get_gateway
from requests_app.domain import topology as geometry
from requests_app.integrations import services as integration_services
from requests_app.integrations import webhooks
from requests_app.models import PeeringRequest
from requests_app.peering.saga import runner
from requests_app.web.views.topology import topology

pytestmark = pytest.mark.django_db


def _file(api: Any, username: str, requester: Any, accepter: Any) -> str:
    response = api(username).post(
        "/api/v1/peering-requests/",
        {"requester_vpc": requester.vpc_id, "accepter_vpc": accepter.vpc_id, "justification": "bench"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def test_one_provisioning_run_makes_the_minimum_calls_plus_two_looks(demo_world: dict[str, Any], api: Any) -> None:
    """finance-app (two CIDRs, one table) ↔ services-use1 (two tables): five routes.

    The bare minimum is create + accept + five CreateRoute. The portal adds two looks: one for a
    connection an earlier run (or someone else) made between the pair, one for the new
    connection's state before accepting (real AWS answers `initiating-request` at first)."""
    vpcs = demo_world["vpcs"]
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


def _count_queries(client: Any, path: str) -> tuple[int, Any]:
    client.get(path)  # warm: sessions, caches, content types
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200, (path, response.content[:300])
    return len(queries), response


def _more_history(demo_world: dict[str, Any], api: Any, rounds: int) -> None:
    """File, decide and close requests, and append audit events, so every list grows."""
    vpcs = demo_world["vpcs"]
    for n in range(rounds):
        request_id = _file(api, "fiona", vpcs["finance-app"], vpcs["services-use1"])
        api("fiona").post(f"/api/v1/peering-requests/{request_id}/cancel/", {"comment": f"round {n}"}, format="json")
        for i in range(3):
            audit.record(
                action="bench.note",
                actor_label="bench",
                request=PeeringRequest.objects.get(pk=request_id),
                message=f"note {i}",
            )
    api("fiona").post("/api/v1/tokens/", {"name": "extra"}, format="json")


LISTS = [
    "/api/v1/vpcs/",
    "/api/v1/peering-requests/",
    "/api/v1/peering-requests/?ordering=-updated_at&status=cancelled",
    "/api/v1/audit-events/",
    "/api/v1/tokens/",
]


@pytest.mark.parametrize("path", LISTS)
def test_api_list_queries_do_not_grow_with_rows(demo_world: dict[str, Any], api: Any, path: str) -> None:
    fiona = api("fiona")
    _more_history(demo_world, api, 1)
    small, _ = _count_queries(fiona, path)
    _more_history(demo_world, api, 8)
    large, response = _count_queries(fiona, path)
    assert response.json()["count"] > 1
    assert large == small, f"{path}: {small} queries with few rows, {large} with more"


def test_request_events_queries_do_not_grow_with_history(demo_world: dict[str, Any], api: Any) -> None:
    vpcs = demo_world["vpcs"]
    request_id = _file(api, "fiona", vpcs["finance-app"], vpcs["services-use1"])
    fiona = api("fiona")
    small, _ = _count_queries(fiona, f"/api/v1/peering-requests/{request_id}/events/")
    request = PeeringRequest.objects.get(pk=request_id)
    for i in range(25):
        audit.record(action="bench.note", actor_label="bench", request=request, message=str(i))
    large, response = _count_queries(fiona, f"/api/v1/peering-requests/{request_id}/events/")
    assert response.json()["count"] == 26
    assert large == small


def test_admin_lists_queries_do_not_grow(demo_world: dict[str, Any], api: Any, settings: Any) -> None:

    settings.WEBHOOK_ALLOW_PRIVATE = True
    admin = api("admin")
    hook = integration_services.webhook_register(
        actor=demo_world["users"]["admin"], url="http://127.0.0.1:9/", events=["*"]
    )
    _more_history(demo_world, api, 1)
    paths = ["/api/v1/aws-accounts/", "/api/v1/webhooks/", f"/api/v1/webhooks/{hook.pk}/deliveries/"]
    small = [_count_queries(admin, p)[0] for p in paths]
    _more_history(demo_world, api, 6)
    for request in PeeringRequest.objects.all()[:5]:
        webhooks.queue(request, "peering_request.active")
    large = [_count_queries(admin, p)[0] for p in paths]
    assert large == small, dict(zip(paths, zip(small, large, strict=True), strict=True))


def test_the_ec2_bucket_allows_a_burst_then_the_refill_rate(settings: Any) -> None:
    settings.EC2_RATE_MUTATING = "3,2"  # burst 3, then 2 a second
    now = [1000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    waits = [
        ratelimit.acquire("111111111111", "us-east-1", "CreateRoute", clock=lambda: now[0], sleep=sleep)
        for _ in range(7)
    ]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3:] == pytest.approx([0.5] * 4)  # one token every half second
    assert now[0] == pytest.approx(1002.0)
    # Buckets are per account, region and kind: another account, or a describe, is not held up.
    assert ratelimit.acquire("222222222222", "us-east-1", "CreateRoute", clock=lambda: now[0], sleep=sleep) == 0.0
    assert (
        ratelimit.acquire("111111111111", "us-east-1", "DescribeRouteTables", clock=lambda: now[0], sleep=sleep) == 0.0
    )
    assert ratelimit.kind_of("AcceptVpcPeeringConnection") == "peering"


def test_a_bucket_set_to_zero_never_waits(settings: Any) -> None:
    settings.EC2_RATE_PEERING = "0"
    for _ in range(100):
        assert ratelimit.acquire("111111111111", "us-east-1", "CreateVpcPeeringConnection", sleep=pytest.fail) == 0.0


def test_the_topology_is_laid_out_again_only_when_the_data_changes(
    client: Any, demo_world: dict[str, Any], api: Any, monkeypatch: Any
) -> None:

    layouts = []
    real_layout = geometry.layout
    monkeypatch.setattr(topology, "layout", lambda *a, **k: layouts.append(1) or real_layout(*a, **k))
    client.force_login(demo_world["users"]["nina"])
    first = client.get("/topology/").content.decode()
    second = client.get("/topology/").content.decode()
    assert len(layouts) == 1  # the second view came from the cache
    picture = slice(first.index("<svg"), first.rindex("</table>"))
    assert second[second.index("<svg") : second.rindex("</table>")] == first[picture]
    vpcs = demo_world["vpcs"]
    request_id = _file(api, "fiona", vpcs["finance-app"], vpcs["services-use1"])
    assert f"/requests/{request_id}/".encode() in client.get("/topology/").content
    assert len(layouts) == 2
    # Another user's view is laid out (and cached) on its own: visibility differs.
    client.force_login(demo_world["users"]["harry"])
    assert f"/requests/{request_id}/".encode() not in client.get("/topology/").content
    assert len(layouts) == 3
