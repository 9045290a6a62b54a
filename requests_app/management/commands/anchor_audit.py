"""Sign the audit chain's head now, publish the anchor and print it."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from requests_app import audit


class Command(BaseCommand):
    help = (
        "Sign the audit chain's head (an anchor), keep it in the database, log it on requests_app.audit.anchor, "
        "append it to the anchor file and print it. Refuses, exit 1, if the chain no longer matches the last anchor."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            signed = audit.anchor()
        except audit.AnchorRefused as refused:
            raise CommandError(f"not anchored: {refused}") from None
        self.stdout.write(json.dumps(signed, sort_keys=True))
        self.stderr.write(
            f"anchored {signed['count']} event(s) up to event {signed['last_event_id']}; kept in {audit.anchor_file()}"
        )
