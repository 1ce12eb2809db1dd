"""Readiness probes for the components (each returns quickly, True only when ready)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from pvc.devstack.errors import StackError
from pvc.devstack.ports import LOCALHOST, port_open
from pvc.devstack.processes import Child, describe_exit


def http_ok(url: str, *, timeout: float = 2.0) -> bool:
    """GET url answers 200 (proxy variables are ignored: everything here is on loopback)."""
    try:
        return httpx.get(url, timeout=timeout, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def grpc_serving(addr: str, *, timeout: float = 2.0) -> bool:
    """grpc.health.v1 Check for the whole server ("") answers SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    host, _, port = addr.rpartition(":")
    if not port_open(host or LOCALHOST, int(port), timeout=timeout):
        return False
    with grpc.insecure_channel(addr, options=[("grpc.enable_http_proxy", 0)]) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


def wait_until_ready(child: Child, probe: Callable[[], bool], *, deadline: float, what: str) -> None:
    """Poll `probe` until it passes; fail fast if the child exits meanwhile, or at `deadline`."""
    began = time.monotonic()
    exits = child.exits
    while not probe():
        if child.exits > exits:
            raise StackError(
                f"{what} {describe_exit(child.last_exit or 0)} before it was ready",
                tail=child.tail(),
                log_path=child.log_path,
            )
        if time.monotonic() > deadline:
            raise StackError(
                f"{what} is not ready after {time.monotonic() - began:.0f} s",
                tail=child.tail(),
                log_path=child.log_path,
            )
        time.sleep(0.1)
