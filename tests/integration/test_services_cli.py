"""`tonewatch services` end to end, through the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, run_cli
from tonewatch.services.process import is_alive, process_tree

pytestmark = pytest.mark.integration


def test_status_json_reports_every_service_with_its_server_version() -> None:
    result = run_cli("services", "status", "--json")
    assert result.returncode == 0, result.stderr
    report = {
        name: entry
        for name, entry in json.loads(result.stdout).items()
        if not name.startswith("worker-")  # workers other tests left running
    }
    assert set(report) == {"kafka", "redis", "postgres", "triton"}
    assert all(entry["up"] for entry in report.values())
    assert report["kafka"]["version"].startswith(("4.", "3.9"))
    assert report["redis"]["version"][0].isdigit()
    assert report["postgres"]["version"].startswith("PostgreSQL ")
    assert report["triton"]["version"].count(".") == 2
    assert {entry["port"] for entry in report.values()} == {19092, 16379, 15432, 18001}


def _free_port_block(count: int) -> int:
    """A base port whose next `count` ports are free right now."""
    for base in range(31000, 60000, 97):
        try:
            for port in range(base, base + count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free port block")


@pytest.fixture
def isolated_env() -> Iterator[dict[str, str]]:
    """A second, private set of services: own var dir (inside the repo, so that the postgres
    user can reach it) and own ports."""
    var_dir = ROOT / "var" / f"selftest-{uuid.uuid4().hex[:8]}"
    base = _free_port_block(7)
    env = {
        "TONEWATCH_VAR_DIR": str(var_dir),
        "TONEWATCH_KAFKA_PORT": str(base),
        "TONEWATCH_KAFKA_CONTROLLER_PORT": str(base + 1),
        "TONEWATCH_KAFKA_HEAP": "384m",
        "TONEWATCH_REDIS_URL": f"redis://127.0.0.1:{base + 2}/0",
        "TONEWATCH_DATABASE_URL": (
            f"postgresql://tonewatch:tonewatch@127.0.0.1:{base + 3}/tonewatch"
        ),
        "TONEWATCH_TRITON_HTTP_PORT": str(base + 4),
        "TONEWATCH_TRITON_GRPC_PORT": str(base + 5),
        "TONEWATCH_TRITON_METRICS_PORT": str(base + 6),
    }
    try:
        yield env
    finally:
        run_cli("services", "down", env=env)
        shutil.rmtree(var_dir, ignore_errors=True)


def _pids(var_dir: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text().split()[0]) for p in var_dir.glob("*/*.pid")}


def test_up_is_idempotent_and_down_leaves_nothing(isolated_env: dict[str, str]) -> None:
    var_dir = Path(isolated_env["TONEWATCH_VAR_DIR"])
    first = run_cli("services", "up", "--json", env=isolated_env)
    assert first.returncode == 0, first.stderr + first.stdout
    pids = _pids(var_dir)
    assert set(pids) == {"kafka", "redis", "postgres", "triton"}
    ours = set().union(*(process_tree(pid) for pid in pids.values()))
    assert len(ours) > 4  # postgres backends at least

    second = run_cli("services", "up", "--json", env=isolated_env)
    assert second.returncode == 0, second.stderr
    assert _pids(var_dir) == pids  # nothing restarted
    assert json.loads(second.stdout) == json.loads(first.stdout)
    assert "already running" in run_cli("services", "up", env=isolated_env).stdout

    down = run_cli("services", "down", env=isolated_env)
    assert down.returncode == 0
    assert [pid for pid in ours if is_alive(pid)] == []
    assert _pids(var_dir) == {}
    status = run_cli("services", "status", "--json", env=isolated_env)
    assert status.returncode == 1
    assert not any(entry["up"] for entry in json.loads(status.stdout).values())


def test_a_service_that_cannot_start_names_its_log(isolated_env: dict[str, str]) -> None:
    port = int(isolated_env["TONEWATCH_REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
    with socket.socket() as squatter:  # holds the port but speaks no Redis
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        started = time.monotonic()
        result = run_cli("services", "up", "--only", "redis", env=isolated_env, timeout=120)
        elapsed = time.monotonic() - started
    assert result.returncode == 1
    log = Path(isolated_env["TONEWATCH_VAR_DIR"]).resolve() / "redis" / "redis.log"
    assert "redis failed to start" in result.stderr
    assert str(log) in result.stderr.replace("\n", "")
    assert "Address already in use" in log.read_text()
    assert elapsed < 60  # the process died: we say so at once instead of waiting it out


def test_a_broken_jvm_setting_fails_fast_with_the_log(isolated_env: dict[str, str]) -> None:
    env = {**isolated_env, "TONEWATCH_KAFKA_HEAP": "not-a-size"}
    result = run_cli("services", "up", "--only", "kafka", env=env, timeout=120)
    assert result.returncode == 1
    assert "kafka failed to start: the process exited" in result.stderr
    assert "kafka.log" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the postgres-user fallback exists only for root")
def test_postgres_runs_from_a_checkout_its_user_cannot_enter(
    isolated_env: dict[str, str],
) -> None:
    private = Path(isolated_env["TONEWATCH_VAR_DIR"])
    private.mkdir(parents=True)
    private.chmod(0o700)  # like a clone under /root
    env = {**isolated_env, "TONEWATCH_VAR_DIR": str(private / "var")}
    try:
        up = run_cli("services", "up", "--only", "postgres", "--json", env=env)
        assert up.returncode == 0, up.stderr
        assert json.loads(up.stdout)["postgres"]["up"]
        link = private / "var" / "postgres" / "cluster"
        assert link.is_symlink()
        assert (link.resolve() / "data" / "PG_VERSION").exists()
    finally:
        run_cli("services", "down", env=env)
        if (private / "var" / "postgres" / "cluster").is_symlink():
            shutil.rmtree((private / "var" / "postgres" / "cluster").resolve(), ignore_errors=True)
