"""Example-based tests of the pure pre-flight checks (requests_app/domain/checks.py).

(The lifecycle: tests/domain/test_status.py; the plan: tests/domain/test_plan.py; every check through
every path that runs it: tests/peering/checks_table/.)"""

from dataclasses import replace

import pytest

from requests_app.domain import checks as rules
from requests_app.domain.checks import (
    CheckInput,
    CheckStatus,
    ExistingPeering,
    RouteFacts,
    RouteTableFacts,
    VpcFacts,
    failures,
    run_checks,
)

# --- fixtures as plain values ---------------------------------------------------------

REQ_TABLE = RouteTableFacts(
    "rtb-req1",
    "app-private",
    is_main=False,
    routes=(RouteFacts("10.0.0.0/16", "local"),),
)
ACC_TABLE = RouteTableFacts(
    "rtb-acc1",
    "data-private",
    is_main=False,
    routes=(RouteFacts("10.1.0.0/16", "local"),),
)

APP = VpcFacts(
    vpc_id="vpc-aaa",
    name="app",
    account_id="111111111111",
    region="eu-west-1",
    cidrs=("10.0.0.0/16",),
    route_tables=(REQ_TABLE,),
)
DATA = VpcFacts(
    vpc_id="vpc-bbb",
    name="data",
    account_id="222222222222",
    region="eu-west-1",
    cidrs=("10.1.0.0/16",),
    route_tables=(ACC_TABLE,),
)
SHARED = VpcFacts(
    vpc_id="vpc-ccc",
    name="shared-services",
    account_id="333333333333",
    region="eu-west-1",
    cidrs=("10.2.0.0/16",),
)


def lookup(*vpcs):
    """A `find_vpc_owning` over the given VPCs, as the service does over the inventory."""
    from requests_app.domain.cidrs import containing_block

    return lambda cidr: next((v for v in vpcs if containing_block(cidr, v.cidrs)), None)


def make_input(requester=APP, accepter=DATA, **overrides):
    values = {
        "requester_vpc_id": requester.vpc_id if requester else "vpc-missing-req",
        "accepter_vpc_id": accepter.vpc_id if accepter else "vpc-missing-acc",
        "requester": requester,
        "accepter": accepter,
        "requester_is_callers": True,
        "requester_route_tables": ("rtb-req1",),
        "accepter_route_tables": ("rtb-acc1",),
    }
    values.update(overrides)
    return CheckInput(**values)


def by_code(results, code):
    return [r for r in results if r.code == code]


def only(results, code):
    found = by_code(results, code)
    assert len(found) == 1, f"expected one {code!r} result, got {found}"
    return found[0]


def failed_codes(results):
    return {r.code for r in failures(results)}


# --- the happy path -------------------------------------------------------------------


def test_non_overlapping_vpcs_in_one_region_pass_every_check():
    results = run_checks(make_input())
    assert failures(results) == []
    assert all(r.status == CheckStatus.PASS for r in results)
    assert only(results, "cidr_overlap").status == CheckStatus.PASS
    assert only(results, "duplicate_peering").status == CheckStatus.PASS
    assert only(results, "vpc_ownership").status == CheckStatus.PASS
    assert only(results, "accepter_owner").status == CheckStatus.PASS


# --- CIDR overlap ---------------------------------------------------------------------


def test_overlap_through_a_secondary_block_fails_naming_both_cidrs_and_vpcs():
    requester = replace(APP, cidrs=("10.0.0.0/16", "10.50.0.0/16"))
    accepter = replace(DATA, cidrs=("10.1.0.0/16", "10.50.128.0/17"))
    results = run_checks(make_input(requester, accepter))
    overlap = only(results, "cidr_overlap")
    assert overlap.status == CheckStatus.FAIL
    assert overlap.attr == "accepter_vpc"
    assert "10.50.0.0/16" in overlap.detail
    assert "10.50.128.0/17" in overlap.detail
    assert "app (vpc-aaa)" in overlap.detail
    assert "data (vpc-bbb)" in overlap.detail
    # The primary blocks do not overlap, so they are not blamed.
    assert "10.0.0.0/16 of" not in overlap.detail


def test_adjacent_blocks_do_not_overlap():
    requester = replace(APP, cidrs=("10.0.0.0/24",))
    accepter = replace(DATA, cidrs=("10.0.1.0/24",))
    results = run_checks(make_input(requester, accepter))
    assert only(results, "cidr_overlap").status == CheckStatus.PASS


