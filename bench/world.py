"""What `bench/provisioning.py` and `bench/throughput.py` share: the run's environment and processes,
the world of VPCs they peer (built in the AWS sandbox, and registered in the portal), the bare boto3
sequence they are measured against, and the readers of what the workers leave behind.

A world is hub and spoke: `hubs` accepter VPCs (each owned by the approver) spread over
`hub_accounts` accounts, and one requester VPC ("spoke") per peering spread over `spoke_accounts`
accounts; peering i joins spoke i to hub i % hubs, cross-account, in one region. Every VPC has two
route tables (its main table and one more), so a peering adds two routes on each side. Hubs are
/16s of 10.0.0.0/9 and spokes /24s of 10.128.0.0/9, so no two VPCs overlap. Each benchmark builds
two identical worlds in separate accounts: one the portal provisions, one the bare script peers,
so both start clean and neither sees the other's connections.

The processes (the moto server and `celery worker`s) run in their own process groups and are stopped
by `Processes.stop_all`, whatever happens. Run as `python -m bench.world worker [--profile FILE]
[--send-log FILE] -- <celery worker arguments>`, this module is a `celery worker` that can also
profile each provisioning task (cProfile), time the portal's parts in each task (`--timers`), or
log when each EC2 call leaves the rate limiter (`--send-log`); the benchmarks start it that way only
when one of those flags is given, and otherwise run `python -m celery` itself.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from scripts.processes import ProcessGroup

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
ROLE_NAME = "PeeringPortalRole"  # as in requests_app/management/demo.py
REGION = "us-east-1"
POSTGRES_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379"
BROKER_DB = 2  # the Celery broker of these benchmarks
CACHE_DB = 3  # the shared cache that holds the EC2 rate-limit buckets
SANDBOX_PORTS = range(18000, 19000)
PORTAL_ACCOUNTS = 200_000_000_000  # account ids of the world the portal provisions
BARE_ACCOUNTS = 300_000_000_000  # and of the identical world the bare script peers
HUB_NETWORK = ipaddress.IPv4Network("10.0.0.0/9")  # hubs: its /16s
SPOKE_NETWORK = ipaddress.IPv4Network("10.128.0.0/9")  # spokes: its /24s
# The portal's own quotas (requests_app/domain/checks.py `Limits`, AWS's defaults).
PEERINGS_PER_VPC = 50
OUTSTANDING_PER_ACCOUNT = 25
PROFILED_TASKS = {"requests_app.tasks.provision_peering_request"}


# --- statistics -------------------------------------------------------------------------------
def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


# --- environment ------------------------------------------------------------------------------
@dataclass
class Backend:
    """Where this run's portal keeps its state."""

    embedded: bool
    var_dir: Path
    database: str  # the PostgreSQL database name, or the SQLite file
    maintenance_url: str | None  # PostgreSQL only: where the database is created and dropped

    def describe(self) -> str:
        if self.embedded:
            return f"SQLite {self.database} + filesystem broker + file cache, under {self.var_dir}"
        return f"PostgreSQL database {self.database} + Redis broker (db {BROKER_DB}) + Redis cache (db {CACHE_DB})"


def prepare_environment(var_dir: Path, database: str, *, embedded: bool) -> Backend:
    """Point this process's settings (and, through `worker_environment`, the workers') at a throw-away
    database, broker and cache, before Django reads them.

    PostgreSQL: the server of DATABASE_URL if set (its database is never used), else
    127.0.0.1:5432 as postgres; `database` is created there. Embedded: SQLite, the filesystem broker
    and the file cache, all under `var_dir`. The EC2 rate-limit buckets are off in this process (it
    only syncs the inventory while the world is built: see `silence_rate_limits`); the workers keep
    the settings' buckets, or whatever EC2_RATE_* the caller's environment sets.
    """
    shutil.rmtree(var_dir, ignore_errors=True)
    var_dir.mkdir(parents=True)
    env = {
        "DJANGO_SETTINGS_MODULE": "peering_portal.settings",
        # As in production: with DEBUG on, Django would also keep every query a worker runs.
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(48),
        "PORTAL_VAR_DIR": str(var_dir),
        # Notification tasks still run (the requester hears of approval and completion); only the
        # SMTP conversation is left out.
        "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
    }
    maintenance_url = None
    if embedded:
        env["DATABASE_URL"] = f"sqlite:///{var_dir / 'portal.sqlite3'}"
        env["CELERY_BROKER_URL"] = "filesystem://"
        env["CELERY_FILESYSTEM_DIR"] = str(var_dir / "broker")
        env["CACHE_URL"] = ""  # files under var_dir/cache, shared by the processes of this host
        name = str(var_dir / "portal.sqlite3")
    else:
        parts = urlsplit(os.environ.get("DATABASE_URL") or POSTGRES_SERVER)
        if parts.scheme not in ("postgres", "postgresql"):
            raise SystemExit(f"DATABASE_URL must name a PostgreSQL server (or use --embedded), not {parts.scheme}://")
        env["DATABASE_URL"] = urlunsplit(parts._replace(path="/" + database))
        env["CELERY_BROKER_URL"] = f"{REDIS}/{BROKER_DB}"
        env["CACHE_URL"] = f"{REDIS}/{CACHE_DB}"
        maintenance_url = urlunsplit(parts._replace(path="/postgres"))
        name = database
    os.environ.update(env)
    os.environ.pop("AWS_CALL_LOG", None)  # the workers get their own
    return Backend(embedded, var_dir, name, maintenance_url)


def worker_environment(trace: Path) -> dict[str, str]:
    """What a worker runs with: this process's settings, the trace, logs as JSON (parsed after)."""
    return {**os.environ, "AWS_CALL_LOG": str(trace), "PYTHONUNBUFFERED": "1", "LOG_FORMAT": "json"}


RATE_SETTINGS = {"peering": "EC2_RATE_PEERING", "mutating": "EC2_RATE_MUTATING", "describe": "EC2_RATE_DESCRIBE"}


