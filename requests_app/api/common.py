"""What the API's views share: the caller, the admin permission, the idempotency header, a stable ordering."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.contrib.auth.models import User
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import permissions as drf_permissions
from rest_framework.exceptions import NotAuthenticated
from rest_framework.filters import OrderingFilter
from rest_framework.request import Request
from rest_framework.views import APIView

from requests_app.peering import permissions

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="Repeat the call safely: the same key and body within 24 h return the first response.",
)


def caller(request: Request) -> User:
    """The signed-in user making the call, as the use cases take it.

    Every view runs behind IsAuthenticated (the default permission) or IsAdmin, so DRF has already
    answered 401 to an anonymous caller; this says so to the type checker, and never hands
    AnonymousUser on.
    """
    user = request.user
    if not user.is_authenticated:
        raise NotAuthenticated()
    return user


class IsAdmin(drf_permissions.BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return user.is_authenticated and permissions.is_admin(user)


class StableOrderingFilter(OrderingFilter):
    """`?ordering=` with the primary key as the last key, so equal values never shuffle between pages."""

    def get_ordering(self, request: Request, queryset: QuerySet[Any], view: APIView) -> Sequence[str] | None:
        ordering = super().get_ordering(request, queryset, view)
        return [*ordering, "-pk"] if ordering else ordering
