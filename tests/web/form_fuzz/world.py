"""The form fuzz's world: fixed ids (so a failing example prints the input that reproduces it), the
rows behind them, AWS as a stub that refuses every call, a resolver that asks no DNS, and a browser."""

from __future__ import annotations

import socket
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.core import mail
from django.core.cache import cache
from django.db import transaction
from django.test import Client
from django.utils import timezone

from requests_app import audit
from requests_app.aws import gateway as gateway_module
from requests_app.domain.status import Status
from requests_app.models import Department, Vpc, Webhook
from tests.factories import (
    AwsAccountFactory,
    DepartmentFactory,
    ObservedPeeringFactory,
    PeeringRequestFactory,
    RouteTableFactory,
    UserFactory,
    VpcFactory,
    route_rows,
)

PASSWORD = "peering-demo-fuzz-1"


# --- the world: fixed ids, so a failing example prints the input that reproduces it ---------------
def vpc_id(n: int) -> str:
    return f"vpc-{0xF0000 + n:017x}"


def rtb_id(n: int) -> str:
    return f"rtb-{0xF0000 + n:017x}"


def pcx_id(n: int) -> str:
    return f"pcx-{0xF0000 + n:017x}"


def request_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


VPC = {
    "hub": vpc_id(1),  # platform, Services VPC, us-east-1, owned by nina and sam
    "hub2": vpc_id(2),  # platform, Services VPC, eu-west-1, owned by nina
    "app": vpc_id(3),  # finance, two blocks
    "overlap": vpc_id(4),  # finance, inside the hub's block
    "hr": vpc_id(5),  # hr, owned by olga (a peer that is no Services VPC)
    "gone": vpc_id(6),  # finance, no longer in AWS
    "eng": vpc_id(7),  # engineering, no owners: invisible to finance
}
SPOKE_STATUSES = [
    "pending",
    "pending_by_sam",
    "approved",
    "provisioning",
    "active",
    "active_drift",
    "failed",
    "failed_teardown",
    "decommissioning",
    "decommissioned",
    "rejected",
    "cancelled",
    "expired",
    "hr_pending",
]
SPOKE = {name: vpc_id(100 + i) for i, name in enumerate(SPOKE_STATUSES)}
REQUEST = {name: request_id(i + 1) for i, name in enumerate(SPOKE_STATUSES)}
TABLES = {
    "hub-main": rtb_id(1),
    "hub-private": rtb_id(2),
    "hub2-main": rtb_id(3),
    "app-main": rtb_id(4),
    "app-private": rtb_id(5),
    "overlap-main": rtb_id(6),
    "hr-main": rtb_id(7),
    "gone-main": rtb_id(8),
    "eng-main": rtb_id(9),
    **{f"{name}-main": rtb_id(100 + i) for i, name in enumerate(SPOKE_STATUSES)},
}
PCX = {
    "adoptable": pcx_id(1),  # overlap <-> hub: adopt reads AWS (the stub refuses)
    "outside": pcx_id(2),  # hub <-> a VPC the portal does not know
    "held": pcx_id(3),  # the active request's connection
    "strangers": pcx_id(4),  # between two unknown VPCs: visible to admins only
    "deleted": pcx_id(5),  # gone from AWS
    "eng": pcx_id(6),  # engineering's, not finance's
}
ACCOUNT = {
    "platform": "111111111111",
    "finance": "222222222222",
    "hr": "333333333333",
    "eng": "444444444444",
    "empty": "555555555555",
}
USERNAMES = ["fiona", "nina", "harry", "sam", "olga", "root", "nobody"]
ACTIONS = ["approve", "reject", "cancel", "retry", "decommission", "repair"]


class Pk(NamedTuple):
    """The primary key of a world object, resolved when the example runs (pks differ per database)."""

    kind: str
    name: str


@dataclass
class World:
    users: dict[str, Any]
    pks: dict[Pk, int] = field(default_factory=dict)
    browsers: dict[str, Browser] = field(default_factory=dict)

    def browser(self, who: str) -> Browser:
        """`who`'s browser, logged in once per test (outside any example, so no rollback logs it out)."""
        if who not in self.browsers:
            self.browsers[who] = Browser(self.users[who])
        return self.browsers[who]

    def value(self, v: Any) -> Any:
        if isinstance(v, Pk):
            return str(self.pks[v])
        return v


