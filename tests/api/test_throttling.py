"""Rate limits per token and per user: a token over its rate gets 429 (another token of the user does
not), a user's tokens share the user's rate, and calls a token's own limit refuses do not use up its
user's budget."""

from __future__ import annotations

from typing import Any

import pytest

from requests_app.api import throttling
from tests.fixtures.clients import codes, errors_of

URL = "/api/v1/peering-requests/"


# === rate limits =======================================================================================
def limit(monkeypatch: pytest.MonkeyPatch, token: str, user: str) -> None:
    """DRF reads the rates when the throttle classes are defined: set them on the classes."""
    monkeypatch.setattr(throttling.TokenRateThrottle, "rate", token, raising=False)
    monkeypatch.setattr(throttling.UserRateThrottle, "rate", user, raising=False)


@pytest.mark.django_db
def test_a_token_over_its_rate_gets_429_and_another_token_of_the_user_does_not(
    plain_api: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limit(monkeypatch, token="3/min", user="100/min")
    busy, quiet = plain_api("fiona"), plain_api("fiona")
    for _ in range(3):
        assert busy.get(URL).status_code == 200
    limited = busy.get(URL)
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) > 0
    [error] = errors_of(limited, "client_error")
    assert error["code"] == "throttled"
    assert quiet.get(URL).status_code == 200  # the limit is per token


@pytest.mark.django_db
def test_a_users_tokens_share_the_users_rate(plain_api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    limit(monkeypatch, token="100/min", user="3/min")
    one, two = plain_api("fiona"), plain_api("fiona")
    assert [one.get(URL).status_code, one.get(URL).status_code, two.get(URL).status_code] == [200, 200, 200]
    limited = two.get(URL)
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert codes(limited) == {"throttled"}
    assert plain_api("erin").get(URL).status_code == 200  # another user has their own budget


@pytest.mark.django_db
def test_a_runaway_token_does_not_use_up_its_users_budget(plain_api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """throttling.py: "one runaway integration cannot starve the user's other tokens". Calls the
    token's own limit refuses must not count against the user's budget."""
    limit(monkeypatch, token="3/min", user="6/min")
    runaway, other = plain_api("fiona"), plain_api("fiona")
    assert [runaway.get(URL).status_code for _ in range(10)] == [200] * 3 + [429] * 7
    # The user made 3 calls of their 6: the other token still has 3.
    assert [other.get(URL).status_code for _ in range(3)] == [200, 200, 200], "refused calls used up the user's budget"
    assert other.get(URL).status_code == 429


@pytest.mark.django_db
def test_verifying_the_audit_chain_is_limited_per_user_on_the_shipped_default(plain_api: Any, settings: Any) -> None:
    """Each verification reads the whole chain: API_THROTTLE_AUDIT_VERIFY, 6/min as shipped."""
    assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["audit_verify"] == "6/min"
    fiona, nina = plain_api("fiona"), plain_api("nina")
    for _ in range(6):
        assert fiona.get("/api/v1/audit-events/verify/").status_code == 200
    refused = fiona.get("/api/v1/audit-events/verify/")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert codes(refused) == {"throttled"}
    assert fiona.get("/api/v1/audit-events/").status_code == 200  # the rest of the API is not held back
    assert nina.get("/api/v1/audit-events/verify/").status_code == 200  # nor another user
