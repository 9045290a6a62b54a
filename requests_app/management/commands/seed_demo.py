from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from requests_app.management import demo


class Command(BaseCommand):
    help = "Build the demo accounts, VPCs and route tables in the AWS sandbox and register them, with demo users."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--password", help="Password for every demo user (default: $DEMO_PASSWORD or peering-demo)")

    def handle(self, *args: Any, **options: Any) -> None:
        result = demo.seed(options.get("password"))
        for report in result["synced"]:
            self.stdout.write(
                f"synced {report['account_id']}: {report['vpcs']} VPCs, {report['route_tables']} route tables"
            )
        for line in result["history"]:
            self.stdout.write(f"history: {line}")
        self.stdout.write(self.style.SUCCESS("Demo world ready."))
