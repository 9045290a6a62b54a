"""Security properties, each checked against the real thing.

1. every status transition and every AWS call the worker makes is in the audit trail, once;
2. audit events cannot be changed or deleted (ORM everywhere; on PostgreSQL, raw SQL too);
3. a rewritten or deleted event is named by `verify_chain`, `manage.py verify_audit` and the API
   (the keyed chain and its anchors against a rewrite of every hash: tests/test_audit_chain.py);
4. the JSON Lines export verifies offline with `OFFLINE_VERIFY_SCRIPT` (stdlib and the chain key),
   down to its signed anchor line;
5. no credential or key ends up in the database, the worker's log, the AWS call trace or ours;
6. password guessing is throttled per user and per address, for the window configured;
7. (`manage.py iam_policy`'s least-privilege documents: moved to tests/test_iam.py)
8. `check --deploy` passes with production settings, and they refuse to start without a key;
9. session cookies are HttpOnly (and Secure, with HSTS, with DEBUG off); session-authenticated
   API writes need the CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.test import Client
from rest_framework.test import APIClient

from requests_app import audit
from requests_app.integrations import tokens
from requests_app.models import (
    AuditChainHead,
    AuditEvent,
    AwsAccount,
    Notification,
    PeeringRequest,
    Webhook,
    WebhookDelivery,
)
from tests.conftest import DEMO_PASSWORD, ROOT, WorkerProcess, _test_database_url, wait_for_status

AUDIT_TABLE = "requests_app_auditevent"
TRIGGER = "requests_app_auditevent_append_only"

# The whole offline check of an export (docs/ quote this constant). Reads the JSON Lines export
# on stdin and the chain key from AUDIT_CHAIN_KEY; the optional argument is the hash before the
# first line (default: the genesis).
# The auditor's script, exactly as docs/security.md publishes it: the test runs what the docs say.
OFFLINE_VERIFY_SCRIPT = re.search(
    r"```python\n(.*?)```", (Path(__file__).resolve().parent.parent / "docs" / "security.md").read_text(), re.S
).group(1)


@pytest.fixture(autouse=True)
def _own_anchor_file(settings: Any, tmp_path: Path) -> None:
    """Each test's own audit anchor file: anchors of another database (a `make run` under the same
    var/) would rightly fail this test database's chain."""
    settings.AUDIT_ANCHOR_FILE = str(tmp_path / "audit-anchors.jsonl")


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


def _seed_events(count: int = 6) -> list[AuditEvent]:
    """Events without AWS: enough chain to tamper with. Non-ASCII text checks the encodings agree."""
    return [
        audit.record(
            action=f"security.test{i}",
            actor_label="security-test",
            message=f"event {i}: Zürich → ✓ 日本",
            data={"n": i, "nested": {"list": [1, 2.5, None, True], "text": 'é"\\'}, "empty": {}},
        )
        for i in range(count)
    ]


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
        "DATABASE_URL": _test_database_url(),
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


