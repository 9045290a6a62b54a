"""Shapes of VPCs, accounts, capacity and peerings found in AWS."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from requests_app.models import (
    AwsAccount,
    Department,
    ObservedPeering,
    RouteTable,
    Vpc,
)


class RouteTableSerializer(serializers.Serializer):
    route_table_id = serializers.CharField()
    name = serializers.CharField()
    is_main = serializers.BooleanField()
    route_count = serializers.SerializerMethodField()

    def get_route_count(self, table: RouteTable) -> int:
        return len(table.routes)


class VpcSerializer(serializers.ModelSerializer):
    account_id = serializers.CharField(source="account.account_id")
    department = serializers.CharField(source="account.department.slug")
    cidr_blocks = serializers.SerializerMethodField()
    route_tables = RouteTableSerializer(many=True)
    owners = serializers.SerializerMethodField()

    class Meta:
        model = Vpc
        fields = [
            "vpc_id",
            "name",
            "account_id",
            "region",
            "cidr_blocks",
            "department",
            "is_services_vpc",
            "route_tables",
            "owners",
            "dns_hostnames",
            "dns_support",
        ]

    def get_cidr_blocks(self, vpc: Vpc) -> list[str]:
        return vpc.cidr_list()

    def get_owners(self, vpc: Vpc) -> list[str]:
        return sorted(u.username for u in vpc.owners.all())


class AwsAccountSerializer(serializers.ModelSerializer):
    department = serializers.SlugRelatedField(slug_field="slug", queryset=Department.objects.all())
    regions = serializers.ListField(child=serializers.CharField(max_length=32), allow_empty=False)

    class Meta:
        model = AwsAccount
        fields = ["account_id", "name", "department", "role_arn", "regions", "external_id", "last_synced_at"]
        read_only_fields = ["external_id", "last_synced_at"]


class SyncReportSerializer(serializers.Serializer):
    account_id = serializers.CharField()
    vpcs = serializers.IntegerField()
    route_tables = serializers.IntegerField()
    peerings = serializers.IntegerField()
    vanished_vpcs = serializers.ListField(child=serializers.CharField())


class RouteRefSerializer(serializers.Serializer):
    route_table_id = serializers.CharField()
    destination = serializers.CharField()


class ObservedPeeringSerializer(serializers.ModelSerializer):
    pcx_id = serializers.CharField(source="connection_id")
    requester_vpc = serializers.CharField(source="requester_vpc_id")
    accepter_vpc = serializers.CharField(source="accepter_vpc_id")
    routes = serializers.SerializerMethodField(
        help_text="Routes in the two VPCs' tables (as last synced) that target it."
    )
    first_seen = serializers.DateTimeField(allow_null=True)
    last_seen = serializers.DateTimeField(source="seen_at")

    class Meta:
        model = ObservedPeering
        fields = [
            "pcx_id",
            "requester_vpc",
            "accepter_vpc",
            "requester_account_id",
            "accepter_account_id",
            "requester_region",
            "accepter_region",
            "status",
            "routes",
            "first_seen",
            "last_seen",
        ]
        read_only_fields = fields

    @extend_schema_field(RouteRefSerializer(many=True))
    def get_routes(self, seen: ObservedPeering) -> list[dict[str, str]]:
        return self.context.get("routes", {}).get(seen.connection_id, [])


class AdoptSerializer(serializers.Serializer):
    justification = serializers.CharField(max_length=4000, trim_whitespace=True)
    external_ref = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)


class PeeringHeadroomSerializer(serializers.Serializer):
    active = serializers.IntegerField(help_text="Active peerings of the VPC in AWS, managed or not.")
    pending = serializers.IntegerField(help_text="Requests pending approval, approved or provisioning.")
    limit = serializers.IntegerField()


class TableHeadroomSerializer(serializers.Serializer):
    route_table_id = serializers.CharField()
    name = serializers.CharField()
    used = serializers.IntegerField(help_text="Routes in the table now, local included.")
    pending = serializers.IntegerField(help_text="Routes live requests will add.")
    limit = serializers.IntegerField()


class OutstandingHeadroomSerializer(serializers.Serializer):
    used = serializers.IntegerField(help_text="The account's peering requests waiting for acceptance in AWS.")
    limit = serializers.IntegerField()


class AdviceSerializer(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()


class CapacitySerializer(serializers.Serializer):
    vpc_id = serializers.CharField()
    peerings = PeeringHeadroomSerializer()
    route_tables = TableHeadroomSerializer(many=True)
    outstanding_requests = OutstandingHeadroomSerializer()
    advice = AdviceSerializer(many=True)
