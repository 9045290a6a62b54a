"""Promises of the project as a whole: migrations, schema, health, settings."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.test import Client

from tests.conftest import ROOT

CONTRACT_PATHS = [
    "/api/v1/auth/token/",
    "/api/v1/vpcs/",
    "/api/v1/aws-accounts/",
    "/api/v1/aws-accounts/{account_id}/sync/",
    "/api/v1/peering-requests/",
    "/api/v1/peering-requests/preflight/",
    "/api/v1/peering-requests/{id}/",
    "/api/v1/peering-requests/{id}/approve/",
    "/api/v1/peering-requests/{id}/reject/",
    "/api/v1/peering-requests/{id}/cancel/",
    "/api/v1/peering-requests/{id}/retry/",
    "/api/v1/peering-requests/{id}/decommission/",
    "/api/v1/peering-requests/{id}/repair/",
    "/api/v1/peering-requests/{id}/events/",
    "/api/v1/audit-events/",
    "/api/v1/audit-events/verify/",
    "/api/v1/webhooks/",
]


@pytest.mark.django_db
def test_models_and_migrations_agree() -> None:
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db
def test_schema_describes_every_contract_endpoint_without_warnings() -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("spectacular", "--format", "openapi-json", "--validate", "--fail-on-warn", stdout=out, stderr=err)
    import json

    schema = json.loads(out.getvalue())
    missing = [p for p in CONTRACT_PATHS if p not in schema["paths"]]
    assert missing == []
    create = schema["paths"]["/api/v1/peering-requests/"]["post"]
    assert any(p["name"] == "Idempotency-Key" for p in create["parameters"])


@pytest.mark.django_db
def test_api_docs_render_from_local_static_files_only(client: Client) -> None:
    html = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in html
    assert "cdn." not in html and "unpkg" not in html and "jsdelivr" not in html


@pytest.mark.django_db
def test_healthz_reports_database_and_broker(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    assert response.json()["database"] == "ok" and response.json()["broker"] == "ok"


@pytest.mark.django_db
def test_unknown_api_path_answers_json_not_html(client: Client) -> None:
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["errors"][0]["code"] == "not_found"


def test_production_settings_refuse_the_development_secret_key() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={"DJANGO_SETTINGS_MODULE": "peering_portal.settings", "DJANGO_DEBUG": "0", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr
