"""Adopting a peering made outside the portal: list, adopt, drift, decommission, and the refusals.

The peering is made the way a person with console access would (boto3 straight into the sandbox:
create, accept, one route on each side), then found by an inventory sync. Everything the portal
does with it afterwards is checked in the sandbox itself.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from requests_app.inventory import sync
from requests_app.models import AuditEvent, AwsAccount, ManagedRoute, PeeringRequest, Vpc
from requests_app.peering import drift
from tests.fixtures.processes import wait_for_status
from tests.fixtures.sandbox import ec2_as, sandbox_snapshot
from tests.fixtures.world import DemoWorld

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

OBSERVED = "/api/v1/observed-peerings/"


def _main_table(vpc: Vpc) -> str:
    return vpc.route_tables.get(is_main=True).route_table_id


def _peer_by_hand(requester: Vpc, accepter: Vpc, *, accept: bool = True, routes: bool = True) -> str:
    """What someone with console access does: create, accept, and route both main tables."""
    ours = ec2_as(requester.account.account_id, requester.region)
    theirs = ec2_as(accepter.account.account_id, accepter.region)
    pcx = ours.create_vpc_peering_connection(
        VpcId=requester.vpc_id, PeerVpcId=accepter.vpc_id, PeerOwnerId=accepter.account.account_id
    )["VpcPeeringConnection"]["VpcPeeringConnectionId"]
    if accept:
        theirs.accept_vpc_peering_connection(VpcPeeringConnectionId=pcx)
        ours.modify_vpc_peering_connection_options(
            VpcPeeringConnectionId=pcx, RequesterPeeringConnectionOptions={"AllowDnsResolutionFromRemoteVpc": True}
        )
        theirs.modify_vpc_peering_connection_options(
            VpcPeeringConnectionId=pcx, AccepterPeeringConnectionOptions={"AllowDnsResolutionFromRemoteVpc": True}
        )
    if routes:
        ours.create_route(
            RouteTableId=_main_table(requester),
            DestinationCidrBlock=accepter.cidr_list()[0],
            VpcPeeringConnectionId=pcx,
        )
        theirs.create_route(
            RouteTableId=_main_table(accepter),
            DestinationCidrBlock=requester.cidr_list()[0],
            VpcPeeringConnectionId=pcx,
        )
    for account in {requester.account.account_id, accepter.account.account_id}:
        sync.sync_account(AwsAccount.objects.get(account_id=account))
    return pcx


def test_a_peering_made_in_aws_is_adopted_watched_for_drift_and_decommissioned(
    worker: Any, demo_world: DemoWorld, api: Any
) -> None:
    vpcs = demo_world.vpcs
    build, hub = vpcs["eng-build"], vpcs["services-use1"]
    pcx = _peer_by_hand(build, hub)
    hub_main, build_main = _main_table(hub), _main_table(build)

    listed = api("nina").get(OBSERVED).json()["results"]
    (seen,) = [o for o in listed if o["pcx_id"] == pcx]
    assert (seen["requester_vpc"], seen["accepter_vpc"]) == (build.vpc_id, hub.vpc_id)
    assert (seen["requester_account_id"], seen["accepter_account_id"], seen["status"]) == (
        "444444444444",
        "111111111111",
        "active",
    )
    assert sorted((r["route_table_id"], r["destination"]) for r in seen["routes"]) == sorted(
        [(build_main, "10.0.0.0/16"), (hub_main, "10.3.0.0/16")]
    )
    assert seen["first_seen"] and seen["last_seen"]
    # fiona's department has nothing to do with it: not listed, not found.
    assert pcx not in {o["pcx_id"] for o in api("fiona").get(OBSERVED).json()["results"]}

    adopted = api("nina").post(
        f"{OBSERVED}{pcx}/adopt/", {"justification": "made by hand in 2023", "external_ref": "CHG-7"}, format="json"
    )

    assert adopted.status_code == 201, adopted.json()
    body = adopted.json()
    assert (body["status"], body["adopted"], body["aws_peering_connection_id"]) == ("active", True, pcx)
    # Sides as AWS has them, not as guessed: eng-build asked, the hub accepted.
    assert (body["requester_vpc"], body["accepter_vpc"]) == (build.vpc_id, hub.vpc_id)
    assert body["requester_route_tables"] == [build_main] and body["requester_destination_cidrs"] == ["10.0.0.0/16"]
    assert body["accepter_route_tables"] == [hub_main] and body["accepter_destination_cidrs"] == ["10.3.0.0/16"]
    assert body["allow_dns_resolution"] is True  # both sides allow it in AWS
    request_id = body["id"]
    assert set(ManagedRoute.objects.filter(request_id=request_id).values_list("route_table_id", "state")) == {
        (build_main, "created"),
        (hub_main, "created"),
    }
    (event,) = AuditEvent.objects.filter(request_id=request_id, action="request.adopted")
    assert event.actor_label == "nina" and event.data["connection_id"] == pcx
    # Managed now: no longer listed, and a second adoption is refused.
    assert pcx not in {o["pcx_id"] for o in api("nina").get(OBSERVED).json()["results"]}
    again = api("nina").post(f"{OBSERVED}{pcx}/adopt/", {"justification": "again"}, format="json")
    assert again.status_code == 409 and again.json()["errors"][0]["code"] == "not_adoptable"
    assert request_id in again.json()["errors"][0]["detail"]

    # Drift: someone deletes the hub's route in AWS; the reconciler notices.
    ec2_as("111111111111", "us-east-1").delete_route(RouteTableId=hub_main, DestinationCidrBlock="10.3.0.0/16")
    found = drift.reconcile(request_id)
    assert found is not None
    assert [f["kind"] for f in found["findings"]] == ["route_missing"]
    assert found["findings"][0]["route_table_id"] == hub_main

    # Repair puts it back; decommission then removes both routes and the connection.
    assert api("nina").post(f"/api/v1/peering-requests/{request_id}/repair/", {}, format="json").status_code == 200
    for _ in range(120):
        if ("10.3.0.0/16", pcx) in sandbox_snapshot()["routes"][hub_main]:
            break
        time.sleep(0.25)
    assert ("10.3.0.0/16", pcx) in sandbox_snapshot()["routes"][hub_main]
    gone = api("nina").post(
        f"/api/v1/peering-requests/{request_id}/decommission/", {"comment": "retire"}, format="json"
    )
    assert gone.status_code == 200, gone.json()
    assert wait_for_status(request_id, {"decommissioned", "failed"}).status == "decommissioned"
    after = sandbox_snapshot()
    assert after["peerings"][pcx] == "deleted"
    assert all(target != pcx for table in (hub_main, build_main) for _, target in after["routes"][table])


def test_adoption_is_refused_when_not_active_outside_the_inventory_or_not_yours(
    worker: Any, demo_world: DemoWorld, api: Any
) -> None:
    vpcs = demo_world.vpcs
    hub = vpcs["services-use1"]
    waiting = _peer_by_hand(vpcs["finance-app"], hub, accept=False, routes=False)
    # A VPC in an account the portal does not know, peered with eng-build by hand.
    stranger = ec2_as("555555555555", "us-east-1").create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    build = vpcs["eng-build"]
    outside = ec2_as("444444444444", "us-east-1").create_vpc_peering_connection(
        VpcId=build.vpc_id, PeerVpcId=stranger, PeerOwnerId="555555555555"
    )["VpcPeeringConnection"]["VpcPeeringConnectionId"]
    ec2_as("555555555555", "us-east-1").accept_vpc_peering_connection(VpcPeeringConnectionId=outside)
    sync.sync_account(AwsAccount.objects.get(account_id="444444444444"))
    mine = _peer_by_hand(build, hub)
    before = sandbox_snapshot()

    def adopt(username: str, pcx: str) -> Any:
        return api(username).post(f"{OBSERVED}{pcx}/adopt/", {"justification": "take it over"}, format="json")

    not_active = adopt("nina", waiting)
    assert not_active.status_code == 409
    assert not_active.json()["errors"][0]["code"] == "not_adoptable"
    assert (
        "pending-acceptance in AWS; only an active peering can be adopted" in not_active.json()["errors"][0]["detail"]
    )

    not_known = adopt("admin", outside)
    assert not_known.status_code == 409
    assert f"{stranger} is not in the portal's inventory" in not_known.json()["errors"][0]["detail"]

    # erin (engineering) sees her VPC's peering but owns no Services VPC: not hers to adopt.
    assert _listed(api, "erin", mine)
    not_owner = adopt("erin", mine)
    assert not_owner.status_code == 403 and not_owner.json()["errors"][0]["code"] == "permission_denied"
    # harry (hr) may not even see it: 404, as for a connection that does not exist.
    assert adopt("harry", mine).status_code == 404
    assert adopt("harry", "pcx-0123456789abcdef0").status_code == 404
    # The form on the inventory page goes through the same rules.
    page = _page_post(demo_world, "erin", f"/inventory/peerings/{mine}/adopt/", {"justification": "x"})
    assert page.status_code == 302 and page["Location"] == "/inventory/"
    assert not PeeringRequest.objects.filter(adopted=True).exists()
    assert sandbox_snapshot() == before  # refusals touch nothing in AWS


def _listed(api: Any, username: str, pcx: str) -> bool:
    return pcx in {o["pcx_id"] for o in api(username).get(OBSERVED).json()["results"]}


def _page_post(demo_world: DemoWorld, username: str, path: str, data: dict[str, str]) -> Any:
    from django.test import Client

    client = Client()
    client.force_login(demo_world.users[username])
    return client.post(path, data)