class StubGateway:
    """AWS for these tests: every call is refused, except the empty account's reads, which find nothing."""

    def __getattr__(self, name: str) -> Any:
        def call(ref: Any = None, *args: Any, **kwargs: Any) -> Any:
            if getattr(ref, "account_id", None) == ACCOUNT["empty"] and name.startswith("describe_"):
                return []
            raise gateway_module.AwsError("UnauthorizedOperation", "no AWS in the form fuzz", operation=name)

        return call


_real_getaddrinfo = socket.getaddrinfo


def fake_getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> Any:
    """Numeric hosts as the real resolver answers them (no DNS is asked); every name from a table."""
    try:
        return _real_getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
    except socket.gaierror:
        pass
    if isinstance(host, str):
        host.encode("idna")  # UnicodeError, as the real resolver raises, for a name IDNA cannot encode
        raw = host.encode()
    else:
        raw = bytes(host or b"")
    answers = ["93.184.216.34", "10.0.0.1", "169.254.169.254", "2606:2800:220:1::1", None]
    name = raw.rstrip(b".").lower()
    if name == b"hooks.example.com":
        address: str | None = answers[0]  # public: the webhook baseline is accepted
    elif name == b"metadata.example.com":
        address = answers[2]  # a public-looking name for the metadata service: refused
    else:
        address = answers[zlib.crc32(raw) % len(answers)]
    if address is None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    port_number = port if isinstance(port, int) else 443
    if ":" in address:
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port_number, 0, 0))]
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port_number))]


