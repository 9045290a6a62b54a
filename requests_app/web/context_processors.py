from typing import Any

from django.http import HttpRequest

from requests_app.peering import permissions


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"nav_is_approver": permissions.is_approver(user), "nav_is_admin": permissions.is_admin(user)}
