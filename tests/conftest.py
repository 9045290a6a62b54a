"""Real parts: the moto sandbox server, a real Celery worker process, the real database."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from django.db import connection

from requests_app.core import outbox
from requests_app.integrations import tokens
from requests_app.management import demo

ROOT = Path(__file__).resolve().parent.parent
logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the sandbox server's access log
DEMO_PASSWORD = "peering-demo"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """Tests of PostgreSQL's own failures cannot run on SQLite: deselect them there, loudly."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    chosen = [i for i in items if i.get_closest_marker("postgres") is None]
    dropped = [i for i in items if i.get_closest_marker("postgres") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = chosen
        config._postgres_only_deselected = len(dropped)


def pytest_terminal_summary(terminalreporter: Any, config: Any) -> None:
    count = getattr(config, "_postgres_only_deselected", 0)
    if count:
        terminalreporter.write_line(
            f"{count} PostgreSQL-only test(s) deselected: this run uses SQLite; set DATABASE_URL to run them"
        )


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    """PBKDF2 costs ~0.2 s a password by design; the demo world sets six per test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _own_audit_anchors(settings: Any, tmp_path: Path) -> None:
    """Each test's audit anchors in a file of its own: var/audit-anchors.jsonl describes another
    database (make run's), against which this test's chain would rightly fail to verify."""
    settings.AUDIT_ANCHOR_FILE = str(tmp_path / "audit-anchors.jsonl")


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    """Rate-limit counters live in the cache; each test starts with a full budget."""
    from django.core.cache import cache

    cache.clear()


@dataclass
class SentTasks:
    """Tasks the code sent by name (see requests_app/core/outbox.py), kept here instead of the broker."""

    sent: list[tuple[str, tuple[Any, ...], float | None]] = field(default_factory=list)
    # The first argument (an id) of each task sent, by task name: a live list per name.
    ids: defaultdict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    # A task name's handler is called instead of recording: `handler(*args, countdown=...)`.
    handlers: dict[str, Callable[..., None]] = field(default_factory=dict)

    def send(self, task_name: str, *args: Any, countdown: float | None = None) -> None:
        handler = self.handlers.get(task_name)
        if handler is not None:
            handler(*args, countdown=countdown)
            return
        self.sent.append((task_name, args, countdown))
        if args:
            self.ids[task_name].append(args[0])


@pytest.fixture
def sent_tasks(monkeypatch: pytest.MonkeyPatch) -> SentTasks:
    """Nothing goes to the broker: what the code sends is recorded (or handed to a handler)."""
    record = SentTasks()
    monkeypatch.setattr(outbox, "send", record.send)
    return record


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The AWS sandbox as a real HTTP server; boto3 reaches it through AWS_ENDPOINT_URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    saved = {
        k: os.environ.get(k)
        for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    }
    os.environ.update(
        AWS_ENDPOINT_URL=url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    yield url
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def sandbox(moto_server: str) -> str:
    """A clean sandbox holding the demo accounts' VPCs and route tables."""
    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    from requests_app.aws import gateway

    gateway._default = None  # cached clients hold credentials of the previous sandbox
    demo.build_sandbox()
    return moto_server


@pytest.fixture
def demo_world(sandbox: str, django_db_blocker: Any) -> dict[str, Any]:
    """The portal's demo world: departments, users, accounts, VPCs synced from the sandbox."""
    from django.contrib.auth import get_user_model

    from requests_app.models import Vpc

    demo.register_portal(DEMO_PASSWORD)
    users = {u.username: u for u in get_user_model().objects.all()}
    vpcs = {v.name or f"default-{v.account.account_id}-{v.region}": v for v in Vpc.objects.select_related("account")}
    return {"users": users, "vpcs": vpcs}


def _test_database_url() -> str:
    settings = connection.settings_dict
    if settings["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings['NAME']}"
    user = settings.get("USER") or ""
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{settings.get('HOST') or '127.0.0.1'}:{settings.get('PORT') or 5432}/{settings['NAME']}"


class WorkerProcess:
    """A `celery worker` process (or the fault-injecting one) sharing this test run's database and broker."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        *,
        faults: dict[str, Any] | None = None,
        queue: str = "celery",
        name: str = "test",
        concurrency: int = 1,
    ) -> None:
        self.env = dict(env)
        self.log_path = log_path
        self.faults = faults
        self.queue = queue
        self.name = name
        # 1: the solo pool (one task at a time, in the main process); more: a prefork pool, as
        # `make run` and production run it, so several sagas can be in flight at once.
        self.concurrency = concurrency
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        pool = ["-P", "solo"] if self.concurrency == 1 else ["-P", "prefork", "--concurrency", str(self.concurrency)]
        args = [
            *pool,
            "--purge",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "INFO",
            "-Q",
            self.queue,
            "-n",
            f"{self.name}-{os.getpid()}@%h",
        ]
        if self.faults is None:
            return [sys.executable, "-m", "celery", "-A", "peering_portal", "worker", *args]
        return [sys.executable, "-m", "tests.faulty_worker", *args]

    def start(self, timeout: float = 60) -> None:
        import json

        if self.faults is not None:
            self.env["FAULTS"] = json.dumps(self.faults)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        # Its own process group, so a test can kill the worker with its pool at once (kill -9 of a host).
        self.proc = subprocess.Popen(
            self.command(), cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log_path.read_text()[-3000:]}")
            if "ready." in self.log_path.read_text()[offset:]:
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker did not start:\n{self.log_path.read_text()[-3000:]}")

    def wait_exit(self, timeout: float = 60) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill_group()

    def kill_group(self) -> None:
        """SIGKILL the worker and its pool at once, as when its host dies: nothing is cleaned up."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


class BeatProcess:
    """A real `celery beat` on the shipped schedule, sharing the test run's database and broker."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = dict(env)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        schedule = self.log_path.with_suffix(".schedule")
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "peering_portal", "beat", "-l", "INFO", "-s", str(schedule)],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while "beat: Starting" not in self.log_path.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"beat did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@pytest.fixture(scope="session")
def worker_env(django_db_setup: Any, django_db_blocker: Any, moto_server: str, tmp_path_factory: Any) -> dict[str, str]:
    """The environment a worker process needs to share the test database, broker and sandbox."""
    from django.conf import settings

    with django_db_blocker.unblock():
        db_url = _test_database_url()
    return {
        **os.environ,
        "DATABASE_URL": db_url,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_FILESYSTEM_DIR": str(settings.BROKER_DIR),
        "PORTAL_VAR_DIR": str(settings.VAR_DIR),
        "AWS_CALL_LOG": str(tmp_path_factory.mktemp("aws") / "calls.jsonl"),
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture(scope="session")
def worker(worker_env: dict[str, str], tmp_path_factory: Any) -> Iterator[WorkerProcess]:
    """A real `celery worker` process on the default queue."""
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    proc = WorkerProcess(worker_env, log_path)
    proc.start()
    yield proc
    proc.stop()
    sys.stderr.write(f"\n[worker log: {log_path}]\n")


def ec2_as(account_id: str, region: str) -> Any:
    return demo._ec2(account_id, region)


def sandbox_snapshot() -> dict[str, Any]:
    """Every peering connection and every route of every demo account and region, as AWS sees them."""
    peerings: dict[str, str] = {}
    routes: dict[str, list[tuple[str, str]]] = {}
    for account in demo.ACCOUNTS:
        for region in account.regions:
            ec2 = ec2_as(account.account_id, region)
            for p in ec2.describe_vpc_peering_connections()["VpcPeeringConnections"]:
                peerings[p["VpcPeeringConnectionId"]] = p["Status"]["Code"]
            for table in ec2.describe_route_tables()["RouteTables"]:
                routes[table["RouteTableId"]] = sorted(
                    (r.get("DestinationCidrBlock", ""), r.get("VpcPeeringConnectionId") or r.get("GatewayId", ""))
                    for r in table["Routes"]
                )
    return {"peerings": peerings, "routes": routes}


def wait_for_status(request_id: Any, statuses: set[str], timeout: float = 90) -> Any:
    from requests_app.models import PeeringRequest

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj = PeeringRequest.objects.get(pk=request_id)
        if obj.status in statuses:
            return obj
        time.sleep(0.25)
    obj = PeeringRequest.objects.get(pk=request_id)
    raise AssertionError(f"request {request_id} is {obj.status} ({obj.failure_reason!r}), expected {statuses}")


@pytest.fixture
def api(demo_world: dict[str, Any]) -> Any:
    """A function returning an API client authenticated with `username`'s real token."""
    from rest_framework.test import APIClient

    def client_for(username: str | None) -> APIClient:
        client = APIClient()
        if username:
            _, key = tokens.issue(demo_world["users"][username], "tests")
            client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        return client

    return client_for
