"""/healthz: the database, the broker and the scheduler (beat running the sweeper), each named.

(With a real beat process stopped: tests/system/test_faults.py.)"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from requests_app import tasks


@pytest.mark.django_db
def test_healthz_reports_database_and_broker(client: Client) -> None:
    tasks.sweep_stuck_work()  # what beat and a worker do every SWEEP_INTERVAL_SECONDS
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    assert response.json()["database"] == "ok" and response.json()["broker"] == "ok"
    assert response.json()["scheduler"] == "ok"


@pytest.mark.django_db
def test_healthz_is_degraded_naming_the_scheduler_when_sweeps_stop(client: Client, settings: Any) -> None:
    from requests_app.models import SchedulerRun

    stopped = timezone.now() - timedelta(seconds=2 * settings.SWEEP_INTERVAL_SECONDS + 1)
    SchedulerRun.objects.create(name="sweep", last_run_at=stopped)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["scheduler"].startswith("down: the last sweep ran")
    assert "is beat running?" in response.json()["scheduler"]
    assert response.json()["database"] == "ok"  # only the scheduler is named
