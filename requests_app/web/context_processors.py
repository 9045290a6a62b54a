from django.contrib.auth.models import AnonymousUser, User
from django.http import HttpRequest

from requests_app.peering import permissions


def navigation(request: HttpRequest) -> dict[str, bool]:
    # No user on a request the authentication middleware did not see (an error page, say).
    user: User | AnonymousUser | None = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"nav_is_approver": permissions.is_approver(user), "nav_is_admin": permissions.is_admin(user)}
