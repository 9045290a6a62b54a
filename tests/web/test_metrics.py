"""/metrics: what it counts (requests by status, AWS calls, drift), and that it is for staff or the
bearer token only, unless made public (issue 13's "also" item)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.base_user import AbstractBaseUser
from django.test import Client

from requests_app import audit
from requests_app.peering import preflight
from requests_app.peering import services as peering_services
from tests.fixtures.world import DemoWorld

PASSWORD = "peering-demo"


@pytest.fixture
def people(django_user_model: Any) -> dict[str, AbstractBaseUser]:
    return {
        "fiona": django_user_model.objects.create_user("fiona", "fiona@example.com", PASSWORD),
        "harry": django_user_model.objects.create_user("harry", "harry@example.com", PASSWORD),
        "admin": django_user_model.objects.create_superuser("admin", "admin@example.com", PASSWORD),
    }


def signed_in(user: AbstractBaseUser) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_metrics_count_requests_by_status_aws_calls_and_drift(client: Client, demo_rows: DemoWorld, settings) -> None:
    from requests_app.models import PeeringRequest

    vpcs = demo_rows.vpcs
    filed = peering_services.peering_request_submit(
        actor=demo_rows.users["fiona"],
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

    client.force_login(demo_rows.users["admin"])  # /metrics is for staff (or the bearer token)
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


@pytest.mark.django_db
def test_metrics_are_for_staff_or_the_bearer_token_unless_made_public(people: dict[str, Any], settings: Any) -> None:
    settings.METRICS_TOKEN = ""
    settings.METRICS_PUBLIC = False
    anonymous = Client().get("/metrics")
    assert anonymous.status_code == 401 and anonymous["Content-Type"].startswith("text/plain")
    assert anonymous["WWW-Authenticate"].startswith("Bearer")
    assert signed_in(people["fiona"]).get("/metrics").status_code == 401  # signed in, not staff
    staff = signed_in(people["admin"]).get("/metrics")
    assert staff.status_code == 200 and b"peering_requests" in staff.content

    settings.METRICS_TOKEN = "s3cret"
    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer s3crét").status_code == 401  # not a 500
    assert signed_in(people["admin"]).get("/metrics").status_code == 200

    settings.METRICS_TOKEN = ""
    settings.METRICS_PUBLIC = True
    assert Client().get("/metrics").status_code == 200
