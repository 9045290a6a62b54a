"""A peering made outside the portal is named, on the inventory page and in the checks, without
the ids of VPCs the reader may not learn about (as the portal's own peerings are)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from requests_app.models import RouteTable
from tests.factories import ObservedPeeringFactory, aws_id
from tests.fixtures.world import DEMO_PASSWORD, DemoWorld

pytestmark = pytest.mark.django_db


@pytest.fixture
def hr_to_hub(demo_rows: DemoWorld) -> dict[str, Any]:
    """hr-portal peered with services-euw1 by hand, the hub's main table routing to it."""
    hr, hub = demo_rows.vpcs["hr-portal"], demo_rows.vpcs["services-euw1"]
    pcx = aws_id("pcx")
    ObservedPeeringFactory(
        connection_id=pcx,
        requester_vpc_id=hr.vpc_id,
        accepter_vpc_id=hub.vpc_id,
        requester_account_id=hr.account.account_id,
        accepter_account_id=hub.account.account_id,
        requester_cidrs=["10.2.0.0/16"],
        accepter_cidrs=["10.100.0.0/16"],
    )
    table = RouteTable.objects.get(vpc=hub, is_main=True)
    table.routes = [*table.routes, {"destination": "10.2.0.0/16", "target": pcx, "state": "active"}]
    table.save(update_fields=["routes"])
    return {"hr": hr, "hub": hub, "pcx": pcx}


def test_the_inventory_page_does_not_name_another_departments_vpc(
    demo_rows: DemoWorld, hr_to_hub: dict[str, Any]
) -> None:
    fiona, admin = Client(), Client()
    assert fiona.login(username="fiona", password=DEMO_PASSWORD)
    assert admin.login(username="admin", password=DEMO_PASSWORD)
    page = fiona.get("/inventory/").content.decode()
    assert hr_to_hub["pcx"] in page  # the hub's route is shown, with its connection
    assert hr_to_hub["hr"].vpc_id not in page and "hr-portal" not in page
    assert "a VPC of another department" in page
    assert hr_to_hub["hr"].vpc_id in admin.get("/inventory/").content.decode()  # administrators see all


def test_the_checks_do_not_name_it_either(demo_rows: DemoWorld, hr_to_hub: dict[str, Any], api: Any) -> None:
    answer = api("fiona").post(
        "/api/v1/peering-requests/preflight/",
        {
            "requester_vpc": demo_rows.vpcs["finance-app"].vpc_id,
            "accepter_vpc": hr_to_hub["hub"].vpc_id,
            "accepter_destination_cidrs": ["10.2.0.0/16"],
            "justification": "x",
        },
        format="json",
    )
    assert answer.status_code == 200, answer.json()
    conflict = [c for c in answer.json()["checks"] if c["code"] == "route_conflict"]
    assert conflict, answer.json()["checks"]
    assert hr_to_hub["hr"].vpc_id not in str(answer.json()) and "hr-portal" not in str(answer.json())
