"""Log records carry the peering request they are about, through web, task and AWS call."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar

current_request_id: ContextVar[str] = ContextVar("peering_request_id", default="-")


@contextlib.contextmanager
def bound(request_id: object) -> Iterator[None]:
    """Every log line inside names this peering request."""
    token = current_request_id.set(str(request_id))
    try:
        yield
    finally:
        current_request_id.reset(token)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get()
        return True
