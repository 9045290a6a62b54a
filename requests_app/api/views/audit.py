"""The audit trail and its verification."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from requests_app import audit
from requests_app.api import throttling
from requests_app.api.common import caller
from requests_app.api.serializers.audit import AuditEventSerializer, ChainReportSerializer
from requests_app.audit.filters import AuditEventFilter
from requests_app.models import AuditEvent
from requests_app.peering import selectors as peering_selectors


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter

    def get_queryset(self) -> QuerySet[AuditEvent]:
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return AuditEvent.objects.none()
        return peering_selectors.events_visible_to(caller(self.request)).order_by("id")

    # Open to every signed-in user, as the contract promises; it tells how many events exist and
    # where the chain breaks, never what any event says.
    @extend_schema(summary="Verify the audit hash chain", responses={200: ChainReportSerializer})
    @action(
        detail=False,
        methods=["get"],
        throttle_classes=[*api_settings.DEFAULT_THROTTLE_CLASSES, throttling.AuditVerifyRateThrottle],
    )
    def verify(self, request: Request) -> Response:
        return Response(audit.verify_chain().as_dict())
