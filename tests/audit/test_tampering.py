"""Audit events cannot be changed or deleted, and a changed or deleted one is named.

1. the ORM refuses every way of changing or deleting an event (and of deleting what one points at);
   on PostgreSQL a trigger refuses raw SQL too;
2. an event rewritten (on PostgreSQL past a disabled trigger, as the table's owner could) or
   deleted is named by `verify_chain`, `manage.py verify_audit` and the API.

(The keyed chain and its anchors against a rewrite of every hash: tests/audit/test_chain.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from rest_framework.test import APIClient

from requests_app import audit
from requests_app.integrations import tokens
from requests_app.models import (
    AuditChainHead,
    AuditEvent,
)
from tests.fixtures import ROOT
from tests.fixtures.processes import shared_database_url
from tests.fixtures.world import DEMO_PASSWORD

AUDIT_TABLE = "requests_app_auditevent"
TRIGGER = "requests_app_auditevent_append_only"


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


def _tamper(sql: str, params: list[Any] | None = None) -> None:
    """Raw SQL on the audit table, as an attacker with the table owner's rights would run it.

    On PostgreSQL that means disabling the append-only trigger around it (only a table owner
    can); on SQLite there is no trigger to get past.
    """
    with connection.cursor() as cursor:
        if _is_postgres():
            # ALTER TABLE refuses while this transaction's deferred FK checks are pending.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"ALTER TABLE {AUDIT_TABLE} DISABLE TRIGGER {TRIGGER}")
        try:
            cursor.execute(sql, params or [])
        finally:
            if _is_postgres():
                cursor.execute(f"ALTER TABLE {AUDIT_TABLE} ENABLE TRIGGER {TRIGGER}")


def _rows() -> list[dict[str, Any]]:
    return list(AuditEvent.objects.order_by("id").values())


def _manage(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def _test_db_env() -> dict[str, str]:
    """The environment for a `manage.py` process that shares this test's database."""
    from django.conf import settings

    return {
        **os.environ,
        "DATABASE_URL": shared_database_url(),
        "PORTAL_VAR_DIR": str(settings.VAR_DIR),
        "AUDIT_ANCHOR_FILE": str(settings.AUDIT_ANCHOR_FILE),  # this test's, not var/'s
    }


def _admin(user_model: Any) -> Any:
    """Verification over the API is for administrators."""
    return user_model.objects.create_superuser("security-admin", "security-admin@example.com", DEMO_PASSWORD)


def _client_with_key(user: Any, name: str = "security-test") -> tuple[APIClient, str]:
    _, key = tokens.issue(user, name)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client, key


# === 1. append-only =================================================================================
@pytest.mark.django_db
def test_the_orm_refuses_to_change_or_delete_audit_events(
    django_user_model: Any, seed_events: Callable[..., list[AuditEvent]]
) -> None:
    user = django_user_model.objects.create_user("auditor", password=DEMO_PASSWORD)
    audit.record(action="security.by_user", actor=user)
    seed_events(4)
    before = _rows()
    event = AuditEvent.objects.order_by("id")[1]

    event.message = "rewritten"
    attempts: dict[str, Callable[[], Any]] = {
        "save() of a changed event": event.save,
        "save(update_fields=...)": lambda: event.save(update_fields=["message"]),
        "delete() of an event": event.delete,
        "QuerySet.update()": lambda: AuditEvent.objects.filter(pk=event.pk).update(message="rewritten"),
        "QuerySet.update() of all": lambda: AuditEvent.objects.all().update(message="rewritten"),
        "QuerySet.delete()": lambda: AuditEvent.objects.filter(pk=event.pk).delete(),
        "QuerySet.delete() of all": lambda: AuditEvent.objects.all().delete(),
        "bulk_update()": lambda: AuditEvent.objects.bulk_update([event], ["message"]),
        "update_or_create()": lambda: AuditEvent.objects.update_or_create(pk=event.pk, defaults={"message": "x"}),
    }
    for name, attempt in attempts.items():
        with pytest.raises(ValidationError, match="append-only"), transaction.atomic():
            attempt()
        assert _rows() == before, f"{name} changed the audit trail"

    # Deleting what an event points at is refused too (PROTECT), so the event cannot lose its actor.
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError), transaction.atomic():
        user.delete()
    assert _rows() == before
    assert audit.verify_chain().ok


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgresql_refuses_raw_sql_updates_and_deletes_of_audit_events(
    seed_events: Callable[..., list[AuditEvent]],
) -> None:
    seed_events(4)
    before = _rows()
    victim = before[1]["id"]
    statements = [
        f"UPDATE {AUDIT_TABLE} SET message = 'x'",
        f"UPDATE {AUDIT_TABLE} SET message = 'x' WHERE id = {victim}",
        f"UPDATE {AUDIT_TABLE} SET hash = prev_hash",
        f"DELETE FROM {AUDIT_TABLE}",
        f"DELETE FROM {AUDIT_TABLE} WHERE id = {victim}",
    ]
    for sql in statements:
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
        assert _rows() == before, f"{sql!r} changed the audit trail"
    assert audit.verify_chain().ok


