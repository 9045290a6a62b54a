"""Thin Celery tasks: take ids, call the saga or a context's function, return quietly when done.

Only the worker loads this module. Producers send a task by the name it is given here (the
constants in `requests_app.core.outbox`), so a message already in the broker and beat's
schedule keep finding their task whatever module the code behind it lives in.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction

from requests_app import audit
from requests_app.aws.types import TransientAwsError
from requests_app.core import outbox
from requests_app.core.scheduler import record_run
from requests_app.integrations import webhooks
from requests_app.notifications import delivery
from requests_app.peering import drift, lifecycle
from requests_app.peering.saga import runner, sweeper

logger = logging.getLogger(__name__)

OPERATION_TASK = {"provision": outbox.PROVISION, "decommission": outbox.DECOMMISSION}


def _backoff(retries: int) -> float:
    """Exponential backoff with full jitter, capped at two minutes."""
    return random.uniform(0, min(120.0, 2.0 ** (retries + 1)))


def _run_with_retries(task: Task[Any, Any], request_id: str, operation: str) -> None:
    try:
        outcome = runner.run(request_id, operation, first_delivery=task.request.retries == 0)
    except (OperationalError, InterfaceError) as exc:
        # The database went away under us (restart, failover, a killed connection): drop the
        # dead connection and try again; every step looks before it acts, so nothing repeats.
        logger.warning("database error on %s %s, retrying: %s", operation, request_id, exc)
        connection.close()
        raise task.retry(exc=exc, countdown=_backoff(task.request.retries), max_retries=10) from None
    except TransientAwsError as exc:
        if task.request.retries >= settings.PROVISIONING_MAX_RETRIES:
            runner.give_up(request_id, operation, exc)
            return
        logger.warning("transient AWS error on %s %s, retrying: %s", operation, request_id, exc)
        raise task.retry(exc=exc, countdown=_backoff(task.request.retries)) from None
    if outcome == "leased":
        # Another worker holds it: look again once its lease could have run out, rather than
        # dropping the message and waiting for the sweeper.
        raise task.retry(countdown=min(60, settings.WORK_LEASE_SECONDS), max_retries=20)


@shared_task(name=outbox.PROVISION, bind=True, acks_late=True, max_retries=None)
def provision_peering_request(self: Task[Any, Any], request_id: str) -> None:
    _run_with_retries(self, request_id, "provision")


@shared_task(name=outbox.DECOMMISSION, bind=True, acks_late=True, max_retries=None)
def decommission_peering_request(self: Task[Any, Any], request_id: str) -> None:
    _run_with_retries(self, request_id, "decommission")


@shared_task(name=outbox.REPAIR, bind=True, acks_late=True, max_retries=None)
def repair_peering_request(self: Task[Any, Any], request_id: str) -> None:
    _run_with_retries(self, request_id, "repair")


@shared_task(name=outbox.SWEEP)
def sweep_stuck_work() -> dict[str, int]:
    """Send again the work nobody is doing: saga work whose lease ran out or that was never picked
    up (see peering/saga/sweeper.py), and notifications and webhook deliveries whose task was lost."""
    stuck = sweeper.take_stuck()
    for operation, request_id in stuck:
        outbox.send(OPERATION_TASK[operation], request_id)
    if stuck:
        logger.info("sweeper re-enqueued %d stuck request(s)", len(stuck))
    lost = delivery.lost()
    for pk in lost:
        outbox.send(outbox.DELIVER_NOTIFICATION, pk)
    # Webhook deliveries overdue by a minute: their task was lost, or its worker died mid-send.
    overdue = webhooks.overdue(grace_seconds=60)
    for pk in overdue:
        outbox.send(outbox.DELIVER_WEBHOOK, pk)
    record_run("sweep")
    return {"re_enqueued": len(stuck), "notifications_resent": len(lost), "webhooks_resent": len(overdue)}


@shared_task(name=outbox.DELIVER_WEBHOOK, acks_late=True)
def deliver_webhook(delivery_id: int) -> str:
    """One attempt at one webhook delivery; a failure schedules the next attempt with backoff."""
    outcome = webhooks.attempt(delivery_id)
    if outcome.state == "retry":
        outbox.send(outbox.DELIVER_WEBHOOK, delivery_id, countdown=outcome.retry_in)
    return outcome.state


@shared_task(
    name=outbox.DELIVER_NOTIFICATION, bind=True, acks_late=True, max_retries=delivery.NOTIFICATION_MAX_ATTEMPTS - 1
)
def deliver_notification(self: Task[Any, Any], notification_id: int) -> str:
    """Send one outbox email; retried with backoff, given up (state `failed`) after a few attempts."""
    outcome = delivery.attempt(notification_id)
    if outcome.state == "retry":
        raise self.retry(exc=outcome.error, countdown=delivery.retry_in(self.request.retries))
    return outcome.state


@shared_task(name=outbox.ANCHOR_AUDIT, ignore_result=True)
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


@shared_task(name=outbox.RECONCILE_ALL)
def reconcile_active_requests() -> dict[str, int]:
    """Fan out one reconcile task per active peering, and expire stale approvals."""
    ids = drift.active_request_ids()
    for pk in ids:
        outbox.send(outbox.RECONCILE, pk)
    expired = lifecycle.expire_pending(settings.PENDING_APPROVAL_TTL_SECONDS)
    record_run("reconcile")
    return {"reconciling": len(ids), "expired": expired}


@shared_task(name=outbox.RECONCILE, bind=True, acks_late=True, max_retries=3)
def reconcile_peering_request(self: Task[Any, Any], request_id: str) -> None:
    try:
        drift.reconcile(request_id)
    except TransientAwsError as exc:
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from None
