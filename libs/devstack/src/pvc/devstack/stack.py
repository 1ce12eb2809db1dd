"""The whole pvc system on one machine: PostgreSQL, NATS, migrations, services, gateway, Envoy."""

from __future__ import annotations

import functools
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

import httpx

from pvc.devstack import credentials, envoy
from pvc.devstack.errors import StackError
from pvc.devstack.health import grpc_serving, http_ok, wait_until_ready
from pvc.devstack.nats import EmbeddedNats
from pvc.devstack.ports import LOCALHOST, free_port, port_open
from pvc.devstack.postgres import EmbeddedPostgres, can_connect, create_database, drop_database, with_database
from pvc.devstack.processes import ProcessSpec, Supervisor, describe_exit

log = logging.getLogger("pvc.devstack")

# gRPC services, started in this order after the migrations. Each is run as `python -m pvc.<name>`.
SERVICES = ["registry", "evals", "webhooks", "deployments"]
GATEWAY = "gateway"


class Stack:
    """Starts and supervises every component; `start()` returns once `GET /ready` through Envoy is 200.

    Used by `python -m pvc.devstack run` (foreground=True: children's output goes to stdout) and by the
    integration tests (logs in `data_dir/logs`). Without `database_url` / `nats_url` it runs embedded
    PostgreSQL and NATS whose data lives in `data_dir`. `fresh_database=True` creates a throwaway
    database `pvc_test_<random>` on the server and drops it in `stop()`.
    """

    def __init__(
        self,
        *,
        data_dir: Path,
        http_port: int | None = 8080,
        database_url: str | None = None,
        nats_url: str | None = None,
        fresh_database: bool = False,
        foreground: bool = False,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self._data_dir = data_dir.resolve()
        self._data_dir.mkdir(parents=True, exist_ok=True)
        self._extra_env = dict(extra_env or {})
        self._fresh_database = fresh_database
        self._fresh_name: str | None = None

        self._http_port = http_port if http_port is not None else free_port()
        self._envoy_admin_port = free_port()
        self._gateway_port = free_port()
        self._grpc_ports = {name: free_port() for name in SERVICES}
        self._metrics_ports = {name: free_port() for name in SERVICES}

        self._admin_key, self._admin_key_path = credentials.admin_key(
            data_dir=self._data_dir, env={**os.environ, **self._extra_env}
        )
        self._internal_token = credentials.read_or_create(
            self._data_dir / "internal.token", credentials.new_token
        )
        self._pepper = credentials.read_or_create(self._data_dir / "pepper", credentials.new_token)
        self._webhook_key = credentials.read_or_create(self._data_dir / "webhook.key", credentials.new_token)

        self._supervisor = Supervisor(log_dir=self._data_dir / "logs", foreground=foreground)
        self._postgres: EmbeddedPostgres | None = None
        if database_url is None:
            self._postgres = EmbeddedPostgres(self._data_dir, supervisor=self._supervisor)
            database_url = self._postgres.url
        self._nats: EmbeddedNats | None = None
        if nats_url is None:
            self._nats = EmbeddedNats(self._data_dir, supervisor=self._supervisor)
            nats_url = self._nats.url
        # The server given (or embedded); with fresh_database the services get another database on it.
        self._server_url = database_url
        self._database_url = database_url
        self._nats_url = nats_url
        # How to tell that a component is up, by process name (filled in as they are registered).
        self._probes: dict[str, Callable[[], bool]] = {}
        self._started = False
        self._stopped = False

    # -- properties ---------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    @property
    def base_url(self) -> str:
        """Where clients talk to pvc: Envoy's listener."""
        return f"http://{LOCALHOST}:{self._http_port}"

    @property
    def admin_key(self) -> str:
        return self._admin_key

    @property
    def admin_key_path(self) -> Path | None:
        """The file the admin key is saved in (None when it came from PVC_BOOTSTRAP_API_KEY)."""
        return self._admin_key_path

    @property
    def internal_token(self) -> str:
        return self._internal_token

    @property
    def database_url(self) -> str:
        return self._database_url

    @property
    def nats_url(self) -> str:
        return self._nats_url

    @property
    def envoy_admin_url(self) -> str:
        return f"http://{LOCALHOST}:{self._envoy_admin_port}"

    def service_addr(self, name: str) -> str:
        """host:port of a gRPC service, or of the gateway's HTTP server for "gateway"."""
        if name == GATEWAY:
            return f"{LOCALHOST}:{self._gateway_port}"
        try:
            return f"{LOCALHOST}:{self._grpc_ports[name]}"
        except KeyError:
            raise KeyError(f"unknown service {name!r}; services: {', '.join(SERVICES)}") from None

    def process_names(self) -> list[str]:
        return self._supervisor.names()

    def pids(self) -> list[int]:
        """Pids of every running child process and its descendants."""
        return self._supervisor.pids()

    def banner(self) -> str:
        saved = (
            f"saved in {self._admin_key_path}"
            if self._admin_key_path is not None
            else f"from {credentials.BOOTSTRAP_KEY_ENV}"
        )
        return (
            f"pvc is ready at {self.base_url}\n"
            f"Admin API key: {self._admin_key} ({saved})\n"
            f"API docs: {self.base_url}/api/v1/docs"
        )

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> Stack:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self, timeout: float = 120) -> None:
        """Start everything in order and wait until the stack is ready; on failure stop what started."""
        if self._started:
            raise RuntimeError("this Stack was already started")
        self._started = True
        deadline = time.monotonic() + timeout
        try:
            self._start(deadline)
        except BaseException:
            self.stop()
            raise

    def _start(self, deadline: float) -> None:
        log.info("data in %s", self._data_dir)
        if port_open(LOCALHOST, self._http_port):
            raise StackError(f"port {self._http_port} is already in use (set PVC_HTTP_PORT to another one)")

        if self._postgres is not None:
            log.info("starting PostgreSQL on %s:%d", LOCALHOST, self._postgres.port)
            self._postgres.start(timeout=_remaining(deadline))
            self._probes["postgres"] = functools.partial(can_connect, self._postgres.admin_url)
        else:
            self._wait_external("PostgreSQL", _redact(self._server_url), deadline, self._external_db_up)
        if self._fresh_database:
            self._fresh_name = f"pvc_test_{secrets.token_hex(6)}"
            create_database(self._server_url, self._fresh_name)
            self._database_url = with_database(self._server_url, self._fresh_name)
            log.info("created database %s", self._fresh_name)

        if self._nats is not None:
            log.info("starting NATS on %s:%d", LOCALHOST, self._nats.port)
            self._nats.start(timeout=_remaining(deadline))
            self._probes["nats"] = self._nats.ready
        else:
            self._wait_external("NATS", _redact(self._nats_url), deadline, self._external_nats_up)

        # Every service and the gateway own a schema: `python -m pvc.<name> migrate` runs them.
        for name in [*SERVICES, GATEWAY]:
            self._migrate(name, deadline)

        for name in SERVICES:
            self._launch(name, functools.partial(grpc_serving, self.service_addr(name)))
        for name in SERVICES:
            self._wait_component(name, deadline)

        self._launch(GATEWAY, functools.partial(http_ok, f"http://{self.service_addr(GATEWAY)}/health"))
        self._wait_component(GATEWAY, deadline)

        config = envoy.render_config(
            dest=self._data_dir / "envoy.yaml",
            http_port=self._http_port,
            admin_port=self._envoy_admin_port,
            gateway_host=LOCALHOST,
            gateway_port=self._gateway_port,
        )
        envoy.validate_config(config)
        self._supervisor.add(ProcessSpec(name=envoy.NAME, argv=envoy.envoy_argv(config)))
        self._probes[envoy.NAME] = functools.partial(http_ok, f"{self.envoy_admin_url}/ready")
        self._supervisor.start(envoy.NAME)
        self._wait_component(envoy.NAME, deadline)

        self.wait_ready(_remaining(deadline))
        log.info("ready at %s", self.base_url)

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until `GET /ready` through Envoy answers 200."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            try:
                response = httpx.get(f"{self.base_url}/ready", timeout=2, trust_env=False)
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:2000]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                gateway = self._supervisor.child(GATEWAY) if GATEWAY in self._supervisor.names() else None
                raise StackError(
                    f"{self.base_url}/ready is not 200 after {timeout:.0f} s; last answer: {last}",
                    tail=gateway.tail() if gateway is not None else "",
                    log_path=gateway.log_path if gateway is not None else None,
                )
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop every child, last started first, PostgreSQL last; drop the fresh database. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        for name in reversed(self._supervisor.names()):
            if name != "postgres":
                try:
                    self._supervisor.stop(name)
                except Exception:
                    log.exception("stopping %s failed", name)
        if self._fresh_name is not None:
            try:
                drop_database(self._server_url, self._fresh_name)
                log.info("dropped database %s", self._fresh_name)
            except Exception:
                log.exception("dropping database %s failed", self._fresh_name)
        if self._postgres is not None:
            self._postgres.stop()
        self._supervisor.close()

    def stop_process(self, name: str) -> None:
        """Stop one child on purpose (SIGTERM, SIGKILL after 10 s); it stays down until start_process."""
        self._supervisor.stop(name)

    def start_process(self, name: str, *, timeout: float = 60) -> None:
        """Start a child stopped by stop_process and wait until it is ready again."""
        self._supervisor.start(name)
        self._wait_component(name, time.monotonic() + timeout)

    # -- helpers ------------------------------------------------------------------------------

    def _env(self, name: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "DATABASE_URL": self._database_url,
                "NATS_URL": self._nats_url,
                "PVC_ENV": "dev",
                "PVC_DATA_DIR": str(self._data_dir),
                "PVC_WEBHOOK_ALLOW_PRIVATE": "true",
                # Harnesses on this machine work; other non-public targets are refused as in production.
                "PVC_HARNESS_ALLOWED_NETWORKS": os.environ.get(
                    "PVC_HARNESS_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128"
                ),
                # Where clients (and harness callbacks) reach the API: Envoy.
                "PVC_PUBLIC_URL": self.base_url,
                "PVC_INTERNAL_TOKEN": self._internal_token,
                "PVC_API_KEY_PEPPER": self._pepper,
                "PVC_WEBHOOK_ENCRYPTION_KEY": self._webhook_key,
                "PVC_LOG_LEVEL": os.environ.get("PVC_LOG_LEVEL", "info"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        # Every process can reach every service (e.g. registry asks evals CheckGate).
        for service in SERVICES:
            env[f"PVC_{service.upper()}_ADDR"] = self.service_addr(service)
        if name in self._grpc_ports:
            env["PVC_GRPC_ADDR"] = self.service_addr(name)
            env["PVC_METRICS_PORT"] = str(self._metrics_ports[name])
        if self._fresh_database:
            # The database is dropped at stop; its webhooks consumer on a shared NATS should go too.
            env["PVC_WEBHOOK_CONSUMER_INACTIVE_SECONDS"] = "600"
        if name == GATEWAY:
            env["PVC_GATEWAY_ADDR"] = self.service_addr(GATEWAY)
            env["PVC_BOOTSTRAP_API_KEY"] = self._admin_key
        env.update(self._extra_env)
        return env

    def _migrate(self, name: str, deadline: float) -> None:
        log.info("migrating %s", name)
        spec = ProcessSpec(
            name=f"{name}-migrate", argv=[sys.executable, "-m", f"pvc.{name}", "migrate"], env=self._env(name)
        )
        returncode, tail = self._supervisor.run_once(spec, timeout=_remaining(deadline))
        if returncode != 0:
            log_path = None if self._supervisor.foreground else self._supervisor.log_dir / f"{spec.name}.log"
            raise StackError(f"{name} migrations {describe_exit(returncode)}", tail=tail, log_path=log_path)

    def _launch(self, name: str, probe: Callable[[], bool]) -> None:
        log.info("starting %s", name)
        self._supervisor.add(
            ProcessSpec(name=name, argv=[sys.executable, "-m", f"pvc.{name}"], env=self._env(name))
        )
        self._probes[name] = probe
        self._supervisor.start(name)

    def _wait_component(self, name: str, deadline: float) -> None:
        wait_until_ready(self._supervisor.child(name), self._probes[name], deadline=deadline, what=name)

    def _external_db_up(self) -> bool:
        return can_connect(self._server_url)

    def _external_nats_up(self) -> bool:
        parts = urlsplit(self._nats_url)
        return port_open(parts.hostname or LOCALHOST, parts.port or 4222)

    @staticmethod
    def _wait_external(what: str, where: str, deadline: float, probe: Callable[[], bool]) -> None:
        log.info("using %s at %s", what, where)
        while not probe():
            if time.monotonic() > deadline:
                raise StackError(f"cannot reach {what} at {where}")
            time.sleep(0.2)


def _remaining(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
