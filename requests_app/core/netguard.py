"""The guard on outbound HTTP to destinations that users choose.

The portal makes three kinds of outbound connection:

- **Webhooks** (`requests_app.webhooks`): HTTP POSTs to URLs an administrator registers through
  the API. The URL is user-supplied, so the worker that sends it must not become a way into the
  portal's own network: loopback, the cloud instance metadata service, private ranges. Every
  webhook goes through this module, which resolves the name once, requires every address it
  resolves to be globally routable, and then connects to exactly the address it checked (so a
  name that answers differently the second time it is asked, DNS rebinding, gains nothing). It
  never follows redirects and never uses a proxy from the environment (a proxy would resolve the
  name again, unchecked). `WEBHOOK_ALLOW_PRIVATE=1` (tests, labs) lifts the address rule only.
- **Email** (`requests_app.notifications`): SMTP to `EMAIL_HOST`, which the operator sets in the
  settings. Not guarded here: no user chooses it.
- **AWS** (`requests_app.aws`): boto3 to AWS, or to `AWS_ENDPOINT_URL` (the sandbox) when the
  operator sets it. Not guarded here: no user chooses it.

`check_url` resolves and checks a URL without connecting (for registering or changing a webhook);
`post` resolves, checks and sends. Both raise `DestinationRefused`; `post` raises `SendFailed`
when the checked destination cannot be reached or does not answer with HTTP. Neither ever puts
the URL's user name or password in a message.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import ipaddress
import socket
import ssl
import sys
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# As socket.getaddrinfo gives it; (int, bytes) is for families other than IPv4 and IPv6, which `_resolve` skips.
SockAddr = tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes]

EXCERPT_BYTES = 500  # how much of an answer's body is kept
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052's well-known prefix: the last 32 bits are the IPv4 address
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_PRIVATE = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"))


class DestinationRefused(Exception):
    """A URL the portal will not send to; `code` is for machines, `detail` is a sentence for people."""

    def __init__(self, code: str, detail: str) -> None:
        self.code = code  # invalid_url | unresolvable | private_destination
        self.detail = detail
        super().__init__(detail)


class SendFailed(Exception):
    """The checked destination was not reached, or did not answer with HTTP (refused, timed out, TLS, garbage)."""


@dataclass(frozen=True)
class Address:
    """One address a name resolved to, with what `socket.connect` needs to reach it."""

    family: int
    sockaddr: SockAddr
    ip: IPAddress

    def __str__(self) -> str:
        # As the resolver wrote it: Python 3.11 prints ::ffff:127.0.0.1 as ::ffff:7f00:1.
        return str(self.sockaddr[0])


@dataclass(frozen=True)
class Destination:
    """A URL taken apart, its name resolved once and every address checked."""

    scheme: str
    host: str  # as in the URL, for the Host header and TLS (SNI and the certificate's name)
    port: int
    target: str  # path and query: what goes on the request line
    addresses: tuple[Address, ...]
    # "Basic …" from user:password@ in the URL, else None; kept out of repr so it never reaches a log.
    authorization: str | None = field(default=None, repr=False)

    def where(self) -> str:
        """Host and addresses for messages; never the user name or password."""
        return f"{self.host} port {self.port} ({', '.join(str(a) for a in self.addresses)})"


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    body: bytes  # the first EXCERPT_BYTES bytes


# --- the address rule ---------------------------------------------------------------------------
def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is one of the forms that reach IPv4.

    `::ffff:127.0.0.1` is how a dual-stack socket writes 127.0.0.1; 6to4 (2002::/16) and NAT64
    (64:ff9b::/96) carry an IPv4 address to which a gateway on the way delivers. Each must be
    judged as the IPv4 address it reaches, not by its IPv6 range.
    """
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _reason(ip: IPAddress) -> str:
    """Why `ip` is not a destination, in words."""
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local, where cloud instance metadata services live"
    if ip.is_multicast:
        return "multicast"
    if ip in _SHARED:
        return "shared address space 100.64.0.0/10, used for carrier-grade NAT and by some clouds' metadata services"
    if any(ip in network for network in _PRIVATE):
        return "private"
    if ip.is_reserved:
        return "reserved"
    return "special-purpose, per the IANA registries"


def refusal_reason(ip: IPAddress) -> str | None:
    """None if `ip` is a globally routable unicast address; else why not.

    `is_global` is the rule (the IANA special-purpose registries), rather than a list of ranges
    to refuse: a list is always missing one (100.64.0.0/10 was). Python counts multicast as
    global and some reserved IPv6 blocks (such as IPv4-compatible ::a.b.c.d) as global, so those
    are refused explicitly.
    """
    inner = embedded_ipv4(ip)
    judged: IPAddress = inner if inner is not None else ip
    if judged.is_global and not (judged.is_multicast or judged.is_unspecified or judged.is_reserved):
        return None
    reason = _reason(judged)
    return f"it stands for the IPv4 address {inner}: {reason}" if inner is not None else reason


