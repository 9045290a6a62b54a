"""Idempotent POSTs (`Idempotency-Key`): the same key and body replay the first answer, keys are per
user, an approval repeated with its key approves once, a server error frees the key, and two
concurrent identical posts create one request.

(The key on filing, with the sandbox left untouched: tests/api/test_request_rules.py.)"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
import requests
from django.utils import timezone

from requests_app.integrations import tokens
from requests_app.models import (
    AuditEvent,
    IdempotencyRecord,
    PeeringRequest,
)
from requests_app.peering import services as peering_services
from tests.fixtures.clients import codes, errors_of, file_request
from tests.fixtures.outbox import Enqueued
from tests.fixtures.world import DemoWorld

URL = "/api/v1/peering-requests/"
TOKENS = "/api/v1/tokens/"


# === idempotency =======================================================================================
@pytest.mark.django_db
def test_the_same_key_and_body_replays_the_first_answer(demo_rows: DemoWorld, api: Any) -> None:
    fiona = api("fiona")
    vpcs = demo_rows.vpcs
    body = {
        "requester_vpc": vpcs["finance-app"].vpc_id,
        "accepter_vpc": vpcs["services-use1"].vpc_id,
        "justification": "x",
        "external_ref": "INC1",
    }
    first = fiona.post(URL, body, format="json", headers={"Idempotency-Key": "file-1"})
    assert first.status_code == 201, first.json()
    assert "Idempotent-Replayed" not in first
    second = fiona.post(URL, body, format="json", headers={"Idempotency-Key": "file-1"})
    assert second.status_code == 201
    assert second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert PeeringRequest.objects.count() == 1

    changed = fiona.post(URL, {**body, "justification": "y"}, format="json", headers={"Idempotency-Key": "file-1"})
    assert changed.status_code == 422
    [error] = errors_of(changed, "client_error")
    assert error["code"] == "idempotency_key_reused"
    elsewhere = fiona.post(TOKENS, {"name": "t"}, format="json", headers={"Idempotency-Key": "file-1"})
    assert elsewhere.status_code == 422 and codes(elsewhere) == {"idempotency_key_reused"}
    assert PeeringRequest.objects.count() == 1

    # Without a key, the same body is a new call (refused: the pair has a live request).
    assert fiona.post(URL, body, format="json").status_code != 201
    assert PeeringRequest.objects.count() == 1

    too_long = fiona.post(URL, body, format="json", headers={"Idempotency-Key": "k" * 256})
    assert too_long.status_code == 400 and codes(too_long) == {"invalid_idempotency_key"}
    # After 24 hours a key is forgotten: the same key with another body is a new call.
    IdempotencyRecord.objects.filter(key="file-1").update(created_at=timezone.now() - timedelta(hours=25))
    PeeringRequest.objects.update(status="cancelled")
    renewed = fiona.post(URL, {**body, "justification": "y"}, format="json", headers={"Idempotency-Key": "file-1"})
    assert renewed.status_code == 201 and "Idempotent-Replayed" not in renewed
    assert PeeringRequest.objects.count() == 2


@pytest.mark.django_db
def test_idempotency_keys_are_per_user(demo_rows: DemoWorld, api: Any) -> None:
    vpcs = demo_rows.vpcs
    body = {
        "requester_vpc": vpcs["finance-app"].vpc_id,
        "accepter_vpc": vpcs["services-use1"].vpc_id,
        "justification": "x",
        "external_ref": "INC1",
    }
    fionas = api("fiona").post(URL, body, format="json", headers={"Idempotency-Key": "shared"})
    assert fionas.status_code == 201
    # Another user, same key, different body: independent, not "reused".
    erins = file_request(api, demo_rows, user="erin", requester="eng-build", headers={"Idempotency-Key": "shared"})
    assert erins["id"] != fionas.json()["id"]
    # Another user, same key, same body: their own answer, never a replay of fiona's.
    sams = api("sam").post(URL, body, format="json", headers={"Idempotency-Key": "shared"})
    assert "Idempotent-Replayed" not in sams
    assert sams.status_code != 201 or sams.json()["id"] != fionas.json()["id"]
    assert PeeringRequest.objects.count() == 2


@pytest.mark.django_db
def test_an_approval_repeated_with_its_key_approves_once(demo_rows: DemoWorld, api: Any, no_broker: Enqueued) -> None:
    filed = file_request(api, demo_rows)
    nina = api("nina")
    approve = f"{URL}{filed['id']}/approve/"
    first = nina.post(approve, {"comment": "ok"}, format="json", headers={"Idempotency-Key": "approve-1"})
    assert first.status_code == 200, first.json()
    second = nina.post(approve, {"comment": "ok"}, format="json", headers={"Idempotency-Key": "approve-1"})
    assert second.status_code == 200 and second["Idempotent-Replayed"] == "true"
    assert second.json()["status"] == "approved" and second.json()["id"] == filed["id"]
    assert AuditEvent.objects.filter(request_id=filed["id"], action="request.approved").count() == 1
    # Without the key the repeat is refused: the key is what made it safe.
    assert nina.post(approve, {"comment": "ok"}, format="json").status_code == 409


@pytest.mark.django_db
def test_a_server_error_frees_the_key_for_a_retry(
    demo_rows: DemoWorld, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = peering_services.peering_request_submit
    calls = {"n": 0}

    def flaky(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database went away")
        return original(**kwargs)

    monkeypatch.setattr(peering_services, "peering_request_submit", flaky)
    vpcs = demo_rows.vpcs
    body = {
        "requester_vpc": vpcs["finance-app"].vpc_id,
        "accepter_vpc": vpcs["services-use1"].vpc_id,
        "justification": "x",
    }
    failed = api("fiona").post(URL, body, format="json", headers={"Idempotency-Key": "retry-me"})
    assert failed.status_code == 500
    errors_of(failed, "server_error")
    retried = api("fiona").post(URL, body, format="json", headers={"Idempotency-Key": "retry-me"})
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried
    assert PeeringRequest.objects.count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("work_seconds", [0.0, 0.5])
def test_two_concurrent_identical_posts_create_one_request(
    work_seconds: float,
    live_server: Any,
    demo_rows: DemoWorld,
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    if work_seconds:  # hold the first call inside its work, so the second surely arrives meanwhile
        original = peering_services.peering_request_submit

        def slow(**kwargs: Any) -> Any:
            time.sleep(work_seconds)
            return original(**kwargs)

        monkeypatch.setattr(peering_services, "peering_request_submit", slow)
    _, key = tokens.issue(demo_rows.users["fiona"], "concurrency")
    vpcs = demo_rows.vpcs
    body = {
        "requester_vpc": vpcs["finance-app"].vpc_id,
        "accepter_vpc": vpcs["services-use1"].vpc_id,
        "justification": "x",
        "external_ref": "INC1",
    }
    headers = {"Authorization": f"Token {key}", "Idempotency-Key": "concurrent-1"}
    barrier = threading.Barrier(2)
    answers: list[requests.Response] = []

    def post() -> None:
        barrier.wait()
        answers.append(requests.post(f"{live_server.url}{URL}", json=body, headers=headers, timeout=60))

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)

    assert len(answers) == 2
    assert PeeringRequest.objects.count() == 1
    created = PeeringRequest.objects.get()
    statuses = sorted(a.status_code for a in answers)
    assert 201 in statuses, [(a.status_code, a.text[:200]) for a in answers]
    first = next(a for a in answers if a.status_code == 201 and "Idempotent-Replayed" not in a.headers)
    assert first.json()["id"] == str(created.pk)
    other = next(a for a in answers if a is not first)
    if other.status_code == 409:
        assert other.json()["errors"][0]["code"] == "idempotency_key_in_progress"
        assert other.json()["type"] == "client_error"
    else:
        assert other.status_code == 201 and other.headers.get("Idempotent-Replayed") == "true"
        assert other.json()["id"] == str(created.pk)
    if work_seconds:
        assert other.status_code == 409

    later = requests.post(f"{live_server.url}{URL}", json=body, headers=headers, timeout=30)
    assert later.status_code == 201 and later.headers.get("Idempotent-Replayed") == "true"
    assert later.json()["id"] == str(created.pk)
    assert PeeringRequest.objects.count() == 1
