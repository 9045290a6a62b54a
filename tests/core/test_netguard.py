"""The guard on webhook destinations (requests_app/core/netguard.py), through the real sender.

Names are answered by a stub resolver put in place of `socket.getaddrinfo`, so a test decides
what a name resolves to and how many times it was asked. Receivers are real HTTP(S) servers on
127.0.0.1. Every connection the guard opens is recorded, and one to a globally routable address
is refused on the spot: these tests never reach the Internet.
"""

from __future__ import annotations

import base64
import datetime
import errno
import hashlib
import hmac
import ipaddress
import logging
import socket
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from requests_app.core import netguard
from requests_app.integrations import webhooks
from requests_app.models import Webhook, WebhookDelivery

PUBLIC = "93.184.216.34"
AddrInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[str, int] | tuple[str, int, int, int]]


# --- a stub resolver, the connections made, receivers ---------------------------------------------
class StubResolver:
    """`socket.getaddrinfo` for names the test chose; any other name goes to the real resolver."""

    def __init__(self, real: Callable[..., list[AddrInfo]]) -> None:
        self.real = real
        self.rounds: dict[str, list[list[str] | None]] = {}
        self.calls: list[str] = []

    def answer(self, name: str, *rounds: list[str] | None) -> None:
        """Answer each lookup of `name` with the next round (None: does not resolve); the last one repeats."""
        self.rounds[name] = list(rounds)

    def __call__(self, host: str, port: int | str | None, *args: Any, **kwargs: Any) -> list[AddrInfo]:
        if host not in self.rounds:
            return self.real(host, port, *args, **kwargs)
        self.calls.append(host)
        rounds = self.rounds[host]
        addresses = rounds.pop(0) if len(rounds) > 1 else rounds[0]
        if addresses is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        infos: list[AddrInfo] = []
        for address in addresses:
            if ":" in address:
                infos.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, int(port or 0), 0, 0)))
            else:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 0))))
        return infos


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> StubResolver:
    stub = StubResolver(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", stub)
    return stub


@dataclass
class Connects:
    addresses: list[tuple[str, int]] = field(default_factory=list)


@pytest.fixture(autouse=True)
def connects(monkeypatch: pytest.MonkeyPatch) -> Connects:
    """Every address the guard connects to; a public one is refused here, so no test leaves the machine."""
    seen = Connects()
    real = netguard._open_socket

    def recording(address: netguard.Address, timeout: float) -> socket.socket:
        seen.addresses.append((str(address), address.sockaddr[1]))
        if netguard.refusal_reason(address.ip) is None:  # routable: could leave the machine
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused (tests never reach the Internet)")
        return real(address, timeout)

    monkeypatch.setattr(netguard, "_open_socket", recording)
    return seen


@dataclass
class Received:
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


class Receiver:
    """An HTTP (or, given a TLS context, HTTPS) server on 127.0.0.1 that records every POST."""

    def __init__(self, status: int = 200, headers: dict[str, str] | None = None, tls: ssl.SSLContext | None = None):
        self.received: list[Received] = []
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gives up on the TLS handshake is what some tests expect

        self.server = Server(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port: int = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(*args: Any, **kwargs: Any) -> Receiver:
        made.append(Receiver(*args, **kwargs))
        return made[-1]

    yield make
    for one in made:
        one.close()


@pytest.fixture
def delivery_to(django_user_model: Any) -> Callable[[str], WebhookDelivery]:
    """A pending delivery to `url`, as webhooks.queue writes it (no request: the column is nullable)."""
    admin = django_user_model.objects.create_user("hooks-admin", "hooks-admin@example.com", "x")

    def make(url: str) -> WebhookDelivery:
        hook = Webhook.objects.create(url=url, events=["*"], created_by=admin, secret=webhooks.new_secret())
        now = timezone.now()
        payload = {"type": "peering_request.submitted", "timestamp": now.isoformat(), "data": {"id": str(uuid.uuid4())}}
        return WebhookDelivery.objects.create(
            webhook=hook, event_type="peering_request.submitted", payload=payload, next_attempt_at=now
        )

    return make


def make_due(delivery: WebhookDelivery) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def signed_by_hand(secret: str, got: Received) -> bool:
    """Standard Webhooks, written out (not webhooks.sign): HMAC-SHA256 over id.timestamp.body."""
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = f"{got.headers['webhook-id']}.{got.headers['webhook-timestamp']}.".encode() + got.body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, offered) for offered in got.headers["webhook-signature"].split())


