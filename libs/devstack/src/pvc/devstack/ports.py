"""Free TCP ports on the loopback interface."""

from __future__ import annotations

import socket
import threading

LOCALHOST = "127.0.0.1"

_issued: set[int] = set()
_issued_lock = threading.Lock()


def free_port(host: str = LOCALHOST) -> int:
    """A port nothing listens on right now, never the same one twice in this process.

    The kernel may hand the same ephemeral port out again once our probe socket is closed, so ports
    already given to another component of this process are skipped.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port: int = sock.getsockname()[1]
        with _issued_lock:
            if port not in _issued:
                _issued.add(port)
                return port
    raise RuntimeError(f"no free TCP port on {host}")


def port_open(host: str, port: int, *, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
