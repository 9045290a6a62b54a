"""The API's lists cost the same number of queries however many rows they list (a deterministic
performance property; timings live in bench/, never in tests).

The other deterministic ones: the AWS calls of a provisioning run (tests/peering/test_saga_calls.py),
the EC2 rate-limit buckets (tests/aws/test_ratelimit.py) and the topology page's cached picture
(tests/web/test_topology_page.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from requests_app import audit
from requests_app.integrations import services as integration_services
from requests_app.integrations import webhooks
from requests_app.models import PeeringRequest
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


def _count_queries(client: Any, path: str) -> tuple[int, Any]:
    client.get(path)  # warm: sessions, caches, content types
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200, (path, response.content[:300])
    return len(queries), response


def _more_history(world: DemoWorld, api: Any, rounds: int) -> None:
    """File, decide and close requests, and append audit events, so every list grows."""
    vpcs = world.vpcs
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
def test_api_list_queries_do_not_grow_with_rows(demo_rows: DemoWorld, api: Any, path: str) -> None:
    fiona = api("fiona")
    _more_history(demo_rows, api, 1)
    small, _ = _count_queries(fiona, path)
    _more_history(demo_rows, api, 8)
    large, response = _count_queries(fiona, path)
    assert response.json()["count"] > 1
    assert large == small, f"{path}: {small} queries with few rows, {large} with more"


def test_request_events_queries_do_not_grow_with_history(demo_rows: DemoWorld, api: Any) -> None:
    vpcs = demo_rows.vpcs
    request_id = _file(api, "fiona", vpcs["finance-app"], vpcs["services-use1"])
    fiona = api("fiona")
    small, _ = _count_queries(fiona, f"/api/v1/peering-requests/{request_id}/events/")
    request = PeeringRequest.objects.get(pk=request_id)
    for i in range(25):
        audit.record(action="bench.note", actor_label="bench", request=request, message=str(i))
    large, response = _count_queries(fiona, f"/api/v1/peering-requests/{request_id}/events/")
    assert response.json()["count"] == 26
    assert large == small


def test_admin_lists_queries_do_not_grow(demo_rows: DemoWorld, api: Any, settings: Any) -> None:

    settings.WEBHOOK_ALLOW_PRIVATE = True
    admin = api("admin")
    hook = integration_services.webhook_register(
        actor=demo_rows.users["admin"], url="http://127.0.0.1:9/", events=["*"]
    )
    _more_history(demo_rows, api, 1)
    paths = ["/api/v1/aws-accounts/", "/api/v1/webhooks/", f"/api/v1/webhooks/{hook.pk}/deliveries/"]
    small = [_count_queries(admin, p)[0] for p in paths]
    _more_history(demo_rows, api, 6)
    for request in PeeringRequest.objects.all()[:5]:
        webhooks.queue(request, "peering_request.active")
    large = [_count_queries(admin, p)[0] for p in paths]
    assert large == small, dict(zip(paths, zip(small, large, strict=True), strict=True))
