"""Rate limits per token and per user, counted in the shared cache (429 with Retry-After).

A user's tokens share the user's budget, and each token also has its own, so one runaway
integration cannot starve the user's other tokens or their browser session.
"""

from __future__ import annotations

from typing import Any

from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle

from requests_app.models import ApiToken


class TokenRateThrottle(SimpleRateThrottle):
    scope = "token"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if not isinstance(request.auth, ApiToken):
            return None  # not a token call: only the user's limit applies
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}


class UserRateThrottle(SimpleRateThrottle):
    scope = "user"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if not request.user or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


__all__ = ["AnonRateThrottle", "TokenRateThrottle", "UserRateThrottle"]
