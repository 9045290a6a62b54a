"""Throttling of every password check, the limit on password reset e-mails, and the client's address.

Every check of a password goes through the same counters: the login page, the API token endpoint
and the admin's login (through ThrottledModelBackend), and the password change pages, the
portal's and the admin's (through ThrottledPasswordChangeForm, since Django's PasswordChangeForm
calls `user.check_password` itself). After LOGIN_FAILURE_LIMIT failures for one user name, or
LOGIN_FAILURE_LIMIT_PER_ADDRESS from one address, within LOGIN_LOCKOUT_SECONDS, further attempts
are refused without checking the password, until the window passes.

Password reset e-mails are limited per e-mail address and per client address
(PASSWORD_RESET_LIMIT_PER_EMAIL, PASSWORD_RESET_LIMIT_PER_ADDRESS per PASSWORD_RESET_WINDOW_SECONDS),
counted whether or not the address belongs to anyone, so the answers never tell.

All counters live in the shared cache. `client_address` is the one definition of "the caller's
address", used here and by the API's rate limits (requests_app/api/throttling.py).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminPasswordChangeForm
from django.contrib.auth import forms as auth_forms
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
from django.contrib.auth.views import PasswordChangeView, PasswordResetView
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.urls import reverse
from django.utils.crypto import salted_hmac
from django.views.decorators.debug import sensitive_variables
from rest_framework.request import Request

# A Django request, DRF's wrapper of one (both carry META), or none (authenticate() without one).
AnyRequest = HttpRequest | Request | None


def client_address(request: AnyRequest) -> str:
    """The caller's address: REMOTE_ADDR, or behind a proxy (DJANGO_BEHIND_PROXY) the address the
    TRUSTED_PROXY_COUNT trusted proxies report in X-Forwarded-For, counted from the right.

    Each proxy appends the address it received the request from, so the entry TRUSTED_PROXY_COUNT
    from the right was written by the outermost trusted proxy; entries further left came from the
    client and are ignored. This mirrors DRF's reading of NUM_PROXIES (set to match in settings).
    """
    meta = getattr(request, "META", None) or {}
    remote = meta.get("REMOTE_ADDR", "") or "unknown"
    if not settings.BEHIND_PROXY:
        return remote
    forwarded = [entry.strip() for entry in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if entry.strip()]
    if not forwarded:
        return remote
    return forwarded[-min(settings.TRUSTED_PROXY_COUNT, len(forwarded))]


# --- counters in the shared cache ------------------------------------------------------------
def _over(limits: dict[str, int]) -> bool:
    counts = cache.get_many(list(limits))
    return any(counts.get(key, 0) >= limit for key, limit in limits.items())


def _count(keys: Iterable[str], seconds: int) -> None:
    for key in keys:
        cache.add(key, 0, timeout=seconds)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=seconds)
        # The file cache rewrites a key on incr with its default timeout: keep the window ours.
        cache.touch(key, seconds)


# --- failed password checks --------------------------------------------------------------------
def _keys(username: str, request: AnyRequest) -> dict[str, int]:
    return {
        f"login-failures:user:{(username or '').strip().lower()}": settings.LOGIN_FAILURE_LIMIT,
        f"login-failures:address:{client_address(request)}": settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS,
    }


def locked(username: str, request: AnyRequest) -> bool:
    return _over(_keys(username, request))


def record_failure(username: str, request: AnyRequest) -> None:
    _count(_keys(username, request), settings.LOGIN_LOCKOUT_SECONDS)


def record_success(username: str, request: AnyRequest) -> None:
    cache.delete(next(iter(_keys(username, request))))  # the user's count; the address's stays


def _in(seconds: int) -> str:
    return f"{seconds // 60} minutes" if seconds >= 120 else f"{seconds} seconds"


def lockout_message() -> str:
    return f"Too many failed logins. Try again in {_in(settings.LOGIN_LOCKOUT_SECONDS)}."


class ThrottledModelBackend(ModelBackend):
    def authenticate(
        self, request: AnyRequest, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> User | None:
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
            raise ValidationError(lockout_message(), code="login_throttled")
        return super().clean()


# --- password change: the old password is a password check too --------------------------------
class ThrottledPasswordChangeForm(auth_forms.PasswordChangeForm):
    """Django's password change form, its old-password check counted with the logins'.

    Without this a signed-in session (a borrowed laptop, a stolen cookie) could guess the
    password at the change page as often as it liked, and learn it for the login page.
    """

    def __init__(self, user: User, *args: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
        super().__init__(user, *args, **kwargs)
        self.request = request

    @sensitive_variables("old_password")
    def clean_old_password(self) -> str:
        username = self.user.get_username()
        if locked(username, self.request):
            raise ValidationError(lockout_message(), code="login_throttled")
        try:
            old_password: str = super().clean_old_password()
        except ValidationError:
            record_failure(username, self.request)
            raise
        record_success(username, self.request)
        return old_password


class ThrottledAdminPasswordChangeForm(ThrottledPasswordChangeForm, AdminPasswordChangeForm):
    """The admin's variant of the form (django.contrib.admin.forms), throttled the same way."""


