"""The permission matrix: every route of the URL conf x every kind of caller, with the expected answer.

The routes are discovered from the URL conf (`get_resolver()`), so a new endpoint without a row
in `MATRIX` fails `test_every_route_has_a_row`, as does a row naming a route that is gone. For the
API, the methods a view declares must be the methods the table exercises.

`test_permission_matrix` builds the demo world once, then runs every (row, role) cell inside a
savepoint that is rolled back afterwards: each cell starts from the same fresh state (the request
pending approval, or put into the state the action needs), and an allowed action changes nothing
for the next cell. Every unexpected answer is collected and reported at once.

The rules the expected answers follow (see requests_app/peering/permissions.py):

* anonymous: the API answers 401; pages redirect to the login page (`302 login`); `/healthz`,
  the login and password-reset pages, the token exchange and the API schema and its documentation
  are open; `/metrics` is for staff only (401 for everyone else) unless METRICS_PUBLIC.
* a peering request is visible to its department, the owners of its accepter VPC and admins;
  anyone else gets 404, never 403, so ids cannot be probed.
* for a visible request, the `why_not_*` rules answer 403: approve/reject only by an owner of the
  accepter VPC who did not file it (`self_approval` for the filer); cancel by the department;
  retry/decommission by the department or the accepter's owners; repair by the accepter's owners.
  Admins see everything but are neither department members nor owners: their actions get 403.
* AWS accounts and webhooks are for admins only: 403 for everyone else (the page's account sync
  answers 404, not to reveal which accounts are registered).
* a token is visible to its owner and admins; anyone else gets 404.
* a VPC is visible to its department, to admins, and (as a peer target) to all if it has owners.
* the HTML action views redirect back to the request with a flash message (post/redirect/get):
  `302 done` when the action was done, `302 refused` when the service refused it (403).

Answer notation: an int is the status code (an API error's code is not compared); `"403 code"` also
compares the API error code; `"200+"`/`"200-"`: 200 and the row's marker (an id the caller may or
may not see) is/is not in the body; `302 login`/`302 admin-login`: a redirect to that login page.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import constants as message_levels
from django.contrib.messages import get_messages
from django.core.cache import cache
from django.db import transaction
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from rest_framework.test import APIClient

from requests_app.core import scheduler
from requests_app.integrations import services as integration_services
from requests_app.integrations import tokens
from requests_app.inventory import sync
from requests_app.models import AuditEvent, AwsAccount, PeeringRequest, WebhookDelivery
from requests_app.peering import preflight
from requests_app.peering import services as peering_services
from tests.fixtures.sandbox import ec2_as
from tests.fixtures.world import DEMO_PASSWORD, DemoWorld

# --- the callers ---------------------------------------------------------------------------------
# The brief's seven roles, plus sam acting on fiona's request ("dept_approver"): sam is in the
# requesting department *and* owns the accepter VPC, so he may decide fiona's request but never
# his own ("self_approver", separation of duties).
ROLES = (
    "anonymous",  # no credentials
    "requester",  # fiona, finance: filed the subject request (finance-app -> services-use1)
    "other_dept",  # harry, hr: neither in finance nor an owner
    "accepter_owner",  # nina, platform: owns services-use1 and services-euw1
    "other_owner",  # olga (made here): owns hr-portal only, no department
    "self_approver",  # sam, finance + owner of the Services VPCs, acting on HIS OWN request
    "dept_approver",  # sam acting on fiona's request
    "admin",  # superuser: not in finance, owns no VPC
)
USER_OF = {
    "anonymous": None,
    "requester": "fiona",
    "other_dept": "harry",
    "accepter_owner": "nina",
    "other_owner": "olga",
    "self_approver": "sam",
    "dept_approver": "sam",
    "admin": "admin",
}
# The peering request `{request}` names in a path or marker, per role.
SUBJECT_OF = {role: ("sam_request" if role == "self_approver" else "fiona_request") for role in ROLES}

# --- answer shorthands ---------------------------------------------------------------------------
LOGIN = "302 login"  # a page asked for anonymously: off to /accounts/login/
ADMIN_LOGIN = "302 admin-login"
DONE = "302 done"  # an HTML action that was done (success message)
REFUSED = "302 refused"  # an HTML action the service refused (error message)
SEES = "200+"  # 200, and the marker is in the body
HIDDEN = "200-"  # 200, and the marker is not in the body
SELF = "403 self_approval"  # the filer may not decide their own request
DENIED = "403 permission_denied"

ALL_200 = (200,) * 8
API_OPEN_TO_USERS = (401, 200, 200, 200, 200, 200, 200, 200)
PAGE_OPEN_TO_USERS = (LOGIN, 200, 200, 200, 200, 200, 200, 200)
ADMIN_ONLY = (401, 403, 403, 403, 403, 403, 403, 200)
# Who may see the subject request: its department (fiona, sam), the accepter's owners (nina,
# sam), admins; harry and olga get 404.
REQUEST_VISIBLE = (401, 200, 404, 200, 404, 200, 200, 200)
PAGE_REQUEST_VISIBLE = (LOGIN, 200, 404, 200, 404, 200, 200, 200)


@dataclass(frozen=True)
class Row:
    route: str  # the URL name (namespace:name), as the URL conf has it
    method: str
    path: str  # filled with str.format from the world and the role
    expect: tuple[Any, ...]  # one answer per role, in ROLES order
    body: Any = None  # a dict, or a function (world, role) -> dict
    prepare: Callable[[dict[str, Any], str], None] | None = None  # runs inside the cell's savepoint
    marker: str = ""  # filled like `path`; its presence in a 200 body is compared
    settings: dict[str, Any] = field(default_factory=dict)
    probe: bool = False  # a method the view must refuse (405), not one it declares


# --- state the actions need ----------------------------------------------------------------------
def _set_state(status: str, drift: Any = None) -> Callable[[dict[str, Any], str], None]:
    def prepare(world: dict[str, Any], role: str) -> None:
        PeeringRequest.objects.filter(pk=world[SUBJECT_OF[role]]).update(status=status, drift=drift)

    return prepare


FAILED = _set_state("failed")  # retry needs a failed request
ACTIVE = _set_state("active")  # decommission needs an active one
DRIFTED = _set_state("active", drift=[{"kind": "route_missing", "detail": "matrix test"}])  # repair


def _own_credentials(world: dict[str, Any], role: str) -> dict[str, str]:
    """The token exchange: each caller sends their own password; anonymous sends fiona's."""
    return {"username": USER_OF[role] or "fiona", "password": DEMO_PASSWORD}


