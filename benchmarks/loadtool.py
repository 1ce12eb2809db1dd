"""wrk (https://github.com/wg/wrk): installed with apt when missing; its output parsed into numbers."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

# Every request asks for another session id, as production traffic would.
SESSIONS_LUA = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("GET", "{path}?sessionId=user-" .. (counter % 10000))
end
"""


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        subprocess.run(["apt-get", "update"], check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)
        found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed and apt-get could not install it")
    return found


def _millis(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(
    *,
    base_url: str,
    key: str,
    connections: int,
    seconds: int,
    path: str = "",
    lua: str = "",
    threads: int = 2,
) -> dict[str, float]:
    """Requests/s, p50 and p99 (ms), the request count and the count of non-2xx answers.

    `lua` is a wrk script; without one, GET `path` with another session id each time.
    """
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "load.lua"
        script.write_text(lua or SESSIONS_LUA.replace("{path}", path))
        result = subprocess.run(
            [
                ensure_wrk(),
                f"-t{threads}",
                f"-c{connections}",
                f"-d{seconds}s",
                "--latency",
                "-H",
                f"Authorization: Bearer {key}",
                "-s",
                str(script),
                base_url,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    out = result.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _millis(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _millis(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    requests = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "rps": rps,
        "p50_ms": p50,
        "p99_ms": p99,
        "requests": requests,
        "non_2xx": float(errors.group(1)) if errors else 0.0,
    }
