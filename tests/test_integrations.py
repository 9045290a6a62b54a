"""Integrations: signed webhooks sent from an outbox, hashed API tokens, idempotent POSTs, rate
limits, incremental lists and the API's error shape.

Webhooks go to a real HTTP server on 127.0.0.1 (a thread in this process). Most webhook tests
drive `webhooks.attempt` here; the integration tests at the end let a real Celery worker send them.
Signatures are checked with the Standard Webhooks algorithm written out in this file, never with
`webhooks.sign`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import time_machine
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from requests_app import tasks
from requests_app.api import throttling
from requests_app.core import outbox
from requests_app.domain.status import Status
from requests_app.integrations import tokens, webhooks
from requests_app.models import (
    ApiToken,
    AuditEvent,
    IdempotencyRecord,
    PeeringRequest,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)
from requests_app.peering import lifecycle, preflight
from requests_app.peering import services as peering_services
from tests.conftest import DEMO_PASSWORD, SentTasks, WorkerProcess, wait_for_status

URL = "/api/v1/peering-requests/"
HOOKS = "/api/v1/webhooks/"
TOKENS = "/api/v1/tokens/"
LOGIN = "/api/v1/auth/token/"


# --- helpers: a receiver, signatures by hand, the error shape ---------------------------------------
@dataclass
class Received:
    headers: dict[str, str]  # lower-cased names
    body: bytes
    status: int  # what the receiver answered

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    """An HTTP endpoint that records every POST and answers from a script, then with `default`."""

    def __init__(
        self, script: list[int] | None = None, default: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        self.script = list(script or [])
        self.default = default
        self.extra_headers = dict(headers or {})
        self._received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    status = receiver.script.pop(0) if receiver.script else receiver.default
                    receiver._received.append(Received({k.lower(): v for k, v in self.headers.items()}, body, status))
                self.send_response(status)
                for name, value in receiver.extra_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/portal"

    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def wait_for(self, condition: Callable[[list[Received]], bool], timeout: float = 60) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received()
            if condition(got):
                return got
            time.sleep(0.1)
        raise AssertionError(
            f"the receiver did not get what was expected in {timeout}s: "
            f"{[(r.status, r.event.get('type')) for r in self.received()]}"
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(*args: Any, **kwargs: Any) -> Receiver:
        made.append(Receiver(*args, **kwargs))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def hand_signature(secret: str, message_id: str, timestamp: int | str, body: bytes) -> str:
    """Standard Webhooks, written out: HMAC-SHA256 keyed with the base64 part of `whsec_…`."""
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = message_id.encode() + b"." + str(timestamp).encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def verified_by_hand(secret: str, got: Received, tolerance: int = 300) -> bool:
    message_id, stamp = got.headers["webhook-id"], got.headers["webhook-timestamp"]
    if abs(time.time() - int(stamp)) > tolerance:
        return False
    expected = hand_signature(secret, message_id, stamp, got.body)
    return any(hmac.compare_digest(expected, offered) for offered in got.headers["webhook-signature"].split())


def errors_of(response: Any, kind: str | None = None) -> list[dict[str, Any]]:
    """The API's error shape, checked (JSON, never HTML); returns the errors."""
    assert response["Content-Type"].startswith("application/json"), response.content[:300]
    body = json.loads(response.content)
    assert body["type"] in {"validation_error", "client_error", "server_error"}, body
    if kind:
        assert body["type"] == kind, body
    assert body["errors"], body
    for error in body["errors"]:
        assert set(error) >= {"code", "detail", "attr"}, error
    return body["errors"]


def codes(response: Any) -> set[str]:
    return {e["code"] for e in errors_of(response)}


