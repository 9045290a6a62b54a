"""Fixtures of the audit tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from requests_app import audit
from requests_app.models import AuditEvent


@pytest.fixture
def seed_events() -> Callable[..., list[AuditEvent]]:
    """`seed_events(count=6)`: events without AWS, enough chain to tamper with. Non-ASCII text checks
    the encodings agree."""

    def seed(count: int = 6) -> list[AuditEvent]:
        return [
            audit.record(
                action=f"security.test{i}",
                actor_label="security-test",
                message=f"event {i}: Zürich → ✓ 日本",
                data={"n": i, "nested": {"list": [1, 2.5, None, True], "text": 'é"\\'}, "empty": {}},
            )
            for i in range(count)
        ]

    return seed
