"""A token cannot outlive itself by minting another, and a new password ends its owner's tokens,
whichever way the password is set."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from requests_app.core.errors import PortalError
from requests_app.integrations import services as integration_services
from requests_app.integrations import tokens
from requests_app.models import ApiToken, AuditEvent
from tests.factories import UserFactory
from tests.fixtures.clients import client_with

pytestmark = pytest.mark.django_db
PASSWORD = "an-old-secret-1"


@pytest.fixture
def fiona() -> User:
    user = UserFactory(username="fiona")
    user.set_password(PASSWORD)
    user.save()
    return user


def _login_token(username: str = "fiona") -> tuple[str, str]:
    answer = APIClient().post("/api/v1/auth/token/", {"username": username, "password": PASSWORD}, format="json")
    assert answer.status_code == 200, answer.json()
    return answer.json()["token"], answer.json()["expires_at"]


def test_a_token_mints_only_tokens_that_expire_no_later_than_itself(fiona: User) -> None:
    key, expires_at = _login_token()
    assert expires_at is not None  # API_TOKEN_DEFAULT_TTL_DAYS: 90 days on the shipped defaults
    caller = client_with(key)
    forever = caller.post("/api/v1/tokens/", {"name": "forever"}, format="json")
    assert forever.status_code == 201, forever.json()
    assert forever.json()["expires_at"] == expires_at  # no expiry asked: the caller's own
    for later in ("9999-12-31T23:59:59", (timezone.now() + timedelta(days=91)).isoformat()):
        refused = caller.post("/api/v1/tokens/", {"name": "far", "expires_at": later}, format="json")
        assert refused.status_code == 400, refused.json()
        assert refused.json()["errors"][0]["code"] == "invalid_expiry"
    sooner = (timezone.now() + timedelta(days=1)).replace(microsecond=0)
    ok = caller.post("/api/v1/tokens/", {"name": "soon", "expires_at": sooner.isoformat()}, format="json")
    assert ok.status_code == 201 and ok.json()["expires_at"] is not None
    assert not ApiToken.objects.filter(name="far").exists()


def test_signed_in_with_a_password_a_named_token_may_never_expire(fiona: User) -> None:
    session = APIClient()
    session.force_authenticate(fiona)  # signed in (the browser's session), not with a token
    made = session.post("/api/v1/tokens/", {"name": "integration"}, format="json")
    assert made.status_code == 201, made.json()
    assert made.json()["expires_at"] is None


def _live(user: User) -> int:
    return tokens.live(user).count()


def test_changing_the_password_on_the_page_ends_every_token(fiona: User) -> None:
    _login_token()
    tokens.issue(fiona, "ci")
    assert _live(fiona) == 2
    page = Client()
    assert page.login(username="fiona", password=PASSWORD)
    changed = page.post(
        "/accounts/password_change/",
        {"old_password": PASSWORD, "new_password1": "a-new-secret-22", "new_password2": "a-new-secret-22"},
    )
    assert changed.status_code == 302, changed.content
    assert _live(fiona) == 0
    reasons = [e.data.get("reason") for e in AuditEvent.objects.filter(action="token.revoked")]
    assert reasons == ["the owner's password changed"] * 2


def test_the_admin_ends_them_too(fiona: User) -> None:
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    tokens.issue(fiona, "ci")
    page = Client()
    page.force_login(admin)
    changed = page.post(
        f"/admin/auth/user/{fiona.pk}/password/",
        {"password1": "a-new-secret-33", "password2": "a-new-secret-33", "usable_password": "true"},
    )
    assert changed.status_code == 302, changed.content
    assert _live(fiona) == 0


@pytest.mark.django_db(transaction=True)
def test_the_command_ends_them_too_saving_outside_any_transaction(fiona: User) -> None:
    """`changepassword` saves in autocommit: the tokens' row locks need a transaction of their own
    (on PostgreSQL a lock outside one is an error, so this test is worth running there)."""
    tokens.issue(fiona, "ci")
    with mock.patch("getpass.getpass", return_value="a-new-secret-44"):
        call_command("changepassword", "fiona", stdout=StringIO())
    assert _live(fiona) == 0
    assert AuditEvent.objects.filter(action="token.revoked").count() == 1


def test_the_same_password_hashed_again_ends_nothing(fiona: User) -> None:
    tokens.issue(fiona, "ci")
    # What Django does at a login when the hasher's settings changed: the same password, new hash.
    fiona.set_password(PASSWORD)
    fiona.save()
    assert _live(fiona) == 1
    fiona.last_login = timezone.now()
    fiona.save(update_fields=["last_login"])
    assert _live(fiona) == 1
    # A hash set without the password (a raw assignment) cannot be compared: treated as new.
    fiona.password = make_password("another-one-55")
    fiona.save()
    assert _live(fiona) == 0


def test_revoking_with_a_digit_that_is_not_a_number_is_not_found(fiona: User, api: Any) -> None:
    key, _ = _login_token()
    for odd in ("²", "①", "½"):
        answer = client_with(key).post(f"/api/v1/tokens/{odd}/revoke/", format="json")
        assert answer.status_code == 404, (odd, answer.content)


def test_the_re_hash_at_a_login_ends_nothing(fiona: User, settings: Any) -> None:
    """Django upgrades an old hash at the next login (set_password, forget it, save the field):
    the same password, so every integration's token lives on."""
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    fiona.password = make_password(PASSWORD, hasher="md5")  # an older hash: upgraded at the next login
    fiona.save()
    ci, _ = tokens.issue(fiona, "ci")
    _login_token()
    fiona.refresh_from_db()
    assert fiona.password.startswith("pbkdf2_")  # the upgrade happened
    ci.refresh_from_db()
    assert ci.revoked_at is None


def _while_the_password_changes(fiona: User) -> User:
    """fiona as loaded when her call was checked, and her password changed by its owner since:
    the race a token minted in the middle of a password change would win."""
    checked = User.objects.get(pk=fiona.pk)
    owner = User.objects.get(pk=fiona.pk)
    owner.set_password("brand-new-secret-2")
    owner.save()
    return checked


def test_a_token_checked_before_a_password_change_cannot_mint_a_survivor(fiona: User) -> None:
    stolen, _ = tokens.issue(fiona, "stolen")
    checked = _while_the_password_changes(fiona)
    with pytest.raises(PortalError) as refused:
        integration_services.api_token_create(actor=checked, name="survivor", via_token=stolen)
    assert (refused.value.code, refused.value.status) == ("authentication_failed", 401)
    assert not ApiToken.objects.filter(name="survivor").exists()
    assert _live(fiona) == 0


def test_a_session_checked_before_a_password_change_cannot_mint_one_either(fiona: User) -> None:
    checked = _while_the_password_changes(fiona)
    with pytest.raises(PortalError):
        integration_services.api_token_create(actor=checked, name="survivor")
    assert not ApiToken.objects.filter(name="survivor").exists()


def test_a_token_revoked_while_its_call_runs_cannot_mint(fiona: User) -> None:
    asking, _ = tokens.issue(fiona, "asking")
    ApiToken.objects.filter(pk=asking.pk).update(revoked_at=timezone.now())  # revoked elsewhere meanwhile
    with pytest.raises(PortalError):
        integration_services.api_token_create(actor=fiona, name="child", via_token=asking)
    assert not ApiToken.objects.filter(name="child").exists()
