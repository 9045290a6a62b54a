"""The whole flow on real parts: API → approval → real worker → moto sandbox → audit.

Assertions about AWS are made in the sandbox itself, never in the portal's database.
"""

from __future__ import annotations

from typing import Any

import pytest

from requests_app.inventory import sync
from requests_app.models import PeeringRequest
from requests_app.peering import preflight
from requests_app.peering import services as peering_services
from requests_app.peering.saga import runner
from tests.fixtures.processes import wait_for_status
from tests.fixtures.sandbox import ec2_as, sandbox_snapshot
from tests.fixtures.world import DemoWorld

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _file(api: Any, username: str, requester: Any, accepter: Any, **extra: Any) -> dict[str, Any]:
    response = api(username).post(
        "/api/v1/peering-requests/",
        {
            "requester_vpc": requester.vpc_id,
            "accepter_vpc": accepter.vpc_id,
            "justification": "needs AD and logging",
            **extra,
        },
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
        p
        for p in ec2_as(account_id, region).describe_vpc_peering_connections()["VpcPeeringConnections"]
        if p["VpcPeeringConnectionId"] == connection_id
    ]
    assert len(found) == 1
    return found[0]


def _routes(account_id: str, region: str, route_table_id: str) -> dict[str, str]:
    tables = ec2_as(account_id, region).describe_route_tables(RouteTableIds=[route_table_id])["RouteTables"]
    return {
        r["DestinationCidrBlock"]: r.get("VpcPeeringConnectionId", r.get("GatewayId", "")) for r in tables[0]["Routes"]
    }


def _tables(vpc: Any) -> list[str]:
    return [rt.route_table_id for rt in vpc.route_tables.all()]


def test_cross_account_peering_becomes_active_with_routes_on_both_sides_and_decommissions(
    worker: Any, demo_world: DemoWorld, api: Any
) -> None:
    vpcs = demo_world.vpcs
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
    assert (
        actions[0] == "request.submitted" and "request.approved" in actions and actions[-1] == "provisioning.completed"
    )
    calls = [e for e in events if e["action"] == "aws.call"]
    assert {"CreateVpcPeeringConnection", "AcceptVpcPeeringConnection", "CreateRoute"} <= {
        e["operation"] for e in calls
    }
    accept = next(e for e in calls if e["operation"] == "AcceptVpcPeeringConnection" and e["result"] != "started")
    assert (accept["account_id"], accept["region"], accept["result"]) == ("111111111111", "us-east-1", "ok")
    # The worker's log names the request on its AWS call lines (structured logging).
    worker_log = worker.log_path.read_text()
    assert any(
        f"[{filed['id']}] aws CreateVpcPeeringConnection region=us-east-1 ok" in line
        for line in worker_log.splitlines()
    )
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


def test_cross_account_cross_region_peering_is_accepted_in_the_accepters_region(
    worker: Any, demo_world: DemoWorld, api: Any
) -> None:
    vpcs = demo_world.vpcs
    hr, services = vpcs["hr-portal"], vpcs["services-use1"]
    filed = _file(api, "harry", hr, services)
    assert any(c["code"] == "inter_region" and c["status"] == "warn" for c in filed["checks"])
    _approve(api, "nina", filed["id"])
    done = wait_for_status(filed["id"], {"active", "failed"})
    assert done.status == "active", done.failure_reason

    # The requester (hr, eu-west-1) sees it as active, and so does the accepter (services, us-east-1).
    pcx = _connection("333333333333", "eu-west-1", done.aws_peering_connection_id)
    assert pcx["Status"]["Code"] == "active"
    assert (
        pcx["RequesterVpcInfo"]["VpcId"],
        pcx["RequesterVpcInfo"]["OwnerId"],
        pcx["RequesterVpcInfo"]["Region"],
    ) == (hr.vpc_id, "333333333333", "eu-west-1")
    assert (pcx["AccepterVpcInfo"]["VpcId"], pcx["AccepterVpcInfo"]["OwnerId"], pcx["AccepterVpcInfo"]["Region"]) == (
        services.vpc_id,
        "111111111111",
        "us-east-1",
    )
    assert _connection("111111111111", "us-east-1", done.aws_peering_connection_id)["Status"]["Code"] == "active"
    for table in _tables(hr):
        assert _routes("333333333333", "eu-west-1", table)["10.0.0.0/16"] == done.aws_peering_connection_id
    for table in _tables(services):
        assert _routes("111111111111", "us-east-1", table)["10.2.0.0/16"] == done.aws_peering_connection_id
    accept = done.events.get(action="aws.call", operation="AcceptVpcPeeringConnection", result="ok")
    assert (accept.account_id, accept.region) == ("111111111111", "us-east-1")
    create = done.events.get(action="aws.call", operation="CreateVpcPeeringConnection", result="ok")
    assert (create.account_id, create.region) == ("333333333333", "eu-west-1")


