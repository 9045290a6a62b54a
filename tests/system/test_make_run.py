"""`make run` stops everything it started, however it is stopped (issue 14, item 3).

Each test starts a real `make run` in a session of its own, on a fresh var dir and the embedded
defaults (as a user would), records every process under make, stops it the way a terminal,
`timeout`/systemd or the OOM killer would, and checks that none of those processes is left and
that ports 8000 and 4566 are free for the next `make run`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.processes import ProcessGroup, port_open
from tests.fixtures import ROOT

pytestmark = pytest.mark.integration

PORTS = (8000, 4566)
UP_TIMEOUT = 240  # migrating and seeding a fresh var dir
# make, devrun, the sandbox, the worker and its two pool processes, beat, gunicorn and its two workers
EXPECTED_PROCESSES = 10
# Variables that would point `make run` away from its embedded defaults (the suite itself may run
# on PostgreSQL and Redis, and the moto_server fixture sets AWS_*), or tie it to an outer make.
NOT_INHERITED = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "CELERY_FILESYSTEM_DIR",
    "CACHE_URL",
    "EMAIL_FILE_PATH",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "MAKEFLAGS",
    "MAKELEVEL",
    "MFLAGS",
)


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    start: int  # clock ticks after boot: tells the process from a later one given the same pid
    args: str


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time) from /proc/<pid>/stat, or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields start after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[19])


def _args(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def descendants(root: int) -> list[Proc]:
    """The process `root` and every process under it, following the ppid links in /proc."""
    table: dict[int, tuple[str, int, int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            table[int(entry.name)] = stat
    found: list[Proc] = []
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            found.append(Proc(pid, table[pid][1], table[pid][2], _args(pid)))
            todo.extend(child for child, (_, ppid, _) in table.items() if ppid == pid)
    return found


def alive(proc: Proc) -> bool:
    """Still running: a zombie has finished (only its parent's wait is missing)."""
    stat = _stat(proc.pid)
    return stat is not None and stat[0] != "Z" and stat[2] == proc.start


def require_free_ports() -> None:
    busy = [port for port in PORTS if port_open("127.0.0.1", port)]
    if busy:
        pytest.fail(
            f"port(s) {', '.join(map(str, busy))} already in use: these tests start `make run`, which needs "
            "8000 and 4566; stop whatever holds them (an earlier make run? `ss -ltnp`) and run again",
            pytrace=False,
        )


class MakeRun:
    """`make run` in a session of its own, its output in a file."""

    def __init__(self, tmp_path: Path) -> None:
        self.log_path = tmp_path / "make-run.log"
        env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
        env["PORTAL_VAR_DIR"] = str(tmp_path / "var")
        env["PYTHONUNBUFFERED"] = "1"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                ["make", "run"],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.recorded: list[Proc] = []
        self.up_after = 0.0

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if self.proc.poll() is not None:
                pytest.fail(f"make run exited with {self.proc.returncode}:\n{self.output()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {text!r} after {timeout:.0f}s:\n{self.output()[-4000:]}")
            time.sleep(0.05)

    def start(self) -> None:
        started = time.monotonic()
        self.wait_for("Peering Portal is up", UP_TIMEOUT)
        self.up_after = time.monotonic() - started
        # The web port answers before every gunicorn worker has forked: wait for the whole tree.
        deadline = time.monotonic() + 60
        while len(tree := descendants(self.proc.pid)) < EXPECTED_PROCESSES and time.monotonic() < deadline:
            time.sleep(0.2)
        listing = "\n".join(f"{p.pid} {p.ppid} {p.args}" for p in tree)
        assert len(tree) >= EXPECTED_PROCESSES, f"expected {EXPECTED_PROCESSES} processes under make:\n{listing}"
        devrun = self.devrun(tree)
        leaders = {p.pid for p in tree if p.ppid == devrun.pid}
        grandchildren = [p for p in tree if p.ppid in leaders]
        # Celery's pool and gunicorn's workers: the processes a signal to the leader alone must end too.
        assert len(grandchildren) >= 4, f"expected the worker's pool and gunicorn's workers:\n{listing}"
        self.recorded = tree

    def devrun(self, tree: list[Proc] | None = None) -> Proc:
        tree = tree if tree is not None else self.recorded
        return next(p for p in tree if p.ppid == self.proc.pid and "scripts.devrun" in p.args)

    def signal_group(self, signum: int) -> None:
        """What a terminal's Ctrl-C, `timeout` or systemd sends: the signal to make's whole group."""
        os.killpg(self.proc.pid, signum)

    def wait_exit(self, timeout: float) -> float:
        started = time.monotonic()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"make run still running {timeout:.0f}s after the signal:\n{self.output()[-4000:]}")
        return time.monotonic() - started

    def left_behind(self, within: float = 0) -> list[Proc]:
        deadline = time.monotonic() + within
        while (left := [p for p in self.recorded if alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.2)
        return left

    def cleanup(self) -> None:
        """After a failed test: nothing of this run may hold the ports for the next one."""
        for proc in [*descendants(self.proc.pid), *self.recorded]:
            if alive(proc):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[MakeRun]:
    """A `make run` that is up, with every process under it recorded."""
    require_free_ports()
    run = MakeRun(tmp_path)
    try:
        run.start()
        yield run
    finally:
        run.cleanup()


def assert_everything_stopped(run: MakeRun, within: float = 0) -> None:
    left = run.left_behind(within)
    assert not left, "left running:\n" + "\n".join(f"{p.pid} {p.args}" for p in left) + "\n" + run.output()[-3000:]
    busy = [port for port in PORTS if port_open("127.0.0.1", port)]
    assert not busy, f"port(s) {busy} still answer after make run stopped"


def report(name: str, run: MakeRun, stopped_after: float) -> None:
    sys.stderr.write(
        f"\n[{name}: up after {run.up_after:.1f}s, {len(run.recorded)} processes, all gone "
        f"{stopped_after:.1f}s after the signal]\n"
    )


def test_sigterm_to_the_group_stops_everything(make_run: MakeRun) -> None:
    """`timeout`, systemd, a CI runner: SIGTERM to the group; make forwards a second one to devrun."""
    make_run.signal_group(signal.SIGTERM)
    stopped_after = make_run.wait_exit(60)
    # devrun waits for every process group it started before it exits, and make for devrun.
    assert_everything_stopped(make_run)
    output = make_run.output()
    assert "SIGTERM received: stopping" in output
    assert "stopped everything make run started" in output
    assert "Traceback" not in output, output[-3000:]
    report("SIGTERM", make_run, stopped_after)


def test_ctrl_c_twice_during_shutdown_stops_everything(make_run: MakeRun) -> None:
    """A second Ctrl-C while the children are stopping shortens the wait; it never aborts it."""
    make_run.signal_group(signal.SIGINT)
    make_run.wait_for("SIGINT received: stopping", 10)
    make_run.signal_group(signal.SIGINT)
    stopped_after = make_run.wait_exit(60)
    assert_everything_stopped(make_run)
    output = make_run.output()
    assert "stopped everything make run started" in output
    assert "Traceback" not in output, output[-3000:]
    report("SIGINT twice", make_run, stopped_after)


def test_killed_launcher_takes_its_children_along(make_run: MakeRun) -> None:
    """devrun SIGKILLed: the kernel sends each leader SIGTERM (PR_SET_PDEATHSIG), each stops its own."""
    devrun = make_run.devrun()
    started = time.monotonic()
    os.kill(devrun.pid, signal.SIGKILL)
    make_run.wait_exit(30)
    # Nobody is left to wait for the leaders: give them the time a warm shutdown takes.
    assert_everything_stopped(make_run, within=60)
    report("SIGKILL to devrun", make_run, time.monotonic() - started)


def test_repeated_ctrl_c_shortens_the_grace_and_never_raises(tmp_path: Path) -> None:
    """The ProcessGroup alone: a child that ignores SIGTERM, and a second SIGINT during stop_all."""
    script = tmp_path / "stubborn.py"
    script.write_text(
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n"
    )
    log = tmp_path / "stubborn.log"
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    group = ProcessGroup(tmp_path)
    try:
        group.handle_signals()
        leader = group.start("stubborn", [sys.executable, str(script)], os.environ, log=log)
        deadline = time.monotonic() + 30
        while "ready" not in log.read_text() or len(descendants(leader.pid)) < 2:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        recorded = descendants(leader.pid)
        os.kill(os.getpid(), signal.SIGINT)  # recorded as the stop request; nothing is raised
        while not group.stop_requested:
            time.sleep(0.01)
        timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        started = time.monotonic()
        group.stop_all(grace=60)
        elapsed = time.monotonic() - started
        timer.join()
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    # 1 s until the second Ctrl-C, then HURRY_SECONDS (2 s) before the group's SIGKILL.
    assert 2.5 < elapsed < 10, elapsed
    left = [p for p in recorded if alive(p)]
    assert not left, left
