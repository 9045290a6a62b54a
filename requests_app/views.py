from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from requests_app import network, permissions, selectors, services
from requests_app.domain.status import WORK_IN_FLIGHT, Status
from requests_app.forms import AdoptForm, AuditFilterForm, CommentForm, PeeringRequestForm
from requests_app.models import AwsAccount, PeeringRequest, SchedulerRun


def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the broker answer; 503 naming what is down."""
    from peering_portal.celery import app

    report: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        report["database"] = "ok"
    except Exception as exc:
        report["database"] = f"down: {exc.__class__.__name__}"
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        report["broker"] = "ok"
    except Exception as exc:
        report["broker"] = f"down: {exc.__class__.__name__}"
    if report["database"] == "ok":
        report["scheduler"] = scheduler_health()
    report["aws_endpoint"] = settings.AWS_ENDPOINT_URL or "aws"
    healthy = all(
        report.get(part) == "ok" or report.get(part, "").startswith("starting")
        for part in ("database", "broker", "scheduler")
    )
    return JsonResponse(report, status=200 if healthy else 503)


# When this process started: a portal that has just started has not seen a sweep yet.
STARTED_AT = time.monotonic()


def scheduler_health() -> str:
    """Beat sends the sweep every SWEEP_INTERVAL_SECONDS and a worker runs it: one older than two
    intervals means beat (or every worker) stopped."""
    interval = settings.SWEEP_INTERVAL_SECONDS
    last = SchedulerRun.objects.filter(name="sweep").values_list("last_run_at", flat=True).first()
    if last is None:
        if time.monotonic() - STARTED_AT < 2 * interval + 60:
            return "starting: no sweep has run yet"
        return f"down: no sweep has run (expected every {interval} s; is beat running?)"
    age = (timezone.now() - last).total_seconds()
    if age > 2 * interval:
        return f"down: the last sweep ran {age:.0f} s ago (expected every {interval} s; is beat running?)"
    return "ok"


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics, for signed-in staff, and for `Authorization: Bearer <METRICS_TOKEN>` when
    that is set; METRICS_PUBLIC opens them to anyone. They tell how much the portal does and for
    whom (request counts by state, AWS calls and errors), which is not for every caller to read."""
    import hmac

    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

    from requests_app.metrics import PortalCollector

    user = request.user
    staff = user.is_authenticated and user.is_active and user.is_staff
    # As bytes: compare_digest refuses str with non-ASCII characters, which a caller may send.
    bearer = bool(settings.METRICS_TOKEN) and hmac.compare_digest(
        request.headers.get("Authorization", "").encode(), f"Bearer {settings.METRICS_TOKEN}".encode()
    )
    if not (settings.METRICS_PUBLIC or staff or bearer):
        needs = "a staff login or the bearer token" if settings.METRICS_TOKEN else "a staff login"
        response = HttpResponse(f"metrics need {needs}\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry()
    registry.register(PortalCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


MAX_SEARCH = 200  # characters of a search box


@login_required
def home(request: HttpRequest) -> HttpResponse:
    qs = selectors.requests_visible_to(request.user).filter(department_id__in=permissions.department_ids(request.user))
    status = request.GET.get("status", "")
    if status in {s.value for s in Status}:
        qs = qs.filter(status=status)
    query = request.GET.get("q", "").strip()
    if len(query) > MAX_SEARCH:
        # Longer than any name or ticket; SQLite also refuses LIKE patterns past 50,000 bytes.
        messages.error(request, f"Search for at most {MAX_SEARCH} characters.")
        qs = qs.none()
    elif query:
        qs = qs.filter(
            Q(external_ref__icontains=query)
            | Q(requester_vpc__name__icontains=query)
            | Q(accepter_vpc__name__icontains=query)
            | Q(aws_peering_connection_id__icontains=query)
        )
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
def request_new(request: HttpRequest) -> HttpResponse:
    form = PeeringRequestForm(request.POST or None, user=request.user)
    evaluation = None
    if request.method == "POST" and form.is_valid():
        draft = form.draft()
        if "check" in request.POST:
            evaluation = services.peering_request_evaluate(
                draft=draft, department_ids=permissions.department_ids(request.user), viewer=request.user
            )
        else:
            try:
                created = services.peering_request_submit(actor=request.user, draft=draft)
            except services.ChecksFailed as exc:
                evaluation = exc.evaluation or services.peering_request_evaluate(
                    draft=draft, department_ids=permissions.department_ids(request.user), viewer=request.user
                )
                messages.error(request, f"The request was not filed: {exc.detail}")
            except services.PortalError as exc:  # a field the rules refuse before any check runs
                messages.error(request, f"The request was not filed: {exc.detail}")
            else:
                messages.success(request, "Request filed; the peer VPC's owners have been asked to approve it.")
                return redirect("request-detail", pk=created.pk)
    return render(request, "requests_app/request_new.html", {"form": form, "evaluation": evaluation})


@login_required
@require_POST
def request_check(request: HttpRequest) -> HttpResponse:
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
        blocked = "; ".join(f"{form.fields[name].label}: {' '.join(errors)}" for name, errors in invalid.items())
    elif draft.requester_vpc and draft.accepter_vpc:
        evaluation = services.peering_request_evaluate(
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


def _visible_or_404(request: HttpRequest, pk: Any) -> Any:
    try:
        return services.get_visible_request(request.user, pk)
    except services.PortalError:
        raise Http404("No such peering request.") from None


@login_required
def request_detail(request: HttpRequest, pk: Any) -> HttpResponse:
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
def request_watch(request: HttpRequest, pk: Any) -> HttpResponse:
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


def _timeline(obj: PeeringRequest, events: list[Any]) -> list[dict[str, Any]]:
    """Every state the request entered (when, who), then the states still ahead on the usual path."""
    entered = [
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
    ahead: list[dict[str, Any]] = []
    if obj.status in _HAPPY_PATH:
        ahead = [
            {"status": s.value, "label": s.label, "at": None, "by": "", "done": False, "current": False}
            for s in _HAPPY_PATH[_HAPPY_PATH.index(Status(obj.status)) + 1 :]
        ]
    return entered + ahead


_ACTIONS = {
    "approve": services.peering_request_approve,
    "reject": services.peering_request_reject,
    "cancel": services.peering_request_cancel,
    "retry": services.peering_request_retry,
    "decommission": services.peering_request_decommission,
    "repair": services.peering_request_repair,
}


@login_required
@require_POST
def request_action(request: HttpRequest, pk: Any, action: str) -> HttpResponse:
    use_case = _ACTIONS.get(action)
    if use_case is None:
        raise Http404
    kwargs: dict[str, Any] = {"actor": request.user, "request_id": pk}
    if action in ("approve", "reject", "cancel", "decommission"):
        kwargs["comment"] = request.POST.get("comment", "")
    try:
        use_case(**kwargs)
    except services.PortalError as exc:
        if exc.status == 404:
            raise Http404("No such peering request.") from None
        messages.error(request, f"Could not {action}: {exc.detail}")
    else:
        messages.success(request, f"Done: {action}.")
    # Only named pages, never a caller-supplied URL (no open redirect).
    if request.POST.get("next") == "approvals":
        return redirect("approvals")
    return redirect("request-detail", pk=pk)


@login_required
def approvals(request: HttpRequest) -> HttpResponse:
    owned = permissions.owned_vpc_ids(request.user)
    mine = selectors.requests_visible_to(request.user).filter(accepter_vpc_id__in=owned)
    sla = timedelta(hours=settings.APPROVAL_SLA_HOURS)
    now = timezone.now()
    # Oldest first, 50 a page: the count of what waits is on the page, the rows are bounded.
    queue = Paginator(selectors.approval_queue_for(request.user), 50).get_page(request.GET.get("page"))
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
            "capacities": services.capacities(list(selectors.hubs_owned_by(request.user))),
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


@login_required
def topology(request: HttpRequest) -> HttpResponse:
    from django.core.cache import cache
    from django.template.loader import render_to_string
    from django.utils.safestring import mark_safe

    from requests_app.topology import topology_for, topology_version

    # Laying out hundreds of VPCs takes seconds, and the picture changes only when the data does:
    # the rendered picture is kept per user and data version (every change writes an audit event).
    key = f"topology:{request.user.pk}:{topology_version(request.user)}"
    body = cache.get(key)
    if body is None:
        body = render_to_string("requests_app/_topology_body.html", topology_for(request.user), request=request)
        cache.set(key, body, timeout=3600)
    # Capacity is read live (a few queries per hub), so it is not part of the cached picture.
    capacities = services.capacities(list(selectors.hubs_visible_to(request.user)))
    return render(request, "requests_app/topology.html", {"body": mark_safe(body), "capacities": capacities})


@login_required
def inventory(request: HttpRequest) -> HttpResponse:
    user = request.user
    vpcs = list(selectors.vpcs_visible_to(user).order_by("account__account_id", "region", "name"))
    # The routes as the portal knows them: the last sync plus its own work since (network.py).
    routes = network.routes_by_table(
        [table for vpc in vpcs for table in vpc.route_tables.all()],
        namer=services.ViewerNamer(user, permissions.department_ids(user)),
    )
    observed = list(selectors.observed_peerings_visible_to(user))
    adoptable = services.adoptable_by(user, observed)
    return render(
        request,
        "requests_app/inventory.html",
        {
            "accounts": AwsAccount.objects.select_related("department").order_by("account_id")
            if permissions.is_admin(user)
            else [],
            "vpcs": [
                {"vpc": vpc, "tables": [(table, routes[table.route_table_id]) for table in vpc.route_tables.all()]}
                for vpc in vpcs
            ],
            "observed": [(seen, seen.connection_id in adoptable) for seen in observed],
        },
    )


@login_required
@require_POST
def inventory_adopt(request: HttpRequest, connection_id: str) -> HttpResponse:
    """Adopt a peering found in AWS, as the API's adopt does (the same use case and rules)."""
    form = AdoptForm(request.POST)
    if not form.is_valid():
        messages.error(
            request,
            f"Could not adopt {connection_id}: "
            + " ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items()),
        )
        return redirect("inventory")
    try:
        adopted = services.observed_peering_adopt(actor=request.user, connection_id=connection_id, **form.cleaned_data)
    except services.PortalError as exc:
        if exc.status == 404:
            raise Http404("No such peering connection.") from None
        messages.error(request, f"Could not adopt {connection_id}: {exc.detail}")
        return redirect("inventory")
    messages.success(request, f"Adopted {connection_id}: the portal manages it from now on.")
    return redirect("request-detail", pk=adopted.pk)


@login_required
@require_POST
def inventory_sync(request: HttpRequest, account_id: str) -> HttpResponse:
    try:
        report = services.aws_account_sync(actor=request.user, account_id=account_id)
    except services.PortalError as exc:
        if exc.status in (403, 404):
            raise Http404("No such account.") from None
        messages.error(request, f"Sync of {account_id} failed: {exc.detail}")
    else:
        messages.success(
            request, f"Synced {account_id}: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in report.items())
        )
    return redirect("inventory")


@login_required
def audit_log(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    qs = form.filter(selectors.events_visible_to(request.user)).order_by("-id")
    page = Paginator(qs, 100).get_page(request.GET.get("page"))
    return render(request, "requests_app/audit.html", {"page": page, "form": form})


@login_required
def audit_export(request: HttpRequest, fmt: str) -> HttpResponse:
    """The filtered audit history as CSV or JSON Lines, hashes included, streamed oldest first."""
    from requests_app import audit

    form = AuditFilterForm(request.GET or None)
    qs = form.filter(selectors.events_visible_to(request.user)).order_by("id")
    lines = audit.export_csv(qs) if fmt == "csv" else audit.export_jsonl(qs)
    response = StreamingHttpResponse(lines, content_type="text/csv" if fmt == "csv" else "application/x-ndjson")
    response["Content-Disposition"] = f'attachment; filename="peering-audit.{fmt}"'
    return response