def _new_request_body(world: dict[str, Any], role: str) -> dict[str, str]:
    # finance-app -> hr-portal is free (the world's requests hold the Services VPC pairs).
    return {
        "requester_vpc": world["vpc_finance"],
        "accepter_vpc": world["vpc_hr"],
        "justification": "permission matrix: finance needs the HR portal",
    }


COMMENT = {"comment": "permission matrix"}
NEW_ACCOUNT = {
    "account_id": "555555555555",
    "name": "matrix-new",
    "department": "hr",
    "role_arn": "arn:aws:iam::555555555555:role/PeeringPortalRole",
    "regions": ["us-east-1"],
}
NEW_HOOK = {"url": "http://127.0.0.1:9/matrix-new", "events": ["*"]}

API = "/api/v1"
REQ = f"{API}/peering-requests/{{request}}"
PAGE_REQ = "/requests/{request}"


# --- the table -----------------------------------------------------------------------------------
# Columns: anonymous, requester (fiona), other_dept (harry), accepter_owner (nina),
#          other_owner (olga), self_approver (sam, own request), dept_approver (sam, fiona's), admin
MATRIX: tuple[Row, ...] = (
    # Operations: open to anyone.
    Row("healthz", "GET", "/healthz", ALL_200),
    # Metrics: signed-in staff only (401 for everyone else, anonymous or not) ...
    Row("metrics", "GET", "/metrics", (401,) * 7 + (200,)),
    # ... with METRICS_TOKEN set too (no bearer token is sent here) ...
    Row("metrics", "GET", "/metrics", (401,) * 7 + (200,), settings={"METRICS_TOKEN": "matrix-secret"}),
    # ... unless METRICS_PUBLIC opens them, for a scraper on a private network.
    Row("metrics", "GET", "/metrics", ALL_200, settings={"METRICS_PUBLIC": True}),
    # Django's admin: staff only; everyone else is sent to the admin's login page.
    Row("admin:index", "GET", "/admin/", (ADMIN_LOGIN,) * 7 + (200,)),
    # Accounts: login and password reset are open; password change needs a login.
    Row("login", "GET", "/accounts/login/", ALL_200),
    Row("logout", "POST", "/accounts/logout/", (LOGIN,) * 8),
    Row("logout", "GET", "/accounts/logout/", (405,) * 8, probe=True),  # a link cannot log you out
    Row("password_change", "GET", "/accounts/password_change/", PAGE_OPEN_TO_USERS),
    Row("password_change_done", "GET", "/accounts/password_change/done/", PAGE_OPEN_TO_USERS),
    Row("password_reset", "GET", "/accounts/password_reset/", ALL_200),
    Row("password_reset_done", "GET", "/accounts/password_reset/done/", ALL_200),
    Row("password_reset_confirm", "GET", "/accounts/reset/MQ/not-a-token/", ALL_200),  # "invalid link"
    Row("password_reset_complete", "GET", "/accounts/reset/done/", ALL_200),
    # --- API ---
    # The token exchange takes no credentials but a password: open to anyone who has one.
    Row("api-token", "POST", f"{API}/auth/token/", ALL_200, body=_own_credentials),
    Row("api-root", "GET", f"{API}/", API_OPEN_TO_USERS),
    # VPCs: finance-app (no owners) is visible to finance and admins only.
    Row(
        "vpc-list", "GET", f"{API}/vpcs/", (401, SEES, HIDDEN, HIDDEN, HIDDEN, SEES, SEES, SEES), marker="{vpc_finance}"
    ),
    Row("vpc-detail", "GET", f"{API}/vpcs/{{vpc_finance}}/", (401, 200, 404, 404, 404, 200, 200, 200)),
    Row("vpc-capacity", "GET", f"{API}/vpcs/{{vpc_finance}}/capacity/", (401, 200, 404, 404, 404, 200, 200, 200)),
    # Peerings found in AWS (eng-build <-> services-use1, made outside the portal): visible to the
    # departments and owners of their VPCs; adopted by owners of the Services VPC in it, or admins.
    Row(
        "observed-peering-list",
        "GET",
        f"{API}/observed-peerings/",
        (401, HIDDEN, HIDDEN, SEES, HIDDEN, SEES, SEES, SEES),
        marker="{pcx}",
    ),
    Row(
        "observed-peering-detail", "GET", f"{API}/observed-peerings/{{pcx}}/", (401, 404, 404, 200, 404, 200, 200, 200)
    ),
    Row(
        "observed-peering-adopt",
        "POST",
        f"{API}/observed-peerings/{{pcx}}/adopt/",
        (401, 404, 404, 201, 404, 201, 201, 201),
        body={"justification": "permission matrix"},
    ),
    # AWS accounts: admins only.
    Row("aws-account-list", "GET", f"{API}/aws-accounts/", ADMIN_ONLY),
    Row("aws-account-list", "POST", f"{API}/aws-accounts/", (401, 403, 403, 403, 403, 403, 403, 201), body=NEW_ACCOUNT),
    Row("aws-account-detail", "GET", f"{API}/aws-accounts/{{account}}/", ADMIN_ONLY),
    Row("aws-account-sync", "POST", f"{API}/aws-accounts/{{account}}/sync/", ADMIN_ONLY),
    # Peering requests: lists show only visible ones.
    Row(
        "peering-request-list",
        "GET",
        f"{API}/peering-requests/",
        (401, SEES, HIDDEN, SEES, HIDDEN, SEES, SEES, SEES),
        marker="{request}",
    ),
    # Filing needs a requester VPC of your own department: others get the `not_your_vpc` check (400).
    Row(
        "peering-request-list",
        "POST",
        f"{API}/peering-requests/",
        (401, 201, "400 not_your_vpc", "400 not_your_vpc", "400 not_your_vpc", 201, 201, "400 not_your_vpc"),
        body=_new_request_body,
    ),
    # Pre-flight creates nothing and answers everyone (a refusal is in its checks).
    Row(
        "peering-request-preflight",
        "POST",
        f"{API}/peering-requests/preflight/",
        API_OPEN_TO_USERS,
        body=_new_request_body,
    ),
    Row("peering-request-detail", "GET", f"{REQ}/", REQUEST_VISIBLE),
    Row("peering-request-events", "GET", f"{REQ}/events/", REQUEST_VISIBLE),
    # Decide: owners of the accepter VPC who did not file it.
    Row(
        "peering-request-approve",
        "POST",
        f"{REQ}/approve/",
        (401, SELF, 404, 200, 404, SELF, 200, DENIED),
        body=COMMENT,
    ),
    Row(
        "peering-request-reject", "POST", f"{REQ}/reject/", (401, SELF, 404, 200, 404, SELF, 200, DENIED), body=COMMENT
    ),
    # Cancel: the requesting department.
    Row(
        "peering-request-cancel", "POST", f"{REQ}/cancel/", (401, 200, 404, DENIED, 404, 200, 200, DENIED), body=COMMENT
    ),
    # Retry and decommission: the department or the accepter's owners.
    Row("peering-request-retry", "POST", f"{REQ}/retry/", (401, 200, 404, 200, 404, 200, 200, DENIED), prepare=FAILED),
    Row(
        "peering-request-decommission",
        "POST",
        f"{REQ}/decommission/",
        (401, 200, 404, 200, 404, 200, 200, DENIED),
        body=COMMENT,
        prepare=ACTIVE,
    ),
    # Repair: the accepter's owners only.
    Row(
        "peering-request-repair",
        "POST",
        f"{REQ}/repair/",
        (401, DENIED, 404, 200, 404, 200, 200, DENIED),
        prepare=DRIFTED,
    ),
    # Audit events: those of visible requests; the chain check is open to every user.
    Row(
        "audit-event-list",
        "GET",
        f"{API}/audit-events/",
        (401, SEES, HIDDEN, SEES, HIDDEN, SEES, SEES, SEES),
        marker="{request}",
    ),
    Row("audit-event-detail", "GET", f"{API}/audit-events/{{event}}/", (401, 200, 404, 200, 404, 200, 200, 200)),
    # Open to every signed-in user (CONTRACT.md): counts and a broken id, never an event's content.
    Row("audit-event-verify", "GET", f"{API}/audit-events/verify/", API_OPEN_TO_USERS),
    # Webhooks: admins only.
    Row("webhook-list", "GET", f"{API}/webhooks/", ADMIN_ONLY),
    Row("webhook-list", "POST", f"{API}/webhooks/", (401, 403, 403, 403, 403, 403, 403, 201), body=NEW_HOOK),
    Row("webhook-detail", "GET", f"{API}/webhooks/{{webhook}}/", ADMIN_ONLY),
    Row("webhook-detail", "PATCH", f"{API}/webhooks/{{webhook}}/", ADMIN_ONLY, body={"active": False}),
    Row("webhook-deliveries", "GET", f"{API}/webhooks/{{webhook}}/deliveries/", ADMIN_ONLY),
    Row(
        "webhook-resend",
        "POST",
        f"{API}/webhooks/{{webhook}}/deliveries/{{message}}/resend/",
        (401, 403, 403, 403, 403, 403, 403, 202),
    ),
    # Tokens: your own (admins: everyone's); another's token is 404.
    Row(
        "api-token-named-list",
        "GET",
        f"{API}/tokens/",
        (401, SEES, HIDDEN, HIDDEN, HIDDEN, HIDDEN, HIDDEN, SEES),
        marker="{token_prefix}",
    ),
    Row(
        "api-token-named-list",
        "POST",
        f"{API}/tokens/",
        (401, 201, 201, 201, 201, 201, 201, 201),
        body={"name": "matrix-new"},
    ),
    Row("api-token-named-detail", "GET", f"{API}/tokens/{{token}}/", (401, 200, 404, 404, 404, 404, 404, 200)),
    Row("api-token-named-revoke", "POST", f"{API}/tokens/{{token}}/revoke/", (401, 200, 404, 404, 404, 404, 404, 200)),
    # The schema and its documentation pages are public (SPECTACULAR_SETTINGS: SERVE_PERMISSIONS default).
    Row("schema", "GET", "/api/schema/", ALL_200),
    Row("api-docs", "GET", "/api/docs/", ALL_200),
    Row("api-redoc", "GET", "/api/redoc/", ALL_200),
    # --- pages ---
    # Home lists your department's requests only: nina and admin (no finance membership) do not see it.
    Row("home", "GET", "/", (LOGIN, SEES, HIDDEN, HIDDEN, HIDDEN, SEES, SEES, HIDDEN), marker="/requests/{request}/"),
    Row("request-new", "GET", "/requests/new/", PAGE_OPEN_TO_USERS),
    # The form offers only your department's VPCs as requester: others get the form back (200).
    Row("request-new", "POST", "/requests/new/", (LOGIN, DONE, 200, 200, 200, DONE, DONE, 200), body=_new_request_body),
    Row("request-check", "POST", "/requests/new/check/", PAGE_OPEN_TO_USERS, body=_new_request_body),
    Row("request-check", "GET", "/requests/new/check/", (LOGIN,) + (405,) * 7, probe=True),
    Row("request-detail", "GET", f"{PAGE_REQ}/", PAGE_REQUEST_VISIBLE),
    Row("request-watch", "GET", f"{PAGE_REQ}/watch/?status=pending_approval", PAGE_REQUEST_VISIBLE),
    # The HTML actions follow the API's rules: 404 for the invisible, a refusal message for 403.
    Row(
        "request-action",
        "POST",
        f"{PAGE_REQ}/approve/",
        (LOGIN, REFUSED, 404, DONE, 404, REFUSED, DONE, REFUSED),
        body=COMMENT,
    ),
    Row(
        "request-action",
        "POST",
        f"{PAGE_REQ}/reject/",
        (LOGIN, REFUSED, 404, DONE, 404, REFUSED, DONE, REFUSED),
        body=COMMENT,
    ),
    Row(
        "request-action",
        "POST",
        f"{PAGE_REQ}/cancel/",
        (LOGIN, DONE, 404, REFUSED, 404, DONE, DONE, REFUSED),
        body=COMMENT,
    ),
    Row(
        "request-action",
        "POST",
        f"{PAGE_REQ}/retry/",
        (LOGIN, DONE, 404, DONE, 404, DONE, DONE, REFUSED),
        prepare=FAILED,
    ),
    Row(
        "request-action",
        "POST",
        f"{PAGE_REQ}/decommission/",
        (LOGIN, DONE, 404, DONE, 404, DONE, DONE, REFUSED),
        body=COMMENT,
        prepare=ACTIVE,
    ),
    Row(
        "request-action",
        "POST",
        f"{PAGE_REQ}/repair/",
        (LOGIN, REFUSED, 404, DONE, 404, DONE, DONE, REFUSED),
        prepare=DRIFTED,
    ),
    Row("request-action", "POST", f"{PAGE_REQ}/no-such-action/", (LOGIN,) + (404,) * 7, body=COMMENT),
    Row("request-action", "GET", f"{PAGE_REQ}/approve/", (LOGIN,) + (405,) * 7, probe=True),  # GET never acts
    # Approvals: the queue of the accepter's owners (sam's own pending request is listed to him too).
    Row(
        "approvals",
        "GET",
        "/approvals/",
        (LOGIN, HIDDEN, HIDDEN, SEES, HIDDEN, SEES, SEES, HIDDEN),
        marker="/requests/{request}/",
    ),
    Row(
        "topology",
        "GET",
        "/topology/",
        (LOGIN, SEES, HIDDEN, SEES, HIDDEN, SEES, SEES, SEES),
        marker="/requests/{request}/",
    ),
    Row(
        "inventory",
        "GET",
        "/inventory/",
        (LOGIN, SEES, HIDDEN, HIDDEN, HIDDEN, SEES, SEES, SEES),
        marker="{vpc_finance}",
    ),
    # Account sync from the page: admins; for others the account does not exist (404).
    Row("inventory-sync", "POST", "/inventory/accounts/{account}/sync/", (LOGIN,) + (404,) * 6 + ("302 inventory",)),
    Row("inventory-sync", "GET", "/inventory/accounts/{account}/sync/", (LOGIN,) + (405,) * 7, probe=True),
    Row(
        "inventory-adopt",
        "POST",
        "/inventory/peerings/{pcx}/adopt/",
        (LOGIN, 404, 404, DONE, 404, DONE, DONE, DONE),
        body={"justification": "permission matrix"},
    ),
    Row("inventory-adopt", "GET", "/inventory/peerings/{pcx}/adopt/", (LOGIN,) + (405,) * 7, probe=True),
    Row(
        "audit", "GET", "/audit/", (LOGIN, SEES, HIDDEN, SEES, HIDDEN, SEES, SEES, SEES), marker="/requests/{request}/"
    ),
    Row(
        "audit-export",
        "GET",
        "/audit/export.csv",
        (LOGIN, SEES, HIDDEN, SEES, HIDDEN, SEES, SEES, SEES),
        marker="{request}",
    ),
    Row(
        "audit-export",
        "GET",
        "/audit/export.jsonl",
        (LOGIN, SEES, HIDDEN, SEES, HIDDEN, SEES, SEES, SEES),
        marker="{request}",
    ),
)


