"""Running one saga operation for a request: provision, decommission or repair.

`run` is what the worker's tasks call. It claims the request's lease (another worker holding it
answers "leased"), counts the delivery, keeps the lease alive with a heartbeat while the saga
works, and always lets go. `give_up` ends a request whose transient AWS errors outlasted every
retry.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db.models import F

from requests_app import audit
from requests_app.audit import AuditAction
from requests_app.aws.types import PermanentAwsError
from requests_app.core import logs
from requests_app.domain.status import Status
from requests_app.models import PeeringRequest
from requests_app.peering import drift
from requests_app.peering.saga.base import WORK_STATES, LeaseLost, SagaFailure
from requests_app.peering.saga.lease import Heartbeat
from requests_app.peering.saga.provision import Provisioning

logger = logging.getLogger(__name__)


class Saga(Provisioning):
    """The whole saga for one request: provisioning, teardown and repair."""

    def repair(self) -> None:
        if self.request.status != Status.ACTIVE or not self.request.aws_peering_connection_id:
            return
        connection_id = self.request.aws_peering_connection_id
        info = self.wait_visible(connection_id)
        if info.is_gone:
            audit.record(
                action=AuditAction.REPAIR_REFUSED,
                actor_label=self.label,
                request=self.request,
                message=f"{connection_id} is {info.status}; the portal never silently recreates a connection",
            )
            return
        try:
            self.ensure_routes(connection_id)
        except (SagaFailure, PermanentAwsError) as exc:
            audit.record(
                action=AuditAction.REPAIR_FAILED, actor_label=self.label, request=self.request, message=str(exc)
            )
            return
        audit.record(action=AuditAction.REPAIR_COMPLETED, actor_label=self.label, request=self.request)

        drift.reconcile(self.request.pk, self.gateway)  # what drift is left, if any


def run(request_id: str, operation: str, *, first_delivery: bool = True) -> str:
    """Run one saga operation for a request, if it is due and no other worker holds it.

    Returns "done", "not_needed" (the request is not in a state this operation works on: a
    stale or duplicate message), "leased" (another worker holds it) or "missing".
    """
    with logs.bound(request_id):
        return _run(request_id, operation, first_delivery)


def _run(request_id: str, operation: str, first_delivery: bool) -> str:
    try:
        saga = Saga(request_id)
    except PeeringRequest.DoesNotExist:
        logger.warning("request %s does not exist; dropping %s", request_id, operation)
        return "missing"
    if saga.request.status not in WORK_STATES[operation]:
        logger.info("request %s is %s; nothing to %s", request_id, saga.request.status, operation)
        return "not_needed"
    if not saga.claim():
        logger.info("request %s is leased by %s; leaving it", request_id, saga.request.lease_owner)
        return "leased"
    try:
        saga.request = saga.load()  # what it is now that we hold it
        if saga.request.status not in WORK_STATES[operation]:
            return "not_needed"
        if operation != "repair" and first_delivery and too_many_deliveries(saga, operation):
            return "done"
        with Heartbeat(saga.request.pk, saga.label):
            getattr(saga, operation)()
        return "done"
    except LeaseLost as exc:
        logger.warning("%s", exc)
        return "leased"
    finally:
        saga.release()


def too_many_deliveries(saga: Saga, operation: str) -> bool:
    """Count this delivery before any work, in its own commit, so a task that kills its worker
    every time is still counted and ends `failed` for an operator instead of looping. Celery's
    own retries of a transient error are not new deliveries and are not counted."""
    PeeringRequest.objects.filter(pk=saga.request.pk).update(deliveries=F("deliveries") + 1)
    deliveries = PeeringRequest.objects.values_list("deliveries", flat=True).get(pk=saga.request.pk)
    if deliveries <= settings.MAX_TASK_DELIVERIES:
        return False
    saga.fail(
        operation,
        SagaFailure(
            "too_many_deliveries",
            f"the {operation} task was delivered {deliveries} times without finishing (a worker died "
            "during it each time); an operator should look at the worker logs before retrying",
        ),
    )
    return True


def give_up(request_id: str, operation: str, exc: Exception) -> None:
    """Transient errors outlasted every retry: undo and fail with the last error as the reason."""
    saga = Saga(request_id)
    if operation == "repair":
        # A repair changes nothing about the request's state: record it, never tear down.
        audit.record(
            action=AuditAction.REPAIR_FAILED,
            actor_label=saga.label,
            request=saga.request,
            message=f"AWS kept failing after every retry: {exc}",
        )
        return
    if saga.request.status not in WORK_STATES[operation] or not saga.claim():
        return
    try:
        saga.fail(operation, SagaFailure("retries_exhausted", f"AWS kept failing after every retry: {exc}"))
    finally:
        saga.release()
