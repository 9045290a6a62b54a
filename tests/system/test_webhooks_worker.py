"""A real Celery worker sends the webhooks: each stage of an approved request in order, and retries
of a failing receiver until it answers. Webhooks go to a real HTTP server on 127.0.0.1 (a thread in
this process); signatures are checked by hand (tests/fixtures/webhooks.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from requests_app.models import (
    WebhookDelivery,
)
from tests.fixtures.clients import file_request
from tests.fixtures.processes import WorkerProcess, wait_for_status
from tests.fixtures.webhooks import register_hook, verified_by_hand
from tests.fixtures.world import DemoWorld

URL = "/api/v1/peering-requests/"


# === end to end: a real worker sends the webhooks ======================================================
@pytest.fixture(scope="module")
def webhook_worker(worker: WorkerProcess, worker_env: dict[str, str], tmp_path_factory: Any) -> Iterator[WorkerProcess]:
    """The session worker stopped; one allowed to reach 127.0.0.1, with quick retries, takes its place."""
    worker.stop()
    env = {
        **worker_env,
        "WEBHOOK_ALLOW_PRIVATE": "1",
        "WEBHOOK_RETRY_BASE_SECONDS": "0.2",
        "WEBHOOK_TIMEOUT_SECONDS": "5",
    }
    sender = WorkerProcess(env, tmp_path_factory.mktemp("webhooks") / "webhook-worker.log", name="webhooks")
    sender.start()
    yield sender
    sender.stop()
    if worker.proc is None or worker.proc.poll() is not None:
        worker.start()


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_worker_delivers_each_stage_of_an_approved_request_in_order(
    webhook_worker: WorkerProcess,
    demo_world: DemoWorld,
    api: Any,
    allow_private: Any,
    receivers: Any,
) -> None:
    receiver = receivers()
    hook = register_hook(api("admin"), receiver.url, ["*"])
    filed = file_request(api, demo_world, external_ref="INC1")
    assert api("nina").post(f"{URL}{filed['id']}/approve/", {"comment": "go"}, format="json").status_code == 200
    done = wait_for_status(filed["id"], {"active", "failed"})
    assert done.status == "active", done.failure_reason

    got = receiver.wait_for(lambda rs: any(r.event["type"] == "peering_request.active" for r in rs), timeout=60)
    types = [r.event["type"] for r in got]
    assert types == [
        "peering_request.submitted",
        "peering_request.approved",
        "peering_request.provisioning",
        "peering_request.active",
    ], types
    assert len({r.headers["webhook-id"] for r in got}) == 4
    for r in got:
        assert verified_by_hand(hook["secret"], r)
        assert r.event["data"]["id"] == filed["id"] and r.event["data"]["external_ref"] == "INC1"
    assert got[-1].event["data"]["aws_peering_connection_id"] == done.aws_peering_connection_id
    assert got[1].event["data"]["decided_by"] == "nina"
    deadline = time.monotonic() + 10
    while WebhookDelivery.objects.exclude(state="delivered").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {"delivered"}


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_worker_retries_a_failing_receiver_until_it_answers(
    webhook_worker: WorkerProcess,
    demo_world: DemoWorld,
    api: Any,
    allow_private: Any,
    receivers: Any,
) -> None:
    receiver = receivers(script=[500, 500])
    hook = register_hook(api("admin"), receiver.url, ["peering_request.submitted"])
    started = time.monotonic()
    file_request(api, demo_world, external_ref="INC1")

    got = receiver.wait_for(lambda rs: any(r.status == 200 for r in rs), timeout=60)
    delivery = WebhookDelivery.objects.get(webhook_id=hook["id"])
    deadline = time.monotonic() + 10
    while delivery.state != "delivered" and time.monotonic() < deadline:
        time.sleep(0.1)
        delivery.refresh_from_db()
    assert delivery.state == "delivered" and delivery.attempts == 3
    assert time.monotonic() - started < 30  # the worker used the quick backoff, not the default
    time.sleep(0.5)  # nothing more arrives
    got = receiver.received()
    assert [r.status for r in got] == [500, 500, 200]
    assert {r.headers["webhook-id"] for r in got} == {delivery.message_id}
    assert all(verified_by_hand(hook["secret"], r) for r in got)
    assert list(delivery.attempt_log.values_list("status_code", flat=True)) == [500, 500, 200]