# === 1. DNS rebinding, through the real sender ========================================================
@pytest.mark.django_db
def test_a_name_that_answers_loopback_after_the_check_never_reaches_the_loopback_receiver(
    settings: Any,
    dns: StubResolver,
    connects: Connects,
    receiver: Callable[..., Receiver],
    delivery_to: Callable[[str], WebhookDelivery],
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = False
    settings.WEBHOOK_TIMEOUT_SECONDS = 5
    inside = receiver()  # what an attacker wants to reach: a service on the worker's loopback
    dns.answer("rebind.example.test", [PUBLIC], ["127.0.0.1"])  # public when checked, loopback afterwards
    delivery = delivery_to(f"http://rebind.example.test:{inside.port}/hooks/portal")

    outcome = webhooks.attempt(delivery.pk)

    assert inside.received == [], "the delivery went to the address of a second lookup"
    assert dns.calls == ["rebind.example.test"]  # one lookup: the address checked is the address used
    assert connects.addresses == [(PUBLIC, inside.port)]
    assert outcome.state == "retry"  # the public address did not answer: an ordinary failed attempt
    [logged] = delivery.attempt_log.all()
    assert logged.status_code is None
    assert "ConnectionRefusedError" in logged.error and PUBLIC in logged.error

    # The next attempt looks the name up again (once) and now sees loopback: refused before connecting.
    make_due(delivery)
    assert webhooks.attempt(delivery.pk).state == "failed"
    assert inside.received == []
    assert connects.addresses == [(PUBLIC, inside.port)]
    delivery.refresh_from_db()
    assert delivery.state == "failed" and delivery.attempts == 2
    assert delivery.last_error.startswith("refused destination: rebind.example.test resolves to 127.0.0.1")
    assert [a.status_code for a in delivery.attempt_log.order_by("number")] == [None, None]


@pytest.mark.django_db
def test_a_name_with_one_private_address_among_public_ones_is_refused_at_send_time(
    settings: Any,
    dns: StubResolver,
    connects: Connects,
    receiver: Callable[..., Receiver],
    delivery_to: Callable[[str], WebhookDelivery],
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = False
    inside = receiver()
    dns.answer("mixed.example.test", [PUBLIC, "127.0.0.1"])
    delivery = delivery_to(f"http://mixed.example.test:{inside.port}/")
    assert webhooks.attempt(delivery.pk).state == "failed"
    assert inside.received == [] and connects.addresses == []
    [logged] = delivery.attempt_log.all()
    assert "mixed.example.test resolves to 127.0.0.1" in logged.error


@pytest.mark.django_db
def test_a_name_that_stops_resolving_is_retried_not_given_up(
    settings: Any, dns: StubResolver, delivery_to: Callable[[str], WebhookDelivery]
) -> None:
    """A DNS outage is not a refusal: the delivery waits for the next attempt."""
    settings.WEBHOOK_ALLOW_PRIVATE = False
    dns.answer("gone.example.test", None)
    delivery = delivery_to("https://gone.example.test/hook")
    assert webhooks.attempt(delivery.pk).state == "retry"
    delivery.refresh_from_db()
    assert delivery.state == "pending" and "gone.example.test does not resolve" in delivery.last_error


# === 2. the address rule ==============================================================================
REFUSED = [
    "100.64.0.1",  # shared address space (carrier-grade NAT)
    "100.100.100.200",  # Alibaba Cloud's metadata service, in 100.64.0.0/10
    "169.254.169.254",  # AWS, GCP and Azure metadata
    "127.0.0.1",
    "127.8.9.10",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.10",
    "0.0.0.0",
    "224.0.0.1",
    "255.255.255.255",
    "240.0.0.1",
    "198.18.0.1",
    "192.0.2.1",
    "::1",
    "::",
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:169.254.169.254",
    "::7f00:1",  # IPv4-compatible (deprecated) loopback
    "64:ff9b::7f00:1",  # NAT64 of loopback
    "64:ff9b::a9fe:a9fe",  # NAT64 of the metadata address
    "2002:7f00:1::1",  # 6to4 of loopback
    "2002:a9fe:a9fe::",  # 6to4 of the metadata address
    "64:ff9b:1::a00:1",  # local-use NAT64
    "2001::1",  # Teredo
    "fd00::1",
    "fe80::1",
    "ff02::1",
    "fd00:ec2::254",  # AWS metadata over IPv6
]
ACCEPTED = [PUBLIC, "1.1.1.1", "2606:2800:220:1:248:1893:25c8:1946", "::ffff:93.184.216.34", "64:ff9b::5db8:d822"]


@pytest.mark.parametrize("address", REFUSED)
def test_a_name_resolving_to_a_non_global_address_is_refused(
    address: str, settings: Any, dns: StubResolver, connects: Connects
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = False
    dns.answer("hooks.example.test", [address])
    with pytest.raises(netguard.DestinationRefused) as refused:
        netguard.check_url("https://hooks.example.test/portal")
    assert refused.value.code == "private_destination"
    assert refused.value.detail.startswith(
        f"hooks.example.test resolves to {address}, which is not a globally routable"
    )
    assert "WEBHOOK_ALLOW_PRIVATE=1" in refused.value.detail
    assert connects.addresses == []


@pytest.mark.parametrize("address", REFUSED)
def test_a_url_naming_a_non_global_address_is_refused(address: str, settings: Any, connects: Connects) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = False
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(netguard.DestinationRefused) as refused:
        netguard.check_url(f"http://{host}:8080/hook")
    assert refused.value.code == "private_destination"
    assert connects.addresses == []


@pytest.mark.parametrize(
    "addresses",
    [[PUBLIC, "10.0.0.7"], ["10.0.0.7", PUBLIC], ["2606:2800:220:1:248:1893:25c8:1946", "::1"], [PUBLIC, "100.64.1.1"]],
)
def test_one_non_global_address_among_several_is_enough_to_refuse(
    addresses: list[str], settings: Any, dns: StubResolver
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = False
    dns.answer("several.example.test", addresses)
    with pytest.raises(netguard.DestinationRefused) as refused:
        netguard.check_url("https://several.example.test/")
    [bad] = [a for a in addresses if not ipaddress.ip_address(a).is_global]
    assert f"resolves to {bad}," in refused.value.detail


@pytest.mark.parametrize("address", ACCEPTED)
def test_a_public_address_is_accepted_without_connecting(
    address: str, settings: Any, dns: StubResolver, connects: Connects
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = False
    dns.answer("public.example.test", [address])
    checked = netguard.check_url("https://public.example.test/hooks?x=1")
    assert [str(a) for a in checked.addresses] == [address]
    assert (checked.scheme, checked.host, checked.port, checked.target) == (
        "https",
        "public.example.test",
        443,
        "/hooks?x=1",
    )
    assert connects.addresses == []


def test_the_refusal_names_the_host_the_address_and_the_reason(settings: Any, dns: StubResolver) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = False
    dns.answer("hooks.example.com", ["100.100.100.200"])
    with pytest.raises(netguard.DestinationRefused) as refused:
        netguard.check_url("https://hooks.example.com/x")
    assert refused.value.detail == (
        "hooks.example.com resolves to 100.100.100.200, which is not a globally routable address (shared address "
        "space 100.64.0.0/10, used for carrier-grade NAT and by some clouds' metadata services); "
        "set WEBHOOK_ALLOW_PRIVATE=1 to allow such destinations"
    )
    dns.answer("mapped.example.com", ["::ffff:127.0.0.1"])
    with pytest.raises(netguard.DestinationRefused) as mapped:
        netguard.check_url("https://mapped.example.com/x")
    assert "(it stands for the IPv4 address 127.0.0.1: loopback)" in mapped.value.detail
    with pytest.raises(netguard.DestinationRefused) as literal:
        netguard.check_url("http://169.254.169.254/latest/meta-data/")
    assert literal.value.detail.startswith("169.254.169.254 is not a globally routable address (link-local")


def test_with_allow_private_any_resolved_address_is_accepted(settings: Any, dns: StubResolver) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = True
    dns.answer("lab.example.test", ["127.0.0.1", "10.0.0.1", "100.100.100.200"])
    assert len(netguard.check_url("http://lab.example.test/").addresses) == 3
    assert netguard.check_url("http://[::ffff:127.0.0.1]:9/").addresses[0].ip.ipv4_mapped is not None
    dns.answer("nowhere.example.test", None)
    with pytest.raises(netguard.DestinationRefused) as refused:
        netguard.check_url("http://nowhere.example.test/")
    assert refused.value.code == "unresolvable"


@pytest.mark.parametrize(
    "url",
    [
        "ftp://93.184.216.34/hooks",
        "file:///etc/passwd",
        "gopher://93.184.216.34/",
        "http:///hooks",
        "https://93.184.216.34:99999/",
        "http://93.184.216.34:0/",
        "http://93.184.216.34:http/",
    ],
)
def test_only_http_and_https_urls_with_a_host_and_a_port_are_accepted(url: str, settings: Any) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = True  # the scheme, host and port are checked whatever the addresses
    with pytest.raises(netguard.DestinationRefused) as refused:
        netguard.check_url(url)
    assert refused.value.code == "invalid_url"


def test_credentials_in_a_url_never_appear_in_a_refusal(settings: Any, dns: StubResolver) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = False
    dns.answer("creds.example.test", ["10.9.9.9"])
    with pytest.raises(netguard.DestinationRefused) as refused:
        netguard.check_url("https://alice:s3cret-pw@creds.example.test/hook")
    assert "s3cret" not in refused.value.detail and "alice" not in refused.value.detail
    settings.WEBHOOK_ALLOW_PRIVATE = True
    checked = netguard.check_url("https://alice:s3cret-pw@creds.example.test/hook")
    assert checked.authorization is not None and "s3cret" not in repr(checked)
    assert (
        netguard.redacted("https://alice:s3cret-pw@creds.example.test:8443/h?q=1")
        == "https://creds.example.test:8443/h?q=1"
    )


# === 3. delivering through the pinned connection ======================================================
@pytest.mark.django_db
def test_with_allow_private_a_loopback_receiver_gets_a_signed_delivery_with_the_names_host_header(
    settings: Any,
    dns: StubResolver,
    connects: Connects,
    receiver: Callable[..., Receiver],
    delivery_to: Callable[[str], WebhookDelivery],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.WEBHOOK_TIMEOUT_SECONDS = 5
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # a proxy that is not there: it must not be used
    hooks = receiver()
    # The first address refuses the connection (nothing listens on 127.0.0.2): the next checked one is tried.
    dns.answer("hooks.portal.test", ["127.0.0.2", "127.0.0.1"])
    delivery = delivery_to(f"http://alice:s3cret-pw@hooks.portal.test:{hooks.port}/hooks/portal?tenant=7")

    with caplog.at_level(logging.DEBUG):
        assert webhooks.attempt(delivery.pk).state == "delivered"

    assert dns.calls == ["hooks.portal.test"]
    assert connects.addresses == [("127.0.0.2", hooks.port), ("127.0.0.1", hooks.port)]
    [got] = hooks.received
    assert got.path == "/hooks/portal?tenant=7"
    assert got.headers["host"] == f"hooks.portal.test:{hooks.port}"  # the name, not the address connected to
    assert got.headers["authorization"] == "Basic " + base64.b64encode(b"alice:s3cret-pw").decode()
    assert got.headers["content-type"] == "application/json"
    assert got.headers["webhook-id"] == delivery.message_id
    assert signed_by_hand(delivery.webhook.secret, got)
    assert got.body == webhooks.body_of(delivery)
    [logged] = delivery.attempt_log.all()
    assert (logged.status_code, logged.error, logged.response_excerpt) == (200, "", "ok")
    assert "s3cret" not in caplog.text


def test_a_redirect_is_an_answer_and_is_not_followed(
    settings: Any, dns: StubResolver, receiver: Callable[..., Receiver]
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = True
    elsewhere = receiver()
    redirecting = receiver(status=307, headers={"Location": f"http://127.0.0.1:{elsewhere.port}/"})
    dns.answer("redirect.example.test", ["127.0.0.1"])
    answer = netguard.post(f"http://redirect.example.test:{redirecting.port}/", b"{}", {}, timeout=5)
    assert answer.status == 307 and answer.body == b"ok"
    assert len(redirecting.received) == 1 and elsewhere.received == []


def test_a_receiver_that_never_answers_times_out(settings: Any) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = True
    with socket.socket() as silent:  # listens (the kernel completes the handshake) but never reads or answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        with pytest.raises(netguard.SendFailed, match="TimeoutError"):
            netguard.post(f"http://127.0.0.1:{silent.getsockname()[1]}/", b"{}", {}, timeout=0.5)


# === 4. HTTPS: the name is used for SNI and the certificate check, not the address ====================
@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path
    pem: str


@pytest.fixture(scope="module")
def localhost_certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for the name "localhost" only (no IP address in it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "cert.pem").write_bytes(pem)
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Certificate(folder / "cert.pem", folder / "key.pem", pem.decode())


@dataclass
class TlsReceiver:
    receiver: Receiver
    server_names: list[str | None]


@pytest.fixture
def tls_receiver(
    localhost_certificate: Certificate, receiver: Callable[..., Receiver], monkeypatch: pytest.MonkeyPatch
) -> TlsReceiver:
    """An HTTPS receiver on 127.0.0.1 that records the SNI names offered; the guard trusts its certificate."""
    names: list[str | None] = []
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(localhost_certificate.cert, localhost_certificate.key)
    server_context.sni_callback = lambda _sock, name, _context: names.append(name)
    monkeypatch.setattr(netguard, "_tls_context", lambda: ssl.create_default_context(cadata=localhost_certificate.pem))
    return TlsReceiver(receiver(tls=server_context), names)


def test_https_checks_the_certificate_against_the_name_and_sends_it_as_sni(
    settings: Any, dns: StubResolver, connects: Connects, tls_receiver: TlsReceiver
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = True
    port = tls_receiver.receiver.port
    dns.answer("localhost", ["127.0.0.1"])
    answer = netguard.post(f"https://localhost:{port}/hooks", b"{}", {"Content-Type": "application/json"}, timeout=5)
    assert answer.status == 200
    assert connects.addresses == [("127.0.0.1", port)]
    assert tls_receiver.server_names == ["localhost"]
    [got] = tls_receiver.receiver.received
    assert got.headers["host"] == f"localhost:{port}"


def test_https_to_a_name_the_certificate_does_not_cover_fails_although_the_address_is_the_same(
    settings: Any, dns: StubResolver, tls_receiver: TlsReceiver
) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE = True
    port = tls_receiver.receiver.port
    dns.answer("elsewhere.example.test", ["127.0.0.1"])
    with pytest.raises(netguard.SendFailed, match=r"SSLCertVerificationError.*elsewhere\.example\.test"):
        netguard.post(f"https://elsewhere.example.test:{port}/hooks", b"{}", {}, timeout=5)
    assert tls_receiver.server_names == ["elsewhere.example.test"]
    assert tls_receiver.receiver.received == []
