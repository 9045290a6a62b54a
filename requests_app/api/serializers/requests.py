"""Shapes of peering requests: what is filed, what pre-flight answers, what a request shows."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from requests_app.models import (
    PeeringRequest,
    ProvisioningStep,
)

CIDR_LIST = serializers.ListField(child=serializers.CharField(max_length=43), required=False, default=list)


class PeeringRequestInputSerializer(serializers.Serializer):
    requester_vpc = serializers.CharField(max_length=32)
    accepter_vpc = serializers.CharField(max_length=32)
    requester_route_tables = serializers.ListField(
        child=serializers.CharField(max_length=32), required=False, default=list
    )
    accepter_route_tables = serializers.ListField(
        child=serializers.CharField(max_length=32), required=False, default=list
    )
    requester_destination_cidrs = serializers.ListField(
        child=serializers.CharField(max_length=43),
        required=False,
        default=list,
        help_text="What the requester's route tables send to the peer; default: all of the accepter's CIDRs.",
    )
    accepter_destination_cidrs = serializers.ListField(
        child=serializers.CharField(max_length=43),
        required=False,
        default=list,
        help_text="What the accepter's route tables send back; default: all of the requester's CIDRs.",
    )
    allow_dns_resolution = serializers.BooleanField(required=False, default=False)
    justification = serializers.CharField(max_length=4000, trim_whitespace=True)
    external_ref = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)


class PreflightInputSerializer(PeeringRequestInputSerializer):
    justification = serializers.CharField(max_length=4000, required=False, allow_blank=True, default="")


class CheckSerializer(serializers.Serializer):
    code = serializers.CharField()
    status = serializers.ChoiceField(choices=["pass", "warn", "fail"])
    detail = serializers.CharField()
    attr = serializers.CharField(allow_null=True, required=False)


class PlanStepSerializer(serializers.Serializer):
    operation = serializers.CharField(help_text="The EC2 API call, e.g. CreateRoute.")
    account_id = serializers.CharField(help_text="The account whose role makes the call.")
    region = serializers.CharField()
    parameters = serializers.DictField(help_text="The call's parameters known before it runs.", default=dict)
    detail = serializers.CharField()


class PreflightSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    checks = CheckSerializer(many=True)
    plan = PlanStepSerializer(many=True)


class StepSerializer(serializers.ModelSerializer):
    class Meta:
        model = ProvisioningStep
        fields = ["name", "state", "attempts", "aws_id", "outcome", "started_at", "finished_at"]
        read_only_fields = fields


@extend_schema_field(CheckSerializer(many=True))
class ChecksField(serializers.JSONField):
    """A request's stored checks, as the schema's Check objects."""


@extend_schema_field(PlanStepSerializer(many=True))
class PlanField(serializers.JSONField):
    """A request's stored plan, as the schema's PlanStep objects."""


class PeeringRequestSerializer(serializers.ModelSerializer):
    requester_vpc = serializers.CharField(source="requester_vpc.vpc_id")
    accepter_vpc = serializers.CharField(source="accepter_vpc.vpc_id")
    requester_vpc_name = serializers.CharField(source="requester_vpc.name")
    accepter_vpc_name = serializers.CharField(source="accepter_vpc.name")
    requested_by = serializers.CharField(source="requested_by.username")
    decided_by = serializers.CharField(source="decided_by.username", allow_null=True, default=None)
    department = serializers.CharField(source="department.slug")
    # Stored as validated JSON: passed through as is (a nested serializer per row costs as much as
    # the query), and described in the schema by the serializers that define their shape.
    checks = ChecksField(read_only=True)
    plan = PlanField(read_only=True)
    drift = serializers.JSONField(allow_null=True)
    steps = StepSerializer(many=True, read_only=True, help_text="The saga's steps, with attempts and outcomes.")

    class Meta:
        model = PeeringRequest
        fields = [
            "id",
            "status",
            "requester_vpc",
            "requester_vpc_name",
            "accepter_vpc",
            "accepter_vpc_name",
            "requested_by",
            "department",
            "justification",
            "external_ref",
            "aws_peering_connection_id",
            "requester_route_tables",
            "accepter_route_tables",
            "requester_destination_cidrs",
            "accepter_destination_cidrs",
            "allow_dns_resolution",
            "decided_by",
            "decided_at",
            "decision_comment",
            "created_at",
            "updated_at",
            "failure_reason",
            "checks",
            "plan",
            "drift",
            "steps",
            "adopted",
        ]
        read_only_fields = fields


class CommentSerializer(serializers.Serializer):
    comment = serializers.CharField(max_length=4000, required=False, allow_blank=True, default="")
