"""Hub capacity against a world of known counts, built from rows (no sandbox needed).

The hub `svc` (10.0.0.0/16, account limits: 10 peerings, 8 routes a table, 4 outstanding) has:

peerings, active (5): three made outside the portal and seen active by the last sync; request A,
  active and seen by the sync; request B, active since the sync (only the portal knows it yet).
  Not counted: one seen `pending-acceptance`, one seen `deleted`, and request C, which the
  portal decommissioned after the sync still saw its connection active.
peerings, pending (4): one request pending approval, one approved, one provisioning, and one
  approved request in which the hub is the requester. Not counted: a rejected one.
table `main`, used (4): local, 0.0.0.0/0 → igw, A's route (synced) and B's route (made since);
  C's route, removed since the sync, is gone. pending (4): the routes of the four pending ones.
table `private`, used (1): local only; pending (0).
outstanding (2): the hub account's approved request, and one pending-acceptance connection it
  asked for outside the portal.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from requests_app.domain.status import Status
from requests_app.inventory import services as inventory_services
from requests_app.models import ManagedRoute
from tests.factories import (
    AwsAccountFactory,
    DepartmentFactory,
    ManagedRouteFactory,
    ObservedPeeringFactory,
    PeeringRequestFactory,
    RouteTableFactory,
    UserFactory,
    VpcFactory,
    aws_id,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def hub_world() -> dict[str, Any]:
    platform = DepartmentFactory(slug="platform")
    owner = UserFactory(username="owner")
    platform.members.add(owner)
    hub_account = AwsAccountFactory(
        department=platform, max_peerings_per_vpc=10, max_routes_per_table=8, max_outstanding_requests=4
    )
    hub = VpcFactory(account=hub_account, name="svc", is_services_vpc=True, cidrs=["10.0.0.0/16"], owners=[owner])
    igw = aws_id("igw")
    main = RouteTableFactory(vpc=hub, name="main", is_main=True, extra_routes=[("0.0.0.0/0", igw)])
    private = RouteTableFactory(vpc=hub, name="private")
    spokes = DepartmentFactory(slug="spokes")

    def spoke(block: str) -> Any:
        return VpcFactory(account=AwsAccountFactory(department=spokes), cidrs=[block])

    def request(block: str, status: str, pcx: str = "", routes: str = ManagedRoute.State.PLANNED) -> Any:
        made = PeeringRequestFactory(
            requester_vpc=spoke(block), accepter_vpc=hub, status=status, aws_peering_connection_id=pcx
        )
        ManagedRouteFactory(request=made, route_table_id=main.route_table_id, destination=block, state=routes)
        return made

    for _ in range(3):
        ObservedPeeringFactory(accepter_vpc_id=hub.vpc_id, accepter_account_id=hub_account.account_id)
    ObservedPeeringFactory(accepter_vpc_id=hub.vpc_id, status="pending-acceptance")
    ObservedPeeringFactory(accepter_vpc_id=hub.vpc_id, status="deleted")
    pcx_a, pcx_b, pcx_c = aws_id("pcx"), aws_id("pcx"), aws_id("pcx")
    a = request("10.21.0.0/16", Status.ACTIVE, pcx_a, routes=ManagedRoute.State.CREATED)
    ObservedPeeringFactory(connection_id=pcx_a, accepter_vpc_id=hub.vpc_id, portal_request_id=str(a.pk))
    request("10.22.0.0/16", Status.ACTIVE, pcx_b, routes=ManagedRoute.State.CREATED)
    c = request("10.23.0.0/16", Status.DECOMMISSIONED, pcx_c, routes=ManagedRoute.State.REMOVED)
    ObservedPeeringFactory(connection_id=pcx_c, accepter_vpc_id=hub.vpc_id, portal_request_id=str(c.pk))
    # What the last sync (an hour ago) saw in `main`: A's route and C's (removed since).
    main.routes += [
        {"destination": "10.21.0.0/16", "target": pcx_a, "state": "active"},
        {"destination": "10.23.0.0/16", "target": pcx_c, "state": "active"},
    ]
    main.save()
    hub.synced_at = hub.synced_at.replace(year=hub.synced_at.year - 1)
    hub.save()
    for block, status in (
        ("10.31.0.0/16", Status.PENDING_APPROVAL),
        ("10.32.0.0/16", Status.APPROVED),
        ("10.33.0.0/16", Status.PROVISIONING),
        ("10.34.0.0/16", Status.REJECTED),
    ):
        request(block, status)
    # The hub's account asks for a peering itself (hub as requester), approved: pending, outstanding.
    outbound = PeeringRequestFactory(requester_vpc=hub, accepter_vpc=spoke("10.40.0.0/16"), status=Status.APPROVED)
    ManagedRouteFactory(
        request=outbound, side="requester", route_table_id=main.route_table_id, destination="10.40.0.0/16"
    )
    ObservedPeeringFactory(
        requester_vpc_id=hub.vpc_id, requester_account_id=hub_account.account_id, status="pending-acceptance"
    )
    return {"hub": hub, "owner": owner, "main": main, "private": private}


def test_capacity_counts_live_and_pending_work_against_each_quota(hub_world: dict[str, Any]) -> None:
    hub, main, private = hub_world["hub"], hub_world["main"], hub_world["private"]

    capacity = inventory_services.vpc_capacity(actor=hub_world["owner"], vpc_id=hub.vpc_id).as_dict()

    assert capacity["peerings"] == {"active": 5, "pending": 4, "limit": 10}
    assert capacity["route_tables"] == [
        {"route_table_id": main.route_table_id, "name": "main", "used": 4, "pending": 4, "limit": 8},
        {"route_table_id": private.route_table_id, "name": "private", "used": 1, "pending": 0, "limit": 8},
    ]
    assert capacity["outstanding_requests"] == {"used": 2, "limit": 4}
    advice = {a["code"]: a["detail"] for a in capacity["advice"]}
    # 9 of 10 peerings and 8 of 8 routes in main are over 80 %; private (1 of 8) and outstanding (2 of 4) are not.
    assert set(advice) == {"peerings_near_limit", "use_transit_gateway", "route_table_near_limit"}
    assert "has 5 active and 4 pending peerings of 10 allowed" in advice["peerings_near_limit"]
    assert "at most 125 per VPC" in advice["use_transit_gateway"]
    assert "Transit Gateway" in advice["use_transit_gateway"]
    assert (
        f"main ({main.route_table_id}) holds 4 routes and live requests will add 4, of 8 allowed"
        in (advice["route_table_near_limit"])
    )


def test_capacity_under_the_thresholds_gives_no_advice_and_defaults_apply(hub_world: dict[str, Any]) -> None:
    hub = hub_world["hub"]
    hub.account.max_peerings_per_vpc = None  # AWS's default: 50
    hub.account.max_routes_per_table = None  # 500
    hub.account.save()

    capacity = inventory_services.vpc_capacity(actor=hub_world["owner"], vpc_id=hub.vpc_id).as_dict()

    assert capacity["peerings"]["limit"] == 50
    assert {t["limit"] for t in capacity["route_tables"]} == {500}
    assert capacity["advice"] == []


def test_the_capacity_endpoint_answers_what_the_service_does_and_only_to_those_who_see_the_vpc(
    hub_world: dict[str, Any],
) -> None:
    hub = hub_world["hub"]
    client = APIClient()
    client.force_authenticate(hub_world["owner"])
    answer = client.get(f"/api/v1/vpcs/{hub.vpc_id}/capacity/")
    assert answer.status_code == 200
    assert answer.json() == {
        "vpc_id": hub.vpc_id,
        **{
            k: v
            for k, v in inventory_services.vpc_capacity(actor=hub_world["owner"], vpc_id=hub.vpc_id).as_dict().items()
            if k != "vpc_id"
        },
    }
    # A VPC of another department without owners is not found, as for one that does not exist.
    stranger = VpcFactory(cidrs=["10.99.0.0/16"])
    assert client.get(f"/api/v1/vpcs/{stranger.vpc_id}/capacity/").status_code == 404
    assert client.get("/api/v1/vpcs/vpc-0000000000000000f/capacity/").status_code == 404


def test_the_approver_dashboard_and_the_topology_show_the_hubs_capacity(hub_world: dict[str, Any]) -> None:
    client = Client()
    client.force_login(hub_world["owner"])
    for page in ("/approvals/", "/topology/"):
        html = client.get(page).content.decode()
        assert "Hub capacity" in html, page
        assert "5 active + 4 pending of 10" in html, page
        assert "use_transit_gateway" in html, page
        assert "main: 4 + 4 of 8" in html, page
