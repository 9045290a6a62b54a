"""API latency under history: the portal's list endpoints against bare DRF views of the same rows.

Loads 10,000 peering requests with 20 audit events each into PostgreSQL (bench/seed_history.py),
serves the portal with gunicorn (`bench.bare_settings`: the portal's settings and URLs plus the
bare views of bench/bare_urls.py), and, while a second process keeps the server busy, times

- `GET /api/v1/peering-requests/?limit=100` against `GET /bare/requests/?limit=100`, and
- `GET /api/v1/peering-requests/<id>/events/?limit=100` against `GET /bare/requests/<id>/events/?limit=100`

from one client, interleaved (the four calls of a round in a random order), after a warm-up. The
bare views are a `ListAPIView` with a plain `ModelSerializer` of the same fields, the project's
authentication, throttling and pagination, `IsAuthenticated` and nothing else; the script checks
that both answer the same JSON. The caller is `bench-api`, a member of every department and not a
superuser, so it sees all requests through the portal's ordinary visibility filter (a superuser
would skip that filter, and with it the cost being measured).

The goal is a median ratio portal/bare <= 1.5 for both endpoints; the ratios are the last lines.

    python bench/api_history.py [--requests 10000 --vpcs 500 --events 20] [--samples 200]
                                [--load-threads 2] [--reuse] [--port 18xxx]

The database `portal_bench` is created on the server of DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/; the database the URL names is not used) and kept, so
`--reuse` skips the load (about 50 s) when it already holds the same shape. The server runs with
DJANGO_DEBUG=1, API_THROTTLE_TOKEN/USER of 1000000/min, the throttle cache in files under a
temporary PORTAL_VAR_DIR (the portal's default; CACHE_URL is passed through if set), and the
portal's default DB_CONN_MAX_AGE (0: a connection per request; passed through if set). The
script reports and does not judge: it exits 0 whether or not the goal is met.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from requests_app.integrations import tokens

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import seed_history as seed

ROOT = seed.ROOT
GOAL = 1.5
DATABASE = "portal_bench"
LIMIT = 100
WARMUP_ROUNDS = 10
TOKEN_ENV = "BENCH_API_TOKEN"
THROTTLE = "1000000/min"

ENDPOINTS = ("portal list", "bare list", "portal events", "bare events")


def path_of(endpoint: str, request_id: str) -> str:
    return {
        "portal list": f"/api/v1/peering-requests/?limit={LIMIT}",
        "bare list": f"/bare/requests/?limit={LIMIT}",
        "portal events": f"/api/v1/peering-requests/{request_id}/events/?limit={LIMIT}",
        "bare events": f"/bare/requests/{request_id}/events/?limit={LIMIT}",
    }[endpoint]


# --- the load generator (a second process; no Django) -----------------------------------------
def run_load(url: str, ids_file: str, threads: int) -> int:
    """Call the four endpoints in turn from `threads` threads until stdin closes; print a JSON tally."""
    import requests

    ids = json.loads(Path(ids_file).read_text())
    token = os.environ[TOKEN_ENV]
    stop = threading.Event()
    tally = {"requests": 0, "errors": 0}
    lock = threading.Lock()

    def worker(n: int) -> None:
        rng = random.Random(n)
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        done = errors = 0
        while not stop.is_set():
            for endpoint in ENDPOINTS:
                try:
                    response = session.get(url + path_of(endpoint, rng.choice(ids)), timeout=60)
                    errors += response.status_code != 200
                except requests.RequestException:
                    errors += 1
                done += 1
        with lock:
            tally["requests"] += done
            tally["errors"] += errors

    start = time.perf_counter()
    workers = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(threads)]
    for w in workers:
        w.start()
    sys.stdin.read()  # the parent closes our stdin to stop us
    stop.set()
    for w in workers:
        w.join(timeout=120)
    tally["seconds"] = time.perf_counter() - start
    print(json.dumps(tally), flush=True)
    return 0


# --- the server -------------------------------------------------------------------------------
def free_port() -> int:
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(18000, 19000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit("no free port in 18000-18999")


def server_env(var_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="bench.bare_settings",
        DJANGO_DEBUG="1",
        PORTAL_VAR_DIR=str(var_dir),
        API_THROTTLE_TOKEN=THROTTLE,
        API_THROTTLE_USER=THROTTLE,
        PYTHONPATH=str(ROOT),
    )
    return env


def start_server(port: int, workers: int, threads: int, var_dir: Path) -> tuple[subprocess.Popen[bytes], Path]:
    log = var_dir / "gunicorn.log"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "peering_portal.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--chdir",
        str(ROOT),
        "--log-level",
        "warning",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=server_env(var_dir), stdout=out, stderr=subprocess.STDOUT)
    return process, log


def wait_ready(url: str, token: str, process: subprocess.Popen[bytes], log: Path) -> None:
    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            response = requests.get(
                url + "/bare/requests/?limit=1", headers={"Authorization": f"Token {token}"}, timeout=5
            )
            if response.status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise SystemExit(f"gunicorn did not answer within 60 s:\n{log.read_text()[-3000:]}")


def stop_process(process: subprocess.Popen[Any] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --- measuring --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    endpoint: str
    median_ms: float
    p95_ms: float
    queries: int
    kib: float


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def check_answers(session: Any, url: str, request_id: str, requests_total: int, events: int) -> str:
    """Both views must answer the same JSON, or the comparison is not like for like."""
    found = []
    for kind, expected_count in (("list", requests_total), ("events", events)):
        portal = session.get(url + path_of(f"portal {kind}", request_id), timeout=60)
        bare = session.get(url + path_of(f"bare {kind}", request_id), timeout=60)
        if portal.status_code != 200 or bare.status_code != 200:
            raise SystemExit(
                f"{kind}: portal answered {portal.status_code}, bare {bare.status_code}: {portal.text[:300]}"
            )
        p, b = portal.json(), bare.json()
        if p["count"] != expected_count:
            print(f"warning: the portal's {kind} counts {p['count']} rows, not {expected_count}", file=sys.stderr)
        if p["results"] != b["results"] or p["count"] != b["count"]:
            print(f"warning: portal and bare {kind} answers differ", file=sys.stderr)
            found.append(f"{kind}: DIFFERENT")
        else:
            found.append(f"{kind}: same {len(p['results'])} rows of {p['count']}")
    return "; ".join(found)


def count_queries(token: str, request_id: str) -> dict[str, tuple[int, int]]:
    """Queries and bytes of one call of each endpoint, in this process (Django's test client)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings

    out = {}
    with override_settings(ROOT_URLCONF="bench.bare_urls"):
        client = Client(HTTP_AUTHORIZATION=f"Token {token}")
        for endpoint in ENDPOINTS:
            client.get(path_of(endpoint, request_id))
            with CaptureQueriesContext(connection) as captured:
                response = client.get(path_of(endpoint, request_id))
            out[endpoint] = (len(captured.captured_queries), len(response.content))
    return out


def measure(url: str, token: str, ids: list[str], samples: int, rng: random.Random) -> dict[str, list[float]]:
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    timings: dict[str, list[float]] = {e: [] for e in ENDPOINTS}
    for round_ in range(WARMUP_ROUNDS + samples):
        request_id = ids[round_ % len(ids)]
        order = list(ENDPOINTS)
        rng.shuffle(order)
        for endpoint in order:
            target = url + path_of(endpoint, request_id)
            start = time.perf_counter()
            response = session.get(target, timeout=60)
            elapsed = (time.perf_counter() - start) * 1000
            if response.status_code != 200:
                raise SystemExit(f"{endpoint} answered {response.status_code}: {response.text[:300]}")
            if round_ >= WARMUP_ROUNDS:
                timings[endpoint].append(elapsed)
    return timings


# --- report -----------------------------------------------------------------------------------
def report(header: list[str], rows: list[Row]) -> None:
    print()
    for line in header:
        print(line)
    print(f"{'endpoint':<14}  {'median ms':>9}  {'p95 ms':>7}  {'queries':>7}  {'KiB':>6}")
    for r in rows:
        print(f"{r.endpoint:<14}  {r.median_ms:>9.1f}  {r.p95_ms:>7.1f}  {r.queries:>7}  {r.kib:>6.1f}")
    by = {r.endpoint: r for r in rows}
    for kind in ("events", "list"):  # the list's ratio is the last line
        portal, bare = by[f"portal {kind}"], by[f"bare {kind}"]
        print(
            f"ratio portal/bare ({kind}): {portal.median_ms / bare.median_ms:.2f} "
            f"(p95 {portal.p95_ms / bare.p95_ms:.2f}; goal <= {GOAL:g})"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10_000, help="peering requests (default 10000)")
    parser.add_argument("--vpcs", type=int, default=500, help="VPCs (default 500)")
    parser.add_argument("--events", type=int, default=20, help="audit events per request (default 20)")
    parser.add_argument("--samples", type=int, default=200, help="timed calls per endpoint (default 200)")
    parser.add_argument("--load-threads", type=int, default=2, help="threads of the load process (default 2; 0: none)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn threads per worker (default 4)")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one in 18000-18999)")
    parser.add_argument("--database", default=DATABASE, help=f"database to build (default {DATABASE})")
    parser.add_argument("--reuse", action="store_true", help="keep the database if it already holds this shape")
    parser.add_argument("--load-generator", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--ids-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.samples < 2 or args.requests < 1 or args.events < 1:
        parser.error("--samples must be at least 2, --requests and --events at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.load_generator:
        return run_load(args.url, args.ids_file, args.load_threads)

    import requests

    shape = seed.Shape(args.requests, args.vpcs, args.events)
    var_dir = seed.prepare_environment(args.database, "bench-api-history-")
    server: subprocess.Popen[bytes] | None = None
    load: subprocess.Popen[str] | None = None
    try:
        seed.setup_django()
        from django.contrib.auth import get_user_model
        from django.db import connections

        from requests_app.models import PeeringRequest

        seed.ensure(args.database, shape, reuse=args.reuse)
        database = f"{seed.server_version()}, database {args.database} ({shape.describe()})"
        _, key = tokens.issue(get_user_model().objects.get(username=seed.CAST.api), "bench")
        rng = random.Random(seed.SEED)
        all_ids = [str(pk) for pk in PeeringRequest.objects.order_by("pk").values_list("pk", flat=True)]
        ids = rng.sample(all_ids, min(len(all_ids), 500))
        queries = count_queries(key, ids[0])
        connections.close_all()

        port = args.port or free_port()
        url = f"http://127.0.0.1:{port}"
        server, log = start_server(port, args.workers, args.threads, var_dir)
        wait_ready(url, key, server, log)
        session = requests.Session()
        session.headers["Authorization"] = f"Token {key}"
        answers = check_answers(session, url, ids[0], args.requests, args.events)

        if args.load_threads:
            ids_file = var_dir / "ids.json"
            ids_file.write_text(json.dumps(ids))
            load = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--load-generator",
                    "--url",
                    url,
                    "--ids-file",
                    str(ids_file),
                    "--load-threads",
                    str(args.load_threads),
                ],
                cwd=ROOT,
                env={**os.environ, TOKEN_ENV: key},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            time.sleep(1)  # let the load reach the server before the warm-up
        start = time.perf_counter()
        timings = measure(url, key, ids, args.samples, rng)
        elapsed = time.perf_counter() - start
        load_note = "none"
        if load is not None:
            out, _ = load.communicate(input="", timeout=180)
            tally = json.loads(out.strip().splitlines()[-1])
            load_note = (
                f"{args.load_threads} threads in a second process, {tally['requests']} calls "
                f"({tally['requests'] / tally['seconds']:.1f}/s), {tally['errors']} errors"
            )
    finally:
        stop_process(load)
        stop_process(server)
        from django.db import connections

        connections.close_all()
        shutil.rmtree(var_dir, ignore_errors=True)

    rows = [Row(e, statistics.median(t), p95(t), queries[e][0], queries[e][1] / 1024) for e, t in timings.items()]
    report(
        [
            f"API under history on {database}",
            f"server: gunicorn {args.workers} workers x {args.threads} threads, DEBUG on; "
            f"measured: {args.samples} calls per endpoint, interleaved, after {WARMUP_ROUNDS} warm-up rounds "
            f"({elapsed:.0f} s)",
            f"load: {load_note}",
            f"answers: {answers}",
            "queries and KiB: one call in-process (Django test client)",
        ],
        rows,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
