"""Issue 13's defects, each closed on every way in: the API, the pages (logged in, with CSRF), the admin.

Every test asserts the refusal and that nothing was stored (and nothing sent to AWS: these rows
live only in the database, no worker runs, and the use cases refuse before enqueueing anything).
"""

from __future__ import annotations

import re
import socket
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from rest_framework.test import APIClient

from requests_app.domain.status import Status
from requests_app.models import AuditEvent, AwsAccount, ManagedRoute, Notification, PeeringRequest, Webhook
from requests_app.notifications import outbox as notifications
from requests_app.peering import permissions
from tests.factories import (
    AwsAccountFactory,
    DepartmentFactory,
    PeeringRequestFactory,
    RouteTableFactory,
    UserFactory,
    VpcFactory,
)

pytestmark = pytest.mark.django_db
URL = "/api/v1/peering-requests/"


@pytest.fixture
def world() -> dict[str, Any]:
    """finance's app VPC and the platform's hub, owned by nina; fiona is in finance."""
    finance, platform = DepartmentFactory(slug="finance"), DepartmentFactory(slug="platform")
    fiona, nina = UserFactory(username="fiona"), UserFactory(username="nina")
    finance.members.add(fiona)
    platform.members.add(nina)
    app = VpcFactory(account=AwsAccountFactory(department=finance), name="app", cidrs=["10.1.0.0/16"])
    hub = VpcFactory(
        account=AwsAccountFactory(department=platform),
        name="hub",
        cidrs=["10.0.0.0/16"],
        is_services_vpc=True,
        owners=[nina],
    )
    RouteTableFactory(vpc=app, is_main=True)
    RouteTableFactory(vpc=hub, is_main=True)
    return {"fiona": fiona, "nina": nina, "app": app, "hub": hub}


