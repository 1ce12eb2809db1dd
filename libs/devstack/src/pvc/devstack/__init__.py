"""Dev stack: runs the whole pvc system locally (`make run`) and for the integration tests."""

from pvc.devstack.credentials import new_api_key
from pvc.devstack.errors import StackError
from pvc.devstack.nats import EmbeddedNats
from pvc.devstack.postgres import EmbeddedPostgres
from pvc.devstack.processes import ProcessSpec, Supervisor
from pvc.devstack.stack import GATEWAY, SERVICES, Stack

__all__ = [
    "GATEWAY",
    "SERVICES",
    "EmbeddedNats",
    "EmbeddedPostgres",
    "ProcessSpec",
    "Stack",
    "StackError",
    "Supervisor",
    "new_api_key",
]
