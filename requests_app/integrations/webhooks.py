"""Signed webhooks, per the Standard Webhooks scheme, sent from an outbox.

A change writes one `WebhookDelivery` per subscribed endpoint in its own transaction
(`queue`); after commit a worker sends it (`attempt`), with exponential backoff and a bounded
number of attempts, and logs every attempt. Each request carries:

    webhook-id:        the delivery's message id, the same on every attempt
    webhook-timestamp: seconds since the epoch, when this attempt was sent
    webhook-signature: v1,<base64 HMAC-SHA256 over "{id}.{timestamp}.{body}">

keyed with the base64-decoded part of the endpoint's `whsec_…` secret. Signing and verifying
are the `standardwebhooks` package's, the scheme's reference implementation; `verify` is the
receiver's side of it (examples/webhook_receiver.py does the same in a dozen lines).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import EmptyWebhookSecretError, WebhookVerificationError
from standardwebhooks.webhooks import Webhook as StandardWebhook

from requests_app.audit.chain import AnchorDict
from requests_app.core import netguard, outbox
from requests_app.models import Drift, PeeringRequest, Webhook, WebhookAttempt, WebhookDelivery

logger = logging.getLogger(__name__)

EVENT_TYPES = (
    "peering_request.submitted",
    "peering_request.approved",
    "peering_request.rejected",
    "peering_request.cancelled",
    "peering_request.expired",
    "peering_request.provisioning",
    "peering_request.active",
    "peering_request.failed",
    "peering_request.retried",
    "peering_request.decommissioning",
    "peering_request.decommissioned",
    "peering_request.drift_detected",
    "peering_request.drift_cleared",
    "peering_request.adopted",
    "audit.anchored",
)
WILDCARDS = ("*", "peering_request.*")
# Receivers refuse timestamps further than this from their clock (fixed by the scheme and by
# `standardwebhooks`, which checks it).
TOLERANCE_SECONDS = 300


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value (`v1,<base64>`) of one attempt."""
    return StandardWebhook(secret).sign(message_id, datetime.fromtimestamp(timestamp, tz=UTC), body)


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """True if `headers` carry a valid signature of `body`, sent within the tolerance of now."""
    try:
        StandardWebhook(secret).verify(body, headers, json_parse=False)
    except (WebhookVerificationError, EmptyWebhookSecretError, binascii.Error, ValueError):
        return False
    return True


def body_of(delivery: WebhookDelivery) -> bytes:
    return json.dumps(delivery.payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def subscribed(hook: Webhook, event_type: str) -> bool:
    """`*` is every event; `peering_request.*` every event of that family, and no other."""
    return any(e in (event_type, "*") or (e.endswith(".*") and event_type.startswith(e[:-1])) for e in hook.events)


class RequestData(TypedDict):
    """The `data` of every `peering_request.*` event: the request as it is after the change."""

    id: str
    status: str
    external_ref: str
    requester_vpc: str
    requester_account_id: str
    requester_region: str
    accepter_vpc: str
    accepter_account_id: str
    accepter_region: str
    aws_peering_connection_id: str
    failure_reason: str
    drift: Drift | None
    decided_by: str | None  # a user name
    decision_comment: str
    updated_at: str | None  # ISO 8601
    url: str


class EventPayload(TypedDict):
    """A delivery's body (`WebhookDelivery.payload`), frozen when the change happens."""

    type: str  # one of EVENT_TYPES
    timestamp: str  # ISO 8601, when the change happened
    data: RequestData | AnchorDict  # AnchorDict for `audit.anchored`


def request_data(request: PeeringRequest) -> RequestData:
    """What every webhook says about a request: enough for a ticket without another call."""
    return {
        "id": str(request.pk),
        "status": request.status,
        "external_ref": request.external_ref,
        "requester_vpc": request.requester_vpc.vpc_id,
        "requester_account_id": request.requester_vpc.account.account_id,
        "requester_region": request.requester_vpc.region,
        "accepter_vpc": request.accepter_vpc.vpc_id,
        "accepter_account_id": request.accepter_vpc.account.account_id,
        "accepter_region": request.accepter_vpc.region,
        "aws_peering_connection_id": request.aws_peering_connection_id,
        "failure_reason": request.failure_reason,
        "drift": request.drift,
        "decided_by": request.decided_by.username if request.decided_by is not None else None,
        "decision_comment": request.decision_comment,
        "updated_at": request.updated_at.isoformat() if request.updated_at else None,
        "url": request.portal_url,
    }


def queue(request: PeeringRequest, event_type: str) -> int:
    """Write a delivery for every active endpoint subscribed to `event_type`; call inside the change's transaction."""
    return queue_event(event_type, request_data(request), request)


def queue_event(event_type: str, data: RequestData | AnchorDict, request: PeeringRequest | None = None) -> int:
    """As `queue`, for any event: about a request, or not (an audit anchor)."""
    hooks = [h for h in Webhook.objects.filter(active=True) if subscribed(h, event_type)]
    if not hooks:
        return 0
    now = timezone.now()
    payload: EventPayload = {"type": event_type, "timestamp": now.isoformat(), "data": data}
    deliveries = WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(webhook=h, request=request, event_type=event_type, payload=payload, next_attempt_at=now)
            for h in hooks
        ]
    )
    for delivery in deliveries:  # bulk_create returns primary keys on PostgreSQL and SQLite
        outbox.enqueue_on_commit(outbox.DELIVER_WEBHOOK, delivery.pk)
    return len(hooks)