# --- duplicate peering ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("existing_requester", "existing_accepter", "direction"),
    [
        ("vpc-aaa", "vpc-bbb", "the same direction"),
        ("vpc-bbb", "vpc-aaa", "the opposite direction"),
    ],
)
def test_duplicate_peering_fails_in_either_direction(existing_requester, existing_accepter, direction):
    existing = ExistingPeering(existing_requester, existing_accepter, "active", "connection pcx-123")
    results = run_checks(make_input(existing=(existing,)))
    duplicate = only(results, "duplicate_peering")
    assert duplicate.status == CheckStatus.FAIL
    assert duplicate.attr == "accepter_vpc"
    assert "connection pcx-123" in duplicate.detail
    assert direction in duplicate.detail


def test_peering_with_a_third_vpc_is_not_a_duplicate():
    existing = ExistingPeering("vpc-aaa", "vpc-ccc", "active", "connection pcx-999")
    results = run_checks(make_input(existing=(existing,)))
    assert only(results, "duplicate_peering").status == CheckStatus.PASS


# --- which VPCs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("missing_side", "attr"),
    [("requester", "requester_vpc"), ("accepter", "accepter_vpc")],
)
def test_unknown_vpc_gives_vpc_not_found_on_its_side(missing_side, attr):
    data = make_input(**{missing_side: None})
    results = run_checks(data)
    assert [(r.code, r.status, r.attr) for r in results] == [("vpc_not_found", CheckStatus.FAIL, attr)]
    missing_id = getattr(data, f"{missing_side}_vpc_id")
    assert missing_id in results[0].detail


def test_both_vpcs_unknown_gives_two_vpc_not_found():
    results = run_checks(make_input(None, None))
    assert [(r.code, r.attr) for r in results] == [
        ("vpc_not_found", "requester_vpc"),
        ("vpc_not_found", "accepter_vpc"),
    ]


def test_same_vpc_fails_and_stops():
    results = run_checks(make_input(APP, APP, accepter_route_tables=("rtb-req1",)))
    assert [(r.code, r.status, r.attr) for r in results] == [("same_vpc", CheckStatus.FAIL, "accepter_vpc")]


def test_not_your_vpc_when_requester_is_not_the_callers():
    results = run_checks(make_input(requester_is_callers=False))
    result = only(results, "not_your_vpc")
    assert result.status == CheckStatus.FAIL
    assert result.attr == "requester_vpc"
    assert "111111111111" in result.detail
    assert by_code(results, "vpc_ownership") == []


def test_no_approver_when_the_accepter_has_no_owners():
    results = run_checks(make_input(accepter=replace(DATA, has_owners=False)))
    result = only(results, "no_approver")
    assert result.status == CheckStatus.FAIL
    assert result.attr == "accepter_vpc"
    assert by_code(results, "accepter_owner") == []


# --- route tables ---------------------------------------------------------------------


def test_route_table_not_in_the_vpc_fails():
    results = run_checks(make_input(accepter_route_tables=("rtb-acc1", "rtb-elsewhere")))
    result = only(results, "route_table_not_found")
    assert result.status == CheckStatus.FAIL
    assert result.attr == "accepter_route_tables"
    assert "rtb-elsewhere" in result.detail
    assert "rtb-acc1" not in result.detail


def test_requester_table_of_the_accepter_vpc_is_not_found():
    results = run_checks(make_input(requester_route_tables=("rtb-acc1",)))
    assert only(results, "route_table_not_found").attr == "requester_route_tables"


def test_no_tables_chosen_and_none_known_fails_no_route_tables():
    requester = replace(APP, route_tables=())
    results = run_checks(make_input(requester, requester_route_tables=()))
    assert only(results, "no_route_tables").attr == "requester_route_tables"


# --- route destinations ---------------------------------------------------------------


def test_narrow_destination_inside_the_peer_passes():
    results = run_checks(make_input(requester_destination_cidrs=("10.1.4.0/24",)))
    assert failures(results) == []


def test_destination_in_the_peers_secondary_block_passes():
    accepter = replace(DATA, cidrs=("10.1.0.0/16", "10.60.0.0/16"))
    results = run_checks(make_input(accepter=accepter, requester_destination_cidrs=("10.60.8.0/24",)))
    assert failures(results) == []


def test_destination_in_a_third_vpc_fails_and_says_to_peer_directly():
    results = run_checks(make_input(requester_destination_cidrs=("10.2.0.0/24",), find_vpc_owning=lookup(SHARED)))
    result = only(results, "destination_outside_peer")
    assert result.status == CheckStatus.FAIL
    assert result.attr == "requester_destination_cidrs"
    assert "10.2.0.0/24" in result.detail
    assert "shared-services (vpc-ccc)" in result.detail
    assert "request a direct peering with shared-services (vpc-ccc)" in result.detail


def test_destination_outside_every_known_vpc_fails_without_naming_one():
    results = run_checks(make_input(accepter_destination_cidrs=("172.16.0.0/16",), find_vpc_owning=lookup(SHARED)))
    result = only(results, "destination_outside_peer")
    assert result.attr == "accepter_destination_cidrs"
    assert "shared-services" not in result.detail
    assert "not transitive" in result.detail


