from __future__ import annotations

from pvc.core.settings import ServiceSettings


class RegistrySettings(ServiceSettings):
    # The evals service, asked CheckGate before production moves.
    evals_addr: str = "127.0.0.1:50052"
    # Deadline of the CheckGate call: when evals cannot answer in time, promote is 503 and changes nothing.
    gate_deadline_seconds: float = 2.0
