"""Form fields and filters shared by the pages and the API."""

from __future__ import annotations

import datetime as dt
from typing import Any

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField


def _in_utc(value: dt.datetime | None) -> dt.datetime | None:
    """The moment in UTC, or a validation error if UTC cannot hold it (0001-01-01T00:00+01:00 is
    before year 1 there): the database would otherwise fail on it with a server error."""
    if value is None or value.tzinfo is None:
        return value
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise forms.ValidationError("This moment is outside the range of dates.", code="invalid") from None


class UtcDateTimeField(forms.DateTimeField):
    def to_python(self, value: Any) -> dt.datetime | None:
        return _in_utc(super().to_python(value))


class UtcIsoDateTimeField(IsoDateTimeField):
    def to_python(self, value: Any) -> dt.datetime | None:
        return _in_utc(super().to_python(value))


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 filter whose moment is compared in UTC (see `UtcIsoDateTimeField`)."""

    field_class = UtcIsoDateTimeField