# === shared by the two tests with a worker of their own ===========================================
@pytest.fixture
def own_worker(
    worker: WorkerProcess, worker_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Stop the session's worker and start one of the test's own, with extra environment and its own log."""
    worker.stop()
    started: list[WorkerProcess] = []

    def start(**env: str) -> WorkerProcess:
        proc = WorkerProcess({**worker_env, **env}, tmp_path / f"worker-{len(started)}.log", name="security")
        started.append(proc)
        proc.start()
        return proc

    yield start
    for proc in started:
        proc.stop()
    if worker.proc is None or worker.proc.poll() is not None:
        worker.start()


def _file_and_approve(requester: APIClient, approver: APIClient, demo_world: dict[str, Any]) -> str:
    vpcs = demo_world["vpcs"]
    filed = requester.post(
        "/api/v1/peering-requests/",
        {
            "requester_vpc": vpcs["finance-app"].vpc_id,
            "accepter_vpc": vpcs["services-use1"].vpc_id,
            "justification": "security test",
            "allow_dns_resolution": True,
        },
        format="json",
    )
    assert filed.status_code == 201, filed.json()
    request_id = filed.json()["id"]
    approved = approver.post(f"/api/v1/peering-requests/{request_id}/approve/", {"comment": "ok"}, format="json")
    assert approved.status_code == 200, approved.json()
    return request_id


def _sts_sessions() -> list[Any]:
    """Every role session the sandbox (a server in this process) handed out since its last reset."""
    from moto.sts.models import sts_backends

    sessions = []
    for account_id in list(sts_backends):
        for backend in list(dict.values(sts_backends[account_id])):
            sessions.extend(backend.assumed_roles)
    return sessions


# === 1. every transition and every AWS call: exactly one audit event ================================
def _trace_key(call: dict[str, Any]) -> tuple[Any, ...]:
    """What identifies one traced EC2 call (gateway._trace: operation, account_id, region, params)."""
    p, op = call["params"], call["operation"]
    ident: tuple[Any, ...] = ()
    if op == "CreateVpcPeeringConnection":
        ident = (p["VpcId"], p["PeerVpcId"])
    elif op == "AcceptVpcPeeringConnection":
        ident = (p["VpcPeeringConnectionId"],)
    elif op == "ModifyVpcPeeringConnectionOptions":
        ident = (p["VpcPeeringConnectionId"], "requester" if "RequesterPeeringConnectionOptions" in p else "accepter")
    elif op == "CreateRoute":
        ident = (p["RouteTableId"], p["DestinationCidrBlock"], p["VpcPeeringConnectionId"])
    elif op == "DescribeVpcPeeringConnections":
        ident = tuple(p.get("VpcPeeringConnectionIds", []))
    elif op == "DescribeRouteTables":
        ident = tuple(p.get("RouteTableIds", []))
    return (op, call["account_id"], call["region"], ident)


def _event_key(event: AuditEvent, request: PeeringRequest) -> tuple[Any, ...]:
    """The same identity, read from an `aws.call` audit event."""
    d, op = event.data, event.operation
    ident: tuple[Any, ...] = ()
    if op == "CreateVpcPeeringConnection":
        ident = (request.requester_vpc.vpc_id, request.accepter_vpc.vpc_id)
    elif op == "AcceptVpcPeeringConnection":
        ident = (d.get("connection_id"),)
    elif op == "ModifyVpcPeeringConnectionOptions":
        ident = (d.get("connection_id"), d.get("side"))
    elif op == "CreateRoute":
        ident = (d.get("route_table_id"), d.get("destination"), d.get("connection_id"))
    elif op == "DescribeVpcPeeringConnections":
        ident = (d["connection_id"],) if "connection_id" in d else ()
    elif op == "DescribeRouteTables":
        ident = tuple(d.get("route_table_ids", []))
    return (op, event.account_id, event.region, ident)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_every_transition_and_every_aws_call_of_a_provisioning_run_is_audited_exactly_once(
    own_worker: Callable[..., WorkerProcess],
    demo_world: dict[str, Any],
    api: Any,
    tmp_path: Path,
) -> None:
    call_log = tmp_path / "aws-calls.jsonl"
    own_worker(AWS_CALL_LOG=str(call_log))
    request_id = _file_and_approve(api("fiona"), api("nina"), demo_world)
    done = wait_for_status(request_id, {"active", "failed"})
    assert done.status == "active", done.failure_reason

    # (a) The status path: one event per transition, in order, and no other event claims one.
    transitions = list(
        AuditEvent.objects.exclude(from_status="", to_status="")
        .order_by("id")
        .values_list("request_id", "action", "from_status", "to_status")
    )
    assert [(str(r), a, f, t) for r, a, f, t in transitions] == [
        (request_id, "request.submitted", "", "pending_approval"),
        (request_id, "request.approved", "pending_approval", "approved"),
        (request_id, "provisioning.started", "approved", "provisioning"),
        (request_id, "provisioning.completed", "provisioning", "active"),
    ]

    # (b) The AWS calls: the worker's own trace of every EC2 call against the audit trail.
    traced = [json.loads(line) for line in call_log.read_text(encoding="utf-8").splitlines() if line.strip()]
    calls = list(AuditEvent.objects.filter(action="aws.call").order_by("id"))
    assert {e.request_id for e in calls} == {done.pk}, "an aws.call event not tied to the request"
    finished = [e for e in calls if e.result in ("ok", "error")]
    assert all(e.result == "ok" for e in finished), [(e.operation, e.error_code) for e in finished]

    mutating = [c for c in traced if not c["operation"].startswith("Describe")]
    assert len(mutating) < len(traced), "no read traced: the trace is not the whole story"
    # Create, accept, DNS on both sides, one route in finance's table and both blocks in the hub's two.
    assert Counter(c["operation"] for c in mutating) == {
        "CreateVpcPeeringConnection": 1,
        "AcceptVpcPeeringConnection": 1,
        "ModifyVpcPeeringConnectionOptions": 2,
        "CreateRoute": 1 + 2 * 2,
    }, "the run did not make the calls this test expects; the comparison below would prove little"
    for call in mutating:
        key = _trace_key(call)
        started = [e for e in calls if e.result == "started" and _event_key(e, done) == key]
        ok = [e for e in finished if _event_key(e, done) == key]
        assert len(ok) == 1, f"{key}: {len(ok)} `ok` events for one call"
        assert len(started) == 1, f"{key}: {len(started)} `started` events for one call"
        # `started` is written before AWS is asked, `ok` after it answered.
        assert started[0].id < ok[0].id
        assert started[0].created_at.timestamp() <= call["time"] <= ok[0].created_at.timestamp(), key

    # Every traced call (reads too) is audited once, in the order it was made, and nothing else is.
    traced_keys = [_trace_key(c) for c in traced]
    audited_keys = [_event_key(e, done) for e in finished]
    assert Counter(traced_keys) == Counter(audited_keys), (
        f"traced, not audited: {Counter(traced_keys) - Counter(audited_keys)}; "
        f"audited, not traced: {Counter(audited_keys) - Counter(traced_keys)}"
    )
    assert traced_keys == audited_keys, "the audit trail has the calls in another order than they were made"
    # Mutations only ever follow their `started` event; reads have none.
    assert all(not e.operation.startswith("Describe") for e in calls if e.result == "started")
    assert audit.verify_chain().ok

    # Each of the portal's role sessions (worker and inventory sync) used that account's ExternalId.
    portal_sessions = [s for s in _sts_sessions() if s.session_name == "peering-portal"]
    assert {s.role_arn.split(":")[4] for s in portal_sessions} >= {"111111111111", "222222222222"}
    external_ids = dict(AwsAccount.objects.values_list("account_id", "external_id"))
    for session in portal_sessions:
        assert session.external_id == external_ids[session.role_arn.split(":")[4]], session.role_arn


# === 2. append-only =================================================================================
@pytest.mark.django_db
def test_the_orm_refuses_to_change_or_delete_audit_events(django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("auditor", password=DEMO_PASSWORD)
    audit.record(action="security.by_user", actor=user)
    _seed_events(4)
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
def test_postgresql_refuses_raw_sql_updates_and_deletes_of_audit_events() -> None:
    _seed_events(4)
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


# === 3. verification names the broken row ==========================================================
@pytest.mark.django_db(transaction=True)
def test_an_altered_event_is_named_by_verify_chain_verify_audit_and_the_api(django_user_model: Any) -> None:
    """Raw SQL rewrites one event's message (on PostgreSQL past a disabled trigger, as its owner could)."""
    events = _seed_events(6)
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
    django_user_model: Any,
) -> None:
    events = _seed_events(5)
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
def test_deleted_events_fail_verification(django_user_model: Any) -> None:
    events = _seed_events(6)
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


