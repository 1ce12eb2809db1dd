from __future__ import annotations

from pvc.core.settings import CidrList, ServiceSettings
from pvc.core.ssrf import OutboundPolicy, parse_networks


class EvalsSettings(ServiceSettings):
    # The registry, asked which versions belong to the caller's project (LookupVersions).
    registry_addr: str = "127.0.0.1:50051"
    # Where harnesses send their callbacks: the public API (Envoy). The dev stack sets it.
    public_url: str = "http://127.0.0.1:8080"
    # How often overdue pending/running evaluations are turned into `error`.
    timeout_sweep_seconds: float = 1.0
    # Timeout of the trigger POST to a harness (its answer comes later, by callback).
    harness_request_timeout_seconds: float = 10.0
    # Accepted clock skew on a callback's webhook-timestamp.
    callback_tolerance_seconds: int = 300
    # Harness URLs go through the SSRF policy (pvc.core.ssrf): only public addresses, plus these networks
    # (e.g. the cluster network of an in-cluster harness), or anything with allow_private (dev only).
    harness_allow_private: bool = False
    harness_allowed_networks: CidrList = ""

    def outbound_policy(self) -> OutboundPolicy:
        return OutboundPolicy(
            allow_private=self.harness_allow_private,
            allowed_networks=parse_networks(self.harness_allowed_networks),
        )
