"""Embedded PostgreSQL 16 from the pgserver wheel, run as a supervised child."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg
from psycopg import sql

from pvc.devstack.errors import StackError
from pvc.devstack.health import wait_until_ready
from pvc.devstack.ports import LOCALHOST, free_port
from pvc.devstack.processes import ProcessSpec, Supervisor

log = logging.getLogger("pvc.devstack")

NAME = "postgres"
SUPERUSER = "postgres"
DEFAULT_DATABASE = "pvc"
# PostgreSQL refuses to run as root; when we are root it runs as this system user instead.
ROOT_RUN_AS_ENV = "PVC_PG_SYSTEM_USER"
ROOT_RUN_AS_DEFAULT = "nobody"


def bin_dir() -> Path:
    # Located without importing pgserver, whose import has side effects (runtime dirs, warnings).
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise StackError("pgserver is not installed (it provides the PostgreSQL binaries)")
    return Path(spec.origin).parent / "pginstall" / "bin"


def libpq_url(url: str) -> str:
    """The URL without a SQLAlchemy driver suffix (postgresql+psycopg:// -> postgresql://)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=parts.scheme.split("+", 1)[0]))


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    return urlunsplit(urlsplit(url)._replace(path="/" + database))


def can_connect(url: str, *, timeout: float = 2.0) -> bool:
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=max(1, round(timeout))) as conn:
            conn.execute("select 1")
        return True
    except psycopg.Error:
        return False


def create_database(url: str, name: str) -> bool:
    """Create database `name` on the server of `url` unless it exists. True if it was created."""
    with psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=5) as conn:
        if conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
            return False
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        return True


def drop_database(url: str, name: str) -> None:
    """Drop database `name` on the server of `url`, disconnecting whoever still uses it."""
    with psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


