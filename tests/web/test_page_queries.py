"""The list pages and the request page cost the same number of queries for few and for many rows (no N+1)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from requests_app import audit
from requests_app.models import ObservedPeering, PeeringRequest, ProvisioningStep, RouteTable, Vpc, VpcCidr
from tests.web.pages import PageWorld, history_rows, make_request, text

pytestmark = pytest.mark.django_db


CYCLE = ["pending_approval", "approved", "provisioning", "active", "failed", "rejected", "decommissioning", "active"]


def grow(world: PageWorld, start: int, count: int) -> None:
    """`count` more finance VPCs, each with CIDRs, a route table, an owner, a request to services-use1
    (states cycling through CYCLE, one active one drifted), steps, an audit event and an unmanaged peering."""
    users, vpcs = world.users, world.vpcs
    finance, hub, now = vpcs["finance-app"], vpcs["services-use1"], timezone.now()
    for i in range(start, start + count):
        vpc = Vpc.objects.create(
            vpc_id=f"vpc-load{i:05d}", account=finance.account, region="us-east-1", name=f"load-{i}", synced_at=now
        )
        VpcCidr.objects.bulk_create(
            [VpcCidr(vpc=vpc, cidr=f"172.16.{i}.0/24", is_primary=True), VpcCidr(vpc=vpc, cidr=f"172.17.{i}.0/24")]
        )
        RouteTable.objects.create(
            route_table_id=f"rtb-load{i:05d}",
            vpc=vpc,
            is_main=True,
            routes=[{"destination": f"172.16.{i}.0/24", "target": "local", "state": "active"}],
        )
        vpc.owners.add(users["sam"])
        status = CYCLE[i % len(CYCLE)]
        decided = status != "pending_approval"
        request = make_request(
            vpc,
            hub,
            users["fiona"],
            external_ref=f"LOAD-{i}",
            status=status,
            decided_by=users["nina"] if decided else None,
            decided_at=now if decided else None,
            failure_reason="quota" if status == "failed" else "",
            drift={"found_at": now.isoformat(), "findings": [{"detail": "route gone"}]}
            if i % len(CYCLE) == 3
            else None,
            checks=[{"code": "dns", "status": "warn", "detail": "no DNS"}],
            plan=[
                {
                    "operation": "CreateVpcPeeringConnection",
                    "account_id": "222222222222",
                    "region": "us-east-1",
                    "detail": "create",
                }
            ],
        )
        ProvisioningStep.objects.bulk_create(
            [
                ProvisioningStep(request=request, name=f"step {n}", position=n, state="done", started_at=now)
                for n in range(2)
            ]
        )
        audit.record(action="request.submitted", actor=users["fiona"], request=request, to_status="pending_approval")
        ObservedPeering.objects.create(
            connection_id=f"pcx-load{i:05d}",
            requester_vpc_id=vpc.vpc_id,
            accepter_vpc_id=hub.vpc_id,
            requester_account_id="222222222222",
            accepter_account_id="111111111111",
            status="active",
            seen_at=now,
        )


def count_queries(client: Any, user: Any, url: str) -> tuple[list[str], str]:
    client.force_login(user)
    assert client.get(url).status_code == 200  # warm up: sessions, content types, caches
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return [q["sql"] for q in ctx.captured_queries], text(response)


def same_cost(few: list[str], many: list[str]) -> str:
    """Empty when both pages ran the same number of queries; else the queries that multiplied."""
    if len(few) == len(many):
        return ""
    shape = Counter(re.sub(r"'[^']*'|\b\d+\b", "?", q)[:300] for q in many)
    shape.subtract(Counter(re.sub(r"'[^']*'|\b\d+\b", "?", q)[:300] for q in few))
    grown = "\n".join(f"  +{n}: {q}" for q, n in shape.most_common(3) if n > 0)
    return f"{len(few)} queries with few rows, {len(many)} with many; repeated:\n{grown}"


@pytest.mark.parametrize(
    ("username", "url", "marker"),
    [
        ("fiona", "/", "LOAD-"),
        ("nina", "/approvals/", "LOAD-"),
        ("admin", "/inventory/", "vpc-load"),
        ("fiona", "/inventory/", "vpc-load"),
        ("admin", "/audit/", "request.submitted"),
        ("fiona", "/audit/", "request.submitted"),
        ("admin", "/topology/", "load-"),
        ("nina", "/topology/", "load-"),
    ],
)
def test_list_pages_cost_the_same_queries_for_few_and_many_rows(
    world: PageWorld, client: Any, username: str, url: str, marker: str
) -> None:
    user = world.users[username]
    grow(world, 0, len(CYCLE))
    few, few_page = count_queries(client, user, url)
    grow(world, len(CYCLE), 4 * len(CYCLE))
    many, many_page = count_queries(client, user, url)
    assert many_page.count(marker) > few_page.count(marker) > 0  # the extra rows are on the page
    assert not same_cost(few, many), f"{url}: {same_cost(few, many)}"


def test_request_page_history_costs_the_same_queries_for_few_and_many_events(world: PageWorld, client: Any) -> None:
    users, request = world.users, PeeringRequest.objects.get(pk=world.rid)

    def add(start: int, count: int) -> None:  # events by two actors (timeline entries too), and steps
        for i in range(start, start + count):
            audit.record(
                action="request.note",
                actor=users["nina" if i % 2 else "fiona"],
                request=request,
                message=f"note {i}",
                from_status="pending_approval",
                to_status="pending_approval" * (i % 3 > 0),
            )
            ProvisioningStep.objects.create(request=request, name=f"step {i}", position=i, started_at=timezone.now())

    add(0, 3)
    few, few_page = count_queries(client, users["fiona"], f"/requests/{request.pk}/")
    add(3, 27)
    many, many_page = count_queries(client, users["fiona"], f"/requests/{request.pk}/")
    assert len(history_rows(many_page)) == len(history_rows(few_page)) + 27
    assert not same_cost(few, many), same_cost(few, many)
