"""A portal with history, for bench/api_history.py and bench/pages_history.py.

`build(shape)` bulk-loads a PostgreSQL database with `shape.requests` peering requests between
`shape.vpcs` VPCs, each request with `shape.events` audit events, and the users who look at them:

| rows | how many |
|---|---|
| departments | `platform` (the Services VPCs' accounts) and max(2, spokes / 100) application departments |
| AWS accounts | 10 VPCs each (at least one per department), across 3 regions |
| VPCs | `vpcs`: max(2, vpcs / 20) Services VPCs (hubs), the rest spokes; every 10th spoke has an owner |
| CIDR blocks, route tables | 2 blocks and 2 route tables of 6 routes per VPC |
| peering requests | `requests`, from a random spoke to a hub (70 %) or to an owned spoke (30 %), statuses drawn from `STATUS_MIX` (mostly decommissioned, active, rejected); at most one live request per VPC pair, so a live draw on a taken pair becomes `decommissioned` |
| provisioning steps | one per planned operation (6) for every request that reached provisioning |
| audit events | `events` per request (its transitions, then the AWS calls), `prev_hash`/`hash` unique 64-hex values (not a valid chain) |
| peerings seen in AWS | one per active request |

Users (password `PASSWORD`):

- `bench-requester`: a member of the first application department, which files about 1/5 of the
  requests at 10,000 requests (so its dashboard has thousands of rows);
- `bench-approver`: a member of `platform` and the owner of every Services VPC, so the requests
  pending on hubs are its approval queue;
- `bench-spoke-owner`: owns every 10th spoke (the accepters of spoke-to-spoke requests);
- `bench-api`: a member of every department but no superuser, so it sees every request through
  the portal's ordinary visibility filter (a superuser skips that filter);
- `bench-requester-<n>`: the requester of each other department.

The database is created on the server named by DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/), under the name the caller chooses; the database the URL
names is never used. Run on its own, this module builds a database and leaves it:

    python bench/seed_history.py --database portal_bench [--requests 10000 --vpcs 500 --events 20]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import ipaddress
import math
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"
PASSWORD = "bench-history-password"
SEED = 20240601
BATCH_SIZE = 5000

VPCS_PER_ACCOUNT = 10
SPOKES_PER_DEPARTMENT = 100
OWNED_SPOKE_EVERY = 10
HUB_SHARE = 0.7  # requests whose accepter is a Services VPC
REGIONS = ("us-east-1", "eu-west-1", "eu-central-1")
HISTORY_DAYS = 730
# What history looks like: mostly closed, a fifth live (one live request per VPC pair).
STATUS_MIX = {
    "decommissioned": 34,
    "active": 14,
    "rejected": 20,
    "cancelled": 10,
    "expired": 6,
    "failed": 3,
    "pending_approval": 9,
    "approved": 1,
    "provisioning": 1,
    "decommissioning": 2,
}
LIVE = frozenset({"pending_approval", "approved", "provisioning", "active", "decommissioning"})
DECIDED = frozenset({"approved", "provisioning", "active", "rejected", "failed", "decommissioning", "decommissioned"})
PROVISIONED = frozenset({"provisioning", "active", "failed", "decommissioning", "decommissioned"})
WITH_CONNECTION = frozenset({"active", "decommissioning", "decommissioned"})
CHECK_CODES = (
    "requester_vpc",
    "accepter_vpc",
    "vpc_ownership",
    "accepter_owner",
    "same_vpc",
    "duplicate_peering",
    "cidr_overlap",
    "requester_route_tables",
    "accepter_route_tables",
    "requester_destination_cidrs",
    "accepter_destination_cidrs",
    "support",
    "inventory_stale",
)


@dataclass(frozen=True)
class Shape:
    requests: int
    vpcs: int
    events: int  # audit events per request

    def describe(self) -> str:
        return f"{self.requests} requests, {self.vpcs} VPCs, {self.events} events per request"


@dataclass(frozen=True)
class Cast:
    """The usernames the benchmarks log in as."""

    requester: str = "bench-requester"
    approver: str = "bench-approver"
    spoke_owner: str = "bench-spoke-owner"
    api: str = "bench-api"


CAST = Cast()


# --- environment ------------------------------------------------------------------------------
def server_url() -> str:
    url = os.environ.get("DATABASE_URL") or DEFAULT_SERVER
    if urlsplit(url).scheme not in ("postgres", "postgresql"):
        raise SystemExit(f"the history benchmarks run on PostgreSQL, not {urlsplit(url).scheme}://")
    return url


def database_url(name: str) -> str:
    return urlunsplit(urlsplit(server_url())._replace(path="/" + name))


def prepare_environment(database: str, var_prefix: str) -> Path:
    """Point the settings at `database` and a throw-away var directory, before Django reads them."""
    var_dir = Path(tempfile.mkdtemp(prefix=var_prefix))
    os.environ["DATABASE_URL"] = database_url(database)
    os.environ["PORTAL_VAR_DIR"] = str(var_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "peering_portal.settings"
    # DEBUG on, as the benchmarks' brief allows: with it off the static files need collectstatic
    # (a manifest) and https. Django then also keeps a log of the queries of each request.
    os.environ["DJANGO_DEBUG"] = "1"
    return var_dir


def run_on_server(statement: str, name: str) -> None:
    """CREATE/DROP DATABASE `name` (`{}` in `statement`), from the server's `postgres` database."""
    import psycopg
    from psycopg import sql

    maintenance = urlunsplit(urlsplit(server_url())._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(sql.SQL(statement).format(sql.Identifier(name)))


def database_exists(name: str) -> bool:
    import psycopg

    maintenance = urlunsplit(urlsplit(server_url())._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is not None


def recreate_database(name: str) -> None:
    run_on_server("DROP DATABASE IF EXISTS {} WITH (FORCE)", name)
    run_on_server("CREATE DATABASE {}", name)


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def use_database(name: str) -> None:
    """Point the default connection at another database (as Django's test runner does)."""
    from django.contrib.contenttypes.models import ContentType
    from django.db import connections

    connections.close_all()
    connections["default"].settings_dict["NAME"] = name
    ContentType.objects.clear_cache()


def server_version() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        (version,) = cursor.fetchone()
    return f"PostgreSQL {version}"


def matches(shape: Shape) -> bool:
    """Whether the current database already holds exactly this shape (for --reuse)."""
    from django.contrib.auth import get_user_model
    from django.db.utils import ProgrammingError

    from requests_app.models import AuditEvent, PeeringRequest, Vpc

    try:
        return (
            PeeringRequest.objects.count() == shape.requests
            and Vpc.objects.count() == shape.vpcs
            and AuditEvent.objects.count() == shape.requests * shape.events
            and get_user_model().objects.filter(username__in=[CAST.requester, CAST.approver, CAST.api]).count() == 3
        )
    except ProgrammingError:  # not migrated
        return False


def migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def ensure(name: str, shape: Shape, *, reuse: bool, log: Any = print) -> bool:
    """Make `name` the current database holding `shape`; True if it was (re)built."""
    if reuse and database_exists(name):
        use_database(name)
        migrate()  # a reused database gets migrations added since it was built
        if matches(shape):
            log(f"reusing database {name} ({shape.describe()})")
            return False
    from django.db import connections

    connections.close_all()
    recreate_database(name)
    use_database(name)
    start = time.perf_counter()
    migrate()
    migrated = time.perf_counter()
    counts = build(shape)
    log(
        f"built database {name} in {time.perf_counter() - start:.1f} s (migrate {migrated - start:.1f} s): "
        + ", ".join(f"{n} {what}" for what, n in counts.items())
    )
    return True


# --- building ---------------------------------------------------------------------------------
@contextlib.contextmanager
def explicit_timestamps(*models: Any) -> Iterator[None]:
    """Let bulk_create store the created_at/updated_at we give (history is not all from today)."""
    saved = []
    for model in models:
        for field in model._meta.concrete_fields:
            if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
                saved.append((field, field.auto_now, field.auto_now_add))
                field.auto_now = field.auto_now_add = False
    try:
        yield
    finally:
        for field, auto_now, auto_now_add in saved:
            field.auto_now, field.auto_now_add = auto_now, auto_now_add


def vpc_id(index: int) -> str:
    return f"vpc-{index:017x}"


def vpc_blocks(index: int) -> list[str]:
    """Two /24s of 10.0.0.0/8 of their own."""
    base = int(ipaddress.IPv4Address("10.0.0.0")) + index * 2 * 256
    return [str(ipaddress.IPv4Network((base + k * 256, 24))) for k in range(2)]


def pick(rng: random.Random, mix: dict[str, int]) -> str:
    return rng.choices(list(mix), weights=list(mix.values()))[0]


def fake_hash(n: int) -> str:
    return hashlib.sha256(f"bench-history-{n}".encode()).hexdigest()


@dataclass
class _World:
    now: datetime
    departments: list[Any]  # [platform, app-0, app-1, ...]
    accounts: list[Any]
    vpcs: list[Any]
    hub_indexes: list[int]
    spoke_indexes: list[int]
    owned_spokes: list[int]
    department_of: dict[int, Any]  # VPC index -> department
    users: dict[str, Any]
    requester_of: dict[int, Any]  # department pk -> requesting user


def _inventory(shape: Shape, rng: random.Random) -> _World:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from requests_app.domain import cidrs
    from requests_app.models import AwsAccount, Department, RouteTable, Vpc, VpcCidr

    now = timezone.now()
    n_hubs = max(2, shape.vpcs // 20)
    n_spokes = shape.vpcs - n_hubs
    n_app_departments = max(2, math.ceil(n_spokes / SPOKES_PER_DEPARTMENT))
    n_hub_accounts = math.ceil(n_hubs / VPCS_PER_ACCOUNT)
    n_spoke_accounts = max(n_app_departments, math.ceil(n_spokes / VPCS_PER_ACCOUNT))

    departments = Department.objects.bulk_create(
        [Department(slug="platform", name="Platform")]
        + [Department(slug=f"app-{d}", name=f"Application team {d}") for d in range(n_app_departments)]
    )
    account_rows = []
    for a in range(n_hub_accounts + n_spoke_accounts):
        if a < n_hub_accounts:
            department, name = departments[0], f"shared-services-{a}"
        else:
            s = a - n_hub_accounts
            department, name = departments[1 + s * n_app_departments // n_spoke_accounts], f"workload-{s}"
        number = f"{200_000_000_000 + a}"
        account_rows.append(
            AwsAccount(
                account_id=number,
                name=name,
                department=department,
                role_arn=f"arn:aws:iam::{number}:role/PeeringPortalRole",
                regions=list(REGIONS),
                last_synced_at=now,
            )
        )
    accounts = AwsAccount.objects.bulk_create(account_rows, batch_size=BATCH_SIZE)

    # VPC indexes 0..n_hubs-1 are the hubs, then the spokes.
    vpc_rows = []
    department_of: dict[int, Any] = {}
    for v in range(shape.vpcs):
        if v < n_hubs:
            account = accounts[v // VPCS_PER_ACCOUNT]
            name = f"services-{REGIONS[v % len(REGIONS)]}-{v}"
        else:
            s = v - n_hubs
            account = accounts[n_hub_accounts + s * n_spoke_accounts // n_spokes]
            name = f"app-{s}"
        department_of[v] = account.department
        vpc_rows.append(
            Vpc(
                vpc_id=vpc_id(v),
                account=account,
                region=REGIONS[(v if v < n_hubs else v // VPCS_PER_ACCOUNT) % 3],
                name=name,
                is_services_vpc=v < n_hubs,
                dns_hostnames=True,
                dns_support=True,
                synced_at=now,
            )
        )
    vpcs = Vpc.objects.bulk_create(vpc_rows, batch_size=BATCH_SIZE)

    cidr_rows, table_rows = [], []
    for v, vpc in enumerate(vpcs):
        blocks = vpc_blocks(v)
        for j, block in enumerate(blocks):
            first, last = cidrs.address_range(block)
            cidr_rows.append(VpcCidr(vpc=vpc, cidr=block, is_primary=j == 0, first_address=first, last_address=last))
        for t in range(2):
            routes = [{"destination": b, "target": "local", "state": "active"} for b in blocks]
            routes += [
                {"destination": f"172.{16 + t}.{k}.0/24", "target": f"tgw-{v * 8 + k:017x}", "state": "active"}
                for k in range(4)
            ]
            table_rows.append(
                RouteTable(
                    route_table_id=f"rtb-{v * 2 + t:017x}",
                    vpc=vpc,
                    name="main" if t == 0 else "private",
                    is_main=t == 0,
                    routes=routes,
                )
            )
    VpcCidr.objects.bulk_create(cidr_rows, batch_size=BATCH_SIZE)
    RouteTable.objects.bulk_create(table_rows, batch_size=BATCH_SIZE)

    user_model = get_user_model()
    usernames = [CAST.requester, CAST.approver, CAST.spoke_owner, CAST.api]
    usernames += [f"{CAST.requester}-{d}" for d in range(1, n_app_departments)]
    users = {}
    for username in usernames:
        user = user_model(username=username, email=f"{username}@example.com")
        user.set_password(PASSWORD)
        users[username] = user
    user_model.objects.bulk_create(users.values())
    users = {u.username: u for u in user_model.objects.filter(username__in=usernames)}
    requester_of = {departments[1].pk: users[CAST.requester]}
    for d in range(1, n_app_departments):
        requester_of[departments[1 + d].pk] = users[f"{CAST.requester}-{d}"]

    members = [(departments[0], users[CAST.approver])]
    members += [(department, user) for department, user in zip(departments[1:], requester_of.values(), strict=True)]
    members += [(department, users[CAST.api]) for department in departments]
    Department.members.through.objects.bulk_create(
        [Department.members.through(department=d, user=u) for d, u in members]
    )
    hub_indexes = list(range(n_hubs))
    spoke_indexes = list(range(n_hubs, shape.vpcs))
    owned_spokes = [v for v in spoke_indexes if (v - n_hubs) % OWNED_SPOKE_EVERY == 0]
    owners = [(v, users[CAST.approver]) for v in hub_indexes] + [(v, users[CAST.spoke_owner]) for v in owned_spokes]
    Vpc.owners.through.objects.bulk_create(
        [Vpc.owners.through(vpc_id=vpcs[v].pk, user_id=u.pk) for v, u in owners], batch_size=BATCH_SIZE
    )
    return _World(
        now, departments, accounts, vpcs, hub_indexes, spoke_indexes, owned_spokes, department_of, users, requester_of
    )


def _checks(rng: random.Random, a: Any, b: Any) -> list[dict[str, Any]]:
    out = []
    for code in CHECK_CODES:
        status = "warn" if code == "inventory_stale" and rng.random() < 0.2 else "pass"
        detail = (
            f"the inventory of {a.vpc_id} was read more than a day ago"
            if status == "warn"
            else f"{code.replace('_', ' ')}: {a.vpc_id} and {b.vpc_id} are fine"
        )
        out.append({"code": code, "status": status, "detail": detail, "attr": None})
    return out


def _plan(a: Any, b: Any) -> list[dict[str, Any]]:
    acc_a, acc_b = a.account.account_id, b.account.account_id
    plan: list[dict[str, Any]] = [
        {
            "operation": "CreateVpcPeeringConnection",
            "account_id": acc_a,
            "region": a.region,
            "parameters": {"VpcId": a.vpc_id, "PeerVpcId": b.vpc_id, "PeerOwnerId": acc_b, "PeerRegion": b.region},
            "detail": f"{a.vpc_id} → {b.vpc_id} (owner {acc_b}, {b.region})",
        },
        {
            "operation": "AcceptVpcPeeringConnection",
            "account_id": acc_b,
            "region": b.region,
            "parameters": {},
            "detail": f"as account {acc_b} in {b.region}",
        },
    ]
    for side, vpc, peer in (("requester", a, b), ("accepter", b, a)):
        for block in vpc_blocks_of(peer):
            table = f"rtb-{index_of(vpc) * 2:017x}"
            plan.append(
                {
                    "operation": "CreateRoute",
                    "account_id": vpc.account.account_id,
                    "region": vpc.region,
                    "parameters": {"RouteTableId": table, "DestinationCidrBlock": block},
                    "detail": f"{side} table {table}: {block} via the peering",
                }
            )
    return plan


def index_of(vpc: Any) -> int:
    return int(vpc.vpc_id[4:], 16)


def vpc_blocks_of(vpc: Any) -> list[str]:
    return vpc_blocks(index_of(vpc))


def _requests(shape: Shape, world: _World, rng: random.Random) -> tuple[list[Any], list[Any], list[Any]]:
    from requests_app.models import ObservedPeering, PeeringRequest, ProvisioningStep

    approver, spoke_owner = world.users[CAST.approver], world.users[CAST.spoke_owner]
    taken: set[str] = set()
    rows, steps, observed = [], [], []
    for i in range(shape.requests):
        status = pick(rng, STATUS_MIX)
        holds_connection = status == "failed" and rng.random() < 0.5
        for _attempt in range(20):
            a = rng.choice(world.spoke_indexes)
            to_hub = rng.random() < HUB_SHARE or len(world.owned_spokes) < 2
            b = rng.choice(world.hub_indexes) if to_hub else rng.choice(world.owned_spokes)
            if a == b:
                continue
            key = PeeringRequest.make_pair_key(vpc_id(a), vpc_id(b))
            if (status not in LIVE and not holds_connection) or key not in taken:
                break
        else:  # no free pair for a live request: it is history instead
            status, holds_connection = "decommissioned", False
        if status in LIVE or holds_connection:
            taken.add(key)
        va, vb = world.vpcs[a], world.vpcs[b]
        department = world.department_of[a]
        if status in LIVE:
            created = world.now - timedelta(minutes=rng.randrange(10, 60 * 24 * 30))
        else:
            created = world.now - timedelta(minutes=rng.randrange(60 * 24 * 30, 60 * 24 * HISTORY_DAYS))
        decided = status in DECIDED
        plan = _plan(va, vb)
        connection = f"pcx-{i:017x}" if status in WITH_CONNECTION or holds_connection else ""
        drift = None
        if status == "active" and rng.random() < 0.03:
            drift = {"findings": [{"code": "route_missing", "detail": f"route to {vpc_blocks_of(vb)[0]} is missing"}]}
        request = PeeringRequest(
            id=uuid.UUID(int=rng.getrandbits(128), version=4),
            status=status,
            requester_vpc=va,
            accepter_vpc=vb,
            pair_key=key,
            requester_route_tables=[f"rtb-{a * 2:017x}"],
            accepter_route_tables=[f"rtb-{b * 2:017x}"],
            requester_destination_cidrs=vpc_blocks(b),
            accepter_destination_cidrs=vpc_blocks(a),
            allow_dns_resolution=rng.random() < 0.3,
            justification=f"Workload {va.name} needs {vb.name} (directory, logging and the proxy); ticket CHG-{i:06d}.",
            external_ref=f"CHG-{i:06d}",
            requested_by=world.requester_of[department.pk],
            department=department,
            decided_by=(approver if b in world.hub_indexes else spoke_owner) if decided else None,
            decided_at=created + timedelta(hours=rng.randrange(1, 48)) if decided else None,
            decision_comment="not without a firewall review" if status == "rejected" else "",
            aws_peering_connection_id=connection,
            failure_reason="CreateRoute: RouteAlreadyExists" if status == "failed" else "",
            failed_operation="provision" if status == "failed" else "",
            checks=_checks(rng, va, vb),
            plan=plan,
            drift=drift,
            created_at=created,
            updated_at=created + timedelta(days=rng.randrange(0, 30)),
        )
        rows.append(request)
        if status in PROVISIONED:
            for n, op in enumerate(plan):
                steps.append(
                    ProvisioningStep(
                        request=request,
                        name=f"{op['operation']} {n}",
                        position=n,
                        state="failed" if status == "failed" and n == len(plan) - 1 else "done",
                        attempts=1,
                        aws_id=connection,
                        outcome="ok",
                        started_at=created + timedelta(hours=50, seconds=n),
                        finished_at=created + timedelta(hours=50, seconds=n + 1),
                    )
                )
        if status == "active":
            observed.append(
                ObservedPeering(
                    connection_id=connection,
                    requester_vpc_id=va.vpc_id,
                    accepter_vpc_id=vb.vpc_id,
                    requester_account_id=va.account.account_id,
                    accepter_account_id=vb.account.account_id,
                    status="active",
                    portal_request_id=str(request.pk),
                    seen_at=world.now,
                )
            )
    return rows, steps, observed


# (action, to_status) a request's history starts with, by where it ended.
_TRANSITIONS = {
    "pending_approval": [],
    "approved": [("request.approved", "approved")],
    "provisioning": [("request.approved", "approved"), ("provisioning.started", "provisioning")],
    "active": [
        ("request.approved", "approved"),
        ("provisioning.started", "provisioning"),
        ("provisioning.completed", "active"),
    ],
    "rejected": [("request.rejected", "rejected")],
    "cancelled": [("request.cancelled", "cancelled")],
    "expired": [("request.expired", "expired")],
    "failed": [
        ("request.approved", "approved"),
        ("provisioning.started", "provisioning"),
        ("provisioning.failed", "failed"),
    ],
    "decommissioning": [
        ("request.approved", "approved"),
        ("provisioning.started", "provisioning"),
        ("provisioning.completed", "active"),
        ("request.decommission_requested", "decommissioning"),
    ],
    "decommissioned": [
        ("request.approved", "approved"),
        ("provisioning.started", "provisioning"),
        ("provisioning.completed", "active"),
        ("request.decommission_requested", "decommissioning"),
        ("decommissioning.completed", "decommissioned"),
    ],
}


def _events(shape: Shape, requests: list[Any], world: _World) -> Iterator[Any]:
    from requests_app.models import AuditEvent

    n = 0
    previous = "0" * 64
    for request in requests:
        plan = request.plan
        history = [("request.submitted", "pending_approval"), *_TRANSITIONS[request.status]]
        status = ""
        for k in range(shape.events):
            at = request.created_at + timedelta(minutes=k)
            digest = fake_hash(n)
            if k < len(history):
                action, to_status = history[k]
                actor = request.requested_by if k == 0 or action == "request.cancelled" else request.decided_by
                fields = {
                    "action": action,
                    "from_status": status,
                    "to_status": to_status,
                    "actor": actor,
                    "actor_label": actor.username if actor else "system",
                    "message": f"{status or 'new'} → {to_status}",
                    "data": {"external_ref": request.external_ref, "checks": request.checks} if k == 0 else {},
                }
                status = to_status
            else:
                op = plan[k % len(plan)]
                fields = {
                    "action": "aws.call",
                    "operation": op["operation"],
                    "account_id": op["account_id"],
                    "region": op["region"],
                    "result": "ok",
                    "actor": None,
                    "actor_label": "worker",
                    "message": op["detail"],
                    "data": {"parameters": op["parameters"]},
                }
            yield AuditEvent(request=request, created_at=at, prev_hash=previous, hash=digest, **fields)
            previous = digest
            n += 1


def build(shape: Shape, seed: int = SEED) -> dict[str, int]:
    """Load `shape` into the current (empty, migrated) database; returns what it made."""
    from django.db import connection, transaction

    from requests_app.models import AuditChainHead, AuditEvent, ObservedPeering, PeeringRequest, ProvisioningStep

    if shape.vpcs < 4:
        raise SystemExit("give at least 4 VPCs (2 Services VPCs and 2 spokes)")
    rng = random.Random(seed)
    with transaction.atomic(), explicit_timestamps(PeeringRequest):
        world = _inventory(shape, rng)
        requests, steps, observed = _requests(shape, world, rng)
        PeeringRequest.objects.bulk_create(requests, batch_size=BATCH_SIZE)
        ProvisioningStep.objects.bulk_create(steps, batch_size=BATCH_SIZE)
        ObservedPeering.objects.bulk_create(observed, batch_size=BATCH_SIZE)
        batch: list[Any] = []
        events = 0
        last = "0" * 64
        for event in _events(shape, requests, world):
            batch.append(event)
            last = event.hash
            if len(batch) == BATCH_SIZE:
                AuditEvent.objects.bulk_create(batch)
                events += len(batch)
                batch = []
        AuditEvent.objects.bulk_create(batch)
        events += len(batch)
        AuditChainHead.objects.create(last_hash=last)
    # Autovacuum would vacuum and analyse tables this fresh within minutes of a load; do it now,
    # so plans (and index-only scans) are those of a live server.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    statuses: dict[str, int] = {}
    for r in requests:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    live = sum(n for s, n in statuses.items() if s in LIVE)
    return {
        "VPCs": len(world.vpcs),
        "requests": len(requests),
        "live": live,
        "pending": statuses.get("pending_approval", 0),
        "steps": len(steps),
        "audit events": events,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="portal_bench", help="database to (re)create (default portal_bench)")
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--vpcs", type=int, default=500)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--reuse", action="store_true", help="keep the database if it already holds this shape")
    args = parser.parse_args(argv)
    var_dir = prepare_environment(args.database, "bench-seed-")
    try:
        setup_django()
        ensure(args.database, Shape(args.requests, args.vpcs, args.events), reuse=args.reuse)
    finally:
        from django.db import connections

        connections.close_all()
        shutil.rmtree(var_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
