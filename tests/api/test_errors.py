"""The API's errors are JSON in one shape, never HTML: unknown routes, missing objects, wrong methods."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client

from tests.fixtures.clients import codes
from tests.fixtures.webhooks import HOOKS

URL = "/api/v1/peering-requests/"
TOKENS = "/api/v1/tokens/"
LOGIN = "/api/v1/auth/token/"


# === errors as JSON ====================================================================================
@pytest.mark.django_db
@pytest.mark.parametrize("user", [None, "fiona"])
def test_an_unknown_api_route_answers_json_404(plain_api: Any, user: str | None) -> None:
    for path in ("/api/v1/no-such-thing/", "/api/v1/peering-requests/not-a-uuid/extra/", "/api/v1/webhooks/x/y/z/"):
        response = plain_api(user).get(path)
        assert response.status_code == 404, path
        assert b"<html" not in response.content.lower()
        assert codes(response) == {"not_found"}


@pytest.mark.django_db
def test_a_missing_object_answers_json_404(plain_api: Any) -> None:
    for path in (f"{URL}{uuid.uuid4()}/", f"{HOOKS}999/", f"{TOKENS}999/"):
        response = plain_api("admin").get(path)
        assert response.status_code == 404, path
        assert codes(response) == {"not_found"}


@pytest.mark.django_db
def test_a_wrong_method_answers_json_405(plain_api: Any) -> None:
    answers = [
        plain_api("fiona").delete(URL),
        plain_api("fiona").put(f"{URL}{uuid.uuid4()}/", {}, format="json"),
        plain_api(None).get(LOGIN),
        plain_api("admin").delete(f"{HOOKS}1/"),
        plain_api("fiona").get(f"{TOKENS}1/revoke/"),
    ]
    for response in answers:
        assert response.status_code == 405, (response.status_code, response.content[:200])
        assert b"<html" not in response.content.lower()
        assert codes(response) == {"method_not_allowed"}
        assert "Allow" in response


@pytest.mark.django_db
def test_unknown_api_path_answers_json_not_html(client: Client) -> None:
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["errors"][0]["code"] == "not_found"