class EmbeddedPostgres:
    """A PostgreSQL cluster in `data_dir/pg`, listening on 127.0.0.1:`port` with trust auth.

    `start()` runs initdb the first time, starts the server (clearing a stale postmaster.pid left by a
    killed run), waits until it accepts connections and creates `database`. Without a supervisor of its
    own it makes one that logs to `data_dir/logs`.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        database: str = DEFAULT_DATABASE,
        supervisor: Supervisor | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "pg"
        self.port = port if port is not None else free_port()
        self.database = database
        self._own_supervisor = supervisor is None
        self._supervisor = supervisor or Supervisor(log_dir=self.data_dir / "logs")
        self._socket_dir: Path | None = None
        self._run_as = _system_user()

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@{LOCALHOST}:{self.port}/{self.database}"

    @property
    def admin_url(self) -> str:
        """The URL of the `postgres` maintenance database."""
        return with_database(self.url, "postgres")

    def start(self, *, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        self.initdb()
        self._wait_for_orphan(deadline)
        self._socket_dir = Path(tempfile.mkdtemp(prefix="pvc-pg-", dir="/tmp"))
        if self._run_as is not None:
            os.chown(self._socket_dir, *self._run_as)
        self._supervisor.add(self.spec(self._socket_dir))
        child = self._supervisor.start(NAME)
        wait_until_ready(
            child, lambda: can_connect(self.admin_url, timeout=1), deadline=deadline, what="PostgreSQL"
        )
        create_database(self.admin_url, self.database)

    def stop(self, *, timeout: float = 30.0) -> None:
        with contextlib.suppress(KeyError):
            self._supervisor.stop(NAME, timeout=timeout)
        if self._own_supervisor:
            self._supervisor.close()
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    def spec(self, socket_dir: Path) -> ProcessSpec:
        uid, gid = self._run_as if self._run_as is not None else (None, None)
        argv = [
            str(bin_dir() / "postgres"),
            "-D", str(self.pgdata),
            "-p", str(self.port),
            "-h", LOCALHOST,
            "-k", str(socket_dir),
            "-c", "max_connections=200",
        ]  # fmt: skip
        return ProcessSpec(
            name=NAME,
            argv=argv,
            # Fast shutdown: roll back open transactions and stop now, instead of waiting for clients.
            stop_signal=signal.SIGINT,
            stop_timeout=30.0,
            user=uid,
            group=gid,
            before_start=self._before_start,
        )

    def initdb(self) -> None:
        """Create the cluster unless it exists (an interrupted earlier initdb is started over)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._run_as is not None:
            self._ensure_access()
        if (self.pgdata / "PG_VERSION").exists():
            if self._run_as is not None and self.pgdata.stat().st_uid != self._run_as[0]:
                _chown_tree(self.pgdata, *self._run_as)
            return
        if self.pgdata.exists():
            shutil.rmtree(self.pgdata)
        self.pgdata.mkdir(parents=True, mode=0o700)
        if self._run_as is not None:
            os.chown(self.pgdata, *self._run_as)
        log.info("initializing PostgreSQL cluster in %s", self.pgdata)
        uid, gid = self._run_as if self._run_as is not None else (None, None)
        argv = [
            str(bin_dir() / "initdb"),
            "-D", str(self.pgdata),
            "--auth=trust",
            "-U", SUPERUSER,
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]  # fmt: skip
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=300,
            user=uid,
            group=gid,
            extra_groups=[] if uid is not None else None,
            check=False,
        )
        if result.returncode != 0:
            shutil.rmtree(self.pgdata, ignore_errors=True)
            raise StackError("initdb failed", tail=(result.stdout + result.stderr).strip())

    def _ensure_access(self) -> None:
        # Checked before every start: a tool such as pytest may have tightened a parent meanwhile.
        _ensure_traversable(self.pgdata.parent)
        _ensure_traversable(bin_dir())

    def _running_postmaster(self) -> int | None:
        """Pid of a postmaster still serving our cluster (e.g. from a supervisor that was killed)."""
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
            proc = psutil.Process(pid)
            if proc.name() == "postgres" and str(self.pgdata) in proc.cmdline():
                return pid
        except (OSError, ValueError, psutil.Error):
            pass
        return None

    def _wait_for_orphan(self, deadline: float) -> None:
        """A postmaster whose supervisor died gets SIGTERM and stops once its clients are gone."""
        give_up = min(deadline, time.monotonic() + 15)
        while (pid := self._running_postmaster()) is not None:
            if time.monotonic() > give_up:
                raise StackError(f"PostgreSQL (pid {pid}) is already running on {self.pgdata}; stop it first")
            time.sleep(0.2)

    def _before_start(self) -> None:
        if self._run_as is not None:
            self._ensure_access()
        # PostgreSQL removes a stale postmaster.pid itself, unless its pid now belongs to some other
        # process, which is common in containers where pids are small and reused.
        pidfile = self.pgdata / "postmaster.pid"
        if not pidfile.exists():
            return
        pid = self._running_postmaster()
        if pid is not None:
            raise StackError(f"PostgreSQL (pid {pid}) is already running on {self.pgdata}")
        log.info("removing stale %s", pidfile)
        pidfile.unlink(missing_ok=True)
        if self._socket_dir is not None:
            for lock in self._socket_dir.glob(".s.PGSQL.*"):
                lock.unlink(missing_ok=True)


def _system_user() -> tuple[int, int] | None:
    """(uid, gid) to run PostgreSQL as when we are root, else None."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get(ROOT_RUN_AS_ENV, ROOT_RUN_AS_DEFAULT)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise StackError(
            f"running as root: PostgreSQL must run as another user, and user {name!r} does not exist "
            f"(set {ROOT_RUN_AS_ENV} to an existing user)"
        ) from None
    return entry.pw_uid, entry.pw_gid


def _ensure_traversable(path: Path) -> None:
    """Let other users pass through `path` and its parents (search bit only, no listing)."""
    for directory in [path, *path.parents]:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            log.info("allowing other users to traverse %s (PostgreSQL runs as another user)", directory)
            directory.chmod(mode | stat.S_IXOTH)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)
