"""Thin Celery tasks: take ids, call the saga or services, return quietly when work is done."""

from __future__ import annotations

import logging
import random
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from requests_app import audit, provisioning, webhooks
from requests_app.aws.gateway import TransientAwsError
from requests_app.domain.status import WORK_IN_FLIGHT, Status
from requests_app.lease import pickup_deadline
from requests_app.models import Notification, PeeringRequest, SchedulerRun

logger = logging.getLogger(__name__)


def _backoff(retries: int) -> float:
    """Exponential backoff with full jitter, capped at two minutes."""
    return random.uniform(0, min(120.0, 2.0 ** (retries + 1)))


def _run_with_retries(task, request_id: str, operation: str) -> None:  # type: ignore[no-untyped-def]
    try:
        outcome = provisioning.run(request_id, operation, first_delivery=task.request.retries == 0)
    except (OperationalError, InterfaceError) as exc:
        # The database went away under us (restart, failover, a killed connection): drop the
        # dead connection and try again; every step looks before it acts, so nothing repeats.
        logger.warning("database error on %s %s, retrying: %s", operation, request_id, exc)
        connection.close()
        raise task.retry(exc=exc, countdown=_backoff(task.request.retries), max_retries=10) from None
    except TransientAwsError as exc:
        if task.request.retries >= settings.PROVISIONING_MAX_RETRIES:
            provisioning.give_up(request_id, operation, exc)
            return
        logger.warning("transient AWS error on %s %s, retrying: %s", operation, request_id, exc)
        raise task.retry(exc=exc, countdown=_backoff(task.request.retries)) from None
    if outcome == "leased":
        # Another worker holds it: look again once its lease could have run out, rather than
        # dropping the message and waiting for the sweeper.
        raise task.retry(countdown=min(60, settings.WORK_LEASE_SECONDS), max_retries=20)


@shared_task(bind=True, acks_late=True, max_retries=None)
def provision_peering_request(self, request_id: str) -> None:  # type: ignore[no-untyped-def]
    _run_with_retries(self, request_id, "provision")


@shared_task(bind=True, acks_late=True, max_retries=None)
def decommission_peering_request(self, request_id: str) -> None:  # type: ignore[no-untyped-def]
    _run_with_retries(self, request_id, "decommission")


@shared_task(bind=True, acks_late=True, max_retries=None)
def repair_peering_request(self, request_id: str) -> None:  # type: ignore[no-untyped-def]
    _run_with_retries(self, request_id, "repair")


@shared_task
def sweep_stuck_work() -> dict[str, int]:
    """Send again the work nobody is doing: a dead worker's lease ran out, or queued work was not
    picked up in time (its message was lost: the broker was down, or died with a worker).

    One rule for both: in work, and `lease_expires_at` is past (see requests_app/lease.py). The
    deadline moves on as the work is sent, so each is sent at most once a lease, however long
    the queue.
    """
    now = timezone.now()
    stuck = PeeringRequest.objects.filter(status__in=list(WORK_IN_FLIGHT)).filter(
        Q(lease_expires_at__lt=now) | Q(lease_expires_at__isnull=True)
    )
    sent = 0
    for pk, status, deadline in stuck.values_list("pk", "status", "lease_expires_at"):
        # The dead owner is let go: if it was only stalled, its next call finds the lease gone.
        taken = PeeringRequest.objects.filter(pk=pk, status=status, lease_expires_at=deadline).update(
            lease_owner="", lease_expires_at=pickup_deadline()
        )
        if not taken:
            continue  # picked up or finished meanwhile
        task = decommission_peering_request if status == Status.DECOMMISSIONING else provision_peering_request
        task.delay(str(pk))
        sent += 1
    if sent:
        logger.info("sweeper re-enqueued %d stuck request(s)", sent)
    # Notifications whose task was lost (broker down at commit, worker died mid-send).
    # One never tried within a couple of minutes, or whose last try is older than any backoff.
    now = timezone.now()
    lost = Notification.objects.filter(state=Notification.State.PENDING).filter(
        Q(attempts=0, created_at__lt=now - timedelta(seconds=NOTIFICATION_RESEND_AFTER_SECONDS))
        | Q(last_attempt_at__lt=now - timedelta(seconds=NOTIFICATION_MAX_BACKOFF_SECONDS * 2))
    )
    resent = 0
    for pk in lost.values_list("pk", flat=True)[:500]:
        deliver_notification.delay(pk)
        resent += 1
    # Webhook deliveries overdue by a minute: their task was lost, or its worker died mid-send.
    overdue = webhooks.overdue(grace_seconds=60)
    for pk in overdue:
        deliver_webhook.delay(pk)
    record_run("sweep")
    return {"re_enqueued": sent, "notifications_resent": resent, "webhooks_resent": len(overdue)}


