"""Named API tokens."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from requests_app.api.common import IDEMPOTENCY_HEADER, caller
from requests_app.api.idempotency import idempotent
from requests_app.api.schema import ERROR
from requests_app.api.serializers.integrations import ApiTokenCreatedSerializer, ApiTokenSerializer
from requests_app.integrations import services as integration_services
from requests_app.models import (
    ApiToken,
)
from requests_app.peering import permissions


@extend_schema_view(
    list=extend_schema(summary="Your API tokens (administrators: everyone's); never their keys"),
    retrieve=extend_schema(summary="One token", responses={200: ApiTokenSerializer, 404: ERROR}),
)
class ApiTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ApiTokenSerializer

    def get_queryset(self) -> QuerySet[ApiToken]:
        qs = ApiToken.objects.select_related("user").order_by("-created_at", "-pk")
        if getattr(self, "swagger_fake_view", False):
            return qs.none()
        user = caller(self.request)
        return qs if permissions.is_admin(user) else qs.filter(user=user)

    @extend_schema(
        summary="Create a named token; its key is in this answer only",
        request=ApiTokenSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: ApiTokenCreatedSerializer, 400: ERROR, 409: ERROR},
    )
    @idempotent
    def create(self, request: Request) -> Response:
        data = ApiTokenSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token, key = integration_services.api_token_create(
            actor=caller(request),
            via_token=request.auth if isinstance(request.auth, ApiToken) else None,
            **data.validated_data,
        )
        return Response({**ApiTokenSerializer(token).data, "token": key}, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Revoke a token; calls with it then get 401",
        request=None,
        parameters=[IDEMPOTENCY_HEADER],
        responses={200: ApiTokenSerializer, 404: ERROR},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def revoke(self, request: Request, pk: str) -> Response:
        return Response(
            ApiTokenSerializer(integration_services.api_token_revoke(actor=caller(request), token_id=pk)).data
        )
