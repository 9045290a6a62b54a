"""Email notifications composed in the change's transaction, for whom each event concerns: filing
(the accepter's owners), decisions, failures, expiry, drift and decommissioning (the requester); a
rolled-back change leaves none, and a retry announces no second approval.

The services run in this process and nothing is sent (the delivery: tests/notifications/test_delivery.py;
the real worker's mail: tests/system/test_notifications_worker.py). The world is the demo world from
rows, except for the stories that need AWS (a peering made by hand, provisioning, drift,
decommissioning), which run the saga in this process against the sandbox (`demo_world`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from requests_app.inventory import sync
from requests_app.models import AwsAccount, Notification, PeeringRequest
from requests_app.peering import drift, lifecycle
from requests_app.peering import services as peering_services
from requests_app.peering.saga import runner
from tests.fixtures.clients import file_finance_request
from tests.fixtures.sandbox import ec2_as
from tests.fixtures.world import DemoWorld
from tests.notifications.notes import notes_of, submit

URL = "/api/v1/peering-requests/"


# --- 1. filing -----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_filing_a_request_notifies_the_accepter_owners_and_enqueues_after_commit(
    demo_rows: DemoWorld, api: Any, settings: Any, django_capture_on_commit_callbacks: Any, enqueued: list[Any]
) -> None:
    settings.PORTAL_BASE_URL = "https://peering.example.com/"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        filed = file_finance_request(api, demo_rows.vpcs, external_ref="INC0042")

    notes = list(Notification.objects.all())
    assert len(notes) == 1
    note = notes[0]
    assert str(note.request_id) == filed["id"]
    assert note.event == "request.submitted"
    assert note.recipients == ["nina@example.com", "sam@example.com"]  # not fiona, who filed it
    assert note.state == Notification.State.PENDING and note.attempts == 0
    assert "INC0042" in note.subject
    assert f"https://peering.example.com/requests/{filed['id']}/" in note.body
    assert "the app needs the shared directory" in note.body and "fiona" in note.body

    # Nothing is sent before commit; the commit enqueues delivery of exactly this row.
    assert enqueued == []
    for callback in callbacks:
        callback()
    assert enqueued == [note.pk]


@pytest.mark.django_db
def test_a_refused_request_writes_no_notification(
    demo_rows: DemoWorld, api: Any, django_capture_on_commit_callbacks: Any, enqueued: list[Any]
) -> None:
    vpcs = demo_rows.vpcs
    with django_capture_on_commit_callbacks(execute=True):
        response = api("erin").post(
            URL,
            {
                "requester_vpc": vpcs["eng-sandbox"].vpc_id,
                "accepter_vpc": vpcs["services-use1"].vpc_id,
                "justification": "overlaps",
                "external_ref": "INC0043",
            },
            format="json",
        )
    assert response.status_code in (400, 409, 422), response.json()
    assert PeeringRequest.objects.count() == 0
    assert Notification.objects.count() == 0
    assert enqueued == []


# --- 2. decisions ---------------------------------------------------------------------------------
@pytest.mark.django_db
def test_approval_notifies_the_requester_who_approved(
    demo_rows: DemoWorld, api: Any, django_capture_on_commit_callbacks: Any, enqueued: list[Any]
) -> None:
    filed = file_finance_request(api, demo_rows.vpcs, external_ref="INC0042")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api("nina").post(f"{URL}{filed['id']}/approve/", {"comment": "go ahead"}, format="json")
    assert response.status_code == 200, response.json()

    [note] = notes_of(filed["id"], "request.approved")
    assert note.recipients == ["fiona@example.com"]
    assert "approved by nina" in note.subject and "INC0042" in note.subject
    assert "approved by nina" in note.body and "go ahead" in note.body
    # The decision's commit enqueues this notification (next to the provisioning task, not run here).
    for callback in callbacks:
        callback()
    assert note.pk in enqueued


@pytest.mark.django_db
def test_rejection_notifies_the_requester_with_the_comment(demo_rows: DemoWorld, api: Any) -> None:
    filed = file_finance_request(api, demo_rows.vpcs)
    response = api("nina").post(
        f"{URL}{filed['id']}/reject/", {"comment": "use the transit gateway instead"}, format="json"
    )
    assert response.status_code == 200, response.json()
    [note] = notes_of(filed["id"], "request.rejected")
    assert note.recipients == ["fiona@example.com"]
    assert "rejected by nina" in note.subject
    assert "use the transit gateway instead" in note.body
    assert not notes_of(filed["id"], "request.approved")


@pytest.mark.django_db
def test_a_rolled_back_transition_leaves_no_notification(
    demo_rows: DemoWorld, django_capture_on_commit_callbacks: Any
) -> None:
    request = submit(demo_rows)
    with (
        django_capture_on_commit_callbacks(execute=False) as callbacks,
        pytest.raises(RuntimeError, match="after the change"),
        transaction.atomic(),
    ):
        peering_services.peering_request_approve(actor=demo_rows.users["nina"], request_id=request.pk, comment="ok")
        assert len(notes_of(request.pk, "request.approved")) == 1  # written with the change...
        raise RuntimeError("something failed after the change")
    assert notes_of(request.pk, "request.approved") == []  # ...and gone with it
    assert PeeringRequest.objects.get(pk=request.pk).status == "pending_approval"
    assert callbacks == []  # nothing left to enqueue


def _failed_before_provisioning(demo_world: DemoWorld) -> tuple[PeeringRequest, str]:
    """Approved by nina, then refused by the saga: someone peered the pair by hand in AWS meanwhile."""
    vpcs = demo_world.vpcs
    request = submit(demo_world)
    peering_services.peering_request_approve(actor=demo_world.users["nina"], request_id=request.pk, comment="ok")
    by_hand = ec2_as("222222222222", "us-east-1").create_vpc_peering_connection(
        VpcId=vpcs["finance-app"].vpc_id,
        PeerVpcId=vpcs["services-use1"].vpc_id,
        PeerOwnerId="111111111111",
        PeerRegion="us-east-1",
    )["VpcPeeringConnection"]["VpcPeeringConnectionId"]
    sync.sync_account(AwsAccount.objects.get(account_id="222222222222"))
    runner.run(str(request.pk), "provision")
    failed = PeeringRequest.objects.get(pk=request.pk)
    assert failed.status == "failed"
    return failed, by_hand


@pytest.mark.django_db
def test_checks_failing_before_provisioning_notify_the_requester_with_the_reason(demo_world: DemoWorld) -> None:
    request, by_hand = _failed_before_provisioning(demo_world)
    [note] = notes_of(request.pk, "request.failed")
    assert note.recipients == ["fiona@example.com"]
    assert "nothing was sent to AWS" in note.body and by_hand in note.body


@pytest.mark.django_db
def test_retrying_a_failed_request_does_not_announce_a_new_approval(demo_world: DemoWorld) -> None:
    """A retry (failed -> approved, by the requester) is nobody's decision: no "approved by nina" again.

    Fails today: `request_transition` calls `status_changed` for any move to `approved`, so the
    requester gets a second "approved by nina" email whose text is the previous failure reason.
    """
    request, by_hand = _failed_before_provisioning(demo_world)
    ec2_as("222222222222", "us-east-1").delete_vpc_peering_connection(VpcPeeringConnectionId=by_hand)
    sync.sync_account(AwsAccount.objects.get(account_id="222222222222"))

    peering_services.peering_request_retry(actor=demo_world.users["fiona"], request_id=request.pk)

    assert PeeringRequest.objects.get(pk=request.pk).status == "approved"
    approved = notes_of(request.pk, "request.approved")
    assert len(approved) == 1, [n.body for n in approved]
    assert "nothing was sent to AWS" not in approved[0].body


@pytest.mark.django_db
def test_expiry_notifies_the_requester(demo_rows: DemoWorld) -> None:
    request = submit(demo_rows)
    PeeringRequest.objects.filter(pk=request.pk).update(created_at=timezone.now() - timedelta(days=8))
    assert lifecycle.expire_pending(7 * 24 * 3600) == 1
    [note] = notes_of(request.pk, "request.expired")
    assert note.recipients == ["fiona@example.com"]
    assert "expired" in note.subject


# --- 3. drift and the rest of the lifecycle -----------------------------------------------------------
@pytest.fixture
def active_request(demo_world: DemoWorld) -> PeeringRequest:
    """Filed by fiona, approved by nina, provisioned in this process against the sandbox."""
    request = submit(demo_world)
    peering_services.peering_request_approve(actor=demo_world.users["nina"], request_id=request.pk)
    assert runner.run(str(request.pk), "provision") == "done"
    active = PeeringRequest.objects.get(pk=request.pk)
    assert active.status == "active", active.failure_reason
    return active


@pytest.mark.django_db
def test_drift_notifies_the_requester_once(demo_world: DemoWorld, active_request: PeeringRequest) -> None:
    request = active_request
    [done] = notes_of(request.pk, "request.active")
    assert done.recipients == ["fiona@example.com"] and "is active" in done.subject

    assert drift.reconcile(request.pk) is None  # nothing drifted yet
    assert notes_of(request.pk, "drift.found") == []

    private = demo_world.vpcs["services-use1"].route_tables.get(name="services-private")
    hub = ec2_as("111111111111", "us-east-1")
    hub.delete_route(RouteTableId=private.route_table_id, DestinationCidrBlock="10.11.0.0/16")

    found = drift.reconcile(request.pk)
    assert found is not None and [f["kind"] for f in found["findings"]] == ["route_missing"]
    [note] = notes_of(request.pk, "drift.found")
    assert note.recipients == ["fiona@example.com"]
    assert "no longer matches" in note.subject
    assert f"{private.route_table_id} has no route to 10.11.0.0/16" in note.body

    # The same drift seen on the next cycles: no second email.
    drift.reconcile(request.pk)
    drift.reconcile(request.pk)
    assert len(notes_of(request.pk, "drift.found")) == 1

    # Repaired by hand: the drift clears without an email saying drift was found.
    hub.create_route(
        RouteTableId=private.route_table_id,
        DestinationCidrBlock="10.11.0.0/16",
        VpcPeeringConnectionId=request.aws_peering_connection_id,
    )
    assert drift.reconcile(request.pk) is None
    assert len(notes_of(request.pk, "drift.found")) == 1


@pytest.mark.django_db
def test_decommissioning_notifies_the_requester(demo_world: DemoWorld, active_request: PeeringRequest) -> None:
    peering_services.peering_request_decommission(actor=demo_world.users["fiona"], request_id=active_request.pk)
    assert runner.run(str(active_request.pk), "decommission") == "done"
    assert PeeringRequest.objects.get(pk=active_request.pk).status == "decommissioned"
    [note] = notes_of(active_request.pk, "request.decommissioned")
    assert note.recipients == ["fiona@example.com"] and "decommissioned" in note.subject
    # Going through `decommissioning` is not news; only the end of it is.
    assert notes_of(active_request.pk, "request.decommissioning") == []
