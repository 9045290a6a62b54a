"""Fault injection with real processes: a worker killed mid-saga, throttling, a connection that
AWS fails. Faults come from a real worker with botocore hooks (tests/system/faulty_worker.py), SIGKILL,
and states forced in the sandbox server running in this process.

Every setting is the shipped default (the 30-second lease, the 15-second sweep): only the
injected faults differ from production. The one test that lowers a setting says why, and its
twin proves the default.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

from requests_app import tasks
from requests_app.inventory import sync
from requests_app.models import AwsAccount, PeeringRequest, Vpc
from scripts.processes import wait_port
from tests.fixtures import free_port
from tests.fixtures.clients import file_finance_request
from tests.fixtures.processes import PROCESSES, BeatProcess, WorkerProcess, wait_for_status
from tests.fixtures.sandbox import ec2_as
from tests.fixtures.world import DemoWorld

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def no_normal_worker(worker: WorkerProcess) -> Iterator[WorkerProcess]:
    """Stop the session's worker so the faulty one gets the task; start it again afterwards."""
    worker.stop()
    yield worker
    if worker.proc is None or worker.proc.poll() is not None:
        worker.start()


def _faulty(worker_env: dict[str, str], tmp_path: Path, faults: dict[str, Any], **options: Any) -> WorkerProcess:
    return WorkerProcess(worker_env, tmp_path / "faulty.log", faults=faults, name="faulty", **options)


def _until_the_lease_runs_out(since: float) -> None:
    """A dead worker's lease runs out WORK_LEASE_SECONDS after its last renewal (the default 30 s)."""
    time.sleep(max(0.0, django_settings.WORK_LEASE_SECONDS + 1 - (time.monotonic() - since)))


def _file_and_approve(api: Any, demo_world: DemoWorld, requester: str = "finance-app", user: str = "fiona") -> str:
    vpcs = demo_world.vpcs
    filed = (
        api(user)
        .post(
            "/api/v1/peering-requests/",
            {
                "requester_vpc": vpcs[requester].vpc_id,
                "accepter_vpc": vpcs["services-use1"].vpc_id,
                "justification": "faults",
            },
            format="json",
        )
        .json()
    )
    assert api("nina").post(f"/api/v1/peering-requests/{filed['id']}/approve/", {}, format="json").status_code == 200
    return filed["id"]


def _pair_connections(requester_vpc: str, accepter_vpc: str) -> list[dict[str, Any]]:
    return [
        p
        for p in ec2_as("111111111111", "us-east-1").describe_vpc_peering_connections()["VpcPeeringConnections"]
        if {p["RequesterVpcInfo"]["VpcId"], p["AccepterVpcInfo"]["VpcId"]} == {requester_vpc, accepter_vpc}
        and p["Status"]["Code"] not in ("deleted", "failed", "rejected")
    ]


def _routes_to(pcx_id: str) -> list[tuple[str, str]]:
    found = []
    for account, region in (("222222222222", "us-east-1"), ("111111111111", "us-east-1")):
        for table in ec2_as(account, region).describe_route_tables()["RouteTables"]:
            found += [
                (table["RouteTableId"], r["DestinationCidrBlock"])
                for r in table["Routes"]
                if r.get("VpcPeeringConnectionId") == pcx_id
            ]
    return found


