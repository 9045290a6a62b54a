"""Every password check is throttled, the password reset form is rate-limited, and the anonymous
API limit and the login lockout agree on who the client is (issue 13: items 9 and 15).

(Password guessing at the login page and the token endpoint: tests/core/test_login_lockout.py;
/metrics is not public: tests/web/test_metrics.py; the token endpoint's rotation and cap:
tests/integrations/test_tokens.py.)

Everything goes through the real entry points: the pages with their CSRF tokens
(`Client(enforce_csrf_checks=True)`, the token taken from the form) and the API with APIClient.
No AWS sandbox: users are rows made with the ORM. Rate-limit counters live in the cache, which
an autouse fixture (tests/fixtures/settings.py) clears before every test.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.base_user import AbstractBaseUser
from django.core import mail
from django.core.cache import cache
from django.test import Client, RequestFactory
from django.urls import reverse
from rest_framework.test import APIClient

from requests_app.api import throttling
from requests_app.core import logins

PASSWORD = "peering-demo"
NEW_PASSWORD = "a-brand-new-passphrase-17"
LOGIN = "/accounts/login/"
CHANGE = "/accounts/password_change/"
ADMIN_CHANGE = "/admin/password_change/"
RESET = "/accounts/password_reset/"
TOKEN = "/api/v1/auth/token/"
LOCKED = b"Too many failed logins"
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture
def people(django_user_model: Any) -> dict[str, AbstractBaseUser]:
    return {
        "fiona": django_user_model.objects.create_user("fiona", "fiona@example.com", PASSWORD),
        "harry": django_user_model.objects.create_user("harry", "harry@example.com", PASSWORD),
        "admin": django_user_model.objects.create_superuser("admin", "admin@example.com", PASSWORD),
    }


def csrf_token(client: Client, page: str) -> str:
    """The form's CSRF token, as a browser gets it: from the page."""
    response = client.get(page)
    assert response.status_code == 200, (page, response.status_code)
    found = CSRF_FIELD.search(response.content.decode())
    assert found, f"{page} has no CSRF field"
    return found.group(1)


def signed_in(user: AbstractBaseUser) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def change_password(client: Client, page: str, old: str, new: str = NEW_PASSWORD) -> Any:
    token = csrf_token(client, page)
    return client.post(
        page, {"csrfmiddlewaretoken": token, "old_password": old, "new_password1": new, "new_password2": new}
    )


def page_login(username: str, password: str, address: str = "127.0.0.1") -> tuple[Client, Any]:
    client = Client(enforce_csrf_checks=True)
    token = csrf_token(client, LOGIN)
    response = client.post(
        LOGIN, {"csrfmiddlewaretoken": token, "username": username, "password": password}, REMOTE_ADDR=address
    )
    return client, response


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def password_is(user: AbstractBaseUser, password: str) -> bool:
    user.refresh_from_db()
    return user.check_password(password)


def error_codes(response: Any) -> list[str]:
    return [e["code"] for e in response.json()["errors"]]


# === item 9: the password change pages are password checks too =====================================
@pytest.mark.django_db
def test_wrong_old_passwords_on_the_change_page_lock_the_login_page(people: dict[str, Any], settings: Any) -> None:
    fiona = people["fiona"]
    client = signed_in(fiona)
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        wrong = change_password(client, CHANGE, "not-her-password")
        assert wrong.status_code == 200 and LOCKED not in wrong.content

    right = change_password(client, CHANGE, PASSWORD)
    assert right.status_code == 200, "the change went through while the user was locked out"
    assert LOCKED in right.content, "the change page does not say why it refuses the right old password"
    assert password_is(fiona, PASSWORD)

    elsewhere, response = page_login("fiona", PASSWORD, "10.1.1.1")
    assert not logged_in(elsewhere) and LOCKED in response.content, "guesses at the change page did not count"
    assert APIClient().post(TOKEN, {"username": "fiona", "password": PASSWORD}, format="json").status_code == 429


@pytest.mark.django_db
def test_after_a_lockout_at_the_login_page_the_change_page_refuses_the_right_old_password(
    people: dict[str, Any], settings: Any
) -> None:
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        page_login("fiona", "guess", "10.2.2.2")
    refused = change_password(signed_in(people["fiona"]), CHANGE, PASSWORD)
    assert refused.status_code == 200 and LOCKED in refused.content
    assert password_is(people["fiona"], PASSWORD), "the password was changed while the user was locked out"


