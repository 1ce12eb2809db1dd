"""Stand-in for a gRPC service (`python -m pvc.<name>`): serves grpc.health.v1 and nothing else.

The devstack tests copy it to `<tmp>/pvc/<name>/__main__.py` and put `<tmp>` first on PYTHONPATH, so
the stack runs it instead of the real service.
"""

import os
import signal
import sys
import threading
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


def main() -> int:
    name = Path(__file__).parent.name
    if sys.argv[1:] == ["migrate"]:
        Path(os.environ["PVC_DATA_DIR"], f"{name}.migrated").write_text(os.environ["DATABASE_URL"])
        return 0
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.add_insecure_port(os.environ["PVC_GRPC_ADDR"])
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop(1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
