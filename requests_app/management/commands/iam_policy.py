"""Print the IAM documents to set up one account: its role's policies, trust policy, and the portal's own."""

from __future__ import annotations

import argparse
import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from requests_app.aws import iam
from requests_app.models import AwsAccount


class Command(BaseCommand):
    help = "Print least-privilege IAM policies for a registered account (see docs/aws-setup.md)."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--account", required=True, help="The 12-digit AWS account id.")
        parser.add_argument(
            "--portal-principal",
            default=settings.PORTAL_AWS_PRINCIPAL,
            help="ARN of the IAM role or user the portal runs as (default: PORTAL_AWS_PRINCIPAL).",
        )
        parser.add_argument("--json", action="store_true", help="One JSON object instead of annotated sections.")

    def handle(self, *args: object, **options: str | bool) -> None:
        account_id = str(options["account"])
        try:
            # Refuse rather than print a document IAM would reject or that grants nothing.
            principal = iam.portal_principal(str(options["portal_principal"]))
            if not AwsAccount.objects.exists():
                raise iam.PolicyError(
                    "No AWS account is registered yet: register an account first "
                    "(POST /api/v1/aws-accounts/ or /admin/), then print its policies."
                )
            account = AwsAccount.objects.filter(account_id=account_id).first()
            if account is None:
                raise iam.PolicyError(f"No AWS account {account_id} is registered; register it first.")
            documents = iam.account_documents(account, principal)
        except iam.PolicyError as exc:
            raise CommandError(str(exc)) from exc

        if options["json"]:
            self.stdout.write(json.dumps(documents, indent=2))
            return
        sections = (
            (
                "trust_policy",
                f"Trust policy of {account.role_arn}: only the portal, only with this account's ExternalId.",
                documents["trust_policy"],
            ),
            (
                "requester_side_policy",
                "Attach if this account's VPCs request peerings (department accounts).",
                documents["requester_side_policy"],
            ),
            (
                "accepter_side_policy",
                "Attach if this account's VPCs accept peerings (Services VPC accounts).",
                documents["accepter_side_policy"],
            ),
            (
                "portal_identity_policy",
                "The portal's own identity (instance or task role): assume the registered roles.",
                documents["portal_identity_policy"],
            ),
        )
        for key, note, document in sections:
            limit = iam.TRUST_POLICY_MAX_CHARS if key == "trust_policy" else iam.MANAGED_POLICY_MAX_CHARS
            self.stdout.write(f"# {key}: {note} ({iam.policy_size(document):,} of IAM's {limit:,} characters)\n")
            self.stdout.write(json.dumps(document, indent=2) + "\n")