def test_same_account_same_region_peering_with_narrow_routes(worker: Any, demo_world: DemoWorld, api: Any) -> None:
    """nina (platform) peers her account's default VPC with the hub; sam approves (nina cannot)."""
    vpcs = demo_world.vpcs
    default, services = vpcs["default-111111111111-us-east-1"], vpcs["services-use1"]
    private = services.route_tables.get(name="services-private")
    filed = _file(
        api,
        "nina",
        default,
        services,
        accepter_route_tables=[private.route_table_id],
        requester_destination_cidrs=["10.0.1.0/24"],  # only the directory subnet of the hub
    )
    assert api("nina").post(f"/api/v1/peering-requests/{filed['id']}/approve/", {}, format="json").status_code == 403
    _approve(api, "sam", filed["id"])
    done = wait_for_status(filed["id"], {"active", "failed"})
    assert done.status == "active", done.failure_reason
    pcx = _connection("111111111111", "us-east-1", done.aws_peering_connection_id)
    assert pcx["RequesterVpcInfo"]["OwnerId"] == pcx["AccepterVpcInfo"]["OwnerId"] == "111111111111"
    for table in _tables(default):
        routes = _routes("111111111111", "us-east-1", table)
        assert routes["10.0.1.0/24"] == done.aws_peering_connection_id
        assert "10.0.0.0/16" not in routes
    assert (
        _routes("111111111111", "us-east-1", private.route_table_id)["172.31.0.0/16"] == done.aws_peering_connection_id
    )
    main = services.route_tables.get(is_main=True)
    assert "172.31.0.0/16" not in _routes("111111111111", "us-east-1", main.route_table_id)


def test_running_provisioning_again_changes_nothing_in_aws(worker: Any, demo_world: DemoWorld, api: Any) -> None:
    vpcs = demo_world.vpcs
    filed = _file(api, "fiona", vpcs["finance-app"], vpcs["services-use1"], allow_dns_resolution=True)
    _approve(api, "nina", filed["id"])
    assert wait_for_status(filed["id"], {"active", "failed"}).status == "active"
    before = sandbox_snapshot()

    # A duplicate delivery of the task for an active request: returns quietly.
    runner.run(filed["id"], "provision")
    # A worker that died after finishing every step but before recording `active`: the saga
    # runs again from the top, finds everything in place, and creates nothing.
    PeeringRequest.objects.filter(pk=filed["id"]).update(status="provisioning")
    runner.run(filed["id"], "provision")

    assert sandbox_snapshot() == before
    again = PeeringRequest.objects.get(pk=filed["id"])
    assert again.status == "active"
    first_completion = again.events.filter(action="provisioning.completed").order_by("id").first()
    rerun = again.events.filter(action="aws.call", id__gt=first_completion.id)
    assert not rerun.filter(
        operation__in=[
            "CreateVpcPeeringConnection",
            "AcceptVpcPeeringConnection",
            "CreateRoute",
            "ModifyVpcPeeringConnectionOptions",
        ]
    ).exists()
    assert rerun.filter(operation="DescribeRouteTables").exists()  # it did look before deciding


def test_route_conflict_found_in_aws_undoes_everything_and_fails_with_a_reason(
    worker: Any, demo_world: DemoWorld, api: Any
) -> None:
    vpcs = demo_world.vpcs
    finance, services = vpcs["finance-app"], vpcs["services-use1"]
    private = services.route_tables.get(name="services-private")
    filed = _file(api, "fiona", finance, services)
    # Out of band, after the checks ran: someone routes finance's block elsewhere in the hub.
    hub = ec2_as("111111111111", "us-east-1")
    igw = hub.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    hub.attach_internet_gateway(InternetGatewayId=igw, VpcId=services.vpc_id)
    hub.create_route(RouteTableId=private.route_table_id, DestinationCidrBlock="10.1.0.0/16", GatewayId=igw)

    _approve(api, "nina", filed["id"])
    failed = wait_for_status(filed["id"], {"active", "failed"})
    assert failed.status == "failed"
    assert private.route_table_id in failed.failure_reason and igw in failed.failure_reason
    assert "never overwrites" in failed.failure_reason

    # Nothing half-made: the connection is deleted, no route anywhere targets it, theirs is intact.
    pcx_id = failed.events.get(action="provisioning.connection_recorded").data["connection_id"]
    assert failed.aws_peering_connection_id == ""  # forgotten once deleted, so a retry starts afresh
    # Made before the conflict: finance's route, and both blocks in the hub's main table.
    assert f"removed its 3 route(s); deleted {pcx_id}" in failed.failure_reason
    assert _connection("222222222222", "us-east-1", pcx_id)["Status"]["Code"] == "deleted"
    for account, region, table in [("222222222222", "us-east-1", t) for t in _tables(finance)] + [
        ("111111111111", "us-east-1", t) for t in _tables(services)
    ]:
        assert pcx_id not in _routes(account, region, table).values()
    assert _routes("111111111111", "us-east-1", private.route_table_id)["10.1.0.0/16"] == igw
    assert failed.events.filter(operation="DeleteRoute", result="ok").exists()

    # Fix the cause, retry: it provisions cleanly.
    hub.delete_route(RouteTableId=private.route_table_id, DestinationCidrBlock="10.1.0.0/16")
    response = api("fiona").post(f"/api/v1/peering-requests/{filed['id']}/retry/", {}, format="json")
    assert response.status_code == 200, response.json()
    done = wait_for_status(filed["id"], {"active", "failed"})
    assert done.status == "active", done.failure_reason
    assert _routes("111111111111", "us-east-1", private.route_table_id)["10.1.0.0/16"] == done.aws_peering_connection_id


