"""Email notifications through an outbox: composed in the change's transaction, sent after commit.

Unit tests drive the services and call `deliver_notification` in this process (locmem mail);
the integration test runs the real worker with the file-based mail backend.
"""

from __future__ import annotations

import email
import email.header
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone

from requests_app import tasks
from requests_app.core import outbox
from requests_app.inventory import sync
from requests_app.models import AwsAccount, Notification, PeeringRequest
from requests_app.notifications import delivery
from requests_app.peering import drift, lifecycle, preflight
from requests_app.peering import services as peering_services
from requests_app.peering.saga import runner
from tests.conftest import SentTasks, WorkerProcess, ec2_as, wait_for_status

URL = "/api/v1/peering-requests/"
LOCMEM = "django.core.mail.backends.locmem.EmailBackend"


# --- helpers -------------------------------------------------------------------------------------
@pytest.fixture
def locmem(settings: Any) -> None:
    settings.EMAIL_BACKEND = LOCMEM
    mail.outbox = []


@pytest.fixture
def enqueued(sent_tasks: SentTasks) -> list[Any]:
    """Ids of the notifications sent for delivery, kept here instead of the broker."""
    return sent_tasks.ids[outbox.DELIVER_NOTIFICATION]


def _file(api: Any, vpcs: dict[str, Any], username: str = "fiona", **extra: Any) -> dict[str, Any]:
    response = api(username).post(
        URL,
        {
            "requester_vpc": vpcs["finance-app"].vpc_id,
            "accepter_vpc": vpcs["services-use1"].vpc_id,
            "justification": "the app needs the shared directory",
            **extra,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()


def _submit(demo_world: dict[str, Any], username: str = "fiona") -> PeeringRequest:
    vpcs = demo_world["vpcs"]
    return peering_services.peering_request_submit(
        actor=demo_world["users"][username],
        draft=preflight.PeeringDraft(
            requester_vpc=vpcs["finance-app"].vpc_id,
            accepter_vpc=vpcs["services-use1"].vpc_id,
            justification="notify me",
        ),
    )


def _notes(request_id: Any, event: str) -> list[Notification]:
    return list(Notification.objects.filter(request_id=request_id, event=event))


def _outbox_row(**fields: Any) -> Notification:
    defaults = {
        "event": "request.approved",
        "recipients": ["fiona@example.com"],
        "subject": "Peering: approved by nina",
        "body": "Your peering request approved by nina.\n",
    }
    return Notification.objects.create(**{**defaults, **fields})


# --- 1. filing -----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_filing_a_request_notifies_the_accepter_owners_and_enqueues_after_commit(
    demo_world: dict[str, Any], api: Any, settings: Any, django_capture_on_commit_callbacks: Any, enqueued: list[Any]
) -> None:
    settings.PORTAL_BASE_URL = "https://peering.example.com/"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        filed = _file(api, demo_world["vpcs"], external_ref="INC0042")

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
    demo_world: dict[str, Any], api: Any, django_capture_on_commit_callbacks: Any, enqueued: list[Any]
) -> None:
    vpcs = demo_world["vpcs"]
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
    demo_world: dict[str, Any], api: Any, django_capture_on_commit_callbacks: Any, enqueued: list[Any]
) -> None:
    filed = _file(api, demo_world["vpcs"], external_ref="INC0042")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api("nina").post(f"{URL}{filed['id']}/approve/", {"comment": "go ahead"}, format="json")
    assert response.status_code == 200, response.json()

    [note] = _notes(filed["id"], "request.approved")
    assert note.recipients == ["fiona@example.com"]
    assert "approved by nina" in note.subject and "INC0042" in note.subject
    assert "approved by nina" in note.body and "go ahead" in note.body
    # The decision's commit enqueues this notification (next to the provisioning task, not run here).
    for callback in callbacks:
        callback()
    assert note.pk in enqueued