def client_with(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def file_request(
    api: Any,
    demo_world: dict[str, Any],
    user: str = "fiona",
    requester: str = "finance-app",
    accepter: str = "services-use1",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    vpcs = demo_world["vpcs"]
    body = {
        "requester_vpc": vpcs[requester].vpc_id,
        "accepter_vpc": vpcs[accepter].vpc_id,
        "justification": "x",
        "external_ref": "INC1",
        **extra,
    }
    response = api(user).post(URL, body, format="json", headers=headers or {})
    assert response.status_code == 201, response.json()
    return response.json()


def register_hook(client: APIClient, url: str, events: list[str]) -> dict[str, Any]:
    response = client.post(HOOKS, {"url": url, "events": events}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def outbox_row(hook_id: int, event_type: str = "peering_request.submitted") -> WebhookDelivery:
    """A pending delivery as `webhooks.queue` writes it, without filing a request (no AWS sandbox)."""
    now = timezone.now()
    data = {"id": str(uuid.uuid4()), "status": "pending_approval", "external_ref": "INC1"}
    return WebhookDelivery.objects.create(
        webhook_id=hook_id,
        event_type=event_type,
        payload={"type": event_type, "timestamp": now.isoformat(), "data": data},
        next_attempt_at=now,
    )


def make_due(delivery_id: int) -> None:
    WebhookDelivery.objects.filter(pk=delivery_id, next_attempt_at__isnull=False).update(next_attempt_at=timezone.now())


def drive(delivery_id: int, limit: int = 10) -> list[str]:
    """Attempt a delivery until it stops asking for a retry, making each retry due at once."""
    outcomes = []
    for _ in range(limit):
        make_due(delivery_id)
        outcome = webhooks.attempt(delivery_id)
        outcomes.append(outcome.state)
        if outcome.state != "retry":
            break
    return outcomes


@dataclass
class Enqueued:
    webhooks: list[tuple[int, float]]
    webhook_delays: list[int]


@pytest.fixture
def no_broker(sent_tasks: SentTasks) -> Enqueued:
    """What would go to the broker, recorded here instead (so nothing runs behind the test's back).

    Every webhook delivery sent is in `webhooks` with its countdown (0 for at once); those sent
    with no countdown at all (the sweeper's, a commit's) are in `webhook_delays` too.
    """
    seen = Enqueued([], [])

    def deliver_webhook(delivery_id: int, countdown: float | None = None) -> None:
        seen.webhooks.append((delivery_id, countdown or 0))
        if countdown is None:
            seen.webhook_delays.append(delivery_id)

    sent_tasks.handlers[outbox.DELIVER_WEBHOOK] = deliver_webhook
    return seen


@pytest.fixture
def plain_api(db: Any) -> Callable[[str | None], APIClient]:
    """Like `api`, for tests that file nothing: an admin and three plain users, no AWS sandbox."""

    user_model = get_user_model()
    people = {"admin": user_model.objects.create_superuser("admin", "admin@example.com", DEMO_PASSWORD)}
    for name in ("nina", "fiona", "erin"):
        people[name] = user_model.objects.create_user(name, f"{name}@example.com", DEMO_PASSWORD)

    def client_for(username: str | None) -> APIClient:
        if username is None:
            return APIClient()
        _, key = tokens.issue(people[username], "tests")
        return client_with(key)

    return client_for


@pytest.fixture
def allow_private(settings: Any) -> Any:
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.WEBHOOK_TIMEOUT_SECONDS = 5
    return settings


# === 1. signatures =====================================================================================
# The example in the Standard Webhooks specification (and the svix libraries' tests).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_signature_is_the_standard_webhooks_one() -> None:
    assert hand_signature(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE
    headers = {"webhook-id": SPEC_ID, "webhook-timestamp": str(SPEC_TIMESTAMP), "webhook-signature": SPEC_SIGNATURE}
    with time_machine.travel(SPEC_TIMESTAMP + 10, tick=False):
        assert webhooks.verify(SPEC_SECRET, headers, SPEC_BODY)
    assert webhooks.sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_verify_accepts_a_hand_made_signature_and_refuses_tampering_and_old_timestamps() -> None:
    secret = webhooks.new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24
    assert webhooks.new_secret() != secret
    body = json.dumps({"type": "peering_request.submitted", "data": {"external_ref": "INC1"}}).encode()
    message_id = "msg_" + uuid.uuid4().hex
    now = int(time.time())

    def headers(stamp: int, signature: str | None = None) -> dict[str, str]:
        return {
            "webhook-id": message_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": signature or hand_signature(secret, message_id, stamp, body),
        }

    good = headers(now)
    assert webhooks.verify(secret, good, body)
    assert webhooks.verify(secret, {k.title(): v for k, v in good.items()}, body)  # header names: any case
    other = hand_signature(webhooks.new_secret(), message_id, now, body)
    assert webhooks.verify(secret, {**good, "webhook-signature": f"{other} {good['webhook-signature']}"}, body)

    # Tampering: the body, the id, the timestamp and the key are all covered by the signature.
    assert not webhooks.verify(secret, good, body.replace(b"INC1", b"INC2"))
    assert not webhooks.verify(secret, good, body + b" ")
    assert not webhooks.verify(secret, {**good, "webhook-id": "msg_" + uuid.uuid4().hex}, body)
    assert not webhooks.verify(secret, {**good, "webhook-timestamp": str(now - 1)}, body)
    assert not webhooks.verify(webhooks.new_secret(), good, body)
    assert not webhooks.verify(secret, {**good, "webhook-signature": other}, body)
    assert not webhooks.verify(
        secret, {**good, "webhook-signature": good["webhook-signature"].replace("v1,", "v2,")}, body
    )
    assert not webhooks.verify(secret, {"webhook-id": message_id, "webhook-timestamp": str(now)}, body)

    # Replays: a correctly signed message older (or newer) than five minutes is refused.
    with time_machine.travel(now, tick=False):
        assert webhooks.verify(secret, headers(now - 299), body)
        assert not webhooks.verify(secret, headers(now - 301), body)
        assert not webhooks.verify(secret, headers(now + 301), body)
    assert not webhooks.verify(secret, headers(now - 3600), body)


# === 2. a delivery on filing ===========================================================================
@pytest.mark.django_db
def test_filing_a_request_sends_a_signed_submitted_event_after_commit(
    demo_world: dict[str, Any],
    api: Any,
    allow_private: Any,
    receivers: Any,
    no_broker: Enqueued,
    django_capture_on_commit_callbacks: Any,
) -> None:
    receiver = receivers()
    hook = register_hook(api("admin"), receiver.url, ["*"])
    secret = hook["secret"]
    assert secret.startswith("whsec_")
    # The secret is shown once: neither the list nor the detail repeats it.
    assert secret not in api("admin").get(HOOKS).content.decode()
    assert secret not in api("admin").get(f"{HOOKS}{hook['id']}/").content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        filed = file_request(api, demo_world, external_ref="INC1")
    [delivery] = WebhookDelivery.objects.filter(webhook_id=hook["id"])
    assert delivery.event_type == "peering_request.submitted"
    assert delivery.state == "pending" and str(delivery.request_id) == filed["id"]
    assert [pk for pk, _ in no_broker.webhooks] == [delivery.pk]  # enqueued by the commit
    assert receiver.received() == []  # nothing is sent while serving the API call

    assert webhooks.attempt(delivery.pk).state == "delivered"
    [got] = receiver.received()
    assert got.headers["webhook-id"] == delivery.message_id
    assert got.headers["content-type"] == "application/json"
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 60
    assert verified_by_hand(secret, got), got.headers
    assert webhooks.verify(secret, got.headers, got.body)
    event = got.event
    assert event["type"] == "peering_request.submitted"
    assert event["data"]["id"] == filed["id"]
    assert event["data"]["external_ref"] == "INC1"
    assert event["data"]["status"] == "pending_approval"
    assert event["data"]["requester_vpc"] == demo_world["vpcs"]["finance-app"].vpc_id
    assert event["data"]["accepter_vpc"] == demo_world["vpcs"]["services-use1"].vpc_id

    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    assert delivery.delivered_at is not None and delivery.next_attempt_at is None
    assert webhooks.attempt(delivery.pk).state == "skipped"  # a duplicate task sends nothing
    assert len(receiver.received()) == 1


# === 3. retries ========================================================================================
@pytest.mark.django_db
def test_a_failing_receiver_is_retried_with_backoff_and_the_same_webhook_id(
    demo_world: dict[str, Any],
    api: Any,
    allow_private: Any,
    receivers: Any,
    no_broker: Enqueued,
) -> None:
    allow_private.WEBHOOK_RETRY_BASE_SECONDS = 5
    allow_private.WEBHOOK_MAX_ATTEMPTS = 8
    receiver = receivers(script=[500, 500])
    hook = register_hook(api("admin"), receiver.url, ["peering_request.submitted"])
    file_request(api, demo_world)
    delivery = WebhookDelivery.objects.get(webhook_id=hook["id"])

    first = webhooks.attempt(delivery.pk)
    assert (first.state, first.retry_in) == ("retry", 5)
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert timedelta(seconds=3) < delivery.next_attempt_at - timezone.now() <= timedelta(seconds=5)
    assert webhooks.attempt(delivery.pk).state == "skipped"  # not due yet: nothing sent
    assert len(receiver.received()) == 1

    make_due(delivery.pk)
    second = webhooks.attempt(delivery.pk)
    assert (second.state, second.retry_in) == ("retry", 15)  # base * 3^(n-1)
    make_due(delivery.pk)
    assert webhooks.attempt(delivery.pk).state == "delivered"
    make_due(delivery.pk)
    assert webhooks.attempt(delivery.pk).state == "skipped"

    got = receiver.received()
    assert [r.status for r in got] == [500, 500, 200]
    assert sum(r.status == 200 for r in got) == 1
    assert {r.headers["webhook-id"] for r in got} == {delivery.message_id}
    assert len({r.body for r in got}) == 1  # the payload is frozen: resent byte for byte
    assert all(verified_by_hand(hook["secret"], r) for r in got)
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("delivered", 3)
    assert list(delivery.attempt_log.values_list("number", "status_code")) == [(1, 500), (2, 500), (3, 200)]

    listed = api("admin").get(f"{HOOKS}{hook['id']}/deliveries/")
    assert listed.status_code == 200, listed.json()
    [row] = listed.json()["results"]
    assert row["message_id"] == delivery.message_id and row["state"] == "delivered"
    assert [a["status_code"] for a in row["attempt_log"]] == [500, 500, 200]


@pytest.mark.django_db
def test_the_delivery_task_schedules_its_retry_with_the_backoff(
    plain_api: Any,
    allow_private: Any,
    receivers: Any,
    no_broker: Enqueued,
) -> None:
    allow_private.WEBHOOK_RETRY_BASE_SECONDS = 7
    receiver = receivers(script=[503])
    hook = register_hook(plain_api("admin"), receiver.url, ["*"])
    delivery = outbox_row(hook["id"])

    assert tasks.deliver_webhook(delivery.pk) == "retry"
    assert no_broker.webhooks == [(delivery.pk, 7)]
    make_due(delivery.pk)
    assert tasks.deliver_webhook(delivery.pk) == "delivered"
    assert no_broker.webhooks == [(delivery.pk, 7)]  # no further attempt scheduled


@pytest.mark.django_db
def test_the_sweeper_re_enqueues_only_overdue_deliveries(
    plain_api: Any,
    allow_private: Any,
    receivers: Any,
    no_broker: Enqueued,
) -> None:
    hook = register_hook(plain_api("admin"), receivers().url, ["*"])
    lost = outbox_row(hook["id"])
    WebhookDelivery.objects.filter(pk=lost.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=5))
    fresh = WebhookDelivery.objects.create(
        webhook_id=hook["id"], event_type="peering_request.submitted", payload={}, next_attempt_at=timezone.now()
    )
    done = WebhookDelivery.objects.create(
        webhook_id=hook["id"],
        event_type="peering_request.submitted",
        payload={},
        state="delivered",
        next_attempt_at=timezone.now() - timedelta(minutes=5),
    )
    report = tasks.sweep_stuck_work()
    assert report["webhooks_resent"] == 1
    assert no_broker.webhook_delays == [lost.pk]
    assert fresh.pk not in no_broker.webhook_delays and done.pk not in no_broker.webhook_delays


# === 4. bounded attempts, resend =======================================================================
@pytest.mark.django_db
def test_a_delivery_gives_up_after_the_maximum_and_an_admin_can_resend_it(
    plain_api: Any,
    allow_private: Any,
    receivers: Any,
    no_broker: Enqueued,
    django_capture_on_commit_callbacks: Any,
) -> None:
    allow_private.WEBHOOK_MAX_ATTEMPTS = 3
    allow_private.WEBHOOK_RETRY_BASE_SECONDS = 0.01
    receiver = receivers(default=500)
    hook = register_hook(plain_api("admin"), receiver.url, ["*"])
    delivery = outbox_row(hook["id"])

    assert drive(delivery.pk) == ["retry", "retry", "failed"]
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("failed", 3, 500)
    assert delivery.next_attempt_at is None
    assert webhooks.attempt(delivery.pk).state == "skipped"
    assert len(receiver.received()) == 3

    resend_url = f"{HOOKS}{hook['id']}/deliveries/{delivery.message_id}/resend/"
    for outsider in ("nina", "fiona"):
        refused = plain_api(outsider).post(resend_url)
        assert refused.status_code in (403, 404), refused.content
        errors_of(refused, "client_error")
    delivery.refresh_from_db()
    assert delivery.state == "failed"
    assert no_broker.webhooks == []

    with django_capture_on_commit_callbacks(execute=True):
        answer = plain_api("admin").post(resend_url)
    assert answer.status_code == 202, answer.json()
    assert answer.json()["message_id"] == delivery.message_id and answer.json()["state"] == "pending"
    assert [pk for pk, _ in no_broker.webhooks] == [delivery.pk]
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("pending", 0)
    assert AuditEvent.objects.filter(action="webhook.resent").count() == 1

    receiver.default = 200
    assert webhooks.attempt(delivery.pk).state == "delivered"
    got = receiver.received()
    assert len(got) == 4 and {r.headers["webhook-id"] for r in got} == {delivery.message_id}
    assert WebhookDelivery.objects.filter(webhook_id=hook["id"]).count() == 1  # the same delivery, not a copy

    missing = plain_api("admin").post(f"{HOOKS}{hook['id']}/deliveries/msg_{uuid.uuid4().hex}/resend/")
    assert missing.status_code == 404
    errors_of(missing, "client_error")


# === 5. refused destinations, event types ==============================================================
@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/",
        "http://192.168.1.10/hook",
        "http://0.0.0.0:9000/",
    ],
)
def test_private_destinations_are_refused(url: str, plain_api: Any, settings: Any) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = False
    response = plain_api("admin").post(HOOKS, {"url": url, "events": ["*"]}, format="json")
    assert response.status_code == 400, response.json()
    [error] = errors_of(response, "validation_error")
    assert (error["code"], error["attr"]) == ("private_destination", "url")
    assert Webhook.objects.count() == 0


@pytest.mark.django_db
def test_a_public_destination_is_accepted_and_changing_it_to_a_private_one_is_refused(
    plain_api: Any, settings: Any
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = False
    hook = register_hook(plain_api("admin"), "https://93.184.216.34/hooks", ["peering_request.approved"])
    response = plain_api("admin").patch(f"{HOOKS}{hook['id']}/", {"url": "http://169.254.169.254/"}, format="json")
    assert response.status_code == 400
    assert codes(response) == {"private_destination"}
    assert Webhook.objects.get(pk=hook["id"]).url == "https://93.184.216.34/hooks"


@pytest.mark.django_db
def test_unknown_event_types_are_refused(plain_api: Any, settings: Any) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = False
    response = plain_api("admin").post(
        HOOKS, {"url": "https://93.184.216.34/h", "events": ["peering_request.exploded"]}, format="json"
    )
    assert response.status_code == 400
    [error] = errors_of(response, "validation_error")
    assert (error["code"], error["attr"]) == ("unknown_event_type", "events")
    hook = register_hook(plain_api("admin"), "https://93.184.216.34/h", ["peering_request.*"])
    patched = plain_api("admin").patch(f"{HOOKS}{hook['id']}/", {"events": ["nope"]}, format="json")
    assert patched.status_code == 400 and codes(patched) == {"unknown_event_type"}
    assert Webhook.objects.get(pk=hook["id"]).events == ["peering_request.*"]


@pytest.mark.django_db
def test_only_admins_manage_webhooks(plain_api: Any, settings: Any) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = False
    for user in ("nina", "fiona"):
        created = plain_api(user).post(HOOKS, {"url": "https://93.184.216.34/h", "events": ["*"]}, format="json")
        assert created.status_code == 403
        errors_of(created, "client_error")
        assert plain_api(user).get(HOOKS).status_code == 403
    assert Webhook.objects.count() == 0


@pytest.mark.django_db
def test_only_http_destinations_are_accepted(plain_api: Any, settings: Any) -> None:
    """A webhook is an HTTP POST: an ftp:// URL (which URLField accepts) must be refused."""
    settings.WEBHOOK_ALLOW_PRIVATE = False
    response = plain_api("admin").post(HOOKS, {"url": "ftp://93.184.216.34/hooks", "events": ["*"]}, format="json")
    assert response.status_code == 400, response.json()
    errors_of(response, "validation_error")
    assert Webhook.objects.count() == 0


@pytest.mark.django_db
def test_a_destination_refused_at_send_time_fails_without_a_request(
    plain_api: Any,
    allow_private: Any,
    receivers: Any,
    no_broker: Enqueued,
) -> None:
    receiver = receivers()
    hook = register_hook(plain_api("admin"), receiver.url, ["*"])  # allowed when registered
    delivery = outbox_row(hook["id"])

    allow_private.WEBHOOK_ALLOW_PRIVATE = False  # no longer allowed when sent
    assert webhooks.attempt(delivery.pk).state == "failed"
    assert receiver.received() == []
    delivery.refresh_from_db()
    assert delivery.state == "failed" and "refused destination" in delivery.last_error
    [logged] = delivery.attempt_log.all()
    assert logged.status_code is None and "refused destination" in logged.error


@pytest.mark.django_db
def test_a_redirect_is_not_followed(
    plain_api: Any,
    allow_private: Any,
    receivers: Any,
    no_broker: Enqueued,
) -> None:
    elsewhere = receivers()
    redirecting = receivers(default=307, headers={"Location": elsewhere.url})
    hook = register_hook(plain_api("admin"), redirecting.url, ["*"])
    delivery = outbox_row(hook["id"])
    assert webhooks.attempt(delivery.pk).state == "retry"
    assert len(redirecting.received()) == 1 and elsewhere.received() == []
    assert WebhookAttempt.objects.get(delivery=delivery).status_code == 307


# === 6. subscriptions, inactive endpoints ==============================================================
@pytest.mark.django_db
def test_only_active_endpoints_subscribed_to_the_event_get_deliveries(
    demo_world: dict[str, Any],
    api: Any,
    allow_private: Any,
    receivers: Any,
    no_broker: Enqueued,
) -> None:
    admin = api("admin")
    everything = register_hook(admin, receivers().url, ["*"])
    approvals = register_hook(admin, receivers().url, ["peering_request.approved"])
    family = register_hook(admin, receivers().url, ["peering_request.*"])
    rejections = register_hook(admin, receivers().url, ["peering_request.rejected", "peering_request.cancelled"])
    switched_off = register_hook(admin, receivers().url, ["*"])
    patched = admin.patch(f"{HOOKS}{switched_off['id']}/", {"active": False}, format="json")
    assert patched.status_code == 200 and patched.json()["active"] is False

    filed = file_request(api, demo_world)
    assert api("nina").post(f"{URL}{filed['id']}/approve/", {}, format="json").status_code == 200

    def events_of(hook: dict[str, Any]) -> list[str]:
        return sorted(WebhookDelivery.objects.filter(webhook_id=hook["id"]).values_list("event_type", flat=True))

    both = ["peering_request.approved", "peering_request.submitted"]
    assert events_of(everything) == both
    assert events_of(family) == both
    assert events_of(approvals) == ["peering_request.approved"]
    assert events_of(rejections) == []
    assert events_of(switched_off) == []

    # Switched on again, it hears what happens from then on.
    assert admin.patch(f"{HOOKS}{switched_off['id']}/", {"active": True}, format="json").status_code == 200
    lifecycle.request_transition(
        PeeringRequest.objects.get(pk=filed["id"]), Status.FAILED, action="request.failed", failure_reason="test"
    )
    assert events_of(switched_off) == ["peering_request.failed"]


@pytest.mark.django_db
def test_deactivating_an_endpoint_stops_its_pending_deliveries(
    plain_api: Any,
    allow_private: Any,
    receivers: Any,
    no_broker: Enqueued,
) -> None:
    """An admin switches an endpoint off to stop the traffic: retries already queued must not go out."""
    receiver = receivers(script=[500])
    hook = register_hook(plain_api("admin"), receiver.url, ["*"])
    delivery = outbox_row(hook["id"])
    assert webhooks.attempt(delivery.pk).state == "retry"
    assert plain_api("admin").patch(f"{HOOKS}{hook['id']}/", {"active": False}, format="json").status_code == 200

    make_due(delivery.pk)
    outcome = webhooks.attempt(delivery.pk)
    assert len(receiver.received()) == 1, "a switched-off endpoint was sent a delivery"
    assert outcome.state != "delivered"


# === 7. tokens: hashed at rest =========================================================================
def database_text() -> str:
    """Every row of every table: `dumpdata` plus a raw SELECT * of each table."""
    out = io.StringIO()
    call_command("dumpdata", stdout=out)
    parts = [out.getvalue()]
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            parts.append(repr(cursor.fetchall()))
    return "\n".join(parts)


@pytest.mark.django_db
def test_token_keys_are_stored_only_as_hashes(plain_api: Any) -> None:
    login = plain_api(None).post(LOGIN, {"username": "fiona", "password": DEMO_PASSWORD}, format="json")
    assert login.status_code == 200, login.json()
    assert set(login.json()) == {"token", "expires_at"} and login.json()["expires_at"]
    login_key = login.json()["token"]
    # Another name: a login under the same name would replace (revoke) the first token.
    again = (
        plain_api(None)
        .post(LOGIN, {"username": "fiona", "password": DEMO_PASSWORD, "name": "cli"}, format="json")
        .json()["token"]
    )
    assert again != login_key  # a new token every call

    named = client_with(login_key).post(TOKENS, {"name": "ci pipeline", "read_only": False}, format="json")
    assert named.status_code == 201, named.json()
    named_key = named.json()["token"]
    keys = [login_key, again, named_key]

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM requests_app_apitoken")
        raw = repr(cursor.fetchall())
    everything = database_text()
    assert "requests_app.apitoken" in everything and "requests_app.auditevent" in everything  # the dump is real
    for key in keys:
        assert key.startswith("pp_") and len(key) > 30
        assert key not in raw and key not in everything
        assert key[10:] not in everything  # not even the part after the shown prefix
        token = ApiToken.objects.get(key_hash=hashlib.sha256(key.encode()).hexdigest())
        assert token.prefix == key[:10] and token.prefix in raw
        assert client_with(key).get(URL).status_code == 200
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {named_key}")
    assert bearer.get(URL).status_code == 200

    wrong = plain_api(None).post(LOGIN, {"username": "fiona", "password": "nope"}, format="json")
    assert wrong.status_code == 400 and codes(wrong) == {"authentication_failed"}


@pytest.mark.django_db
def test_a_token_created_with_an_idempotency_key_is_not_kept_in_plaintext(plain_api: Any) -> None:
    """The replay store must not become a second copy of the key: only its hash may be stored."""
    created = plain_api("fiona").post(TOKENS, {"name": "deploy"}, format="json", headers={"Idempotency-Key": "tok-1"})
    assert created.status_code == 201, created.json()
    key = created.json()["token"]
    assert key not in database_text(), "the plaintext key is stored (in the idempotency replay record)"


# === 8. tokens: revoked, expired, read-only, ownership ================================================
@pytest.mark.django_db
def test_revoked_expired_and_unknown_tokens_answer_401(plain_api: Any) -> None:
    fiona = plain_api("fiona")
    created = fiona.post(TOKENS, {"name": "to revoke"}, format="json").json()
    key = created["token"]
    assert client_with(key).get(URL).status_code == 200

    revoked = fiona.post(f"{TOKENS}{created['id']}/revoke/")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    answer = client_with(key).get(URL)
    assert answer.status_code == 401
    errors_of(answer, "client_error")

    later = (timezone.now() + timedelta(days=1)).isoformat()
    expiring = fiona.post(TOKENS, {"name": "short-lived", "expires_at": later}, format="json").json()
    assert client_with(expiring["token"]).get(URL).status_code == 200
    ApiToken.objects.filter(pk=expiring["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    answer = client_with(expiring["token"]).get(URL)
    assert answer.status_code == 401
    errors_of(answer, "client_error")

    earlier = (timezone.now() - timedelta(days=1)).isoformat()
    past = fiona.post(TOKENS, {"name": "already over", "expires_at": earlier}, format="json")
    assert past.status_code == 400 and codes(past) == {"invalid_expiry"}
    assert client_with("pp_" + "x" * 43).get(URL).status_code == 401

    # A deactivated user's tokens stop working.
    live = fiona.post(TOKENS, {"name": "leaver"}, format="json").json()
    get_user_model().objects.filter(username="fiona").update(is_active=False)
    assert client_with(live["token"]).get(URL).status_code == 401


@pytest.mark.django_db
def test_a_read_only_token_reads_but_cannot_write(plain_api: Any) -> None:
    created = plain_api("fiona").post(TOKENS, {"name": "dashboard", "read_only": True}, format="json").json()
    assert created["read_only"] is True
    reader = client_with(created["token"])
    assert reader.get(URL).status_code == 200
    assert reader.get(TOKENS).status_code == 200
    refused = reader.post(URL, {"requester_vpc": "vpc-1", "accepter_vpc": "vpc-2", "justification": "x"}, format="json")
    assert refused.status_code == 403
    errors_of(refused, "client_error")
    assert reader.post(TOKENS, {"name": "escalate"}, format="json").status_code == 403
    assert reader.post(f"{TOKENS}{created['id']}/revoke/").status_code == 403
    assert ApiToken.objects.filter(name="escalate").count() == 0
    assert ApiToken.objects.get(pk=created["id"]).revoked_at is None


@pytest.mark.django_db
def test_last_used_is_recorded(plain_api: Any) -> None:
    created = plain_api("fiona").post(TOKENS, {"name": "usage"}, format="json").json()
    assert ApiToken.objects.get(pk=created["id"]).last_used_at is None
    before = timezone.now()
    assert client_with(created["token"]).get(URL).status_code == 200
    used = ApiToken.objects.get(pk=created["id"]).last_used_at
    assert used is not None and used >= before


@pytest.mark.django_db
def test_only_the_owner_or_an_admin_revokes_a_token_and_lists_never_show_keys(plain_api: Any) -> None:
    ninas = plain_api("nina").post(TOKENS, {"name": "nina's"}, format="json").json()
    fionas = plain_api("fiona").post(TOKENS, {"name": "fiona's"}, format="json").json()

    refused = plain_api("fiona").post(f"{TOKENS}{ninas['id']}/revoke/")
    assert refused.status_code == 404
    errors_of(refused, "client_error")
    assert ApiToken.objects.get(pk=ninas["id"]).revoked_at is None
    assert client_with(ninas["token"]).get(URL).status_code == 200
    assert plain_api("fiona").get(f"{TOKENS}{ninas['id']}/").status_code == 404

    assert plain_api("admin").post(f"{TOKENS}{ninas['id']}/revoke/").status_code == 200
    assert client_with(ninas["token"]).get(URL).status_code == 401

    mine = plain_api("fiona").get(TOKENS)
    assert mine.status_code == 200
    names = {t["name"] for t in mine.json()["results"]}
    assert "fiona's" in names and "nina's" not in names
    everyone = plain_api("admin").get(TOKENS)
    assert {"fiona's", "nina's"} <= {t["name"] for t in everyone.json()["results"]}
    for listing in (mine, everyone, plain_api("fiona").get(f"{TOKENS}{fionas['id']}/")):
        text = listing.content.decode()
        assert fionas["token"] not in text and ninas["token"] not in text
        rows = listing.json().get("results", [listing.json()])
        assert all("token" not in row and "key_hash" not in row for row in rows)


# === 9. idempotency ====================================================================================
@pytest.mark.django_db
def test_the_same_key_and_body_replays_the_first_answer(demo_world: dict[str, Any], api: Any) -> None:
    fiona = api("fiona")
    vpcs = demo_world["vpcs"]
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
def test_idempotency_keys_are_per_user(demo_world: dict[str, Any], api: Any) -> None:
    vpcs = demo_world["vpcs"]
    body = {
        "requester_vpc": vpcs["finance-app"].vpc_id,
        "accepter_vpc": vpcs["services-use1"].vpc_id,
        "justification": "x",
        "external_ref": "INC1",
    }
    fionas = api("fiona").post(URL, body, format="json", headers={"Idempotency-Key": "shared"})
    assert fionas.status_code == 201
    # Another user, same key, different body: independent, not "reused".
    erins = file_request(api, demo_world, user="erin", requester="eng-build", headers={"Idempotency-Key": "shared"})
    assert erins["id"] != fionas.json()["id"]
    # Another user, same key, same body: their own answer, never a replay of fiona's.
    sams = api("sam").post(URL, body, format="json", headers={"Idempotency-Key": "shared"})
    assert "Idempotent-Replayed" not in sams
    assert sams.status_code != 201 or sams.json()["id"] != fionas.json()["id"]
    assert PeeringRequest.objects.count() == 2


@pytest.mark.django_db
def test_an_approval_repeated_with_its_key_approves_once(
    demo_world: dict[str, Any], api: Any, no_broker: Enqueued
) -> None:
    filed = file_request(api, demo_world)
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
    demo_world: dict[str, Any], api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = peering_services.peering_request_submit
    calls = {"n": 0}

    def flaky(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database went away")
        return original(**kwargs)

    monkeypatch.setattr(peering_services, "peering_request_submit", flaky)
    vpcs = demo_world["vpcs"]
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
    demo_world: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    if work_seconds:  # hold the first call inside its work, so the second surely arrives meanwhile
        original = peering_services.peering_request_submit

        def slow(**kwargs: Any) -> Any:
            time.sleep(work_seconds)
            return original(**kwargs)

        monkeypatch.setattr(peering_services, "peering_request_submit", slow)
    _, key = tokens.issue(demo_world["users"]["fiona"], "concurrency")
    vpcs = demo_world["vpcs"]
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


# === 10. rate limits ===================================================================================
def limit(monkeypatch: pytest.MonkeyPatch, token: str, user: str) -> None:
    """DRF reads the rates when the throttle classes are defined: set them on the classes."""
    monkeypatch.setattr(throttling.TokenRateThrottle, "rate", token, raising=False)
    monkeypatch.setattr(throttling.UserRateThrottle, "rate", user, raising=False)


@pytest.mark.django_db
def test_a_token_over_its_rate_gets_429_and_another_token_of_the_user_does_not(
    plain_api: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limit(monkeypatch, token="3/min", user="100/min")
    busy, quiet = plain_api("fiona"), plain_api("fiona")
    for _ in range(3):
        assert busy.get(URL).status_code == 200
    limited = busy.get(URL)
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) > 0
    [error] = errors_of(limited, "client_error")
    assert error["code"] == "throttled"
    assert quiet.get(URL).status_code == 200  # the limit is per token


@pytest.mark.django_db
def test_a_users_tokens_share_the_users_rate(plain_api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    limit(monkeypatch, token="100/min", user="3/min")
    one, two = plain_api("fiona"), plain_api("fiona")
    assert [one.get(URL).status_code, one.get(URL).status_code, two.get(URL).status_code] == [200, 200, 200]
    limited = two.get(URL)
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert codes(limited) == {"throttled"}
    assert plain_api("erin").get(URL).status_code == 200  # another user has their own budget


@pytest.mark.django_db
def test_a_runaway_token_does_not_use_up_its_users_budget(plain_api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """throttling.py: "one runaway integration cannot starve the user's other tokens". Calls the
    token's own limit refuses must not count against the user's budget."""
    limit(monkeypatch, token="3/min", user="6/min")
    runaway, other = plain_api("fiona"), plain_api("fiona")
    assert [runaway.get(URL).status_code for _ in range(10)] == [200] * 3 + [429] * 7
    # The user made 3 calls of their 6: the other token still has 3.
    assert [other.get(URL).status_code for _ in range(3)] == [200, 200, 200], "refused calls used up the user's budget"
    assert other.get(URL).status_code == 429


# === 11. incremental lists =============================================================================
@pytest.mark.django_db
def test_updated_after_ordering_and_pages(demo_world: dict[str, Any], api: Any) -> None:
    fiona, vpcs = demo_world["users"]["fiona"], demo_world["vpcs"]
    ids = []
    for n in range(5):
        made = peering_services.peering_request_submit(
            actor=fiona,
            draft=preflight.PeeringDraft(
                requester_vpc=vpcs["finance-app"].vpc_id,
                accepter_vpc=vpcs["services-use1"].vpc_id,
                justification=f"n{n}",
            ),
        )
        if n < 4:
            peering_services.peering_request_cancel(actor=fiona, request_id=made.pk)
        ids.append(str(made.pk))
    base = timezone.now() - timedelta(hours=1)
    minutes = {ids[0]: 30, ids[1]: 10, ids[2]: 40, ids[3]: 20, ids[4]: 20}  # not creation order; one tie
    for pk, m in minutes.items():
        PeeringRequest.objects.filter(pk=pk).update(updated_at=base + timedelta(minutes=m))
    client = api("fiona")

    def listed(**params: Any) -> dict[str, Any]:
        response = client.get(URL, params)
        assert response.status_code == 200, response.json()
        return response.json()

    everything = listed(ordering="updated_at", limit=50)
    order = [r["id"] for r in everything["results"]]
    assert everything["count"] == 5 and sorted(order) == sorted(ids)
    assert [minutes[i] for i in order] == [10, 20, 20, 30, 40]
    newest_first = [r["id"] for r in listed(ordering="-updated_at", limit=50)["results"]]
    assert [minutes[i] for i in newest_first] == [40, 30, 20, 20, 10]

    since = listed(updated_after=(base + timedelta(minutes=20)).isoformat(), ordering="updated_at")
    assert since["count"] == 2
    assert [r["id"] for r in since["results"]] == [ids[0], ids[2]]
    zulu = (base + timedelta(minutes=35)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert [r["id"] for r in listed(updated_after=zulu)["results"]] == [ids[2]]
    assert listed(updated_after=(base + timedelta(minutes=40)).isoformat())["count"] == 0
    bad = client.get(URL, {"updated_after": "yesterday"})
    assert bad.status_code == 400
    errors_of(bad, "validation_error")

    for _ in range(2):  # twice: the pages are the same each time
        pages = [listed(ordering="updated_at", limit=2, offset=offset) for offset in (0, 2, 4)]
        assert [p["count"] for p in pages] == [5, 5, 5]
        assert [len(p["results"]) for p in pages] == [2, 2, 1]
        assert [r["id"] for p in pages for r in p["results"]] == order  # no overlap, nothing skipped
        assert pages[0]["next"] and pages[2]["next"] is None


# === 12. errors as JSON ================================================================================
@pytest.mark.django_db
@pytest.mark.parametrize("user", [None, "fiona"])
def test_an_unknown_api_route_answers_json_404(plain_api: Any, user: str | None) -> None:
    for path in ("/api/v1/no-such-thing/", "/api/v1/peering-requests/not-a-uuid/extra/", "/api/v1/webhooks/x/y/z/"):
        response = plain_api(user).get(path)
        assert response.status_code == 404, path
        assert b"<html" not in response.content.lower()
        assert codes(response) == {"not_found"}


@pytest.mark.django_db
def test_a_missing_object_answers_json_404(plain_api: Any) -> None:
    for path in (f"{URL}{uuid.uuid4()}/", f"{HOOKS}999/", f"{TOKENS}999/"):
        response = plain_api("admin").get(path)
        assert response.status_code == 404, path
        assert codes(response) == {"not_found"}


@pytest.mark.django_db
def test_a_wrong_method_answers_json_405(plain_api: Any) -> None:
    answers = [
        plain_api("fiona").delete(URL),
        plain_api("fiona").put(f"{URL}{uuid.uuid4()}/", {}, format="json"),
        plain_api(None).get(LOGIN),
        plain_api("admin").delete(f"{HOOKS}1/"),
        plain_api("fiona").get(f"{TOKENS}1/revoke/"),
    ]
    for response in answers:
        assert response.status_code == 405, (response.status_code, response.content[:200])
        assert b"<html" not in response.content.lower()
        assert codes(response) == {"method_not_allowed"}
        assert "Allow" in response


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
    demo_world: dict[str, Any],
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
    demo_world: dict[str, Any],
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