# --- route discovery -----------------------------------------------------------------------------
def discovered_routes() -> dict[str, Any]:
    """Every route of the URL conf by name (namespace:name), with its view.

    Skipped: the admin's internals (only its index is listed), DRF's format-suffix duplicates
    (`.json` variants of the same views) and static/media.
    """
    found: dict[str, Any] = {}

    def walk(resolver: URLResolver, prefix: str, namespace: str | None) -> None:
        for pattern in resolver.url_patterns:
            if isinstance(pattern, URLResolver):
                inner = ":".join(x for x in (namespace, pattern.namespace) if x) or None
                walk(pattern, prefix + str(pattern.pattern), inner)
                continue
            assert isinstance(pattern, URLPattern)
            route = prefix + str(pattern.pattern)
            if "(?P<format>" in route or "<drf_format_suffix:" in route or route.startswith(("static/", "media/")):
                continue
            key = (f"{namespace}:{pattern.name}" if namespace else pattern.name) if pattern.name else route
            if namespace == "admin" and key != "admin:index":
                continue
            found.setdefault(key, pattern.callback)  # the first match wins, as in resolving

    walk(get_resolver(), "", None)
    return found


def declared_methods(callback: Any) -> set[str] | None:
    """The methods a DRF view answers (viewset actions or APIView handlers); None for other views."""
    if getattr(callback, "actions", None):
        return {m.upper() for m in callback.actions if m not in ("options", "head")}
    cls = getattr(callback, "cls", None)
    if cls is None:
        return None
    return {m.upper() for m in cls.http_method_names if m not in ("options", "head") and hasattr(cls, m)}


