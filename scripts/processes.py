"""Start child processes, and stop every one of them whatever happens to the launcher.

`ProcessGroup` is the one process helper: `make run` (scripts/devrun.py), the benchmarks
(bench/world.py) and the test fixtures (tests/fixtures/processes.py) all start and stop their
children with it.

Each child starts in a session (and so a process group) of its own, so a Ctrl-C in the terminal
reaches the launcher only, and the launcher decides how each child is stopped:

* Stopping is orderly first: SIGTERM to each child's leader only. Celery's main process stops
  its own prefork pool and gunicorn's master its workers; a signal to the whole group would kill
  the pool under celery and stall its warm shutdown.
* Signals never interrupt the shutdown. `handle_signals` installs handlers that only record what
  arrived; the first SIGINT/SIGTERM/SIGHUP asks for the stop and nothing is raised. A repeated
  SIGINT (a person pressing Ctrl-C again) shortens the remaining grace period to
  `HURRY_SECONDS`. A repeated SIGTERM or SIGHUP changes nothing: make forwards the SIGTERM it got
  to its child, which has already had it from the group signal, and whoever sends SIGTERM
  (timeout, systemd, a CI runner, a container stop) escalates to SIGKILL on its own schedule.
* A final sweep: after the grace period every child's whole process group gets SIGKILL, which
  takes any worker a leader left behind. Leaders are reaped only after the sweep (their exit is
  observed with `waitid(WNOWAIT)`), because an unreaped leader keeps its pid, and so its process
  group id, from being reused: the sweep can never hit someone else's group (pid_max is often
  only 32768).
* If the launcher is killed outright (SIGKILL, the OOM killer), no code of its own runs. On
  Linux each child is therefore started with `PR_SET_PDEATHSIG` = SIGTERM (prctl through ctypes
  in a `preexec_fn`): the kernel sends each leader SIGTERM when the launcher dies, and the leader
  shuts its own workers down as it would on an orderly stop. SIGTERM rather than SIGKILL for that
  reason: SIGKILL would leave celery's pool and gunicorn's workers running under init. The
  preexec function checks `os.getppid()` after the prctl, since a launcher that died between
  fork and prctl would never send the signal. The death signal follows the *thread* that
  started the child, so start children from a thread that lives as long as they should (the
  main thread). On other systems there is no such signal; the orderly path still works.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType

# A repeated Ctrl-C leaves the children this long before their groups get SIGKILL.
HURRY_SECONDS = 2.0
# How long the sweep waits for SIGKILLed group members to vanish (so their ports are free).
SWEEP_SECONDS = 5.0
_PR_SET_PDEATHSIG = 1
_POLL = 0.1


def port_open(host: str, port: int) -> bool:
    """Whether something accepts connections on host:port."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_port(
    host: str,
    port: int,
    timeout: float = 60,
    *,
    give_up: Callable[[], bool] | None = None,
) -> bool:
    """Wait until host:port accepts connections; False on timeout or as soon as `give_up()` says so."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return True
        if give_up is not None and give_up():
            return False
        time.sleep(0.2)
    return port_open(host, port)


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec function asking the kernel to SIGTERM the child when this process dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    # Resolved here, in the parent: after fork the child should only make the call.
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()
    term = int(signal.SIGTERM)

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, term, 0, 0, 0)
        if os.getppid() != parent:
            # The parent died before the prctl: the signal will never come, so do not start.
            os._exit(1)

    return preexec


def _exit_status(proc: subprocess.Popen[bytes]) -> int | None:
    """The child's exit status (as Popen.returncode) if it has exited, without reaping it."""
    if proc.returncode is not None:
        return proc.returncode
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        # Reaped behind our back (nothing here does that); Popen knows the status or never will.
        return proc.poll()
    if info is None or info.si_pid == 0:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status


def _group_members(pgids: set[int]) -> list[int]:
    """Pids of living (not zombie) processes in these process groups (Linux; elsewhere a guess)."""
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():
        alive = []
        for pgid in pgids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, 0)
                alive.append(pgid)
        return alive
    found = []
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields start after the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[2]) in pgids:
            found.append(int(entry.name))
    return found


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    args: tuple[str, ...] = ()  # the command, as started


