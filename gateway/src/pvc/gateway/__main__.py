"""`python -m pvc.gateway` serves HTTP with Granian; `python -m pvc.gateway migrate` upgrades the schema."""

from __future__ import annotations

import sys
from pathlib import Path

from pvc.core.logging import configure_logging
from pvc.core.migrations import upgrade
from pvc.gateway.models import SCHEMA
from pvc.gateway.settings import GatewaySettings


def main(argv: list[str]) -> None:
    settings = GatewaySettings()
    configure_logging(component="gateway", level=settings.log_level)
    if argv[:1] == ["migrate"]:
        upgrade(
            database_url=settings.database_url,
            schema=SCHEMA,
            script_location=Path(__file__).parent / "migrations",
        )
        return
    if argv:
        raise SystemExit("usage: python -m pvc.gateway [migrate]")
    from granian import Granian
    from granian.constants import Interfaces, Loops

    host, _, port = settings.gateway_addr.rpartition(":")
    Granian(
        "pvc.gateway.app:create_app",
        factory=True,
        interface=Interfaces.ASGI,
        address=host or "127.0.0.1",
        port=int(port),
        workers=settings.workers,
        loop=Loops.uvloop if _has_uvloop() else Loops.asyncio,
        log_access=False,
    ).serve()


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main(sys.argv[1:])