@pytest.mark.django_db
def test_the_admins_password_change_page_is_throttled_the_same_way(people: dict[str, Any], settings: Any) -> None:
    assert reverse("admin:password_change") == ADMIN_CHANGE
    admin = people["admin"]
    client = signed_in(admin)
    for _ in range(settings.LOGIN_FAILURE_LIMIT):
        wrong = change_password(client, ADMIN_CHANGE, "not-the-password")
        assert wrong.status_code == 200 and LOCKED not in wrong.content

    right = change_password(client, ADMIN_CHANGE, PASSWORD)
    assert right.status_code == 200 and LOCKED in right.content, "the admin's change page ignores the lockout"
    assert password_is(admin, PASSWORD)
    elsewhere, response = page_login("admin", PASSWORD, "10.3.3.3")
    assert not logged_in(elsewhere) and LOCKED in response.content

    cache.clear()  # the lockout window has passed: the admin's page changes the password as before
    done = change_password(client, ADMIN_CHANGE, PASSWORD)
    assert done.status_code == 302 and done["Location"] == reverse("admin:password_change_done")
    assert password_is(admin, NEW_PASSWORD)


@pytest.mark.django_db
def test_a_right_old_password_changes_it_and_clears_the_users_failures_like_a_login(
    people: dict[str, Any], settings: Any
) -> None:
    fiona = people["fiona"]
    for _ in range(settings.LOGIN_FAILURE_LIMIT - 1):
        page_login("fiona", "guess", "10.4.4.4")

    client = signed_in(fiona)
    done = change_password(client, CHANGE, PASSWORD)
    assert done.status_code == 302 and done["Location"] == reverse("password_change_done")
    assert password_is(fiona, NEW_PASSWORD)
    assert logged_in(client)  # the session that changed it stays signed in

    # The right password at the change page counts as a success: one more slip does not lock.
    page_login("fiona", "guess", "10.4.4.4")
    fresh, response = page_login("fiona", NEW_PASSWORD, "10.4.4.4")
    assert response.status_code == 302 and logged_in(fresh)


# === item 9: password reset e-mails are limited =====================================================
def request_reset(client: Client, token: str, email: str, address: str) -> Any:
    return client.post(RESET, {"csrfmiddlewaretoken": token, "email": email}, REMOTE_ADDR=address)


def page_text(response: Any, email: str) -> str:
    """The answer, without what differs for reasons other than the address (its own echo, the CSRF token)."""
    return CSRF_FIELD.sub("", response.content.decode()).replace(email, "<email>")


