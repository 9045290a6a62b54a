"""The JSON Lines export verifies offline with `OFFLINE_VERIFY_SCRIPT` (the standard library and
the chain key), down to its signed anchor line: the auditor's script is the one docs/security.md
publishes, so the test runs what the docs say.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from requests_app import audit
from requests_app.models import (
    AuditEvent,
)
from tests.fixtures import ROOT
from tests.fixtures.world import DEMO_PASSWORD

# The whole offline check of an export (docs/ quote this constant). Reads the JSON Lines export
# on stdin and the chain key from AUDIT_CHAIN_KEY; the optional argument is the hash before the
# first line (default: the genesis).
# The auditor's script, exactly as docs/security.md publishes it: the test runs what the docs say.
OFFLINE_VERIFY_SCRIPT = re.search(r"```python\n(.*?)```", (ROOT / "docs" / "security.md").read_text(), re.S).group(1)


# === offline verification of the export ============================================================
def _offline_verify(export: bytes, *args: str, key: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """The docs' script, with the auditor's copy of the chain key in AUDIT_CHAIN_KEY."""
    chain_key = (key if key is not None else audit.chain_key()).decode()
    return subprocess.run(
        [sys.executable, "-c", OFFLINE_VERIFY_SCRIPT, *args],
        input=export,
        capture_output=True,
        timeout=60,
        env={**os.environ, "PYTHONIOENCODING": "utf-8", "AUDIT_CHAIN_KEY": chain_key},
    )


def _keyed_hash(row: dict[str, Any], key: bytes) -> str:
    body = {k: v for k, v in row.items() if k not in ("id", "hash")}
    payload = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hmac.new(key, payload, hashlib.sha256).hexdigest()


@pytest.mark.django_db
def test_the_jsonl_export_verifies_offline_and_a_tampered_line_is_named(
    django_user_model: Any, seed_events: Callable[..., list[AuditEvent]]
) -> None:
    assert len(OFFLINE_VERIFY_SCRIPT.strip().splitlines()) <= 14
    events = seed_events(6)
    admin = django_user_model.objects.create_superuser("admin", "admin@example.com", DEMO_PASSWORD)
    web = Client()
    web.force_login(admin)
    response = web.get("/audit/export.jsonl")
    assert response.status_code == 200
    export = b"".join(response.streaming_content)
    assert export.count(b"\n") == len(events) + 1  # and the anchor line
    # The same bytes as the module's own export, but for the anchor's time of signing.
    lines = export.decode().splitlines(keepends=True)
    again = "".join(audit.export_jsonl(AuditEvent.objects.order_by("id"))).splitlines(keepends=True)
    assert lines[:-1] == again[:-1]
    anchor = json.loads(lines[-1])["anchor"]
    assert (anchor["last_event_id"], anchor["head_hash"], anchor["count"]) == (events[-1].id, events[-1].hash, 6)

    ok = _offline_verify(export)
    assert ok.returncode == 0, ok.stderr
    assert f"ok: 6 events, last hash {events[-1].hash}, signed at {anchor['at']} as event 6 of the chain".encode() in (
        ok.stdout
    )
    # Without the right key nothing verifies: the database's copy of the rows is not enough.
    wrong_key = _offline_verify(export, key=b"a guess")
    assert wrong_key.returncode != 0 and f"audit event {events[0].id} ".encode() in wrong_key.stderr

    # An export starting later verifies from the hash before its first line.
    later = "".join(audit.export_jsonl(AuditEvent.objects.filter(id__gte=events[3].id).order_by("id"))).encode()
    assert _offline_verify(later, events[2].hash).returncode == 0
    assert _offline_verify(later).returncode != 0  # not from the genesis

    victim = json.loads(lines[2])
    following = json.loads(lines[3])["id"]
    # A changed field, with its own `hash` left alone.
    changed = dict(victim, message="nothing happened")
    tampered = _offline_verify("".join([*lines[:2], json.dumps(changed) + "\n", *lines[3:]]).encode())
    assert tampered.returncode != 0 and f"audit event {victim['id']} ".encode() in tampered.stderr, tampered.stderr
    # A changed field with its hash recomputed as plain SHA-256 (the old attack): still that line.
    body = {k: v for k, v in changed.items() if k not in ("id", "hash")}
    changed["hash"] = hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()
    rehashed = _offline_verify("".join([*lines[:2], json.dumps(changed) + "\n", *lines[3:]]).encode())
    assert rehashed.returncode != 0 and f"audit event {victim['id']} ".encode() in rehashed.stderr
    # ...passed off as a legacy line (`keyed` dropped): the next line no longer follows it.
    legacy = {k: v for k, v in changed.items() if k != "keyed"}
    legacy["hash"] = hashlib.sha256(
        json.dumps(
            {k: v for k, v in legacy.items() if k not in ("id", "hash")},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
    ).hexdigest()
    downgraded = _offline_verify("".join([*lines[:2], json.dumps(legacy) + "\n", *lines[3:]]).encode())
    assert downgraded.returncode != 0 and f"audit event {following} ".encode() in downgraded.stderr
    # ...or rehashed with the key itself (someone holding it): the next line no longer follows it.
    changed["hash"] = _keyed_hash(changed, audit.chain_key())
    keyed = _offline_verify("".join([*lines[:2], json.dumps(changed) + "\n", *lines[3:]]).encode())
    assert keyed.returncode != 0 and f"audit event {following} ".encode() in keyed.stderr
    # A dropped line: the one after the gap is named.
    dropped = _offline_verify("".join([*lines[:2], *lines[3:]]).encode())
    assert dropped.returncode != 0 and f"audit event {following} ".encode() in dropped.stderr


@pytest.mark.django_db
def test_the_export_anchor_line_is_checked_offline(
    django_user_model: Any, seed_events: Callable[..., list[AuditEvent]]
) -> None:
    """Cutting an export short, or altering or dropping its anchor, fails; so does a refused anchor."""
    seed_events(4)
    lines = "".join(audit.export_jsonl(AuditEvent.objects.order_by("id"))).splitlines(keepends=True)
    assert _offline_verify("".join(lines).encode()).returncode == 0
    anchor = json.loads(lines[-1])["anchor"]

    failures = {
        "the last event dropped": [*lines[:-2], lines[-1]],
        "the anchor line dropped": lines[:-1],
        "the anchor's count altered": [*lines[:-1], json.dumps({"anchor": {**anchor, "count": 9}}) + "\n"],
        "the anchor re-signed with another key": [
            *lines[:-1],
            json.dumps({"anchor": {**anchor, "signature": _keyed_hash({**anchor, "id": 0, "hash": ""}, b"x")}}) + "\n",
        ],
        "an anchor over an earlier event": [
            *lines[:-1],
            json.dumps({"anchor": audit.anchor_event(AuditEvent.objects.order_by("id")[1])}) + "\n",
        ],
        "a line after the anchor": [*lines, lines[0]],
        "no anchor, the portal's refusal": [*lines[:-1], json.dumps({"anchor": None, "error": "refused"}) + "\n"],
    }
    for name, changed in failures.items():
        result = _offline_verify("".join(changed).encode())
        assert result.returncode != 0, name
        assert b"does not verify" in result.stderr, (name, result.stderr)
    assert (
        b"the anchor (line 5) does not verify"
        in _offline_verify("".join(failures["the anchor's count altered"]).encode()).stderr
    )