@pytest.mark.parametrize("kill_after", ["CreateVpcPeeringConnection", "AcceptVpcPeeringConnection", "CreateRoute"])
def test_worker_killed_mid_saga_is_recovered_by_the_sweeper_without_duplicates(
    kill_after: str,
    no_normal_worker: WorkerProcess,
    worker_env: dict[str, str],
    demo_world: DemoWorld,
    api: Any,
    tmp_path: Path,
) -> None:
    faulty = _faulty(worker_env, tmp_path, {"kill_after": kill_after, "kill_count_file": str(tmp_path / "kills")})
    faulty.start()
    request_id = _file_and_approve(api, demo_world)

    assert faulty.wait_exit(60) == -9  # SIGKILL, right after the call returned
    stuck = PeeringRequest.objects.get(pk=request_id)
    assert stuck.status == "provisioning" and stuck.lease_owner.startswith("worker:")
    killed_at = time.monotonic()

    # The message died with the worker. A healthy worker comes back; once the dead worker's
    # lease has run out, the sweeper (beat) re-enqueues the request.
    no_normal_worker.start()
    _until_the_lease_runs_out(killed_at)
    assert tasks.sweep_stuck_work()["re_enqueued"] == 1
    done = wait_for_status(request_id, {"active", "failed"})
    assert done.status == "active", done.failure_reason
    lease = django_settings.WORK_LEASE_SECONDS
    print(f"\nkilled after {kill_after}: active {time.monotonic() - killed_at:.1f} s after the kill (lease {lease} s)")

    vpcs = demo_world.vpcs
    connections = _pair_connections(vpcs["finance-app"].vpc_id, vpcs["services-use1"].vpc_id)
    assert [c["VpcPeeringConnectionId"] for c in connections] == [done.aws_peering_connection_id]
    routes = _routes_to(done.aws_peering_connection_id)
    assert len(routes) == len(set(routes)) == 1 + 2 * 2  # finance's table; two blocks in each hub table
    # The step log shows where the worker died: that step took two attempts, then finished.
    killed_step = {"CreateVpcPeeringConnection": "create connection", "AcceptVpcPeeringConnection": "accept"}.get(
        kill_after, done.steps.filter(name__startswith="route ").order_by("position").first().name
    )
    steps = {s.name: s for s in done.steps.all()}
    assert steps[killed_step].attempts == 2 and steps[killed_step].state == "done"
    assert all(s.state == "done" for s in steps.values())
    assert steps["create connection"].aws_id == done.aws_peering_connection_id
    # One create was ever asked for; the audit shows it even when the worker died inside it.
    assert done.events.filter(operation="CreateVpcPeeringConnection", result="started").count() == 1
    if kill_after == "CreateVpcPeeringConnection":
        adopted = done.events.get(action="provisioning.connection_recorded")
        assert adopted.data == {"connection_id": done.aws_peering_connection_id, "adopted": True}


def test_a_connection_aws_fails_after_create_is_undone_and_a_retry_works(
    no_normal_worker: WorkerProcess,
    worker_env: dict[str, str],
    demo_world: DemoWorld,
    api: Any,
    tmp_path: Path,
    moto_server: str,
) -> None:
    from moto.ec2.models import ec2_backends

    faulty = _faulty(worker_env, tmp_path, {"pause_after": {"CreateVpcPeeringConnection": 3}})
    faulty.start()
    try:
        request_id = _file_and_approve(api, demo_world)
        deadline = time.monotonic() + 30
        while not (pcx_id := PeeringRequest.objects.get(pk=request_id).aws_peering_connection_id):
            assert time.monotonic() < deadline, "the connection id was never stored"
            time.sleep(0.1)
        # What AWS does to an overlapping request, which the sandbox never does by itself.
        pcx = ec2_backends["222222222222"]["us-east-1"].vpc_pcxs[pcx_id]
        pcx._status.code, pcx._status.message = "failed", "Failed due to overlapping CIDR range"
        failed = wait_for_status(request_id, {"active", "failed"})
    finally:
        faulty.stop()
    assert failed.status == "failed"
    assert f"{pcx_id} is failed in AWS: Failed due to overlapping CIDR range" in failed.failure_reason
    assert "nothing to delete" in failed.failure_reason  # AWS cleans up failed connections itself
    assert _routes_to(pcx_id) == []
    assert failed.events.filter(action="provisioning.failed").exists()

    no_normal_worker.start()
    assert api("fiona").post(f"/api/v1/peering-requests/{request_id}/retry/", {}, format="json").status_code == 200
    done = wait_for_status(request_id, {"active", "failed"})
    assert done.status == "active", done.failure_reason
    assert done.aws_peering_connection_id != pcx_id


