"""Pre-flight latency against the size of the inventory.

Builds inventories of 500 and 5,000 VPCs (4 CIDR blocks and 2 route tables of 20 routes per VPC,
plus peering requests with the routes the portal made or plans for them, and peerings seen in
AWS), with the measured accepter a hub of `HUB_SPOKES` live spokes at every size, times
`peering_request_evaluate` -- what
`POST /api/v1/peering-requests/preflight/` runs -- at each size, and prints the median of the
largest size over the smallest. The goal is a ratio <= 2: a pre-flight reads a few rows through
indexes, so its cost must not grow with the inventory.

    python bench/preflight.py [--sizes 500,5000] [--repeat 50]

Without DATABASE_URL it uses a throw-away SQLite file in a temporary directory. With a PostgreSQL
DATABASE_URL it creates a database named bench_preflight on that server and drops it at the end;
the database the URL names is never used. The script reports and does not judge: it exits 0
whether or not the goal is met, and the ratio is the last line it prints.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from requests_app.peering.preflight import Evaluation, PeeringDraft

ROOT = Path(__file__).resolve().parent.parent
BENCH_DATABASE = "bench_preflight"
GOAL = 2.0
WARMUP = 5
BATCH_SIZE = 2000
SEED = 20240601

CIDRS_PER_VPC = 4
TABLES_PER_VPC = 2
ROUTES_PER_TABLE = 20  # CIDRS_PER_VPC "local" routes, the rest to 172.16.0.0/12
VPCS_PER_ACCOUNT = 10
ACCOUNTS_PER_DEPARTMENT = 10
OWNED_EVERY = 10  # every 10th VPC has an owner and so can be peered with
REGIONS = ("us-east-1", "eu-west-1", "eu-central-1")
# VPC blocks are /24s of 10.0.0.0/8, so at most 65,536 of them.
MAX_SIZE = 2**16 // CIDRS_PER_VPC

LIVE_MIX = {"active": 60, "pending_approval": 20, "approved": 8, "provisioning": 6, "decommissioning": 6}
CLOSED_MIX = {"rejected": 30, "cancelled": 20, "expired": 10, "decommissioned": 40}
UNMANAGED_MIX = {"active": 50, "pending-acceptance": 20, "deleted": 20, "rejected": 10}
# Live requests on the measured VPCs, so the quota counts have rows to find.
SEEDED_REQUESTER = ("active", "active", "active", "approved")
SEEDED_ACCEPTER = ("active", "active", "pending_approval")
# The measured accepter is a Services VPC with this many live spokes at every size: their
# routes in its tables and their blocks are what the hub-safety checks read.
HUB_SPOKES = 40
HUB_MIX = {"active": 80, "pending_approval": 10, "approved": 5, "provisioning": 5}


# --- environment ------------------------------------------------------------------------------
def prepare_environment() -> tuple[Path, str | None]:
    """Point the settings at a throw-away database, before Django reads them.

    Returns the temporary var directory and, for PostgreSQL, the URL of the server's `postgres`
    database (from which bench_preflight is created and dropped).
    """
    var_dir = Path(tempfile.mkdtemp(prefix="bench-preflight-"))
    os.environ["PORTAL_VAR_DIR"] = str(var_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "peering_portal.settings"
    # As in production: with DEBUG on, Django would also keep a log of every query it runs.
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(48))
    url = os.environ.get("DATABASE_URL")
    if not url:
        return var_dir, None
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        shutil.rmtree(var_dir, ignore_errors=True)
        raise SystemExit(f"bench/preflight.py runs on SQLite or PostgreSQL, not {parts.scheme}://")
    os.environ["DATABASE_URL"] = urlunsplit(parts._replace(path="/" + BENCH_DATABASE))
    return var_dir, urlunsplit(parts._replace(path="/postgres"))


def run_on_server(maintenance_url: str, statement: str) -> None:
    """Run CREATE/DROP DATABASE for bench_preflight (`{}` in `statement`) outside a transaction."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        conn.execute(sql.SQL(statement).format(sql.Identifier(BENCH_DATABASE)))


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

        return f"SQLite {sqlite3.sqlite_version} (throw-away file)"
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        (version,) = cursor.fetchone()
    return f"PostgreSQL {version}, database {connection.settings_dict['NAME']}"


