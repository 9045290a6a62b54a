"""Drift, with the real worker: what changed in AWS behind the portal's back is found, shown and (for
routes) repaired, and a connection deleted out of band is never recreated.

(Requests pending approval too long expire: tests/peering/test_expiry.py.)"""

from __future__ import annotations

import time
from typing import Any

import pytest

from requests_app import tasks
from requests_app.models import PeeringRequest
from requests_app.peering import drift
from requests_app.peering import services as peering_services
from tests.fixtures.clients import file_finance_request
from tests.fixtures.processes import wait_for_status
from tests.fixtures.sandbox import ec2_as
from tests.fixtures.world import DemoWorld

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _active(api: Any, demo_world: DemoWorld, **extra: Any) -> PeeringRequest:
    filed = file_finance_request(api, demo_world.vpcs, justification="drift test", **extra)
    assert api("nina").post(f"/api/v1/peering-requests/{filed['id']}/approve/", {}, format="json").status_code == 200
    done = wait_for_status(filed["id"], {"active", "failed"})
    assert done.status == "active", done.failure_reason
    return done


def _wait_for_drift(request_id: Any, predicate: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        drift = PeeringRequest.objects.get(pk=request_id).drift
        if predicate(drift):
            return drift
        time.sleep(0.25)
    raise AssertionError(f"drift is {PeeringRequest.objects.get(pk=request_id).drift}")


def test_a_route_deleted_out_of_band_is_flagged_within_one_cycle_and_repaired(
    worker: Any, demo_world: DemoWorld, api: Any
) -> None:
    done = _active(api, demo_world)
    private = demo_world.vpcs["services-use1"].route_tables.get(name="services-private")
    hub = ec2_as("111111111111", "us-east-1")
    hub.delete_route(RouteTableId=private.route_table_id, DestinationCidrBlock="10.11.0.0/16")

    tasks.reconcile_active_requests.delay()  # one beat cycle, run by the real worker
    found = _wait_for_drift(done.pk, lambda d: d is not None)
    assert [(f["kind"], f["route_table_id"], f["destination"]) for f in found["findings"]] == [
        ("route_missing", private.route_table_id, "10.11.0.0/16")
    ]
    shown = api("fiona").get(f"/api/v1/peering-requests/{done.pk}/").json()
    assert shown["drift"]["findings"][0]["kind"] == "route_missing"
    assert PeeringRequest.objects.get(pk=done.pk).events.filter(action="drift.found").count() == 1

    # Only the peer VPC's owners repair; the requester may not.
    assert api("fiona").post(f"/api/v1/peering-requests/{done.pk}/repair/", {}, format="json").status_code == 403
    assert api("nina").post(f"/api/v1/peering-requests/{done.pk}/repair/", {}, format="json").status_code == 200
    _wait_for_drift(done.pk, lambda d: d is None)
    routes = hub.describe_route_tables(RouteTableIds=[private.route_table_id])["RouteTables"][0]["Routes"]
    assert {"DestinationCidrBlock": "10.11.0.0/16", "VpcPeeringConnectionId": done.aws_peering_connection_id} in [
        {k: r.get(k) for k in ("DestinationCidrBlock", "VpcPeeringConnectionId")} for r in routes
    ]
    assert PeeringRequest.objects.get(pk=done.pk).events.filter(action="drift.cleared").exists()


def test_a_connection_deleted_out_of_band_is_flagged_and_never_recreated(
    worker: Any, demo_world: DemoWorld, api: Any
) -> None:
    done = _active(api, demo_world)
    ec2_as("222222222222", "us-east-1").delete_vpc_peering_connection(
        VpcPeeringConnectionId=done.aws_peering_connection_id
    )
    found = drift.reconcile(done.pk)
    assert found is not None and found["findings"][0]["kind"] == "connection_gone"
    assert "will not recreate" in found["findings"][0]["detail"]
    # Asking again records nothing new: the same drift is not audited twice.
    drift.reconcile(done.pk)
    assert PeeringRequest.objects.get(pk=done.pk).events.filter(action="drift.found").count() == 1

    peering_services.peering_request_repair(actor=demo_world.users["nina"], request_id=done.pk)
    deadline = time.monotonic() + 30
    events = PeeringRequest.objects.get(pk=done.pk).events
    while not events.filter(action="repair.refused").exists() and time.monotonic() < deadline:
        time.sleep(0.25)
    assert events.filter(action="repair.refused").exists()
    live = [
        p
        for p in ec2_as("222222222222", "us-east-1").describe_vpc_peering_connections()["VpcPeeringConnections"]
        if p["Status"]["Code"] == "active"
    ]
    assert live == []


def test_dns_option_turned_off_out_of_band_is_drift(worker: Any, demo_world: DemoWorld, api: Any) -> None:
    done = _active(api, demo_world, allow_dns_resolution=True)
    ec2_as("111111111111", "us-east-1").modify_vpc_peering_connection_options(
        VpcPeeringConnectionId=done.aws_peering_connection_id,
        AccepterPeeringConnectionOptions={"AllowDnsResolutionFromRemoteVpc": False},
    )
    found = drift.reconcile(done.pk)
    assert [f["kind"] for f in found["findings"]] == ["dns_option_changed"]
    assert "accepter side" in found["findings"][0]["detail"]
