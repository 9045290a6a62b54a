"""The requester's pages: the dashboard, the new-request form with its live checks, a request's page and its actions."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypedDict

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from requests_app.core import errors
from requests_app.core.http import AuthenticatedHttpRequest
from requests_app.domain.status import WORK_IN_FLIGHT, Status
from requests_app.models import AuditEvent, PeeringRequest
from requests_app.peering import lifecycle, permissions, preflight
from requests_app.peering import selectors as peering_selectors
from requests_app.peering import services as peering_services
from requests_app.peering.filters import MAX_SEARCH, PeeringRequestFilter
from requests_app.web.forms import CommentForm, PeeringRequestForm


@login_required
def home(request: AuthenticatedHttpRequest) -> HttpResponse:
    mine = peering_selectors.requests_visible_to(request.user).filter(
        department_id__in=permissions.department_ids(request.user)
    )
    # The API's filters (status, q, external_ref, ...), with the page's answer to a bad one.
    params = request.GET.copy()
    params.setlist("status", [s for s in params.getlist("status") if s])  # the select's "any"
    found = PeeringRequestFilter(params, queryset=mine)
    if found.is_valid():
        qs = found.qs
    else:
        if "q" in found.errors:
            messages.error(request, f"Search for at most {MAX_SEARCH} characters.")
        else:
            messages.error(request, " ".join(f"{name}: {' '.join(errs)}" for name, errs in found.errors.items()))
        qs = mine.none()
    status = request.GET.get("status", "")
    query = request.GET.get("q", "").strip()
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    counts = dict(
        PeeringRequest.objects.filter(department_id__in=permissions.department_ids(request.user))
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    return render(
        request,
        "requests_app/home.html",
        {
            "page": page,
            "statuses": [s.value for s in Status],
            "status": status,
            "q": query,
            "counts": [(s, Status(s).label, counts[s]) for s in Status if counts.get(s)],
            "in_flight": {s.value for s in WORK_IN_FLIGHT},
        },
    )


@login_required
def request_new(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = PeeringRequestForm(request.POST or None, user=request.user)
    evaluation = None
    if request.method == "POST" and form.is_valid():
        draft = form.draft()
        if "check" in request.POST:
            evaluation = preflight.peering_request_evaluate(
                draft=draft, department_ids=permissions.department_ids(request.user), viewer=request.user
            )
        else:
            try:
                created = peering_services.peering_request_submit(actor=request.user, draft=draft)
            except preflight.ChecksFailed as exc:
                evaluation = exc.evaluation or preflight.peering_request_evaluate(
                    draft=draft, department_ids=permissions.department_ids(request.user), viewer=request.user
                )
                messages.error(request, f"The request was not filed: {exc.detail}")
            except errors.PortalError as exc:  # a field the rules refuse before any check runs
                messages.error(request, f"The request was not filed: {exc.detail}")
            else:
                messages.success(request, "Request filed; the peer VPC's owners have been asked to approve it.")
                return redirect("request-detail", pk=created.pk)
    return render(request, "requests_app/request_new.html", {"form": form, "evaluation": evaluation})


@login_required
@require_POST
def request_check(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The form's live checks (htmx): checks, plan and whether it can be filed, as the user types."""
    form = PeeringRequestForm(request.POST, user=request.user)
    form.is_valid()  # cleaned_data then holds every field that did validate
    draft = form.draft()
    evaluation = None
    blocked = ""
    # A field that did not validate is missing from the draft, and an empty route-table or
    # destination list means "all": checking without it would check a different request.
    invalid = {name: errors for name, errors in form.errors.items() if name != "justification"}
    if invalid:
        blocked = "; ".join(
            f"{form.fields[name].label}: {' '.join(map(str, errors))}" for name, errors in invalid.items()
        )
    elif draft.requester_vpc and draft.accepter_vpc:
        evaluation = preflight.peering_request_evaluate(
            draft=draft, department_ids=permissions.department_ids(request.user), viewer=request.user
        )
        blocked = "; ".join(c["code"] for c in evaluation.checks if c["status"] == "fail")
        if blocked:
            blocked = f"these checks fail: {blocked}"
    else:
        blocked = "choose your VPC and the peer VPC"
    if not blocked and not draft.justification:
        blocked = "write a justification"
    return render(request, "requests_app/_live_checks.html", {"evaluation": evaluation, "blocked": blocked})


