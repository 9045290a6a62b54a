"""Least-privilege IAM documents for one registered account, from what the portal knows of it.

Every mutating EC2 action is limited to the account's own VPCs and their route tables (by ARN
and the `ec2:Vpc`, `ec2:RequesterVpc`, `ec2:AccepterVpc` condition keys); creating a peering
connection also requires the portal's request-id tag, and the tag may only be set by that
create. Describe calls cannot be limited by resource in IAM, so they are allowed on `*`. The
trust policy admits only the portal's identity, and only with the ExternalId the portal
generated for this account.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from requests_app.models import AwsAccount

VERSION = "2012-10-17"
DESCRIBE = [
    "ec2:DescribeVpcs",
    "ec2:DescribeVpcAttribute",
    "ec2:DescribeRouteTables",
    "ec2:DescribeVpcPeeringConnections",
]


def _vpc_arns(account: AwsAccount) -> list[str]:
    vpcs = account.vpcs.filter(present_in_aws=True).order_by("region", "vpc_id")
    arns = [f"arn:aws:ec2:{v.region}:{account.account_id}:vpc/{v.vpc_id}" for v in vpcs]
    # No VPC read yet: every VPC of the account in its regions (re-run after the first sync).
    return arns or [f"arn:aws:ec2:{region}:{account.account_id}:vpc/*" for region in account.regions]


def _route_table_arns(account: AwsAccount) -> list[str]:
    return [f"arn:aws:ec2:{region}:{account.account_id}:route-table/*" for region in account.regions]


def _peering_arns(account: AwsAccount) -> list[str]:
    return [f"arn:aws:ec2:{region}:{account.account_id}:vpc-peering-connection/*" for region in account.regions]


def _routes_statement(account: AwsAccount, vpcs: list[str]) -> dict[str, Any]:
    return {
        "Sid": "RoutesToPeersInOwnVpcsOnly",
        "Effect": "Allow",
        "Action": ["ec2:CreateRoute", "ec2:DeleteRoute"],
        "Resource": _route_table_arns(account),
        "Condition": {"ArnEquals": {"ec2:Vpc": vpcs}},
    }


def requester_policy(account: AwsAccount) -> dict[str, Any]:
    """For an account whose VPCs ask for peerings (department accounts)."""
    vpcs = _vpc_arns(account)
    tag = settings.PEERING_TAG_KEY
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "CreateFromOwnVpcsOnly",
                "Effect": "Allow",
                "Action": "ec2:CreateVpcPeeringConnection",
                "Resource": vpcs,
            },
            {
                "Sid": "CreateOnlyTaggedWithThePortalRequest",
                "Effect": "Allow",
                "Action": "ec2:CreateVpcPeeringConnection",
                "Resource": _peering_arns(account),
                "Condition": {
                    "Null": {f"aws:RequestTag/{tag}": "false"},
                    "ArnEquals": {"ec2:RequesterVpc": vpcs},
                },
            },
            {
                "Sid": "TagOnlyWhileCreating",
                "Effect": "Allow",
                "Action": "ec2:CreateTags",
                "Resource": _peering_arns(account),
                "Condition": {"StringEquals": {"ec2:CreateAction": "CreateVpcPeeringConnection"}},
            },
            {
                "Sid": "ManageOnlyPeeringsOfOwnVpcs",
                "Effect": "Allow",
                "Action": ["ec2:DeleteVpcPeeringConnection", "ec2:ModifyVpcPeeringConnectionOptions"],
                "Resource": _peering_arns(account),
                "Condition": {"ArnEquals": {"ec2:RequesterVpc": vpcs}},
            },
            _routes_statement(account, vpcs),
            {"Sid": "Read", "Effect": "Allow", "Action": DESCRIBE, "Resource": "*"},
        ],
    }


def accepter_policy(account: AwsAccount) -> dict[str, Any]:
    """For an account whose VPCs accept peerings (the Services VPCs' account)."""
    vpcs = _vpc_arns(account)
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "AcceptOnlyIntoOwnVpcs",
                "Effect": "Allow",
                "Action": [
                    "ec2:AcceptVpcPeeringConnection",
                    "ec2:RejectVpcPeeringConnection",
                    "ec2:DeleteVpcPeeringConnection",
                    "ec2:ModifyVpcPeeringConnectionOptions",
                ],
                "Resource": _peering_arns(account),
                "Condition": {"ArnEquals": {"ec2:AccepterVpc": vpcs}},
            },
            _routes_statement(account, vpcs),
            {"Sid": "Read", "Effect": "Allow", "Action": DESCRIBE, "Resource": "*"},
        ],
    }


def trust_policy(account: AwsAccount, portal_principal: str) -> dict[str, Any]:
    return {
        "Version": VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": portal_principal},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": account.external_id}},
            }
        ],
    }


def portal_identity_policy() -> dict[str, Any]:
    """The portal's own identity: assume the registered roles, nothing else."""
    roles = list(AwsAccount.objects.order_by("account_id").values_list("role_arn", flat=True))
    return {
        "Version": VERSION,
        "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": roles or ["<no accounts yet>"]}],
    }