@pytest.mark.django_db
def test_password_reset_is_limited_per_email_address_and_never_tells_whether_it_exists(
    people: dict[str, Any], settings: Any
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    limit = settings.PASSWORD_RESET_LIMIT_PER_EMAIL
    client = Client(enforce_csrf_checks=True)
    token = csrf_token(client, RESET)
    answers: dict[str, list[tuple[int, str]]] = {}
    for email in ("fiona@example.com", "nobody@example.com"):
        mail.outbox.clear()
        # Each from its own address, so only the e-mail address's limit can refuse.
        replies = [request_reset(client, token, email, f"10.5.{n}.1") for n in range(limit + 1)]
        assert [r.status_code for r in replies] == [302] * limit + [429], email
        assert all(r["Location"] == reverse("password_reset_done") for r in replies[:limit])
        assert b"Too many password reset requests" in replies[-1].content
        answers[email] = [(r.status_code, page_text(r, email)) for r in replies]
        sent = len(mail.outbox)
        # Another spelling of the same address is the same budget (Django matches it case-insensitively).
        assert request_reset(client, token, email.upper(), "10.5.99.1").status_code == 429
        assert len(mail.outbox) == sent
        if email.startswith("fiona"):
            assert sent == limit and {m.to[0] for m in mail.outbox} == {"fiona@example.com"}
        else:
            assert sent == 0
    assert answers["fiona@example.com"] == answers["nobody@example.com"], "the answers tell which address exists"


@pytest.mark.django_db
def test_password_reset_is_limited_per_client_address(people: dict[str, Any], settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    limit = settings.PASSWORD_RESET_LIMIT_PER_ADDRESS
    client = Client(enforce_csrf_checks=True)
    token = csrf_token(client, RESET)
    # One address asking for many e-mail addresses (harry's among them) until its budget is spent.
    emails = ["harry@example.com"] + [f"someone-{n}@example.com" for n in range(limit - 1)]
    assert [request_reset(client, token, e, "10.6.6.6").status_code for e in emails] == [302] * limit
    assert len(mail.outbox) == 1

    for email in ("fiona@example.com", "nobody@example.com"):
        refused = request_reset(client, token, email, "10.6.6.6")
        assert refused.status_code == 429 and b"Too many password reset requests" in refused.content
    assert len(mail.outbox) == 1, "a refused request still sent an e-mail"
    # Another address is not affected.
    assert request_reset(client, token, "fiona@example.com", "10.7.7.7").status_code == 302
    assert [m.to for m in mail.outbox] == [["harry@example.com"], ["fiona@example.com"]]


# === item 15: who the client is ======================================================================
@pytest.mark.django_db
def test_claimed_forwarded_addresses_do_not_escape_the_token_endpoints_anonymous_limit(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not settings.BEHIND_PROXY
    # The default rate, pinned: DRF reads rates when the classes are defined, from API_THROTTLE_ANON.
    monkeypatch.setattr(throttling.AnonRateThrottle, "rate", "60/min", raising=False)
    limit = 60
    # An empty body is refused before any password is checked: only the rate limit is at play.
    statuses = [
        APIClient().post(TOKEN, {}, format="json", REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}")
        for n in range(75)
    ]
    assert [r.status_code for r in statuses] == [400] * limit + [429] * (75 - limit)
    assert error_codes(statuses[-1]) == ["throttled"] and int(statuses[-1]["Retry-After"]) > 0


def through_proxy(client_address: str, body: dict[str, str] | None = None, spoofed: str = "") -> Any:
    """A call that came through one proxy (10.0.0.2), which appended the address it saw."""
    forwarded = f"{spoofed}, {client_address}" if spoofed else client_address
    return APIClient().post(TOKEN, body or {}, format="json", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=forwarded)


@pytest.mark.django_db
def test_behind_a_trusted_proxy_the_forwarded_client_address_is_what_is_limited(
    people: dict[str, Any], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.BEHIND_PROXY = True
    settings.TRUSTED_PROXY_COUNT = 1
    # DRF reads the rates when the throttle classes are defined: set it on the class.
    monkeypatch.setattr(throttling.AnonRateThrottle, "rate", "5/min", raising=False)

    assert [through_proxy("203.0.113.10").status_code for _ in range(5)] == [400] * 5
    assert through_proxy("203.0.113.10").status_code == 429
    # A second client behind the same proxy has its own budget ...
    assert through_proxy("203.0.113.11").status_code == 400
    # ... and the first one gains nothing by writing its own X-Forwarded-For entries to the left.
    for n in range(5):
        assert through_proxy("203.0.113.10", spoofed=f"192.0.2.{n}").status_code == 429

    # The login lockout counts the same client: three wrong passwords from 203.0.113.20 lock that
    # address, not the proxy's, so harry behind the same proxy still gets in.
    settings.LOGIN_FAILURE_LIMIT_PER_ADDRESS = 3
    monkeypatch.setattr(throttling.AnonRateThrottle, "rate", "100/min", raising=False)
    for name in ("alice", "bob", "carol"):
        assert through_proxy("203.0.113.20", {"username": name, "password": "guess"}).status_code == 400
    locked = through_proxy("203.0.113.20", {"username": "harry", "password": PASSWORD})
    assert locked.status_code == 429 and error_codes(locked) == ["login_throttled"]
    assert through_proxy("203.0.113.21", {"username": "harry", "password": PASSWORD}).status_code == 200


@pytest.mark.parametrize(
    ("behind_proxy", "proxies", "forwarded", "expected"),
    [
        (False, 1, "203.0.113.5", "10.0.0.2"),  # not behind a proxy: the header is anyone's to write
        (True, 1, "", "10.0.0.2"),  # no header: the peer itself
        (True, 1, "192.0.2.1, 203.0.113.5", "203.0.113.5"),
        (True, 2, "192.0.2.1, 203.0.113.5, 10.0.0.3", "203.0.113.5"),  # two proxies: second from the right
        (True, 3, "203.0.113.5, 10.0.0.3", "203.0.113.5"),  # fewer entries than proxies: the left-most
    ],
)
def test_the_client_address(behind_proxy: bool, proxies: int, forwarded: str, expected: str, settings: Any) -> None:
    settings.BEHIND_PROXY = behind_proxy
    settings.TRUSTED_PROXY_COUNT = proxies
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    assert logins.client_address(RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", **headers)) == expected
