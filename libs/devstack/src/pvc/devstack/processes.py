"""Child processes under supervision: start, watch, restart with backoff, stop.

Every child runs in a session of its own (so a Ctrl-C in the terminal reaches only the supervisor, which
then stops the children in order) and gets SIGTERM from the kernel if the supervisor dies, even by
SIGKILL (PR_SET_PDEATHSIG). The kernel sends that signal when the *thread* that forked the child ends,
so every supervised child is forked by the long-lived monitor thread.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil

log = logging.getLogger("pvc.devstack")

INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 10.0
# A child that ran this long before exiting is restarted quickly again, as if it had never failed.
BACKOFF_RESET_AFTER = 30.0
NAME_WIDTH = 12

_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None = None
if sys.platform == "linux":
    # Resolved here, in the parent: calling dlopen/dlsym between fork and exec is unsafe.
    _prctl = ctypes.CDLL(None, use_errno=True).prctl


def _child_setup(parent_pid: int) -> Callable[[], None]:
    def setup() -> None:  # runs in the child between fork and exec
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
            if os.getppid() != parent_pid:  # the parent died before prctl took effect
                os._exit(1)

    return setup


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


@dataclass(frozen=True)
class ProcessSpec:
    """How to run one child."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 10.0
    # Run as this uid/gid (PostgreSQL refuses to run as root).
    user: int | None = None
    group: int | None = None
    # Called before every start, restarts included (e.g. to clear a stale lock file).
    before_start: Callable[[], None] | None = None


@dataclass(eq=False)
class Child:
    """One supervised child and its restart state. Fields are guarded by the supervisor's lock."""

    spec: ProcessSpec
    log_path: Path | None
    popen: subprocess.Popen[bytes] | None = None
    wanted: bool = False  # the monitor keeps it running
    stopping: bool = False  # being stopped on purpose: its exit is not a crash
    next_start: float | None = None  # monotonic time of the next (re)start
    started_at: float = 0.0
    starts: int = 0
    exits: int = 0
    last_exit: int | None = None
    backoff: float = INITIAL_BACKOFF
    spawn_error: BaseException | None = None
    # Foreground mode: the last lines of output, kept for error reports.
    recent: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=200))
    forwarder: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        """The last lines the child wrote (from its log file, or from memory in foreground mode)."""
        if self.log_path is not None:
            try:
                with self.log_path.open("rb") as f:
                    f.seek(0, os.SEEK_END)
                    f.seek(max(0, f.tell() - 64 * 1024))
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                return ""
            return "\n".join(text.splitlines()[-lines:])
        return "\n".join(list(self.recent)[-lines:])

    def note(self, message: str) -> None:
        """Add a supervisor remark to the child's own log, so a tail shows what happened to it."""
        line = f"[devstack] {time.strftime('%Y-%m-%dT%H:%M:%S')} {message}"
        if self.log_path is not None:
            with contextlib.suppress(OSError), self.log_path.open("a", encoding="utf-8") as f:
                f.write(line + "\n")
        else:
            self.recent.append(line)


