"""The Celery app. Workers run `celery -A peering_portal worker`, beat `celery -A peering_portal beat`."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peering_portal.settings")

app = Celery("peering_portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _check_time_limits(**_: object) -> None:
    """A task that outlives the broker's visibility timeout is delivered twice while it runs."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout")  # seconds, on Redis only
    if isinstance(visibility, int | float) and visibility <= settings.CELERY_TASK_TIME_LIMIT:
        raise ImproperlyConfigured(
            f"CELERY_TASK_TIME_LIMIT ({settings.CELERY_TASK_TIME_LIMIT}s) must be below the broker's "
            f"visibility timeout ({visibility}s)"
        )
