"""Throughput and scale-out: 200 approved peerings drained by two worker processes, against the
bare boto3 sequence run one peering after another, in the same sandbox and the same run.

The world (`bench/world.py`) is hub and spoke: by default 200 spoke VPCs in 10 accounts peer with
8 hub VPCs in 4 accounts, cross-account, two route tables per VPC. It is spread so that no portal
quota is hit (the quotas are AWS's defaults, `requests_app/domain/checks.py`): 25 peerings per hub
(quota 50 per VPC) and 20 requests approved at once per spoke account (quota 25 outstanding; from
20 on the check warns, which does not stop an approval); no per-account override is raised.

- **bare**: for each of 200 peerings of an identical world in other accounts, CreateVpcPeering-
  Connection, AcceptVpcPeeringConnection and four CreateRoute, one peering after another, timed in
  this process with clients made beforehand. Its rate is peerings per second of that loop.
- **portal**: two `celery -A peering_portal worker --concurrency 1` processes (as two worker hosts
  would run them) are started and idle; the 200 pending requests are approved with
  `services.peering_request_approve` in one transaction, so the 200 provisioning tasks (and the
  approval emails, queued ahead of each) reach the broker together when it commits. The clock runs
  from that commit until the last request reads `active` (polled every 20 ms). The rate is 200 over
  that time. The workers run with the EC2 rate-limit buckets at their defaults (`EC2_RATE_*`), in
  Redis db 3, shared by both.

Then it checks that each request made exactly one connection in the sandbox (tagged with its id,
the one the portal recorded, no second connection for any pair) and exactly its four routes (no
destination twice in any table), and counts the EC2 calls of the workers' AWS_CALL_LOG trace. From
that trace it computes, per (account, region, bucket kind), the most calls in any one-second window,
and replays the token bucket over them: a peak above burst + refill, or a bucket that would have
gone below zero, is a call EC2 could have throttled. Mind that the trace stamps a call before the
rate limiter lets it through (`--send-log` also logs when each call was let through, and how long
the limiter held it). It also prints the CPU each process spent per peering in each phase (from
/proc), which says how close the machine was to running out of cores.

The goal: the portal's rate at least 1.5 times the bare sequential rate, no duplicate, and every
bucket within burst + refill.

    python bench/throughput.py [-n 200] [--hubs 8] [--hub-accounts 4] [--spoke-accounts 10]
                               [--workers 2] [--embedded] [--timers] [--profile] [--send-log] [--keep]

PostgreSQL and Redis as in `bench/provisioning.py` (database `portal_bench_throughput`, broker Redis
db 2, cache db 3; `--embedded`: SQLite, the filesystem broker, whose poll the time then includes).
`--timers` and `--profile` instrument the workers (through `python -m bench.world worker`): cheap
timers of the portal's parts, or cProfile (which slows them: read shares, not the ratio). To see the
limiter at work, tighten the buckets and put every hub in one account, e.g.
`EC2_RATE_PEERING=10,2 EC2_RATE_MUTATING=10,2 python bench/throughput.py -n 100 --hub-accounts 1
--send-log`. Logs, the trace and the send log are left in /tmp/bench-throughput. The run watches for
other benchmark, test or worker processes and says whether the machine stayed quiet. The script
reports and does not judge: it exits 0 whether or not the goal is met, and the ratio is the last
line it prints.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import world as w

DATABASE = "portal_bench_throughput"
VAR_DIR = Path("/tmp/bench-throughput")
GOAL = 1.5
POLL_SECONDS = 0.02
TIMEOUT_SECONDS = 900
GONE = {"deleted", "deleting", "rejected", "failed", "expired"}


def approve_all(request_ids: list[str], approver: object) -> tuple[float, float]:
    """Approve every request in one transaction; return (seconds the approvals took, the moment of
    the commit that sends their tasks)."""
    from django.db import transaction

    from requests_app.peering.services import peering_request_approve

    start = time.perf_counter()
    with transaction.atomic():
        for request_id in request_ids:
            peering_request_approve(actor=approver, request_id=request_id)
        committing = time.perf_counter()
    return committing - start, committing


def wait_all(request_ids: list[str]) -> dict[str, int]:
    """Poll until every request is `active` or `failed`; return the count per status."""
    from django.db.models import Count

    from requests_app.models import PeeringRequest

    rows = PeeringRequest.objects.filter(pk__in=request_ids)
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while True:
        counts = dict(rows.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
        if counts.get("active", 0) + counts.get("failed", 0) == len(request_ids):
            return counts
        if time.monotonic() > deadline:
            return counts
        time.sleep(POLL_SECONDS)


def verify(world: w.World, request_ids: list[str], trace: list[dict]) -> list[str]:
    """Exactly once: one connection per request, its four routes, nothing twice. Returns problems."""
    from django.conf import settings

    from requests_app.models import AuditEvent, PeeringRequest, ProvisioningStep

    problems: list[str] = []
    recorded = dict(PeeringRequest.objects.filter(pk__in=request_ids).values_list("pk", "aws_peering_connection_id"))
    recorded = {str(k): v for k, v in recorded.items()}
    accounts = [*world.hub_account_ids, *world.spoke_account_ids]
    clients = {a: w.ec2_client(a, world.layout.region) for a in accounts}
    connections: dict[str, dict] = {}
    tables: dict[str, dict] = {}
    for client in clients.values():
        for pcx in client.describe_vpc_peering_connections()["VpcPeeringConnections"]:
            connections[pcx["VpcPeeringConnectionId"]] = pcx
        for table in client.describe_route_tables()["RouteTables"]:
            tables[table["RouteTableId"]] = table
    live = [c for c in connections.values() if c["Status"]["Code"] not in GONE]
    by_request: Counter[str] = Counter()
    by_pair: Counter[frozenset[str]] = Counter()
    for pcx in live:
        tag = next((t["Value"] for t in pcx.get("Tags", []) if t["Key"] == settings.PEERING_TAG_KEY), None)
        if tag is None:
            problems.append(f"{pcx['VpcPeeringConnectionId']} has no request tag")
        else:
            by_request[tag] += 1
        by_pair[frozenset((pcx["RequesterVpcInfo"]["VpcId"], pcx["AccepterVpcInfo"]["VpcId"]))] += 1
        if pcx["Status"]["Code"] != "active":
            problems.append(f"{pcx['VpcPeeringConnectionId']} is {pcx['Status']['Code']}")
    problems += [f"request {r} has {by_request[r]} live connections" for r in request_ids if by_request[r] != 1]
    problems += [f"{len(p)} VPCs {sorted(p)} have {n} connections" for p, n in by_pair.items() if n > 1]
    ids_by_tag = {
        next(t["Value"] for t in c.get("Tags", []) if t["Key"] == settings.PEERING_TAG_KEY): c["VpcPeeringConnectionId"]
        for c in live
        if any(t["Key"] == settings.PEERING_TAG_KEY for t in c.get("Tags", []))
    }
    problems += [
        f"request {r} recorded {recorded[r]}, AWS has {ids_by_tag.get(r)}"
        for r in request_ids
        if recorded.get(r) != ids_by_tag.get(r)
    ]

    peering_routes = 0
    for table in tables.values():
        destinations = Counter(r.get("DestinationCidrBlock") for r in table["Routes"])
        problems += [f"{table['RouteTableId']} routes {d} {n} times" for d, n in destinations.items() if n > 1]
        peering_routes += sum(1 for r in table["Routes"] if r.get("VpcPeeringConnectionId"))
    for pair, request_id in zip(world.pairs, request_ids, strict=True):
        connection_id = recorded.get(request_id)
        for vpc, peer in ((pair.spoke, pair.hub), (pair.hub, pair.spoke)):
            for table_id in vpc.route_tables:
                targets = [
                    r.get("VpcPeeringConnectionId")
                    for r in tables[table_id]["Routes"]
                    if r.get("DestinationCidrBlock") == peer.cidr
                ]
                if targets != [connection_id]:
                    problems.append(f"{table_id} routes {peer.cidr} to {targets}, not [{connection_id}]")
    expected_routes = 4 * len(request_ids)
    if peering_routes != expected_routes:
        problems.append(f"{peering_routes} routes target a peering connection; expected {expected_routes}")

    made = Counter(line["operation"] for line in trace)
    n = len(request_ids)
    for operation, per in (("CreateVpcPeeringConnection", 1), ("AcceptVpcPeeringConnection", 1), ("CreateRoute", 4)):
        if made[operation] != per * n:
            problems.append(f"the trace has {made[operation]} {operation} calls; expected {per * n}")
    retried = ProvisioningStep.objects.filter(request_id__in=request_ids, attempts__gt=1).count()
    if retried:
        problems.append(f"{retried} provisioning steps ran more than once")
    started = AuditEvent.objects.filter(request_id__in=request_ids, action="provisioning.started").count()
    if started != n:
        problems.append(f"{started} provisioning.started events for {n} requests")
    return problems


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--peerings", type=int, default=200, help="peerings per side (default 200)")
    parser.add_argument("--hubs", type=int, default=8, help="hub VPCs (default 8)")
    parser.add_argument("--hub-accounts", type=int, default=4, help="accounts the hubs are spread over (default 4)")
    parser.add_argument("--spoke-accounts", type=int, default=10, help="accounts of the spokes (default 10)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes, concurrency 1 each (default 2)")
    parser.add_argument("--embedded", action="store_true", help="SQLite + filesystem broker (includes the poll)")
    parser.add_argument("--timers", action="store_true", help="time the portal's parts inside the workers")
    parser.add_argument("--profile", action="store_true", help="run the workers under cProfile and print it")
    parser.add_argument("--send-log", action="store_true", help="log when each EC2 call leaves the rate limiter")
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    args = parser.parse_args(argv)
    if args.peerings < 1 or args.workers < 1:
        parser.error("give at least one peering and one worker")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    layout = w.Layout(
        peerings=args.peerings, hubs=args.hubs, hub_accounts=args.hub_accounts, spoke_accounts=args.spoke_accounts
    )
    layout.check(approved_at_once=args.peerings)
    w.install_signal_handlers()
    backend = w.prepare_environment(VAR_DIR, DATABASE, embedded=args.embedded)
    processes = w.Processes(VAR_DIR)
    trace_path = VAR_DIR / "aws-calls.jsonl"
    send_log = VAR_DIR / "sent.jsonl" if args.send_log else None
    timers = VAR_DIR / "timers.jsonl" if args.timers else None
    profile_dir = VAR_DIR / "profiles" if args.profile else None
    if profile_dir:
        profile_dir.mkdir()
    watch = w.ActivityWatch()
    names = [f"w{k + 1}" for k in range(args.workers)]
    started = time.perf_counter()
    try:
        database, specs, portal_world, bare_world, portal, bare = w.prepare_worlds(backend, layout, processes)
        w.start_workers(
            processes,
            names,
            w.worker_environment(trace_path),
            profile_dir=profile_dir,
            send_log=send_log,
            timers=timers,
        )
        w.wait_notifications_sent()  # the emails of the filed requests, before anything is timed
        print(
            f"{database}: {backend.describe()}; world: {layout.describe()}; "
            f"set up in {time.perf_counter() - started:.1f} s",
            flush=True,
        )

        meter = w.CpuMeter(processes)
        cpu_before = meter.snapshot()
        t0 = time.perf_counter()
        for pair in bare_world.pairs:
            bare.peer(pair)
        bare_seconds = time.perf_counter() - t0
        bare_cpu = w.CpuMeter.spent(cpu_before, meter.snapshot())
        print(f"bare: {args.peerings} peerings one after another in {bare_seconds:.1f} s", flush=True)

        approving, committing = approve_all(portal.request_ids, portal.approver)
        cpu_before = meter.snapshot()
        counts = wait_all(portal.request_ids)
        portal_seconds = time.perf_counter() - committing
        portal_cpu = w.CpuMeter.spent(cpu_before, meter.snapshot())
        print(
            f"portal: {args.peerings} approvals in {approving:.1f} s (one transaction), then "
            f"{portal_seconds:.1f} s to {counts}",
            flush=True,
        )
        processes.stop_named(names)  # their logs, timers and profiles are complete once they stop

        trace = w.read_trace(trace_path)
        problems = verify(portal_world, portal.request_ids, trace)
        by_worker = Counter(line.worker for line in w.timelines(portal.request_ids).values())
        peaks = w.peak_rates(trace, specs)
        sent_peaks = w.peak_rates(w.read_trace(send_log), specs) if send_log else []
        sent = w.read_trace(send_log) if send_log else []
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

    n = args.peerings
    bare_rate, portal_rate = n / bare_seconds, counts.get("active", 0) / portal_seconds
    print(
        f"\n{n} peerings per side ({'SQLite + filesystem broker' if args.embedded else 'PostgreSQL + Redis'}; "
        f"{args.workers} worker(s) of concurrency 1)"
    )
    print(
        f"  bare, sequential:  {bare_seconds:>7.1f} s  {bare_rate:>6.2f} peerings/s  "
        f"({1000 * bare_seconds / n:.0f} ms each, {sum(bare.calls.values()) / n:.0f} EC2 calls each)"
    )
    print(
        f"  portal, {args.workers} workers:  {portal_seconds:>7.1f} s  {portal_rate:>6.2f} peerings/s  "
        f"({sum(1 for line in trace) / n:.1f} EC2 calls each)"
    )
    print(f"  peerings per worker: {dict(sorted(by_worker.items()))}")
    print(f"  EC2 calls in the trace: {dict(Counter(line['operation'] for line in trace).most_common())}")
    w.print_cpu("bare, sequential", bare_cpu, n, bare_seconds)
    w.print_cpu(f"portal, {args.workers} workers (from the commit to the last `active`)", portal_cpu, n, portal_seconds)
    print(
        f"\nexactly once: {'yes' if not problems else 'NO'}"
        + ("" if not problems else f" ({len(problems)} problems: {'; '.join(problems[:10])})")
    )
    report_peaks("EC2 call rates from the AWS_CALL_LOG trace (stamped before the rate limiter)", peaks)
    if send_log:
        report_peaks("EC2 call rates as let through by the rate limiter (--send-log)", sent_peaks)
        waited = [float(line["waited"]) for line in sent]
        own = [1000 * (float(line["in_limiter"]) - float(line["waited"])) for line in sent]
        print(
            f"  the limiter held back {sum(1 for x in waited if x > 0)} of {len(sent)} calls, {sum(waited):.1f} s "
            f"in all, at most {max(waited, default=0):.2f} s; its own work: median {w.median(own):.1f} ms a call"
        )
    if timers:
        w.print_timers(timers, portal.request_ids)
    if profile_dir:
        w.print_profile(list(w.iter_profiles(profile_dir)))
    print(f"\n{quiet}")
    print(f"ratio portal/bare sequential (peerings per second): {portal_rate / bare_rate:.2f} (goal >= {GOAL:g})")
    return 0


def report_peaks(title: str, peaks: list[w.BucketPeak]) -> None:
    print(f"\n{title}, per account, region and bucket:")
    print(
        f"  {'account':<13} {'kind':<9} {'calls':>6} {'peak in 1 s':>11} {'burst+refill':>12} "
        f"{'lowest bucket level':>19}  within"
    )
    for kind in ("peering", "mutating", "describe"):
        rows = [p for p in peaks if p.kind == kind]
        if not rows:
            continue
        worst = max(rows, key=lambda p: p.peak_1s)
        for p in sorted(rows, key=lambda p: (-p.peak_1s, p.account_id))[:3]:
            within = (
                "n/a (off)"
                if p.limit_1s is None
                else ("yes" if p.peak_1s <= p.limit_1s and (p.min_tokens or 0) >= 0 else "NO")
            )
            level = "" if p.min_tokens is None else f"{p.min_tokens:.1f}"
            print(
                f"  {p.account_id:<13} {p.kind:<9} {p.calls:>6} {p.peak_1s:>11} "
                f"{'' if p.limit_1s is None else f'{p.limit_1s:.0f}':>12} {level:>19}  {within}"
            )
        if len(rows) > 3:
            print(f"  ... {len(rows) - 3} more {kind} bucket(s), none busier than {worst.peak_1s} calls in 1 s")


if __name__ == "__main__":
    sys.exit(main())
