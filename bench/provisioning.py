"""Provisioning overhead: a peering through the portal (approve -> a real Celery worker -> `active`)
against the bare boto3 calls that make the same peering, in the same sandbox and the same run.

For N peerings (default 10), each cross-account between a spoke VPC and a hub VPC with two route
tables on each side, it measures one peering at a time:

- **portal**: the time from `services.peering_request_approve` returning (it enqueues the
  provisioning task on commit) until the request reads `active`, polling the database every 5 ms.
  The work is done by one `celery -A peering_portal worker --concurrency 1` process against the
  moto sandbox server. Its EC2 calls are counted from the worker's AWS_CALL_LOG trace.
- **bare**: CreateVpcPeeringConnection, AcceptVpcPeeringConnection and one CreateRoute per route
  (4), timed in this process with boto3 clients made beforehand, as a worker holds them.

The two sides peer separate but identical VPCs (`bench/world.py`), in separate accounts, so both
start clean. They take turns (bare first on even peerings, portal first on odd ones), and each waits
until the worker has also sent the notification of the previous one, so neither runs beside the
other. A first peering on each side (`--warmup`) is not counted: it makes the worker's role sessions
and clients. The goal: the portal's median at most 1.3 times the bare median, and at most 2 EC2
calls per peering above the bare sequence's 6.

It runs on PostgreSQL with Redis as broker and cache, as in production: the database
`portal_bench_prov` is created on the server of DATABASE_URL (default postgres@127.0.0.1:5432;
the database the URL names is never used) and dropped at the end; the broker is Redis db 2 and
the cache (the EC2 rate-limit buckets) Redis db 3. `--embedded` runs on SQLite, the filesystem
broker and the file cache instead, but mind what that measures: the filesystem broker does not
push a message to the worker, the worker polls its folder (every 0.25 s with this project's
settings, once a second with kombu's default), so each peering also waits for a poll: that
measures the poll, not the portal.

    python bench/provisioning.py [-n 10] [--warmup 1] [--embedded] [--timers] [--profile] [--keep]

Besides the two sides' medians, p95 and EC2 calls (per operation), it prints where the portal's
time goes, from its own records: the audit events and the step log of each request (approval ->
provisioning.started -> each step -> provisioning.completed -> seen), and the CPU each process
(this one, the sandbox, the worker, PostgreSQL, Redis) spent per peering, read from /proc.
`--timers` runs the worker through `python -m bench.world worker`, which times the portal's parts
inside each task (audit records, lease renewals, checks, boto3 calls, the rate limiter, SQL
statements and commits, and who issued the statements) with cheap perf_counter wrappers.
`--profile` runs it under cProfile instead and prints where a provisioning task spends its time;
profiling slows the worker, so read the shares, not the ratio, of such a run. Logs, the trace,
timers and profiles are left in /tmp/bench-prov (`--keep` also keeps the database). The run also
watches for other benchmark, test or worker processes and says whether the machine stayed quiet.
The script reports and does not judge: it exits 0 whether or not the goal is met, and the ratio is
the last line it prints.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import world as w

DATABASE = "portal_bench_prov"
VAR_DIR = Path("/tmp/bench-prov")
TIME_GOAL = 1.3
CALLS_GOAL = 2  # EC2 calls per peering above the bare sequence
POLL_SECONDS = 0.005
TIMEOUT_SECONDS = 120


@dataclass
class Side:
    latencies_ms: list[float] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)
    operations: Counter[str] = field(default_factory=Counter)
    cpu: Counter[str] = field(default_factory=Counter)  # CPU seconds per process kind, measured peerings
    wall: float = 0.0  # seconds of the windows the CPU was measured over


def wait_status(request_id: str, *, poll: float = POLL_SECONDS) -> str:
    """Poll the request's status until it is `active` (or `failed`); return it."""
    from requests_app.models import PeeringRequest

    rows = PeeringRequest.objects.filter(pk=request_id).values_list("status", flat=True)
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        status = rows.first()
        if status in ("active", "failed"):
            return status
        if time.monotonic() > deadline:
            raise SystemExit(f"request {request_id} is still {status} after {TIMEOUT_SECONDS} s")
        time.sleep(poll)