def build_world() -> World:
    """The world's rows (tests/factories.py), with the ids above: departments, users, accounts, VPCs
    and their route tables, a request in every state, audit events, peerings seen in AWS, a webhook."""

    finance, platform, hr, eng = (DepartmentFactory(slug=s) for s in ("finance", "platform", "hr", "engineering"))
    users = {name: UserFactory(username=name) for name in USERNAMES if name != "root"}
    users["root"] = get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    for name in ("fiona", "nina"):
        users[name].set_password(PASSWORD)
        users[name].save()
    finance.members.add(users["fiona"], users["sam"])
    platform.members.add(users["nina"])
    hr.members.add(users["harry"], users["olga"])
    accounts = {
        "platform": AwsAccountFactory(
            account_id=ACCOUNT["platform"], department=platform, regions=["us-east-1", "eu-west-1"]
        ),
        "finance": AwsAccountFactory(account_id=ACCOUNT["finance"], department=finance),
        "hr": AwsAccountFactory(account_id=ACCOUNT["hr"], department=hr, regions=["eu-west-1"]),
        "eng": AwsAccountFactory(account_id=ACCOUNT["eng"], department=eng),
        "empty": AwsAccountFactory(account_id=ACCOUNT["empty"], department=platform),
    }

    def vpc(name: str, account: str, blocks: list[str], region: str = "us-east-1", **kw: Any) -> Vpc:
        return VpcFactory(
            vpc_id=VPC.get(name) or SPOKE[name], name=name, account=accounts[account], region=region, cidrs=blocks, **kw
        )

    hub = vpc("hub", "platform", ["10.0.0.0/16"], is_services_vpc=True, owners=[users["nina"], users["sam"]])
    hub2 = vpc("hub2", "platform", ["10.100.0.0/16"], region="eu-west-1", is_services_vpc=True, owners=[users["nina"]])
    app = vpc("app", "finance", ["10.1.0.0/16", "10.11.0.0/16"])
    overlap = vpc("overlap", "finance", ["10.0.128.0/20"])
    hr_vpc = vpc("hr", "hr", ["10.2.0.0/16"], region="eu-west-1", owners=[users["olga"]])
    gone = vpc("gone", "finance", ["10.9.0.0/16"], present_in_aws=False)
    eng_vpc = vpc("eng", "eng", ["10.3.0.0/16"])
    for name, v in (
        ("hub", hub),
        ("hub2", hub2),
        ("app", app),
        ("overlap", overlap),
        ("hr", hr_vpc),
        ("gone", gone),
        ("eng", eng_vpc),
    ):
        RouteTableFactory(route_table_id=TABLES[f"{name}-main"], vpc=v, is_main=True, name="")
    RouteTableFactory(route_table_id=TABLES["hub-private"], vpc=hub, name="services-private")
    RouteTableFactory(route_table_id=TABLES["app-private"], vpc=app, name="app-private")

    statuses = {
        "pending": Status.PENDING_APPROVAL,
        "pending_by_sam": Status.PENDING_APPROVAL,
        "approved": Status.APPROVED,
        "provisioning": Status.PROVISIONING,
        "active": Status.ACTIVE,
        "active_drift": Status.ACTIVE,
        "failed": Status.FAILED,
        "failed_teardown": Status.FAILED,
        "decommissioning": Status.DECOMMISSIONING,
        "decommissioned": Status.DECOMMISSIONED,
        "rejected": Status.REJECTED,
        "cancelled": Status.CANCELLED,
        "expired": Status.EXPIRED,
        "hr_pending": Status.PENDING_APPROVAL,
    }
    for i, name in enumerate(SPOKE_STATUSES):
        owner = "hr" if name == "hr_pending" else "finance"
        spoke = vpc(name, owner, [f"10.{20 + i}.0.0/16"], region="eu-west-1" if owner == "hr" else "us-east-1")
        RouteTableFactory(route_table_id=TABLES[f"{name}-main"], vpc=spoke, is_main=True)
        extra: dict[str, Any] = {}
        if statuses[name] == Status.ACTIVE:
            extra["aws_peering_connection_id"] = PCX["held"] if name == "active" else pcx_id(50 + i)
        if name == "active_drift":
            extra["drift"] = {
                "found_at": timezone.now().isoformat(),
                "findings": [
                    {"code": "route_missing", "detail": f"route 10.0.0.0/16 missing from {TABLES[f'{name}-main']}"}
                ],
            }
        if statuses[name] == Status.FAILED:
            extra["failure_reason"] = "CreateVpcPeeringConnection: UnauthorizedOperation: <b>denied</b>\r\n"
            extra["failed_operation"] = "decommission" if name == "failed_teardown" else "provision"
        request = PeeringRequestFactory(
            id=uuid.UUID(REQUEST[name]),
            requester_vpc=spoke,
            accepter_vpc=hub2 if owner == "hr" else hub,
            status=statuses[name],
            external_ref=f"INC{i:05d}",
            requested_by=users["harry" if owner == "hr" else "sam" if name == "pending_by_sam" else "fiona"],
            **extra,
        )
        if statuses[name] in (Status.ACTIVE, Status.DECOMMISSIONING, Status.FAILED):
            route_rows(request, "active")
        audit.record(
            action="request.filed",
            actor=request.requested_by,
            request=request,
            to_status=Status.PENDING_APPROVAL,
            message="filed <script>x</script>",
        )
        if statuses[name] != Status.PENDING_APPROVAL:
            audit.record(
                action="request.approved",
                actor=users["nina"],
                request=request,
                from_status=Status.PENDING_APPROVAL,
                to_status=statuses[name],
                message="ok",
            )
    audit.record(action="account.synced", actor=users["root"], account_id=ACCOUNT["finance"], result="ok")
    audit.record(action="reconciler.ran", actor_label="reconciler", message="nothing drifted")

    def seen(key: str, requester: str, accepter: str, **kw: Any) -> None:
        ObservedPeeringFactory(
            connection_id=PCX[key],
            requester_vpc_id=requester,
            accepter_vpc_id=accepter,
            requester_account_id=ACCOUNT["finance"],
            accepter_account_id=ACCOUNT["platform"],
            requester_region="us-east-1",
            accepter_region="us-east-1",
            requester_cidrs=["10.0.128.0/20"],
            accepter_cidrs=["10.0.0.0/16"],
            **kw,
        )

    seen("adoptable", VPC["overlap"], VPC["hub"])
    seen("outside", vpc_id(999), VPC["hub"])
    seen("held", SPOKE["active"], VPC["hub"])
    seen("strangers", vpc_id(998), vpc_id(997))
    seen("deleted", VPC["app"], VPC["hub"], status="deleted")
    seen("eng", VPC["eng"], VPC["hub"])

    hook = Webhook.objects.create(
        url="https://hooks.example.com/portal", events=["*"], secret="whsec_fuzz", created_by=users["root"]
    )
    result = World(users=users)
    result.pks.update({Pk("user", name): u.pk for name, u in users.items()})
    result.pks.update({Pk("department", d.slug): d.pk for d in Department.objects.all()})
    result.pks.update({Pk("account", k): a.pk for k, a in accounts.items()})
    result.pks.update({Pk("vpc", v.name): v.pk for v in Vpc.objects.all()})
    result.pks[Pk("webhook", "hook")] = hook.pk
    for v in (hub, app, hr_vpc):
        for i, block in enumerate(v.cidr_blocks.order_by("pk")):
            result.pks[Pk("cidr", f"{v.name}-{i}")] = block.pk
    return result