# --- inventory --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Users:
    requester: Any  # files the measured pre-flight; member of the requester VPC's department
    owner: Any  # owns the VPCs that can be peered with


@dataclass(frozen=True)
class Subjects:
    """What the measured pre-flights name."""

    requester_vpc: str
    accepter_vpc: str
    accepter_cidrs: tuple[str, ...]
    third_vpc: str
    third_cidr: str  # inside a block of the third VPC: a transitive destination
    department_ids: frozenset[int]


def vpc_id(index: int) -> str:
    return f"vpc-{index:017x}"


def vpc_block(number: int) -> str:
    """The `number`-th /24 of 10.0.0.0/8."""
    return str(ipaddress.IPv4Network((int(ipaddress.IPv4Address("10.0.0.0")) + number * 256, 24)))


def pick(rng: random.Random, mix: dict[str, int]) -> str:
    return rng.choices(list(mix), weights=list(mix.values()))[0]


def create_users() -> Users:
    from django.contrib.auth import get_user_model

    model = get_user_model()
    requester = model.objects.create(username="bench-requester")
    owner = model.objects.create(username="bench-owner")
    return Users(requester=requester, owner=owner)


def clear_inventory() -> None:
    from requests_app.models import (
        AwsAccount,
        Department,
        ManagedRoute,
        ObservedPeering,
        PeeringRequest,
        RouteTable,
        Vpc,
        VpcCidr,
    )

    for model in (
        ManagedRoute,
        PeeringRequest,
        ObservedPeering,
        RouteTable,
        VpcCidr,
        Vpc.owners.through,
        Vpc,
        AwsAccount,
        Department.members.through,
        Department,
    ):
        model.objects.all().delete()


def random_pairs(rng: random.Random, size: int) -> Iterator[tuple[int, int]]:
    """Endless random (requester, accepter) pairs of distinct VPC indexes."""
    while True:
        a, b = rng.sample(range(size), 2)
        yield a, b


def other_vpc(rng: random.Random, size: int, not_this: int) -> int:
    """A random VPC index other than `not_this`."""
    v = rng.randrange(size - 1)
    return v if v < not_this else v + 1


