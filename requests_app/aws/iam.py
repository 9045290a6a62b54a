"""Least-privilege IAM documents for one registered account, shaped by what the portal does there.

Which account makes which call (requests_app/provisioning.py, inventory.py, reconciler.py):

- the requester VPC's account creates the connection (tagged with the portal's request id),
  describes it, sets its own side's DNS option, adds and removes routes in its own route tables,
  and deletes the connection at teardown (of an adopted peering too: sides are as AWS has them);
- the accepter VPC's account accepts it, sets its own side's DNS option, and adds and removes
  routes in its own route tables. It never rejects or deletes a connection;
- every account is read by the inventory sync and the reconciler (Describe* calls).

Every resource is named by account-scoped ARNs (`arn:<partition>:ec2:<region>:<account>:vpc/*`),
never by VPC id: a VPC created after the policy is covered, and the documents do not grow with
the number of VPCs. What the role may peer *with* is limited to VPCs of the accounts registered in
the portal (`ec2:AccepterVpc` on create, `ec2:RequesterVpc` on accept), the boundary the portal
itself trusts. Every document is checked against IAM's size limits (`_side_policy` says what
gives way first with very many regions or accounts).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TypeAlias, TypedDict

from django.conf import settings

from requests_app.models import AwsAccount

# Read-only containers, so a list[str] of ARNs is Json (list itself is invariant).
Json: TypeAlias = "str | Sequence[Json] | Mapping[str, Json]"
Document: TypeAlias = "dict[str, Json]"

VERSION = "2012-10-17"
# IAM's limits, counted without white space: a customer managed policy, and a role's trust
# policy (its default quota, which Service Quotas can raise).
MANAGED_POLICY_MAX_CHARS = 6144
TRUST_POLICY_MAX_CHARS = 2048

CREATE = "ec2:CreateVpcPeeringConnection"
ACCEPT = "ec2:AcceptVpcPeeringConnection"
DELETE = "ec2:DeleteVpcPeeringConnection"
MODIFY_OPTIONS = "ec2:ModifyVpcPeeringConnectionOptions"
CREATE_TAGS = "ec2:CreateTags"
ROUTES = ["ec2:CreateRoute", "ec2:DeleteRoute"]
DESCRIBE_VPC_ATTRIBUTE = "ec2:DescribeVpcAttribute"
# These support no resource-level permissions: IAM accepts them only on Resource "*".
DESCRIBE_ANY = ["ec2:DescribeVpcs", "ec2:DescribeRouteTables", "ec2:DescribeVpcPeeringConnections"]

PRINCIPAL_PATTERN = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):(role|user)/[\w+=,.@/-]+$")
PARTITION_PATTERN = re.compile(r"^arn:(aws[a-z-]*):")


class AccountDocuments(TypedDict):
    role_arn: str
    trust_policy: Document
    requester_side_policy: Document
    accepter_side_policy: Document
    portal_identity_policy: Document


class PolicyError(ValueError):
    """The documents cannot be made as asked; the message says what to fix."""


def partition_of(arn: str) -> str:
    """`aws`, `aws-us-gov`, `aws-cn`: ARNs of other accounts' resources must use the same one."""
    match = PARTITION_PATTERN.match(arn)
    if match is None:
        raise PolicyError(f"{arn!r} is not an ARN.")
    return match.group(1)


def portal_principal(principal: str) -> str:
    """The IAM role or user the portal runs as, checked: a trust policy naming anything else is useless."""
    if not PRINCIPAL_PATTERN.match(principal):
        raise PolicyError(
            f"The portal's principal {principal!r} is not an IAM role or user ARN. Set PORTAL_AWS_PRINCIPAL "
            "(or pass --portal-principal) to the ARN the portal runs as, like "
            "arn:aws:iam::123456789012:role/peering-portal."
        )
    return principal


def policy_size(document: Document) -> int:
    """Characters IAM counts against its limits: the JSON without white space."""
    return len(re.sub(r"\s", "", json.dumps(document)))


