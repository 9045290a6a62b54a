"""Work is sent by task name (core/outbox.py): every name a producer uses is a task the worker has,
and the names are those of the first release (messages in flight and beat's schedule keep them)."""

from __future__ import annotations

from typing import Any

import pytest
from celery import current_app
from django.conf import settings

from requests_app import tasks
from requests_app.core import outbox

FIRST_RELEASE_NAMES = {
    "requests_app.tasks.provision_peering_request",
    "requests_app.tasks.decommission_peering_request",
    "requests_app.tasks.repair_peering_request",
    "requests_app.tasks.reconcile_peering_request",
    "requests_app.tasks.reconcile_active_requests",
    "requests_app.tasks.sweep_stuck_work",
    "requests_app.tasks.anchor_audit_chain",
    "requests_app.tasks.deliver_webhook",
    "requests_app.tasks.deliver_notification",
}


def _names_in_outbox() -> set[str]:
    return {value for name, value in vars(outbox).items() if name.isupper() and isinstance(value, str)}


def test_every_name_a_producer_sends_is_a_registered_task_with_its_first_release_name() -> None:
    registered = {name for name in current_app.tasks if name.startswith("requests_app.")}
    assert _names_in_outbox() == FIRST_RELEASE_NAMES
    assert registered == FIRST_RELEASE_NAMES
    # Each task function carries its name explicitly: moving the code cannot change it.
    for name in FIRST_RELEASE_NAMES:
        assert getattr(tasks, name.rsplit(".", 1)[1]).name == name


def test_beat_schedules_only_registered_tasks() -> None:
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert scheduled <= set(current_app.tasks)
    assert scheduled == {outbox.SWEEP, outbox.RECONCILE_ALL, outbox.ANCHOR_AUDIT}


@pytest.mark.django_db(transaction=True)
def test_a_send_waits_for_the_commit_and_a_rollback_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.db import transaction

    sent: list[tuple[str, tuple[Any, ...]]] = []
    monkeypatch.setattr(current_app, "send_task", lambda name, args=(), countdown=None: sent.append((name, args)))
    with transaction.atomic():
        outbox.enqueue_on_commit(outbox.PROVISION, "a")
        assert sent == []
    assert sent == [(outbox.PROVISION, ("a",))]
    with pytest.raises(RuntimeError), transaction.atomic():
        outbox.enqueue_on_commit(outbox.PROVISION, "b")
        raise RuntimeError("rolled back")
    assert sent == [(outbox.PROVISION, ("a",))]


@pytest.mark.django_db(transaction=True)
def test_a_broker_down_at_commit_keeps_the_change_and_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from django.db import transaction

    def down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(current_app, "send_task", down)
    with transaction.atomic():
        outbox.enqueue_on_commit(outbox.DELIVER_WEBHOOK, 7)
    assert "could not send requests_app.tasks.deliver_webhook(7,)" in caplog.text