# --- a browser ------------------------------------------------------------------------------------
def assert_served(response: Any, what: str) -> Any:
    """No 5xx; a streamed body is read to its end (its queries run only then)."""
    if getattr(response, "streaming", False):
        b"".join(response.streaming_content)
    assert response.status_code < 500, f"{what}: {response.status_code}\n{getattr(response, 'content', b'')[:2000]!r}"
    return response


class Browser:
    """A browser session: logged in (or not), CSRF enforced, the token from the cookie a GET set."""

    def __init__(self, user: Any = None) -> None:
        self.client = Client(enforce_csrf_checks=True)
        self.who = getattr(user, "username", "(anonymous)")
        if user is not None:
            self.client.force_login(user)

    @contextmanager
    def noted(self, what: str) -> Iterator[None]:
        """A crash names the request that caused it: who sent what, where."""
        try:
            yield
        except BaseException as exc:
            exc.add_note(f"form fuzz: {what} as {self.who}"[:3000])
            raise

    def get(self, path: str, params: Any = None, *, follow: bool = True) -> Any:
        with self.noted(f"GET {path} {params!r}"):
            return assert_served(self.client.get(path, params or {}, follow=follow), f"GET {path}")

    def get_raw(self, path: str, query: str) -> Any:
        with self.noted(f"GET {path}?{query}"):
            return assert_served(self.client.get(path, QUERY_STRING=query, follow=True), f"GET {path}?{query}")

    def token(self, page: str) -> str:
        if "csrftoken" not in self.client.cookies:
            self.get(page)
        if "csrftoken" not in self.client.cookies:  # the page was a 404 for this user: any form page will do
            self.get("/accounts/login/")
        return self.client.cookies["csrftoken"].value

    def post(
        self, path: str, pairs: list[tuple[str, Any]], *, page: str, encoding: str = "urlencoded", follow: bool = True
    ) -> Any:
        """Post `pairs` (repeats allowed, values str or raw bytes) as a browser submits a form."""
        pairs = [("csrfmiddlewaretoken", self.token(page)), *pairs]
        shown = [(k, v if len(v) < 200 else v[:40] + f"...({len(v)} long)") for k, v in pairs[1:]]
        with self.noted(f"POST {path} ({encoding}) {shown!r}"):
            return self._post(path, pairs, encoding=encoding, follow=follow)

    def _post(self, path: str, pairs: list[tuple[str, Any]], *, encoding: str, follow: bool) -> Any:
        if encoding == "multipart":
            body: dict[str, list[Any]] = {}
            for key, value in pairs:
                body.setdefault(key, []).append(value)
            response = self.client.post(path, body, follow=follow)
        else:
            encoded = urlencode([(k, v) for k, v in pairs])
            response = self.client.post(path, encoded, content_type="application/x-www-form-urlencoded", follow=follow)
        return assert_served(response, f"POST {path}")


@contextmanager
def rolled_back() -> Iterator[None]:
    """One example: everything it changes is undone, and no login counter or mail outlives it."""
    cache.clear()
    mail.outbox = []
    with transaction.atomic():
        yield
        transaction.set_rollback(True)