def _ec2_arns(partition: str, regions: list[str], account_id: str, resource_type: str) -> list[str]:
    return [f"arn:{partition}:ec2:{region}:{account_id}:{resource_type}/*" for region in regions]


def _registered_vpcs(partition: str) -> list[str]:
    """Every VPC of every registered account (in this partition; peering never crosses one), any region."""
    account_ids = sorted(
        account_id
        for account_id, role_arn in AwsAccount.objects.values_list("account_id", "role_arn")
        if partition_of(role_arn) == partition
    )
    return [f"arn:{partition}:ec2:*:{account_id}:vpc/*" for account_id in account_ids]


def _own_regions(account: AwsAccount, regions: list[str] | None) -> list[str]:
    return regions or sorted(set(account.regions)) or ["*"]


def _routes_and_reads(partition: str, regions: list[str], account: AwsAccount) -> list[Document]:
    return [
        {
            "Sid": "RoutesInOwnRouteTables",
            "Effect": "Allow",
            "Action": list(ROUTES),
            "Resource": _ec2_arns(partition, regions, account.account_id, "route-table"),
        },
        {
            "Sid": "ReadOwnVpcsDnsAttributes",
            "Effect": "Allow",
            "Action": DESCRIBE_VPC_ATTRIBUTE,
            "Resource": _ec2_arns(partition, regions, account.account_id, "vpc"),
        },
        {"Sid": "ReadInventory", "Effect": "Allow", "Action": list(DESCRIBE_ANY), "Resource": "*"},
    ]


def requester_policy(account: AwsAccount, regions: list[str] | None = None) -> Document:
    """For an account whose VPCs ask for peerings (department accounts).

    `regions` overrides the account's own regions in its resource ARNs (`["*"]`: all regions).
    """
    partition = partition_of(account.role_arn)
    regions = _own_regions(account, regions)
    own_vpcs = _ec2_arns(partition, regions, account.account_id, "vpc")
    own_connections = _ec2_arns(partition, regions, account.account_id, "vpc-peering-connection")
    tag = settings.PEERING_TAG_KEY
    return {
        "Version": VERSION,
        "Statement": [
            {
                # The create is authorised on two resources: the requester VPC (always ours)...
                "Sid": "CreateFromOwnVpcs",
                "Effect": "Allow",
                "Action": CREATE,
                "Resource": own_vpcs,
            },
            {
                # ...and the new connection: to a registered account's VPC only, carrying the
                # portal's request-id tag, by which the portal later finds it and may delete it.
                "Sid": "CreateTaggedToRegisteredAccountsVpcs",
                "Effect": "Allow",
                "Action": CREATE,
                "Resource": own_connections,
                "Condition": {
                    "Null": {f"aws:RequestTag/{tag}": "false"},
                    "ArnLike": {"ec2:AccepterVpc": _registered_vpcs(partition)},
                },
            },
            {
                "Sid": "TagOnlyWhileCreating",
                "Effect": "Allow",
                "Action": CREATE_TAGS,
                "Resource": own_connections,
                "Condition": {"StringEquals": {"ec2:CreateAction": "CreateVpcPeeringConnection"}},
            },
            {
                # DNS on our side, and the teardown's delete: only connections our VPCs requested.
                # Not limited to the portal's tag: a peering adopted from outside the portal has
                # none, and decommissioning it deletes it like any other.
                "Sid": "DnsAndDeleteOfOwnVpcsRequests",
                "Effect": "Allow",
                "Action": [MODIFY_OPTIONS, DELETE],
                "Resource": own_connections,
                "Condition": {"ArnLike": {"ec2:RequesterVpc": own_vpcs}},
            },
            *_routes_and_reads(partition, regions, account),
        ],
    }