def test_default_route_destination_fails():
    results = run_checks(make_input(requester_destination_cidrs=("0.0.0.0/0",)))
    assert failures(results)
    # 0.0.0.0/0 is public address space, so the privacy rule rejects it first.
    result = only(results, "non_private_cidr")
    assert result.status == CheckStatus.FAIL
    assert result.attr == "requester_destination_cidrs"
    assert "0.0.0.0/0" in result.detail


def test_public_destination_fails_non_private_cidr():
    results = run_checks(make_input(requester_destination_cidrs=("8.8.8.0/24",)))
    result = only(results, "non_private_cidr")
    assert result.status == CheckStatus.FAIL
    assert result.attr == "requester_destination_cidrs"
    assert "8.8.8.0/24" in result.detail
    # It is reported once, as non-private, not again as outside the peer.
    assert by_code(results, "destination_outside_peer") == []


def test_destination_with_host_bits_fails_invalid_cidr():
    results = run_checks(make_input(accepter_destination_cidrs=("10.0.0.1/16",)))
    result = only(results, "invalid_cidr")
    assert result.status == CheckStatus.FAIL
    assert result.attr == "accepter_destination_cidrs"


def test_shared_address_space_in_the_peer_is_a_warning():
    accepter = replace(DATA, cidrs=("100.64.0.0/16",), route_tables=(ACC_TABLE,))
    results = run_checks(make_input(accepter=accepter))
    result = only(results, "shared_address_space")
    assert result.status == CheckStatus.WARN
    assert result.attr == "requester_destination_cidrs"
    assert "100.64.0.0/16" in result.detail
    assert failures(results) == []


# --- route conflicts ------------------------------------------------------------------


def test_existing_route_to_another_target_conflicts_naming_route_and_target():
    table = replace(
        REQ_TABLE,
        routes=(
            RouteFacts("10.0.0.0/16", "local"),
            RouteFacts("10.1.0.0/16", "tgw-0abc"),
        ),
    )
    results = run_checks(make_input(requester=replace(APP, route_tables=(table,))))
    result = only(results, "route_conflict")
    assert result.status == CheckStatus.FAIL
    assert result.attr == "requester_route_tables"
    assert "app-private" in result.detail
    assert "10.1.0.0/16" in result.detail
    assert "tgw-0abc" in result.detail


def test_narrower_existing_route_inside_the_destination_conflicts():
    table = replace(ACC_TABLE, routes=(RouteFacts("10.0.5.0/24", "vgw-0def"),))
    results = run_checks(make_input(accepter=replace(DATA, route_tables=(table,))))
    result = only(results, "route_conflict")
    assert result.attr == "accepter_route_tables"
    assert "10.0.5.0/24" in result.detail
    assert "vgw-0def" in result.detail


def test_local_route_overlapping_the_destination_is_ignored():
    table = replace(REQ_TABLE, routes=(RouteFacts("10.1.0.0/16", "local"),))
    results = run_checks(make_input(requester=replace(APP, route_tables=(table,))))
    assert by_code(results, "route_conflict") == []


def test_route_in_a_table_that_was_not_chosen_is_ignored():
    busy = RouteTableFacts(
        "rtb-req2",
        "public",
        is_main=True,
        routes=(RouteFacts("10.1.0.0/16", "tgw-0abc"),),
    )
    requester = replace(APP, route_tables=(REQ_TABLE, busy))
    results = run_checks(make_input(requester=requester))
    assert by_code(results, "route_conflict") == []


@pytest.mark.parametrize(
    ("destination", "target"),
    [("0.0.0.0/0", "igw-0123"), ("10.0.0.0/8", "tgw-0abc")],
)
def test_broader_existing_route_does_not_conflict(destination, target):
    # AWS routes by longest prefix match: a peering route for 10.1.0.0/16 beats a
    # default route to an internet gateway or a /8 to a transit gateway; AWS documents
    # this as the normal layout (0.0.0.0/0 -> igw beside 172.31.0.0/16 -> pcx). Only an
    # equal or more specific existing route takes traffic away from the peering.
    table = replace(
        REQ_TABLE,
        routes=(RouteFacts("10.0.0.0/16", "local"), RouteFacts(destination, target)),
    )
    results = run_checks(make_input(requester=replace(APP, route_tables=(table,))))
    # Allowed, with a note saying why: the peering's narrower route wins.
    (note,) = by_code(results, "route_conflict")
    assert note.status == "pass"
    assert f"{destination} → {target}" in note.detail and "longest prefix" in note.detail
    assert failures(results) == []


