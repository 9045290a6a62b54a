"""Email to the people a change concerns, through an outbox written with the change.

Who hears what: the accepter VPC's owners when a request is filed (they decide it); the
requester when it is approved, rejected, completed, failed, expired or decommissioned, and
when drift is found. The mail is composed here, in the same transaction as the change, and a
worker sends it after commit (the task named `outbox.DELIVER_NOTIFICATION`); the sweeper resends any
that stayed pending.
"""

from __future__ import annotations

import logging

from requests_app.audit import AuditAction
from requests_app.core import outbox
from requests_app.domain.text import one_line
from requests_app.models import Finding, Notification, PeeringRequest

logger = logging.getLogger(__name__)

# Status a request moved to -> (subject line, who hears of it)
_STATUS_NEWS = {
    "approved": "was approved by {decided_by}",
    "rejected": "was rejected by {decided_by}",
    "active": "is active: traffic can flow",
    "failed": "failed",
    "expired": "expired without a decision",
    "decommissioned": "was decommissioned",
}


def _pair(request: PeeringRequest) -> str:
    return f"{request.requester_vpc.name or request.requester_vpc.vpc_id} → {request.accepter_vpc.name or request.accepter_vpc.vpc_id}"


def _summary(request: PeeringRequest) -> str:
    lines = [
        f"Requester VPC: {request.requester_vpc.label} ({request.requester_vpc.region})",
        f"Peer VPC:      {request.accepter_vpc.label} ({request.accepter_vpc.region})",
        f"Filed by:      {request.requested_by.username} ({request.department.name})",
    ]
    if request.external_ref:
        lines.append(f"Ticket:        {request.external_ref}")
    if request.aws_peering_connection_id:
        lines.append(f"Connection:    {request.aws_peering_connection_id}")
    lines.append(f"Status:        {request.status}")
    return "\n".join(lines)


def _queue(request: PeeringRequest, event: str, recipients: list[str], subject: str, text: str) -> None:
    recipients = sorted({address for address in recipients if address})
    if not recipients:
        return
    ref = f" [{request.external_ref}]" if request.external_ref else ""
    body = f"{text}\n\n{_summary(request)}\n\nSee the request: {request.portal_url}\n"
    note = Notification.objects.create(
        request=request,
        event=event,
        recipients=recipients,
        # A header: never a line break in it, even from a row stored before input was checked
        # (Django refuses to send such a message at all, so the mail would be lost).
        subject=one_line(f"Peering{ref}: {subject}")[:255],
        body=body,
    )
    outbox.enqueue_on_commit(outbox.DELIVER_NOTIFICATION, note.pk)


def request_filed(request: PeeringRequest) -> None:
    # An owner who filed the request cannot decide it (separation of duties): not asked.
    owners = [u.email for u in request.accepter_vpc.owners.all() if u.pk != request.requested_by_id]
    _queue(
        request,
        "request.submitted",
        owners,
        f"{_pair(request)} waits for your approval",
        f"{request.requested_by.username} ({request.department.name}) asks to peer with a VPC you own, "
        f"and waits for your decision.\n\nJustification: {request.justification}",
    )


def status_changed(
    request: PeeringRequest, status: str, message: str = "", *, action: AuditAction | None = None
) -> None:
    news = _STATUS_NEWS.get(status)
    if news is None or action == AuditAction.REQUEST_RETRIED:  # a retry re-enters `approved`: nobody decided anything
        return
    decided_by = request.decided_by.username if request.decided_by is not None else "an approver"
    headline = news.format(decided_by=decided_by)
    detail = request.failure_reason if status == "failed" else (message or request.decision_comment)
    text = f"Your peering request {headline}." + (f"\n\n{detail}" if detail else "")
    _queue(request, f"request.{status}", [request.requested_by.email], f"{_pair(request)} {headline}", text)


def drift_found(request: PeeringRequest, findings: list[Finding]) -> None:
    details = "\n".join(f"- {f['detail']}" for f in findings)
    _queue(
        request,
        "drift.found",
        [request.requested_by.email],
        f"{_pair(request)}: AWS no longer matches the approved peering",
        f"The reconciler found drift on your peering:\n{details}\n\n"
        "The peer VPC's owners can repair it from the request page.",
    )