@pytest.mark.django_db
def test_rejection_notifies_the_requester_with_the_comment(demo_world: dict[str, Any], api: Any) -> None:
    filed = _file(api, demo_world["vpcs"])
    response = api("nina").post(
        f"{URL}{filed['id']}/reject/", {"comment": "use the transit gateway instead"}, format="json"
    )
    assert response.status_code == 200, response.json()
    [note] = _notes(filed["id"], "request.rejected")
    assert note.recipients == ["fiona@example.com"]
    assert "rejected by nina" in note.subject
    assert "use the transit gateway instead" in note.body
    assert not _notes(filed["id"], "request.approved")


@pytest.mark.django_db
def test_a_rolled_back_transition_leaves_no_notification(
    demo_world: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    request = _submit(demo_world)
    with (
        django_capture_on_commit_callbacks(execute=False) as callbacks,
        pytest.raises(RuntimeError, match="after the change"),
        transaction.atomic(),
    ):
        peering_services.peering_request_approve(actor=demo_world["users"]["nina"], request_id=request.pk, comment="ok")
        assert len(_notes(request.pk, "request.approved")) == 1  # written with the change...
        raise RuntimeError("something failed after the change")
    assert _notes(request.pk, "request.approved") == []  # ...and gone with it
    assert PeeringRequest.objects.get(pk=request.pk).status == "pending_approval"
    assert callbacks == []  # nothing left to enqueue


def _failed_before_provisioning(demo_world: dict[str, Any]) -> tuple[PeeringRequest, str]:
    """Approved by nina, then refused by the saga: someone peered the pair by hand in AWS meanwhile."""
    vpcs = demo_world["vpcs"]
    request = _submit(demo_world)
    peering_services.peering_request_approve(actor=demo_world["users"]["nina"], request_id=request.pk, comment="ok")
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
def test_checks_failing_before_provisioning_notify_the_requester_with_the_reason(demo_world: dict[str, Any]) -> None:
    request, by_hand = _failed_before_provisioning(demo_world)
    [note] = _notes(request.pk, "request.failed")
    assert note.recipients == ["fiona@example.com"]
    assert "nothing was sent to AWS" in note.body and by_hand in note.body


@pytest.mark.django_db
def test_retrying_a_failed_request_does_not_announce_a_new_approval(demo_world: dict[str, Any]) -> None:
    """A retry (failed -> approved, by the requester) is nobody's decision: no "approved by nina" again.

    Fails today: `request_transition` calls `status_changed` for any move to `approved`, so the
    requester gets a second "approved by nina" email whose text is the previous failure reason.
    """
    request, by_hand = _failed_before_provisioning(demo_world)
    ec2_as("222222222222", "us-east-1").delete_vpc_peering_connection(VpcPeeringConnectionId=by_hand)
    sync.sync_account(AwsAccount.objects.get(account_id="222222222222"))

    peering_services.peering_request_retry(actor=demo_world["users"]["fiona"], request_id=request.pk)

    assert PeeringRequest.objects.get(pk=request.pk).status == "approved"
    approved = _notes(request.pk, "request.approved")
    assert len(approved) == 1, [n.body for n in approved]
    assert "nothing was sent to AWS" not in approved[0].body


@pytest.mark.django_db
def test_expiry_notifies_the_requester(demo_world: dict[str, Any]) -> None:
    request = _submit(demo_world)
    PeeringRequest.objects.filter(pk=request.pk).update(created_at=timezone.now() - timedelta(days=8))
    assert lifecycle.expire_pending(7 * 24 * 3600) == 1
    [note] = _notes(request.pk, "request.expired")
    assert note.recipients == ["fiona@example.com"]
    assert "expired" in note.subject


# --- 3. delivery ----------------------------------------------------------------------------------
class FlakyBackend:
    """A mail backend that fails `failures_left` times (forever when negative), then sends to locmem."""

    failures_left = 0
    calls = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from django.core.mail.backends.locmem import EmailBackend

        self._inner = EmailBackend(*args, **kwargs)

    def send_messages(self, messages: Any) -> int:
        FlakyBackend.calls += 1
        if FlakyBackend.failures_left != 0:
            FlakyBackend.failures_left -= 1
            raise ConnectionRefusedError("smtp.example.com:25 refused the connection")
        return self._inner.send_messages(messages)


@pytest.fixture
def flaky(settings: Any) -> type[FlakyBackend]:
    settings.EMAIL_BACKEND = f"{__name__}.FlakyBackend"
    FlakyBackend.failures_left = 0
    FlakyBackend.calls = 0
    mail.outbox = []
    return FlakyBackend


@pytest.mark.django_db
def test_delivery_sends_once_and_marks_sent_and_a_duplicate_sends_nothing(locmem: None) -> None:
    note = _outbox_row(recipients=["fiona@example.com", "sam@example.com"])
    assert tasks.deliver_notification.apply(args=[note.pk]).get() == "sent"

    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sorted(sent.to) == ["fiona@example.com", "sam@example.com"]
    assert (sent.subject, sent.body) == (note.subject, note.body)
    note.refresh_from_db()
    assert note.state == Notification.State.SENT
    assert note.sent_at is not None and note.attempts == 1

    # The same task delivered twice (acks_late, sweeper): nothing more is sent.
    assert tasks.deliver_notification.apply(args=[note.pk]).get() == "not_pending"
    assert len(mail.outbox) == 1
    note.refresh_from_db()
    assert note.attempts == 1


@pytest.mark.django_db
def test_a_failed_send_counts_the_attempt_and_stays_pending(flaky: type[FlakyBackend]) -> None:
    note = _outbox_row()
    flaky.failures_left = 1
    # Called directly (no worker), the task's retry re-raises the send's error.
    with pytest.raises(ConnectionRefusedError):
        tasks.deliver_notification.run(note.pk)
    note.refresh_from_db()
    assert note.state == Notification.State.PENDING
    assert note.attempts == 1 and note.last_attempt_at is not None and note.sent_at is None
    assert "ConnectionRefusedError" in note.last_error and "refused the connection" in note.last_error
    assert mail.outbox == []


@pytest.mark.django_db
def test_a_transient_failure_is_retried_until_sent(flaky: type[FlakyBackend]) -> None:
    note = _outbox_row()
    flaky.failures_left = 2
    # apply() runs the task's retries eagerly, one after the other.
    assert tasks.deliver_notification.apply(args=[note.pk]).get() == "sent"
    note.refresh_from_db()
    assert note.state == Notification.State.SENT and note.attempts == 3
    assert flaky.calls == 3 and len(mail.outbox) == 1


@pytest.mark.django_db
def test_delivery_gives_up_after_the_maximum_attempts(flaky: type[FlakyBackend]) -> None:
    note = _outbox_row()
    flaky.failures_left = -1  # the mail server never answers
    assert tasks.deliver_notification.apply(args=[note.pk]).get() == "failed"
    note.refresh_from_db()
    assert note.state == Notification.State.FAILED
    assert note.attempts == delivery.NOTIFICATION_MAX_ATTEMPTS == flaky.calls
    assert "refused the connection" in note.last_error and note.sent_at is None
    # Given up means given up: another delivery does not try again.
    assert tasks.deliver_notification.apply(args=[note.pk]).get() == "not_pending"
    assert flaky.calls == delivery.NOTIFICATION_MAX_ATTEMPTS and mail.outbox == []


# --- 4. sweeper -----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_sweeper_resends_only_lost_pending_notifications(enqueued: list[Any]) -> None:
    now = timezone.now()
    window = timedelta(seconds=delivery.NOTIFICATION_RESEND_AFTER_SECONDS)
    stale_try = timedelta(seconds=delivery.NOTIFICATION_MAX_BACKOFF_SECONDS * 2)

    def row(age: timedelta, **fields: Any) -> int:
        note = _outbox_row(**fields)
        Notification.objects.filter(pk=note.pk).update(created_at=now - age)
        return note.pk

    never_tried = row(window + timedelta(seconds=30))
    fresh = row(window - timedelta(seconds=30))
    sent = row(window * 10, state=Notification.State.SENT, attempts=1, sent_at=now - window * 9)
    failed = row(window * 10, state=Notification.State.FAILED, attempts=5, last_attempt_at=now - stale_try * 2)
    retrying = row(stale_try * 3, attempts=2, last_attempt_at=now - timedelta(seconds=60))  # a retry is scheduled
    abandoned = row(stale_try * 3, attempts=2, last_attempt_at=now - stale_try - timedelta(seconds=60))

    result = tasks.sweep_stuck_work()

    assert sorted(enqueued) == sorted([never_tried, abandoned])
    assert fresh not in enqueued and sent not in enqueued and failed not in enqueued and retrying not in enqueued
    assert result["notifications_resent"] == 2


@pytest.mark.django_db
def test_a_notification_whose_enqueue_failed_is_sent_by_the_sweeper(
    demo_world: dict[str, Any], locmem: None, django_capture_on_commit_callbacks: Any, sent_tasks: SentTasks
) -> None:
    def broker_down(*args: Any, countdown: float | None = None) -> None:
        raise ConnectionError("broker unreachable")

    sent_tasks.handlers[outbox.DELIVER_NOTIFICATION] = broker_down
    with django_capture_on_commit_callbacks(execute=True):
        request = _submit(demo_world)  # the commit's enqueue fails, quietly
    [note] = _notes(request.pk, "request.submitted")
    assert note.state == Notification.State.PENDING and mail.outbox == []

    old = timezone.now() - timedelta(seconds=delivery.NOTIFICATION_RESEND_AFTER_SECONDS + 1)
    Notification.objects.filter(pk=note.pk).update(created_at=old)
    sent_tasks.handlers[outbox.DELIVER_NOTIFICATION] = lambda pk, countdown=None: tasks.deliver_notification.apply(
        args=[pk]
    )
    assert tasks.sweep_stuck_work()["notifications_resent"] == 1
    note.refresh_from_db()
    assert note.state == Notification.State.SENT
    assert [m.to for m in mail.outbox] == [["nina@example.com", "sam@example.com"]]


# --- 5. drift and the rest of the lifecycle -----------------------------------------------------------
@pytest.fixture
def active_request(demo_world: dict[str, Any]) -> PeeringRequest:
    """Filed by fiona, approved by nina, provisioned in this process against the sandbox."""
    request = _submit(demo_world)
    peering_services.peering_request_approve(actor=demo_world["users"]["nina"], request_id=request.pk)
    assert runner.run(str(request.pk), "provision") == "done"
    active = PeeringRequest.objects.get(pk=request.pk)
    assert active.status == "active", active.failure_reason
    return active


@pytest.mark.django_db
def test_drift_notifies_the_requester_once(demo_world: dict[str, Any], active_request: PeeringRequest) -> None:
    request = active_request
    [done] = _notes(request.pk, "request.active")
    assert done.recipients == ["fiona@example.com"] and "is active" in done.subject

    assert drift.reconcile(request.pk) is None  # nothing drifted yet
    assert _notes(request.pk, "drift.found") == []

    private = demo_world["vpcs"]["services-use1"].route_tables.get(name="services-private")
    hub = ec2_as("111111111111", "us-east-1")
    hub.delete_route(RouteTableId=private.route_table_id, DestinationCidrBlock="10.11.0.0/16")

    found = drift.reconcile(request.pk)
    assert found is not None and [f["kind"] for f in found["findings"]] == ["route_missing"]
    [note] = _notes(request.pk, "drift.found")
    assert note.recipients == ["fiona@example.com"]
    assert "no longer matches" in note.subject
    assert f"{private.route_table_id} has no route to 10.11.0.0/16" in note.body

    # The same drift seen on the next cycles: no second email.
    drift.reconcile(request.pk)
    drift.reconcile(request.pk)
    assert len(_notes(request.pk, "drift.found")) == 1

    # Repaired by hand: the drift clears without an email saying drift was found.
    hub.create_route(
        RouteTableId=private.route_table_id,
        DestinationCidrBlock="10.11.0.0/16",
        VpcPeeringConnectionId=request.aws_peering_connection_id,
    )
    assert drift.reconcile(request.pk) is None
    assert len(_notes(request.pk, "drift.found")) == 1


@pytest.mark.django_db
def test_decommissioning_notifies_the_requester(demo_world: dict[str, Any], active_request: PeeringRequest) -> None:
    peering_services.peering_request_decommission(actor=demo_world["users"]["fiona"], request_id=active_request.pk)
    assert runner.run(str(active_request.pk), "decommission") == "done"
    assert PeeringRequest.objects.get(pk=active_request.pk).status == "decommissioned"
    [note] = _notes(active_request.pk, "request.decommissioned")
    assert note.recipients == ["fiona@example.com"] and "decommissioned" in note.subject
    # Going through `decommissioning` is not news; only the end of it is.
    assert _notes(active_request.pk, "request.decommissioning") == []


# --- 6. the real worker ---------------------------------------------------------------------------
@pytest.fixture
def mail_worker(
    worker: WorkerProcess, worker_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[WorkerProcess, Path]]:
    """The session worker stopped; one that writes its mail to files takes its place."""
    worker.stop()
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    env = {
        **worker_env,
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(mail_dir),
    }
    mailer = WorkerProcess(env, tmp_path / "mail-worker.log", name="mail")
    mailer.start()
    yield mailer, mail_dir
    mailer.stop()
    if worker.proc is None or worker.proc.poll() is not None:
        worker.start()


def _mails(mail_dir: Path) -> list[email.message.Message]:
    """Every message the file backend wrote (several a file, each followed by a line of dashes)."""
    messages = []
    for path in sorted(mail_dir.iterdir()):
        for chunk in path.read_text().split("\n" + "-" * 79 + "\n"):
            if chunk.strip():
                messages.append(email.message_from_string(chunk.lstrip("\n")))
    return messages


def _subject(message: email.message.Message) -> str:
    """The Subject as a person reads it (a non-ASCII one travels as RFC 2047 encoded words)."""
    return str(email.header.make_header(email.header.decode_header(message["Subject"])))


def _text(message: email.message.Message) -> str:
    payload = message.get_payload(decode=True)
    return payload.decode(message.get_content_charset() or "utf-8") if isinstance(payload, bytes) else str(payload)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_worker_emails_the_requester_when_the_peering_is_active(
    mail_worker: tuple[WorkerProcess, Path], demo_world: dict[str, Any], api: Any
) -> None:
    _, mail_dir = mail_worker
    filed = _file(api, demo_world["vpcs"], external_ref="INC0042")
    response = api("nina").post(f"{URL}{filed['id']}/approve/", {"comment": "ok"}, format="json")
    assert response.status_code == 200, response.json()
    done = wait_for_status(filed["id"], {"active", "failed"})
    assert done.status == "active", done.failure_reason

    deadline = time.monotonic() + 30
    rows = Notification.objects.filter(request_id=filed["id"])
    while rows.exclude(state=Notification.State.SENT).exists() and time.monotonic() < deadline:
        time.sleep(0.25)
    assert sorted(rows.values_list("event", "state")) == [
        ("request.active", "sent"),
        ("request.approved", "sent"),
        ("request.submitted", "sent"),
    ]

    to_fiona = [m for m in _mails(mail_dir) if m["To"] == "fiona@example.com"]
    active = [m for m in to_fiona if "is active" in _subject(m)]
    assert len(active) == 1, [_subject(m) for m in to_fiona]
    assert "INC0042" in _subject(active[0]) and "finance-app → services-use1" in _subject(active[0])
    body = _text(active[0])
    assert "Your peering request is active" in body and done.aws_peering_connection_id in body
    assert f"/requests/{filed['id']}/" in body
    to_owners = [m for m in _mails(mail_dir) if m["To"] == "nina@example.com, sam@example.com"]
    assert len(to_owners) == 1 and "INC0042" in _subject(to_owners[0])
