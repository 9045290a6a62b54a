"""The production settings: `check --deploy` passes with them, they refuse to start without a real
secret key, session cookies are HttpOnly (and Secure, with HSTS, with DEBUG off), and
session-authenticated API writes need the CSRF token.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from requests_app.integrations import tokens
from tests.fixtures import ROOT
from tests.fixtures.world import DEMO_PASSWORD

LOGIN = "/accounts/login/"


def _manage(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def _client_with_key(user: Any, name: str = "security-test") -> tuple[APIClient, str]:
    _, key = tokens.issue(user, name)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client, key


def _page_login(client: Client, username: str, password: str, address: str = "127.0.0.1") -> Any:
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.fixture
def people(django_user_model: Any) -> dict[str, Any]:
    return {
        name: django_user_model.objects.create_user(name, f"{name}@example.com", DEMO_PASSWORD)
        for name in ("fiona", "harry")
    }


# === 1. check --deploy =============================================================================
def _deploy_env(tmp_path: Path, **overrides: str | None) -> dict[str, str]:
    """A clean production-like environment: none of this machine's portal settings leak in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_", "CELERY_", "CACHE_", "PORTAL_", "LOGIN_"))
    }
    env.update(
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(48)[:50],
        DJANGO_ALLOWED_HOSTS="portal.example.com",
        PORTAL_VAR_DIR=str(tmp_path / "var"),
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def test_check_deploy_passes_with_production_settings(tmp_path: Path) -> None:
    env = _deploy_env(tmp_path)
    assert len(env["DJANGO_SECRET_KEY"]) == 50
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    "secret_key",
    [None, "short-key", "django-insecure-peering-portal-development-only"],
    ids=["missing", "short", "development-key"],
)
def test_debug_off_without_a_real_secret_key_refuses_to_start(tmp_path: Path, secret_key: str | None) -> None:
    result = _manage("check", env=_deploy_env(tmp_path, DJANGO_SECRET_KEY=secret_key))
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr, result.stderr


# === 2. session hardening ==========================================================================
DEBUG_OFF_PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
call_command("migrate", verbosity=0)
get_user_model().objects.create_user("fiona", password="a-long-enough-password")
client = Client(HTTP_HOST="portal.example.com")
plain = client.get("/api/v1/vpcs/")
secure = client.get("/api/v1/vpcs/", secure=True)
login = client.post("/accounts/login/", {"username": "fiona", "password": "a-long-enough-password"}, secure=True)
session, csrf = login.cookies.get(settings.SESSION_COOKIE_NAME), login.cookies.get(settings.CSRF_COOKIE_NAME)
print(json.dumps({
    "debug": settings.DEBUG, "plain": [plain.status_code, plain.get("Location")],
    "hsts": secure.get("Strict-Transport-Security"), "login": login.status_code,
    "session": session and {"secure": bool(session["secure"]), "httponly": bool(session["httponly"]),
                            "samesite": session["samesite"]},
    "csrf_secure": bool(csrf and csrf["secure"]),
}))
"""


@pytest.mark.django_db
def test_the_session_cookie_is_httponly(people: dict[str, Any], settings: Any) -> None:
    client = Client()
    response = _page_login(client, "fiona", DEMO_PASSWORD)
    assert response.status_code == 302
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["httponly"] is True and cookie["samesite"].lower() in ("lax", "strict")


def test_with_debug_off_cookies_are_secure_and_https_is_enforced_with_hsts(tmp_path: Path) -> None:
    env = _deploy_env(tmp_path, DATABASE_URL="sqlite://:memory:", DJANGO_SETTINGS_MODULE="peering_portal.settings")
    result = subprocess.run(
        [sys.executable, "-c", DEBUG_OFF_PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["debug"] is False
    assert seen["plain"] == [301, "https://portal.example.com/api/v1/vpcs/"], "plain HTTP is not redirected"
    assert seen["hsts"] and "max-age=31536000" in seen["hsts"] and "includeSubDomains" in seen["hsts"], seen
    assert seen["login"] == 302, seen
    assert seen["session"] == {"secure": True, "httponly": True, "samesite": "Lax"}, seen
    assert seen["csrf_secure"] is True, seen


@pytest.mark.django_db
def test_a_session_authenticated_api_write_without_the_csrf_token_is_refused(people: dict[str, Any]) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(people["fiona"])
    refused = client.post("/api/v1/peering-requests/", {}, content_type="application/json")
    assert refused.status_code == 403
    assert "csrf" in refused.content.decode().lower(), refused.content

    # With the token the same call gets past CSRF (and fails validation instead): the 403 was CSRF's.
    client.get(LOGIN)
    token = client.cookies["csrftoken"].value
    allowed = client.post("/api/v1/peering-requests/", {}, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert allowed.status_code == 400, allowed.content
    # A token-authenticated client needs no CSRF token (no cookie a browser would send by itself).
    api, _ = _client_with_key(people["fiona"])
    assert api.post("/api/v1/peering-requests/", {}, format="json").status_code == 400