def api_as(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def page_as(user: Any) -> Client:
    """A browser: logged in, and CSRF checked as for a real form post."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/")  # sets the CSRF cookie
    return client


def post_form(client: Client, path: str, data: dict[str, str]) -> Any:
    return client.post(path, {**data, "csrfmiddlewaretoken": client.cookies["csrftoken"].value})


def flash(response: Any) -> list[str]:
    return [str(m) for m in response.wsgi_request._messages]


def pending(world: dict[str, Any]) -> PeeringRequest:
    return PeeringRequestFactory(requester_vpc=world["app"], accepter_vpc=world["hub"], requested_by=world["fiona"])


# --- 5. malformed bodies ------------------------------------------------------------------------
def test_a_deeply_nested_body_on_the_token_endpoint_is_a_400_not_a_crash() -> None:
    nested = "[" * 100_000 + "]" * 100_000  # a few hundred kilobytes; used to raise RecursionError
    response = APIClient().post("/api/v1/auth/token/", data=nested, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "parse_error"


@pytest.mark.parametrize("path", [f"{URL}preflight/", URL])
def test_a_body_over_the_upload_limit_is_413_in_the_api_shape(world: dict[str, Any], path: str) -> None:
    body = '{"justification": "' + "x" * 3_000_000 + '"}'  # DATA_UPLOAD_MAX_MEMORY_SIZE is 2.5 MB
    response = api_as(world["fiona"]).post(
        path, data=body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="big-1"
    )
    assert response.status_code == 413
    assert response.json() == {
        "type": "client_error",
        "errors": [
            {"code": "request_too_large", "attr": None, "detail": "The request body is larger than the portal accepts."}
        ],
    }
    assert PeeringRequest.objects.count() == 0


# --- 6. a model's validation error --------------------------------------------------------------
def test_an_account_whose_role_names_another_account_is_a_400_with_a_code(world: dict[str, Any]) -> None:
    admin = get_user_model().objects.create_superuser("root", password="x-long-password-1")
    response = api_as(admin).post(
        "/api/v1/aws-accounts/",
        {
            "account_id": "555555555555",
            "name": "new",
            "department": "finance",
            "role_arn": "arn:aws:iam::666666666666:role/PeeringPortalRole",
            "regions": ["us-east-1"],
        },
        format="json",
    )
    assert response.status_code == 400, response.json()
    (error,) = response.json()["errors"]
    assert error == {
        "code": "role_of_another_account",
        "attr": "role_arn",
        "detail": "role_arn: The role must belong to this account.",
    }
    assert not AwsAccount.objects.filter(account_id="555555555555").exists()


# --- 7. the comment, one validation for the API and the pages ------------------------------------
BAD_COMMENTS = {"nul": "looks fine\x00then not", "bell": "ring\x07", "huge": "x" * 200_000}


@pytest.mark.parametrize("kind", sorted(BAD_COMMENTS))
@pytest.mark.parametrize("action", ["approve", "reject"])
def test_a_bad_comment_is_refused_by_the_page_as_by_the_api(world: dict[str, Any], kind: str, action: str) -> None:
    request = pending(world)
    comment = BAD_COMMENTS[kind]
    events = AuditEvent.objects.count()

    api = api_as(world["nina"]).post(f"{URL}{request.pk}/{action}/", {"comment": comment}, format="json")
    page = post_form(page_as(world["nina"]), f"/requests/{request.pk}/{action}/", {"comment": comment})

    assert api.status_code == 400
    if kind == "nul":  # refused at the door: no form post with a NUL byte reaches a view
        assert page.status_code == 400
    else:
        assert page.status_code == 302 and any(m.startswith(f"Could not {action}: comment") for m in flash(page))
    request.refresh_from_db()
    assert (request.status, request.decision_comment) == (Status.PENDING_APPROVAL, "")
    assert AuditEvent.objects.count() == events  # nothing stored, not even in the audit message


def test_the_page_refuses_a_bad_comment_on_cancel_and_decommission_too(world: dict[str, Any]) -> None:
    request = pending(world)
    fiona = page_as(world["fiona"])
    refused = post_form(fiona, f"/requests/{request.pk}/cancel/", {"comment": "bye\x1b[31m"})
    assert any("control character" in m for m in flash(refused))
    PeeringRequest.objects.filter(pk=request.pk).update(status=Status.ACTIVE)
    refused = post_form(fiona, f"/requests/{request.pk}/decommission/", {"comment": "y" * 4001})
    assert any("at most 4000 characters" in m for m in flash(refused))
    assert PeeringRequest.objects.get(pk=request.pk).status == Status.ACTIVE


# --- 8. control characters in single-line fields ------------------------------------------------
@pytest.mark.parametrize("ref", ["INC1\r\nBcc: attacker@example.com", "INC1\nX", "INC1\u2028X", "INC\x00"])
def test_a_ticket_reference_with_a_line_break_is_refused_everywhere(world: dict[str, Any], ref: str) -> None:
    body = {
        "requester_vpc": world["app"].vpc_id,
        "accepter_vpc": world["hub"].vpc_id,
        "justification": "directory",
        "external_ref": ref,
    }
    api = api_as(world["fiona"]).post(URL, body, format="json")
    assert api.status_code == 400
    assert api.json()["errors"][0]["code"] in {"invalid_external_ref", "null_characters_not_allowed"}

    page = post_form(page_as(world["fiona"]), "/requests/new/", {**body, "submit": "1"})
    if "\x00" in ref:
        assert page.status_code == 400  # refused at the door
    else:
        assert page.status_code == 200  # the form again, with the refusal
        assert "The request was not filed" in page.content.decode()
    assert PeeringRequest.objects.count() == 0 and Notification.objects.count() == 0


def test_a_token_name_and_an_account_name_must_be_single_lines(world: dict[str, Any]) -> None:
    refused = api_as(world["fiona"]).post("/api/v1/tokens/", {"name": "ci\r\nadmin"}, format="json")
    assert refused.status_code == 400 and refused.json()["errors"][0]["code"] == "invalid_name"
    admin = get_user_model().objects.create_superuser("root", password="x-long-password-1")
    refused = api_as(admin).post(
        "/api/v1/aws-accounts/",
        {
            "account_id": "555555555555",
            "name": "prod\nfake log line",
            "department": "finance",
            "role_arn": "arn:aws:iam::555555555555:role/R",
            "regions": ["us-east-1"],
        },
        format="json",
    )
    assert refused.status_code == 400 and refused.json()["errors"][0]["code"] == "invalid_name"


def test_a_ticket_reference_stored_before_the_check_cannot_break_the_approvers_mail(
    world: dict[str, Any], settings: Any
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    legacy = PeeringRequestFactory(
        requester_vpc=world["app"],
        accepter_vpc=world["hub"],
        requested_by=world["fiona"],
        external_ref="INC9\r\nBcc: x@example.com",
    )
    notifications.request_filed(legacy)
    note = Notification.objects.get(request=legacy)
    assert "\r" not in note.subject and "\n" not in note.subject
    from django.core.mail import EmailMessage

    EmailMessage(note.subject, note.body, to=note.recipients).send()  # BadHeaderError before
    assert len(mail.outbox) == 1 and "Bcc" not in mail.outbox[0].extra_headers


# --- 10. decommission only from active ----------------------------------------------------------
def test_decommission_is_refused_from_failed_through_the_api_and_the_page(world: dict[str, Any]) -> None:
    request = PeeringRequestFactory(
        requester_vpc=world["app"],
        accepter_vpc=world["hub"],
        requested_by=world["fiona"],
        status=Status.FAILED,
        failed_operation="provision",
        failure_reason="quota",
    )
    api = api_as(world["fiona"]).post(f"{URL}{request.pk}/decommission/", {"comment": "x"}, format="json")
    assert api.status_code == 409
    assert api.json()["errors"][0] == {
        "code": "invalid_transition",
        "attr": None,
        "detail": "only an active peering can be decommissioned; this one is failed",
    }
    page = post_form(page_as(world["fiona"]), f"/requests/{request.pk}/decommission/", {"comment": "x"})
    assert any("only an active peering can be decommissioned" in m for m in flash(page))
    assert PeeringRequest.objects.get(pk=request.pk).status == Status.FAILED
    # The failed request keeps its retry (which resumes, or cleans up, what failed).
    assert "decommission" not in permissions.allowed_actions(world["fiona"], request)
    assert "retry" in permissions.allowed_actions(world["fiona"], request)


# --- 13. only canonical CIDRs are stored and planned --------------------------------------------
def test_another_spelling_of_a_cidr_is_stored_and_planned_canonically(world: dict[str, Any]) -> None:
    body = {
        "requester_vpc": world["app"].vpc_id,
        "accepter_vpc": world["hub"].vpc_id,
        "justification": "dir",
        "requester_destination_cidrs": [" 10.0.1.0/024 "],
    }
    response = api_as(world["fiona"]).post(URL, body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["requester_destination_cidrs"] == ["10.0.1.0/24"]
    creates = [
        op["parameters"]["DestinationCidrBlock"] for op in response.json()["plan"] if op["operation"] == "CreateRoute"
    ]
    assert "10.0.1.0/24" in creates and all(re.fullmatch(r"[\d./]+", c) for c in creates)
    assert set(ManagedRoute.objects.values_list("destination", flat=True)) == {"10.0.1.0/24", "10.1.0.0/16"}


# --- 4. the admin goes through the use cases, and every change in it is audited ------------------
@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", password="x-long-password-1"))
    return client


def test_a_webhook_added_in_the_admin_gets_the_api_rules_a_secret_and_an_audit_event(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = False
    form = {"url": "http://127.0.0.1:9/hook", "events": '["*"]', "active": "on"}
    refused = admin_client.post("/admin/requests_app/webhook/add/", form)
    assert refused.status_code == 200 and "not a globally routable address" in refused.content.decode()
    assert not Webhook.objects.exists()

    # A public name (resolved by a stub: no network here) is accepted, through the use case.
    monkeypatch.setattr(
        socket, "getaddrinfo", lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", 443))]
    )
    added = admin_client.post(
        "/admin/requests_app/webhook/add/", {**form, "url": "https://hooks.example.com/x"}, follow=True
    )
    hook = Webhook.objects.get()
    assert hook.secret.startswith("whsec_") and len(hook.secret) > 40
    assert any(hook.secret in m for m in flash(added))  # shown once
    assert AuditEvent.objects.filter(action="webhook.registered", actor_label="root").count() == 1

    # A change goes through the use case as well: a private URL is refused, nothing changes.
    monkeypatch.setattr(
        socket, "getaddrinfo", lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("100.100.100.200", 443))]
    )
    changed = admin_client.post(
        f"/admin/requests_app/webhook/{hook.pk}/change/", {**form, "url": "https://metadata.example.com/"}
    )
    assert changed.status_code == 200 and "not a globally routable address" in changed.content.decode()
    assert Webhook.objects.get().url == "https://hooks.example.com/x"


def test_every_admin_change_to_portal_objects_is_an_audit_event(admin_client: Client, world: dict[str, Any]) -> None:
    hub, nina = world["hub"], world["nina"]
    other = UserFactory(username="olga")
    response = admin_client.post(
        f"/admin/requests_app/vpc/{hub.pk}/change/",
        {
            "is_services_vpc": "on",
            "owners": [nina.pk, other.pk],
            "cidr_blocks-TOTAL_FORMS": "1",
            "cidr_blocks-INITIAL_FORMS": "1",
            "cidr_blocks-MIN_NUM_FORMS": "0",
            "cidr_blocks-MAX_NUM_FORMS": "1000",
            "cidr_blocks-0-id": hub.cidr_blocks.get().pk,
            "cidr_blocks-0-vpc": hub.pk,
        },
    )
    assert response.status_code == 302, re.findall(r"<ul class=\"errorlist.*?</ul>", response.content.decode(), re.S)
    (event,) = AuditEvent.objects.filter(action="admin.changed")
    assert event.actor_label == "root"
    assert event.data["model"] == "requests_app.vpc" and event.data["fields"] == {"owners": ["nina", "olga"]}

    admin_client.post(
        f"/admin/auth/user/{other.pk}/password/",
        {"password1": "another-long-pass-9", "password2": "another-long-pass-9"},
    )
    password = AuditEvent.objects.filter(action="admin.changed", data__model="auth.user").get()
    assert "another-long-pass-9" not in str(password.data)

    account = AwsAccountFactory(department=world["app"].account.department)
    admin_client.post(f"/admin/requests_app/awsaccount/{account.pk}/delete/", {"post": "yes"})
    assert AuditEvent.objects.filter(action="admin.deleted", data__object_id=str(account.pk)).count() == 1