def _extra_spokes(count: int) -> list[Vpc]:
    """`count` more engineering VPCs (10.60.0.0/16, 10.61.0.0/16, …), created in the sandbox and synced."""
    ec2 = ec2_as("444444444444", "us-east-1")
    names = []
    for i in range(count):
        vpc_id = ec2.create_vpc(CidrBlock=f"10.{60 + i}.0.0/16")["Vpc"]["VpcId"]
        ec2.create_tags(Resources=[vpc_id], Tags=[{"Key": "Name", "Value": f"spoke-{i:02d}"}])
        names.append(f"spoke-{i:02d}")
    sync.sync_account(AwsAccount.objects.get(account_id="444444444444"))
    return list(Vpc.objects.filter(name__in=names).order_by("name"))


def _file_all_then_approve_all(api: Any, spokes: list[Vpc], hub: Vpc, justification: str) -> list[str]:
    """erin files each spoke with the hub, then nina approves them all: their ids, in order."""
    ids = []
    for spoke in spokes:
        filed = api("erin").post(
            "/api/v1/peering-requests/",
            {"requester_vpc": spoke.vpc_id, "accepter_vpc": hub.vpc_id, "justification": justification},
            format="json",
        )
        assert filed.status_code == 201, filed.json()
        ids.append(filed.json()["id"])
    for request_id in ids:
        assert api("nina").post(f"/api/v1/peering-requests/{request_id}/approve/", {}, format="json").status_code == 200
    return ids


def test_a_batch_of_20_under_30_percent_throttling_all_end_active_without_duplicates(
    no_normal_worker: WorkerProcess,
    worker_env: dict[str, str],
    demo_world: DemoWorld,
    api: Any,
    tmp_path: Path,
) -> None:
    spokes = _extra_spokes(20)
    hub = demo_world.vpcs["services-use1"]
    faulty = _faulty(
        worker_env, tmp_path, {"throttle_rate": 0.3, "seed": 7, "throttle_count_file": str(tmp_path / "throttled")}
    )
    faulty.start()
    started = time.monotonic()
    try:
        ids = _file_all_then_approve_all(api, spokes, hub, "batch")
        done = [wait_for_status(i, {"active", "failed"}, timeout=300) for i in ids]
    finally:
        faulty.stop()
    elapsed = time.monotonic() - started
    assert [d.status for d in done] == ["active"] * 20, [d.failure_reason for d in done if d.status != "active"]
    throttled = len((tmp_path / "throttled").read_text().splitlines())
    assert throttled >= 50  # the faults really happened: 30 % of several hundred calls
    for spoke, d in zip(spokes, done, strict=True):
        assert d.events.filter(operation="CreateVpcPeeringConnection", result="started").count() == 1
        assert [c["VpcPeeringConnectionId"] for c in _pair_connections(spoke.vpc_id, hub.vpc_id)] == [
            d.aws_peering_connection_id
        ]
    print(f"\n20 requests under 30 % throttling: {throttled} throttled calls, all active in {elapsed:.1f} s")


def test_two_workers_given_the_same_task_make_one_set_of_effects(
    worker: WorkerProcess,
    worker_env: dict[str, str],
    demo_world: DemoWorld,
    api: Any,
    tmp_path: Path,
) -> None:
    second = WorkerProcess(worker_env, tmp_path / "second.log", name="second")
    second.start()
    try:
        request_id = _file_and_approve(api, demo_world)
        tasks.provision_peering_request.delay(request_id)  # a duplicate delivery, at the same moment
        done = wait_for_status(request_id, {"active", "failed"})
        time.sleep(2)  # let the duplicate finish too
    finally:
        second.stop()
    assert done.status == "active", done.failure_reason
    vpcs = demo_world.vpcs
    connections = _pair_connections(vpcs["finance-app"].vpc_id, vpcs["services-use1"].vpc_id)
    assert [c["VpcPeeringConnectionId"] for c in connections] == [done.aws_peering_connection_id]
    assert done.events.filter(operation="CreateVpcPeeringConnection", result="started").count() == 1
    assert done.events.filter(operation="CreateRoute", result="started").count() == 1 + 2 * 2
    assert PeeringRequest.objects.get(pk=request_id).events.filter(action="provisioning.completed").count() == 1


