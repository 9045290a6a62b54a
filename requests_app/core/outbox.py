"""Work for a worker, sent by task name once the transaction that asked for it commits.

Producers name their consumer, as Zulip's `queue_event_on_commit` names a queue: the use cases,
the outboxes and the saga send a task by its name and never import the task module, which only
the worker loads (and which imports them). A task's name is its contract with messages already in
the broker and with beat's schedule: `requests_app.tasks` gives each task its `name=` from here.
"""

from __future__ import annotations

import logging

from celery import current_app
from django.db import transaction

logger = logging.getLogger(__name__)

PROVISION = "requests_app.tasks.provision_peering_request"
DECOMMISSION = "requests_app.tasks.decommission_peering_request"
REPAIR = "requests_app.tasks.repair_peering_request"
RECONCILE = "requests_app.tasks.reconcile_peering_request"
RECONCILE_ALL = "requests_app.tasks.reconcile_active_requests"
SWEEP = "requests_app.tasks.sweep_stuck_work"
ANCHOR_AUDIT = "requests_app.tasks.anchor_audit_chain"
DELIVER_WEBHOOK = "requests_app.tasks.deliver_webhook"
DELIVER_NOTIFICATION = "requests_app.tasks.deliver_notification"

Argument = str | int


def send(task_name: str, *args: Argument, countdown: float | None = None) -> None:
    """Send a task now: for callers outside a transaction (the sweeper, a task's own follow-up)."""
    current_app.send_task(task_name, args=args, countdown=countdown)


def enqueue_on_commit(task_name: str, *args: Argument, countdown: float | None = None) -> None:
    """Send a task once the current transaction commits; nothing is sent if it rolls back.

    If the broker is down at that moment, the change still stands and the error is logged: the
    sweeper sends the work later (every outbox row and every queued request carries what it needs).
    """

    def go() -> None:
        try:
            send(task_name, *args, countdown=countdown)
        except Exception:
            logger.exception("could not send %s%s; the sweeper will retry", task_name, args)

    transaction.on_commit(go)
