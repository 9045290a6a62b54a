"""The form fuzz's world, built once per test (see tests/web/form_fuzz/world.py)."""

from __future__ import annotations

import socket

import pytest

from requests_app.aws import gateway as gateway_module
from tests.web.form_fuzz.world import StubGateway, World, build_world, fake_getaddrinfo


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    """No AWS (a stub that refuses every call), no DNS (a table), and the world's rows."""
    monkeypatch.setattr(gateway_module, "_default", StubGateway())
    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    return build_world()