# --- resolving and checking ---------------------------------------------------------------------
def check_url(url: str, *, allow_private: bool | None = None) -> Destination:
    """Take `url` apart, resolve its name once and check every address; never connects.

    Raises DestinationRefused. `allow_private` defaults to settings.WEBHOOK_ALLOW_PRIVATE.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise DestinationRefused("invalid_url", f"a webhook URL must be http or https, not {scheme or 'none'}")
    host = parts.hostname or ""
    if not host:
        raise DestinationRefused("invalid_url", "a webhook URL must name a host")
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        port = 0
    if port is None:
        port = 443 if scheme == "https" else 80
    elif not 0 < port < 65536:
        raise DestinationRefused(
            "invalid_url", f"the port of the webhook URL for {host} is not a number from 1 to 65535"
        )
    addresses = _resolve(host, port)
    if not (settings.WEBHOOK_ALLOW_PRIVATE if allow_private is None else allow_private):
        for address in addresses:
            reason = refusal_reason(address.ip)
            if reason is not None:
                named = f"{host} is" if host == str(address) else f"{host} resolves to {address}, which is"
                raise DestinationRefused(
                    "private_destination",
                    f"{named} not a globally routable address ({reason}); "
                    "set WEBHOOK_ALLOW_PRIVATE=1 to allow such destinations",
                )
    authorization = None
    if parts.username is not None or parts.password is not None:
        # user:password@ in a URL means HTTP Basic authentication; it goes in a header, never the Host.
        credentials = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(credentials.encode()).decode()
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # The request line must be ASCII: percent-encode any other character, leaving existing escapes alone.
    target = quote(target, safe="".join(chr(c) for c in range(0x21, 0x7F)))
    return Destination(scheme, host, port, target, addresses, authorization)


def _resolve(host: str, port: int) -> tuple[Address, ...]:
    """Every TCP address of `host`, in the resolver's order, from one lookup (the only one)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError) as exc:  # gaierror; ValueError: a name IDNA cannot encode
        raise DestinationRefused("unresolvable", f"{host} does not resolve ({exc})")
    addresses: list[Address] = []
    for family, _type, _proto, _canonname, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        # An IPv6 scope ("fe80::1%eth0") is not part of the address being judged.
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if all(a.sockaddr != sockaddr for a in addresses):
            addresses.append(Address(family, sockaddr, ip))
    if not addresses:
        raise DestinationRefused("unresolvable", f"{host} has no IPv4 or IPv6 address")
    return tuple(addresses)


# --- connecting to the checked address ----------------------------------------------------------
def _open_socket(address: Address, timeout: float | None) -> socket.socket:
    """A TCP connection to exactly this address: no name is looked up here, so none can change."""
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(address.sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


def _tls_context() -> ssl.SSLContext:
    """The system's trust store, certificate and host name checks on (tests swap in their own CA)."""
    return ssl.create_default_context()


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to a pre-checked address; the Host header still names the URL's host (http.client writes it)."""

    def __init__(self, destination: Destination, timeout: float) -> None:
        super().__init__(destination.host, destination.port, timeout=timeout)
        self.destination = destination

    def connect(self) -> None:
        sys.audit("http.client.connect", self, self.host, self.port)
        failures: list[OSError] = []
        for address in self.destination.addresses:  # every one of them passed the check
            try:
                self.sock = _open_socket(address, self.timeout)
                break
            except OSError as exc:
                failures.append(exc)
        else:
            if len(failures) == 1:
                raise failures[0]
            tried = zip(self.destination.addresses, failures, strict=True)
            said = "; ".join(f"{a}: {e.__class__.__name__}: {e}" for a, e in tried)
            raise ConnectionError(f"no address answered ({said})")
        with contextlib.suppress(OSError):  # not every platform has it; the request works without
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    """HTTPS to a pre-checked address; SNI and the certificate check use the URL's host, not the address."""

    default_port = 443  # so the Host header leaves out :443, as for any https URL

    def connect(self) -> None:
        super().connect()
        context = _tls_context()
        context.set_alpn_protocols(["http/1.1"])
        self.sock = context.wrap_socket(self.sock, server_hostname=self.host)


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Response:
    """POST `body` to `url`: resolve once, check every address, connect only to a checked one.

    A redirect is an answer like any other (following it could reach an internal address), and
    no proxy is used. `timeout` bounds each connect and each read, as socket timeouts do.
    Raises DestinationRefused or SendFailed.
    """
    destination = check_url(url)
    connection_class = _PinnedHTTPSConnection if destination.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(destination, timeout)
    sent = {"Connection": "close", **headers}
    if destination.authorization and not any(k.lower() == "authorization" for k in headers):
        sent["Authorization"] = destination.authorization
    try:
        connection.request("POST", destination.target, body=body, headers=sent)
        answer = connection.getresponse()
        return Response(answer.status, answer.reason, answer.read(EXCERPT_BYTES))
    except (OSError, http.client.HTTPException, ValueError) as exc:
        # OSError: refused, reset, timed out, TLS (ssl.SSLError); HTTPException: not HTTP; ValueError: a
        # header http.client will not send. The message names the host and addresses, never the URL.
        raise SendFailed(f"{exc.__class__.__name__}: {exc} [{destination.where()}]") from exc
    finally:
        connection.close()


def redacted(url: str) -> str:
    """`url` without a user name or password, for logs and messages."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=netloc).geturl()
