"""The append-only, hash-chained audit trail and its signed anchors."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from requests_app.models.peering import PeeringRequest


class AppendOnlyQuerySet(models.QuerySet):
    """`.update()` and `.delete()` on audit events are refused, as `save()` of a stored one is."""

    def update(self, **kwargs: Any) -> int:
        raise ValidationError("Audit events are append-only.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise ValidationError("Audit events are append-only.")


class AuditEvent(models.Model):
    """One row per state change or AWS call, hash-chained so a rewrite shows.

    `hash` is HMAC-SHA256 keyed with the chain key, which the database does not hold
    (requests_app.audit); rows written before keyed hashing have `keyed` False and a plain SHA-256.
    """

    request = models.ForeignKey(PeeringRequest, on_delete=models.PROTECT, null=True, blank=True, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    actor_label = models.CharField(max_length=150)
    action = models.CharField(max_length=64, db_index=True)
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20, blank=True)
    operation = models.CharField(max_length=64, blank=True)
    account_id = models.CharField(max_length=12, blank=True)
    region = models.CharField(max_length=32, blank=True)
    result = models.CharField(max_length=16, blank=True)
    error_code = models.CharField(max_length=128, blank=True)
    message = models.TextField(blank=True)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(db_index=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    # False only on rows written before keyed hashing (migration 0008 adds it so; no row is ever
    # updated): those carry a plain SHA-256, protected by anchors alone.
    keyed = models.BooleanField(default=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        base_manager_name = "objects"  # related lookups refuse update/delete too

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise ValidationError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise ValidationError("Audit events are append-only.")


class AuditChainHead(models.Model):
    """A single row locked while an event is appended, so the chain has one order."""

    last_hash = models.CharField(max_length=64, default="0" * 64)

    def __str__(self) -> str:
        return self.last_hash


class AuditAnchor(models.Model):
    """A signed statement of the audit chain's head (`audit.anchor`), kept here for convenience.

    The least trustworthy copy of an anchor: a forged row fails its signature, but anyone with
    database write access can delete rows. The copies that count live where the database cannot
    reach: the `requests_app.audit.anchor` log line, the anchor file, webhook receivers.
    """

    version = models.PositiveSmallIntegerField(default=1)
    # Not a foreign key: an anchor must outlive the event it names, to say that event is gone.
    last_event_id = models.BigIntegerField(null=True, blank=True)
    head_hash = models.CharField(max_length=64)
    count = models.PositiveBigIntegerField()
    at = models.CharField(max_length=40)  # the signed text, exactly as signed
    signature = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"anchor of {self.at}: {self.count} event(s) up to {self.last_event_id}"
