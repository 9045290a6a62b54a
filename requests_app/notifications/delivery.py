"""Sending one outbox e-mail: claimed so two deliveries of one message send it once."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from django.core.mail import EmailMessage
from django.db.models import F, Q
from django.utils import timezone

from requests_app.models import Notification

logger = logging.getLogger(__name__)

# A message never tried within this long lost its task (the broker was down at commit, or the
# worker died): the sweeper sends it again.
NOTIFICATION_RESEND_AFTER_SECONDS = 120
NOTIFICATION_MAX_ATTEMPTS = 5
NOTIFICATION_MAX_BACKOFF_SECONDS = 600

State = Literal["sent", "failed", "retry", "not_pending", "claimed_elsewhere"]


@dataclass(frozen=True)
class Attempt:
    state: State
    error: Exception | None = None


def attempt(notification_id: int) -> Attempt:
    """One attempt at sending one message; `retry` means the caller schedules another."""
    note = Notification.objects.filter(pk=notification_id, state=Notification.State.PENDING).first()
    if note is None:
        return Attempt("not_pending")  # sent already (a duplicate delivery), or given up
    # Claim this attempt: of two deliveries of one message (a redelivery and the sweeper's), one sends.
    claimed = Notification.objects.filter(pk=note.pk, state=Notification.State.PENDING, attempts=note.attempts).update(
        attempts=F("attempts") + 1, last_attempt_at=timezone.now()
    )
    if not claimed:
        return Attempt("claimed_elsewhere")
    try:
        EmailMessage(note.subject, note.body, to=note.recipients).send()
    except Exception as exc:
        error = f"{exc.__class__.__name__}: {exc}"[:2000]
        if note.attempts + 1 >= NOTIFICATION_MAX_ATTEMPTS:
            Notification.objects.filter(pk=note.pk).update(state=Notification.State.FAILED, last_error=error)
            logger.error("notification %s given up after %d attempts: %s", note.pk, note.attempts + 1, error)
            return Attempt("failed", exc)
        Notification.objects.filter(pk=note.pk).update(last_error=error)
        return Attempt("retry", exc)
    Notification.objects.filter(pk=note.pk).update(state=Notification.State.SENT, sent_at=timezone.now())
    return Attempt("sent")


def retry_in(retries: int) -> float:
    """Seconds before the next attempt: doubling from ten, at most NOTIFICATION_MAX_BACKOFF_SECONDS."""
    return float(min(NOTIFICATION_MAX_BACKOFF_SECONDS, 10 * 2**retries))


def lost(limit: int = 500) -> list[int]:
    """Pending messages whose task was lost: never tried within a couple of minutes, or whose
    last try is older than any backoff."""
    now = timezone.now()
    return list(
        Notification.objects.filter(state=Notification.State.PENDING)
        .filter(
            Q(attempts=0, created_at__lt=now - timedelta(seconds=NOTIFICATION_RESEND_AFTER_SECONDS))
            | Q(last_attempt_at__lt=now - timedelta(seconds=NOTIFICATION_MAX_BACKOFF_SECONDS * 2))
        )
        .values_list("pk", flat=True)[:limit]
    )