class ThrottledPasswordChangeView(PasswordChangeView):
    form_class = ThrottledPasswordChangeForm

    def get_form_kwargs(self) -> dict[str, Any]:
        return {**super().get_form_kwargs(), "request": self.request}


def admin_password_change(site: AdminSite) -> Callable[..., HttpResponseBase]:
    """`site.password_change` with the throttled form, wrapped like the admin's own views.

    Django 5.2's AdminSite.password_change passes `form_class=AdminPasswordChangeForm` to
    PasswordChangeView itself (AdminSite has no setting for it), so the URL conf serves the admin's
    `password_change` route with this copy of that method instead.
    """

    def password_change(request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponseBase:
        defaults: dict[str, Any] = {
            "form_class": ThrottledAdminPasswordChangeForm,
            "success_url": reverse("admin:password_change_done", current_app=site.name),
            "extra_context": {**site.each_context(request), **(extra_context or {})},
        }
        if site.password_change_template is not None:
            defaults["template_name"] = site.password_change_template
        request.current_app = site.name
        return ThrottledPasswordChangeView.as_view(**defaults)(request)

    return site.admin_view(password_change, cacheable=True)


# --- password reset e-mails --------------------------------------------------------------------
def password_reset_allowed(email: str, request: AnyRequest) -> bool:
    """Whether to send reset e-mails for `email` now; counts the request when it is allowed.

    Counted before anyone is looked up, so an address that belongs to no one uses its budget in
    exactly the same way as one that does. The e-mail address is normalised as Django compares
    addresses (NFKC, case-folded) and keyed with a MAC, so the cache holds no e-mail addresses.
    """
    normalised = unicodedata.normalize("NFKC", email.strip()).casefold()
    digest = salted_hmac("requests_app.logins.password_reset", normalised, algorithm="sha256").hexdigest()
    limits = {
        f"password-reset:email:{digest}": settings.PASSWORD_RESET_LIMIT_PER_EMAIL,
        f"password-reset:address:{client_address(request)}": settings.PASSWORD_RESET_LIMIT_PER_ADDRESS,
    }
    if _over(limits):
        return False
    _count(limits, settings.PASSWORD_RESET_WINDOW_SECONDS)
    return True


class RateLimitedPasswordResetView(PasswordResetView):
    """Django's password reset, refusing (429, the same words for every address) past the limits."""

    def form_valid(self, form: auth_forms.PasswordResetForm) -> HttpResponse:
        if not password_reset_allowed(form.cleaned_data["email"], self.request):
            # On the e-mail field: the admin's template, which this page uses, shows only its errors.
            form.add_error(
                "email",
                ValidationError(
                    "Too many password reset requests for this e-mail address or from your network. "
                    f"Try again in {_in(settings.PASSWORD_RESET_WINDOW_SECONDS)}.",
                    code="password_reset_throttled",
                ),
            )
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().form_valid(form)
