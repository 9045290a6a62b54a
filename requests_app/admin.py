from django.contrib import admin, messages

from requests_app import services
from requests_app.models import (
    ApiToken,
    AuditEvent,
    AwsAccount,
    Department,
    Notification,
    ObservedPeering,
    PeeringRequest,
    RouteTable,
    Vpc,
    VpcCidr,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
)


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ["name", "slug"]
    filter_horizontal = ["members"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(AwsAccount)
class AwsAccountAdmin(admin.ModelAdmin):
    list_display = ["account_id", "name", "department", "regions", "last_synced_at"]
    readonly_fields = ["external_id", "last_synced_at"]


class VpcCidrInline(admin.TabularInline):
    model = VpcCidr
    extra = 0
    readonly_fields = ["cidr", "is_primary"]
    can_delete = False


@admin.register(Vpc)
class VpcAdmin(admin.ModelAdmin):
    list_display = ["vpc_id", "name", "account", "region", "is_services_vpc"]
    list_filter = ["is_services_vpc", "region", "account__department"]
    search_fields = ["vpc_id", "name"]
    filter_horizontal = ["owners"]
    inlines = [VpcCidrInline]
    # Only the portal's own judgements are editable; AWS facts come from sync.
    readonly_fields = [
        "vpc_id",
        "account",
        "region",
        "is_default",
        "dns_hostnames",
        "dns_support",
        "present_in_aws",
        "synced_at",
    ]


@admin.register(RouteTable)
class RouteTableAdmin(admin.ModelAdmin):
    list_display = ["route_table_id", "name", "vpc", "is_main"]
    readonly_fields = ["route_table_id", "vpc", "name", "is_main", "routes"]


@admin.register(PeeringRequest)
class PeeringRequestAdmin(admin.ModelAdmin):
    """Read-only: every change goes through the use cases, so it is checked and audited."""

    list_display = ["id", "requester_vpc", "accepter_vpc", "status", "external_ref", "created_at"]
    list_filter = ["status"]
    search_fields = ["id", "external_ref", "aws_peering_connection_id"]

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(PeeringRequestAdmin):
    list_display = ["id", "created_at", "actor_label", "action", "request", "operation", "result"]
    list_filter = ["action", "result"]
    search_fields = ["actor_label", "action", "operation"]


@admin.register(ObservedPeering)
class ObservedPeeringAdmin(PeeringRequestAdmin):
    list_display = ["connection_id", "requester_vpc_id", "accepter_vpc_id", "status", "portal_request_id", "seen_at"]
    list_filter = ["status"]


@admin.register(Notification)
class NotificationAdmin(PeeringRequestAdmin):
    list_display = ["id", "created_at", "event", "recipients", "state", "attempts", "sent_at"]
    list_filter = ["state", "event"]
    search_fields = ["subject", "recipients"]


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ["url", "events", "active", "created_at"]
    exclude = ["secret"]


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    readonly_fields = ["number", "started_at", "status_code", "latency_ms", "error", "response_excerpt"]

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(PeeringRequestAdmin):
    """The delivery log; resend goes through the use case, so it is audited."""

    list_display = ["message_id", "webhook", "event_type", "state", "attempts", "last_status_code", "created_at"]
    list_filter = ["state", "event_type", "webhook"]
    search_fields = ["message_id", "event_type"]
    inlines = [WebhookAttemptInline]
    actions = ["resend"]

    @admin.action(description="Resend (same webhook-id)")
    def resend(self, request, queryset):  # type: ignore[no-untyped-def]
        for delivery in queryset:
            services.webhook_resend(actor=request.user, webhook_id=delivery.webhook_id, message_id=delivery.message_id)
        messages.success(request, f"{queryset.count()} delivery(ies) queued again.")


@admin.register(ApiToken)
class ApiTokenAdmin(PeeringRequestAdmin):
    """Tokens by name and prefix; the key itself is nowhere to show."""

    list_display = ["name", "user", "prefix", "read_only", "created_at", "expires_at", "revoked_at", "last_used_at"]
    list_filter = ["read_only"]
    search_fields = ["name", "prefix", "user__username"]
    exclude = ["key_hash"]
    actions = ["revoke"]

    @admin.action(description="Revoke")
    def revoke(self, request, queryset):  # type: ignore[no-untyped-def]
        for token in queryset:
            services.api_token_revoke(actor=request.user, token_id=token.pk)
        messages.success(request, f"{queryset.count()} token(s) revoked.")