def build_inventory(size: int, users: Users, rng: random.Random) -> Subjects:
    """Replace the inventory with `size` VPCs and the requests and peerings around them."""
    from django.db import connection, transaction
    from django.utils import timezone

    from requests_app.domain import cidrs
    from requests_app.models import (
        AwsAccount,
        Department,
        ManagedRoute,
        ObservedPeering,
        PeeringRequest,
        RouteTable,
        Vpc,
        VpcCidr,
    )

    clear_inventory()
    now = timezone.now()
    n_accounts = math.ceil(size / VPCS_PER_ACCOUNT)
    n_departments = math.ceil(n_accounts / ACCOUNTS_PER_DEPARTMENT)
    requester_i, accepter_i, third_i = rng.sample(range(size), 3)
    measured_pair = PeeringRequest.make_pair_key(vpc_id(requester_i), vpc_id(accepter_i))

    with transaction.atomic():
        departments = Department.objects.bulk_create(
            [Department(slug=f"dept-{d}", name=f"Department {d}") for d in range(n_departments)],
            batch_size=BATCH_SIZE,
        )
        accounts = AwsAccount.objects.bulk_create(
            [
                AwsAccount(
                    account_id=f"{100_000_000_000 + a}",
                    name=f"account {a}",
                    department=departments[a // ACCOUNTS_PER_DEPARTMENT],
                    role_arn=f"arn:aws:iam::{100_000_000_000 + a}:role/PeeringPortal",
                    regions=list(REGIONS),
                    last_synced_at=now,
                )
                for a in range(n_accounts)
            ],
            batch_size=BATCH_SIZE,
        )
        vpcs = Vpc.objects.bulk_create(
            [
                Vpc(
                    vpc_id=vpc_id(v),
                    account=accounts[v // VPCS_PER_ACCOUNT],
                    region=REGIONS[(v // VPCS_PER_ACCOUNT) % len(REGIONS)],
                    name=f"app-{v}",
                    is_services_vpc=v % 50 == 0 or v == accepter_i,
                    dns_hostnames=True,
                    dns_support=True,
                    synced_at=now,
                )
                for v in range(size)
            ],
            batch_size=BATCH_SIZE,
        )

        # Blocks dealt out in random order, so neighbouring addresses belong to unrelated VPCs.
        blocks = list(range(size * CIDRS_PER_VPC))
        rng.shuffle(blocks)
        vpc_cidrs = [[vpc_block(b) for b in blocks[v * CIDRS_PER_VPC : (v + 1) * CIDRS_PER_VPC]] for v in range(size)]
        cidr_rows = []
        for vpc, own in zip(vpcs, vpc_cidrs, strict=True):
            for j, cidr in enumerate(own):
                first, last = cidrs.address_range(cidr)
                cidr_rows.append(VpcCidr(vpc=vpc, cidr=cidr, is_primary=j == 0, first_address=first, last_address=last))
        VpcCidr.objects.bulk_create(cidr_rows, batch_size=BATCH_SIZE)

        # Each table: a "local" route per VPC block, then routes to 172.16.0.0/12 (outside every
        # VPC, so they conflict with no peering route).
        table_rows = []
        for v, (vpc, own) in enumerate(zip(vpcs, vpc_cidrs, strict=True)):
            for t in range(TABLES_PER_VPC):
                routes = [{"destination": c, "target": "local", "state": "active"} for c in own]
                routes += [
                    {
                        "destination": f"172.{16 + t}.{k}.0/24",
                        "target": f"{('pcx', 'tgw', 'nat')[k % 3]}-{v * 64 + k:017x}",
                        "state": "active",
                    }
                    for k in range(ROUTES_PER_TABLE - len(own))
                ]
                table_rows.append(
                    RouteTable(
                        route_table_id=f"rtb-{v * TABLES_PER_VPC + t:017x}",
                        vpc=vpc,
                        name="main" if t == 0 else f"private-{t}",
                        is_main=t == 0,
                        routes=routes,
                    )
                )
        RouteTable.objects.bulk_create(table_rows, batch_size=BATCH_SIZE)

        owned = {v for v in range(size) if v % OWNED_EVERY == 0} | {accepter_i}
        Vpc.owners.through.objects.bulk_create(
            [Vpc.owners.through(vpc_id=vpcs[v].pk, user_id=users.owner.pk) for v in sorted(owned)],
            batch_size=BATCH_SIZE,
        )
        requester_department = departments[requester_i // VPCS_PER_ACCOUNT // ACCOUNTS_PER_DEPARTMENT]
        Department.members.through.objects.create(department=requester_department, user=users.requester)

        # Peering requests: size/5 live ones (one per VPC pair, never the measured pair), a few of
        # them on the measured VPCs so the quota counts find something, and size/10 closed ones.
        def request(a: int, b: int, status: str) -> PeeringRequest:
            return PeeringRequest(
                status=status,
                requester_vpc=vpcs[a],
                accepter_vpc=vpcs[b],
                pair_key=PeeringRequest.make_pair_key(vpc_id(a), vpc_id(b)),
                justification="benchmark inventory",
                requested_by=users.requester,
                department=departments[a // VPCS_PER_ACCOUNT // ACCOUNTS_PER_DEPARTMENT],
            )

        pairs = random_pairs(rng, size)
        seeded = [(requester_i, other_vpc(rng, size, requester_i), status) for status in SEEDED_REQUESTER]
        seeded += [(other_vpc(rng, size, accepter_i), accepter_i, status) for status in SEEDED_ACCEPTER]
        spokes = rng.sample([v for v in range(size) if v not in (requester_i, accepter_i)], HUB_SPOKES)
        seeded += [(spoke, accepter_i, pick(rng, HUB_MIX)) for spoke in spokes]
        live_pairs: dict[str, tuple[int, int, str]] = {}
        for a, b, status in seeded:
            key = PeeringRequest.make_pair_key(vpc_id(a), vpc_id(b))
            if key != measured_pair:
                live_pairs.setdefault(key, (a, b, status))
        while len(live_pairs) < size // 5:
            a, b = next(pairs)
            key = PeeringRequest.make_pair_key(vpc_id(a), vpc_id(b))
            if key != measured_pair and key not in live_pairs:
                live_pairs[key] = (a, b, pick(rng, LIVE_MIX))
        requests = [request(a, b, status) for a, b, status in live_pairs.values()]
        requests += [request(*next(pairs), pick(rng, CLOSED_MIX)) for _ in range(size // 10)]
        for number, made in enumerate(requests):
            if made.status in ("active", "decommissioning", "decommissioned"):
                made.aws_peering_connection_id = f"pcx-{0x800000 + number:017x}"
        PeeringRequest.objects.bulk_create(requests, batch_size=BATCH_SIZE)

        # The routes each request plans or the portal made: every table of each side to the
        # other side's blocks (4 blocks x 2 tables x 2 sides), as submit and the saga record them.
        route_state = {
            "pending_approval": "planned",
            "approved": "planned",
            "provisioning": "planned",
            "active": "created",
            "decommissioning": "created",
            "decommissioned": "removed",
        }
        index_of = {vpc.pk: v for v, vpc in enumerate(vpcs)}
        route_rows = [
            ManagedRoute(
                request=made,
                side=side,
                route_table_id=f"rtb-{index_of[own] * TABLES_PER_VPC + t:017x}",
                destination=block,
                state=route_state.get(made.status, "planned"),
                changed_at=now,
            )
            for made in requests
            for side, own, peer in (
                ("requester", made.requester_vpc_id, made.accepter_vpc_id),
                ("accepter", made.accepter_vpc_id, made.requester_vpc_id),
            )
            for t in range(TABLES_PER_VPC)
            for block in vpc_cidrs[index_of[peer]]
        ]
        ManagedRoute.objects.bulk_create(route_rows, batch_size=BATCH_SIZE)

        # Peerings seen in AWS: half of the active requests' connections, and size/10 that the
        # portal did not make.
        def observed(number: int, a: int, b: int, status: str, portal_request_id: str = "") -> ObservedPeering:
            return ObservedPeering(
                connection_id=f"pcx-{number:017x}",
                requester_vpc_id=vpc_id(a),
                accepter_vpc_id=vpc_id(b),
                requester_account_id=accounts[a // VPCS_PER_ACCOUNT].account_id,
                accepter_account_id=accounts[b // VPCS_PER_ACCOUNT].account_id,
                status=status,
                portal_request_id=portal_request_id,
                seen_at=now,
            )

        index = {vpc.pk: v for v, vpc in enumerate(vpcs)}
        active = [r for r in requests if r.status == "active"]
        seen = [
            observed(n, index[r.requester_vpc_id], index[r.accepter_vpc_id], "active", str(r.pk))
            for n, r in enumerate(active[::2])
        ]
        unmanaged = ((a, b) for a, b in pairs if PeeringRequest.make_pair_key(vpc_id(a), vpc_id(b)) != measured_pair)
        # One made outside the portal on each measured VPC at every size (a hub usually has some),
        # so the checks read the same kinds of rows whatever the size; more may land there at random.
        seen += [
            observed(len(seen), requester_i, other_vpc(rng, size, requester_i), "active"),
            observed(len(seen) + 1, other_vpc(rng, size, accepter_i), accepter_i, "active"),
        ]
        seen += [observed(len(seen) + n, *next(unmanaged), pick(rng, UNMANAGED_MIX)) for n in range(size // 10)]
        ObservedPeering.objects.bulk_create(seen, batch_size=BATCH_SIZE)

    if connection.vendor == "postgresql":
        # Autovacuum would analyse tables this fresh within a minute; do it now, so the planner
        # works from statistics as it would on a live server. (Nothing analyses a SQLite file.)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")

    accepter_cidrs = tuple(vpc_cidrs[accepter_i])
    third_block = ipaddress.IPv4Network(vpc_cidrs[third_i][1])
    return Subjects(
        requester_vpc=vpc_id(requester_i),
        accepter_vpc=vpc_id(accepter_i),
        accepter_cidrs=accepter_cidrs,
        third_vpc=vpc_id(third_i),
        third_cidr=str(list(third_block.subnets(new_prefix=26))[1]),
        department_ids=frozenset({requester_department.pk}),
    )


# --- measuring --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measurement:
    size: int
    draft: str
    median_ms: float
    p95_ms: float
    queries: int


def drafts(subjects: Subjects) -> dict[str, PeeringDraft]:
    from requests_app.peering.preflight import PeeringDraft

    return {
        "plain": PeeringDraft(requester_vpc=subjects.requester_vpc, accepter_vpc=subjects.accepter_vpc),
        # One destination inside a third VPC: the transitive-routing failure, which looks up
        # the VPC owning that CIDR to name it.
        "transitive": PeeringDraft(
            requester_vpc=subjects.requester_vpc,
            accepter_vpc=subjects.accepter_vpc,
            requester_destination_cidrs=[*subjects.accepter_cidrs, subjects.third_cidr],
        ),
    }


def evaluate(draft: PeeringDraft, department_ids: frozenset[int]) -> Evaluation:
    from requests_app.peering.preflight import peering_request_evaluate

    return peering_request_evaluate(draft=draft, department_ids=set(department_ids))


def check_outcome(name: str, evaluation: Evaluation, subjects: Subjects) -> None:
    """Warn if a draft does not take the path it is meant to measure."""
    failed = [r for r in evaluation.results if r.status == "fail"]
    if name == "plain":
        expected = not failed
    else:
        expected = [r.code for r in failed] == ["destination_outside_peer"] and subjects.third_vpc in failed[0].detail
    if not expected:
        problems = "; ".join(f"{r.code}: {r.detail}" for r in failed) or "no check failed"
        print(f"warning: the {name} draft did not take the measured path ({problems})", file=sys.stderr)


def measure(size: int, name: str, draft: PeeringDraft, subjects: Subjects, repeat: int) -> Measurement:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(WARMUP):
        evaluate(draft, subjects.department_ids)
    with CaptureQueriesContext(connection) as captured:
        evaluation = evaluate(draft, subjects.department_ids)
    check_outcome(name, evaluation, subjects)
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        evaluate(draft, subjects.department_ids)
        timings.append((time.perf_counter() - start) * 1000)
    p95 = statistics.quantiles(timings, n=20, method="inclusive")[-1] if len(timings) > 1 else timings[0]
    return Measurement(size, name, statistics.median(timings), p95, len(captured.captured_queries))


# --- report -----------------------------------------------------------------------------------
def report(database: str, repeat: int, results: list[Measurement]) -> None:
    print(f"\npre-flight (peering_request_evaluate) on {database}; {repeat} runs per row")
    print(f"{'size':>6}  {'draft':<10}  {'median ms':>9}  {'p95 ms':>7}  {'queries':>7}")
    for m in results:
        print(f"{m.size:>6}  {m.draft:<10}  {m.median_ms:>9.2f}  {m.p95_ms:>7.2f}  {m.queries:>7}")
    small, large = min(m.size for m in results), max(m.size for m in results)
    median = {(m.size, m.draft): m.median_ms for m in results}
    for name in ("transitive", "plain"):  # the plain draft's ratio is the last line
        ratio = median[(large, name)] / median[(small, name)]
        label = f"ratio {large}/{small}" + ("" if name == "plain" else f" ({name} draft)")
        print(f"{label}: {ratio:.2f} (goal <= {GOAL:g})")


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(s) for s in text.split(",") if s.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of sizes")
    if len(sizes) < 2 or sizes[0] < 10 or sizes[-1] > MAX_SIZE:
        raise argparse.ArgumentTypeError(f"give at least two sizes between 10 and {MAX_SIZE}")
    return sizes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=parse_sizes, default=[500, 5000], help="VPC counts (default 500,5000)")
    parser.add_argument("--repeat", type=int, default=50, help="timed pre-flights per size and draft (default 50)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    var_dir, maintenance_url = prepare_environment()
    django_ready = False
    database = ""
    try:
        if maintenance_url:
            run_on_server(maintenance_url, "DROP DATABASE IF EXISTS {} WITH (FORCE)")
            run_on_server(maintenance_url, "CREATE DATABASE {}")
        database = setup_django()
        django_ready = True
        users = create_users()
        rng = random.Random(SEED)
        results: list[Measurement] = []
        for size in args.sizes:
            start = time.perf_counter()
            subjects = build_inventory(size, users, rng)
            print(f"built {size} VPCs in {time.perf_counter() - start:.1f} s", flush=True)
            for name, draft in drafts(subjects).items():
                results.append(measure(size, name, draft, subjects, args.repeat))
    finally:
        if django_ready:
            from django.db import connections

            connections.close_all()
        if maintenance_url:
            run_on_server(maintenance_url, "DROP DATABASE IF EXISTS {} WITH (FORCE)")
        shutil.rmtree(var_dir, ignore_errors=True)
    report(database, args.repeat, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
