"""Refusals: a machine-readable code, an HTTP status and a sentence for people."""

from __future__ import annotations

from requests_app.domain.checks import CheckDict


class PortalError(Exception):
    """A refusal with a machine-readable code, an HTTP status and a message for people."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        status: int = 400,
        attr: str | None = None,
        checks: list[CheckDict] | None = None,
    ) -> None:
        self.code = code
        self.detail = detail
        self.status = status
        self.attr = attr
        self.checks = checks
        super().__init__(detail)
