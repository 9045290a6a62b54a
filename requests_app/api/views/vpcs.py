"""VPCs and their capacity."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from requests_app.api.common import caller
from requests_app.api.schema import ERROR
from requests_app.api.serializers.inventory import CapacitySerializer, VpcSerializer
from requests_app.inventory import selectors as inventory_selectors
from requests_app.inventory import services as inventory_services
from requests_app.inventory.filters import VpcFilter
from requests_app.models import Vpc


class VpcViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = VpcSerializer
    lookup_field = "vpc_id"
    filterset_class = VpcFilter

    def get_queryset(self) -> QuerySet[Vpc]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return Vpc.objects.none()
        return inventory_selectors.vpcs_visible_to(caller(self.request))

    @extend_schema(
        summary="Headroom against each quota, counting live and pending work",
        responses={200: CapacitySerializer, 404: ERROR},
    )
    @action(detail=True, methods=["get"])
    def capacity(self, request: Request, vpc_id: str | None = None) -> Response:
        return Response(inventory_services.vpc_capacity(actor=caller(request), vpc_id=str(vpc_id)).as_dict())
