"""Signed webhooks sent from an outbox: a delivery on filing, retries with backoff and the same
webhook id, a bounded number of attempts and an admin's resend, a destination refused at send time,
redirects not followed, and an endpoint switched off stops its pending deliveries.

Webhooks go to a real HTTP server on 127.0.0.1 (a thread in this process); these tests drive
`webhooks.attempt` here (a real worker sends them in tests/system/test_webhooks_worker.py).
Signatures are checked with the Standard Webhooks algorithm written out in tests/fixtures/webhooks.py,
never with `webhooks.sign`.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from requests_app import tasks
from requests_app.integrations import webhooks
from requests_app.models import (
    AuditEvent,
    WebhookAttempt,
    WebhookDelivery,
)
from tests.fixtures.clients import errors_of, file_request
from tests.fixtures.outbox import Enqueued
from tests.fixtures.webhooks import HOOKS, register_hook, verified_by_hand
from tests.fixtures.world import DemoWorld


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


# === 1. a delivery on filing ===========================================================================
@pytest.mark.django_db
def test_filing_a_request_sends_a_signed_submitted_event_after_commit(
    demo_rows: DemoWorld,
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
        filed = file_request(api, demo_rows, external_ref="INC1")
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
    assert event["data"]["requester_vpc"] == demo_rows.vpcs["finance-app"].vpc_id
    assert event["data"]["accepter_vpc"] == demo_rows.vpcs["services-use1"].vpc_id

    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    assert delivery.delivered_at is not None and delivery.next_attempt_at is None
    assert webhooks.attempt(delivery.pk).state == "skipped"  # a duplicate task sends nothing
    assert len(receiver.received()) == 1


# === 2. retries ========================================================================================
@pytest.mark.django_db
def test_a_failing_receiver_is_retried_with_backoff_and_the_same_webhook_id(
    demo_rows: DemoWorld,
    api: Any,
    allow_private: Any,
    receivers: Any,
    no_broker: Enqueued,
) -> None:
    allow_private.WEBHOOK_RETRY_BASE_SECONDS = 5
    allow_private.WEBHOOK_MAX_ATTEMPTS = 8
    receiver = receivers(script=[500, 500])
    hook = register_hook(api("admin"), receiver.url, ["peering_request.submitted"])
    file_request(api, demo_rows)
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


# === 3. bounded attempts, resend =======================================================================
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
