"""Input and output shapes. Validation of peering rules lives in the domain, not here."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from requests_app.models import (
    ApiToken,
    AuditEvent,
    AwsAccount,
    Department,
    ObservedPeering,
    PeeringRequest,
    ProvisioningStep,
    Vpc,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)

CIDR_LIST = serializers.ListField(child=serializers.CharField(max_length=43), required=False, default=list)


class RouteTableSerializer(serializers.Serializer):
    route_table_id = serializers.CharField()
    name = serializers.CharField()
    is_main = serializers.BooleanField()
    route_count = serializers.SerializerMethodField()

    def get_route_count(self, table) -> int:  # type: ignore[no-untyped-def]
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


class AuditEventSerializer(serializers.ModelSerializer):
    request = serializers.UUIDField(source="request_id", allow_null=True)
    actor = serializers.CharField(source="actor_label")

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "request",
            "created_at",
            "actor",
            "action",
            "from_status",
            "to_status",
            "operation",
            "account_id",
            "region",
            "result",
            "error_code",
            "message",
            "data",
            "prev_hash",
            "hash",
        ]
        read_only_fields = fields


class ChainReportSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    checked = serializers.IntegerField()
    first_broken = serializers.IntegerField(allow_null=True, help_text="The id of the first event that fails.")
    reason = serializers.CharField(help_text="What is wrong, if anything; empty when ok.")
    legacy = serializers.IntegerField(
        help_text="Events from before keyed hashing (plain SHA-256): only anchors protect them."
    )
    anchored_at = serializers.CharField(allow_null=True, help_text="When the newest valid anchor was signed (ISO 8601).")
    anchored_event = serializers.IntegerField(allow_null=True, help_text="The event the newest valid anchor names.")
    anchored_count = serializers.IntegerField(allow_null=True, help_text="How many events that anchor counted up to it.")
    proven_until = serializers.IntegerField(
        allow_null=True, help_text="The newest anchored event that matched; later events rest on the keyed chain alone."
    )
    anchors = serializers.IntegerField(help_text="Valid anchors the chain was held to.")
    forged_anchors = serializers.IntegerField(help_text="Anchors ignored because their signature does not verify.")


class WebhookSerializer(serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.CharField(max_length=64), allow_empty=False)

    class Meta:
        model = Webhook
        fields = ["id", "url", "events", "active", "created_at"]
        read_only_fields = ["id", "created_at"]


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown once, on create.")

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


class WebhookUpdateSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=2048, required=False)
    events = serializers.ListField(child=serializers.CharField(max_length=64), allow_empty=False, required=False)
    active = serializers.BooleanField(required=False)


class WebhookAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ["number", "started_at", "status_code", "latency_ms", "error", "response_excerpt"]


class WebhookDeliverySerializer(serializers.ModelSerializer):
    request = serializers.UUIDField(source="request_id", allow_null=True, read_only=True)
    attempt_log = WebhookAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "message_id",
            "event_type",
            "request",
            "state",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "created_at",
            "delivered_at",
            "payload",
            "attempt_log",
        ]


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"})
    name = serializers.CharField(max_length=100, required=False, help_text="Defaults to `login`.")


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Shown once; only its hash is stored.")
    expires_at = serializers.DateTimeField(allow_null=True)


class ApiTokenSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = ApiToken
        fields = ["id", "name", "user", "prefix", "read_only", "created_at", "expires_at", "revoked_at", "last_used_at"]
        read_only_fields = ["id", "user", "prefix", "created_at", "revoked_at", "last_used_at"]


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown once, on create; only its hash is stored.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]


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
