"""Verify the audit trail's hash chain; exit 1 naming the first broken event."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from requests_app import audit


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain; exits 1 and names the first broken event if it is not intact."

    def handle(self, *args: Any, **options: Any) -> None:
        report = audit.verify_chain()
        if not report.ok:
            raise CommandError(f"audit chain broken after {report.checked} event(s): {report.reason}")
        self.stdout.write(f"audit chain intact: {report.checked} event(s) verified")