def test_every_route_has_a_row_and_every_row_a_route() -> None:
    routes = discovered_routes()
    rows = {row.route for row in MATRIX}
    assert sorted(set(routes) - rows) == [], "routes without a row in MATRIX (add one, with an answer per role)"
    assert sorted(rows - set(routes)) == [], "rows naming routes the URL conf no longer has"
    for row in MATRIX:
        assert len(row.expect) == len(ROLES), row
    # The API's methods: every method a view declares is exercised, and nothing else is listed.
    for key, callback in routes.items():
        declared = declared_methods(callback)
        if declared is None:
            continue
        exercised = {row.method for row in MATRIX if row.route == key and not row.probe}
        assert exercised == declared, f"{key}: the view answers {sorted(declared)}, the table has {sorted(exercised)}"


# --- running the cells ---------------------------------------------------------------------------
@contextmanager
def rolled_back() -> Any:
    """Whatever the cell changes is undone: a savepoint, rolled back on the way out."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def _error_code(response: Any) -> str:
    try:
        return response.json()["errors"][0]["code"]
    except Exception:
        return ""


def observe(response: Any, row: Row, marker: str) -> str:
    """The answer in the table's notation."""
    status = response.status_code
    if status in (301, 302):
        location = urlsplit(response["Location"]).path
        if location == "/accounts/login/":
            return LOGIN
        if location == "/admin/login/":
            return ADMIN_LOGIN
        levels = {m.level for m in get_messages(response.wsgi_request)}
        if message_levels.ERROR in levels:
            return REFUSED
        if message_levels.SUCCESS in levels and location.startswith("/requests/"):
            return DONE
        return f"{status} {location.strip('/').split('/')[0]}"
    if status == 200 and row.marker:
        body = b"".join(response.streaming_content) if response.streaming else response.content
        return SEES if marker.encode() in body else HIDDEN
    if status >= 400 and row.path.startswith("/api/"):
        code = _error_code(response)
        return f"{status} {code}" if code else str(status)
    return str(status)


