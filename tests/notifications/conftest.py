"""Fixtures of the notification tests: mail kept in memory, and the deliveries sent to the broker."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail

from requests_app.core import outbox
from tests.fixtures.outbox import SentTasks

LOCMEM = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def locmem(settings: Any) -> None:
    settings.EMAIL_BACKEND = LOCMEM
    mail.outbox = []


@pytest.fixture
def enqueued(sent_tasks: SentTasks) -> list[Any]:
    """Ids of the notifications sent for delivery, kept here instead of the broker."""
    return sent_tasks.ids[outbox.DELIVER_NOTIFICATION]
