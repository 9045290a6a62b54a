"""The AWS operations a request will perform, in order; shown before approval, run by the saga."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict


@dataclass(frozen=True)
class RouteSpec:
    side: str  # "requester" or "accepter"
    account_id: str
    region: str
    route_table_id: str
    destination: str

    @property
    def key(self) -> str:
        return f"{self.route_table_id}:{self.destination}"


class Operation(TypedDict):
    """One AWS call of a plan, as JSON: stored on a request (`plan`), in the API's answers and on the pages."""

    operation: str
    account_id: str
    region: str
    parameters: dict[str, Any]  # the call's parameters, as the AWS API names them
    detail: str


@dataclass(frozen=True)
class PeeringPlan:
    requester_account: str
    requester_region: str
    requester_vpc_id: str
    accepter_account: str
    accepter_region: str
    accepter_vpc_id: str
    allow_dns_resolution: bool
    routes: tuple[RouteSpec, ...]

    def operations(self) -> list[Operation]:
        """The mutating AWS calls provisioning makes, in its order, with their parameters."""
        ops: list[Operation] = [
            {
                "operation": "CreateVpcPeeringConnection",
                "account_id": self.requester_account,
                "region": self.requester_region,
                "parameters": {
                    "VpcId": self.requester_vpc_id,
                    "PeerVpcId": self.accepter_vpc_id,
                    "PeerOwnerId": self.accepter_account,
                    "PeerRegion": self.accepter_region,
                },
                "detail": f"{self.requester_vpc_id} → {self.accepter_vpc_id} "
                f"(owner {self.accepter_account}, {self.accepter_region})",
            },
            {
                "operation": "AcceptVpcPeeringConnection",
                "account_id": self.accepter_account,
                "region": self.accepter_region,
                "parameters": {},
                "detail": f"as account {self.accepter_account} in {self.accepter_region}",
            },
        ]
        if self.allow_dns_resolution:
            for side, account, region in (
                ("requester", self.requester_account, self.requester_region),
                ("accepter", self.accepter_account, self.accepter_region),
            ):
                option = f"{side.capitalize()}PeeringConnectionOptions"
                ops.append(
                    {
                        "operation": "ModifyVpcPeeringConnectionOptions",
                        "account_id": account,
                        "region": region,
                        "parameters": {option: {"AllowDnsResolutionFromRemoteVpc": True}},
                        "detail": f"{side} side: AllowDnsResolutionFromRemoteVpc=true",
                    }
                )
        for route in self.routes:
            ops.append(
                {
                    "operation": "CreateRoute",
                    "account_id": route.account_id,
                    "region": route.region,
                    "parameters": {"RouteTableId": route.route_table_id, "DestinationCidrBlock": route.destination},
                    "detail": f"{route.route_table_id}: {route.destination} → the peering",
                }
            )
        return ops


def build_routes(
    *,
    side: str,
    account_id: str,
    region: str,
    route_table_ids: list[str],
    destinations: list[str],
) -> list[RouteSpec]:
    # Each (table, destination) once, whatever the input repeats: AWS holds one route per pair.
    return [
        RouteSpec(side, account_id, region, table, destination)
        for table in dict.fromkeys(route_table_ids)
        for destination in dict.fromkeys(destinations)
    ]
