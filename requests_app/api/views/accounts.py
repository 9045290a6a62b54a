"""AWS accounts: registration and sync (administrators)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from requests_app.api.common import IDEMPOTENCY_HEADER, IsAdmin, caller
from requests_app.api.idempotency import idempotent
from requests_app.api.schema import ERROR
from requests_app.api.serializers.inventory import AwsAccountSerializer, SyncReportSerializer
from requests_app.inventory import services as inventory_services
from requests_app.models import (
    AwsAccount,
)


class AwsAccountViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    serializer_class = AwsAccountSerializer
    permission_classes = [IsAdmin]
    lookup_field = "account_id"
    queryset = AwsAccount.objects.select_related("department")

    @extend_schema(parameters=[IDEMPOTENCY_HEADER], responses={201: AwsAccountSerializer, 400: ERROR, 403: ERROR})
    @idempotent
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        account = inventory_services.aws_account_register(
            actor=caller(request),
            account_id=v["account_id"],
            name=v["name"],
            department=v["department"].slug,
            role_arn=v["role_arn"],
            regions=v["regions"],
        )
        return Response(self.get_serializer(account).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None, parameters=[IDEMPOTENCY_HEADER], responses={200: SyncReportSerializer, 404: ERROR, 502: ERROR}
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def sync(self, request: Request, account_id: str | None = None) -> Response:
        return Response(inventory_services.aws_account_sync(actor=caller(request), account_id=str(account_id)))
