"""Hub safety on the portal's own picture of the network, through the API, a real worker and the sandbox.

A Services VPC routes each spoke's addresses to that spoke's peering. Two spokes whose blocks
overlap (equal, one inside the other) cannot both be routed, so the second must be refused, and
refused from what the portal itself just did: no inventory sync runs between the first spoke going
active and the second one being checked. Every refusal is checked in the sandbox too: nothing of a
refused request reaches AWS.

Every account's default VPC has 172.31.0.0/16, so the default VPCs of two departments are two
overlapping spokes as soon as both peer with the same hub.
"""

from __future__ import annotations

from typing import Any

import pytest

from requests_app.inventory import sync
from requests_app.models import AwsAccount, PeeringRequest, Vpc
from tests.fixtures.processes import wait_for_status
from tests.fixtures.sandbox import ec2_as, sandbox_snapshot
from tests.fixtures.world import DemoWorld

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

URL = "/api/v1/peering-requests/"
FINANCE_DEFAULT = "default-222222222222-us-east-1"
ENGINEERING_DEFAULT = "default-444444444444-us-east-1"


def _body(requester: Vpc, accepter: Vpc) -> dict[str, Any]:
    return {"requester_vpc": requester.vpc_id, "accepter_vpc": accepter.vpc_id, "justification": "directory access"}


