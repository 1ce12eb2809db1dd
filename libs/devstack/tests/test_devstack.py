"""Dev stack: embedded PostgreSQL and NATS, Envoy config, supervision, and a whole stack of stand-ins."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from pvc.core.apikeys import has_valid_checksum
from pvc.devstack import SERVICES, EmbeddedNats, EmbeddedPostgres, ProcessSpec, Stack, StackError, Supervisor
from pvc.devstack import envoy as envoy_config
from pvc.devstack.health import grpc_serving
from pvc.devstack.ports import free_port

FAKE_APPS = Path(__file__).parent / "fake_apps"

# Other tests in the same session (the integration suite) may have their own stack running as our
# children; only processes started by these tests must be gone.
_BASELINE: set[int] = set()


@pytest.fixture(autouse=True)
def _record_existing_children() -> None:
    _BASELINE.clear()
    _BASELINE.update(p.pid for p in psutil.Process().children(recursive=True))


def _new_descendants() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.pid not in _BASELINE and not _zombie(p)]


def _zombie(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_for(condition: Callable[[], bool], *, timeout: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A private temporary directory outside pytest's.

    As root, PostgreSQL runs as another user and needs to traverse the path to its data; every pytest
    session (another one running at the same time included) resets /tmp/pytest-of-root to mode 0700.
    """
    path = Path(tempfile.mkdtemp(prefix="pvc-devstack-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def fake_apps(scratch: Path) -> str:
    """A PYTHONPATH entry on which `pvc.<service>` and `pvc.gateway` are the stand-ins.

    They are regular packages (with __init__.py): those win over the real ones found later on the path.
    """
    root = scratch / "fake_apps"
    for name, source in [*((name, "fake_service.py") for name in SERVICES), ("gateway", "fake_gateway.py")]:
        package = root / "pvc" / name
        package.mkdir(parents=True)
        (package / "__init__.py").touch()
        shutil.copy(FAKE_APPS / source, package / "__main__.py")
    return str(root)


# -- embedded servers --------------------------------------------------------------------------


def test_embedded_postgres_keeps_data_and_survives_a_stale_pidfile(scratch: Path) -> None:
    pg = EmbeddedPostgres(scratch)
    pg.start()
    try:
        assert pg.url.startswith("postgresql://postgres@127.0.0.1:")
        assert pg.url.endswith("/pvc")
        with psycopg.connect(pg.url, autocommit=True) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
            conn.execute("create table kept (v int)")
            conn.execute("insert into kept values (42)")
        postmaster = psutil.Process(pg._supervisor.child("postgres").pid or 0)
    finally:
        pg.stop()
    assert gone(postmaster.pid)

    # A killed run leaves postmaster.pid behind; here its pid belongs to a live, unrelated process.
    (scratch / "pg" / "postmaster.pid").write_text(f"{os.getpid()}\n{scratch / 'pg'}\n")
    pg = EmbeddedPostgres(scratch)
    pg.start()
    try:
        with psycopg.connect(pg.url) as conn:
            assert conn.execute("select v from kept").fetchone() == (42,)
    finally:
        pg.stop()


def test_embedded_nats_has_jetstream(scratch: Path) -> None:
    import nats

    server = EmbeddedNats(scratch)
    server.start()

    async def publish() -> int:
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            await js.add_stream(name="PVC_TEST", subjects=["pvc.test.>"])
            ack = await js.publish("pvc.test.hello", b"hi", headers={"Nats-Msg-Id": "1"})
            assert ack.stream == "PVC_TEST"
            duplicate = await js.publish("pvc.test.hello", b"hi", headers={"Nats-Msg-Id": "1"})
            assert duplicate.duplicate
            return ack.seq
        finally:
            await nc.close()

    try:
        assert asyncio.run(publish()) == 1
    finally:
        server.stop()
    assert (scratch / "nats" / "jetstream").is_dir()


# -- envoy -------------------------------------------------------------------------------------


def test_envoy_config_renders_and_validates(scratch: Path) -> None:
    config = envoy_config.render_config(
        dest=scratch / "envoy.yaml",
        http_port=18080,
        admin_port=18081,
        gateway_host="127.0.0.1",
        gateway_port=18082,
    )
    text = config.read_text()
    assert "${" not in text
    assert "port_value: 18080" in text
    envoy_config.validate_config(config)

    broken = scratch / "broken.yaml"
    broken.write_text(text.replace("use_remote_address: true", "use_remote_address: maybe"))
    with pytest.raises(StackError, match="invalid Envoy config"):
        envoy_config.validate_config(broken)


# -- supervision -------------------------------------------------------------------------------


def test_supervisor_restarts_with_backoff_and_stops_everything(scratch: Path) -> None:
    sup = Supervisor(log_dir=scratch)
    sup.add(
        ProcessSpec(
            name="crashy", argv=[sys.executable, "-c", "import time; time.sleep(0.2); raise SystemExit(1)"]
        )
    )
    # SIGTERM is ignored: stop() has to escalate to SIGKILL; its grandchild must go as well.
    stubborn = textwrap.dedent(
        """
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print("up", flush=True)
        time.sleep(60)
        """
    )
    sup.add(ProcessSpec(name="stubborn", argv=[sys.executable, "-c", stubborn], stop_timeout=0.5))
    began = time.monotonic()
    crashy = sup.start("crashy")
    stubborn_child = sup.start("stubborn")
    try:
        wait_for(lambda: crashy.exits >= 3, timeout=10, what="three crashes")
        # Three runs of ~0.2 s with 0.5 s and 1 s pauses between them.
        assert time.monotonic() - began >= 1.5
        log = (scratch / "crashy.log").read_text()
        assert "exited with code 1" in log
        assert "restarting in 0.5 s" in log
        assert "restarting in 1 s" in log
        assert "restarting in 2 s" in log
        wait_for(lambda: "up" in stubborn_child.tail(), what="stubborn child to start its grandchild")
        pids = sup.pids()
        assert len(pids) >= 2
    finally:
        sup.close()
    wait_for(lambda: all(gone(pid) for pid in pids), timeout=5, what="children to be gone")
    assert _new_descendants() == []
    assert "did not stop" not in (scratch / "crashy.log").read_text()


def test_stop_process_keeps_it_down_until_started(scratch: Path) -> None:
    sup = Supervisor(log_dir=scratch)
    sup.add(ProcessSpec(name="sleeper", argv=[sys.executable, "-c", "import time; time.sleep(60)"]))
    try:
        first = sup.start("sleeper").pid
        sup.stop("sleeper")
        time.sleep(0.6)  # longer than the first restart delay
        assert sup.child("sleeper").popen is None
        assert first is not None
        assert gone(first)
        second = sup.start("sleeper").pid
        assert second is not None
        assert second != first
    finally:
        sup.close()
    assert gone(second)


def test_children_die_with_a_killed_supervisor(scratch: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from pvc.devstack import ProcessSpec, Supervisor
        sup = Supervisor(log_dir=Path({str(scratch)!r}))
        sup.add(ProcessSpec(name="sleeper", argv=["sleep", "60"]))
        print(sup.start("sleeper").pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    assert not gone(child_pid)
    parent.kill()
    parent.wait()
    wait_for(lambda: gone(child_pid), timeout=5, what="the orphan to get SIGTERM")


# -- whole stack with stand-in apps ------------------------------------------------------------


@pytest.fixture
def stack(scratch: Path, fake_apps: str) -> Iterator[Stack]:
    with Stack(
        data_dir=scratch / "data",
        http_port=None,
        fresh_database=True,
        extra_env={"PYTHONPATH": fake_apps, "PVC_LOG_LEVEL": "debug"},
    ) as stack:
        yield stack


def test_stack_starts_heals_and_stops(stack: Stack, scratch: Path) -> None:
    data = scratch / "data"
    client = httpx.Client(base_url=stack.base_url, trust_env=False, timeout=5)

    ready = client.get("/ready")
    assert ready.status_code == 200
    assert has_valid_checksum(stack.admin_key)
    assert (data / "admin.key").read_text().strip() == stack.admin_key
    for secret in ("admin.key", "internal.token", "pepper"):
        assert stat.S_IMODE((data / secret).stat().st_mode) == 0o600

    # Migrations ran first, against the fresh database.
    assert re.search(r"/pvc_test_[0-9a-f]{12}$", stack.database_url)
    for name in [*SERVICES, "gateway"]:
        assert (data / f"{name}.migrated").read_text() == stack.database_url

    env = client.get("/env").json()
    assert env["DATABASE_URL"] == stack.database_url
    assert env["NATS_URL"] == stack.nats_url
    assert env["PVC_ENV"] == "dev"
    assert env["PVC_DATA_DIR"] == str(data)
    assert env["PVC_WEBHOOK_ALLOW_PRIVATE"] == "true"
    assert env["PVC_HARNESS_ALLOWED_NETWORKS"] == "127.0.0.0/8,::1/128"
    assert env["PVC_BOOTSTRAP_API_KEY"] == stack.admin_key
    assert env["PVC_INTERNAL_TOKEN"] == stack.internal_token
    assert env["PVC_API_KEY_PEPPER"] == (data / "pepper").read_text().strip()
    assert env["PVC_LOG_LEVEL"] == "debug"
    assert env["PVC_GATEWAY_ADDR"] == stack.service_addr("gateway")
    for name in SERVICES:
        assert env[f"PVC_{name.upper()}_ADDR"] == stack.service_addr(name)

    # Bodies over 1 MiB never reach the gateway.
    too_large = client.post("/api/v1/prompts", content=b"x" * (1024 * 1024 + 1))
    assert too_large.status_code == 413
    assert too_large.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"

    # A gateway stopped on purpose: Envoy answers in the project's error shape, and it stays down.
    stack.stop_process("gateway")
    down = client.get("/ready")
    assert down.status_code == 503
    body = down.json()
    assert body["error"]["code"] == "UNAVAILABLE"
    assert body["error"]["details"] == {}
    assert body["requestId"] == down.headers["x-request-id"]
    time.sleep(0.6)
    assert client.get("/ready").status_code == 503
    stack.start_process("gateway")
    stack.wait_ready(10)

    # A service that dies on its own is restarted.
    registry = stack._supervisor.child("registry")
    crashed_pid = registry.pid
    assert crashed_pid is not None
    os.kill(crashed_pid, signal.SIGKILL)
    wait_for(lambda: registry.pid not in (None, crashed_pid), timeout=5, what="registry to be restarted")
    wait_for(lambda: grpc_serving(stack.service_addr("registry")), timeout=10, what="registry to serve")
    assert "killed by SIGKILL" in (data / "logs" / "registry.log").read_text()
    stack.wait_ready(10)

    fresh = stack.database_url.rsplit("/", 1)[1]
    pids = stack.pids()
    assert len(pids) >= 5
    stack.stop()
    wait_for(lambda: all(gone(pid) for pid in pids), timeout=5, what="every child to be gone")
    assert _new_descendants() == []
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(data) in " ".join(p.info["cmdline"] or [])]

    # The throwaway database was dropped (PostgreSQL is stopped: start it again to look).
    pg = EmbeddedPostgres(data)
    pg.start()
    try:
        with psycopg.connect(pg.admin_url) as conn:
            assert conn.execute("select 1 from pg_database where datname = %s", (fresh,)).fetchone() is None
    finally:
        pg.stop()


def test_bootstrap_key_must_start_with_pvc(scratch: Path) -> None:
    with pytest.raises(StackError, match="PVC_BOOTSTRAP_API_KEY must start with 'pvc_'"):
        Stack(data_dir=scratch, extra_env={"PVC_BOOTSTRAP_API_KEY": "secret"})
    stack = Stack(data_dir=scratch, extra_env={"PVC_BOOTSTRAP_API_KEY": "pvc_given"})
    assert stack.admin_key == "pvc_given"
    assert not (scratch / "admin.key").exists()


def test_run_command_stops_cleanly_on_sigterm(scratch: Path, fake_apps: str) -> None:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": fake_apps,
        "PVC_DATA_DIR": str(scratch / "data"),
        "PVC_HTTP_PORT": str(port),
        "PVC_BOOTSTRAP_API_KEY": "pvc_from_env",
    }
    env.pop("DATABASE_URL", None)
    env.pop("NATS_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pvc.devstack", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Admin API key:"):
                break
        output = "".join(lines)
        assert f"pvc is ready at http://127.0.0.1:{port}" in output, output
        assert "Admin API key: pvc_from_env (from PVC_BOOTSTRAP_API_KEY)" in output
        assert re.search(r"^postgres\s+\| .*database system is ready", output, re.MULTILINE), output
        assert httpx.get(f"http://127.0.0.1:{port}/ready", trust_env=False).status_code == 200
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 5
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output + rest
    assert "stopped" in rest
    wait_for(lambda: all(gone(child.pid) for child in children), timeout=5, what="children to be gone")


def test_envoy_runs_one_worker_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    from pvc.devstack.envoy import envoy_argv

    config = Path("/tmp/envoy.yaml")
    monkeypatch.delenv("PVC_ENVOY_CONCURRENCY", raising=False)
    argv = envoy_argv(config)
    assert argv[argv.index("--concurrency") + 1] == "1"
    monkeypatch.setenv("PVC_ENVOY_CONCURRENCY", "4")
    argv = envoy_argv(config)
    assert argv[argv.index("--concurrency") + 1] == "4"
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("PVC_ENVOY_CONCURRENCY", bad)
        with pytest.raises(StackError):
            envoy_argv(config)
