"""The whole flow on real parts: API → approval → real worker → moto sandbox → audit.

Assertions about AWS are made in the sandbox itself, never in the portal's database.
"""

from __future__ import annotations

from typing import Any

import pytest

from requests_app import provisioning
from requests_app.models import PeeringRequest
from tests.conftest import ec2_as, sandbox_snapshot, wait_for_status

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _file(api: Any, username: str, requester: Any, accepter: Any, **extra: Any) -> dict[str, Any]:
    response = api(username).post(
        "/api/v1/peering-requests/",
        {"requester_vpc": requester.vpc_id, "accepter_vpc": accepter.vpc_id, "justification": "needs AD and logging", **extra},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "pending_approval"
    return response.json()


def _approve(api: Any, username: str, request_id: str) -> None:
    response = api(username).post(f"/api/v1/peering-requests/{request_id}/approve/", {"comment": "ok"}, format="json")
    assert response.status_code == 200, response.json()


def _connection(account_id: str, region: str, connection_id: str) -> dict[str, Any]:
    found = [
        p for p in ec2_as(account_id, region).describe_vpc_peering_connections()["VpcPeeringConnections"]
        if p["VpcPeeringConnectionId"] == connection_id
    ]
    assert len(found) == 1
    return found[0]


def _routes(account_id: str, region: str, route_table_id: str) -> dict[str, str]:
    tables = ec2_as(account_id, region).describe_route_tables(RouteTableIds=[route_table_id])["RouteTables"]
    return {r["DestinationCidrBlock"]: r.get("VpcPeeringConnectionId", r.get("GatewayId", "")) for r in tables[0]["Routes"]}


def _tables(vpc: Any) -> list[str]:
    return [rt.route_table_id for rt in vpc.route_tables.all()]


def test_cross_account_peering_becomes_active_with_routes_on_both_sides_and_decommissions(
    worker: Any, demo_world: dict[str, Any], api: Any
) -> None:
    vpcs = demo_world["vpcs"]
    finance, services = vpcs["finance-app"], vpcs["services-use1"]
    filed = _file(api, "fiona", finance, services, allow_dns_resolution=True, external_ref="INC0012345")
    _approve(api, "nina", filed["id"])
    done = wait_for_status(filed["id"], {"active", "failed"})
    assert done.status == "active", done.failure_reason

    pcx = _connection("222222222222", "us-east-1", done.aws_peering_connection_id)
    assert pcx["Status"]["Code"] == "active"
    assert (pcx["RequesterVpcInfo"]["VpcId"], pcx["RequesterVpcInfo"]["OwnerId"]) == (finance.vpc_id, "222222222222")
    assert (pcx["AccepterVpcInfo"]["VpcId"], pcx["AccepterVpcInfo"]["OwnerId"]) == (services.vpc_id, "111111111111")
    assert pcx["RequesterVpcInfo"]["PeeringOptions"]["AllowDnsResolutionFromRemoteVpc"] is True
    assert pcx["AccepterVpcInfo"]["PeeringOptions"]["AllowDnsResolutionFromRemoteVpc"] is True
    assert {"Key": "peering-portal:request-id", "Value": filed["id"]} in pcx["Tags"]
    for table in _tables(finance):
        assert _routes("222222222222", "us-east-1", table)["10.0.0.0/16"] == pcx["VpcPeeringConnectionId"]
    services_tables = _tables(services)
    assert len(services_tables) == 2  # main and services-private
    for table in services_tables:
        routes = _routes("111111111111", "us-east-1", table)
        # The requester's secondary block is routed too.
        assert routes["10.1.0.0/16"] == pcx["VpcPeeringConnectionId"]
        assert routes["10.11.0.0/16"] == pcx["VpcPeeringConnectionId"]

    events = api("fiona").get(f"/api/v1/peering-requests/{filed['id']}/events/").json()["results"]
    actions = [e["action"] for e in events]
    assert actions[0] == "request.submitted" and "request.approved" in actions and actions[-1] == "provisioning.completed"
    calls = [e for e in events if e["action"] == "aws.call"]
    assert {"CreateVpcPeeringConnection", "AcceptVpcPeeringConnection", "CreateRoute"} <= {e["operation"] for e in calls}
    accept = next(e for e in calls if e["operation"] == "AcceptVpcPeeringConnection")
    assert (accept["account_id"], accept["region"], accept["result"]) == ("111111111111", "us-east-1", "ok")
    # One route on finance's table, two (primary and secondary block) on each of the hub's two tables.
    assert sum(1 for e in calls if e["operation"] == "CreateRoute" and e["result"] == "ok") == 1 + 2 * 2

    response = api("fiona").post(f"/api/v1/peering-requests/{filed['id']}/decommission/", {}, format="json")
    assert response.status_code == 200, response.json()
    gone = wait_for_status(filed["id"], {"decommissioned", "failed"})
    assert gone.status == "decommissioned", gone.failure_reason
    assert _connection("222222222222", "us-east-1", done.aws_peering_connection_id)["Status"]["Code"] == "deleted"
    for table in _tables(finance):
        assert "10.0.0.0/16" not in _routes("222222222222", "us-east-1", table)
    for table in services_tables:
        routes = _routes("111111111111", "us-east-1", table)
        assert "10.1.0.0/16" not in routes and "10.11.0.0/16" not in routes