def _file(api: Any, username: str, requester: Vpc, accepter: Vpc) -> dict[str, Any]:
    response = api(username).post(URL, _body(requester, accepter), format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def _provision(api: Any, request_id: str) -> PeeringRequest:
    approved = api("nina").post(f"{URL}{request_id}/approve/", {"comment": "ok"}, format="json")
    assert approved.status_code == 200, approved.json()
    done = wait_for_status(request_id, {"active", "failed"})
    assert done.status == "active", done.failure_reason
    return done


def _errors(response: Any, code: str) -> list[str]:
    return [e["detail"] for e in response.json()["errors"] if e["code"] == code]


def _new_vpc(account_id: str, name: str, cidr: str) -> Vpc:
    """A VPC made in the sandbox (as its account's owners would), then read by a sync."""
    ec2 = ec2_as(account_id, "us-east-1")
    vpc_id = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    ec2.create_tags(Resources=[vpc_id], Tags=[{"Key": "Name", "Value": name}])
    sync.sync_account(AwsAccount.objects.get(account_id=account_id))
    return Vpc.objects.get(vpc_id=vpc_id)


def _hub_tables(hub: Vpc) -> list[str]:
    return sorted(hub.route_tables.values_list("route_table_id", flat=True))


def test_a_spoke_with_the_cidr_of_a_spoke_provisioned_a_moment_ago_is_refused_without_a_sync(
    worker: Any, demo_world: DemoWorld, api: Any
) -> None:
    vpcs = demo_world.vpcs
    hub = vpcs["services-use1"]
    first = _provision(api, _file(api, "fiona", vpcs[FINANCE_DEFAULT], hub)["id"])
    synced_at = Vpc.objects.get(pk=hub.pk).synced_at
    before = sandbox_snapshot()
    # The hub's tables route 172.31.0.0/16 to fiona's spoke in AWS; the last sync never saw it.
    assert all(r["destination"] != "172.31.0.0/16" for t in hub.route_tables.all() for r in t.routes)
    assert all(
        ("172.31.0.0/16", first.aws_peering_connection_id) in before["routes"][table] for table in _hub_tables(hub)
    )

    refused = api("erin").post(URL, _body(vpcs[ENGINEERING_DEFAULT], hub), format="json")

    assert refused.status_code == 400, refused.json()
    (overlap,) = _errors(refused, "spoke_overlap")
    # erin may not see fiona's VPC or request: the CIDR, the hub and its route tables are named.
    assert "overlaps 172.31.0.0/16 of a VPC of another department, which services-use1" in overlap
    assert "(a request of another department, active, routed by route table" in overlap
    assert all(table in overlap for table in _hub_tables(hub))
    conflicts = _errors(refused, "route_conflict")
    assert len(conflicts) == 2  # both of the hub's tables
    assert all(f"already routes 172.31.0.0/16 to {first.aws_peering_connection_id}" in c for c in conflicts)
    assert not PeeringRequest.objects.filter(requester_vpc=vpcs[ENGINEERING_DEFAULT]).exists()
    assert sandbox_snapshot() == before  # nothing of the refused request reached AWS
    assert Vpc.objects.get(pk=hub.pk).synced_at == synced_at  # and no sync ran in between


def test_spokes_inside_or_containing_a_live_spokes_block_are_refused(
    worker: Any, demo_world: DemoWorld, api: Any
) -> None:
    hub = demo_world.vpcs["services-use1"]
    small = _new_vpc("444444444444", "eng-small", "10.5.16.0/20")
    wide = _new_vpc("222222222222", "finance-wide", "10.5.0.0/16")  # contains eng-small
    narrow = _new_vpc("222222222222", "finance-narrow", "10.5.16.0/24")  # inside eng-small
    live = _provision(api, _file(api, "erin", small, hub)["id"])
    before = sandbox_snapshot()

    for spoke, relation in ((wide, "10.5.0.0/16"), (narrow, "10.5.16.0/24")):
        refused = api("fiona").post(URL, _body(spoke, hub), format="json")
        assert refused.status_code == 400, refused.json()
        (overlap,) = _errors(refused, "spoke_overlap")
        assert f"{relation} of {spoke.name} ({spoke.vpc_id}) overlaps 10.5.16.0/20 of a VPC of another department" in (
            overlap
        )
        # The hub's routes to eng-small, made by the portal a moment ago, are in the way as well:
        # the narrower one would steal part of its traffic, the broader one be shadowed by it.
        conflicts = _errors(refused, "route_conflict")
        assert conflicts and all(live.aws_peering_connection_id in c for c in conflicts)
    assert not PeeringRequest.objects.filter(requester_vpc__in=[wide, narrow]).exists()
    assert sandbox_snapshot() == before


def test_of_two_pending_overlapping_spokes_only_the_first_approved_is_provisioned(
    worker: Any, demo_world: DemoWorld, api: Any
) -> None:
    vpcs = demo_world.vpcs
    hub = vpcs["services-use1"]
    first = _file(api, "fiona", vpcs[FINANCE_DEFAULT], hub)
    second = _file(api, "erin", vpcs[ENGINEERING_DEFAULT], hub)
    # Both may be filed: while both wait, each only warns about the other.
    warned = {c["code"] for c in second["checks"] if c["status"] == "warn"}
    assert {"spoke_overlap", "route_conflict"} <= warned, second["checks"]
    live = _provision(api, first["id"])
    before = sandbox_snapshot()

    refused = api("nina").post(f"{URL}{second['id']}/approve/", {"comment": "ok"}, format="json")

    assert refused.status_code == 400, refused.json()
    (overlap,) = _errors(refused, "spoke_overlap")
    # nina owns the hub and sees everything: the other spoke and its request are named.
    assert f"overlaps 172.31.0.0/16 of default VPC ({vpcs[FINANCE_DEFAULT].vpc_id})" in overlap
    assert f"(request {first['id']}, active, routed by route table" in overlap
    assert PeeringRequest.objects.get(pk=second["id"]).status == "pending_approval"
    assert PeeringRequest.objects.get(pk=first["id"]).status == "active"
    assert sandbox_snapshot() == before
    assert live.aws_peering_connection_id in before["peerings"]


def test_broad_routes_to_an_internet_and_a_transit_gateway_stay_and_the_peering_routes_win(
    worker: Any, demo_world: DemoWorld, api: Any
) -> None:
    vpcs = demo_world.vpcs
    finance, hub = vpcs["finance-app"], vpcs["services-use1"]
    ec2 = ec2_as("222222222222", "us-east-1")
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=finance.vpc_id)
    tgw = ec2.create_transit_gateway()["TransitGateway"]["TransitGatewayId"]
    (main,) = finance.route_tables.values_list("route_table_id", flat=True)
    ec2.create_route(RouteTableId=main, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.create_route(RouteTableId=main, DestinationCidrBlock="10.0.0.0/8", TransitGatewayId=tgw)
    sync.sync_account(AwsAccount.objects.get(account_id="222222222222"))

    filed = _file(api, "fiona", finance, hub)

    notes = [c for c in filed["checks"] if c["code"] == "route_conflict"]
    assert [c["status"] for c in notes] == ["pass"], filed["checks"]
    assert f"0.0.0.0/0 → {igw}" in notes[0]["detail"] and f"10.0.0.0/8 → {tgw}" in notes[0]["detail"]
    assert "narrower routes win by longest prefix" in notes[0]["detail"]
    done = _provision(api, filed["id"])
    routes = dict(sandbox_snapshot()["routes"][main])
    assert routes["10.0.0.0/16"] == done.aws_peering_connection_id
    assert routes["0.0.0.0/0"] == igw
    assert "10.0.0.0/8" in routes  # the transit route is left as it was