class RedisServer:
    """A redis-server of the test's own, on its own port, that the test may stop and start."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.proc: Any = None

    def start(self) -> None:
        self.proc = PROCESSES.start(
            "redis",
            [
                shutil.which("redis-server") or "/usr/bin/redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            os.environ,
            log=self.workdir / "redis.log",
        )
        if not wait_port("127.0.0.1", self.port, 10, give_up=lambda: self.proc.poll() is not None):
            raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc and any(child.proc is self.proc for child in PROCESSES.children):
            PROCESSES.stop(self.proc, grace=10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(free_port(), tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def app_on(own_redis: RedisServer, monkeypatch: Any) -> Iterator[str]:
    """Point this process's Celery app (the web side) at the test's own Redis, then back."""
    from peering_portal.celery import app

    saved = (app.conf.broker_url, app.conf.broker_transport_options)
    url = f"redis://127.0.0.1:{own_redis.port}/0"
    monkeypatch.setenv("CELERY_BROKER_URL", url)  # Celery prefers the variable to its config

    def use(url: str, options: dict[str, Any]) -> None:
        app.conf.broker_url, app.conf.broker_transport_options = url, options
        app._pool = None  # connection and producer pools are keyed by the old URL
        app.amqp._producer_pool = None

    use(url, {"visibility_timeout": 3600})
    yield url
    monkeypatch.undo()
    use(*saved)


def test_redis_down_when_a_request_is_approved_delays_it_but_loses_nothing(
    own_redis: RedisServer,
    app_on: str,
    worker_env: dict[str, str],
    demo_world: DemoWorld,
    api: Any,
    tmp_path: Path,
    caplog: Any,
) -> None:
    on_redis = WorkerProcess({**worker_env, "CELERY_BROKER_URL": app_on}, tmp_path / "redis-worker.log", name="redis")
    on_redis.start()
    try:
        filed = file_finance_request(api, demo_world.vpcs, justification="broker outage")
        own_redis.stop()
        down_at = time.monotonic()
        approved = api("nina").post(f"/api/v1/peering-requests/{filed['id']}/approve/", {}, format="json")
        # The approval stands: it was committed before the task was sent, and the failed send is logged.
        assert approved.status_code == 200 and approved.json()["status"] == "approved"
        assert "the sweeper will retry" in caplog.text

        time.sleep(5)
        own_redis.start()  # the broker comes back; the worker reconnects by itself
        # The lost task was due to be picked up within a lease of the approval; then the sweeper sends it.
        _until_the_lease_runs_out(down_at)
        assert tasks.sweep_stuck_work()["re_enqueued"] == 1
        done = wait_for_status(filed["id"], {"active", "failed"})
        recovered_in = time.monotonic() - down_at
    finally:
        on_redis.stop()
    assert done.status == "active", done.failure_reason
    lease = django_settings.WORK_LEASE_SECONDS
    print(f"\nbroker down at approval: active {recovered_in:.1f} s later (outage 5 s, lease {lease} s)")


@pytest.mark.postgres
def test_a_database_connection_killed_mid_task_is_recovered_by_the_task(
    no_normal_worker: WorkerProcess,
    worker_env: dict[str, str],
    demo_world: DemoWorld,
    api: Any,
    tmp_path: Path,
) -> None:
    from django.db import connection

    faulty = _faulty(worker_env, tmp_path, {"pause_after": {"CreateVpcPeeringConnection": 3}})
    faulty.start()
    try:
        request_id = _file_and_approve(api, demo_world)
        deadline = time.monotonic() + 30
        events = PeeringRequest.objects.get(pk=request_id).events
        while not events.filter(operation="CreateVpcPeeringConnection", result="started").exists():
            assert time.monotonic() < deadline, "the worker never reached the create call"
            time.sleep(0.05)
        # While AWS is creating the connection, every server connection of the worker dies.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            assert cursor.fetchone()[0] >= 1
        killed_at = time.monotonic()
        done = wait_for_status(request_id, {"active", "failed"})
    finally:
        faulty.stop()
    assert done.status == "active", done.failure_reason
    print(f"\ndatabase connection killed mid-task: active {time.monotonic() - killed_at:.1f} s later")
    vpcs = demo_world.vpcs
    connections = _pair_connections(vpcs["finance-app"].vpc_id, vpcs["services-use1"].vpc_id)
    assert [c["VpcPeeringConnectionId"] for c in connections] == [done.aws_peering_connection_id]
    assert "database error on provision" in (tmp_path / "faulty.log").read_text()
    assert done.events.filter(operation="CreateVpcPeeringConnection", result="started").count() == 1


def test_a_task_that_kills_its_worker_every_time_ends_failed_instead_of_looping(
    no_normal_worker: WorkerProcess,
    worker_env: dict[str, str],
    demo_world: DemoWorld,
    api: Any,
    tmp_path: Path,
) -> None:
    faults = {"kill_after": "CreateRoute", "kill_times": 99, "kill_count_file": str(tmp_path / "kills")}
    # Lowered from the default 12 so the test dies 2 times, not 12 (each costs a 30-second lease):
    # test_the_default_delivery_limit_lets_twelve_deliveries_run_and_fails_the_thirteenth proves 12.
    env = {"MAX_TASK_DELIVERIES": "2"}
    faulty = _faulty({**worker_env, **env}, tmp_path, faults)
    faulty.start()
    request_id = _file_and_approve(api, demo_world)
    for _ in range(2):  # first delivery, then one redelivery by the sweeper: both die in CreateRoute
        assert faulty.wait_exit(60) == -9
        killed_at = time.monotonic()
        faulty.start()
        _until_the_lease_runs_out(killed_at)
        assert tasks.sweep_stuck_work()["re_enqueued"] == 1
    try:
        failed = wait_for_status(request_id, {"active", "failed"})
    finally:
        faulty.stop()
    assert failed.status == "failed"
    assert "delivered 3 times without finishing" in failed.failure_reason
    assert (tmp_path / "kills").read_text() == "2"
    # Giving up undoes what the portal made, as any permanent failure does.
    assert _routes_to(failed.events.get(action="provisioning.connection_recorded").data["connection_id"]) == []


def test_the_default_delivery_limit_lets_twelve_deliveries_run_and_fails_the_thirteenth(
    demo_world: DemoWorld, api: Any
) -> None:
    """The twin of the test above on the shipped default (MAX_TASK_DELIVERIES = 12), counted
    through the same function the worker calls for each first delivery."""
    from requests_app.peering.saga import runner

    assert django_settings.MAX_TASK_DELIVERIES == 12
    request_id = _file_and_approve(api, demo_world)
    PeeringRequest.objects.filter(pk=request_id).update(status="provisioning")
    saga = runner.Saga(request_id)
    assert saga.claim()
    for delivery in range(1, 13):
        assert runner.too_many_deliveries(saga, "provision") is False, delivery
    assert runner.too_many_deliveries(saga, "provision") is True
    failed = PeeringRequest.objects.get(pk=request_id)
    assert failed.status == "failed" and "delivered 13 times without finishing" in failed.failure_reason


def test_a_worker_killed_with_six_approvals_in_flight_recovers_within_a_minute_on_the_defaults(
    no_normal_worker: WorkerProcess,
    worker_env: dict[str, str],
    demo_world: DemoWorld,
    api: Any,
    tmp_path: Path,
) -> None:
    """Six approvals; the worker (two sagas at a time, as `make run` runs it) and its pool are
    killed with SIGKILL while two are in flight; a worker comes back. Every setting is the shipped
    default and beat runs on its real schedule: every request must be active within a minute of
    the worker being available again, with exactly one connection per pair."""
    assert django_settings.WORK_LEASE_SECONDS == 30 and django_settings.SWEEP_INTERVAL_SECONDS == 15
    spokes = _extra_spokes(6)
    hub = demo_world.vpcs["services-use1"]
    beat = BeatProcess(worker_env, tmp_path / "beat.log")
    beat.start()
    # The injected fault: each saga pauses 2 s after its accept, so the kill finds some in flight.
    crashing = _faulty(worker_env, tmp_path, {"pause_after": {"AcceptVpcPeeringConnection": 2}}, concurrency=2)
    crashing.start()
    try:
        ids = _file_all_then_approve_all(api, spokes, hub, "crash")
        deadline = time.monotonic() + 60
        while True:
            in_flight = PeeringRequest.objects.filter(pk__in=ids, status="provisioning").exclude(lease_owner="")
            if in_flight.count() >= 2:
                break
            assert time.monotonic() < deadline, "no two sagas were ever in flight together"
            time.sleep(0.05)
        crashing.kill_group()
        stuck = set(in_flight.values_list("pk", flat=True))
        no_normal_worker.start()
        back_at = time.monotonic()
        done = [wait_for_status(i, {"active", "failed"}, timeout=180) for i in ids]
        recovered = time.monotonic() - back_at
    finally:
        crashing.stop()
        beat.stop()
    assert [d.status for d in done] == ["active"] * 6, [d.failure_reason for d in done if d.status != "active"]
    print(
        f"\nworker and pool killed with {len(stuck)} of 6 sagas in flight: all active {recovered:.1f} s "
        f"after a worker came back (lease {django_settings.WORK_LEASE_SECONDS} s, "
        f"sweep every {django_settings.SWEEP_INTERVAL_SECONDS} s)"
    )
    assert recovered < 60 + 10  # within a minute, plus a margin for this machine's load
    for spoke, d in zip(spokes, done, strict=True):
        assert [c["VpcPeeringConnectionId"] for c in _pair_connections(spoke.vpc_id, hub.vpc_id)] == [
            d.aws_peering_connection_id
        ]
        assert d.events.filter(operation="CreateVpcPeeringConnection", result="started").count() == 1


def test_healthz_is_degraded_naming_the_scheduler_when_beat_stops(
    worker: WorkerProcess, worker_env: dict[str, str], tmp_path: Path, client: Any
) -> None:
    """A real beat on its shipped schedule; /healthz is ok while it runs, and 503 naming the
    scheduler once the last sweep is older than two intervals (2 x 15 s)."""
    beat = BeatProcess(worker_env, tmp_path / "beat.log")
    beat.start()
    try:
        deadline = time.monotonic() + 3 * django_settings.SWEEP_INTERVAL_SECONDS
        while client.get("/healthz").json().get("scheduler") != "ok":
            assert time.monotonic() < deadline, client.get("/healthz").json()
            time.sleep(0.5)
    finally:
        beat.stop()
    stopped_at = time.monotonic()
    deadline = stopped_at + 2 * django_settings.SWEEP_INTERVAL_SECONDS + 20
    while (answer := client.get("/healthz")).status_code == 200:
        assert time.monotonic() < deadline, answer.json()
        time.sleep(0.5)
    assert answer.status_code == 503
    assert answer.json()["scheduler"].startswith("down: the last sweep ran")
    assert answer.json()["database"] == "ok" and answer.json()["broker"] == "ok"
    print(f"\nbeat stopped: /healthz degraded {time.monotonic() - stopped_at:.1f} s later")
