"""Prometheus metrics of the webhooks service (served by the process's metrics port)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS_CONSUMED = Counter("pvc_webhook_events_consumed_total", "Events read from PVC_EVENTS")
DELIVERIES_QUEUED = Counter("pvc_webhook_deliveries_queued_total", "Deliveries created by fan-out")
ATTEMPTS = Counter(
    "pvc_webhook_attempts_total", "Delivery attempts by resulting status", ["status"]
)  # succeeded | failed | dead
ATTEMPT_SECONDS = Histogram(
    "pvc_webhook_attempt_seconds",
    "Time from sending a delivery to its answer",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15),
)
