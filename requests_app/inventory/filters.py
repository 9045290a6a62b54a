"""The VPCs' filters (the API's VPC list)."""

from __future__ import annotations

import django_filters

from requests_app.models import Vpc


class VpcFilter(django_filters.FilterSet):
    department = django_filters.CharFilter(field_name="account__department__slug")
    region = django_filters.CharFilter()
    is_services_vpc = django_filters.BooleanFilter()
    name = django_filters.CharFilter(lookup_expr="icontains", max_length=255)

    class Meta:
        model = Vpc
        fields = ["department", "region", "is_services_vpc", "name"]
