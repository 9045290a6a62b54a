"""The inventory's use cases: registering and syncing AWS accounts, and the capacity of VPCs."""

from __future__ import annotations

import re

from django.contrib.auth.models import User
from django.db import transaction

from requests_app import audit
from requests_app.audit import AuditAction
from requests_app.aws.types import AwsError
from requests_app.core.errors import PortalError
from requests_app.core.validation import clean_line, full_clean
from requests_app.domain import text
from requests_app.inventory import network, sync
from requests_app.inventory import selectors as inventory_selectors
from requests_app.models import AwsAccount, Department, Vpc
from requests_app.peering import permissions
from requests_app.peering.quotas import limits_of, outstanding_counts

AWS_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")


# --- accounts and inventory ------------------------------------------------------------------
def aws_account_check(*, name: str, regions: list[str]) -> None:
    """The rules an account's name and regions must meet, wherever it is registered or changed."""
    clean_line(name, "name", max_length=text.MAX_LINE)
    listed = regions if isinstance(regions, list) else [regions]
    bad_regions = [r for r in listed if not isinstance(r, str) or not AWS_REGION.fullmatch(r)]
    if bad_regions or not listed:
        raise PortalError(
            "invalid_region",
            f"regions must be AWS region names like us-east-1, not {', '.join(map(repr, bad_regions)) or 'none'}",
            attr="regions",
        )


def aws_account_register(
    *, actor: User, account_id: str, name: str, department: str, role_arn: str, regions: list[str]
) -> AwsAccount:
    if not permissions.is_admin(actor):
        raise PortalError("permission_denied", "Only administrators register AWS accounts.", status=403)
    aws_account_check(name=name, regions=regions)
    dept = Department.objects.filter(slug=department).first()
    if dept is None:
        raise PortalError("not_found", f"No department {department!r}.", attr="department")
    with transaction.atomic():
        account = AwsAccount(account_id=account_id, name=name, department=dept, role_arn=role_arn, regions=regions)
        full_clean(account)
        account.save()
        audit.record(
            action=AuditAction.ACCOUNT_REGISTERED,
            actor=actor,
            account_id=account_id,
            data={"name": name, "department": department, "role_arn": role_arn, "regions": regions},
        )
    return account


def aws_account_sync(*, actor: User, account_id: str) -> sync.SyncReportDict:
    if not permissions.is_admin(actor):
        raise PortalError("permission_denied", "Only administrators sync AWS accounts.", status=403)
    account = AwsAccount.objects.filter(account_id=account_id).first()
    if account is None:
        raise PortalError("not_found", f"No AWS account {account_id} is registered.", status=404)
    try:
        report = sync.sync_account(account)
    except AwsError as exc:
        audit.record(
            action=AuditAction.ACCOUNT_SYNC_FAILED,
            actor=actor,
            account_id=account_id,
            result="error",
            error_code=exc.code,
            operation=exc.operation,
            message=exc.message,
        )
        raise PortalError("aws_error", f"Reading account {account_id} failed: {exc}", status=502) from None
    audit.record(
        action=AuditAction.ACCOUNT_SYNCED, actor=actor, account_id=account_id, result="ok", data=report.as_dict()
    )
    return report.as_dict()


# --- the network: capacity and adoption ----------------------------------------------------------
def vpc_capacity(*, actor: User, vpc_id: str) -> network.Capacity:
    """Headroom of a VPC the actor may see against each quota, counting live and pending work."""
    vpc = inventory_selectors.vpcs_visible_to(actor).filter(vpc_id=vpc_id).first()
    if vpc is None:
        raise PortalError("not_found", f"No VPC {vpc_id} that you can see.", status=404)
    (capacity,) = capacities([vpc])
    return capacity


def capacities(vpcs: list[Vpc]) -> list[network.Capacity]:
    """Headroom of each VPC, in a fixed number of queries (the pages show every hub's)."""
    accounts = {v.account_id: v.account for v in vpcs}
    return network.capacities(
        vpcs,
        limits={pk: limits_of(account) for pk, account in accounts.items()},
        outstanding=outstanding_counts(list(accounts.values())),
    )
