"""`python -m pvc.devstack run`: the whole pvc system in the foreground, until Ctrl-C or SIGTERM.

Environment: PVC_DATA_DIR (default .pvc), PVC_HTTP_PORT (default 8080), DATABASE_URL and NATS_URL
(use existing servers instead of the embedded ones), PVC_BOOTSTRAP_API_KEY, PVC_LOG_LEVEL, OTEL_*.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from pvc.devstack.errors import StackError
from pvc.devstack.processes import NAME_WIDTH
from pvc.devstack.stack import Stack


class _Shutdown(BaseException):
    """Raised in the main thread by SIGINT/SIGTERM, wherever it is (starting or waiting)."""


def _on_signal(signum: int, frame: FrameType | None) -> None:
    # Only the first signal interrupts: stopping has its own timeouts, so later ones are ignored.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _Shutdown(signal.Signals(signum).name)


def run() -> int:
    logging.basicConfig(
        level=logging.INFO, format=f"{'devstack':<{NAME_WIDTH}}| %(message)s", stream=sys.stdout, force=True
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # readiness polls
    log = logging.getLogger("pvc.devstack")
    data_dir = Path(os.environ.get("PVC_DATA_DIR") or ".pvc")
    try:
        http_port = int(os.environ.get("PVC_HTTP_PORT") or 8080)
    except ValueError:
        print(f"PVC_HTTP_PORT must be a port number, not {os.environ['PVC_HTTP_PORT']!r}", file=sys.stderr)
        return 2

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    stack: Stack | None = None
    try:
        stack = Stack(
            data_dir=data_dir,
            http_port=http_port,
            database_url=os.environ.get("DATABASE_URL") or None,
            nats_url=os.environ.get("NATS_URL") or None,
            foreground=True,
        )
        log.info("starting pvc; it will listen on %s", stack.base_url)
        stack.start()
        sys.stdout.write("\n" + stack.banner() + "\n\n")
        sys.stdout.flush()
        while True:
            time.sleep(3600)
    except _Shutdown as exc:
        log.info("%s: stopping", exc)
        return 0
    except StackError as exc:
        print(f"\npvc failed to start: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if stack is not None:
            stack.stop()
            log.info("stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pvc.devstack", description="Run the pvc dev stack.")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="run the whole stack in the foreground (what `make run` does)")
    args = parser.parse_args(argv)
    if args.command in (None, "run"):
        return run()
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