@pytest.mark.parametrize("target", ["pcx-0peer", "eni-0abc", "vpce-0abc", "i-0abc"])
def test_a_broader_route_to_something_inside_a_vpc_is_a_conflict(target):
    # A route to another peering (or an interface, endpoint or instance) owns its addresses: a
    # narrower route inside it would take part of that peer's traffic. Only gateways carry
    # traffic onwards and may be left under a narrower peering route.
    table = replace(REQ_TABLE, routes=(RouteFacts("10.0.0.0/16", "local"), RouteFacts("10.0.0.0/8", target)))
    results = run_checks(make_input(requester=replace(APP, route_tables=(table,))))
    (conflict,) = by_code(results, "route_conflict")
    assert conflict.status == "fail"
    assert f"already routes 10.0.0.0/8 to {target}, which contains" in conflict.detail


# --- region and DNS -------------------------------------------------------------------


def test_inter_region_is_a_warning():
    accepter = replace(DATA, region="us-east-1")
    results = run_checks(make_input(accepter=accepter))
    result = only(results, "inter_region")
    assert result.status == CheckStatus.WARN
    assert "eu-west-1" in result.detail
    assert "us-east-1" in result.detail
    assert failures(results) == []


def test_same_region_has_no_inter_region_warning():
    assert by_code(run_checks(make_input()), "inter_region") == []


@pytest.mark.parametrize("side", ["requester", "accepter"])
def test_dns_with_hostnames_disabled_on_one_side_fails(side):
    vpcs = {"requester": APP, "accepter": DATA}
    vpcs[side] = replace(vpcs[side], dns_hostnames=False)
    results = run_checks(make_input(**vpcs, allow_dns_resolution=True))
    result = only(results, "dns_prerequisites")
    assert result.status == CheckStatus.FAIL
    assert result.attr == "allow_dns_resolution"
    assert f"{vpcs[side].label} has DNS hostnames disabled" in result.detail


def test_dns_with_prerequisites_met_passes():
    results = run_checks(make_input(allow_dns_resolution=True))
    assert only(results, "dns_prerequisites").status == CheckStatus.PASS


def test_dns_not_requested_is_not_checked():
    accepter = replace(DATA, dns_hostnames=False, dns_support=False)
    results = run_checks(make_input(accepter=accepter))
    assert by_code(results, "dns_prerequisites") == []


# --- failures() -----------------------------------------------------------------------


def test_failures_returns_only_fail_results_in_order():
    accepter = replace(DATA, region="us-east-1", has_owners=False)
    results = run_checks(
        make_input(
            accepter=accepter,
            requester_is_callers=False,
            requester_destination_cidrs=("8.8.8.0/24",),
        )
    )
    failed = failures(results)
    assert [r.code for r in failed] == [
        "not_your_vpc",
        "no_approver",
        "non_private_cidr",
    ]
    assert all(r.status == CheckStatus.FAIL for r in failed)
    # Passes and warnings exist in the full list but are filtered out.
    assert {r.status for r in results} == {
        CheckStatus.PASS,
        CheckStatus.WARN,
        CheckStatus.FAIL,
    }
    assert failed == [r for r in results if r.status == CheckStatus.FAIL]


def test_failures_of_nothing_is_nothing():
    assert failures([]) == []


# --- quotas: warn from 80 %, fail over the limit ---------------------------------------


@pytest.mark.parametrize(
    ("used", "limit", "status"),
    [
        (1, 1, "warn"),  # at the limit is not over it
        (2, 1, "fail"),
        (39, 50, "pass"),
        (40, 50, "warn"),  # exactly 80 %
        (50, 50, "warn"),
        (51, 50, "fail"),
        (3, 4, "pass"),  # 75 %
        (19, 25, "pass"),
        (20, 25, "warn"),
        (26, 25, "fail"),
    ],
)
def test_quota_threshold_warns_from_80_percent_and_fails_over_the_limit(used: int, limit: int, status: str) -> None:
    vpc_a = rules.VpcFacts("vpc-a", "a", "111111111111", "us-east-1", ("10.0.0.0/16",))
    vpc_b = rules.VpcFacts("vpc-b", "b", "222222222222", "us-east-1", ("10.1.0.0/16",))
    results = rules.run_checks(
        rules.CheckInput(
            requester_vpc_id="vpc-a",
            accepter_vpc_id="vpc-b",
            requester=vpc_a,
            accepter=vpc_b,
            requester_is_callers=True,
            requester_limits=rules.Limits(peerings_per_vpc=limit, outstanding_per_account=limit),
            usage=rules.Usage(requester_vpc_peerings=used - 1, requester_outstanding=used - 1),
        )
    )
    for code, subject in (
        ("quota_peerings_per_vpc", "peerings of a (vpc-a)"),
        ("quota_outstanding_requests", "outstanding peering requests of account 111111111111"),
    ):
        mine = [r for r in results if r.code == code and r.detail.startswith(subject)]
        assert len(mine) == 1, results
        assert mine[0].status == status
        assert f": {used} of {limit} after this request" in mine[0].detail
