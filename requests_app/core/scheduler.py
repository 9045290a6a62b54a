"""When each periodic job last ran, as a worker recorded it: what /healthz and /metrics read."""

from __future__ import annotations

from django.utils import timezone

from requests_app.models import SchedulerRun


def record_run(job: str) -> None:
    """A periodic job ran to its end, here and now: /healthz and /metrics read it."""
    SchedulerRun.objects.update_or_create(name=job, defaults={"last_run_at": timezone.now()})
