"""The admin: every change goes through the same rules as the API, and into the audit trail.

Portal objects that have a use case are created and changed through it (webhooks: destination
check, a generated signing secret; AWS accounts: name and region checks, the model's own
validation), with the same checks run first in the form so a refusal is a form error, not a
crash. Every change made here (an addition, a change, a deletion, a password set for a user) is
also an audit event, written in the admin's own transaction: the admin's LogEntry table is not
hash-chained, the audit trail is.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.models import LogEntry
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.contrib.contenttypes.fields import GenericForeignKey
from django.db import models, transaction
from django.db.models import ForeignObjectRel, QuerySet
from django.http import HttpRequest
from django.utils.text import capfirst

from requests_app import audit
from requests_app.audit import AuditAction
from requests_app.core import errors
from requests_app.core.http import signed_in_user
from requests_app.integrations import services as integration_services
from requests_app.inventory import services as inventory_services
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

# Never written into the audit trail, whatever the model.
SECRET_FIELDS = frozenset({"password", "secret", "key_hash"})


def _value(obj: models.Model, field: models.Field[Any, Any] | ForeignObjectRel | GenericForeignKey) -> Any:
    if field.name in SECRET_FIELDS:
        return "(changed; not recorded)"
    if field.many_to_many:
        return sorted(str(related) for related in getattr(obj, field.name).all())
    value = getattr(obj, field.name)
    return value if isinstance(value, (str, int, float, bool, list, dict)) or value is None else str(value)


def _changed_fields(obj: models.Model, message: Any) -> dict[str, Any]:
    """The fields a change message names (Django's JSON: labels of the form's fields), with their
    values now. An addition records every field."""
    fields = [f for f in obj._meta.get_fields() if getattr(f, "concrete", False) and not f.auto_created]
    by_label = {str(capfirst(getattr(f, "verbose_name", f.name))): f for f in fields}
    by_label |= {f.name: f for f in fields}
    named: list[str] = []
    for entry in message if isinstance(message, list) else []:
        named += entry.get("changed", {}).get("fields", [])
    if not named:
        return {f.name: _value(obj, f) for f in fields}
    # A label that is no model field (a password form's "Password") is named as changed, no value.
    return {
        by_label[label].name if label in by_label else label: _value(obj, by_label[label])
        if label in by_label
        else "(changed; not recorded)"
        for label in named
    }


# The largest primary key a database integer column holds: a larger one typed into a form is an
# invalid choice, not a query (SQLite raises OverflowError on it).
MAX_ID = 2**63 - 1


class SafeJSONField(forms.JSONField):
    """Django's JSON form field catches malformed JSON, but not JSON nested too deeply to parse
    (in validation, and again when the form is shown back with its errors)."""

    def to_python(self, value: Any) -> Any:
        try:
            return super().to_python(value)
        except RecursionError:
            raise forms.ValidationError("This JSON is nested too deeply.", code="invalid") from None

    def bound_data(self, data: Any, initial: Any) -> Any:
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return forms.fields.InvalidJSONInput(data)


def _ids_in_range(values: Any) -> bool:
    listed = values if isinstance(values, (list, tuple)) else [values]
    return all(not str(v).strip().lstrip("-").isdigit() or abs(int(str(v).strip())) <= MAX_ID for v in listed)


class SafeModelChoiceField(forms.ModelChoiceField):
    def to_python(self, value: Any) -> Any:
        if not _ids_in_range(value):
            raise forms.ValidationError(self.error_messages["invalid_choice"], code="invalid_choice")
        return super().to_python(value)


class SafeModelMultipleChoiceField(forms.ModelMultipleChoiceField):
    def _check_values(self, value: Any) -> Any:
        if not _ids_in_range(list(value)):
            raise forms.ValidationError(
                self.error_messages["invalid_choice"], code="invalid_choice", params={"value": "…"}
            )
        # A private method of Django's field, the one that looks the ids up; django-stubs does not list it.
        return super()._check_values(value)  # type: ignore[misc]


class SafeChangeList(ChangeList):
    """A changelist whose lookups the database cannot even be asked (a moment before year 1 once
    in UTC: `created_at__gte=0001-01-01T00:00+01:00`) are wrong parameters, as Django's own bad
    lookups are, not a server error when the list is read."""

    def get_queryset(self, request: HttpRequest, exclude_parameters: list[str | None] | None = None) -> QuerySet[Any]:
        queryset = super().get_queryset(request, exclude_parameters)
        try:
            queryset.query.sql_with_params()  # turns each lookup value into what the database gets
        except (OverflowError, ValueError) as exc:
            raise IncorrectLookupParameters(exc) from exc
        return queryset


class PortalAdmin(admin.ModelAdmin):
    """What every admin page of the portal shares: input the admin itself would crash on is a form error."""

    formfield_overrides = {models.JSONField: {"form_class": SafeJSONField}}

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return SafeChangeList

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Any], search_term: str) -> Any:
        # No name, id or subject is this long, and SQLite refuses LIKE patterns past 50,000 bytes.
        if len(search_term) > 200:
            return queryset.none(), False
        return super().get_search_results(request, queryset, search_term)

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        # An empty `_to_field` (Django checks only a non-empty one) would look up a field named "".
        return super().get_object(request, object_id, from_field or None)

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        return super().formfield_for_foreignkey(db_field, request, form_class=SafeModelChoiceField, **kwargs)

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        return super().formfield_for_manytomany(db_field, request, form_class=SafeModelMultipleChoiceField, **kwargs)


class AuditedAdmin(PortalAdmin):
    """Each addition, change and deletion made in the admin is an audit event too."""

    def _audit(self, request: HttpRequest, action: AuditAction, obj: models.Model, fields: dict[str, Any]) -> None:
        audit.record(
            action=action,
            actor=signed_in_user(request),
            message=f"{obj._meta.verbose_name} {obj}",
            data={"model": obj._meta.label_lower, "object_id": str(obj.pk), "fields": fields},
        )

    def log_addition(self, request: HttpRequest, obj: models.Model, message: Any) -> LogEntry:
        entry = super().log_addition(request, obj, message)
        self._audit(request, AuditAction.ADMIN_ADDED, obj, _changed_fields(obj, []))
        return entry

    def log_change(self, request: HttpRequest, obj: models.Model, message: Any) -> LogEntry:
        entry = super().log_change(request, obj, message)
        self._audit(request, AuditAction.ADMIN_CHANGED, obj, _changed_fields(obj, message))
        return entry

    def delete_model(self, request: HttpRequest, obj: models.Model) -> None:
        with transaction.atomic():
            self._audit(request, AuditAction.ADMIN_DELETED, obj, {})
            super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        # The bulk "delete selected" action is not wrapped in a transaction by the admin.
        with transaction.atomic():
            for obj in queryset:
                self._audit(request, AuditAction.ADMIN_DELETED, obj, {})
            super().delete_queryset(request, queryset)


class ReadOnlyAdmin(PortalAdmin):
    """Read-only: every change goes through the use cases, so it is checked and audited."""

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False


def _refusal_to_form_error(form: forms.BaseForm, exc: errors.PortalError) -> None:
    field = exc.attr if exc.attr in form.fields else None
    form.add_error(field, f"{exc.detail} ({exc.code})")


# --- departments, accounts, VPCs ---------------------------------------------------------------
@admin.register(Department)
class DepartmentAdmin(AuditedAdmin):
    list_display = ["name", "slug"]
    filter_horizontal = ["members"]
    prepopulated_fields = {"slug": ["name"]}


class AwsAccountForm(forms.ModelForm):
    class Meta:
        model = AwsAccount
        fields = [
            "account_id",
            "name",
            "department",
            "role_arn",
            "regions",
            "max_peerings_per_vpc",
            "max_outstanding_requests",
            "max_routes_per_table",
        ]

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data  # what ModelForm.clean returns
        try:
            inventory_services.aws_account_check(name=cleaned.get("name", ""), regions=cleaned.get("regions") or [])
        except errors.PortalError as exc:
            _refusal_to_form_error(self, exc)
        return cleaned


@admin.register(AwsAccount)
class AwsAccountAdmin(AuditedAdmin):
    form = AwsAccountForm
    list_display = ["account_id", "name", "department", "regions", "last_synced_at"]
    readonly_fields = ["external_id", "last_synced_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: AwsAccount | None = None) -> list[str]:
        # An account's id is its identity (its role, its ExternalId): never edited after registration.
        return [*self.readonly_fields, "account_id"] if obj is not None else list(self.readonly_fields)

    def save_model(self, request: HttpRequest, obj: AwsAccount, form: forms.ModelForm, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        # Registration is the API's use case, with its checks and its audit event.
        registered = inventory_services.aws_account_register(
            actor=signed_in_user(request),
            account_id=obj.account_id,
            name=obj.name,
            department=obj.department.slug,
            role_arn=obj.role_arn,
            regions=obj.regions,
        )
        quotas = {
            name: form.cleaned_data.get(name)
            for name in ("max_peerings_per_vpc", "max_outstanding_requests", "max_routes_per_table")
        }
        AwsAccount.objects.filter(pk=registered.pk).update(**quotas)
        obj.pk, obj.external_id = registered.pk, registered.external_id


class VpcCidrInline(admin.TabularInline):
    model = VpcCidr
    extra = 0
    # What a sync read from AWS; the address range is derived from the block and never typed in.
    fields = ["cidr", "is_primary"]
    readonly_fields = ["cidr", "is_primary"]
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False  # blocks come from AWS (a sync), never typed in


@admin.register(Vpc)
class VpcAdmin(AuditedAdmin):
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
        "name",
        "is_default",
        "dns_hostnames",
        "dns_support",
        "present_in_aws",
        "synced_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # VPCs come from AWS (a sync)


@admin.register(RouteTable)
class RouteTableAdmin(ReadOnlyAdmin):
    list_display = ["route_table_id", "name", "vpc", "is_main"]


# --- read-only records --------------------------------------------------------------------------
@admin.register(PeeringRequest)
class PeeringRequestAdmin(ReadOnlyAdmin):
    list_display = ["id", "requester_vpc", "accepter_vpc", "status", "external_ref", "created_at"]
    list_filter = ["status"]
    search_fields = ["id", "external_ref", "aws_peering_connection_id"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "actor_label", "action", "request", "operation", "result"]
    list_filter = ["action", "result"]
    search_fields = ["actor_label", "action", "operation"]


@admin.register(ObservedPeering)
class ObservedPeeringAdmin(ReadOnlyAdmin):
    list_display = ["connection_id", "requester_vpc_id", "accepter_vpc_id", "status", "portal_request_id", "seen_at"]
    list_filter = ["status"]


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ["id", "created_at", "event", "recipients", "state", "attempts", "sent_at"]
    list_filter = ["state", "event"]
    search_fields = ["subject", "recipients"]


# --- webhooks -----------------------------------------------------------------------------------
class WebhookForm(forms.ModelForm):
    """The API's fields, checked by the API's rules before the use case runs."""

    url = forms.URLField(max_length=2048, assume_scheme="https")
    events = SafeJSONField(help_text='A list of event types, e.g. ["peering_request.*"] or ["*"].')

    class Meta:
        model = Webhook
        fields = ["url", "events", "active"]

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data  # what ModelForm.clean returns
        events = cleaned.get("events")
        if events is not None and (
            not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events)
        ):
            self.add_error("events", "A non-empty list of event type names.")
            return cleaned
        try:
            integration_services.webhook_check(url=cleaned.get("url"), events=events)
        except errors.PortalError as exc:
            _refusal_to_form_error(self, exc)
        return cleaned


@admin.register(Webhook)
class WebhookAdmin(AuditedAdmin):
    """Registered and changed through the API's use cases: the destination is checked, the signing
    secret is generated (shown once, here), and the change is audited by the use case."""

    form = WebhookForm
    list_display = ["url", "events", "active", "created_at"]

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False  # switch it off instead: its deliveries and their log stay

    def save_model(self, request: HttpRequest, obj: Webhook, form: forms.ModelForm, change: bool) -> None:
        if change:
            changes = {name: form.cleaned_data[name] for name in form.changed_data}
            if changes:
                integration_services.webhook_update(actor=signed_in_user(request), webhook_id=obj.pk, **changes)
            return
        hook = integration_services.webhook_register(
            actor=signed_in_user(request), url=obj.url, events=obj.events, active=obj.active
        )
        obj.pk, obj.secret, obj.created_by, obj.created_at = hook.pk, hook.secret, hook.created_by, hook.created_at
        messages.warning(request, f"Signing secret (shown once, copy it now): {hook.secret}")

    # The use cases audit webhook changes themselves.
    def log_addition(self, request: HttpRequest, obj: models.Model, message: Any) -> LogEntry:
        return admin.ModelAdmin.log_addition(self, request, obj, message)

    def log_change(self, request: HttpRequest, obj: models.Model, message: Any) -> LogEntry:
        return admin.ModelAdmin.log_change(self, request, obj, message)


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    can_delete = False
    readonly_fields = ["number", "started_at", "status_code", "latency_ms", "error", "response_excerpt"]

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    """The delivery log; resend goes through the use case, so it is audited."""

    list_display = ["message_id", "webhook", "event_type", "state", "attempts", "last_status_code", "created_at"]
    list_filter = ["state", "event_type", "webhook"]
    search_fields = ["message_id", "event_type"]
    inlines = [WebhookAttemptInline]
    actions = ["resend"]

    @admin.action(description="Resend (same webhook-id)")
    def resend(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        for delivery in queryset:
            integration_services.webhook_resend(
                actor=signed_in_user(request), webhook_id=delivery.webhook_id, message_id=delivery.message_id
            )
        messages.success(request, f"{queryset.count()} delivery(ies) queued again.")


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    """Tokens by name and prefix; the key itself is nowhere to show."""

    list_display = ["name", "user", "prefix", "read_only", "created_at", "expires_at", "revoked_at", "last_used_at"]
    list_filter = ["read_only"]
    search_fields = ["name", "prefix", "user__username"]
    exclude = ["key_hash"]
    actions = ["revoke"]

    @admin.action(description="Revoke")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        for token in queryset:
            integration_services.api_token_revoke(actor=signed_in_user(request), token_id=token.pk)
        messages.success(request, f"{queryset.count()} token(s) revoked.")


# --- people -------------------------------------------------------------------------------------
# Who is an administrator, and with which password, is the portal's business too: audited.
User = get_user_model()
admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class AuditedUserAdmin(AuditedAdmin, UserAdmin):
    pass


@admin.register(Group)
class AuditedGroupAdmin(AuditedAdmin, GroupAdmin):
    pass
