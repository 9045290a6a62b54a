"""Fixtures of the page tests: the demo world with one request fiona filed, pending approval."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.world import DemoWorld
from tests.web.pages import PageWorld, with_fionas_request


@pytest.fixture
def world(demo_rows: DemoWorld, api: Any) -> PageWorld:
    """The demo world from rows, with fiona's request (finance-app → services-use1) pending approval."""
    return with_fionas_request(demo_rows, api)


@pytest.fixture
def world_in_sandbox(demo_world: DemoWorld, api: Any) -> PageWorld:
    """The same, on the demo world synced from the sandbox: for the pages that sync an account."""
    return with_fionas_request(demo_world, api)
