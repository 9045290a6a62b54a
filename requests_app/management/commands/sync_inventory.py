from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from requests_app import audit
from requests_app.audit import AuditAction
from requests_app.aws.types import AwsError
from requests_app.inventory import sync
from requests_app.models import AwsAccount


class Command(BaseCommand):
    help = "Read VPCs, CIDR blocks, route tables and peerings from AWS by assuming each account's role."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", help="Only this 12-digit account id")

    def handle(self, *args: Any, **options: Any) -> None:
        accounts = AwsAccount.objects.all()
        if options.get("account"):
            accounts = accounts.filter(account_id=options["account"])
            if not accounts.exists():
                raise CommandError(f"No AWS account {options['account']} is registered.")
        failed = 0
        for account in accounts:
            try:
                report = sync.sync_account(account)
            except AwsError as exc:
                failed += 1
                audit.record(
                    action=AuditAction.ACCOUNT_SYNC_FAILED,
                    actor_label="manage.py sync_inventory",
                    account_id=account.account_id,
                    result="error",
                    error_code=exc.code,
                    message=exc.message,
                )
                self.stderr.write(f"{account.account_id}: {exc}")
                continue
            audit.record(
                action=AuditAction.ACCOUNT_SYNCED,
                actor_label="manage.py sync_inventory",
                account_id=account.account_id,
                result="ok",
                data=report.as_dict(),
            )
            self.stdout.write(
                f"{account.account_id} ({account.name}): {report.vpcs} VPCs, {report.route_tables} route tables, "
                f"{report.peerings} peerings"
                + (f"; no longer in AWS: {', '.join(report.vanished_vpcs)}" if report.vanished_vpcs else "")
            )
        if failed:
            raise CommandError(f"{failed} account(s) could not be read")
