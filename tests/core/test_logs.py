"""Log lines name the peering request they are about; LOG_FORMAT=json writes one object per line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import logging, django
django.setup()
from requests_app.core import logs
with logs.bound("6f1c0000-0000-4000-8000-000000000001"):
    logging.getLogger("requests_app.probe").warning("créé %s", "ok")
try:
    raise ValueError("boom")
except ValueError:
    logging.getLogger("requests_app.probe").exception("failed")
"""


def _run(log_format: str, tmp_path: Path) -> list[str]:
    env = {
        **os.environ,
        "LOG_FORMAT": log_format,
        "PORTAL_VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "peering_portal.settings",
    }
    env.pop("DATABASE_URL", None)
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_json_lines_carry_time_level_logger_request_and_message(tmp_path: Path) -> None:
    first, second, *rest = (json.loads(line) for line in _run("json", tmp_path) if line.startswith("{"))
    assert first["level"] == "WARNING" and first["logger"] == "requests_app.probe"
    assert first["request_id"] == "6f1c0000-0000-4000-8000-000000000001"
    assert first["message"] == "créé ok"
    assert first["time"].endswith("+00:00")  # ISO 8601, UTC
    assert second["request_id"] == "-" and second["message"] == "failed"
    assert "ValueError: boom" in second["exception"]
    assert rest == []


def test_plain_lines_name_the_request_in_brackets(tmp_path: Path) -> None:
    lines = _run("plain", tmp_path)
    assert any("WARNING requests_app.probe [6f1c0000-0000-4000-8000-000000000001] créé ok" in line for line in lines)
