"""Pages under history: the dashboards and the topology at 10,000 requests and 500 VPCs against 100 and 10.

Builds two PostgreSQL databases with bench/seed_history.py (the same shape of data at both sizes:
mostly closed requests, a fifth live, 20 audit events each) and times, in this process through
Django's test `Client` (the whole middleware stack and the templates, no HTTP server), three pages:

- `/`: the requester dashboard of `bench-requester`, whose department files about a fifth of the
  requests (2,000 at 10,000);
- `/approvals/`: the approver dashboard of `bench-approver`, who owns every Services VPC, so the
  requests pending on them are its queue;
- `/topology/`: the topology page of `bench-requester`.

Each page is requested `--samples` times per size, the three interleaved in a random order, after
3 warm-up requests; the script prints the median and p95 in milliseconds, the number of SQL queries
one request runs (`CaptureQueriesContext`) and what the page holds at each size, then the median
ratio large/small per page. The goal is a ratio <= 1.5 per page; the last line is the worst page.

    python bench/pages_history.py [--requests 10000 --vpcs 500] [--small-requests 100 --small-vpcs 10]
                                  [--events 20] [--samples 30] [--reuse]
                                  [--large-database portal_bench --small-database portal_bench_small]

The databases `portal_bench` (the large size: the one bench/api_history.py uses, so `--reuse`
after that script skips the load) and `portal_bench_small` are created on the server of
DATABASE_URL (default postgres://postgres@127.0.0.1:5432/; the database the URL names is not
used) and kept. Settings are the project's own with DJANGO_DEBUG=1 (with it off the static files
need a collectstatic manifest). The script reports and does not judge: it exits 0 whether or not
the goal is met.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from requests_app.peering import permissions
from requests_app.peering import selectors as peering_selectors

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import seed_history as seed

GOAL = 1.5
WARMUP = 3
LARGE_DATABASE = "portal_bench"
SMALL_DATABASE = "portal_bench_small"
# page -> (path, who looks at it)
PAGES = {
    "dashboard": ("/", seed.CAST.requester),
    "approvals": ("/approvals/", seed.CAST.approver),
    "topology": ("/topology/", seed.CAST.requester),
}


@dataclass(frozen=True)
class Measurement:
    size: str
    page: str
    median_ms: float
    p95_ms: float
    queries: int
    holds: str


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def contents() -> dict[str, str]:
    """What each page holds at this size (read outside the timings)."""
    from django.contrib.auth import get_user_model

    from requests_app.web.topology import topology_for

    users = get_user_model().objects
    requester = users.get(username=seed.CAST.requester)
    approver = users.get(username=seed.CAST.approver)
    mine = peering_selectors.requests_visible_to(requester).filter(
        department_id__in=permissions.department_ids(requester)
    )
    queue = peering_selectors.approval_queue_for(approver).count()
    picture = topology_for(requester)
    return {
        "dashboard": f"{min(50, mine.count())} rows of {mine.count()}",
        "approvals": f"{min(50, queue)} rows of {queue} waiting",
        "topology": f"{picture['vpc_count']} VPCs, {picture['edge_count']} peerings",
    }


def measure_size(size: str, samples: int, rng: random.Random) -> list[Measurement]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    holds = contents()
    clients = {}
    for page, (_, username) in PAGES.items():
        client = Client()
        client.force_login(get_user_model().objects.get(username=username))
        clients[page] = client

    def get(page: str) -> Any:
        response = clients[page].get(PAGES[page][0])
        if response.status_code != 200:
            raise SystemExit(f"{PAGES[page][0]} answered {response.status_code}")
        return response

    queries = {}
    for page in PAGES:
        for _ in range(WARMUP):
            get(page)
        with CaptureQueriesContext(connection) as captured:
            get(page)
        queries[page] = len(captured.captured_queries)
    timings: dict[str, list[float]] = {page: [] for page in PAGES}
    for _ in range(samples):
        order = list(PAGES)
        rng.shuffle(order)
        for page in order:
            start = time.perf_counter()
            get(page)
            timings[page].append((time.perf_counter() - start) * 1000)
    return [
        Measurement(size, page, statistics.median(t), p95(t), queries[page], holds[page]) for page, t in timings.items()
    ]


def report(
    database: str, samples: int, shapes: dict[str, seed.Shape], databases: dict[str, str], results: list[Measurement]
) -> None:
    print(f"\npages under history on {database}; {samples} requests per page and size, in-process (test Client)")
    for size, shape in shapes.items():
        print(f"  {size}: {shape.describe()} (database {databases[size]})")
    print(f"{'size':<5}  {'page':<9}  {'median ms':>9}  {'p95 ms':>7}  {'queries':>7}  holds")
    for m in results:
        print(f"{m.size:<5}  {m.page:<9}  {m.median_ms:>9.1f}  {m.p95_ms:>7.1f}  {m.queries:>7}  {m.holds}")
    median = {(m.size, m.page): m.median_ms for m in results}
    ratios = {page: median[("large", page)] / median[("small", page)] for page in PAGES}
    for page, ratio in ratios.items():
        print(f"ratio large/small ({page}): {ratio:.2f} (goal <= {GOAL:g})")
    worst = max(ratios, key=lambda page: ratios[page])
    print(f"ratio large/small (worst page, {worst}): {ratios[worst]:.2f} (goal <= {GOAL:g})")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000, help="requests at the large size (default 10000)")
    parser.add_argument("--vpcs", type=int, default=500, help="VPCs at the large size (default 500)")
    parser.add_argument("--small-requests", type=int, default=100, help="requests at the small size (default 100)")
    parser.add_argument("--small-vpcs", type=int, default=10, help="VPCs at the small size (default 10)")
    parser.add_argument("--events", type=int, default=20, help="audit events per request (default 20)")
    parser.add_argument("--samples", type=int, default=30, help="timed requests per page and size (default 30)")
    parser.add_argument("--reuse", action="store_true", help="keep a database that already holds its shape")
    parser.add_argument("--large-database", default=LARGE_DATABASE, help=f"(default {LARGE_DATABASE})")
    parser.add_argument("--small-database", default=SMALL_DATABASE, help=f"(default {SMALL_DATABASE})")
    args = parser.parse_args(argv)
    if args.samples < 2 or args.events < 1:
        parser.error("--samples must be at least 2 and --events at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    shapes = {
        "small": seed.Shape(args.small_requests, args.small_vpcs, args.events),
        "large": seed.Shape(args.requests, args.vpcs, args.events),
    }
    databases = {"small": args.small_database, "large": args.large_database}
    var_dir = seed.prepare_environment(args.small_database, "bench-pages-history-")
    results: list[Measurement] = []
    database = ""
    try:
        seed.setup_django()
        rng = random.Random(seed.SEED)
        for size, shape in shapes.items():
            seed.ensure(databases[size], shape, reuse=args.reuse)
            database = seed.server_version()
            results += measure_size(size, args.samples, rng)
    finally:
        from django.db import connections

        connections.close_all()
        shutil.rmtree(var_dir, ignore_errors=True)
    report(database, args.samples, shapes, databases, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
