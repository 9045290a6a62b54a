"""Prometheus metrics at /metrics, computed from the database at scrape time.

Web, worker and beat are separate processes (often on separate hosts); reading the shared
database is what lets one scrape describe all of them.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count, Max, Min
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from requests_app.audit import AuditAction
from requests_app.domain.status import Status
from requests_app.models import AuditEvent, PeeringRequest, SchedulerRun

DURATION_BUCKETS = (5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, float("inf"))


class PortalCollector:
    def collect(self) -> Iterator[Metric]:
        counts = dict(PeeringRequest.objects.values_list("status").annotate(n=Count("pk")).order_by())
        requests = GaugeMetricFamily("peering_requests", "Peering requests by status.", labels=["status"])
        for status in Status:
            requests.add_metric([status.value], counts.get(status.value, 0))
        yield requests

        drifted = PeeringRequest.objects.filter(status=Status.ACTIVE, drift__isnull=False).count()
        yield GaugeMetricFamily("peering_drifted_requests", "Active peerings whose AWS state drifted.", value=drifted)

        calls = CounterMetricFamily(
            "peering_aws_calls",
            "AWS calls made by provisioning, by operation and outcome.",
            labels=["operation", "result", "error_code"],
        )
        rows = (
            AuditEvent.objects.filter(action=AuditAction.AWS_CALL)
            .exclude(result="started")
            .values_list("operation", "result", "error_code")
            .annotate(n=Count("pk"))
            .order_by()
        )
        for operation, result, error_code, n in rows:
            calls.add_metric([operation, result, error_code], n)
        yield calls

        yield self._provisioning_durations()

        ages = GaugeMetricFamily(
            "peering_scheduler_last_run_age_seconds",
            "Seconds since each periodic job (sweep, reconcile) last ran; it grows when beat or the workers stop.",
            labels=["job"],
        )
        now = timezone.now()
        for job, at in SchedulerRun.objects.values_list("name", "last_run_at"):
            ages.add_metric([job], (now - at).total_seconds())
        yield ages

    def _provisioning_durations(self) -> HistogramMetricFamily:
        """From the first provisioning.started to the last provisioning.completed of each request."""
        started = dict(
            AuditEvent.objects.filter(action=AuditAction.PROVISIONING_STARTED)
            .values_list("request_id")
            .annotate(at=Min("created_at"))
            .order_by()
        )
        completed = (
            AuditEvent.objects.filter(action=AuditAction.PROVISIONING_COMPLETED)
            .values_list("request_id")
            .annotate(at=Max("created_at"))
            .order_by()
        )
        durations = [(at - started[rid]).total_seconds() for rid, at in completed if rid in started]
        buckets = [(str(le), sum(1 for d in durations if d <= le)) for le in DURATION_BUCKETS]
        buckets[-1] = ("+Inf", len(durations))
        return HistogramMetricFamily(
            "peering_provisioning_seconds",
            "Time from the start of provisioning to active.",
            buckets=buckets,
            sum_value=sum(durations),
        )