def accepter_policy(account: AwsAccount, regions: list[str] | None = None) -> Document:
    """For an account whose VPCs accept peerings (the Services VPCs' account): no reject, no delete.

    `regions` overrides the account's own regions in its resource ARNs (`["*"]`: all regions).
    """
    partition = partition_of(account.role_arn)
    regions = _own_regions(account, regions)
    own_vpcs = _ec2_arns(partition, regions, account.account_id, "vpc")
    own_connections = _ec2_arns(partition, regions, account.account_id, "vpc-peering-connection")
    return {
        "Version": VERSION,
        "Statement": [
            {
                # Accepting is authorised on the connection (only from a registered account's VPC)...
                "Sid": "AcceptFromRegisteredAccountsVpcs",
                "Effect": "Allow",
                "Action": ACCEPT,
                "Resource": own_connections,
                "Condition": {"ArnLike": {"ec2:RequesterVpc": _registered_vpcs(partition)}},
            },
            {
                # ...and on the accepter VPC, which is ours.
                "Sid": "AcceptIntoOwnVpcs",
                "Effect": "Allow",
                "Action": ACCEPT,
                "Resource": own_vpcs,
            },
            {
                "Sid": "DnsOnOwnSideOnly",
                "Effect": "Allow",
                "Action": MODIFY_OPTIONS,
                "Resource": own_connections,
                "Condition": {"ArnLike": {"ec2:AccepterVpc": own_vpcs}},
            },
            *_routes_and_reads(partition, regions, account),
        ],
    }


def trust_policy(account: AwsAccount, principal: str) -> Document:
    """Only the portal's identity, only with the ExternalId the portal generated for this account."""
    principal = portal_principal(principal)
    if partition_of(principal) != partition_of(account.role_arn):
        raise PolicyError(
            f"The portal's principal {principal} and the role {account.role_arn} are in different AWS partitions; "
            "a role can only be assumed from its own partition."
        )
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "OnlyThePortalWithThisAccountsExternalId",
                "Effect": "Allow",
                "Principal": {"AWS": principal},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": account.external_id}},
            }
        ],
    }


def portal_identity_policy(principal: str) -> Document:
    """The portal's own identity: assume the registered roles (of its partition), nothing else."""
    partition = partition_of(portal_principal(principal))
    roles = [
        role_arn
        for role_arn in AwsAccount.objects.order_by("account_id").values_list("role_arn", flat=True)
        if partition_of(role_arn) == partition
    ]
    if not roles:
        raise PolicyError(
            f"No AWS account of partition {partition} is registered: register an account first "
            "(POST /api/v1/aws-accounts/ or /admin/)."
        )
    return {
        "Version": VERSION,
        "Statement": [
            {"Sid": "AssumeOnlyThePortalsRoles", "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": roles}
        ],
    }


def _checked(what: str, document: Document, limit: int, remedy: str) -> Document:
    if policy_size(document) > limit:
        raise PolicyError(f"{what} would be {policy_size(document)} characters, past IAM's {limit}: {remedy}")
    return document


def _side_policy(builder: Callable[[AwsAccount, list[str] | None], Document], account: AwsAccount) -> Document:
    """The side's policy with the account's regions in its ARNs; with every region (`*`) if only
    that keeps it within the managed-policy limit (an account in dozens of regions)."""
    document = builder(account, None)
    if policy_size(document) > MANAGED_POLICY_MAX_CHARS:
        document = builder(account, ["*"])
    return _checked(
        f"The {builder.__name__.replace('_', ' ')} of {account.account_id}",
        document,
        MANAGED_POLICY_MAX_CHARS,
        "it names every registered account's VPCs, and there are too many for one managed policy.",
    )


def account_documents(account: AwsAccount, principal: str) -> AccountDocuments:
    """Everything `manage.py iam_policy` prints for one account, each document within IAM's limits."""
    return {
        "role_arn": account.role_arn,
        "trust_policy": _checked(
            "The trust policy", trust_policy(account, principal), TRUST_POLICY_MAX_CHARS, "shorten the principal."
        ),
        "requester_side_policy": _side_policy(requester_policy, account),
        "accepter_side_policy": _side_policy(accepter_policy, account),
        "portal_identity_policy": _checked(
            "The portal identity's policy",
            portal_identity_policy(principal),
            MANAGED_POLICY_MAX_CHARS,
            "it names every registered role; split them over two policies.",
        ),
    }
