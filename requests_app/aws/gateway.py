"""The only module that talks to boto3.

It assumes each account's role with that account's ExternalId, honours AWS_ENDPOINT_URL (boto3
reads it itself), returns small frozen dataclasses, and sorts every ClientError into
`TransientAwsError` (worth retrying) or `PermanentAwsError`."""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config
from django.conf import settings

from requests_app.aws import ratelimit
from requests_app.aws.types import (
    TRANSIENT_CODES,
    AccountRef,
    AwsError,
    PeeringInfo,
    PermanentAwsError,
    RouteInfo,
    RouteTableInfo,
    TransientAwsError,
    VpcInfo,
)

logger = logging.getLogger(__name__)


SESSION_NAME = "peering-portal"


# botocore's standard mode retries throttling and 5xx with backoff before we ever see them.
BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=20)


def _translate(exc: Exception, operation: str) -> AwsError:
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        message = str(error.get("Message", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in TRANSIENT_CODES or (isinstance(status, int) and status >= 500):
            return TransientAwsError(code, message, operation)
        return PermanentAwsError(code, message, operation)
    if isinstance(
        exc,
        (
            botocore.exceptions.EndpointConnectionError,
            botocore.exceptions.ConnectTimeoutError,
            botocore.exceptions.ReadTimeoutError,
            botocore.exceptions.ConnectionClosedError,
        ),
    ):
        return TransientAwsError("ConnectionError", str(exc), operation)
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return PermanentAwsError("NoCredentials", str(exc), operation)
    raise exc


def _peering_from_api(item: dict[str, Any]) -> PeeringInfo:
    req = item.get("RequesterVpcInfo", {})
    acc = item.get("AccepterVpcInfo", {})
    return PeeringInfo(
        connection_id=item["VpcPeeringConnectionId"],
        status=item.get("Status", {}).get("Code", ""),
        status_message=item.get("Status", {}).get("Message", ""),
        requester_vpc_id=req.get("VpcId", ""),
        requester_owner_id=req.get("OwnerId", ""),
        requester_region=req.get("Region", ""),
        accepter_vpc_id=acc.get("VpcId", ""),
        accepter_owner_id=acc.get("OwnerId", ""),
        accepter_region=acc.get("Region", ""),
        requester_dns_resolution=bool(req.get("PeeringOptions", {}).get("AllowDnsResolutionFromRemoteVpc", False)),
        accepter_dns_resolution=bool(acc.get("PeeringOptions", {}).get("AllowDnsResolutionFromRemoteVpc", False)),
        tags=tuple((t["Key"], t["Value"]) for t in item.get("Tags", [])),
        requester_cidrs=_peering_cidrs(req),
        accepter_cidrs=_peering_cidrs(acc),
    )


def _peering_cidrs(side: dict[str, Any]) -> tuple[str, ...]:
    """A side's IPv4 blocks: AWS lists them all in CidrBlockSet (the sandbox gives only CidrBlock)."""
    blocks = [side["CidrBlock"]] if side.get("CidrBlock") else []
    blocks += [b["CidrBlock"] for b in side.get("CidrBlockSet", []) if b.get("CidrBlock")]
    return tuple(dict.fromkeys(blocks))


def _route_target(route: dict[str, Any]) -> str:
    for key in (
        "VpcPeeringConnectionId",
        "GatewayId",
        "NatGatewayId",
        "TransitGatewayId",
        "NetworkInterfaceId",
        "InstanceId",
        "VpcEndpointId",
        "CarrierGatewayId",
        "LocalGatewayId",
        "EgressOnlyInternetGatewayId",
    ):
        if route.get(key):
            return str(route[key])
    return "unknown"


def _name_tag(tags: list[dict[str, str]] | None) -> str:
    return next((t["Value"] for t in tags or [] if t["Key"] == "Name"), "")


class AwsGateway:
    """Per-account, per-region EC2 access through assumed roles.

    One instance per worker process is enough; clients on assumed-role credentials are cached
    until shortly before those expire.
    """

    def __init__(self, base_session: boto3.Session | None = None, *, call_log: str = "") -> None:
        self._base = base_session or boto3.Session()
        self._lock = threading.Lock()
        # A JSON Lines file that gets one line per EC2 call (operation, account, region,
        # parameters): an operator's trace of exactly what the portal asked AWS to do.
        self.call_log = call_log
        # botocore event handlers put on every EC2 client: (event, handler, first?).
        self._hooks: list[tuple[str, Callable[..., Any], bool]] = []
        self._clients: dict[tuple[str, str, str], tuple[float, Any]] = {}
        self.calls = 0  # AWS calls made, for tests and benchmarks

    # --- sessions -------------------------------------------------------------------------
    def _assume(self, account: AccountRef) -> tuple[float, dict[str, str]]:
        sts = self._base.client("sts", config=BOTO_CONFIG)
        try:
            self.calls += 1
            creds = sts.assume_role(
                RoleArn=account.role_arn,
                RoleSessionName=SESSION_NAME,
                ExternalId=account.external_id,
            )["Credentials"]
        except Exception as exc:
            raise _translate(exc, "AssumeRole") from exc
        values = {
            "aws_access_key_id": creds["AccessKeyId"],
            "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"],
        }
        return creds["Expiration"].timestamp(), values

    def ec2(self, account: AccountRef, region: str) -> Any:
        """An EC2 client acting as `account` in `region`, reused until its role session nears expiry."""
        key = (account.role_arn, account.external_id, region)
        with self._lock:
            cached = self._clients.get(key)
            if cached and cached[0] - time.time() > 300:
                return cached[1]
            expires, creds = self._assume(account)
            client = boto3.Session(region_name=region, **creds).client("ec2", config=BOTO_CONFIG)
            if self.call_log:
                client.meta.events.register(
                    "before-parameter-build.ec2", functools.partial(self._trace, account.account_id, region)
                )
            client.meta.events.register(
                "before-call.ec2", functools.partial(ratelimit.hook, account.account_id, region)
            )
            for event, handler, first in self._hooks:
                (client.meta.events.register_first if first else client.meta.events.register)(event, handler)
            self._clients[key] = (expires, client)
            return client

    def add_hook(self, event: str, handler: Callable[..., Any], *, first: bool = False) -> None:
        """Put a botocore event handler on every EC2 client, now and later (tracing, fault injection)."""
        with self._lock:
            self._hooks.append((event, handler, first))
            for _, client in self._clients.values():
                (client.meta.events.register_first if first else client.meta.events.register)(event, handler)

    def _trace(self, account_id: str, region: str, params: dict[str, Any], model: Any, **_: Any) -> None:
        line = json.dumps(
            {
                "time": time.time(),
                "operation": model.name,
                "account_id": account_id,
                "region": region,
                "params": params,
            },
            default=str,
        )
        with self._lock, open(self.call_log, "a", encoding="utf-8") as log:
            log.write(line + "\n")

    def _call(self, client: Any, operation: str, **kwargs: Any) -> Any:
        self.calls += 1
        started = time.monotonic()
        try:
            result = getattr(client, operation)(**kwargs)
        except Exception as exc:
            error = _translate(exc, _camel(operation))
            logger.warning(
                "aws %s region=%s failed %s in %.0f ms",
                _camel(operation),
                client.meta.region_name,
                error.code,
                (time.monotonic() - started) * 1000,
            )
            raise error from exc
        logger.info(
            "aws %s region=%s ok in %.0f ms",
            _camel(operation),
            client.meta.region_name,
            (time.monotonic() - started) * 1000,
        )
        return result

    # --- inventory ------------------------------------------------------------------------
    def describe_vpcs(self, account: AccountRef, region: str) -> list[VpcInfo]:
        ec2 = self.ec2(account, region)
        result = []
        for vpc in self._call(ec2, "describe_vpcs")["Vpcs"]:
            if vpc.get("OwnerId") and vpc["OwnerId"] != account.account_id:
                continue  # shared into this account by RAM; its owner's sync reads it
            blocks = [vpc["CidrBlock"]] + [
                a["CidrBlock"]
                for a in vpc.get("CidrBlockAssociationSet", [])
                if a.get("CidrBlockState", {}).get("State", "associated") == "associated"
                and a["CidrBlock"] != vpc["CidrBlock"]
            ]
            hostnames = self._call(ec2, "describe_vpc_attribute", VpcId=vpc["VpcId"], Attribute="enableDnsHostnames")[
                "EnableDnsHostnames"
            ]["Value"]
            support = self._call(ec2, "describe_vpc_attribute", VpcId=vpc["VpcId"], Attribute="enableDnsSupport")[
                "EnableDnsSupport"
            ]["Value"]
            result.append(
                VpcInfo(
                    vpc_id=vpc["VpcId"],
                    owner_id=account.account_id,
                    region=region,
                    name=_name_tag(vpc.get("Tags")),
                    is_default=bool(vpc.get("IsDefault")),
                    cidrs=tuple(dict.fromkeys(blocks)),
                    dns_hostnames=bool(hostnames),
                    dns_support=bool(support),
                )
            )
        return result

    def describe_route_tables(
        self, account: AccountRef, region: str, route_table_ids: list[str] | None = None, *, skip_missing: bool = False
    ) -> list[RouteTableInfo]:
        """The route tables; with `skip_missing`, ids deleted in AWS are left out instead of failing
        the whole call (AWS answers InvalidRouteTableID.NotFound if any one id is gone)."""
        ec2 = self.ec2(account, region)
        kwargs: dict[str, Any] = {"RouteTableIds": route_table_ids} if route_table_ids else {}
        try:
            tables = self._call(ec2, "describe_route_tables", **kwargs)["RouteTables"]
        except AwsError as exc:
            if not (skip_missing and route_table_ids and exc.code == "InvalidRouteTableID.NotFound"):
                raise
            if len(route_table_ids) == 1:
                return []
            return [
                table
                for table_id in route_table_ids
                for table in self.describe_route_tables(account, region, [table_id], skip_missing=True)
            ]
        return [
            RouteTableInfo(
                route_table_id=t["RouteTableId"],
                vpc_id=t["VpcId"],
                name=_name_tag(t.get("Tags")),
                is_main=any(a.get("Main") for a in t.get("Associations", [])),
                routes=tuple(
                    RouteInfo(
                        destination=r["DestinationCidrBlock"],
                        target=_route_target(r),
                        state=r.get("State", "active"),
                    )
                    for r in t.get("Routes", [])
                    if "DestinationCidrBlock" in r
                ),
            )
            for t in tables
        ]

    # --- peering connections --------------------------------------------------------------
    def describe_peerings(
        self, account: AccountRef, region: str, connection_ids: list[str] | None = None
    ) -> list[PeeringInfo]:
        ec2 = self.ec2(account, region)
        kwargs: dict[str, Any] = {"VpcPeeringConnectionIds": connection_ids} if connection_ids else {}
        items = self._call(ec2, "describe_vpc_peering_connections", **kwargs)["VpcPeeringConnections"]
        found = [_peering_from_api(i) for i in items]
        if connection_ids:
            # The sandbox ignores the id list; filter here so both behave alike.
            found = [p for p in found if p.connection_id in connection_ids]
        return found

    def describe_peering(self, account: AccountRef, region: str, connection_id: str) -> PeeringInfo | None:
        try:
            found = self.describe_peerings(account, region, [connection_id])
        except AwsError as exc:
            if exc.is_not_found:
                return None
            raise
        return found[0] if found else None

    def create_peering(
        self,
        account: AccountRef,
        region: str,
        *,
        vpc_id: str,
        peer_vpc_id: str,
        peer_owner_id: str,
        peer_region: str,
        tags: dict[str, str],
    ) -> PeeringInfo:
        ec2 = self.ec2(account, region)
        response = self._call(
            ec2,
            "create_vpc_peering_connection",
            VpcId=vpc_id,
            PeerVpcId=peer_vpc_id,
            PeerOwnerId=peer_owner_id,
            PeerRegion=peer_region,
            TagSpecifications=[
                {
                    "ResourceType": "vpc-peering-connection",
                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
                }
            ],
        )
        return _peering_from_api(response["VpcPeeringConnection"])

    def accept_peering(self, account: AccountRef, region: str, connection_id: str) -> PeeringInfo:
        ec2 = self.ec2(account, region)
        response = self._call(ec2, "accept_vpc_peering_connection", VpcPeeringConnectionId=connection_id)
        return _peering_from_api(response["VpcPeeringConnection"])

    def set_dns_resolution(
        self, account: AccountRef, region: str, connection_id: str, *, side: str, enabled: bool
    ) -> None:
        """Each owner sets its own side, in its own region (AWS refuses the other side)."""
        ec2 = self.ec2(account, region)
        option_key = f"{side.capitalize()}PeeringConnectionOptions"
        self._call(
            ec2,
            "modify_vpc_peering_connection_options",
            VpcPeeringConnectionId=connection_id,
            **{option_key: {"AllowDnsResolutionFromRemoteVpc": enabled}},
        )

    def delete_peering(self, account: AccountRef, region: str, connection_id: str) -> None:
        ec2 = self.ec2(account, region)
        self._call(ec2, "delete_vpc_peering_connection", VpcPeeringConnectionId=connection_id)

    # --- routes ---------------------------------------------------------------------------
    def create_route(
        self, account: AccountRef, region: str, *, route_table_id: str, destination: str, connection_id: str
    ) -> None:
        ec2 = self.ec2(account, region)
        self._call(
            ec2,
            "create_route",
            RouteTableId=route_table_id,
            DestinationCidrBlock=destination,
            VpcPeeringConnectionId=connection_id,
        )

    def delete_route(self, account: AccountRef, region: str, *, route_table_id: str, destination: str) -> None:
        ec2 = self.ec2(account, region)
        self._call(ec2, "delete_route", RouteTableId=route_table_id, DestinationCidrBlock=destination)


def _camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


_default: AwsGateway | None = None


def get_gateway() -> AwsGateway:
    global _default
    if _default is None:
        _default = AwsGateway(call_log=settings.AWS_CALL_LOG)
    return _default
