"""A local webhook receiver for the tests and the benchmark: records every request, answers as scripted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson

from pvc.webhooks.signing import verify


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.time)

    @property
    def json(self) -> dict[str, object]:
        return orjson.loads(self.body)  # type: ignore[no-any-return]

    def verifies(self, secret: str) -> bool:
        return verify(
            secret=secret,
            msg_id=self.headers["webhook-id"],
            timestamp=int(self.headers["webhook-timestamp"]),
            body=self.body,
            header=self.headers["webhook-signature"],
        )


class _Server(ThreadingHTTPServer):
    # Workers send many deliveries at once; the default backlog of 5 would refuse some.
    request_queue_size = 256
    daemon_threads = True


# path -> answers to give in order (status, extra headers); after the list runs out, 200.
Script = dict[str, list[tuple[int, dict[str, str]]]]


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: Script = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    answers = receiver.script.get(self.path) or []
                    status, extra = answers.pop(0) if answers else (200, {})
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def wait(
        self, path: str, *, count: int, timeout: float = 20.0, where: Callable[[Received], bool] | None = None
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.at(path) if where is None or where(r)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def receiving() -> Iterator[Receiver]:
    receiver = Receiver()
    try:
        yield receiver
    finally:
        receiver.close()
