"""Regressions from review: stale or failing work must never tear down a live peering, and a
route table deleted in AWS must not stop a decommission or leave anything behind."""

from __future__ import annotations

from typing import Any

import pytest

from requests_app.aws.types import TransientAwsError
from requests_app.inventory import sync
from requests_app.models import PeeringRequest
from requests_app.peering import drift, preflight
from requests_app.peering import services as peering_services
from requests_app.peering.saga import runner
from tests.fixtures.sandbox import ec2_as
from tests.fixtures.world import DemoWorld

# No transaction=True: approvals' on-commit enqueues never fire, so this test alone runs the saga.
pytestmark = pytest.mark.django_db


def _active(demo_world: DemoWorld) -> PeeringRequest:
    users, vpcs = demo_world.users, demo_world.vpcs
    filed = peering_services.peering_request_submit(
        actor=users["fiona"],
        draft=preflight.PeeringDraft(
            requester_vpc=vpcs["finance-app"].vpc_id, accepter_vpc=vpcs["services-use1"].vpc_id, justification="safety"
        ),
    )
    peering_services.peering_request_approve(actor=users["nina"], request_id=filed.pk)
    assert runner.run(str(filed.pk), "provision") == "done"
    active = PeeringRequest.objects.get(pk=filed.pk)
    assert active.status == "active", active.failure_reason
    return active


def _connection_state(request: PeeringRequest) -> str:
    for p in ec2_as("222222222222", "us-east-1").describe_vpc_peering_connections()["VpcPeeringConnections"]:
        if p["VpcPeeringConnectionId"] == request.aws_peering_connection_id:
            return p["Status"]["Code"]
    return "missing"


def test_a_repair_that_runs_out_of_retries_never_tears_down_the_peering(demo_world: DemoWorld) -> None:
    active = _active(demo_world)
    runner.give_up(str(active.pk), "repair", TransientAwsError("Throttling", "slow down", "CreateRoute"))
    after = PeeringRequest.objects.get(pk=active.pk)
    assert after.status == "active" and _connection_state(after) == "active"
    assert after.events.filter(action="repair.failed").exists()
    assert not after.events.filter(operation__in=["DeleteRoute", "DeleteVpcPeeringConnection"]).exists()


def test_stale_messages_for_an_active_peering_change_nothing(demo_world: DemoWorld, settings: Any) -> None:
    active = _active(demo_world)
    for _ in range(settings.MAX_TASK_DELIVERIES + 2):
        assert runner.run(str(active.pk), "repair") == "done"
        assert runner.run(str(active.pk), "provision") == "not_needed"  # a stale duplicate
        assert runner.run(str(active.pk), "decommission") == "not_needed"
    after = PeeringRequest.objects.get(pk=active.pk)
    assert after.status == "active" and _connection_state(after) == "active"
    assert after.deliveries == 0  # only real provisioning and teardown deliveries count

    peering_services.peering_request_decommission(actor=demo_world.users["fiona"], request_id=active.pk)
    assert runner.run(str(active.pk), "decommission") == "done"
    assert PeeringRequest.objects.get(pk=active.pk).status == "decommissioned"


def test_a_route_table_deleted_in_aws_is_drift_and_does_not_block_decommission(demo_world: DemoWorld) -> None:
    active = _active(demo_world)
    private = demo_world.vpcs["services-use1"].route_tables.get(name="services-private")
    ec2_as("111111111111", "us-east-1").delete_route_table(RouteTableId=private.route_table_id)

    found = drift.reconcile(active.pk)
    assert [f["kind"] for f in found["findings"]] == ["route_table_gone"]

    peering_services.peering_request_decommission(actor=demo_world.users["fiona"], request_id=active.pk)
    runner.run(str(active.pk), "decommission")
    gone = PeeringRequest.objects.get(pk=active.pk)
    assert gone.status == "decommissioned", gone.failure_reason
    assert _connection_state(gone) == "deleted"
    for table in ec2_as("222222222222", "us-east-1").describe_route_tables()["RouteTables"]:
        assert all(r.get("VpcPeeringConnectionId") != active.aws_peering_connection_id for r in table["Routes"])


def test_a_failed_request_still_holding_a_connection_keeps_the_pair(demo_world: DemoWorld, api: Any) -> None:
    active = _active(demo_world)
    # What a decommission that could not finish leaves: failed, connection still in AWS.
    PeeringRequest.objects.filter(pk=active.pk).update(status="failed", failed_operation="decommission")
    vpcs = demo_world.vpcs
    again = api("sam").post(
        "/api/v1/peering-requests/",
        {
            "requester_vpc": vpcs["finance-app"].vpc_id,
            "accepter_vpc": vpcs["services-use1"].vpc_id,
            "justification": "again",
        },
        format="json",
    )
    assert again.status_code == 400
    assert [e["code"] for e in again.json()["errors"]] == ["duplicate_peering"]
    assert str(active.pk) in again.json()["errors"][0]["detail"]  # sam is in finance: he may see it
    # Its own retry is not blocked by itself.
    assert api("fiona").post(f"/api/v1/peering-requests/{active.pk}/retry/", {}, format="json").status_code == 200


def test_a_connection_aws_no_longer_lists_stops_holding_the_pair(demo_world: DemoWorld, api: Any) -> None:
    from moto.ec2.models import ec2_backends

    from requests_app.models import AwsAccount, ObservedPeering

    vpcs = demo_world.vpcs
    finance, hub = vpcs["finance-app"], vpcs["services-use1"]
    by_hand = ec2_as("222222222222", "us-east-1").create_vpc_peering_connection(
        VpcId=finance.vpc_id, PeerVpcId=hub.vpc_id, PeerOwnerId="111111111111", PeerRegion="us-east-1"
    )["VpcPeeringConnection"]["VpcPeeringConnectionId"]
    account = AwsAccount.objects.get(account_id="222222222222")
    sync.sync_account(account)
    body = {"requester_vpc": finance.vpc_id, "accepter_vpc": hub.vpc_id, "justification": "x"}
    refused = api("fiona").post("/api/v1/peering-requests/", body, format="json")
    assert [e["code"] for e in refused.json()["errors"]] == ["duplicate_peering"]

    # AWS forgets a connection some time after it is deleted; so does the next sync.
    for account_id in ("222222222222", "111111111111"):
        ec2_backends[account_id]["us-east-1"].vpc_pcxs.pop(by_hand, None)
    sync.sync_account(account)
    assert ObservedPeering.objects.get(connection_id=by_hand).status == "missing"
    assert api("fiona").post("/api/v1/peering-requests/", body, format="json").status_code == 201
