"""Prometheus metrics shared by every process."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

GRPC_REQUESTS = Counter("pvc_grpc_server_requests_total", "gRPC calls handled", ["service", "method", "code"])
GRPC_LATENCY = Histogram(
    "pvc_grpc_server_latency_seconds",
    "gRPC call latency",
    ["service", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
OUTBOX_PUBLISHED = Counter("pvc_outbox_published_total", "Events published from the outbox", ["service"])


def serve_metrics(port: int) -> None:
    """Expose /metrics on its own port (services); 0 disables it."""
    if port:
        start_http_server(port, addr="0.0.0.0")
