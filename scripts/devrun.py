#!/usr/bin/env python
"""`make run`: sandbox, migrations, demo world, worker, beat and web; Ctrl-C stops them all.

Uses the embedded defaults unless DATABASE_URL / CELERY_BROKER_URL are set. The AWS sandbox
(moto) is started on 127.0.0.1:4566 unless AWS_ENDPOINT_URL already names another endpoint.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SANDBOX = "http://127.0.0.1:4566"
WEB = os.environ.get("PORTAL_WEB_ADDR", "127.0.0.1:8000")


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_port(host: str, port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        time.sleep(0.2)
    raise SystemExit(f"nothing answered on {host}:{port} after {timeout:.0f}s")


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
    children: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, *args: str) -> subprocess.Popen[bytes]:
        print(f"==> starting {name}: {' '.join(args)}", flush=True)
        proc = subprocess.Popen(list(args), cwd=ROOT, env=env, start_new_session=True)
        children.append(proc)
        return proc

    def stop_all(*_: object) -> None:
        for proc in reversed(children):
            if proc.poll() is None:
                # The leader only: celery's main process stops its own pool (a signal to the
                # whole group would kill the pool under it and stall the warm shutdown).
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in children:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        print("==> stopped everything make run started", flush=True)

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    # Installed explicitly: a shell that starts us in the background sets SIGINT to "ignore".
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    host, _, port = WEB.rpartition(":")
    busy = [p for h, p in ([("127.0.0.1", 4566)] if start_sandbox else []) + [(host, int(port))] if port_open(h, p)]
    if busy:
        print(f"==> port {', '.join(map(str, busy))} is already in use (an earlier make run?); stop it first", flush=True)
        return 1
    (ROOT / "var").mkdir(exist_ok=True)
    try:
        if start_sandbox:
            sandbox_log = open(ROOT / "var" / "sandbox.log", "ab")  # noqa: SIM115 - lives as long as we do
            print("==> starting AWS sandbox (moto) on 127.0.0.1:4566, log in var/sandbox.log", flush=True)
            children.append(
                subprocess.Popen(
                    [PY, "-m", "moto.server", "-H", "127.0.0.1", "-p", "4566"],
                    cwd=ROOT, env=env, start_new_session=True, stdout=sandbox_log, stderr=subprocess.STDOUT,
                )
            )
            wait_port("127.0.0.1", 4566)
        subprocess.run([PY, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        subprocess.run([PY, "manage.py", "seed_demo"], cwd=ROOT, env=env, check=True)
        spawn("worker", PY, "-m", "celery", "-A", "peering_portal", "worker", "-l", "INFO", "--concurrency", "2")
        spawn("beat", PY, "-m", "celery", "-A", "peering_portal", "beat", "-l", "INFO")
        # gunicorn, as in production: it drains bodies a view did not read, so keep-alive
        # clients (the fuzzer, integrations) never see the next request mangled.
        spawn("web", PY, "-m", "gunicorn", "peering_portal.wsgi:application", "--bind", WEB,
              "--workers", "2", "--threads", "4", "--access-logfile", "-",
              # Long query strings and headers reach Django, which answers them in the API's JSON;
              # in production the proxy in front sets these limits.
              "--limit-request-line", "0", "--limit-request-field_size", "0")
        wait_port(host, int(port))
        password = env.get("DEMO_PASSWORD", "peering-demo")
        with urllib.request.urlopen(f"http://{WEB}/healthz", timeout=10) as answer:
            health = answer.read().decode()
        print(
            f"""
Peering Portal is up on http://{WEB}/   (health: {health})
API docs: http://{WEB}/api/docs/     AWS sandbox: {env['AWS_ENDPOINT_URL']}

Demo logins (password for all: {password})
  nina   platform approver, owns both Services VPCs
  fiona  finance member          harry  hr member          erin  engineering member
  sam    finance member and platform approver (separation-of-duties cases)
  admin  superuser (/admin/)

Press Ctrl-C to stop everything.
""",
            flush=True,
        )
        while True:
            for proc in children:
                if proc.poll() is not None:
                    print(f"==> a process exited with {proc.returncode}: {proc.args}", flush=True)
                    return 1
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