def backoff(attempt: int) -> float:
    """Seconds before attempt `attempt + 1`: base * 3^(attempt-1), capped at an hour."""
    return min(3600.0, settings.WEBHOOK_RETRY_BASE_SECONDS * 3 ** (attempt - 1))


@dataclass
class Outcome:
    state: str  # delivered | retry | failed | skipped
    retry_in: float = 0.0


def attempt(delivery_id: int) -> Outcome:
    """Send one delivery once, if it is due and nobody else is sending it; log the attempt."""
    now = timezone.now()
    in_flight_until = now + timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS + 30)
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, state=WebhookDelivery.State.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=in_flight_until)
    if not claimed:
        return Outcome("skipped")  # delivered, given up, not yet due, or being sent by another worker
    delivery = WebhookDelivery.objects.select_related("webhook").get(pk=delivery_id)
    number = delivery.attempt_log.count() + 1
    status_code, error, excerpt = None, "", ""
    started = time.monotonic()
    refusal = "the endpoint was switched off" if not delivery.webhook.active else ""
    if refusal:
        error = refusal
    else:
        body = body_of(delivery)
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "PeeringPortal-Webhooks/1",
            "webhook-id": delivery.message_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign(delivery.webhook.secret, delivery.message_id, stamp, body),
        }
        # netguard resolves the name once, checks every address and connects to a checked one: the
        # destination is re-checked on every attempt (a name can start resolving to a private address
        # after registration) and cannot change between the check and the connect (DNS rebinding).
        try:
            response = netguard.post(delivery.webhook.url, body, headers, timeout=settings.WEBHOOK_TIMEOUT_SECONDS)
        except netguard.DestinationRefused as exc:
            if exc.code == "unresolvable":
                # Most likely a passing DNS failure, not a policy refusal: retried like a timeout.
                error = f"destination unresolvable: {exc.detail}"[:1000]
            else:
                error = refusal = f"refused destination: {exc.detail}"[:1000]
        except netguard.SendFailed as exc:  # refused connections, timeouts, TLS failures, answers that are not HTTP
            error = str(exc)[:1000]
        except Exception as exc:  # anything unforeseen: recorded and retried, never left claimed and unlogged
            logger.exception("webhook %s: sending failed unexpectedly", delivery.message_id)
            error = f"{exc.__class__.__name__}: {exc}"[:1000]
        else:
            status_code, excerpt = response.status, response.body.decode(errors="replace")
    latency = int((time.monotonic() - started) * 1000)
    ok = status_code is not None and 200 <= status_code < 300
    attempts = delivery.attempts + 1
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=number,
            started_at=now,
            status_code=status_code,
            latency_ms=latency,
            error=error,
            response_excerpt=excerpt[:500],
        )
        fields: dict[str, Any] = {"attempts": attempts, "last_status_code": status_code, "last_error": error}
        if ok:
            outcome = Outcome("delivered")
            fields.update(state=WebhookDelivery.State.DELIVERED, delivered_at=timezone.now(), next_attempt_at=None)
        elif refusal or attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
            outcome = Outcome("failed")
            fields.update(state=WebhookDelivery.State.FAILED, next_attempt_at=None)
        else:
            outcome = Outcome("retry", backoff(attempts))
            fields.update(next_attempt_at=timezone.now() + timedelta(seconds=outcome.retry_in))
        WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
    logger.info(
        "webhook %s %s attempt %d: %s %s (%d ms)",
        delivery.message_id,
        delivery.event_type,
        number,
        status_code or error,
        outcome.state,
        latency,
    )
    return outcome


def resend(delivery: WebhookDelivery) -> None:
    """Send a delivery again (same webhook-id), with a fresh budget of attempts."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        state=WebhookDelivery.State.PENDING, attempts=0, next_attempt_at=timezone.now()
    )
    outbox.enqueue_on_commit(outbox.DELIVER_WEBHOOK, delivery.pk)


def overdue(grace_seconds: int = 60) -> list[int]:
    """Pending deliveries whose task must have been lost (broker down, worker died)."""
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    return list(
        WebhookDelivery.objects.filter(state=WebhookDelivery.State.PENDING, next_attempt_at__lt=cutoff).values_list(
            "pk", flat=True
        )[:500]
    )
