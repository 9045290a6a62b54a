"""The portal's URLs plus two bare DRF list views of the same rows, the baseline of bench/api_history.py.

`/bare/requests/` and `/bare/requests/<uuid>/events/` are what a plain DRF app would serve: a
`ListAPIView` over the table, a plain `ModelSerializer` of the same fields (and so the same JSON)
as `PeeringRequestSerializer` / `AuditEventSerializer`, `select_related`/`prefetch_related` of
only what that serializer reads, the project's authentication, throttling and pagination, and no
permission logic beyond `IsAuthenticated` (so every row is visible to any signed-in user) and no
filter backends.
"""

from __future__ import annotations

from typing import Any

from django.urls import path
from rest_framework import generics, permissions, serializers

from peering_portal.urls import urlpatterns as portal_urlpatterns
from requests_app.api.serializers import AuditEventSerializer, PeeringRequestSerializer, StepSerializer
from requests_app.models import AuditEvent, PeeringRequest, ProvisioningStep


class BareStepSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProvisioningStep
        fields = StepSerializer.Meta.fields


class BareRequestSerializer(serializers.ModelSerializer):
    """The portal's fields; `checks`, `plan` and `drift` are the model's JSON as stored."""

    requester_vpc = serializers.CharField(source="requester_vpc.vpc_id")
    accepter_vpc = serializers.CharField(source="accepter_vpc.vpc_id")
    requester_vpc_name = serializers.CharField(source="requester_vpc.name")
    accepter_vpc_name = serializers.CharField(source="accepter_vpc.name")
    requested_by = serializers.CharField(source="requested_by.username")
    decided_by = serializers.CharField(source="decided_by.username", allow_null=True, default=None)
    department = serializers.CharField(source="department.slug")
    steps = BareStepSerializer(many=True, read_only=True)

    class Meta:
        model = PeeringRequest
        fields = PeeringRequestSerializer.Meta.fields


class BareEventSerializer(serializers.ModelSerializer):
    request = serializers.UUIDField(source="request_id", allow_null=True)
    actor = serializers.CharField(source="actor_label")

    class Meta:
        model = AuditEvent
        fields = AuditEventSerializer.Meta.fields


class BareRequestList(generics.ListAPIView):
    serializer_class = BareRequestSerializer
    permission_classes = [permissions.IsAuthenticated]
    filter_backends: list[Any] = []
    queryset = (
        PeeringRequest.objects.select_related(
            "requester_vpc", "accepter_vpc", "requested_by", "decided_by", "department"
        )
        .prefetch_related("steps")
        .order_by("-created_at", "-pk")
    )


class BareEventList(generics.ListAPIView):
    serializer_class = BareEventSerializer
    permission_classes = [permissions.IsAuthenticated]
    filter_backends: list[Any] = []

    def get_queryset(self):  # type: ignore[no-untyped-def]
        return AuditEvent.objects.filter(request_id=self.kwargs["pk"]).order_by("id")


urlpatterns = [
    path("bare/requests/", BareRequestList.as_view(), name="bare-requests"),
    path("bare/requests/<uuid:pk>/events/", BareEventList.as_view(), name="bare-request-events"),
    *portal_urlpatterns,
]
