"""Promises of the project as a whole: migrations, schema, health, settings."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from requests_app import audit, tasks
from requests_app.inventory import sync
from requests_app.peering import preflight
from requests_app.peering import services as peering_services
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
    tasks.sweep_stuck_work()  # what beat and a worker do every SWEEP_INTERVAL_SECONDS
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    assert response.json()["database"] == "ok" and response.json()["broker"] == "ok"
    assert response.json()["scheduler"] == "ok"


@pytest.mark.django_db
def test_healthz_is_degraded_naming_the_scheduler_when_sweeps_stop(client: Client, settings: Any) -> None:
    from requests_app.models import SchedulerRun

    stopped = timezone.now() - timedelta(seconds=2 * settings.SWEEP_INTERVAL_SECONDS + 1)
    SchedulerRun.objects.create(name="sweep", last_run_at=stopped)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["scheduler"].startswith("down: the last sweep ran")
    assert "is beat running?" in response.json()["scheduler"]
    assert response.json()["database"] == "ok"  # only the scheduler is named


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


def test_docker_compose_environment_configures_the_settings_it_names() -> None:
    """docker-compose.yml cannot run here, so check what it promises: its env loads the settings."""
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"web", "worker", "beat", "postgres", "redis", "sandbox"} <= set(services)
    assert "peering_portal.wsgi:application" in services["web"]["command"]
    assert services["worker"]["command"].startswith("celery -A peering_portal worker")
    # Interpolate ${VAR:-default} as compose does, with nothing set in the environment.
    env = {
        k: re.sub(r"\$\{\w+(?::-([^}]*)|:\?[^}]*)?\}", lambda m: m.group(1) or "", str(v))
        for k, v in services["worker"]["environment"].items()
    }
    env["DJANGO_SECRET_KEY"] = "x" * 50  # compose requires the operator to set one
    env["DJANGO_SETTINGS_MODULE"] = "peering_portal.settings"  # set by the image
    env["PATH"] = "/usr/bin:/bin"
    env["PORTAL_VAR_DIR"] = str(ROOT / "var" / "compose-check")
    probe = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.DATABASES['default']['HOST'], s.CELERY_BROKER_URL, s.DEBUG)"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django.db.backends.postgresql", "postgres", "redis://redis:6379/0", "False"]


@pytest.mark.django_db
def test_metrics_count_requests_by_status_aws_calls_and_drift(client: Client, demo_world: dict, settings) -> None:
    from requests_app.models import PeeringRequest

    vpcs = demo_world["vpcs"]
    filed = peering_services.peering_request_submit(
        actor=demo_world["users"]["fiona"],
        draft=preflight.PeeringDraft(
            requester_vpc=vpcs["finance-app"].vpc_id, accepter_vpc=vpcs["services-use1"].vpc_id, justification="metrics"
        ),
    )
    PeeringRequest.objects.filter(pk=filed.pk).update(status="active", drift={"findings": [{"kind": "route_missing"}]})
    for result, code in (("ok", ""), ("ok", ""), ("error", "RequestLimitExceeded"), ("started", "")):
        audit.record(
            action="aws.call",
            actor_label="worker:test",
            request=filed,
            operation="CreateRoute",
            result=result,
            error_code=code,
        )

    client.force_login(demo_world["users"]["admin"])  # /metrics is for staff (or the bearer token)
    body = client.get("/metrics").content.decode()
    assert 'peering_requests{status="active"} 1.0' in body
    assert 'peering_requests{status="pending_approval"} 0.0' in body
    assert "peering_drifted_requests 1.0" in body
    assert 'peering_aws_calls_total{error_code="",operation="CreateRoute",result="ok"} 2.0' in body
    assert (
        'peering_aws_calls_total{error_code="RequestLimitExceeded",operation="CreateRoute",result="error"} 1.0' in body
    )
    assert 'result="started"' not in body  # intents are not calls

    client.logout()
    assert client.get("/metrics").status_code == 401
    settings.METRICS_TOKEN = "s3cret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200


def test_a_worker_refuses_to_start_with_task_limits_above_the_visibility_timeout(settings) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from peering_portal.celery import _check_time_limits

    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 600}
    settings.CELERY_TASK_TIME_LIMIT = 900
    with pytest.raises(ImproperlyConfigured, match=r"\(900s\) must be below the broker's visibility timeout \(600s\)"):
        _check_time_limits()
    settings.CELERY_TASK_TIME_LIMIT = 300
    _check_time_limits()  # fine: a task ends before Redis would hand it to another worker


@pytest.mark.django_db
def test_inventory_shows_admins_the_peerings_the_portal_did_not_make(client: Client, demo_world: dict) -> None:
    from requests_app.models import AwsAccount
    from tests.conftest import ec2_as

    vpcs = demo_world["vpcs"]
    by_hand = ec2_as("444444444444", "us-east-1").create_vpc_peering_connection(
        VpcId=vpcs["eng-build"].vpc_id,
        PeerVpcId=vpcs["services-use1"].vpc_id,
        PeerOwnerId="111111111111",
        PeerRegion="us-east-1",
    )["VpcPeeringConnection"]["VpcPeeringConnectionId"]
    sync.sync_account(AwsAccount.objects.get(account_id="444444444444"))

    client.force_login(demo_world["users"]["admin"])
    page = client.get("/inventory/").content.decode()
    assert "Peerings not made by the portal" in page and by_hand in page
    # As in GET /api/v1/observed-peerings/: shown to whoever may see one of its VPCs (erin: eng-build
    # is her department's), never to others (fiona).
    client.force_login(demo_world["users"]["erin"])
    assert by_hand in client.get("/inventory/").content.decode()
    client.force_login(demo_world["users"]["fiona"])
    assert by_hand not in client.get("/inventory/").content.decode()


@pytest.mark.django_db
def test_audit_page_links_to_older_events_keep_the_filters(client: Client, django_user_model: Any) -> None:

    for n in range(101):  # 100 a page
        audit.record(action="probe.event", actor_label="test", message=str(n))
    client.force_login(django_user_model.objects.create_superuser("auditor", password="x-long-password-1"))
    page = client.get("/audit/", {"action": "probe.event"}).content.decode()
    assert "page 1 of 2" in page
    assert 'href="?action=probe.event&amp;page=2"' in page
