#!/usr/bin/env python
"""`make run`: sandbox, migrations, demo world, worker, beat and web; Ctrl-C stops them all.

Uses the embedded defaults unless DATABASE_URL / CELERY_BROKER_URL are set. The AWS sandbox
(moto) is started on 127.0.0.1:4566 unless AWS_ENDPOINT_URL already names another endpoint.
Run as a module (`python -m scripts.devrun`, which the Makefile does) so `scripts.processes`
imports.

Whatever arrives while it stops (SIGINT, SIGTERM, both, repeated) the shutdown runs to the end
and every child's process group is gone before this exits; if this process is killed outright,
the kernel sends each child SIGTERM (see scripts/processes.py for how and why).
"""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

from scripts.processes import ProcessGroup, port_open

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SANDBOX = "http://127.0.0.1:4566"
WEB = os.environ.get("PORTAL_WEB_ADDR", "127.0.0.1:8000")
# Where the settings keep the database, broker and logs: a relative PORTAL_VAR_DIR is relative to
# the children's working directory, ROOT.
VAR = ROOT / os.environ.get("PORTAL_VAR_DIR", "var")


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def serve(group: ProcessGroup, env: dict[str, str], start_sandbox: bool) -> int:
    """Start everything and watch it; the exit status of `make run` (the caller stops the children)."""
    host, _, port = WEB.rpartition(":")
    if start_sandbox:
        log = VAR / "sandbox.log"
        shown = log.relative_to(ROOT) if log.is_relative_to(ROOT) else log
        say(f"starting AWS sandbox (moto) on 127.0.0.1:4566, log in {shown}")
        sandbox = group.start("sandbox", [PY, "-m", "moto.server", "-H", "127.0.0.1", "-p", "4566"], env, log=log)
        if not group.wait_port("127.0.0.1", 4566, proc=sandbox):
            return 0 if group.stop_requested else fail(f"the sandbox did not answer on 127.0.0.1:4566 (see {log})")
    for name, args in (
        ("migrate", [PY, "manage.py", "migrate", "--noinput", "-v", "0"]),
        ("seed_demo", [PY, "manage.py", "seed_demo"]),
    ):
        status = group.run(name, args, env)
        if status is None:
            return 0
        if status != 0:
            return fail(f"{name} failed with exit status {status}")

    def spawn(name: str, *args: str) -> None:
        say(f"starting {name}: {' '.join(args)}")
        group.start(name, args, env)

    spawn("worker", PY, "-m", "celery", "-A", "peering_portal", "worker", "-l", "INFO", "--concurrency", "2")
    spawn("beat", PY, "-m", "celery", "-A", "peering_portal", "beat", "-l", "INFO")
    # gunicorn, as in production: it drains bodies a view did not read, so keep-alive
    # clients (the fuzzer, integrations) never see the next request mangled.
    spawn("web", PY, "-m", "gunicorn", "peering_portal.wsgi:application", "--bind", WEB,
          "--workers", "2", "--threads", "4", "--access-logfile", "-",
          # Long query strings and headers reach Django, which answers them in the API's JSON;
          # in production the proxy in front sets these limits.
          "--limit-request-line", "0", "--limit-request-field_size", "0")  # fmt: skip
    if not group.wait_port(host, int(port)):
        return 0 if group.stop_requested else fail(f"nothing answered on {WEB}")
    password = env.get("DEMO_PASSWORD", "peering-demo")
    try:
        with urllib.request.urlopen(f"http://{WEB}/healthz", timeout=10) as answer:
            health = answer.read().decode()
    except OSError as exc:
        return fail(f"http://{WEB}/healthz did not answer: {exc}")
    print(
        f"""
Peering Portal is up on http://{WEB}/   (health: {health})
API docs: http://{WEB}/api/docs/     AWS sandbox: {env["AWS_ENDPOINT_URL"]}

Demo logins (password for all: {password})
  nina   platform approver, owns both Services VPCs
  fiona  finance member          harry  hr member          erin  engineering member
  sam    finance member and platform approver (separation-of-duties cases)
  admin  superuser (/admin/)

Press Ctrl-C to stop everything.
""",
        flush=True,
    )
    while not group.stop_requested:
        if dead := group.exited():
            child, status = dead
            return fail(f"{child.name} exited with {status}: {' '.join(child.args)}")
        group.pause(1)
    return 0


def fresh_demo_database() -> None:
    """The sandbox starts empty each time, so an embedded database kept from an earlier run would
    describe VPCs and peerings that no longer exist: start it afresh with the demo world. (With
    DATABASE_URL set, nothing is removed: that database is the operator's.)"""
    # The database, beat's schedule and the audit anchors of the old chain (they would not verify).
    stale = [*VAR.glob("portal.sqlite3*"), *VAR.glob("celerybeat-schedule*"), *VAR.glob("audit-anchors*")]
    broker = VAR / "broker"
    if stale or broker.exists():
        say("a fresh sandbox: the embedded demo database starts afresh (set DATABASE_URL to keep one)")
    for path in stale:
        path.unlink()
    for folder in ("queue", "processed"):  # messages about requests of the old database
        for message in (broker / folder).glob("*") if (broker / folder).is_dir() else []:
            message.unlink()


def fail(message: str) -> int:
    say(message)
    return 1


def main() -> int:
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "peering_portal.settings")
    env.setdefault("AWS_ENDPOINT_URL", SANDBOX)
    env.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    start_sandbox = env["AWS_ENDPOINT_URL"] == SANDBOX
    if start_sandbox:
        # The sandbox accepts any key; real credentials must never be sent to it.
        env["AWS_ACCESS_KEY_ID"] = "testing"
        env["AWS_SECRET_ACCESS_KEY"] = "testing"
        env.pop("AWS_SESSION_TOKEN", None)
        env.pop("AWS_PROFILE", None)
    group = ProcessGroup(ROOT)
    # Before anything starts: from here on a signal only requests the stop, and the stop always
    # runs to the end (it is never interrupted by a second signal).
    group.handle_signals()
    host, _, port = WEB.rpartition(":")
    wanted = ([("127.0.0.1", 4566)] if start_sandbox else []) + [(host, int(port))]
    busy = [p for h, p in wanted if port_open(h, p)]
    if busy:
        say(f"port {', '.join(map(str, busy))} is already in use (an earlier make run?); stop it first")
        return 1
    VAR.mkdir(parents=True, exist_ok=True)
    if start_sandbox and "DATABASE_URL" not in os.environ:
        fresh_demo_database()
    with group:
        status = serve(group, env, start_sandbox)
    say("stopped everything make run started")
    return status


if __name__ == "__main__":
    sys.exit(main())
