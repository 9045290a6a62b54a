"""Print the IAM documents to set up one account: its role's policies, trust policy, and the portal's own."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from requests_app import iam
from requests_app.models import AwsAccount


class Command(BaseCommand):
    help = "Print least-privilege IAM policies for a registered account (see docs/aws-setup.md)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--account", required=True, help="The 12-digit AWS account id.")
        parser.add_argument(
            "--portal-principal",
            default=settings.PORTAL_AWS_PRINCIPAL,
            help="ARN of the identity the portal runs as (default: PORTAL_AWS_PRINCIPAL).",
        )
        parser.add_argument("--json", action="store_true", help="One JSON object instead of annotated sections.")

    def handle(self, *args: Any, **options: Any) -> None:
        account = AwsAccount.objects.filter(account_id=options["account"]).first()
        if account is None:
            raise CommandError(f"No AWS account {options['account']} is registered; register it first.")
        documents = {
            "role_arn": account.role_arn,
            "trust_policy": iam.trust_policy(account, options["portal_principal"]),
            "requester_side_policy": iam.requester_policy(account),
            "accepter_side_policy": iam.accepter_policy(account),
            "portal_identity_policy": iam.portal_identity_policy(),
        }
        if options["json"]:
            self.stdout.write(json.dumps(documents, indent=2))
            return
        notes = {
            "trust_policy": f"Trust policy of {account.role_arn}: only the portal, only with this account's ExternalId.",
            "requester_side_policy": "Attach if this account's VPCs request peerings (department accounts).",
            "accepter_side_policy": "Attach if this account's VPCs accept peerings (Services VPC accounts).",
            "portal_identity_policy": "The portal's own identity (instance or task role): assume the registered roles.",
        }
        for key, note in notes.items():
            self.stdout.write(f"# {key}: {note}\n{json.dumps(documents[key], indent=2)}\n")