class ProcessGroup:
    """Children of this process, each in a process group of its own; `stop_all` ends all of them.

    Use it as a context manager (leaving the block stops everything), call `handle_signals()` to
    have SIGINT/SIGTERM/SIGHUP request a stop, and poll `stop_requested` between steps.
    """

    def __init__(self, cwd: Path, *, say: Callable[[str], None] | None = None) -> None:
        self.cwd = cwd
        self.children: list[Child] = []
        self._say = say or _say
        self._stop_signal: int | None = None
        self._stopping = False
        self._hurry_at: float | None = None
        self._interrupt = False

    # Signals ----------------------------------------------------------------------------------

    def handle_signals(self, *, interrupt: bool = False) -> None:
        """Record SIGINT/SIGTERM/SIGHUP as a request to stop.

        With `interrupt`, the first of them also raises KeyboardInterrupt (for callers blocked in
        code that cannot poll `stop_requested`), unless a stop is already under way; later ones
        never raise, so nothing can abort `stop_all` halfway.
        """
        self._interrupt = interrupt
        # Installed explicitly: a shell that starts us in the background sets SIGINT to "ignore".
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Only attributes are set here: printing from a handler can fail with a reentrant-call
        # error on stdout, and raising would abort whatever the main code was doing.
        first = self._stop_signal is None
        if first:
            self._stop_signal = signum
        elif signum == signal.SIGINT and self._hurry_at is None:
            self._hurry_at = time.monotonic()
        if first and self._interrupt and not self._stopping:
            raise KeyboardInterrupt

    @property
    def stop_requested(self) -> bool:
        return self._stop_signal is not None

    @property
    def stop_signal(self) -> int | None:
        return self._stop_signal

    def pause(self, seconds: float) -> None:
        """Sleep, waking up early when a stop is requested."""
        deadline = time.monotonic() + seconds
        while not self.stop_requested and time.monotonic() < deadline:
            time.sleep(min(_POLL, max(0.0, deadline - time.monotonic())))

    # Starting ---------------------------------------------------------------------------------

    def start(
        self, name: str, args: Sequence[str], env: Mapping[str, str], log: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """Start `args` in a session of its own; its output goes to `log` (appended) or ours."""
        out = open(log, "ab") if log is not None else None  # noqa: SIM115 - the child holds its own copy
        try:
            proc = subprocess.Popen(
                list(args),
                cwd=self.cwd,
                env=dict(env),
                stdout=out,
                stderr=subprocess.STDOUT if out is not None else None,
                start_new_session=True,
                # Not thread-safe in general; the launchers using this start children from
                # their main thread only (which PR_SET_PDEATHSIG needs anyway).
                preexec_fn=_die_with_parent(),
            )
        finally:
            if out is not None:
                out.close()
        self.children.append(Child(name, proc, tuple(args)))
        return proc

    def run(self, name: str, args: Sequence[str], env: Mapping[str, str]) -> int | None:
        """Run a step to completion; its exit status, or None if a stop was requested meanwhile."""
        proc = self.start(name, args, env)
        while (status := _exit_status(proc)) is None:
            if self.stop_requested:
                return None  # stop_all ends it with the others
            time.sleep(_POLL)
        child = next(c for c in self.children if c.proc is proc)
        self._sweep(child)
        self.children.remove(child)
        return status

    def wait_port(self, host: str, port: int, timeout: float = 60, proc: subprocess.Popen[bytes] | None = None) -> bool:
        """Wait for host:port; False on timeout, on a stop request, or if `proc` exits first."""
        return wait_port(
            host,
            port,
            timeout,
            give_up=lambda: self.stop_requested or (proc is not None and _exit_status(proc) is not None),
        )

    def exited(self) -> tuple[Child, int] | None:
        """The first child that has exited, with its status (it stays unreaped until `stop_all`)."""
        for child in self.children:
            status = _exit_status(child.proc)
            if status is not None:
                return child, status
        return None

    # Stopping ---------------------------------------------------------------------------------

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 15.0) -> int | None:
        """Stop one child: SIGTERM to its leader, then, after `grace`, SIGKILL to its whole group."""
        child = self._child(proc)
        if _exit_status(proc) is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while _exit_status(proc) is None and time.monotonic() < deadline:
                time.sleep(_POLL)
        self._sweep(child)
        self.children.remove(child)
        return proc.returncode

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL a child's whole group at once, as when its host dies: nothing is cleaned up."""
        child = self._child(proc)
        self._sweep(child)
        self.children.remove(child)

    def _child(self, proc: subprocess.Popen[bytes]) -> Child:
        return next(c for c in self.children if c.proc is proc)

    def stop_all(self, grace: float = 20.0) -> None:
        """SIGTERM every leader, wait up to `grace`, then SIGKILL every child's whole group.

        Nothing a signal handler does interrupts this; a repeated Ctrl-C only shortens the grace.
        """
        self._stopping = True
        if not self.children:
            return
        live = [c for c in self.children if _exit_status(c.proc) is None]
        if live:
            reason = f"{signal.Signals(self._stop_signal).name} received: " if self._stop_signal else ""
            self._say(f"==> {reason}stopping {', '.join(c.name for c in reversed(live))}")
        for child in reversed(live):
            # The leader only: celery's main process stops its own pool (a signal to the whole
            # group would kill the pool under it and stall the warm shutdown).
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        hurried = False
        while True:
            waiting = [c for c in reversed(live) if _exit_status(c.proc) is None]
            if not waiting:
                break
            if self._hurry_at is not None and not hurried:
                hurried = True
                deadline = min(deadline, self._hurry_at + HURRY_SECONDS)
                self._say(f"==> asked again: {', '.join(c.name for c in waiting)} get {HURRY_SECONDS:.0f}s more")
            if time.monotonic() >= deadline:
                self._say(
                    f"==> {', '.join(c.name for c in waiting)} did not stop in time: killing their process groups"
                )
                break
            time.sleep(_POLL)
        for child in self.children:
            self._sweep(child)
        # SIGKILL is delivered at once but the processes take a moment to go (and free their
        # ports); wait for them so that whoever runs next finds the ports free.
        pgids = {c.proc.pid for c in self.children}
        deadline = time.monotonic() + SWEEP_SECONDS
        while _group_members(pgids) and time.monotonic() < deadline:
            time.sleep(_POLL)
        self.children.clear()

    def _sweep(self, child: Child) -> None:
        """SIGKILL the child's process group, then reap the leader."""
        if child.proc.returncode is None:
            # Not reaped yet, so its pid (the group's id) cannot belong to anyone else.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(10)

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop_all()


def _say(message: str) -> None:
    # A terminal that has gone away (SIGHUP) must not turn the shutdown into a traceback.
    with contextlib.suppress(OSError, ValueError):
        print(message, flush=True)