def silence_rate_limits() -> dict[str, tuple[float, float] | None]:
    """Switch the EC2 buckets off in this process (it syncs the inventory while the world is built,
    which the workers' budget must not pay for) and return the buckets the workers run with:
    (burst, per second) per kind, None where switched off."""
    from django.conf import settings

    specs: dict[str, tuple[float, float] | None] = {}
    for kind, name in RATE_SETTINGS.items():
        raw = str(getattr(settings, name))
        if not raw or raw.strip() == "0":
            specs[kind] = None
        else:
            burst, per_second = (float(part) for part in raw.split(","))
            specs[kind] = (burst, per_second)
        setattr(settings, name, "0")
    return specs


def create_database(backend: Backend) -> None:
    """A fresh PostgreSQL database for the run (dropped first if an earlier run left it)."""
    if backend.maintenance_url:
        _run_on_server(backend.maintenance_url, "DROP DATABASE IF EXISTS {} WITH (FORCE)", backend.database)
        _run_on_server(backend.maintenance_url, "CREATE DATABASE {}", backend.database)


def drop_database(backend: Backend) -> None:
    if backend.maintenance_url:
        _run_on_server(backend.maintenance_url, "DROP DATABASE IF EXISTS {} WITH (FORCE)", backend.database)


def _run_on_server(maintenance_url: str, statement: str, database: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        conn.execute(sql.SQL(statement).format(sql.Identifier(database)))


def clear_redis(backend: Backend) -> None:
    """Forget what an earlier run left in this benchmark's broker queue and rate-limit buckets."""
    if backend.embedded:
        return
    import redis

    broker = redis.Redis.from_url(f"{REDIS}/{BROKER_DB}")
    broker.delete("celery", "unacked", "unacked_index", "unacked_mutex")
    cache = redis.Redis.from_url(f"{REDIS}/{CACHE_DB}")
    for key in cache.scan_iter(match="*ec2-bucket:*"):
        cache.delete(key)


def setup_django() -> str:
    """Set Django up, migrate the empty database and describe it."""
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command
    from django.db import connection

    django.setup()
    call_command("migrate", verbosity=0)
    if connection.vendor == "sqlite":
        import sqlite3

        return f"SQLite {sqlite3.sqlite_version}"
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        (version,) = cursor.fetchone()
    return f"PostgreSQL {version}"


def other_activity() -> list[str]:
    """Other benchmark, test, sandbox or worker processes on this machine (not ours), to say
    whether the figures were taken on a quiet machine."""
    mine = {os.getpid(), os.getppid(), *Processes.pids}
    try:
        listing = subprocess.run(["ps", "-eo", "pid=,pgid=,args="], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    found = []
    for line in listing.splitlines():
        pid, pgid, args = line.split(None, 2)
        if int(pid) in mine or int(pgid) in mine:
            continue
        if any(word in args for word in ("bench/", "bench.", "pytest", "moto.server", "celery", "gunicorn")):
            found.append(f"{pid} {args[:100]}")
    return found


class ActivityWatch:
    """Looks for other benchmark, test or worker processes every few seconds while the run lasts,
    so a run can say whether the machine stayed quiet throughout (not only at its start and end)."""

    def __init__(self, every: float = 2.0) -> None:
        import threading

        self.seen: dict[str, None] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(every,), daemon=True)
        self._thread.start()

    def _watch(self, every: float) -> None:
        while True:
            for found in other_activity():
                self.seen.setdefault(found, None)
            if self._stop.wait(every):
                return

    def stop(self) -> str:
        """One line: whether the machine was quiet, and if not, what else ran."""
        self._stop.set()
        self._thread.join(5)
        for found in other_activity():
            self.seen.setdefault(found, None)
        if not self.seen:
            return "machine quiet: yes (no other benchmark, test, sandbox or worker process seen during the run)"
        return f"machine quiet: no (also running: {'; '.join(self.seen)[:500]})"


# --- processes --------------------------------------------------------------------------------
class Processes(ProcessGroup):
    """The bench's children (the sandbox, the workers), each logging to `log_dir/<name>.log`:
    scripts/processes.py's group, so they stop (and die with this process) as `make run`'s do."""

    pids: set[int] = set()

    def __init__(self, log_dir: Path) -> None:
        super().__init__(ROOT, say=lambda _message: None)
        self.log_dir = log_dir

    def start(
        self, name: str, args: Sequence[str], env: Mapping[str, str], log: Path | None = None
    ) -> subprocess.Popen[bytes]:
        proc = super().start(name, args, env, log=log or self.log(name))
        Processes.pids.add(proc.pid)
        return proc

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def stop_named(self, names: Iterable[str]) -> None:
        """Stop these (the workers), leaving the rest (the sandbox) running."""
        wanted = set(names)
        for child in [c for c in self.children if c.name in wanted]:
            self.stop(child.proc, grace=30)


def install_signal_handlers() -> None:
    """Ctrl-C or a TERM unwinds through the `finally` blocks that stop the child processes."""

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_sandbox(processes: Processes) -> str:
    """The moto server on a free port of 18000-18999; sets AWS_* here and for the workers."""
    for port in SANDBOX_PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        break
    else:
        raise SystemExit("no free port in 18000-18999 for the sandbox")
    url = f"http://127.0.0.1:{port}"
    aws = {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }
    os.environ.update(aws)
    for key in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        os.environ.pop(key, None)
    proc = processes.start("sandbox", [PY, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], dict(os.environ))
    deadline = time.monotonic() + 60
    while not _port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the sandbox did not start:\n{processes.log('sandbox').read_text()[-2000:]}")
        time.sleep(0.1)
    return url


def worker_command(
    name: str,
    *,
    profile: Path | None = None,
    profile_skip: int = 0,
    send_log: Path | None = None,
    timers: Path | None = None,
) -> list[str]:
    """`celery worker` of concurrency 1, as the issue runs it; through this module to instrument it."""
    args = ["-A", "peering_portal", "worker", "-l", "WARNING", "--concurrency", "1", "-n", f"{name}@%h"]
    if profile is None and send_log is None and timers is None:
        return [PY, "-m", "celery", *args]
    wrapper = [PY, "-m", "bench.world", "worker"]
    if timers is not None:
        wrapper += ["--timers", str(timers)]
    if profile is not None:
        wrapper += ["--profile", str(profile), "--profile-skip", str(profile_skip)]
    if send_log is not None:
        wrapper += ["--send-log", str(send_log)]
    return [*wrapper, "--", *args]


def start_workers(
    processes: Processes,
    names: list[str],
    env: dict[str, str],
    *,
    profile_dir: Path | None = None,
    profile_skip: int = 0,
    send_log: Path | None = None,
    timers: Path | None = None,
    timeout: float = 90,
) -> list[subprocess.Popen[bytes]]:
    """Start the workers and wait until each answers a ping over the broker."""
    from peering_portal.celery import app

    procs = [
        processes.start(
            name,
            worker_command(
                name,
                profile=profile_dir / f"{name}.prof" if profile_dir else None,
                profile_skip=profile_skip,
                send_log=send_log,
                timers=timers,
            ),
            env,
        )
        for name in names
    ]
    wanted = {f"{name}@{socket.gethostname()}" for name in names}
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while seen != wanted:
        for name, proc in zip(names, procs, strict=True):
            if proc.poll() is not None:
                raise SystemExit(f"worker {name} exited:\n{processes.log(name).read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise SystemExit(f"workers {sorted(wanted - seen)} did not answer a ping in {timeout:.0f} s")
        for reply in app.control.ping(timeout=0.5) or []:
            seen |= set(reply) & wanted
    return procs


# --- CPU --------------------------------------------------------------------------------------
class CpuMeter:
    """CPU seconds (user + system) used so far by each part of the run, from /proc: this process,
    the sandbox, the workers (with their pool processes), PostgreSQL and Redis (all of their
    processes on this host: on a quiet machine, ours). Two snapshots subtracted give what a phase
    cost, and, against its wall time and the cores, how busy the machine was."""

    def __init__(self, processes: Processes) -> None:
        self.processes = processes
        self.tick = os.sysconf("SC_CLK_TCK")

    def snapshot(self) -> dict[str, float]:
        groups = {c.proc.pid: ("sandbox (moto)" if c.name == "sandbox" else "workers") for c in self.processes.children}
        used: dict[str, float] = defaultdict(float)
        own = os.times()
        used["this process (bench)"] = own.user + own.system
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            name = text[text.index("(") + 1 : text.rindex(")")]
            fields = text[text.rindex(")") + 2 :].split()
            seconds = (int(fields[11]) + int(fields[12])) / self.tick  # utime, stime
            group = int(fields[2])
            if group in groups:
                used[groups[group]] += seconds
            elif name.startswith(("postgres", "redis-server")):
                # With cutime and cstime: a backend that ended (a worker closes its connection after
                # each task) is counted in the postmaster that reaped it.
                seconds += (int(fields[13]) + int(fields[14])) / self.tick
                used["postgresql" if name.startswith("postgres") else "redis"] += seconds
        return dict(used)

    @staticmethod
    def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}


def print_cpu(title: str, spent: dict[str, float], peerings: int, wall_seconds: float) -> None:
    cores = os.cpu_count() or 1
    total = sum(spent.values())
    print(f"\n{title}: CPU per peering ({total / wall_seconds:.2f} of {cores} cores busy over {wall_seconds:.1f} s)")
    for name, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        print(f"  {name:<24} {1000 * seconds / peerings:>7.1f} ms")
    print(f"  {'all':<24} {1000 * total / peerings:>7.1f} ms")


# --- the world --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    peerings: int
    hubs: int = 1
    hub_accounts: int = 1
    spoke_accounts: int = 1
    region: str = REGION

    def check(self, *, approved_at_once: int) -> None:
        """Refuse a layout that would run into one of the portal's quotas (or out of addresses)."""
        per_hub = -(-self.peerings // self.hubs)
        per_account = -(-approved_at_once // self.spoke_accounts)
        problems = []
        if not 1 <= self.hubs <= 128 or self.hub_accounts > self.hubs or self.spoke_accounts > self.peerings:
            problems.append("need 1-128 hubs, at most one hub account per hub and one spoke account per peering")
        if self.peerings > 32_768:
            problems.append("at most 32,768 peerings (spokes are /24s of 10.128.0.0/9)")
        if per_hub > PEERINGS_PER_VPC:
            problems.append(f"{per_hub} peerings per hub is over the quota of {PEERINGS_PER_VPC}: use more hubs")
        if per_account > OUTSTANDING_PER_ACCOUNT:
            problems.append(
                f"{per_account} requests approved at once per spoke account is over the quota of "
                f"{OUTSTANDING_PER_ACCOUNT} outstanding: use more spoke accounts"
            )
        if problems:
            raise SystemExit("; ".join(problems))

    def describe(self) -> str:
        return (
            f"{self.peerings} spokes in {self.spoke_accounts} account(s) -> {self.hubs} hub(s) in "
            f"{self.hub_accounts} account(s), {self.region}, 2 route tables per VPC"
        )


@dataclass
class VpcBuilt:
    key: str  # "hub-3", "spoke-17"
    account_id: str
    region: str
    cidr: str
    vpc_id: str = ""
    route_tables: list[str] = field(default_factory=list)  # main table first


@dataclass(frozen=True)
class Pair:
    index: int
    spoke: VpcBuilt
    hub: VpcBuilt


@dataclass
class World:
    """One side's VPCs and the peerings to make between them."""

    label: str
    layout: Layout
    hubs: list[VpcBuilt]
    spokes: list[VpcBuilt]
    pairs: list[Pair]

    @property
    def hub_account_ids(self) -> list[str]:
        return sorted({v.account_id for v in self.hubs})

    @property
    def spoke_account_ids(self) -> list[str]:
        return sorted({v.account_id for v in self.spokes})

    @property
    def vpcs(self) -> list[VpcBuilt]:
        return [*self.hubs, *self.spokes]


def plan_world(label: str, layout: Layout, account_base: int) -> World:
    hub_networks = HUB_NETWORK.subnets(new_prefix=16)
    spoke_networks = SPOKE_NETWORK.subnets(new_prefix=24)
    hubs = [
        VpcBuilt(f"hub-{j}", str(account_base + j % layout.hub_accounts), layout.region, str(next(hub_networks)))
        for j in range(layout.hubs)
    ]
    spokes = [
        VpcBuilt(
            f"spoke-{i}", str(account_base + 100 + i % layout.spoke_accounts), layout.region, str(next(spoke_networks))
        )
        for i in range(layout.peerings)
    ]
    pairs = [Pair(i, spokes[i], hubs[i % layout.hubs]) for i in range(layout.peerings)]
    return World(label, layout, hubs, spokes, pairs)


def ec2_client(account_id: str, region: str) -> Any:
    """boto3 EC2 acting as `account_id` through its portal role (STS in the sandbox), with the
    portal gateway's own client configuration."""
    import boto3

    from requests_app.aws.gateway import BOTO_CONFIG

    creds = boto3.client("sts", region_name=region).assume_role(
        RoleArn=f"arn:aws:iam::{account_id}:role/{ROLE_NAME}", RoleSessionName="bench"
    )["Credentials"]
    return boto3.Session(
        region_name=region,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    ).client("ec2", config=BOTO_CONFIG)


def build_sandbox(world: World) -> None:
    """Create the world's VPCs and their second route tables in the sandbox."""
    by_account: dict[str, list[VpcBuilt]] = defaultdict(list)
    for vpc in world.vpcs:
        by_account[vpc.account_id].append(vpc)
    for account_id, vpcs in by_account.items():
        ec2 = ec2_client(account_id, world.layout.region)
        for vpc in vpcs:
            name = f"{world.label}-{vpc.key}"
            vpc.vpc_id = ec2.create_vpc(
                CidrBlock=vpc.cidr,
                TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": name}]}],
            )["Vpc"]["VpcId"]
            extra = ec2.create_route_table(
                VpcId=vpc.vpc_id,
                TagSpecifications=[
                    {"ResourceType": "route-table", "Tags": [{"Key": "Name", "Value": f"{name}-private"}]}
                ],
            )["RouteTable"]["RouteTableId"]
            vpc.route_tables = [extra]
        ours = {v.vpc_id: v for v in vpcs}
        for table in ec2.describe_route_tables()["RouteTables"]:
            vpc = ours.get(table["VpcId"])
            if vpc and any(a.get("Main") for a in table.get("Associations", [])):
                vpc.route_tables.insert(0, table["RouteTableId"])
        broken = [v.key for v in vpcs if len(v.route_tables) != 2]
        if broken:
            raise SystemExit(f"the sandbox did not give {broken[:5]} a main route table")


@dataclass
class Portal:
    """The portal's side of a world: its people and the requests filed for the world's pairs."""

    requester: Any
    approver: Any
    request_ids: list[str] = field(default_factory=list)  # in pair order


def register_portal(world: World) -> Portal:
    """Departments, people, accounts; the inventory synced from the sandbox; hubs owned by the approver."""
    from django.contrib.auth import get_user_model
    from django.db import transaction

    # Django is set up by the caller, so the portal is imported here, not at the top of the module.
    from requests_app.inventory import sync
    from requests_app.models import AwsAccount, Department, Vpc

    user_model = get_user_model()
    with transaction.atomic():
        spokes = Department.objects.create(slug="bench-spokes", name="Bench spokes")
        hubs = Department.objects.create(slug="bench-hubs", name="Bench hubs")
        requester = user_model.objects.create(username="bench-requester", email="requester@example.com")
        approver = user_model.objects.create(username="bench-approver", email="approver@example.com")
        requester.departments.add(spokes)
        approver.departments.add(hubs)
        accounts = [
            AwsAccount.objects.create(
                account_id=account_id,
                name=f"{kind} {account_id}",
                department=department,
                role_arn=f"arn:aws:iam::{account_id}:role/{ROLE_NAME}",
                regions=[world.layout.region],
            )
            for kind, department, ids in (
                ("hub", hubs, world.hub_account_ids),
                ("spoke", spokes, world.spoke_account_ids),
            )
            for account_id in ids
        ]
    for account in accounts:
        sync.sync_account(account)
    hub_vpcs = Vpc.objects.filter(vpc_id__in=[v.vpc_id for v in world.hubs])
    if hub_vpcs.count() != len(world.hubs):
        raise SystemExit("the inventory sync did not find every hub VPC")
    for vpc in hub_vpcs:
        vpc.owners.set([approver])
    return Portal(requester=requester, approver=approver)


def submit_requests(world: World, portal: Portal) -> None:
    """File one request per pair, as the spoke's department does: its tables and destinations
    are left to the portal (every route table of each VPC, the peer's CIDR)."""
    from requests_app.peering.preflight import PeeringDraft
    from requests_app.peering.services import peering_request_submit

    for pair in world.pairs:
        draft = PeeringDraft(
            requester_vpc=pair.spoke.vpc_id,
            accepter_vpc=pair.hub.vpc_id,
            justification=f"benchmark peering {pair.index}",
        )
        request = peering_request_submit(actor=portal.requester, draft=draft)
        expected = [*pair.spoke.route_tables], [*pair.hub.route_tables]
        if (sorted(request.requester_route_tables), sorted(request.accepter_route_tables)) != tuple(
            sorted(t) for t in expected
        ):
            raise SystemExit(f"request {request.pk} does not route through both tables of each VPC")
        portal.request_ids.append(str(request.pk))


def wait_notifications_sent(timeout: float = 60) -> None:
    """Until the workers have sent every email queued so far (they take them in the queue's order,
    so work queued next would wait behind them), then a moment more."""
    from requests_app.models import Notification

    deadline = time.monotonic() + timeout
    while Notification.objects.filter(state=Notification.State.PENDING).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)


def build(label: str, layout: Layout, account_base: int) -> World:
    world = plan_world(label, layout, account_base)
    build_sandbox(world)
    return world


# --- the bare script --------------------------------------------------------------------------
class Bare:
    """The minimal boto3 sequence for a peering: create, accept, one CreateRoute per route.

    Clients (and their assumed-role credentials) are made before anything is timed, as a portal
    worker holds them in steady state.
    """

    def __init__(self, world: World) -> None:
        region = world.layout.region
        self.clients = {a: ec2_client(a, region) for a in [*world.hub_account_ids, *world.spoke_account_ids]}
        self.reset()

    def reset(self) -> None:
        """Forget the calls so far (the warm-up's)."""
        self.calls: Counter[str] = Counter()
        self.durations: dict[str, list[float]] = defaultdict(list)

    def _call(self, account_id: str, operation: str, **kwargs: Any) -> Any:
        client = self.clients[account_id]
        start = time.perf_counter()
        result = getattr(client, operation)(**kwargs)
        self.durations[operation].append((time.perf_counter() - start) * 1000)
        self.calls[operation] += 1
        return result

    def peer(self, pair: Pair) -> tuple[str, int]:
        """Peer the pair; return the connection id and the number of calls it took."""
        spoke, hub = pair.spoke, pair.hub
        connection_id = self._call(
            spoke.account_id,
            "create_vpc_peering_connection",
            VpcId=spoke.vpc_id,
            PeerVpcId=hub.vpc_id,
            PeerOwnerId=hub.account_id,
            PeerRegion=hub.region,
            # The portal names its connections in the same call; so does this, for the same work.
            TagSpecifications=[
                {
                    "ResourceType": "vpc-peering-connection",
                    "Tags": [{"Key": "Name", "Value": f"{spoke.key}--{hub.key}"}],
                }
            ],
        )["VpcPeeringConnection"]["VpcPeeringConnectionId"]
        self._call(hub.account_id, "accept_vpc_peering_connection", VpcPeeringConnectionId=connection_id)
        calls = 2
        for vpc, peer in ((spoke, hub), (hub, spoke)):
            for table in vpc.route_tables:
                self._call(
                    vpc.account_id,
                    "create_route",
                    RouteTableId=table,
                    DestinationCidrBlock=peer.cidr,
                    VpcPeeringConnectionId=connection_id,
                )
                calls += 1
        return connection_id, calls

    def probe_describe(self, pair: Pair, connection_id: str) -> None:
        """One DescribeVpcPeeringConnections by id, untimed by the peering, to know what a describe
        costs in the sandbox (the bare sequence has none; the portal's does)."""
        self._call(pair.spoke.account_id, "describe_vpc_peering_connections", VpcPeeringConnectionIds=[connection_id])
        self.calls["describe_vpc_peering_connections"] -= 1  # not part of the sequence


# --- what the workers leave behind ------------------------------------------------------------
class TraceReader:
    """Reads the AWS_CALL_LOG JSON Lines trace as the workers append to it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def read_new(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as trace:
            trace.seek(self.offset)
            data = trace.read()
        end = data.rfind(b"\n") + 1  # a line being written stays for the next read
        self.offset += end
        return [json.loads(line) for line in data[:end].splitlines() if line.strip()]


def read_trace(path: Path) -> list[dict[str, Any]]:
    return TraceReader(path).read_new()


def bucket_kind(operation: str) -> str:
    from requests_app.aws import ratelimit

    return ratelimit.kind_of(operation)


@dataclass
class BucketPeak:
    account_id: str
    region: str
    kind: str
    calls: int
    peak_1s: int  # the most calls in any one-second window
    limit_1s: float | None  # burst + refill: the most a full bucket allows in one second
    min_tokens: float | None  # lowest level of the bucket, replayed over the calls


def peak_rates(calls: Iterable[dict[str, Any]], specs: dict[str, tuple[float, float] | None]) -> list[BucketPeak]:
    """The most calls in any sliding one-second window per (account, region, kind), and the token
    bucket replayed over the same calls (a level below 0 means EC2 would have throttled)."""
    times: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for call in calls:
        times[(call["account_id"], call["region"], bucket_kind(call["operation"]))].append(float(call["time"]))
    peaks = []
    for (account_id, region, kind), stamps in sorted(times.items()):
        stamps.sort()
        best, start = 0, 0
        for end, t in enumerate(stamps):
            while t - stamps[start] >= 1.0:
                start += 1
            best = max(best, end - start + 1)
        spec = specs.get(kind)
        min_tokens = None
        if spec:
            burst, refill = spec
            tokens, last = burst, stamps[0]
            min_tokens = burst
            for t in stamps:
                tokens = min(burst, tokens + (t - last) * refill) - 1
                last = t
                min_tokens = min(min_tokens, tokens)
        peaks.append(
            BucketPeak(account_id, region, kind, len(stamps), best, spec[0] + spec[1] if spec else None, min_tokens)
        )
    return peaks


def estimated_aws_ms(operations: Counter[str], per_call_ms: dict[str, float]) -> float | None:
    """What `operations` would cost at the bare script's median latency per operation (the worker
    runs at -l WARNING, so it does not log its own timing of each call)."""
    if any(op not in per_call_ms for op in operations):
        return None
    return sum(n * per_call_ms[op] for op, n in operations.items())


@dataclass
class Timeline:
    """One provisioning, from the portal's own records (audit events and the step log), in seconds
    since the epoch."""

    request_id: str
    started: float  # provisioning.started: checks passed, about to touch AWS
    steps: list[tuple[str, float, float]]  # (name, started, finished)
    completed: float  # provisioning.completed
    worker: str
    approval_mail_sent: float | None  # the "approved" notification, queued ahead of the task


def timelines(request_ids: list[str]) -> dict[str, Timeline]:
    from requests_app.models import AuditEvent, Notification, ProvisioningStep

    events = AuditEvent.objects.filter(
        request_id__in=request_ids, action__in=["provisioning.started", "provisioning.completed"]
    ).values_list("request_id", "action", "created_at", "actor_label")
    marks: dict[str, dict[str, Any]] = defaultdict(dict)
    for request_id, action, created_at, actor in events:
        marks[str(request_id)][action] = created_at.timestamp()
        marks[str(request_id)]["worker"] = actor.rsplit(":", 1)[0]
    steps: dict[str, list[tuple[str, float, float]]] = defaultdict(list)
    for request_id, name, started, finished in (
        ProvisioningStep.objects.filter(request_id__in=request_ids)
        .order_by("position")
        .values_list("request_id", "name", "started_at", "finished_at")
    ):
        steps[str(request_id)].append(
            (name, started.timestamp(), finished.timestamp() if finished else started.timestamp())
        )
    mails = dict(
        Notification.objects.filter(
            request_id__in=request_ids, event="request.approved", sent_at__isnull=False
        ).values_list("request_id", "sent_at")
    )
    return {
        rid: Timeline(
            rid,
            m["provisioning.started"],
            steps[rid],
            m["provisioning.completed"],
            m["worker"],
            mails[uuid.UUID(rid)].timestamp() if uuid.UUID(rid) in mails else None,
        )
        for rid, m in marks.items()
        if "provisioning.started" in m and "provisioning.completed" in m
    }


def phases(line: Timeline, approved: float, seen: float) -> dict[str, float]:
    """Milliseconds spent in each part of one provisioning, approval to `active` seen."""
    by_name = {name: (s, f) for name, s, f in line.steps}
    create, accept = by_name["create connection"], by_name["accept"]
    routes = [(s, f) for name, s, f in line.steps if name.startswith("route ")]
    first_route, last_route = min(s for s, _ in routes), max(f for _, f in routes)
    mail = line.approval_mail_sent
    if mail is not None and approved <= mail <= line.started:
        # The approval's email task was queued first and ran first on this worker.
        waiting = {
            "approve -> approval email sent (its task ran first)": (mail - approved) * 1000,
            "email sent -> provisioning.started (load, claim, checks)": (line.started - mail) * 1000,
        }
    else:
        waiting = {"queue, load, claim, checks (approve -> provisioning.started)": (line.started - approved) * 1000}
    return {
        **waiting,
        "started -> create step": (create[0] - line.started) * 1000,
        "create step (find, create, store id, wait visible)": (create[1] - create[0]) * 1000,
        "create -> accept step": (accept[0] - create[1]) * 1000,
        "accept step": (accept[1] - accept[0]) * 1000,
        "accept -> first route step": (first_route - accept[1]) * 1000,
        f"{len(routes)} route steps": (last_route - first_route) * 1000,
        "last route -> provisioning.completed": (line.completed - last_route) * 1000,
        "completed -> seen active by the poll": (seen - line.completed) * 1000,
    }


def print_phases(rows: list[dict[str, float]]) -> None:
    if not rows:
        return
    names = list(dict.fromkeys(name for row in rows for name in row))
    print(f"\n{'where the portal time goes (from audit events and the step log)':<62} {'median ms':>9} {'p95 ms':>8}")
    for name in names:
        values = [r[name] for r in rows if name in r]
        share = "" if len(values) == len(rows) else f"  ({len(values)} of {len(rows)} peerings)"
        print(f"  {name:<60} {median(values):>9.1f} {p95(values):>8.1f}{share}")


# --- profiles ---------------------------------------------------------------------------------
PROFILE_GROUPS = (
    # (label, file suffix, function name): cumulative time of that function, per task
    ("the whole task (tasks.provision_peering_request)", "requests_app/tasks.py", "provision_peering_request"),
    ("  Saga.__init__ (load request, plan)", "requests_app/peering/saga/base.py", "__init__"),
    (
        "  peering_request_evaluate (last checks before AWS)",
        "requests_app/peering/preflight.py",
        "peering_request_evaluate",
    ),
    ("  request_transition (status, audit, outbox)", "requests_app/peering/lifecycle.py", "request_transition"),
    ("  audit.record (hash chain, all callers)", "requests_app/audit/chain.py", "record"),
    ("  Saga.renew (lease after each AWS call)", "requests_app/peering/saga/base.py", "renew"),
    ("  ratelimit.acquire (EC2 buckets in the cache)", "requests_app/aws/ratelimit.py", "acquire"),
    ("  AwsGateway._trace (AWS_CALL_LOG line)", "requests_app/aws/gateway.py", "_trace"),
    ("  botocore _make_api_call (all EC2/STS calls)", "botocore/client.py", "_make_api_call"),
    ("    of which HTTP to the sandbox (Endpoint._send)", "botocore/endpoint.py", "_send"),
    ("  SQL (CursorWrapper._execute)", "django/db/backends/utils.py", "_execute"),
    ("  database connects", "django/db/backends/base/base.py", "connect"),
    ("  time.sleep", "~", "<built-in method time.sleep>"),
)


def print_profile(paths: list[Path], top: int = 25) -> None:
    """Where a provisioning task's time goes, from the workers' cProfile dumps."""
    import pstats

    paths = [p for p in paths if p.exists()]
    if not paths:
        print("\nno profile was written (did a provisioning task run under --profile?)")
        return
    stats = pstats.Stats(*[str(p) for p in paths])
    table: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]

    def cumulative(suffix: str, name: str) -> tuple[int, float]:
        calls, seconds = 0, 0.0
        for (filename, _, function), (_, ncalls, _, cumtime, _) in table.items():
            if function == name and filename.replace("\\", "/").endswith(suffix):
                calls += ncalls
                seconds += cumtime
        return calls, seconds

    tasks, _ = cumulative("requests_app/tasks.py", "provision_peering_request")
    tasks = max(tasks, 1)
    print(
        f"\ncProfile of {tasks} provisioning task(s) in the worker(s) (profiling slows them; compare shares, not times)"
    )
    print(f"  {'':<58} {'calls/task':>10} {'ms/task':>8}")
    for label, suffix, name in PROFILE_GROUPS:
        calls, seconds = cumulative(suffix, name)
        print(f"  {label:<58} {calls / tasks:>10.1f} {seconds * 1000 / tasks:>8.1f}")
    print(f"\n  top {top} functions of the portal (requests_app) by cumulative time per task:")
    ours = sorted(
        (
            (ct, nc, f"{Path(fn).name}:{line}:{func}")
            for (fn, line, func), (_, nc, _, ct, _) in table.items()
            if "requests_app" in fn
        ),
        reverse=True,
    )
    for ct, nc, label in ours[:top]:
        print(f"    {ct * 1000 / tasks:>8.1f} ms  {nc / tasks:>7.1f} calls  {label}")
    print(f"\n  top {top} functions overall by own time (tottime) per task:")
    own = sorted(
        (
            (tt, nc, f"{'/'.join(Path(fn).parts[-2:])}:{line}:{func}")
            for (fn, line, func), (_, nc, tt, _, _) in table.items()
        ),
        reverse=True,
    )
    for tt, nc, label in own[:top]:
        print(f"    {tt * 1000 / tasks:>8.1f} ms  {nc / tasks:>7.1f} calls  {label}")


# --- running as a worker ----------------------------------------------------------------------
def _worker_main(argv: list[str]) -> None:
    """`celery worker`, plus a cProfile of each provisioning task and/or a log of when each EC2
    call left the rate limiter (the AWS_CALL_LOG line is written before the limiter waits)."""
    parser = argparse.ArgumentParser(prog="python -m bench.world worker")
    parser.add_argument("--profile", type=Path, help="dump a cProfile of the provisioning tasks to FILE.<pid>")
    parser.add_argument("--profile-skip", type=int, default=0, help="leave the first N provisioning tasks out")
    parser.add_argument("--timers", type=Path, help="append, per task, the time spent in the portal's parts to FILE")
    parser.add_argument("--send-log", type=Path, help="append when each EC2 call is let through to FILE")
    parser.add_argument("celery_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    celery_args = [a for a in args.celery_args if a != "--"] if args.celery_args[:1] == ["--"] else args.celery_args
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peering_portal.settings")
    sys.path.insert(0, str(ROOT))

    if args.send_log is not None:
        from requests_app.aws import ratelimit

        send_log = args.send_log

        def hook(account_id: str, region: str, model: Any, **_: Any) -> None:
            # What ratelimit.hook does, with its sleeps counted.
            slept = [0.0]

            def sleep(seconds: float) -> None:
                slept[0] += seconds
                time.sleep(seconds)

            asked = time.time()
            ratelimit.acquire(account_id, region, model.name, sleep=sleep)
            sent = time.time()
            line = json.dumps(
                {
                    "time": sent,
                    "in_limiter": sent - asked,
                    "waited": slept[0],
                    "operation": model.name,
                    "account_id": account_id,
                    "region": region,
                }
            )
            with open(send_log, "a", encoding="utf-8") as out:
                out.write(line + "\n")

        # The gateway binds ratelimit.hook when it makes a client, after this.
        ratelimit.hook = hook  # type: ignore[assignment]

    if args.profile is not None:
        import cProfile

        from celery.signals import task_postrun, task_prerun

        profiler = cProfile.Profile()
        target = args.profile
        seen = Counter[str]()

        def start(task: Any = None, **_: Any) -> None:
            if task is not None and task.name in PROFILED_TASKS:
                seen["tasks"] += 1
                if seen["tasks"] > args.profile_skip:
                    profiler.enable()

        def stop(task: Any = None, **_: Any) -> None:
            if task is not None and task.name in PROFILED_TASKS and seen["tasks"] > args.profile_skip:
                profiler.disable()
                profiler.dump_stats(f"{target}.{os.getpid()}")

        task_prerun.connect(start, weak=False)
        task_postrun.connect(stop, weak=False)

    if args.timers is not None:
        _install_timers(args.timers)

    from celery.__main__ import main as celery_main

    sys.argv = ["celery", *celery_args]
    celery_main()


# (label, module, class or None, attribute): wrapped with a timer in the worker (`--timers`).
TIMED = (
    ("Saga.__init__ (load request, plan)", "requests_app.peering.saga.base", "SagaBase", "__init__"),
    ("Saga.claim + release (lease)", "requests_app.peering.saga.base", "SagaBase", "claim"),
    ("Saga.claim + release (lease)", "requests_app.peering.saga.base", "SagaBase", "release"),
    ("count the delivery", "requests_app.peering.saga.runner", None, "too_many_deliveries"),
    ("peering_request_evaluate (checks)", "requests_app.peering.preflight", None, "peering_request_evaluate"),
    ("request_transition (2: status, audit, outbox)", "requests_app.peering.lifecycle", None, "request_transition"),
    ("audit.record (every caller)", "requests_app.audit", None, "record"),
    ("Saga.renew (lease, after each AWS call)", "requests_app.peering.saga.base", "SagaBase", "renew"),
    ("Model.save (steps, audit events, ...)", "django.db.models", "Model", "save"),
    ("AwsGateway._call (boto3, incl. the two below)", "requests_app.aws.gateway", "AwsGateway", "_call"),
    ("ratelimit.acquire (EC2 buckets, in the cache)", "requests_app.aws.ratelimit", None, "acquire"),
    ("AwsGateway._trace (AWS_CALL_LOG line)", "requests_app.aws.gateway", "AwsGateway", "_trace"),
)

SQL_LABELS = (
    "SQL statements (an autocommit one includes its commit)",
    "  of which SELECT ... FOR UPDATE (chain head, incl. lock waits)",
    "  of which the others",
    "SQL commits of atomic blocks",
)


def _install_timers(path: Path) -> None:
    """Time the portal's parts in each task with perf_counter wrappers (cheap, unlike cProfile),
    and count the SQL statements and commits; one JSON line per task."""
    import functools
    import importlib

    from celery.signals import task_postrun, task_prerun

    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    issuers: Counter[str] = Counter()  # SQL statements by the innermost timed part that issued them
    stack: list[str] = []
    installed: list[bool] = []
    started: dict[str, float] = {}

    def timed(label: str, func: Any, *, owner: bool = True) -> Any:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            if owner:
                stack.append(label)
            try:
                return func(*args, **kwargs)
            finally:
                if owner:
                    stack.pop()
                entry = totals[label]
                entry[0] += 1
                entry[1] += time.perf_counter() - t0

        return wrapper

    def install() -> None:
        from django.db import connections
        from django.db.backends.base.base import BaseDatabaseWrapper

        for label, module_name, class_name, attribute in TIMED:
            owner: Any = importlib.import_module(module_name)
            if class_name:
                owner = getattr(owner, class_name)
            setattr(owner, attribute, timed(label, getattr(owner, attribute), owner=class_name != "Model"))
        BaseDatabaseWrapper.commit = timed(SQL_LABELS[3], BaseDatabaseWrapper.commit, owner=False)  # type: ignore[method-assign]

        def sql(execute: Any, query: str, params: Any, many: bool, context: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return execute(query, params, many, context)
            finally:
                # The audit chain head is locked FOR UPDATE by every audit.record: its time includes
                # waiting for another worker's transaction to let go of it.
                label = SQL_LABELS[1] if "FOR UPDATE" in query else SQL_LABELS[2]
                issuers[stack[-1] if stack else "the saga itself (steps, connection id, route look-up)"] += 1
                for key in (SQL_LABELS[0], label):
                    entry = totals[key]
                    entry[0] += 1
                    entry[1] += time.perf_counter() - t0

        connections["default"].execute_wrappers.append(sql)
        installed.append(True)

    def start(task_id: str = "", task: Any = None, **_: Any) -> None:
        if not installed:
            install()
        totals.clear()
        issuers.clear()
        stack.clear()
        started[task_id] = time.perf_counter()

    def stop(task_id: str = "", task: Any = None, args: Any = (), **_: Any) -> None:
        elapsed = time.perf_counter() - started.pop(task_id, time.perf_counter())
        line = {
            "task": getattr(task, "name", ""),
            "request_id": str(args[0]) if args else "",
            "time": time.time(),
            "pid": os.getpid(),
            "total_ms": elapsed * 1000,
            "parts": {label: {"calls": n, "ms": seconds * 1000} for label, (n, seconds) in totals.items()},
            "sql_by_issuer": dict(issuers),
        }
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")

    task_prerun.connect(start, weak=False)
    task_postrun.connect(stop, weak=False)


def print_timers(path: Path, request_ids: Iterable[str] | None = None) -> None:
    """The medians per provisioning task of what `--timers` recorded, and the other tasks' cost."""
    if not path.exists():
        print("\nno timers were written")
        return
    wanted = set(request_ids) if request_ids is not None else None
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    provisioning = [r for r in rows if r["task"] in PROFILED_TASKS and (wanted is None or r["request_id"] in wanted)]
    others: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r["task"] not in PROFILED_TASKS:
            others[r["task"].rsplit(".", 1)[-1]].append(r["total_ms"])
    if not provisioning:
        print("\nno provisioning task was timed")
        return
    totals = [r["total_ms"] for r in provisioning]
    print(f"\ninside the worker, per provisioning task ({len(provisioning)} timed; perf_counter wrappers, inclusive:")
    print("audit.record runs inside request_transition, SQL inside most of them)")
    print(f"  {'':<62} {'calls':>6} {'median ms':>9} {'share':>6}")
    print(f"  {'the whole task':<62} {1:>6} {median(totals):>9.1f} {100:>5.0f}%")
    seen = {label for r in provisioning for label in r["parts"]}
    order = [*SQL_LABELS, *(label for label, *_ in TIMED)]
    labels = [label for label in dict.fromkeys(order) if label in seen] + sorted(seen - set(order))
    for label in labels:
        ms = [r["parts"].get(label, {"ms": 0.0})["ms"] for r in provisioning]
        calls = [r["parts"].get(label, {"calls": 0})["calls"] for r in provisioning]
        print(f"  {label:<62} {median(calls):>6.0f} {median(ms):>9.1f} {100 * median(ms) / median(totals):>5.0f}%")
    for name, ms in sorted(others.items()):
        print(f"  other tasks on the same worker(s): {len(ms)} x {name}, median {median(ms):.1f} ms each")
    issuers = list(dict.fromkeys(k for r in provisioning for k in r.get("sql_by_issuer", {})))
    if issuers:
        print("  SQL statements per task by who issued them (the innermost timed part):")
        for name in sorted(issuers, key=lambda k: -median([r["sql_by_issuer"].get(k, 0) for r in provisioning])):
            print(f"    {median([r['sql_by_issuer'].get(name, 0) for r in provisioning]):>5.0f}  {name}")


def iter_profiles(profile_dir: Path) -> Iterator[Path]:
    yield from sorted(profile_dir.glob("*.prof.*"))


if __name__ == "__main__":
    if sys.argv[1:2] != ["worker"]:
        raise SystemExit("usage: python -m bench.world worker [--profile FILE] [--send-log FILE] -- <celery args>")
    _worker_main(sys.argv[2:])


def prepare_worlds(
    backend: Backend, layout: Layout, processes: Processes
) -> tuple[str, dict[str, tuple[float, float] | None], World, World, Portal, Bare]:
    """Database, sandbox, and the two identical worlds (the portal's, filed; the bare script's)."""
    create_database(backend)
    clear_redis(backend)
    database = setup_django()
    logging.getLogger("requests_app").setLevel(logging.WARNING)  # the inventory sync's call log
    specs = silence_rate_limits()
    start_sandbox(processes)
    portal_world = build("portal", layout, PORTAL_ACCOUNTS)
    bare_world = build("bare", layout, BARE_ACCOUNTS)
    portal = register_portal(portal_world)
    submit_requests(portal_world, portal)
    return database, specs, portal_world, bare_world, portal, Bare(bare_world)