# === 4. offline verification of the export =========================================================
def _offline_verify(export: bytes, *args: str, key: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """The docs' script, with the auditor's copy of the chain key in AUDIT_CHAIN_KEY."""
    chain_key = (key if key is not None else audit.chain_key()).decode()
    return subprocess.run(
        [sys.executable, "-c", OFFLINE_VERIFY_SCRIPT, *args],
        input=export,
        capture_output=True,
        timeout=60,
        env={**os.environ, "PYTHONIOENCODING": "utf-8", "AUDIT_CHAIN_KEY": chain_key},
    )


def _keyed_hash(row: dict[str, Any], key: bytes) -> str:
    body = {k: v for k, v in row.items() if k not in ("id", "hash")}
    payload = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


@pytest.mark.django_db
def test_the_jsonl_export_verifies_offline_and_a_tampered_line_is_named(django_user_model: Any) -> None:
    assert len(OFFLINE_VERIFY_SCRIPT.strip().splitlines()) <= 14
    events = _seed_events(6)
    admin = django_user_model.objects.create_superuser("admin", "admin@example.com", DEMO_PASSWORD)
    web = Client()
    web.force_login(admin)
    response = web.get("/audit/export.jsonl")
    assert response.status_code == 200
    export = b"".join(response.streaming_content)
    assert export.count(b"\n") == len(events) + 1  # and the anchor line
    # The same bytes as the module's own export, but for the anchor's time of signing.
    lines = export.decode().splitlines(keepends=True)
    again = "".join(audit.export_jsonl(AuditEvent.objects.order_by("id"))).splitlines(keepends=True)
    assert lines[:-1] == again[:-1]
    anchor = json.loads(lines[-1])["anchor"]
    assert (anchor["last_event_id"], anchor["head_hash"], anchor["count"]) == (events[-1].id, events[-1].hash, 6)

    ok = _offline_verify(export)
    assert ok.returncode == 0, ok.stderr
    assert f"ok: 6 events, last hash {events[-1].hash}, signed at {anchor['at']} as event 6 of the chain".encode() in (
        ok.stdout
    )
    # Without the right key nothing verifies: the database's copy of the rows is not enough.
    wrong_key = _offline_verify(export, key=b"a guess")
    assert wrong_key.returncode != 0 and f"audit event {events[0].id} ".encode() in wrong_key.stderr

    # An export starting later verifies from the hash before its first line.
    later = "".join(audit.export_jsonl(AuditEvent.objects.filter(id__gte=events[3].id).order_by("id"))).encode()
    assert _offline_verify(later, events[2].hash).returncode == 0
    assert _offline_verify(later).returncode != 0  # not from the genesis

    victim = json.loads(lines[2])
    following = json.loads(lines[3])["id"]
    # A changed field, with its own `hash` left alone.
    changed = dict(victim, message="nothing happened")
    tampered = _offline_verify("".join([*lines[:2], json.dumps(changed) + "\n", *lines[3:]]).encode())
    assert tampered.returncode != 0 and f"audit event {victim['id']} ".encode() in tampered.stderr, tampered.stderr
    # A changed field with its hash recomputed as plain SHA-256 (the old attack): still that line.
    body = {k: v for k, v in changed.items() if k not in ("id", "hash")}
    changed["hash"] = hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()
    rehashed = _offline_verify("".join([*lines[:2], json.dumps(changed) + "\n", *lines[3:]]).encode())
    assert rehashed.returncode != 0 and f"audit event {victim['id']} ".encode() in rehashed.stderr
    # ...passed off as a legacy line (`keyed` dropped): the next line no longer follows it.
    legacy = {k: v for k, v in changed.items() if k != "keyed"}
    legacy["hash"] = hashlib.sha256(
        json.dumps(
            {k: v for k, v in legacy.items() if k not in ("id", "hash")},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
    ).hexdigest()
    downgraded = _offline_verify("".join([*lines[:2], json.dumps(legacy) + "\n", *lines[3:]]).encode())
    assert downgraded.returncode != 0 and f"audit event {following} ".encode() in downgraded.stderr
    # ...or rehashed with the key itself (someone holding it): the next line no longer follows it.
    changed["hash"] = _keyed_hash(changed, audit.chain_key())
    keyed = _offline_verify("".join([*lines[:2], json.dumps(changed) + "\n", *lines[3:]]).encode())
    assert keyed.returncode != 0 and f"audit event {following} ".encode() in keyed.stderr
    # A dropped line: the one after the gap is named.
    dropped = _offline_verify("".join([*lines[:2], *lines[3:]]).encode())
    assert dropped.returncode != 0 and f"audit event {following} ".encode() in dropped.stderr


@pytest.mark.django_db
def test_the_export_anchor_line_is_checked_offline(django_user_model: Any) -> None:
    """Cutting an export short, or altering or dropping its anchor, fails; so does a refused anchor."""
    _seed_events(4)
    lines = "".join(audit.export_jsonl(AuditEvent.objects.order_by("id"))).splitlines(keepends=True)
    assert _offline_verify("".join(lines).encode()).returncode == 0
    anchor = json.loads(lines[-1])["anchor"]

    failures = {
        "the last event dropped": [*lines[:-2], lines[-1]],
        "the anchor line dropped": lines[:-1],
        "the anchor's count altered": [*lines[:-1], json.dumps({"anchor": {**anchor, "count": 9}}) + "\n"],
        "the anchor re-signed with another key": [
            *lines[:-1],
            json.dumps({"anchor": {**anchor, "signature": _keyed_hash({**anchor, "id": 0, "hash": ""}, b"x")}}) + "\n",
        ],
        "an anchor over an earlier event": [
            *lines[:-1],
            json.dumps({"anchor": audit.anchor_event(AuditEvent.objects.order_by("id")[1])}) + "\n",
        ],
        "a line after the anchor": [*lines, lines[0]],
        "no anchor, the portal's refusal": [*lines[:-1], json.dumps({"anchor": None, "error": "refused"}) + "\n"],
    }
    for name, changed in failures.items():
        result = _offline_verify("".join(changed).encode())
        assert result.returncode != 0, name
        assert b"does not verify" in result.stderr, (name, result.stderr)
    assert (
        b"the anchor (line 5) does not verify"
        in _offline_verify("".join(failures["the anchor's count altered"]).encode()).stderr
    )


# === 5. no secrets anywhere ========================================================================
class _Receiver:
    """A webhook endpoint that answers 200 and remembers the event types it got."""

    def __init__(self) -> None:
        self.types: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.types.append(json.loads(body).get("type", ""))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _database_texts(exclude: dict[str, set[str]]) -> dict[str, str]:
    """Every row of every table, per table: `dumpdata` plus a raw SELECT of each table.

    `exclude` names columns left out (table -> columns): where a secret is meant to be.
    """
    texts: dict[str, str] = {}
    out = io.StringIO()
    call_command("dumpdata", stdout=out)
    by_model: dict[str, list[Any]] = {}
    for obj in json.loads(out.getvalue()):
        by_model.setdefault(obj["model"], []).append(obj)
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        for table in tables:
            columns = [c.name for c in connection.introspection.get_table_description(cursor, table)]
            kept = [c for c in columns if c not in exclude.get(table, set())]
            cursor.execute(f"SELECT {', '.join(quote(c) for c in kept)} FROM {quote(table)}")
            texts[f"table {table}"] = repr(cursor.fetchall())
    from django.apps import apps

    for label, objects in by_model.items():
        model = apps.get_model(label)
        dropped = exclude.get(model._meta.db_table, set())
        for obj in objects:
            for field in model._meta.concrete_fields:
                if field.column in dropped:
                    obj["fields"].pop(field.name, None)
        texts[f"dumpdata {label}"] = json.dumps(objects, ensure_ascii=False)
    return texts


# moto's STS session tokens all start so; an AWS secret access key is 40 characters of base64.
SESSION_TOKEN_SHAPE = re.compile(r"FQoGZXIvYXdzE")
SECRET_KEY_SHAPE = re.compile(
    r"(?<![A-Za-z0-9+/])(?=[A-Za-z0-9+/]*[A-Z])(?=[A-Za-z0-9+/]*[a-z])(?=[A-Za-z0-9+/]*[0-9])"
    r"[A-Za-z0-9+/]{40}(?![A-Za-z0-9+/=])"
)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_no_credential_or_key_is_stored_or_logged_anywhere(
    own_worker: Callable[..., WorkerProcess],
    demo_world: dict[str, Any],
    tmp_path: Path,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="requests_app")
    caplog.set_level(logging.DEBUG, logger="peering_portal")
    settings.WEBHOOK_ALLOW_PRIVATE = True
    users = demo_world["users"]
    # conftest's sandbox credentials are "testing", too common to search for: this worker gets a
    # secret access key of its own (the sandbox accepts any).
    worker_secret = secrets.token_urlsafe(30)
    call_log = tmp_path / "aws-calls.jsonl"
    worker = own_worker(AWS_SECRET_ACCESS_KEY=worker_secret, AWS_CALL_LOG=str(call_log), WEBHOOK_ALLOW_PRIVATE="1")
    sessions_before = len(_sts_sessions())

    fiona, fiona_key = _client_with_key(users["fiona"])
    admin, admin_key = _client_with_key(users["admin"])
    login = APIClient().post(
        "/api/v1/auth/token/", {"username": "nina", "password": DEMO_PASSWORD, "name": "cli"}, format="json"
    )
    assert login.status_code == 200, login.json()
    nina_key = login.json()["token"]
    nina = APIClient()
    nina.credentials(HTTP_AUTHORIZATION=f"Bearer {nina_key}")
    named = fiona.post("/api/v1/tokens/", {"name": "deploy"}, format="json", HTTP_IDEMPOTENCY_KEY="security-token-1")
    assert named.status_code == 201, named.json()
    named_key = named.json()["token"]

    receiver = _Receiver()
    try:
        hook = admin.post(
            "/api/v1/webhooks/",
            {"url": receiver.url, "events": ["*"]},
            format="json",
            HTTP_IDEMPOTENCY_KEY="security-hook-1",
        )
        assert hook.status_code == 201, hook.json()
        webhook_secret = hook.json()["secret"]
        assert webhook_secret.startswith("whsec_")

        request_id = _file_and_approve(fiona, nina, demo_world)
        done = wait_for_status(request_id, {"active", "failed"})
        assert done.status == "active", done.failure_reason
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            "peering_request.active" not in receiver.types
            or WebhookDelivery.objects.filter(state="pending").exists()
            or Notification.objects.filter(state="pending").exists()
        ):
            time.sleep(0.25)
        assert "peering_request.active" in receiver.types, receiver.types
    finally:
        receiver.close()

    sessions = _sts_sessions()
    assert len(sessions) > sessions_before, "the worker assumed no role: nothing to look for"
    # The shapes would catch the real thing.
    assert all(SESSION_TOKEN_SHAPE.match(s.session_token) for s in sessions)
    assert any(SECRET_KEY_SHAPE.fullmatch(s.secret_access_key) for s in sessions)
    secrets_to_find = {
        "the worker's AWS secret access key": worker_secret,
        "fiona's API token (tokens.issue)": fiona_key,
        "admin's API token (tokens.issue)": admin_key,
        "nina's API token (POST /api/v1/auth/token/)": nina_key,
        "fiona's named API token (POST /api/v1/tokens/ with an Idempotency-Key)": named_key,
        "the webhook secret (outside Webhook.secret)": webhook_secret,
        "the demo password": DEMO_PASSWORD,
        "the audit chain key (never in the database)": audit.chain_key().decode(),
    }
    for n, session in enumerate(sessions):
        label = f"STS session {n} ({session.session_name} in {session.role_arn.split(':')[4]})"
        secrets_to_find[f"{label} SecretAccessKey"] = session.secret_access_key
        secrets_to_find[f"{label} SessionToken"] = session.session_token

    # Webhook.secret is where the webhook secret must be (it signs every delivery): that one
    # column is left out of the search, and only it.
    assert Webhook.objects.get().secret == webhook_secret
    haystacks = {
        **{f"database, {where}": text for where, text in _database_texts({"requests_app_webhook": {"secret"}}).items()},
        "the worker's log": worker.log_path.read_text(errors="replace"),
        "the AWS call trace": call_log.read_text(),
        "this process's logs (caplog)": "\n".join(
            f"{r.name} {r.getMessage()} {r.exc_text or ''}"
            for phase in ("setup", "call")
            for r in caplog.get_records(phase)  # type: ignore[arg-type]
        ),
    }
    # The search can see: what must be there is found.
    assert request_id in haystacks["the worker's log"] and "CreateRoute" in haystacks["the AWS call trace"]
    assert tokens.hash_key(fiona_key) in haystacks["database, table requests_app_apitoken"]

    leaks = [
        f"{name} is in {where}"
        for name, value in secrets_to_find.items()
        for where, text in haystacks.items()
        if value and value in text
    ]
    for where, text in haystacks.items():
        leaks += [
            f"an STS session token shape ({m.group()[:16]}…) is in {where}" for m in SESSION_TOKEN_SHAPE.finditer(text)
        ]
        leaks += [
            f"a 40-character secret-key shape ({m.group()[:8]}…) is in {where}" for m in SECRET_KEY_SHAPE.finditer(text)
        ]
    assert not leaks, "secrets found:\n  " + "\n  ".join(leaks)


# === 6. login throttling ===========================================================================
LOGIN = "/accounts/login/"
TOKEN = "/api/v1/auth/token/"


def _page_login(client: Client, username: str, password: str, address: str = "127.0.0.1") -> Any:
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def _token_login(username: str, password: str, address: str = "127.0.0.1") -> Any:
    return APIClient().post(TOKEN, {"username": username, "password": password}, format="json", REMOTE_ADDR=address)


def _logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture
def people(django_user_model: Any) -> dict[str, Any]:
    return {
        name: django_user_model.objects.create_user(name, f"{name}@example.com", DEMO_PASSWORD)
        for name in ("fiona", "harry")
    }


@pytest.mark.django_db
def test_after_five_wrong_passwords_even_the_right_one_is_refused_for_that_user_only(
    people: dict[str, Any], settings: Any
) -> None:
    assert settings.LOGIN_FAILURE_LIMIT == 5
    client = Client()
    for _ in range(5):
        wrong = _page_login(client, "fiona", "not-her-password")
        assert wrong.status_code == 200 and not _logged_in(client)
        assert b"Too many failed logins" not in wrong.content

    right = _page_login(client, "fiona", DEMO_PASSWORD)
    assert right.status_code == 200 and not _logged_in(client), "the right password was accepted while locked"
    assert b"Too many failed logins" in right.content, (
        "the login is refused but the page does not say why (it shows only its generic wrong-password line)"
    )

    token = _token_login("fiona", DEMO_PASSWORD)
    assert token.status_code == 429, token.json()
    assert [e["code"] for e in token.json()["errors"]] == ["login_throttled"]
    assert "token" not in token.json()
    assert int(token["Retry-After"]) == settings.LOGIN_LOCKOUT_SECONDS > 0
    # From another address, too: the lock is on the user name.
    assert _token_login("fiona", DEMO_PASSWORD, "10.9.9.9").status_code == 429

    # Another user is not affected, from another address or from this one (its limit is 50).
    for address in ("10.9.9.9", "127.0.0.1"):
        other = Client()
        response = _page_login(other, "harry", DEMO_PASSWORD, address)
        assert response.status_code == 302 and _logged_in(other), address
        assert _token_login("harry", DEMO_PASSWORD, address).status_code == 200


@pytest.mark.django_db
def test_wrong_passwords_at_the_api_lock_the_login_page_too(people: dict[str, Any]) -> None:
    for _ in range(5):
        assert _token_login("fiona", "guess").status_code == 400
    assert _token_login("fiona", DEMO_PASSWORD).status_code == 429
    client = Client()
    response = _page_login(client, "fiona", DEMO_PASSWORD)
    assert response.status_code == 200 and not _logged_in(client)


@pytest.mark.django_db
def test_one_address_guessing_many_user_names_is_locked_out(people: dict[str, Any], settings: Any) -> None:
    settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS = 3
    for name in ("alice", "bob", "carol"):
        _page_login(Client(), name, "guess", "10.6.6.6")
    client = Client()
    locked = _page_login(client, "harry", DEMO_PASSWORD, "10.6.6.6")
    assert locked.status_code == 200 and not _logged_in(client)
    assert _token_login("harry", DEMO_PASSWORD, "10.6.6.6").status_code == 429
    other = Client()
    assert _page_login(other, "harry", DEMO_PASSWORD, "10.7.7.7").status_code == 302 and _logged_in(other)


@pytest.mark.django_db
def test_the_lockout_ends_when_its_window_has_passed(people: dict[str, Any], settings: Any) -> None:
    settings.LOGIN_LOCKOUT_SECONDS = 2
    client = Client()
    for _ in range(5):
        _page_login(client, "fiona", "not-her-password")
    _page_login(client, "fiona", DEMO_PASSWORD)
    assert not _logged_in(client)
    assert _token_login("fiona", DEMO_PASSWORD)["Retry-After"] == "2"

    time.sleep(2.5)
    response = _page_login(client, "fiona", DEMO_PASSWORD)
    assert response.status_code == 302 and _logged_in(client), (
        "still locked out after the LOGIN_LOCKOUT_SECONDS window: the failure counter outlives it"
    )
    assert _token_login("fiona", DEMO_PASSWORD).status_code == 200


# === 8. check --deploy =============================================================================
def _deploy_env(tmp_path: Path, **overrides: str | None) -> dict[str, str]:
    """A clean production-like environment: none of this machine's portal settings leak in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_", "CELERY_", "CACHE_", "PORTAL_", "LOGIN_"))
    }
    env.update(
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(48)[:50],
        DJANGO_ALLOWED_HOSTS="portal.example.com",
        PORTAL_VAR_DIR=str(tmp_path / "var"),
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def test_check_deploy_passes_with_production_settings(tmp_path: Path) -> None:
    env = _deploy_env(tmp_path)
    assert len(env["DJANGO_SECRET_KEY"]) == 50
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    "secret_key",
    [None, "short-key", "django-insecure-peering-portal-development-only"],
    ids=["missing", "short", "development-key"],
)
def test_debug_off_without_a_real_secret_key_refuses_to_start(tmp_path: Path, secret_key: str | None) -> None:
    result = _manage("check", env=_deploy_env(tmp_path, DJANGO_SECRET_KEY=secret_key))
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr, result.stderr


# === 9. session hardening ==========================================================================
DEBUG_OFF_PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
call_command("migrate", verbosity=0)
get_user_model().objects.create_user("fiona", password="a-long-enough-password")
client = Client(HTTP_HOST="portal.example.com")
plain = client.get("/api/v1/vpcs/")
secure = client.get("/api/v1/vpcs/", secure=True)
login = client.post("/accounts/login/", {"username": "fiona", "password": "a-long-enough-password"}, secure=True)
session, csrf = login.cookies.get(settings.SESSION_COOKIE_NAME), login.cookies.get(settings.CSRF_COOKIE_NAME)
print(json.dumps({
    "debug": settings.DEBUG, "plain": [plain.status_code, plain.get("Location")],
    "hsts": secure.get("Strict-Transport-Security"), "login": login.status_code,
    "session": session and {"secure": bool(session["secure"]), "httponly": bool(session["httponly"]),
                            "samesite": session["samesite"]},
    "csrf_secure": bool(csrf and csrf["secure"]),
}))
"""


@pytest.mark.django_db
def test_the_session_cookie_is_httponly(people: dict[str, Any], settings: Any) -> None:
    client = Client()
    response = _page_login(client, "fiona", DEMO_PASSWORD)
    assert response.status_code == 302
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["httponly"] is True and cookie["samesite"].lower() in ("lax", "strict")


def test_with_debug_off_cookies_are_secure_and_https_is_enforced_with_hsts(tmp_path: Path) -> None:
    env = _deploy_env(tmp_path, DATABASE_URL="sqlite://:memory:", DJANGO_SETTINGS_MODULE="peering_portal.settings")
    result = subprocess.run(
        [sys.executable, "-c", DEBUG_OFF_PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["debug"] is False
    assert seen["plain"] == [301, "https://portal.example.com/api/v1/vpcs/"], "plain HTTP is not redirected"
    assert seen["hsts"] and "max-age=31536000" in seen["hsts"] and "includeSubDomains" in seen["hsts"], seen
    assert seen["login"] == 302, seen
    assert seen["session"] == {"secure": True, "httponly": True, "samesite": "Lax"}, seen
    assert seen["csrf_secure"] is True, seen


@pytest.mark.django_db
def test_a_session_authenticated_api_write_without_the_csrf_token_is_refused(people: dict[str, Any]) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(people["fiona"])
    refused = client.post("/api/v1/peering-requests/", {}, content_type="application/json")
    assert refused.status_code == 403
    assert "csrf" in refused.content.decode().lower(), refused.content

    # With the token the same call gets past CSRF (and fails validation instead): the 403 was CSRF's.
    client.get(LOGIN)
    token = client.cookies["csrftoken"].value
    allowed = client.post("/api/v1/peering-requests/", {}, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert allowed.status_code == 400, allowed.content
    # A token-authenticated client needs no CSRF token (no cookie a browser would send by itself).
    api, _ = _client_with_key(people["fiona"])
    assert api.post("/api/v1/peering-requests/", {}, format="json").status_code == 400
