"""Shapes of webhooks, their deliveries, and API tokens."""

from __future__ import annotations

from rest_framework import serializers

from requests_app.models import (
    ApiToken,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)


class WebhookSerializer(serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.CharField(max_length=64), allow_empty=False)

    class Meta:
        model = Webhook
        fields = ["id", "url", "events", "active", "created_at"]
        read_only_fields = ["id", "created_at"]


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown once, on create.")

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


class WebhookUpdateSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=2048, required=False)
    events = serializers.ListField(child=serializers.CharField(max_length=64), allow_empty=False, required=False)
    active = serializers.BooleanField(required=False)


class WebhookAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ["number", "started_at", "status_code", "latency_ms", "error", "response_excerpt"]


class WebhookDeliverySerializer(serializers.ModelSerializer):
    request = serializers.UUIDField(source="request_id", allow_null=True, read_only=True)
    attempt_log = WebhookAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "message_id",
            "event_type",
            "request",
            "state",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "created_at",
            "delivered_at",
            "payload",
            "attempt_log",
        ]


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"})
    name = serializers.CharField(max_length=100, required=False, help_text="Defaults to `login`.")


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Shown once; only its hash is stored.")
    expires_at = serializers.DateTimeField(allow_null=True)


class ApiTokenSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = ApiToken
        fields = ["id", "name", "user", "prefix", "read_only", "created_at", "expires_at", "revoked_at", "last_used_at"]
        read_only_fields = ["id", "user", "prefix", "created_at", "revoked_at", "last_used_at"]


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown once, on create; only its hash is stored.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
