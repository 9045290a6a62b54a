"""The approver's dashboard: the queue, what needs attention, recent decisions, the hubs' capacity."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from requests_app.domain.status import Status
from requests_app.inventory import selectors as inventory_selectors
from requests_app.inventory import services as inventory_services
from requests_app.peering import permissions
from requests_app.peering import selectors as peering_selectors


@login_required
def approvals(request: HttpRequest) -> HttpResponse:
    owned = permissions.owned_vpc_ids(request.user)
    mine = peering_selectors.requests_visible_to(request.user).filter(accepter_vpc_id__in=owned)
    sla = timedelta(hours=settings.APPROVAL_SLA_HOURS)
    now = timezone.now()
    # Oldest first, 50 a page: the count of what waits is on the page, the rows are bounded.
    queue = Paginator(peering_selectors.approval_queue_for(request.user), 50).get_page(request.GET.get("page"))
    for r in queue:
        r.waited = now - r.created_at
        r.overdue = r.waited > sla
        r.check_summary = _check_summary(r.checks)
    return render(
        request,
        "requests_app/approvals.html",
        {
            "queue": queue,
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


def _check_summary(checks: list[dict[str, Any]]) -> dict[str, Any]:
    failing = [c for c in checks if c.get("status") == "fail"]
    warning = [c for c in checks if c.get("status") == "warn"]
    if failing:
        return {"kind": "fail", "text": f"{len(failing)} failing", "checks": failing + warning}
    if warning:
        return {"kind": "warn", "text": f"{len(warning)} warning{'s' if len(warning) > 1 else ''}", "checks": warning}
    return {"kind": "pass", "text": "all pass", "checks": []}
