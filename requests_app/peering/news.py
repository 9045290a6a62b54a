"""What happened to a request, told to whoever asked to hear it: people by email, systems by webhook.

Called inside the transaction that makes the change: both write outbox rows, so the news
commits or rolls back with the change and is sent by a worker after commit.
"""

from __future__ import annotations

from requests_app.audit import AuditAction
from requests_app.integrations import webhooks
from requests_app.models import Finding, PeeringRequest
from requests_app.notifications import outbox as notifications


def request_filed(request: PeeringRequest) -> None:
    notifications.request_filed(request)
    webhooks.queue(request, "peering_request.submitted")


def status_changed(
    request: PeeringRequest, status: str, message: str = "", *, action: AuditAction | None = None
) -> None:
    notifications.status_changed(request, status, message, action=action)
    # A retry re-enters `approved`; integrations hear it as a retry, not as a second approval.
    webhooks.queue(
        request, "peering_request.retried" if action == AuditAction.REQUEST_RETRIED else f"peering_request.{status}"
    )


def drift_changed(request: PeeringRequest, findings: list[Finding]) -> None:
    if findings:
        notifications.drift_found(request, findings)
    webhooks.queue(request, "peering_request.drift_detected" if findings else "peering_request.drift_cleared")


def request_adopted(request: PeeringRequest) -> None:
    # Nobody is asked to decide anything: integrations hear of it, people see it in the portal.
    webhooks.queue(request, "peering_request.adopted")
