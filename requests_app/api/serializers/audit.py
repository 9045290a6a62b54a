"""Shapes of audit events and of the chain's verification."""

from __future__ import annotations

from rest_framework import serializers

from requests_app.models import (
    AuditEvent,
)


class AuditEventSerializer(serializers.ModelSerializer):
    request = serializers.UUIDField(source="request_id", allow_null=True)
    actor = serializers.CharField(source="actor_label")

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "request",
            "created_at",
            "actor",
            "action",
            "from_status",
            "to_status",
            "operation",
            "account_id",
            "region",
            "result",
            "error_code",
            "message",
            "data",
            "prev_hash",
            "hash",
        ]
        read_only_fields = fields


class ChainReportSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    checked = serializers.IntegerField()
    first_broken = serializers.IntegerField(allow_null=True, help_text="The id of the first event that fails.")
    reason = serializers.CharField(help_text="What is wrong, if anything; empty when ok.")
    legacy = serializers.IntegerField(
        help_text="Events from before keyed hashing (plain SHA-256): only anchors protect them."
    )
    anchored_at = serializers.CharField(
        allow_null=True, help_text="When the newest valid anchor was signed (ISO 8601)."
    )
    anchored_event = serializers.IntegerField(allow_null=True, help_text="The event the newest valid anchor names.")
    anchored_count = serializers.IntegerField(
        allow_null=True, help_text="How many events that anchor counted up to it."
    )
    proven_until = serializers.IntegerField(
        allow_null=True, help_text="The newest anchored event that matched; later events rest on the keyed chain alone."
    )
    anchors = serializers.IntegerField(help_text="Valid anchors the chain was held to.")
    forged_anchors = serializers.IntegerField(help_text="Anchors ignored because their signature does not verify.")
