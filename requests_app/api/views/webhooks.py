"""Webhook endpoints and their deliveries (administrators)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from requests_app.api.common import IDEMPOTENCY_HEADER, IsAdmin, caller
from requests_app.api.idempotency import idempotent
from requests_app.api.schema import ERROR
from requests_app.api.serializers.integrations import (
    WebhookCreatedSerializer,
    WebhookDeliverySerializer,
    WebhookSerializer,
    WebhookUpdateSerializer,
)
from requests_app.integrations import services as integration_services
from requests_app.models import (
    Webhook,
    WebhookDelivery,
)


class WebhookViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    serializer_class = WebhookSerializer
    permission_classes = [IsAdmin]
    queryset = Webhook.objects.all()

    @extend_schema(
        request=WebhookSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: WebhookCreatedSerializer, 400: ERROR},
    )
    @idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = WebhookSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        hook = integration_services.webhook_register(actor=caller(request), **data.validated_data)
        return Response(WebhookCreatedSerializer(hook).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change an endpoint's URL, events or active flag",
        request=WebhookUpdateSerializer,
        responses={200: WebhookSerializer, 400: ERROR, 404: ERROR},
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        data = WebhookUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        hook = integration_services.webhook_update(
            actor=caller(request), webhook_id=self.get_object().pk, **data.validated_data
        )
        return Response(WebhookSerializer(hook).data)

    @extend_schema(
        summary="The endpoint's deliveries, newest first, each with its attempts",
        parameters=[OpenApiParameter("state", OpenApiTypes.STR, enum=[x.value for x in WebhookDelivery.State])],
        responses={200: WebhookDeliverySerializer(many=True), 404: ERROR},
    )
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, pk: str | None = None) -> Response:
        deliveries = self.get_object().deliveries.prefetch_related("attempt_log").order_by("-id")
        if request.query_params.get("state"):
            deliveries = deliveries.filter(state=request.query_params["state"])
        page = self.paginate_queryset(deliveries)
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)

    @extend_schema(
        summary="Send a delivery again, with the same webhook-id",
        request=None,
        parameters=[IDEMPOTENCY_HEADER],
        responses={202: WebhookDeliverySerializer, 404: ERROR},
    )
    @action(detail=True, methods=["post"], url_path=r"deliveries/(?P<message_id>msg_[0-9a-f]{32})/resend")
    @idempotent
    def resend(self, request: Request, pk: str | None = None, message_id: str = "") -> Response:
        delivery = integration_services.webhook_resend(
            actor=caller(request), webhook_id=self.get_object().pk, message_id=message_id
        )
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)