def record_run(job: str) -> None:
    """A periodic job ran to its end, here and now: /healthz and /metrics read it."""
    SchedulerRun.objects.update_or_create(name=job, defaults={"last_run_at": timezone.now()})


@shared_task(acks_late=True)
def deliver_webhook(delivery_id: int) -> str:
    """One attempt at one webhook delivery; a failure schedules the next attempt with backoff."""
    outcome = webhooks.attempt(delivery_id)
    if outcome.state == "retry":
        deliver_webhook.apply_async((delivery_id,), countdown=outcome.retry_in)
    return outcome.state


NOTIFICATION_RESEND_AFTER_SECONDS = 120
NOTIFICATION_MAX_ATTEMPTS = 5
NOTIFICATION_MAX_BACKOFF_SECONDS = 600


@shared_task(bind=True, acks_late=True, max_retries=NOTIFICATION_MAX_ATTEMPTS - 1)
def deliver_notification(self, notification_id: int) -> str:  # type: ignore[no-untyped-def]
    """Send one outbox email; retried with backoff, given up (state `failed`) after a few attempts."""
    from django.core.mail import EmailMessage

    note = Notification.objects.filter(pk=notification_id, state=Notification.State.PENDING).first()
    if note is None:
        return "not_pending"  # sent already (a duplicate delivery), or given up
    # Claim this attempt: of two deliveries of one message (a redelivery and the sweeper's), one sends.
    claimed = Notification.objects.filter(pk=note.pk, state=Notification.State.PENDING, attempts=note.attempts).update(
        attempts=F("attempts") + 1, last_attempt_at=timezone.now()
    )
    if not claimed:
        return "claimed_elsewhere"
    try:
        EmailMessage(note.subject, note.body, to=note.recipients).send()
    except Exception as exc:
        error = f"{exc.__class__.__name__}: {exc}"[:2000]
        if note.attempts + 1 >= NOTIFICATION_MAX_ATTEMPTS:
            Notification.objects.filter(pk=note.pk).update(state=Notification.State.FAILED, last_error=error)
            logger.error("notification %s given up after %d attempts: %s", note.pk, note.attempts + 1, error)
            return "failed"
        Notification.objects.filter(pk=note.pk).update(last_error=error)
        raise self.retry(
            exc=exc, countdown=min(NOTIFICATION_MAX_BACKOFF_SECONDS, 10 * 2**self.request.retries)
        ) from exc
    Notification.objects.filter(pk=note.pk).update(state=Notification.State.SENT, sent_at=timezone.now())
    return "sent"


@shared_task(ignore_result=True)
def anchor_audit_chain() -> None:
    """Sign the audit chain's head; publish it (log, file, database) and to `audit.anchored` webhooks."""
    try:
        signed = audit.anchor()
    except audit.AnchorRefused as refused:
        # The history no longer matches the last anchor: an operator must look (manage.py verify_audit).
        logger.error("audit chain not anchored: %s", refused)
        return
    with transaction.atomic():
        webhooks.queue_event("audit.anchored", audit.anchor_payload(signed))


@shared_task
def reconcile_active_requests() -> dict[str, int]:
    """Fan out one reconcile task per active peering, and expire stale approvals."""
    from requests_app import reconciler

    ids = list(PeeringRequest.objects.filter(status=Status.ACTIVE).values_list("pk", flat=True))
    for pk in ids:
        reconcile_peering_request.delay(str(pk))
    expired = reconciler.expire_pending(settings.PENDING_APPROVAL_TTL_SECONDS)
    record_run("reconcile")
    return {"reconciling": len(ids), "expired": expired}


@shared_task(bind=True, acks_late=True, max_retries=3)
def reconcile_peering_request(self, request_id: str) -> None:  # type: ignore[no-untyped-def]
    from requests_app import reconciler

    try:
        reconciler.reconcile(request_id)
    except TransientAwsError as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from None
