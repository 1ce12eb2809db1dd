"""Stand-in for the gateway (`python -m pvc.gateway`): /health, /ready (asks every service's gRPC
health) and /env (the environment the stack gave it, for the tests to check)."""

import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def serving(addr: str) -> bool:
    with grpc.insecure_channel(addr) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/health":
            self.reply(200, {"status": "ok"})
        elif self.path == "/ready":
            checks = {
                key: "ok" if serving(value) else "down"
                for key, value in os.environ.items()
                if key.endswith("_ADDR") and key not in ("PVC_GATEWAY_ADDR", "PVC_GRPC_ADDR")
            }
            ready = all(v == "ok" for v in checks.values())
            self.reply(200 if ready else 503, {"status": "ready" if ready else "not_ready", "checks": checks})
        elif self.path == "/env":
            self.reply(
                200, {k: v for k, v in os.environ.items() if k.startswith(("PVC_", "DATABASE", "NATS"))}
            )
        else:
            self.reply(404, {"error": {"code": "NOT_FOUND", "message": self.path, "details": {}}})

    def reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> int:
    if sys.argv[1:] == ["migrate"]:
        Path(os.environ["PVC_DATA_DIR"], "gateway.migrated").write_text(os.environ["DATABASE_URL"])
        return 0
    host, _, port = os.environ["PVC_GATEWAY_ADDR"].rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
