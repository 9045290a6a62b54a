"""Email notifications sent from the outbox after commit: each one once, a failed send counted and
retried until sent or given up, and the sweeper resending the ones whose enqueue was lost.

`deliver_notification` runs in this process, with the locmem mail backend (or a flaky one).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from requests_app import tasks
from requests_app.core import outbox
from requests_app.models import Notification
from requests_app.notifications import delivery
from tests.fixtures.outbox import SentTasks
from tests.fixtures.world import DemoWorld
from tests.notifications.notes import notes_of, outbox_row, submit


# --- 1. delivery ----------------------------------------------------------------------------------
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
    note = outbox_row(recipients=["fiona@example.com", "sam@example.com"])
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
    note = outbox_row()
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
    note = outbox_row()
    flaky.failures_left = 2
    # apply() runs the task's retries eagerly, one after the other.
    assert tasks.deliver_notification.apply(args=[note.pk]).get() == "sent"
    note.refresh_from_db()
    assert note.state == Notification.State.SENT and note.attempts == 3
    assert flaky.calls == 3 and len(mail.outbox) == 1


@pytest.mark.django_db
def test_delivery_gives_up_after_the_maximum_attempts(flaky: type[FlakyBackend]) -> None:
    note = outbox_row()
    flaky.failures_left = -1  # the mail server never answers
    assert tasks.deliver_notification.apply(args=[note.pk]).get() == "failed"
    note.refresh_from_db()
    assert note.state == Notification.State.FAILED
    assert note.attempts == delivery.NOTIFICATION_MAX_ATTEMPTS == flaky.calls
    assert "refused the connection" in note.last_error and note.sent_at is None
    # Given up means given up: another delivery does not try again.
    assert tasks.deliver_notification.apply(args=[note.pk]).get() == "not_pending"
    assert flaky.calls == delivery.NOTIFICATION_MAX_ATTEMPTS and mail.outbox == []


# --- 2. sweeper -----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_sweeper_resends_only_lost_pending_notifications(enqueued: list[Any]) -> None:
    now = timezone.now()
    window = timedelta(seconds=delivery.NOTIFICATION_RESEND_AFTER_SECONDS)
    stale_try = timedelta(seconds=delivery.NOTIFICATION_MAX_BACKOFF_SECONDS * 2)

    def row(age: timedelta, **fields: Any) -> int:
        note = outbox_row(**fields)
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
    demo_rows: DemoWorld, locmem: None, django_capture_on_commit_callbacks: Any, sent_tasks: SentTasks
) -> None:
    def broker_down(*args: Any, countdown: float | None = None) -> None:
        raise ConnectionError("broker unreachable")

    sent_tasks.handlers[outbox.DELIVER_NOTIFICATION] = broker_down
    with django_capture_on_commit_callbacks(execute=True):
        request = submit(demo_rows)  # the commit's enqueue fails, quietly
    [note] = notes_of(request.pk, "request.submitted")
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
