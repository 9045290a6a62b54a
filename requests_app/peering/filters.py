"""The peering requests' filters, shared by the API's list and the requests page."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from requests_app.core.fields import UtcIsoDateTimeFilter
from requests_app.domain.status import Status
from requests_app.models import PeeringRequest

# Longer than any name or ticket; SQLite also refuses LIKE patterns past 50,000 bytes.
MAX_SEARCH = 200


class PeeringRequestFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=[(x.value, x.value) for x in Status])
    external_ref = django_filters.CharFilter()
    requester_vpc = django_filters.CharFilter(field_name="requester_vpc__vpc_id")
    accepter_vpc = django_filters.CharFilter(field_name="accepter_vpc__vpc_id")
    updated_after = UtcIsoDateTimeFilter(field_name="updated_at", lookup_expr="gt")
    q = django_filters.CharFilter(
        method="search",
        max_length=MAX_SEARCH,
        label="Search",
        help_text="Ticket, either VPC's name, or the connection id (contains, any case).",
    )

    class Meta:
        model = PeeringRequest
        fields = ["status", "external_ref", "requester_vpc", "accepter_vpc", "updated_after", "q"]

    def search(self, queryset: QuerySet[PeeringRequest], name: str, value: str) -> QuerySet[PeeringRequest]:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            Q(external_ref__icontains=value)
            | Q(requester_vpc__name__icontains=value)
            | Q(accepter_vpc__name__icontains=value)
            | Q(aws_peering_connection_id__icontains=value)
        )
