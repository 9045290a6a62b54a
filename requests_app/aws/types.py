"""The gateway's language: accounts, VPCs, route tables, peerings and errors, as small frozen values.

Importable without boto3, so everything above the gateway speaks in these and never in boto3's.
"""

from __future__ import annotations

from dataclasses import dataclass

TRANSIENT_CODES = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "Unavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        # Eventual consistency right after a create: the id exists but is not yet visible.
        "InvalidVpcPeeringConnectionID.NotFound",
        "InvalidVpcPeeringConnectionId.NotFound",
    }
)


NOT_FOUND_CODES = frozenset(
    {
        "InvalidVpcPeeringConnectionID.NotFound",
        "InvalidVpcPeeringConnectionId.NotFound",
        "InvalidRoute.NotFound",
        "InvalidRouteTableID.NotFound",
    }
)


class AwsError(Exception):
    def __init__(self, code: str, message: str, operation: str = "") -> None:
        self.code = code
        self.message = message
        self.operation = operation
        super().__init__(f"{operation}: {code}: {message}" if operation else f"{code}: {message}")

    @property
    def is_not_found(self) -> bool:
        return self.code in NOT_FOUND_CODES


class TransientAwsError(AwsError):
    """Throttling, 5xx, timeouts, eventual consistency: try again later."""


class PermanentAwsError(AwsError):
    """Anything else: retrying the same call will not help."""


@dataclass(frozen=True)
class AccountRef:
    account_id: str
    role_arn: str
    external_id: str


@dataclass(frozen=True)
class RouteInfo:
    destination: str
    target: str
    state: str


@dataclass(frozen=True)
class RouteTableInfo:
    route_table_id: str
    vpc_id: str
    name: str
    is_main: bool
    routes: tuple[RouteInfo, ...]

    def route_to(self, destination: str) -> RouteInfo | None:
        return next((r for r in self.routes if r.destination == destination), None)


@dataclass(frozen=True)
class VpcInfo:
    vpc_id: str
    owner_id: str
    region: str
    name: str
    is_default: bool
    cidrs: tuple[str, ...]  # primary first, then associated secondary blocks
    dns_hostnames: bool
    dns_support: bool


@dataclass(frozen=True)
class PeeringInfo:
    connection_id: str
    status: str
    status_message: str
    requester_vpc_id: str
    requester_owner_id: str
    requester_region: str
    accepter_vpc_id: str
    accepter_owner_id: str
    accepter_region: str
    requester_dns_resolution: bool
    accepter_dns_resolution: bool
    tags: tuple[tuple[str, str], ...]
    requester_cidrs: tuple[str, ...] = ()
    accepter_cidrs: tuple[str, ...] = ()

    def tag(self, key: str) -> str | None:
        return dict(self.tags).get(key)

    @property
    def is_gone(self) -> bool:
        return self.status in {"deleted", "deleting", "rejected", "failed", "expired"}
