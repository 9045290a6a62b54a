"""Security properties of a real worker's run, each checked against the real thing.

1. every status transition and every AWS call the worker makes is in the audit trail, once;
2. no credential or key ends up in the database, the worker's log, the AWS call trace or ours.

The rest of the security properties, each in its room: audit events are append-only and a changed
one is named (tests/audit/test_tampering.py), the export verifies offline
(tests/audit/test_offline_export.py), password guessing is throttled (tests/core/test_login_lockout.py),
`manage.py iam_policy`'s least-privilege documents (tests/aws/test_iam.py), and the production
settings (tests/project/test_deploy.py).
"""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from requests_app import audit
from requests_app.integrations import tokens
from requests_app.models import (
    AuditEvent,
    AwsAccount,
    Notification,
    PeeringRequest,
    Webhook,
    WebhookDelivery,
)
from tests.fixtures.processes import WorkerProcess, wait_for_status
from tests.fixtures.world import DEMO_PASSWORD, DemoWorld


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


def _file_and_approve(requester: APIClient, approver: APIClient, demo_world: DemoWorld) -> str:
    vpcs = demo_world.vpcs
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
    demo_world: DemoWorld,
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


# === 2. no secrets anywhere ========================================================================
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
    demo_world: DemoWorld,
    tmp_path: Path,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="requests_app")
    caplog.set_level(logging.DEBUG, logger="peering_portal")
    settings.WEBHOOK_ALLOW_PRIVATE = True
    users = demo_world.users
    # The sandbox's credentials (tests/fixtures/sandbox.py) are "testing", too common to search for:
    # this worker gets a secret access key of its own (the sandbox accepts any).
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
