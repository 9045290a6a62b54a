"""Verify the audit trail's keyed hash chain against every anchor within reach; exit 1 naming what is wrong."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from requests_app import audit


def _anchors_from(value: str) -> list[Mapping[str, object]]:
    """Anchors given on the command line: one as JSON, or a file of JSON Lines.

    A file may be an anchor file, a saved webhook body's `data`, or a whole JSON Lines export:
    lines that are events (neither an anchor nor an `{"anchor": ...}` line) are skipped.
    """
    if value.lstrip().startswith("{"):
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            raise CommandError(f"--anchor {value[:40]!r}…: not JSON ({exc})") from None
        return [parsed] if isinstance(parsed, Mapping) else []
    try:
        lines = Path(value).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise CommandError(f"--anchor {value}: {exc.strerror or exc}") from None
    found: list[Mapping[str, object]] = []
    for line in lines:
        try:
            parsed = json.loads(line) if line.strip() else None
        except ValueError:
            parsed = line  # kept, so that verification reports it as no anchor
        if isinstance(parsed, Mapping) and ("signature" in parsed or "anchor" in parsed):
            found.append(parsed)
        elif isinstance(parsed, str):
            found.append({"unreadable": parsed[:80]})
    return found


class Command(BaseCommand):
    help = (
        "Verify the audit trail's keyed hash chain against every valid anchor (the anchor file, the database, "
        "and any given with --anchor); exits 1 and names the first thing wrong. Says up to which event, and as of "
        "when, the history is proven."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--anchor",
            action="append",
            default=[],
            metavar="FILE_OR_JSON",
            help="an anchor as JSON, or a file of them (JSON Lines; an export's last line counts); repeatable",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        given = [anchor for value in options["anchor"] for anchor in _anchors_from(value)]
        report = audit.verify_chain(anchors=given)
        for forged in report.forged:
            self.stderr.write(f"ignored an anchor that does not verify: {forged}")
        if not report.ok:
            raise CommandError(f"audit chain broken after {report.checked} event(s): {report.reason}; {report.proof()}")
        self.stdout.write(f"audit chain intact: {report.checked} event(s) verified")
        self.stdout.write(report.proof())
        if report.legacy:
            covered = report.anchored_count is not None and report.anchored_count >= report.legacy
            self.stdout.write(
                f"{report.legacy} legacy event(s), from before keyed hashing, carry a plain SHA-256: only anchors"
                " protect them" + ("" if covered else "; no anchor covers them all yet (run manage.py anchor_audit)")
            )
