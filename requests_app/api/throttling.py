"""Rate limits per token, per user and per address, counted in the shared cache (429 with Retry-After).

A user's tokens share the user's budget, and each token also has its own, so one runaway
integration cannot starve the user's other tokens or their browser session. A call is counted
against both budgets only when both allow it: calls a token's own limit refuses cost its user
nothing. Calls without credentials (the token endpoint) have a budget per client address, as
requests_app.logins.client_address defines it: X-Forwarded-For counts only behind a configured
proxy, so a client cannot get a fresh budget by claiming another address.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework import throttling
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from requests_app.core import logins
from requests_app.models import ApiToken

if TYPE_CHECKING:
    # Only for annotations: rest_framework.views loads this module (DEFAULT_THROTTLE_CLASSES)
    # while it is still defining APIView.
    from rest_framework.views import APIView


class AnonRateThrottle(throttling.AnonRateThrottle):
    """The budget of one client address, for calls without credentials (scope `anon`)."""

    def get_ident(self, request: Request) -> str:
        # DRF's own get_ident trusts any X-Forwarded-For unless NUM_PROXIES is set; the login
        # lockout and this limit must agree on who the caller is.
        return logins.client_address(request)


class TokenRateThrottle(SimpleRateThrottle):
    """The budget of one token (scope `token`)."""

    scope = "token"
    # Set by SimpleRateThrottle.__init__ from the rate (None without one); missing from the stubs.
    num_requests: int | None
    duration: int | None

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if not isinstance(request.auth, ApiToken):
            return None  # not a token call: only the user's limit applies
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}


class UserRateThrottle(SimpleRateThrottle):
    """The budget of one user, across all their tokens and their session (scope `user`)."""

    scope = "user"
    num_requests: int | None  # as TokenRateThrottle's
    duration: int | None

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        if not request.user or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class AuditVerifyRateThrottle(UserRateThrottle):
    """Verifying reads the whole chain (about 75 µs an event), so each user may ask only a few
    times a minute (scope `audit_verify`, API_THROTTLE_AUDIT_VERIFY), on top of the usual budgets."""

    scope = "audit_verify"


class TokenAndUserRateThrottle(BaseThrottle):
    """Both budgets, checked together and charged together."""

    def __init__(self) -> None:
        self.wait_for: float | None = None

    def allow_request(self, request: Request, view: APIView) -> bool:
        charged: list[tuple[SimpleRateThrottle, str, list[float], int]] = []
        for budget in (TokenRateThrottle(), UserRateThrottle()):
            key = budget.get_cache_key(request, view)
            limit, duration = budget.num_requests, budget.duration
            if key is None or limit is None or duration is None:  # no rate configured for this scope
                continue
            now = budget.timer()
            history = [t for t in budget.cache.get(key, []) if t > now - duration]
            if len(history) >= limit:
                self.wait_for = duration - (now - history[-1])
                return False
            charged.append((budget, key, [now, *history], duration))
        for throttle, cache_key, history, duration in charged:
            throttle.cache.set(cache_key, history, duration)
        return True

    def wait(self) -> float | None:
        return self.wait_for


__all__ = ["AnonRateThrottle", "TokenAndUserRateThrottle", "TokenRateThrottle", "UserRateThrottle"]