def _mutations_for(log_path: str, pcx_id: str, requester_vpc: str, accepter_vpc: str) -> list[dict[str, Any]]:
    """The mutating EC2 calls the worker traced for one peering, in order."""
    import json

    calls = []
    with open(log_path, encoding="utf-8") as log:
        lines = log.readlines()
    for line in lines:
        call = json.loads(line)
        params = call["params"]
        if call["operation"].startswith("Describe"):
            continue
        ours = params.get("VpcPeeringConnectionId") == pcx_id or (
            call["operation"] == "CreateVpcPeeringConnection"
            and (params.get("VpcId"), params.get("PeerVpcId")) == (requester_vpc, accepter_vpc)
        )
        if ours:
            calls.append(call)
    return calls


def test_the_plan_is_exactly_what_the_worker_asks_aws_to_do(worker: Any, demo_world: DemoWorld, api: Any) -> None:
    vpcs = demo_world.vpcs
    hr, services = vpcs["hr-portal"], vpcs["services-use1"]
    filed = _file(api, "harry", hr, services, allow_dns_resolution=True)
    _approve(api, "nina", filed["id"])
    done = wait_for_status(filed["id"], {"active", "failed"})
    assert done.status == "active", done.failure_reason

    performed = _mutations_for(worker.env["AWS_CALL_LOG"], done.aws_peering_connection_id, hr.vpc_id, services.vpc_id)
    assert [(c["operation"], c["account_id"], c["region"]) for c in performed] == [
        (step["operation"], step["account_id"], step["region"]) for step in filed["plan"]
    ]
    for step, call in zip(filed["plan"], performed, strict=True):
        for name, value in step["parameters"].items():
            assert call["params"][name] == value, (step, call)
    assert [c["operation"] for c in performed].count("CreateRoute") == 1 + 2  # hr's table; the hub's two


def test_checks_failing_just_before_provisioning_fail_the_request_and_send_nothing(
    demo_world: DemoWorld, api: Any
) -> None:
    """Between approval and the worker's first step, someone peers the pair by hand in AWS."""
    from requests_app.models import AwsAccount

    vpcs = demo_world.vpcs
    finance, services_vpc = vpcs["finance-app"], vpcs["services-use1"]
    filed = peering_services.peering_request_submit(
        actor=demo_world.users["fiona"],
        draft=preflight.PeeringDraft(requester_vpc=finance.vpc_id, accepter_vpc=services_vpc.vpc_id, justification="x"),
    )
    # Approved as the service leaves it, without sending the task (this test is the worker).
    PeeringRequest.objects.filter(pk=filed.pk).update(status="approved")
    by_hand = ec2_as("222222222222", "us-east-1").create_vpc_peering_connection(
        VpcId=finance.vpc_id, PeerVpcId=services_vpc.vpc_id, PeerOwnerId="111111111111", PeerRegion="us-east-1"
    )["VpcPeeringConnection"]["VpcPeeringConnectionId"]
    sync.sync_account(AwsAccount.objects.get(account_id="222222222222"))
    before = sandbox_snapshot()

    runner.run(str(filed.pk), "provision")

    refused = PeeringRequest.objects.get(pk=filed.pk)
    assert refused.status == "failed"
    assert "nothing was sent to AWS" in refused.failure_reason and by_hand in refused.failure_reason
    assert sandbox_snapshot() == before
    assert not refused.events.filter(action="aws.call").exists()
