"""Login throttling for every password check (login page, admin, API token endpoint).

After LOGIN_FAILURE_LIMIT failures for one user name, or LOGIN_FAILURE_LIMIT_PER_ADDRESS from
one address, within LOGIN_LOCKOUT_SECONDS, further attempts are refused without checking the
password, until the window passes. Counters live in the shared cache.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import forms as auth_forms
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError


def _address(request: Any) -> str:
    return (getattr(request, "META", None) or {}).get("REMOTE_ADDR", "") or "unknown"


def _keys(username: str, request: Any) -> dict[str, int]:
    return {
        f"login-failures:user:{(username or '').strip().lower()}": settings.LOGIN_FAILURE_LIMIT,
        f"login-failures:address:{_address(request)}": settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS,
    }


def locked(username: str, request: Any) -> bool:
    counts = cache.get_many(list(_keys(username, request)))
    return any(counts.get(key, 0) >= limit for key, limit in _keys(username, request).items())


def record_failure(username: str, request: Any) -> None:
    for key in _keys(username, request):
        cache.add(key, 0, timeout=settings.LOGIN_LOCKOUT_SECONDS)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=settings.LOGIN_LOCKOUT_SECONDS)
        # The file cache rewrites a key on incr with its default timeout: keep the window ours.
        cache.touch(key, settings.LOGIN_LOCKOUT_SECONDS)


def record_success(username: str, request: Any) -> None:
    cache.delete(next(iter(_keys(username, request))))  # the user's count; the address's stays


class ThrottledModelBackend(ModelBackend):
    def authenticate(
        self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> Any:
        if username is None:
            username = kwargs.get("username", "")
        if locked(username or "", request):
            raise PermissionDenied("too many failed logins")  # Django's authenticate() then answers None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            record_failure(username or "", request)
        else:
            record_success(username or "", request)
        return user


class ThrottledAuthenticationForm(auth_forms.AuthenticationForm):
    """The login form, saying so when the account or address is locked out."""

    def clean(self) -> dict[str, Any]:
        if locked(self.data.get("username", ""), self.request):
            seconds = settings.LOGIN_LOCKOUT_SECONDS
            wait = f"{seconds // 60} minutes" if seconds >= 120 else f"{seconds} seconds"
            raise ValidationError(f"Too many failed logins. Try again in {wait}.", code="login_throttled")
        return super().clean()
