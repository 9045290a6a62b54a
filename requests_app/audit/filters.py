"""The audit history's filters: one meaning for the audit page, its exports and the API.

`actor` and `action` match from the start (`worker` finds every worker run, `request.` every
request event); the time window is half-open, `created_after` <= t < `created_before`, so two
adjacent windows never count an event twice. `since` and `until`, the audit page's first names
for the window, are read as `created_after` and `created_before` everywhere.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django.http import QueryDict

from requests_app.core.fields import UtcIsoDateTimeFilter
from requests_app.models import AuditEvent

# The audit page's first filters were named `since` and `until`; their links still work.
OLD_NAMES = {"since": "created_after", "until": "created_before"}


def _with_new_names(params: QueryDict) -> QueryDict:
    renamed = params.copy()
    for old, new in OLD_NAMES.items():
        if old in renamed:
            values = renamed.pop(old)
            if new not in renamed:
                renamed.setlist(new, values)
    return renamed


class AuditEventFilter(django_filters.FilterSet):
    request = django_filters.UUIDFilter(field_name="request_id", label="Request id")
    actor = django_filters.CharFilter(
        field_name="actor_label",
        lookup_expr="istartswith",
        max_length=150,
        label="Who",
        help_text="Starts with: a user name, or worker / reconciler.",
    )
    action = django_filters.CharFilter(
        lookup_expr="startswith", max_length=64, label="Action", help_text="Starts with, e.g. request.approved."
    )
    created_after = UtcIsoDateTimeFilter(
        field_name="created_at",
        lookup_expr="gte",
        label="From (UTC)",
        help_text="ISO 8601; events at or after this moment.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    created_before = UtcIsoDateTimeFilter(
        field_name="created_at",
        lookup_expr="lt",
        label="Before (UTC)",
        help_text="ISO 8601; events before this moment.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    class Meta:
        model = AuditEvent
        fields = ["request", "actor", "action", "created_after", "created_before"]

    def __init__(self, data: QueryDict | None = None, *args: Any, **kwargs: Any) -> None:
        if data is not None and any(old in data for old in OLD_NAMES):
            data = _with_new_names(data)
        super().__init__(data, *args, **kwargs)


def page_filter(params: QueryDict, events: QuerySet[AuditEvent]) -> AuditEventFilter:
    """The filter as the audit page and its exports use it: no parameters, no filter."""
    return AuditEventFilter(params or None, queryset=events)


def matching(found: AuditEventFilter) -> QuerySet[AuditEvent]:
    """What the page shows: everything with no filter, nothing for a filter it cannot read."""
    if not found.is_bound:
        return found.queryset
    if not found.is_valid():
        return found.queryset.none()
    return found.qs
