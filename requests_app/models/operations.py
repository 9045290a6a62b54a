"""What operators watch: when each periodic job last ran."""

from __future__ import annotations

from django.db import models


class SchedulerRun(models.Model):
    """When each periodic job last ran, written by the worker that ran it.

    Beat only sends the jobs; a worker runs them. So a recent run proves both are alive, and
    /healthz and /metrics read these rows (web, worker and beat are separate processes).
    """

    name = models.CharField(max_length=50, primary_key=True)  # "sweep", "reconcile"
    last_run_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.last_run_at:%Y-%m-%d %H:%M:%S}"