# === 2. verification names the broken row ==========================================================
@pytest.mark.django_db(transaction=True)
def test_an_altered_event_is_named_by_verify_chain_verify_audit_and_the_api(
    django_user_model: Any, seed_events: Callable[..., list[AuditEvent]]
) -> None:
    """Raw SQL rewrites one event's message (on PostgreSQL past a disabled trigger, as its owner could)."""
    events = seed_events(6)
    intact = _manage("verify_audit", env=_test_db_env())
    assert intact.returncode == 0, intact.stderr
    assert "6 event(s) verified" in intact.stdout

    victim = events[2]
    _tamper(f"UPDATE {AUDIT_TABLE} SET message = %s WHERE id = %s", ["nothing happened here", victim.id])

    report = audit.verify_chain()
    assert (report.ok, report.first_broken, report.checked) == (False, victim.id, 3)
    assert f"event {victim.id} " in report.reason and "altered" in report.reason

    broken = _manage("verify_audit", env=_test_db_env())
    assert broken.returncode != 0
    assert f"event {victim.id} was altered" in broken.stderr, broken.stderr

    client, _ = _client_with_key(_admin(django_user_model))
    answer = client.get("/api/v1/audit-events/verify/")
    assert answer.status_code == 200
    assert answer.json()["ok"] is False and answer.json()["first_broken"] == victim.id, answer.json()
    assert "altered" in answer.json()["reason"]


@pytest.mark.postgres
@pytest.mark.django_db
def test_on_postgresql_an_owner_who_disables_the_trigger_is_still_caught_by_verification(
    django_user_model: Any, seed_events: Callable[..., list[AuditEvent]]
) -> None:
    events = seed_events(5)
    victim = events[3]
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # see _tamper
        cursor.execute(f"ALTER TABLE {AUDIT_TABLE} DISABLE TRIGGER {TRIGGER}")
        cursor.execute(f"UPDATE {AUDIT_TABLE} SET message = 'approved by nobody' WHERE id = %s", [victim.id])
        cursor.execute(f"ALTER TABLE {AUDIT_TABLE} ENABLE TRIGGER {TRIGGER}")
    # The trigger is back: the next rewrite is refused again.
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {AUDIT_TABLE} SET message = 'x' WHERE id = %s", [events[0].id])

    report = audit.verify_chain()
    assert (report.ok, report.first_broken) == (False, victim.id)
    with pytest.raises(CommandError, match=f"event {victim.id} was altered"):
        call_command("verify_audit")
    client, _ = _client_with_key(_admin(django_user_model))
    answer = client.get("/api/v1/audit-events/verify/").json()
    assert answer["ok"] is False and answer["first_broken"] == victim.id


@pytest.mark.django_db
def test_deleted_events_fail_verification(django_user_model: Any, seed_events: Callable[..., list[AuditEvent]]) -> None:
    events = seed_events(6)
    client, _ = _client_with_key(_admin(django_user_model))

    # The newest: the chain itself still links, but the head names a later event.
    _tamper(f"DELETE FROM {AUDIT_TABLE} WHERE id = %s", [events[-1].id])
    report = audit.verify_chain()
    assert (report.ok, report.first_broken, report.checked) == (False, None, 5)
    assert "newest events were deleted" in report.reason
    with pytest.raises(CommandError, match="newest events were deleted"):
        call_command("verify_audit")
    answer = client.get("/api/v1/audit-events/verify/").json()
    assert answer["ok"] is False and "newest events were deleted" in answer["reason"]

    # One in the middle: the event after the gap is named.
    _tamper(f"DELETE FROM {AUDIT_TABLE} WHERE id = %s", [events[2].id])
    report = audit.verify_chain()
    assert (report.ok, report.first_broken) == (False, events[3].id)
    assert "deleted or reordered" in report.reason

    # All of them: an empty trail is not an intact one while the chain head remembers events.
    _tamper(f"DELETE FROM {AUDIT_TABLE}")
    report = audit.verify_chain()
    assert report.ok is False and report.checked == 0
    assert AuditChainHead.objects.get(pk=1).last_hash == events[-1].hash
