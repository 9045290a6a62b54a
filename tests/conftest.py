"""The suite's fixtures come from tests/fixtures/, one module per job; this file only registers them
and holds the collection and summary hooks."""

from __future__ import annotations

from typing import Any

import pytest

pytest_plugins = [
    "tests.fixtures.settings",
    "tests.fixtures.sandbox",
    "tests.fixtures.processes",
    "tests.fixtures.world",
    "tests.fixtures.outbox",
    "tests.fixtures.clients",
    "tests.fixtures.webhooks",
]

# Helper modules with asserts of their own: rewritten, so a failing one reports its values as a test's does.
pytest.register_assert_rewrite(
    "tests.notifications.notes",
    "tests.peering.checks_table.world",
    "tests.web.pages",
    "tests.web.form_fuzz.strategies",
    "tests.web.form_fuzz.world",
)


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """Tests of PostgreSQL's own failures cannot run on SQLite: deselect them there, loudly."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    chosen = [i for i in items if i.get_closest_marker("postgres") is None]
    dropped = [i for i in items if i.get_closest_marker("postgres") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = chosen
        config._postgres_only_deselected = len(dropped)


def pytest_terminal_summary(terminalreporter: Any, config: Any) -> None:
    count = getattr(config, "_postgres_only_deselected", 0)
    if count:
        terminalreporter.write_line(
            f"{count} PostgreSQL-only test(s) deselected: this run uses SQLite; set DATABASE_URL to run them"
        )
