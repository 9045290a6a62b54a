"""Health and metrics: what operators and their monitoring read."""

from __future__ import annotations

import hmac
import time

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from peering_portal.celery import app
from requests_app.models import SchedulerRun
from requests_app.web.metrics import PortalCollector


def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database and the broker answer; 503 naming what is down."""

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
