"""Peerings found in AWS that the portal does not manage, and their adoption."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from requests_app.api.common import IDEMPOTENCY_HEADER, caller
from requests_app.api.idempotency import idempotent
from requests_app.api.schema import ERROR
from requests_app.api.serializers.inventory import AdoptSerializer, ObservedPeeringSerializer
from requests_app.api.serializers.requests import PeeringRequestSerializer
from requests_app.inventory import selectors as inventory_selectors
from requests_app.models import (
    ObservedPeering,
)
from requests_app.peering import adoption
from requests_app.peering import selectors as peering_selectors


@extend_schema_view(
    list=extend_schema(summary="Peerings found in AWS that the portal does not manage"),
    retrieve=extend_schema(summary="One peering found in AWS", responses={200: ObservedPeeringSerializer, 404: ERROR}),
)
class ObservedPeeringViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = ObservedPeeringSerializer
    lookup_field = "connection_id"
    lookup_url_kwarg = "pcx_id"
    lookup_value_regex = r"pcx-[0-9a-zA-Z]+"

    def get_queryset(self) -> QuerySet[ObservedPeering]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return ObservedPeering.objects.none()
        return inventory_selectors.observed_peerings_visible_to(caller(self.request))

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        context["routes"] = getattr(self, "_routes", {})
        return context

    def paginate_queryset(self, queryset: Any) -> Any:
        page = super().paginate_queryset(queryset)
        self._routes = inventory_selectors.routes_to_connections([o.connection_id for o in (page or [])])
        return page

    def get_object(self) -> ObservedPeering:
        found = super().get_object()
        self._routes = inventory_selectors.routes_to_connections([found.connection_id])
        return found

    @extend_schema(
        summary="Adopt it: the portal manages it from now on (owners of the hub, or an admin)",
        request=AdoptSerializer,
        parameters=[IDEMPOTENCY_HEADER],
        responses={201: PeeringRequestSerializer, 400: ERROR, 403: ERROR, 404: ERROR, 409: ERROR, 502: ERROR},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def adopt(self, request: Request, pcx_id: str | None = None) -> Response:
        data = AdoptSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = caller(request)
        adopted = adoption.observed_peering_adopt(actor=user, connection_id=str(pcx_id), **data.validated_data)
        found = peering_selectors.requests_for_api(user).get(pk=adopted.pk)
        return Response(PeeringRequestSerializer(found).data, status=status.HTTP_201_CREATED)
