"""The admin's own list filters: a moment the database cannot be asked about is a wrong
parameter (Django's `?e=1`), never a server error.

Which moments those are depends on the database: Django hands SQLite a naive UTC time, and a
moment before year 1 or after 9999 once in UTC has none; PostgreSQL takes the aware time itself
and answers (its timestamps run from 4713 BC), so there the same list is simply shown."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

LISTS = ("peeringrequest", "auditevent", "awsaccount", "notification", "webhook", "webhookdelivery", "apitoken")


@pytest.mark.parametrize("model", LISTS)
@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00%2B01:00", "9999-12-31T23:59:59-01:00"])
def test_an_out_of_range_date_in_an_admin_list_is_a_wrong_parameter(model: str, moment: str) -> None:
    page = Client()
    page.force_login(UserFactory(username="root", is_superuser=True, is_staff=True))
    answer = page.get(f"/admin/requests_app/{model}/?created_at__gte={moment}")
    if connection.vendor == "sqlite":
        assert answer.status_code == 302 and answer["Location"].endswith("?e=1"), answer.status_code
    else:
        assert answer.status_code == 200, answer.status_code
    assert page.get(f"/admin/requests_app/{model}/?created_at__gte=2000-01-01T00:00:00%2B01:00").status_code == 200
