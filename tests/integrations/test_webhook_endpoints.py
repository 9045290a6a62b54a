"""Webhook endpoints: only administrators manage them, only public HTTP(S) destinations and known
event types are accepted, and only active endpoints subscribed to an event get a delivery of it."""

from __future__ import annotations

from typing import Any

import pytest

from requests_app.domain.status import Status
from requests_app.models import (
    PeeringRequest,
    Webhook,
    WebhookDelivery,
)
from requests_app.peering import lifecycle
from tests.fixtures.clients import codes, errors_of, file_request
from tests.fixtures.outbox import Enqueued
from tests.fixtures.webhooks import HOOKS, register_hook
from tests.fixtures.world import DemoWorld

URL = "/api/v1/peering-requests/"


# === 1. refused destinations, event types ==============================================================
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


# === 2. subscriptions, inactive endpoints ==============================================================
@pytest.mark.django_db
def test_only_active_endpoints_subscribed_to_the_event_get_deliveries(
    demo_rows: DemoWorld,
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

    filed = file_request(api, demo_rows)
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
