"""`python -m benchmarks [name ...]`: run the benchmarks against one throwaway stack.

Each `benchmarks/bench_<name>.py` defines `run(stack: Stack) -> dict[str, object]`; results are printed
and written to `.bench/results.json`. Numbers are compared only with baselines measured in the same run,
on the same machine (see docs/benchmarks.md).
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import shutil
import sys
import tempfile
import time
from pathlib import Path

import benchmarks
from pvc.devstack import Stack


def main(argv: list[str]) -> int:
    names = argv or sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules(benchmarks.__path__)
        if m.name.startswith("bench_")
    )
    if not names:
        print("no benchmarks found")
        return 1
    data_dir = Path(tempfile.mkdtemp(prefix="pvc-bench-"))
    results: dict[str, object] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    try:
        with Stack(
            data_dir=data_dir,
            http_port=None,
            database_url=os.environ.get("PVC_TEST_DATABASE_URL") or None,
            nats_url=os.environ.get("PVC_TEST_NATS_URL") or None,
            fresh_database=bool(os.environ.get("PVC_TEST_DATABASE_URL")),
        ) as stack:
            for name in names:
                module = importlib.import_module(f"benchmarks.bench_{name}")
                started = time.monotonic()
                print(f"== {name}", flush=True)
                result = module.run(stack)
                result["seconds"] = round(time.monotonic() - started, 1)
                results[name] = result
                print(json.dumps(result, indent=2), flush=True)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    out = Path(".bench")
    out.mkdir(exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"results written to {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
