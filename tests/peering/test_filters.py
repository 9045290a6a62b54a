"""The requests page and the API list filter with one filterset (peering/filters.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from requests_app.domain.status import Status
from tests.factories import DepartmentFactory, PeeringRequestFactory, UserFactory, VpcFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> dict[str, Any]:
    finance = DepartmentFactory(slug="finance")
    fiona = UserFactory(username="fiona")
    finance.members.add(fiona)
    app = VpcFactory(account__department=finance, name="billing-app", cidrs=["10.1.0.0/16"])
    other = VpcFactory(account__department=finance, name="ledger", cidrs=["10.2.0.0/16"])
    hub = VpcFactory(name="services-hub", is_services_vpc=True, cidrs=["10.0.0.0/16"])
    rows = {
        "inc": PeeringRequestFactory(requester_vpc=app, accepter_vpc=hub, requested_by=fiona, external_ref="INC0042"),
        "pcx": PeeringRequestFactory(
            requester_vpc=other,
            accepter_vpc=hub,
            requested_by=fiona,
            status=Status.ACTIVE,
            aws_peering_connection_id="pcx-0abc0000000000042",
        ),
    }
    return {"fiona": fiona, **rows}


def _api(user: Any, query: str) -> set[str]:
    client = APIClient()
    client.force_authenticate(user)
    answer = client.get(f"/api/v1/peering-requests/?{query}")
    assert answer.status_code == 200, answer.content
    return {row["id"] for row in answer.json()["results"]}


def _page(user: Any, query: str) -> set[str]:
    client = Client()
    client.force_login(user)
    html = client.get(f"/?{query}").content.decode()
    return set(re.findall(r'href="/requests/([0-9a-f-]{36})/"', html))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=inc00", {"inc"}),  # the ticket, any case
        ("q=LEDGER", {"pcx"}),  # either VPC's name
        ("q=hub", {"inc", "pcx"}),
        ("q=0042", {"inc", "pcx"}),  # the ticket and the connection id
        ("status=active", {"pcx"}),
        ("status=active&q=billing", set()),
        ("external_ref=INC0042", {"inc"}),
    ],
)
def test_the_page_and_the_api_find_the_same_requests(world: dict[str, Any], query: str, expected: set[str]) -> None:
    wanted = {str(world[key].pk) for key in expected}
    assert _api(world["fiona"], query) == wanted
    assert _page(world["fiona"], query) == wanted


def test_a_search_too_long_is_refused_by_both(world: dict[str, Any]) -> None:
    client = APIClient()
    client.force_authenticate(world["fiona"])
    assert client.get(f"/api/v1/peering-requests/?q={'x' * 201}").status_code == 400
    page = Client()
    page.force_login(world["fiona"])
    html = page.get(f"/?q={'x' * 201}").content.decode()
    assert "Search for at most 200 characters." in html
    assert _page(world["fiona"], f"q={'x' * 201}") == set()


def test_the_pages_any_status_is_no_filter(world: dict[str, Any]) -> None:
    assert _page(world["fiona"], "status=&q=") == {str(world["inc"].pk), str(world["pcx"].pk)}
