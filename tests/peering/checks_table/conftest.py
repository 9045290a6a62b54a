"""The checks table's world, built once for the module: see tests/peering/checks_table/test_checks_table.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests as http
from django.db import transaction
from django.test import override_settings

from requests_app.management import demo
from requests_app.models import Vpc
from tests.fixtures.world import DEMO_PASSWORD
from tests.peering.checks_table.world import World


@pytest.fixture(scope="module")
def demo_ids(moto_server: str, django_db_setup: Any, django_db_blocker: Any) -> Iterator[dict[str, str]]:
    """The demo world (as `demo_world` in tests/fixtures/world.py builds it), inside a module-long transaction.

    Yields AWS ids by name: VPC names (default VPCs as `default-<account>-<region>`) and route
    table names (`services-use1-main`, `services-private`, …).
    """
    from requests_app.aws import gateway

    http.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    gateway._default = None  # cached clients hold credentials of the previous sandbox
    demo.build_sandbox()
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
                demo.register_portal(DEMO_PASSWORD)
            ids: dict[str, str] = {}
            for vpc in Vpc.objects.select_related("account").prefetch_related("route_tables"):
                ids[vpc.name or f"default-{vpc.account.account_id}-{vpc.region}"] = vpc.vpc_id
                ids.update({rt.name: rt.route_table_id for rt in vpc.route_tables.all() if rt.name})
        except BaseException:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
            raise
    try:
        yield ids
    finally:
        with django_db_blocker.unblock():
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture
def world(demo_ids: dict[str, str], db: Any, settings: Any) -> Iterator[World]:
    w = World(ids=dict(demo_ids), settings=settings)
    yield w
    for cleanup in reversed(w.cleanups):
        cleanup()
