"""Example-based tests of the provisioning plan (requests_app/domain/plan.py): its operations in order."""

from requests_app.domain.plan import PeeringPlan, build_routes

# --- the plan -------------------------------------------------------------------------


def make_plan(*, dns):
    routes = build_routes(
        side="requester",
        account_id="111111111111",
        region="eu-west-1",
        route_table_ids=["rtb-req1", "rtb-req2"],
        destinations=["10.1.0.0/16", "10.60.0.0/16"],
    ) + build_routes(
        side="accepter",
        account_id="222222222222",
        region="us-east-1",
        route_table_ids=["rtb-acc1"],
        destinations=["10.0.0.0/16"],
    )
    return PeeringPlan(
        requester_account="111111111111",
        requester_region="eu-west-1",
        requester_vpc_id="vpc-aaa",
        accepter_account="222222222222",
        accepter_region="us-east-1",
        accepter_vpc_id="vpc-bbb",
        allow_dns_resolution=dns,
        routes=tuple(routes),
    )


def test_plan_lists_create_accept_dns_then_routes():
    ops = make_plan(dns=True).operations()
    assert [(o["operation"], o["account_id"], o["region"]) for o in ops] == [
        ("CreateVpcPeeringConnection", "111111111111", "eu-west-1"),
        ("AcceptVpcPeeringConnection", "222222222222", "us-east-1"),
        ("ModifyVpcPeeringConnectionOptions", "111111111111", "eu-west-1"),
        ("ModifyVpcPeeringConnectionOptions", "222222222222", "us-east-1"),
        ("CreateRoute", "111111111111", "eu-west-1"),
        ("CreateRoute", "111111111111", "eu-west-1"),
        ("CreateRoute", "111111111111", "eu-west-1"),
        ("CreateRoute", "111111111111", "eu-west-1"),
        ("CreateRoute", "222222222222", "us-east-1"),
    ]
    assert "vpc-aaa" in ops[0]["detail"]
    assert "vpc-bbb" in ops[0]["detail"]
    assert ops[2]["detail"].startswith("requester side")
    assert ops[3]["detail"].startswith("accepter side")


def test_plan_has_one_create_route_per_table_and_destination():
    ops = make_plan(dns=False).operations()
    route_details = [o["detail"] for o in ops if o["operation"] == "CreateRoute"]
    assert len(route_details) == 2 * 2 + 1 * 1
    expected_pairs = [
        ("rtb-req1", "10.1.0.0/16"),
        ("rtb-req1", "10.60.0.0/16"),
        ("rtb-req2", "10.1.0.0/16"),
        ("rtb-req2", "10.60.0.0/16"),
        ("rtb-acc1", "10.0.0.0/16"),
    ]
    for detail, (table, destination) in zip(route_details, expected_pairs, strict=True):
        assert detail.startswith(f"{table}: {destination} ")


def test_plan_without_dns_has_no_options_operation():
    ops = make_plan(dns=False).operations()
    assert [o["operation"] for o in ops[:2]] == [
        "CreateVpcPeeringConnection",
        "AcceptVpcPeeringConnection",
    ]
    assert all(o["operation"] != "ModifyVpcPeeringConnectionOptions" for o in ops)


def test_build_routes_keys_are_unique_per_table_and_destination():
    routes = build_routes(
        side="accepter",
        account_id="222222222222",
        region="us-east-1",
        route_table_ids=["rtb-1", "rtb-2"],
        destinations=["10.0.0.0/16", "10.9.0.0/16"],
    )
    assert [r.key for r in routes] == [
        "rtb-1:10.0.0.0/16",
        "rtb-1:10.9.0.0/16",
        "rtb-2:10.0.0.0/16",
        "rtb-2:10.9.0.0/16",
    ]
    assert {r.side for r in routes} == {"accepter"}
