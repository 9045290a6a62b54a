"""What integrations hold: idempotency records, webhooks and their deliveries, API tokens."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from requests_app.models.peering import PeeringRequest


class IdempotencyRecord(models.Model):
    """The first response to a caller's Idempotency-Key, replayed for repeats of that call."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    scope = models.CharField(max_length=255)  # method + path
    body_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="uniq_idempotency_key_per_user")]

    def __str__(self) -> str:
        return f"{self.key} ({self.scope})"


class Webhook(models.Model):
    url = models.URLField(max_length=2048)
    events = models.JSONField(default=list)
    active = models.BooleanField(default=True)
    secret = models.CharField(max_length=128, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.url


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


class WebhookDelivery(models.Model):
    """One event owed to one endpoint, written in the same transaction as the change (an outbox).

    `message_id` is the `webhook-id` header: the same on every attempt, so receivers can drop
    duplicates. The payload is frozen when the change happens; retries resend it byte for byte.
    """

    class State(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    message_id = models.CharField(max_length=40, unique=True, default=new_message_id, editable=False)
    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    request = models.ForeignKey(
        PeeringRequest, on_delete=models.SET_NULL, related_name="webhook_deliveries", null=True, blank=True
    )
    event_type = models.CharField(max_length=64)
    payload = models.JSONField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.message_id} {self.event_type} → {self.webhook.url} ({self.state})"


class WebhookAttempt(models.Model):
    """The delivery log: one row per HTTP attempt, with what the receiver answered."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}: {self.status_code or self.error}"


class ApiToken(models.Model):
    """A named API token. Only a SHA-256 of the key is stored; the key is shown once, on creation."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, db_index=True, editable=False)  # shown to tell tokens apart
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    read_only = models.BooleanField(default=False, help_text="Only GET, HEAD and OPTIONS.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…) of {self.user}"
