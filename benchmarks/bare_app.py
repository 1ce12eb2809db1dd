"""The baseline of the resolve benchmark: a bare FastAPI endpoint returning a constant body.

Served by the same server software as the gateway (Granian, one worker, the same event loop) behind
the same Envoy config, on the same path shape as the resolve route. `python -m benchmarks.bare_app PORT SIZE`.
"""

from __future__ import annotations

import os
import sys

from fastapi import FastAPI
from fastapi.responses import Response


def create_app() -> FastAPI:
    body = b'{"pad":"' + b"x" * max(0, int(os.environ.get("BARE_BODY_BYTES", "300")) - 10) + b'"}'
    app = FastAPI()

    @app.get("/api/v1/prompts/{prompt}/resolve")
    async def constant(prompt: str) -> Response:
        return Response(body, media_type="application/json")

    return app


def main(port: int) -> None:
    from granian import Granian
    from granian.constants import Interfaces, Loops

    try:
        import uvloop  # noqa: F401

        loop = Loops.uvloop
    except ImportError:
        loop = Loops.asyncio
    Granian(
        "benchmarks.bare_app:create_app",
        factory=True,
        interface=Interfaces.ASGI,
        address="127.0.0.1",
        port=port,
        workers=1,
        loop=loop,
        log_access=False,
    ).serve()


if __name__ == "__main__":
    main(int(sys.argv[1]))
