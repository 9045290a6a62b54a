"""The checks table's rows, part 2: route conflicts, spokes of one hub, region and DNS, quotas and a
stale inventory."""

from __future__ import annotations

from datetime import timedelta

from tests.peering.checks_table.world import (
    ENGINEERING_DEFAULT,
    FINANCE,
    FINANCE_ACCOUNT_HAS_THREE_OUTSTANDING,
    FINANCE_DEFAULT,
    FINANCE_HOLDS_THREE_PEERINGS,
    OLD_PCX,
    SERVICES,
    Case,
    add_cidr,
    add_route,
    combine,
    filed,
    hold,
    limits,
    observed,
    setting,
    synced,
    vpc_fields,
)

CASES = [
    # route_conflict
    Case(
        "route_conflict-fail-narrower-route-requester-side",
        "fiona",
        FINANCE,
        SERVICES,
        "route_conflict",
        "fail",
        setup=add_route("finance-app-main", "10.0.1.0/24", "pcx-0aaaabbbbccccdddd"),
        detail="route table finance-app-main of finance-app (@finance-app) already routes 10.0.1.0/24 to "
        "pcx-0aaaabbbbccccdddd, which lies within 10.0.0.0/16",
    ),
    Case(
        "route_conflict-fail-equal-route-accepter-side",
        "fiona",
        FINANCE,
        SERVICES,
        "route_conflict",
        "fail",
        setup=add_route("services-private", "10.11.0.0/16", "tgw-0123456789abcdef0"),
        detail="route table services-private of services-use1 (@services-use1) already routes 10.11.0.0/16 to "
        "tgw-0123456789abcdef0, which lies within 10.11.0.0/16",
    ),
    # A broader route to a gateway stays: the peering's narrower route wins by longest prefix.
    Case(
        "route_conflict-pass-broader-routes-to-gateways",
        "fiona",
        FINANCE,
        SERVICES,
        "route_conflict",
        "pass",
        setup=combine(
            add_route("finance-app-main", "0.0.0.0/0", "igw-0123456789abcdef0"),
            add_route("finance-app-main", "10.0.0.0/8", "tgw-0123456789abcdef0"),
        ),
        detail="broader routes to gateways in finance-app (@finance-app) stay (finance-app-main: 0.0.0.0/0 → "
        "igw-0123456789abcdef0; finance-app-main: 10.0.0.0/8 → tgw-0123456789abcdef0): the peering's "
        "narrower routes win by longest prefix",
    ),
    # A broader route to a peering owns its addresses: a narrower one inside it would steal them.
    Case(
        "route_conflict-fail-broader-route-to-a-peering",
        "fiona",
        FINANCE,
        SERVICES,
        "route_conflict",
        "fail",
        setup=add_route("services-private", "10.0.0.0/8", "pcx-0aaaabbbbccccdddd"),
        detail="route table services-private of services-use1 (@services-use1) already routes 10.0.0.0/8 to "
        "pcx-0aaaabbbbccccdddd, which contains 10.1.0.0/16: that peer owns those addresses, and a narrower "
        "route would take part of its traffic",
    ),
    # The portal's own routes count before any sync has read them ...
    Case(
        "route_conflict-fail-a-route-the-portal-made-since-the-last-sync",
        "fiona",
        FINANCE_DEFAULT,
        SERVICES,
        "route_conflict",
        "fail",
        setup=hold(ENGINEERING_DEFAULT, SERVICES, "active", by="erin", routes="created", pcx=OLD_PCX),
        detail=f"route table services-use1-main of services-use1 (@services-use1) already routes 172.31.0.0/16 to "
        f"{OLD_PCX} (a request of another department: a VPC of another department → services-use1 "
        "(@services-use1), active), which lies within 172.31.0.0/16",
    ),
    # ... and a route it removed since does not.
    Case(
        "route_conflict-absent-a-route-the-portal-removed-since-the-last-sync",
        "fiona",
        FINANCE,
        SERVICES,
        "route_conflict",
        None,
        setup=combine(
            add_route("services-use1-main", "10.1.0.0/16", OLD_PCX),
            hold(FINANCE, SERVICES, "decommissioned", routes="removed", pcx=OLD_PCX),
        ),
    ),
    # A request waiting for approval claims its routes: a warning, until one of the two is approved.
    Case(
        "route_conflict-warn-claim-of-a-pending-request",
        "fiona",
        FINANCE_DEFAULT,
        SERVICES,
        "route_conflict",
        "warn",
        setup=filed("erin", ENGINEERING_DEFAULT, SERVICES, key="other"),
        detail="route table services-use1-main of services-use1 (@services-use1) already routes 172.31.0.0/16 to "
        "the peering of a request of another department: a VPC of another department → services-use1 "
        "(@services-use1), pending_approval, which lies within 172.31.0.0/16; with no reverse-path "
        "forwarding it cannot route to both; the one approved first wins",
    ),
    # spoke_overlap: two peers of one VPC (two spokes of a hub) must not overlap
    Case(
        "spoke_overlap-pass",
        "fiona",
        FINANCE,
        SERVICES,
        "spoke_overlap",
        "pass",
        setup=hold("eng-build", SERVICES, "active", by="erin"),
        detail="no other peer of services-use1 (@services-use1) or finance-app (@finance-app) overlaps the new peer",
    ),
    Case(
        "spoke_overlap-warn-the-other-spoke-is-pending",
        "fiona",
        FINANCE_DEFAULT,
        SERVICES,
        "spoke_overlap",
        "warn",
        setup=filed("erin", ENGINEERING_DEFAULT, SERVICES, key="other"),
        # erin's VPC and request are another department's: fiona learns the CIDR and the table only.
        detail="172.31.0.0/16 of @default-222222222222-us-east-1 overlaps 172.31.0.0/16 of a VPC of "
        "another department, which services-use1 (@services-use1) already peers with (a request of another "
        "department, pending_approval, routed by route table @services-use1-main, @services-private): with "
        "no reverse-path forwarding services-use1 (@services-use1) cannot route to both; the one approved "
        "first wins",
    ),
    # The rule holds on both sides: finance-app cannot take a second peer that overlaps its first.
    Case(
        "spoke_overlap-fail-the-requester-already-peers-with-an-overlapping-vpc",
        "fiona",
        FINANCE,
        "services-euw1",
        "spoke_overlap",
        "fail",
        setup=combine(hold(FINANCE, SERVICES, "active", key="held"), add_cidr("services-euw1", "10.0.64.0/18")),
        detail="10.0.64.0/18 of services-euw1 (@services-euw1) overlaps 10.0.0.0/16 of services-use1 "
        "(@services-use1), which finance-app (@finance-app) already peers with (request @held, active)",
    ),
    Case(
        "spoke_overlap-fail-a-block-inside-a-live-spoke",
        "fiona",
        FINANCE,
        SERVICES,
        "spoke_overlap",
        "fail",
        setup=combine(hold("eng-build", SERVICES, "approved", by="erin"), add_cidr(FINANCE, "10.3.128.0/20")),
        detail="10.3.128.0/20 of finance-app (@finance-app) overlaps 10.3.0.0/16 of a VPC of another department, "
        "which services-use1 (@services-use1) already peers with (a request of another department, approved)",
    ),
    Case(
        "spoke_overlap-fail-a-block-containing-a-live-spoke",
        "fiona",
        FINANCE,
        SERVICES,
        "spoke_overlap",
        "fail",
        setup=combine(hold("eng-build", SERVICES, "provisioning", by="erin"), add_cidr(FINANCE, "10.2.0.0/15")),
        detail="10.2.0.0/15 of finance-app (@finance-app) overlaps 10.3.0.0/16 of a VPC of another department",
    ),
    Case(
        "spoke_overlap-fail-a-connection-found-in-aws",
        "fiona",
        FINANCE,
        SERVICES,
        "spoke_overlap",
        "fail",
        setup=combine(
            observed("eng-build", SERVICES, "active", requester_account="444444444444", key="seen"),
            add_cidr(FINANCE, "10.3.128.0/20"),
        ),
        detail="(connection @seen found in AWS, not made by the portal, active)",
    ),
    Case(
        "spoke_overlap-fail-default-vpcs-of-two-departments",
        "fiona",
        FINANCE_DEFAULT,
        SERVICES,
        "spoke_overlap",
        "fail",
        setup=hold(ENGINEERING_DEFAULT, SERVICES, "active", by="erin"),
        detail="172.31.0.0/16 of @default-222222222222-us-east-1 overlaps 172.31.0.0/16 of a VPC of "
        "another department, which services-use1 (@services-use1) already peers with (a request of another "
        "department, active): with no reverse-path forwarding services-use1 (@services-use1) cannot route "
        "to both",
    ),
    Case(
        "route_conflict-absent-table-not-chosen",
        "fiona",
        FINANCE,
        SERVICES,
        "route_conflict",
        None,
        setup=add_route("services-private", "10.1.0.0/16", "tgw-0123456789abcdef0"),
        body={"accepter_route_tables": ["@services-use1-main"]},
    ),
    # inter_region
    Case(
        "inter_region-warn",
        "fiona",
        FINANCE,
        "services-euw1",
        "inter_region",
        "warn",
        detail="finance-app (@finance-app) is in us-east-1 and services-euw1 (@services-euw1) in eu-west-1: "
        "inter-region traffic crosses with an MTU of at most 8500 bytes (1500 through an internet gateway or "
        "a VPN), and security groups cannot reference the peer's",
    ),
    Case("inter_region-absent", "fiona", FINANCE, SERVICES, "inter_region", None),
    # dns_prerequisites
    Case(
        "dns_prerequisites-pass",
        "fiona",
        FINANCE,
        SERVICES,
        "dns_prerequisites",
        "pass",
        body={"allow_dns_resolution": True},
        detail="DNS hostnames and support are enabled on both VPCs",
    ),
    Case(
        "dns_prerequisites-fail-accepter-hostnames-off",
        "fiona",
        FINANCE,
        SERVICES,
        "dns_prerequisites",
        "fail",
        setup=vpc_fields(SERVICES, dns_hostnames=False),
        body={"allow_dns_resolution": True},
        detail="DNS resolution across the peering needs DNS hostnames and DNS support on both VPCs: "
        "services-use1 (@services-use1) has DNS hostnames disabled",
    ),
    Case(
        "dns_prerequisites-fail-requester-support-off",
        "fiona",
        FINANCE,
        SERVICES,
        "dns_prerequisites",
        "fail",
        setup=vpc_fields(FINANCE, dns_support=False),
        body={"allow_dns_resolution": True},
        detail="finance-app (@finance-app) has DNS support disabled",
    ),
    # quota_peerings_per_vpc: finance-app holds 3, so this request makes 4
    Case(
        "quota_peerings_per_vpc-pass-4-of-6",
        "fiona",
        FINANCE,
        SERVICES,
        "quota_peerings_per_vpc",
        "pass",
        setup=combine(FINANCE_HOLDS_THREE_PEERINGS, limits("222222222222", max_peerings_per_vpc=6)),
        detail="peerings of finance-app (@finance-app): 4 of 6 after this request",
    ),
    Case(
        "quota_peerings_per_vpc-warn-4-of-5-is-80pct",
        "fiona",
        FINANCE,
        SERVICES,
        "quota_peerings_per_vpc",
        "warn",
        setup=combine(FINANCE_HOLDS_THREE_PEERINGS, limits("222222222222", max_peerings_per_vpc=5)),
        detail="peerings of finance-app (@finance-app): 4 of 5 after this request, close to the quota",
    ),
    Case(
        "quota_peerings_per_vpc-warn-4-of-4-at-the-limit",
        "fiona",
        FINANCE,
        SERVICES,
        "quota_peerings_per_vpc",
        "warn",
        setup=combine(FINANCE_HOLDS_THREE_PEERINGS, limits("222222222222", max_peerings_per_vpc=4)),
        detail="peerings of finance-app (@finance-app): 4 of 4 after this request, close to the quota",
    ),
    Case(
        "quota_peerings_per_vpc-fail-4-of-3",
        "fiona",
        FINANCE,
        SERVICES,
        "quota_peerings_per_vpc",
        "fail",
        setup=combine(FINANCE_HOLDS_THREE_PEERINGS, limits("222222222222", max_peerings_per_vpc=3)),
        detail="peerings of finance-app (@finance-app): 4 of 3 after this request, over the quota; "
        "ask AWS to raise it, then an admin to raise it here",
    ),
    Case(
        "quota_peerings_per_vpc-fail-accepter-full",
        "fiona",
        FINANCE,
        SERVICES,
        "quota_peerings_per_vpc",
        "fail",
        setup=combine(
            hold("hr-portal", SERVICES, "active", by="harry"), limits("111111111111", max_peerings_per_vpc=1)
        ),
        detail="peerings of services-use1 (@services-use1): 2 of 1 after this request, over the quota",
    ),
    # quota_outstanding_requests: account 222222222222 has 3 outstanding, so this request makes 4
    Case(
        "quota_outstanding_requests-pass-4-of-6",
        "fiona",
        FINANCE,
        SERVICES,
        "quota_outstanding_requests",
        "pass",
        setup=combine(FINANCE_ACCOUNT_HAS_THREE_OUTSTANDING, limits("222222222222", max_outstanding_requests=6)),
        detail="outstanding peering requests of account 222222222222: 4 of 6 after this request",
    ),
    Case(
        "quota_outstanding_requests-warn-4-of-5-is-80pct",
        "fiona",
        FINANCE,
        SERVICES,
        "quota_outstanding_requests",
        "warn",
        setup=combine(FINANCE_ACCOUNT_HAS_THREE_OUTSTANDING, limits("222222222222", max_outstanding_requests=5)),
        detail="outstanding peering requests of account 222222222222: 4 of 5 after this request, close to the quota",
    ),
    Case(
        "quota_outstanding_requests-fail-4-of-3",
        "fiona",
        FINANCE,
        SERVICES,
        "quota_outstanding_requests",
        "fail",
        setup=combine(FINANCE_ACCOUNT_HAS_THREE_OUTSTANDING, limits("222222222222", max_outstanding_requests=3)),
        detail="outstanding peering requests of account 222222222222: 4 of 3 after this request, over the quota",
    ),
    # quota_routes_per_table: finance-app-main has 2 routes (both local) and gets 1 (10.0.0.0/16)
    Case(
        "quota_routes_per_table-pass-3-of-4",
        "fiona",
        FINANCE,
        SERVICES,
        "quota_routes_per_table",
        "pass",
        setup=limits("222222222222", max_routes_per_table=4),
        detail="routes in finance-app-main (@finance-app-main) of finance-app (@finance-app): 3 of 4 after this request",
    ),
    Case(
        "quota_routes_per_table-warn-4-of-5-is-80pct",
        "fiona",
        FINANCE,
        SERVICES,
        "quota_routes_per_table",
        "warn",
        setup=combine(
            add_route("finance-app-main", "0.0.0.0/0", "igw-0123456789abcdef0"),
            limits("222222222222", max_routes_per_table=5),
        ),
        detail="routes in finance-app-main (@finance-app-main) of finance-app (@finance-app): 4 of 5 after this "
        "request, close to the quota",
    ),
    Case(
        "quota_routes_per_table-warn-3-of-3-at-the-limit",
        "fiona",
        FINANCE,
        SERVICES,
        "quota_routes_per_table",
        "warn",
        setup=limits("222222222222", max_routes_per_table=3),
        detail="routes in finance-app-main (@finance-app-main) of finance-app (@finance-app): 3 of 3 after this "
        "request, close to the quota",
    ),
    Case(
        "quota_routes_per_table-fail-3-of-2",
        "fiona",
        FINANCE,
        SERVICES,
        "quota_routes_per_table",
        "fail",
        setup=limits("222222222222", max_routes_per_table=2),
        detail="routes in finance-app-main (@finance-app-main) of finance-app (@finance-app): 3 of 2 after this "
        "request, over the quota",
    ),
    Case(
        "quota_routes_per_table-fail-accepter-table",
        "fiona",
        FINANCE,
        SERVICES,
        "quota_routes_per_table",
        "fail",
        setup=limits("111111111111", max_routes_per_table=2),
        detail="routes in services-private (@services-private) of services-use1 (@services-use1): 3 of 2 after this "
        "request, over the quota",
    ),
    # inventory_stale (warn only: it never blocks)
    Case(
        "inventory_stale-pass-just-synced",
        "fiona",
        FINANCE,
        SERVICES,
        "inventory_stale",
        "pass",
        setup=synced(FINANCE, SERVICES, ago=timedelta(0)),
        detail="inventory read from AWS 0.0 h ago",
    ),
    Case(
        "inventory_stale-warn-both-synced-48h-ago",
        "fiona",
        FINANCE,
        SERVICES,
        "inventory_stale",
        "warn",
        setup=synced(FINANCE, SERVICES, ago=timedelta(hours=48)),
        detail="the checks used an inventory read from AWS 48.0 h ago; sync accounts 222222222222, "
        "111111111111 for current routes and CIDRs",
    ),
    Case(
        "inventory_stale-warn-the-older-vpc-counts",
        "fiona",
        FINANCE,
        SERVICES,
        "inventory_stale",
        "warn",
        setup=synced(SERVICES, ago=timedelta(hours=30)),
        detail="the checks used an inventory read from AWS 30.0 h ago",
    ),
    Case(
        "inventory_stale-warn-max-age-setting",
        "fiona",
        FINANCE,
        SERVICES,
        "inventory_stale",
        "warn",
        setup=combine(setting("INVENTORY_MAX_AGE_SECONDS", 300), synced(FINANCE, SERVICES, ago=timedelta(minutes=12))),
        detail="the checks used an inventory read from AWS 0.2 h ago",
    ),
    Case(
        "inventory_stale-warn-never-synced",
        "fiona",
        FINANCE,
        SERVICES,
        "inventory_stale",
        "warn",
        setup=synced(FINANCE, ago=None),
        detail="these VPCs have never been read from AWS; sync their accounts first",
    ),
]