def portal_peering(request_id: str, approver: object, trace: w.TraceReader) -> tuple[float, float, float, list[dict]]:
    """Approve and wait for `active`: (ms approve took, ms to active, wall time approve returned, calls)."""
    from requests_app.models import PeeringRequest
    from requests_app.peering.services import peering_request_approve

    trace.read_new()
    start = time.perf_counter()
    peering_request_approve(actor=approver, request_id=request_id)
    returned = time.perf_counter()
    returned_wall = time.time()
    status = wait_status(request_id)
    done = time.perf_counter()
    if status != "active":
        reason = PeeringRequest.objects.values_list("failure_reason", flat=True).get(pk=request_id)
        raise SystemExit(f"request {request_id} failed: {reason}")
    return (returned - start) * 1000, (done - returned) * 1000, returned_wall, trace.read_new()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--peerings", type=int, default=10, help="measured peerings per side (default 10)")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted peerings per side first (default 1)")
    parser.add_argument("--embedded", action="store_true", help="SQLite + filesystem broker (measures the poll)")
    parser.add_argument("--profile", action="store_true", help="run the worker under cProfile and print the profile")
    parser.add_argument(
        "--timers",
        action="store_true",
        help="time the portal's parts inside the worker (cheap wrappers) and print them",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    args = parser.parse_args(argv)
    if args.peerings < 2 or args.warmup < 0 or args.peerings + args.warmup > 48:
        parser.error("give 2 or more peerings, and at most 48 with the warm-up (one hub's quota is 50)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    w.install_signal_handlers()
    backend = w.prepare_environment(VAR_DIR, DATABASE, embedded=args.embedded)
    processes = w.Processes(VAR_DIR)
    trace_path = VAR_DIR / "aws-calls.jsonl"
    profile_dir = VAR_DIR / "profiles" if args.profile else None
    timers = VAR_DIR / "timers.jsonl" if args.timers else None
    if profile_dir:
        profile_dir.mkdir()
    watch = w.ActivityWatch()
    total = args.peerings + args.warmup
    layout = w.Layout(peerings=total, hubs=1, hub_accounts=1, spoke_accounts=1)
    layout.check(approved_at_once=1)
    portal_side, bare_side = Side(), Side()
    approve_ms: list[float] = []
    approved_at: dict[str, float] = {}
    seen_at: dict[str, float] = {}
    measured_ids: list[str] = []
    started = time.perf_counter()
    try:
        database, specs, _portal_world, bare_world, portal, bare = w.prepare_worlds(backend, layout, processes)
        w.start_workers(
            processes,
            ["w1"],
            w.worker_environment(trace_path),
            profile_dir=profile_dir,
            profile_skip=args.warmup,
            timers=timers,
        )
        trace = w.TraceReader(trace_path)
        meter = w.CpuMeter(processes)
        w.wait_notifications_sent()  # the emails of the filed requests
        print(
            f"{database}: {backend.describe()}; world: {layout.describe()}; "
            f"set up in {time.perf_counter() - started:.1f} s",
            flush=True,
        )

        for i in range(total):
            request_id, pair = portal.request_ids[i], bare_world.pairs[i]
            measured = i >= args.warmup
            order = ("bare", "portal") if i % 2 == 0 else ("portal", "bare")
            for side in order:
                cpu_before, wall_before = meter.snapshot(), time.perf_counter()
                if side == "bare":
                    t0 = time.perf_counter()
                    connection_id, calls = bare.peer(pair)
                    elapsed = (time.perf_counter() - t0) * 1000
                    bare.probe_describe(pair, connection_id)
                    if measured:
                        bare_side.latencies_ms.append(elapsed)
                        bare_side.calls.append(calls)
                else:
                    took, elapsed, returned_wall, lines = portal_peering(request_id, portal.approver, trace)
                    seen_wall = returned_wall + elapsed / 1000
                    if measured:
                        approve_ms.append(took)
                        portal_side.latencies_ms.append(elapsed)
                        portal_side.calls.append(len(lines))
                        portal_side.operations.update(line["operation"] for line in lines)
                        approved_at[request_id], seen_at[request_id] = returned_wall, seen_wall
                        measured_ids.append(request_id)
                    else:
                        print(f"warm-up peering: portal {elapsed:.0f} ms, {len(lines)} EC2 calls", flush=True)
                    w.wait_notifications_sent()  # and the task's tail: the 'active' email
                if measured:
                    spent = portal_side if side == "portal" else bare_side
                    spent.wall += time.perf_counter() - wall_before
                    for name, seconds in w.CpuMeter.spent(cpu_before, meter.snapshot()).items():
                        spent.cpu[name] += seconds
            if i + 1 == args.warmup:
                bare.reset()
        processes.stop_named(["w1"])  # its logs, timers and profile are complete once it has stopped

        lines_by_request = w.timelines(measured_ids)
        phase_rows = [
            w.phases(lines_by_request[r], approved_at[r], seen_at[r]) for r in measured_ids if r in lines_by_request
        ]
        peaks = w.peak_rates(w.read_trace(trace_path), specs)
    finally:
        processes.stop_all()
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        with contextlib.suppress(Exception):
            w.clear_redis(backend)  # what the stopped workers left queued
        if not args.keep:
            w.drop_database(backend)
    quiet = watch.stop()

    report(args, portal_side, bare_side, approve_ms, phase_rows, bare, peaks)
    for title, side in (
        ("bare (this process: the boto3 calls)", bare_side),
        ("portal (this process: the approval and the 5 ms poll; the worker: the task and its emails)", portal_side),
    ):
        w.print_cpu(title, dict(side.cpu), len(side.latencies_ms), side.wall)
    if timers:
        w.print_timers(timers, measured_ids)
    if profile_dir:
        w.print_profile(list(w.iter_profiles(profile_dir)))
    print(f"\n{quiet}")
    portal_median, bare_median = w.median(portal_side.latencies_ms), w.median(bare_side.latencies_ms)
    extra = w.median(portal_side.calls) - w.median(bare_side.calls)
    print(f"EC2 calls per peering above bare: {extra:+.0f} (goal <= +{CALLS_GOAL})")
    print(f"ratio portal/bare (median time to active): {portal_median / bare_median:.2f} (goal <= {TIME_GOAL:g})")
    return 0


def report(
    args: argparse.Namespace,
    portal: Side,
    bare: Side,
    approve_ms: list[float],
    phase_rows: list[dict[str, float]],
    bare_runner: w.Bare,
    peaks: list[w.BucketPeak],
) -> None:
    n = len(portal.latencies_ms)
    print(
        f"\n{n} peerings per side, one at a time ({'SQLite + filesystem broker' if args.embedded else 'PostgreSQL + Redis'})"
    )
    print(f"{'':<8} {'median ms':>9} {'p95 ms':>8} {'min ms':>8} {'max ms':>8} {'EC2 calls/peering':>18}")
    for name, side in (("bare", bare), ("portal", portal)):
        lat = side.latencies_ms
        calls = f"{w.median(side.calls):.0f}" + (
            "" if min(side.calls) == max(side.calls) else f" ({min(side.calls)}-{max(side.calls)})"
        )
        print(f"{name:<8} {w.median(lat):>9.1f} {w.p95(lat):>8.1f} {min(lat):>8.1f} {max(lat):>8.1f} {calls:>18}")
    print(f"(approve itself, before the clock starts: median {w.median(approve_ms):.1f} ms)")
    print("\nEC2 calls per peering by operation:")
    bare_ops = {_camel(k): v / n for k, v in bare_runner.calls.items() if v}
    for op in sorted(set(bare_ops) | set(portal.operations)):
        print(f"  {op:<36} bare {bare_ops.get(op, 0):>4.1f}   portal {portal.operations[op] / n:>4.1f}")

    per_call = {_camel(op): w.median(ms) for op, ms in bare_runner.durations.items()}
    print(
        "\nsandbox latency per call, timed by the bare script (median ms): "
        + ", ".join(f"{op} {ms:.1f}" for op, ms in per_call.items())
    )
    estimate = w.estimated_aws_ms(Counter({op: k / n for op, k in portal.operations.items()}), per_call)
    if estimate is not None:
        print(
            f"portal's {sum(portal.operations.values()) / n:.0f} calls at those latencies: ~{estimate:.0f} ms of its "
            f"{w.median(portal.latencies_ms):.0f} ms median; the other ~{w.median(portal.latencies_ms) - estimate:.0f} ms "
            "is the portal's own work and waiting"
        )
    w.print_phases(phase_rows)
    if peaks:
        busiest = max(peaks, key=lambda p: p.peak_1s)
        print(
            f"\nbusiest EC2 bucket: {busiest.account_id} {busiest.kind}: {busiest.peak_1s} calls in one second "
            f"(bucket allows {busiest.limit_1s or 0:.0f})"
        )


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


if __name__ == "__main__":
    sys.exit(main())
