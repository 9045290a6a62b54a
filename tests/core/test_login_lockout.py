"""Password guessing is throttled per user and per address, for the window configured, on the login
page and the token endpoint alike.

(The other password checks, password reset and who the client is: tests/core/test_logins.py.)
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tests.fixtures.world import DEMO_PASSWORD

LOGIN = "/accounts/login/"
TOKEN = "/api/v1/auth/token/"


def _page_login(client: Client, username: str, password: str, address: str = "127.0.0.1") -> Any:
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def _token_login(username: str, password: str, address: str = "127.0.0.1") -> Any:
    return APIClient().post(TOKEN, {"username": username, "password": password}, format="json", REMOTE_ADDR=address)


def _logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.fixture
def people(django_user_model: Any) -> dict[str, Any]:
    return {
        name: django_user_model.objects.create_user(name, f"{name}@example.com", DEMO_PASSWORD)
        for name in ("fiona", "harry")
    }


@pytest.mark.django_db
def test_after_five_wrong_passwords_even_the_right_one_is_refused_for_that_user_only(
    people: dict[str, Any], settings: Any
) -> None:
    assert settings.LOGIN_FAILURE_LIMIT == 5
    client = Client()
    for _ in range(5):
        wrong = _page_login(client, "fiona", "not-her-password")
        assert wrong.status_code == 200 and not _logged_in(client)
        assert b"Too many failed logins" not in wrong.content

    right = _page_login(client, "fiona", DEMO_PASSWORD)
    assert right.status_code == 200 and not _logged_in(client), "the right password was accepted while locked"
    assert b"Too many failed logins" in right.content, (
        "the login is refused but the page does not say why (it shows only its generic wrong-password line)"
    )

    token = _token_login("fiona", DEMO_PASSWORD)
    assert token.status_code == 429, token.json()
    assert [e["code"] for e in token.json()["errors"]] == ["login_throttled"]
    assert "token" not in token.json()
    assert int(token["Retry-After"]) == settings.LOGIN_LOCKOUT_SECONDS > 0
    # From another address, too: the lock is on the user name.
    assert _token_login("fiona", DEMO_PASSWORD, "10.9.9.9").status_code == 429

    # Another user is not affected, from another address or from this one (its limit is 50).
    for address in ("10.9.9.9", "127.0.0.1"):
        other = Client()
        response = _page_login(other, "harry", DEMO_PASSWORD, address)
        assert response.status_code == 302 and _logged_in(other), address
        assert _token_login("harry", DEMO_PASSWORD, address).status_code == 200


@pytest.mark.django_db
def test_wrong_passwords_at_the_api_lock_the_login_page_too(people: dict[str, Any]) -> None:
    for _ in range(5):
        assert _token_login("fiona", "guess").status_code == 400
    assert _token_login("fiona", DEMO_PASSWORD).status_code == 429
    client = Client()
    response = _page_login(client, "fiona", DEMO_PASSWORD)
    assert response.status_code == 200 and not _logged_in(client)


@pytest.mark.django_db
def test_one_address_guessing_many_user_names_is_locked_out(people: dict[str, Any], settings: Any) -> None:
    settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS = 3
    for name in ("alice", "bob", "carol"):
        _page_login(Client(), name, "guess", "10.6.6.6")
    client = Client()
    locked = _page_login(client, "harry", DEMO_PASSWORD, "10.6.6.6")
    assert locked.status_code == 200 and not _logged_in(client)
    assert _token_login("harry", DEMO_PASSWORD, "10.6.6.6").status_code == 429
    other = Client()
    assert _page_login(other, "harry", DEMO_PASSWORD, "10.7.7.7").status_code == 302 and _logged_in(other)


@pytest.mark.django_db
def test_the_lockout_ends_when_its_window_has_passed(people: dict[str, Any], settings: Any) -> None:
    settings.LOGIN_LOCKOUT_SECONDS = 2
    client = Client()
    for _ in range(5):
        _page_login(client, "fiona", "not-her-password")
    _page_login(client, "fiona", DEMO_PASSWORD)
    assert not _logged_in(client)
    assert _token_login("fiona", DEMO_PASSWORD)["Retry-After"] == "2"

    time.sleep(2.5)
    response = _page_login(client, "fiona", DEMO_PASSWORD)
    assert response.status_code == 302 and _logged_in(client), (
        "still locked out after the LOGIN_LOCKOUT_SECONDS window: the failure counter outlives it"
    )
    assert _token_login("fiona", DEMO_PASSWORD).status_code == 200
