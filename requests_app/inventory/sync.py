"""Read accounts' VPCs, CIDR blocks, route tables and peerings from AWS into the inventory."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from requests_app.aws.gateway import AwsGateway, get_gateway
from requests_app.aws.types import AccountRef
from requests_app.domain import cidrs
from requests_app.models import AwsAccount, ObservedPeering, PeeringRequest, RouteTable, Vpc, VpcCidr


def account_ref(account: AwsAccount) -> AccountRef:
    return AccountRef(account.account_id, account.role_arn, account.external_id)


class SyncReportDict(TypedDict):
    """What one account's sync found, as the API answers it and the audit event records it."""

    account_id: str
    vpcs: int
    route_tables: int
    peerings: int
    vanished_vpcs: list[str]  # VPCs the inventory had that AWS no longer has


@dataclass
class SyncReport:
    account_id: str
    vpcs: int = 0
    route_tables: int = 0
    peerings: int = 0
    vanished_vpcs: list[str] = field(default_factory=list)

    def as_dict(self) -> SyncReportDict:
        return {
            "account_id": self.account_id,
            "vpcs": self.vpcs,
            "route_tables": self.route_tables,
            "peerings": self.peerings,
            "vanished_vpcs": self.vanished_vpcs,
        }


def sync_account(account: AwsAccount, gateway: AwsGateway | None = None) -> SyncReport:
    """Read everything first, then write it in one transaction (no lock held across AWS calls)."""
    gateway = gateway or get_gateway()
    ref = account_ref(account)
    report = SyncReport(account.account_id)
    # The inventory is as of when reading began: a route the portal removes while this sync reads
    # must stay removed in the portal's picture (see `network.routes_by_table`).
    now = timezone.now()
    fetched = []
    for region in account.regions:
        vpcs = gateway.describe_vpcs(ref, region)
        tables = gateway.describe_route_tables(ref, region)
        peerings = gateway.describe_peerings(ref, region)
        fetched.append((region, vpcs, tables, peerings))

    # Connections the portal holds that AWS does not tag with its request id (adopted ones).
    connection_ids = [p.connection_id for _, _, _, peerings in fetched for p in peerings]
    held_by = dict(
        PeeringRequest.objects.filter(aws_peering_connection_id__in=connection_ids)
        .order_by("created_at")
        .values_list("aws_peering_connection_id", "pk")
    )
    with transaction.atomic():
        seen_vpcs: set[str] = set()
        for region, vpcs, tables, peerings in fetched:
            by_vpc: dict[str, list] = {}
            for table in tables:
                by_vpc.setdefault(table.vpc_id, []).append(table)
            for info in vpcs:
                seen_vpcs.add(info.vpc_id)
                vpc, _ = Vpc.objects.update_or_create(
                    vpc_id=info.vpc_id,
                    defaults={
                        "account": account,
                        "region": region,
                        "name": info.name,
                        "is_default": info.is_default,
                        "dns_hostnames": info.dns_hostnames,
                        "dns_support": info.dns_support,
                        "present_in_aws": True,
                        "synced_at": now,
                    },
                )
                VpcCidr.objects.filter(vpc=vpc).exclude(cidr__in=info.cidrs).delete()
                for index, cidr in enumerate(info.cidrs):
                    first, last = cidrs.address_range(cidr)
                    VpcCidr.objects.update_or_create(
                        vpc=vpc,
                        cidr=cidr,
                        defaults={"is_primary": index == 0, "first_address": first, "last_address": last},
                    )
                table_ids = []
                for table in by_vpc.get(info.vpc_id, []):
                    table_ids.append(table.route_table_id)
                    RouteTable.objects.update_or_create(
                        route_table_id=table.route_table_id,
                        defaults={
                            "vpc": vpc,
                            "name": table.name,
                            "is_main": table.is_main,
                            "routes": [
                                {"destination": r.destination, "target": r.target, "state": r.state}
                                for r in table.routes
                            ],
                        },
                    )
                RouteTable.objects.filter(vpc=vpc).exclude(route_table_id__in=table_ids).delete()
                report.vpcs += 1
                report.route_tables += len(table_ids)
            for peering in peerings:
                facts = {
                    "requester_vpc_id": peering.requester_vpc_id,
                    "accepter_vpc_id": peering.accepter_vpc_id,
                    "requester_account_id": peering.requester_owner_id,
                    "accepter_account_id": peering.accepter_owner_id,
                    "requester_region": peering.requester_region,
                    "accepter_region": peering.accepter_region,
                    "requester_cidrs": list(peering.requester_cidrs),
                    "accepter_cidrs": list(peering.accepter_cidrs),
                    "requester_dns_resolution": peering.requester_dns_resolution,
                    "accepter_dns_resolution": peering.accepter_dns_resolution,
                    "status": peering.status,
                    "portal_request_id": peering.tag(settings.PEERING_TAG_KEY)
                    or str(held_by.get(peering.connection_id, "")),
                    "seen_at": now,
                }
                ObservedPeering.objects.update_or_create(
                    connection_id=peering.connection_id, defaults=facts, create_defaults={**facts, "first_seen": now}
                )
                report.peerings += 1
        # Connections of this account that AWS no longer lists are gone (AWS drops deleted ones
        # after a while): they must not keep holding a VPC pair or counting against a quota.
        seen_peerings = [p.connection_id for _, _, _, peerings in fetched for p in peerings]
        ObservedPeering.objects.filter(
            Q(requester_account_id=account.account_id) | Q(accepter_account_id=account.account_id)
        ).exclude(connection_id__in=seen_peerings).exclude(status="missing").update(status="missing", seen_at=now)
        vanished = Vpc.objects.filter(account=account, present_in_aws=True).exclude(vpc_id__in=seen_vpcs)
        report.vanished_vpcs = list(vanished.values_list("vpc_id", flat=True))
        vanished.update(present_in_aws=False)
        AwsAccount.objects.filter(pk=account.pk).update(last_synced_at=now)
    return report
