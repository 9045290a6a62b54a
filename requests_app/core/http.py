"""The request a view gets once a login is required, typed as such.

Django types `request.user` as `User | AnonymousUser`. Behind `@login_required` (and in the admin)
it is always a signed-in `User`; these say so, so the user goes on to the use cases with its real
type instead of a union every caller would have to narrow again.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest


class AuthenticatedHttpRequest(HttpRequest):
    """For annotating the `@login_required` views (as healthchecks does): Django still passes a
    plain HttpRequest, whose user the decorator has already checked is signed in."""

    user: User


def signed_in_user(request: HttpRequest) -> User:
    """The user of a request that only signed-in users reach (the admin, whose method signatures
    take a plain HttpRequest); never AnonymousUser."""
    user = request.user
    if not user.is_authenticated:
        raise PermissionDenied("Sign in first.")  # the login checks in front of the caller make this unreachable
    return user