def matches(expected: Any, observed: str) -> bool:
    expected = str(expected)
    return observed == expected or (expected.isdigit() and observed.split()[0] == expected)


def _call(world: dict[str, Any], row: Row, role: str) -> tuple[str, str]:
    values = {**world, "request": world[SUBJECT_OF[role]]}
    path = row.path.format(**values)
    body = row.body(world, role) if callable(row.body) else row.body
    username = USER_OF[role]
    user = world["users"][username] if username else None
    if path.startswith("/api/"):
        client: Any = APIClient()
        if user is not None:
            _, key = tokens.issue(user, "matrix")
            client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        kwargs: dict[str, Any] = {"format": "json"}
    else:
        client = Client()
        if user is not None:
            client.force_login(user)
        kwargs = {}
    if row.prepare:
        row.prepare(world, role)
    send = getattr(client, row.method.lower())
    response = send(path, body, **kwargs) if body is not None else send(path, **kwargs)
    return path, observe(response, row, row.marker.format(**values))


@pytest.mark.django_db
def test_permission_matrix(demo_world: DemoWorld, settings: Any) -> None:
    started = time.monotonic()
    settings.WEBHOOK_ALLOW_PRIVATE = True  # the test webhook points at a loopback address
    settings.METRICS_TOKEN = ""
    users = dict(demo_world.users)
    vpcs = demo_world.vpcs
    olga = get_user_model().objects.create_user("olga", email="olga@example.com", password=DEMO_PASSWORD)
    vpcs["hr-portal"].owners.add(olga)
    users["olga"] = olga

    # A webhook first, so filing the requests writes deliveries (sent only after a commit: never here).
    hook = integration_services.webhook_register(actor=users["admin"], url="http://127.0.0.1:9/matrix", events=["*"])

    def file(username: str, accepter: str) -> PeeringRequest:
        draft = preflight.PeeringDraft(
            requester_vpc=vpcs["finance-app"].vpc_id,
            accepter_vpc=vpcs[accepter].vpc_id,
            justification=f"permission matrix: filed by {username}",
        )
        return peering_services.peering_request_submit(actor=users[username], draft=draft)

    fiona_request = file("fiona", "services-use1")
    sam_request = file("sam", "services-euw1")
    # A peering someone made in the AWS console, which the last sync found.
    engineering = ec2_as("444444444444", "us-east-1")
    pcx = engineering.create_vpc_peering_connection(
        VpcId=vpcs["eng-build"].vpc_id, PeerVpcId=vpcs["services-use1"].vpc_id, PeerOwnerId="111111111111"
    )["VpcPeeringConnection"]["VpcPeeringConnectionId"]
    ec2_as("111111111111", "us-east-1").accept_vpc_peering_connection(VpcPeeringConnectionId=pcx)
    sync.sync_account(AwsAccount.objects.get(account_id="444444444444"))
    token, _ = tokens.issue(users["fiona"], "subject")
    scheduler.record_run("sweep")  # a healthy portal: beat and a worker ran the sweeper just now
    world = {
        "users": users,
        "fiona_request": str(fiona_request.pk),
        "sam_request": str(sam_request.pk),
        "vpc_finance": vpcs["finance-app"].vpc_id,
        "vpc_hr": vpcs["hr-portal"].vpc_id,
        "account": "222222222222",
        "webhook": hook.pk,
        "message": WebhookDelivery.objects.filter(webhook=hook, request=fiona_request).first().message_id,
        "token": token.pk,
        "token_prefix": token.prefix,
        "event": AuditEvent.objects.get(request=fiona_request, action="request.submitted").pk,
        "pcx": pcx,
    }

    unexpected: list[str] = []
    cells = 0
    for row in MATRIX:
        for role, expected in zip(ROLES, row.expect, strict=True):
            cells += 1
            cache.clear()  # rate limits and login lockouts: every cell starts with a full budget
            with rolled_back(), override_settings(**row.settings):
                try:
                    path, observed = _call(world, row, role)
                except Exception as exc:  # a crash is an answer too
                    path, observed = row.path, f"exception {exc.__class__.__name__}: {exc}"
            resolved = resolve(urlsplit(path).path).view_name
            if resolved != row.route:
                unexpected.append(f"{row.method} {path}: resolves to {resolved}, not {row.route} (a table error)")
            if not matches(expected, observed):
                label = f"{row.method} {path}" + (f" {row.settings}" if row.settings else "")
                unexpected.append(f"{label} as {role} ({USER_OF[role]}): expected {expected}, got {observed}")
    elapsed = time.monotonic() - started
    print(f"\npermission matrix: {len(MATRIX)} rows x {len(ROLES)} roles = {cells} cells in {elapsed:.1f} s")
    assert not unexpected, f"{len(unexpected)} unexpected answer(s) of {cells}:\n" + "\n".join(unexpected)
