"""The approver's dashboard: the queue, what needs attention, recent decisions, the hubs' capacity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TypedDict

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone

from requests_app.core.http import AuthenticatedHttpRequest
from requests_app.domain.checks import CheckDict
from requests_app.domain.status import Status
from requests_app.inventory import selectors as inventory_selectors
from requests_app.inventory import services as inventory_services
from requests_app.models import PeeringRequest
from requests_app.peering import permissions
from requests_app.peering import selectors as peering_selectors


@login_required
def approvals(request: AuthenticatedHttpRequest) -> HttpResponse:
    owned = permissions.owned_vpc_ids(request.user)
    mine = peering_selectors.requests_visible_to(request.user).filter(accepter_vpc_id__in=owned)
    sla = timedelta(hours=settings.APPROVAL_SLA_HOURS)
    now = timezone.now()
    # Oldest first, 50 a page: the count of what waits is on the page, the rows are bounded.
    queue = Paginator(peering_selectors.approval_queue_for(request.user), 50).get_page(request.GET.get("page"))
    rows = [QueueRow(r, overdue=now - r.created_at > sla, check_summary=_check_summary(r.checks)) for r in queue]
    return render(
        request,
        "requests_app/approvals.html",
        {
            "queue": queue,
            "rows": rows,
            "own_pending": mine.filter(status=Status.PENDING_APPROVAL, requested_by=request.user)[:20],
            "attention": mine.filter(Q(status=Status.FAILED) | Q(status=Status.ACTIVE, drift__isnull=False)).order_by(
                "-updated_at"
            )[:50],
            "recent": mine.filter(decided_at__isnull=False).order_by("-decided_at")[:20],
            "is_approver": bool(owned),
            "sla_hours": settings.APPROVAL_SLA_HOURS,
            "capacities": inventory_services.capacities(list(inventory_selectors.hubs_owned_by(request.user))),
        },
    )


class CheckSummary(TypedDict):
    kind: str  # the worst status: fail, warn or pass
    text: str
    checks: list[CheckDict]  # the failing, then the warning ones


@dataclass(frozen=True)
class QueueRow:
    """A request in the approver's queue, with what the page says about it."""

    request: PeeringRequest
    overdue: bool  # waiting longer than APPROVAL_SLA_HOURS
    check_summary: CheckSummary


def _check_summary(checks: list[CheckDict]) -> CheckSummary:
    failing = [c for c in checks if c.get("status") == "fail"]
    warning = [c for c in checks if c.get("status") == "warn"]
    if failing:
        return {"kind": "fail", "text": f"{len(failing)} failing", "checks": failing + warning}
    if warning:
        return {"kind": "warn", "text": f"{len(warning)} warning{'s' if len(warning) > 1 else ''}", "checks": warning}
    return {"kind": "pass", "text": "all pass", "checks": []}