def _visible_or_404(request: AuthenticatedHttpRequest, pk: uuid.UUID) -> PeeringRequest:
    try:
        return lifecycle.get_visible_request(request.user, pk)
    except errors.PortalError:
        raise Http404("No such peering request.") from None


@login_required
def request_detail(request: AuthenticatedHttpRequest, pk: uuid.UUID) -> HttpResponse:
    obj = _visible_or_404(request, pk)
    events = list(obj.events.order_by("id"))
    return render(
        request,
        "requests_app/request_detail.html",
        {
            "obj": obj,
            "events": events,
            "timeline": _timeline(obj, events),
            "actions": permissions.allowed_actions(request.user, obj),
            "in_flight": obj.status in WORK_IN_FLIGHT,
            "comment_form": CommentForm(),
        },
    )


@login_required
def request_watch(request: AuthenticatedHttpRequest, pk: uuid.UUID) -> HttpResponse:
    """Polled (htmx) by a request page waiting for a decision: when the status is no longer the
    one the page shows, tell htmx to reload the page. Nothing else on the page is replaced, so a
    comment being typed is never lost while nothing has changed."""
    obj = _visible_or_404(request, pk)
    response = HttpResponse(status=200)
    if obj.status != request.GET.get("status"):
        response["HX-Refresh"] = "true"
    return response


# The path a request normally takes, for the timeline at the top of its page.
_HAPPY_PATH = (Status.PENDING_APPROVAL, Status.APPROVED, Status.PROVISIONING, Status.ACTIVE)


class TimelineStep(TypedDict):
    """One state on a request's timeline: entered (when, by whom) or still ahead."""

    status: str
    label: str
    at: datetime | None
    by: str
    done: bool
    current: bool


def _timeline(obj: PeeringRequest, events: list[AuditEvent]) -> list[TimelineStep]:
    """Every state the request entered (when, who), then the states still ahead on the usual path."""
    entered: list[TimelineStep] = [
        {
            "status": e.to_status,
            "label": Status(e.to_status).label,
            "at": e.created_at,
            "by": e.actor_label,
            "done": True,
            "current": False,
        }
        for e in events
        if e.to_status
    ]
    if entered:
        entered[-1]["current"] = True
    ahead: list[TimelineStep] = []
    if obj.status in _HAPPY_PATH:
        ahead = [
            {"status": s.value, "label": s.label, "at": None, "by": "", "done": False, "current": False}
            for s in _HAPPY_PATH[_HAPPY_PATH.index(Status(obj.status)) + 1 :]
        ]
    return entered + ahead


# Each takes the actor and the request's id, and (approve, reject, cancel, decommission) a comment.
_ACTIONS: dict[str, Callable[..., PeeringRequest]] = {
    "approve": peering_services.peering_request_approve,
    "reject": peering_services.peering_request_reject,
    "cancel": peering_services.peering_request_cancel,
    "retry": peering_services.peering_request_retry,
    "decommission": peering_services.peering_request_decommission,
    "repair": peering_services.peering_request_repair,
}


@login_required
@require_POST
def request_action(request: AuthenticatedHttpRequest, pk: uuid.UUID, action: str) -> HttpResponse:
    use_case = _ACTIONS.get(action)
    if use_case is None:
        raise Http404
    kwargs: dict[str, Any] = {"actor": request.user, "request_id": pk}
    if action in ("approve", "reject", "cancel", "decommission"):
        kwargs["comment"] = request.POST.get("comment", "")
    try:
        use_case(**kwargs)
    except errors.PortalError as exc:
        if exc.status == 404:
            raise Http404("No such peering request.") from None
        messages.error(request, f"Could not {action}: {exc.detail}")
    else:
        messages.success(request, f"Done: {action}.")
    # Only named pages, never a caller-supplied URL (no open redirect).
    if request.POST.get("next") == "approvals":
        return redirect("approvals")
    return redirect("request-detail", pk=pk)