class Supervisor:
    """Runs children, restarts the ones that exit on their own, stops them on request.

    foreground=True forwards each child's output line by line to `out`, prefixed with its name;
    otherwise each child writes to `log_dir/<name>.log`.
    """

    def __init__(self, *, log_dir: Path, foreground: bool = False, out: IO[str] | None = None) -> None:
        self.log_dir = log_dir
        self.foreground = foreground
        self._out = out if out is not None else sys.stdout
        self._out_lock = threading.Lock()
        self._children: dict[str, Child] = {}
        self._cond = threading.Condition()
        self._closing = False  # no more starts or restarts
        self._closed = False  # the monitor thread ends
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    # -- registration and queries -------------------------------------------------------------

    def add(self, spec: ProcessSpec) -> Child:
        """Register (or re-register with a new spec) a child without starting it."""
        with self._cond:
            old = self._children.get(spec.name)
            if old is not None and old.running():
                raise RuntimeError(f"{spec.name} is running; stop it before replacing its spec")
            log_path = None if self.foreground else self.log_dir / f"{spec.name}.log"
            child = Child(spec=spec, log_path=log_path)
            self._children[spec.name] = child
            return child

    def child(self, name: str) -> Child:
        try:
            return self._children[name]
        except KeyError:
            raise KeyError(f"no process named {name!r}; known: {', '.join(self._children)}") from None

    def names(self) -> list[str]:
        return list(self._children)

    def pids(self) -> list[int]:
        """Pids of every running child and its descendants."""
        found: list[int] = []
        for child in list(self._children.values()):
            pid = child.pid
            if pid is None or not child.running():
                continue
            found.append(pid)
            with contextlib.suppress(psutil.Error):
                found.extend(p.pid for p in psutil.Process(pid).children(recursive=True))
        return found

    # -- start and stop -----------------------------------------------------------------------

    def start(self, name: str, *, timeout: float = 30.0) -> Child:
        """Start a registered child (the monitor thread forks it) and wait until it has a pid."""
        self._ensure_monitor()
        with self._cond:
            child = self.child(name)
            if child.running():
                child.wanted = True
                return child
            starts = child.starts
            child.wanted = True
            child.stopping = False
            child.backoff = INITIAL_BACKOFF
            child.spawn_error = None
            child.next_start = time.monotonic()
            self._cond.notify_all()
            deadline = time.monotonic() + timeout
            while child.starts == starts:
                if child.spawn_error is not None:
                    child.wanted = False
                    raise RuntimeError(f"cannot start {name}: {child.spawn_error}") from child.spawn_error
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closing:
                    raise RuntimeError(f"{name} was not started within {timeout:.0f} s")
                self._cond.wait(min(remaining, 0.5))
            return child

    def stop(self, name: str, *, timeout: float | None = None) -> None:
        """Stop a child on purpose; it stays down until start() is called again."""
        with self._cond:
            child = self.child(name)
            child.wanted = False
            child.next_start = None
            child.stopping = True
            popen = child.popen
        try:
            if popen is not None:
                spec = child.spec
                returncode = terminate(
                    popen,
                    stop_signal=spec.stop_signal,
                    timeout=spec.stop_timeout if timeout is None else timeout,
                    name=name,
                )
                if returncode is not None:
                    child.note(f"stopped ({describe_exit(returncode)})")
        finally:
            with self._cond:
                if child.popen is popen:
                    child.popen = None
                child.stopping = False

    def stop_all(self, *, timeout: float | None = None) -> None:
        """Stop every child, most recently registered first."""
        for name in reversed(list(self._children)):
            try:
                self.stop(name, timeout=timeout)
            except Exception:
                log.exception("stopping %s failed", name)

    def close(self, *, timeout: float | None = None) -> None:
        """Stop every child, then the monitor thread.

        The monitor thread forked the children, and its end sends them SIGTERM (PR_SET_PDEATHSIG), so
        it stays alive until they are all stopped, in order.
        """
        with self._cond:
            self._closing = True
        self.stop_all(timeout=timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def run_once(self, spec: ProcessSpec, *, timeout: float) -> tuple[int, str]:
        """Run a one-shot child to completion (e.g. migrations): (returncode, tail of its output).

        It is not restarted. It is forked by the calling thread, which waits for it.
        """
        if self._closing:
            raise RuntimeError("supervisor is closed")
        child = Child(spec=spec, log_path=None if self.foreground else self.log_dir / f"{spec.name}.log")
        if spec.before_start is not None:
            spec.before_start()
        popen = self._spawn(child)
        try:
            returncode = popen.wait(timeout)
        except subprocess.TimeoutExpired:
            terminate(popen, stop_signal=spec.stop_signal, timeout=spec.stop_timeout, name=spec.name)
            child.note(f"timed out after {timeout:.0f} s")
            returncode = -signal.SIGKILL
        else:
            _reap_group(popen.pid)
        if child.forwarder is not None:
            child.forwarder.join(timeout=2)
        return returncode, child.tail()

    # -- monitor thread -----------------------------------------------------------------------

    def _ensure_monitor(self) -> None:
        with self._cond:
            if self._closing:
                raise RuntimeError("supervisor is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._monitor, name="devstack-monitor", daemon=True)
                self._thread.start()

    def _monitor(self) -> None:
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                for child in self._children.values():
                    try:
                        self._check(child, now)
                    except Exception:  # this thread must outlive the children: see the module doc
                        log.exception("supervising %s failed", child.name)
                self._cond.wait(0.1)

    def _check(self, child: Child, now: float) -> None:
        popen = child.popen
        if popen is not None and not child.stopping and popen.poll() is not None:
            self._exited(child, popen, now)
        if (
            not self._closing
            and child.wanted
            and child.popen is None
            and child.next_start is not None
            and now >= child.next_start
        ):
            self._restart(child, now)

    def _exited(self, child: Child, popen: subprocess.Popen[bytes], now: float) -> None:
        child.popen = None
        child.exits += 1
        child.last_exit = popen.returncode
        _reap_group(popen.pid)
        uptime = now - child.started_at
        if uptime >= BACKOFF_RESET_AFTER:
            child.backoff = INITIAL_BACKOFF
        how = f"{describe_exit(popen.returncode)} after {uptime:.1f} s"
        if child.wanted:
            delay = child.backoff
            child.backoff = min(child.backoff * 2, MAX_BACKOFF)
            child.next_start = now + delay
            message = f"{child.name} {how}; restarting in {delay:g} s"
        else:
            message = f"{child.name} {how}"
        log.warning("%s", message)
        child.note(message)
        self._cond.notify_all()

    def _restart(self, child: Child, now: float) -> None:
        child.next_start = None
        try:
            if child.spec.before_start is not None:
                child.spec.before_start()
            child.popen = self._spawn(child)
        except Exception as exc:
            child.spawn_error = exc
            delay = child.backoff
            child.backoff = min(child.backoff * 2, MAX_BACKOFF)
            child.next_start = now + delay
            message = f"{child.name} could not start: {exc}; retrying in {delay:g} s"
            log.warning("%s", message)
            child.note(message)
        else:
            child.started_at = now
            child.starts += 1
            child.spawn_error = None
        self._cond.notify_all()

    def _spawn(self, child: Child) -> subprocess.Popen[bytes]:
        spec = child.spec
        child.note(f"starting {spec.name}: {' '.join(spec.argv)}")
        log_file: IO[bytes] | None = None
        if child.log_path is not None:
            child.log_path.parent.mkdir(parents=True, exist_ok=True)
            log_file = child.log_path.open("ab")
        try:
            popen = subprocess.Popen(
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file if log_file is not None else subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=None if spec.env is None else dict(spec.env),
                cwd=spec.cwd,
                start_new_session=True,
                preexec_fn=_child_setup(self._pid),
                user=spec.user,
                group=spec.group,
                extra_groups=[] if spec.user is not None else None,
            )
        finally:
            if log_file is not None:
                log_file.close()
        if popen.stdout is not None:
            child.forwarder = threading.Thread(
                target=self._forward,
                args=(child, popen.stdout),
                name=f"devstack-out-{spec.name}",
                daemon=True,
            )
            child.forwarder.start()
        return popen

    def _forward(self, child: Child, stream: IO[bytes]) -> None:
        prefix = f"{child.name:<{NAME_WIDTH}}| "
        with stream:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                child.recent.append(line)
                with self._out_lock:
                    try:
                        self._out.write(prefix + line + "\n")
                        self._out.flush()
                    except (OSError, ValueError):  # stdout closed: keep draining the pipe
                        pass


def terminate(
    popen: subprocess.Popen[bytes], *, stop_signal: int, timeout: float, name: str = ""
) -> int | None:
    """Send stop_signal, wait up to timeout, then SIGKILL the child's whole process group.

    Returns the exit code, or None if the child had already exited (and was reaped) before.
    """
    if popen.poll() is not None:
        _reap_group(popen.pid)
        return None
    try:
        descendants = psutil.Process(popen.pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    with contextlib.suppress(ProcessLookupError):
        popen.send_signal(stop_signal)
    try:
        returncode = popen.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("%s did not stop within %.0f s; killing it", name or popen.pid, timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.kill()
        returncode = popen.wait()
    # Whatever the child left behind (workers, backends) goes too.
    for proc in descendants:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    _reap_group(popen.pid)
    return returncode


def _reap_group(pgid: int) -> None:
    """SIGKILL what is left of a finished child's process group (it was the session leader)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
