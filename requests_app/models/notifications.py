"""The e-mail outbox."""

from __future__ import annotations

from django.db import models

from requests_app.models.peering import PeeringRequest


class Notification(models.Model):
    """An email owed to someone, written in the same transaction as the change it reports.

    A worker sends it after commit; the sweeper resends any left pending (an outbox), so a dead
    worker or a broker outage delays a notification but never loses it.
    """

    class State(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    request = models.ForeignKey(
        PeeringRequest, on_delete=models.CASCADE, related_name="notifications", null=True, blank=True
    )
    event = models.CharField(max_length=64)
    recipients = models.JSONField(default=list)
    subject = models.CharField(max_length=255)
    body = models.TextField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.event} to {', '.join(self.recipients)} ({self.state})"
