"""The real API in its own process (`tonewatch api`), tenants with keys, and free ports.

Fixtures here are registered by tests/integration/conftest.py.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from storage import api_keys
from storage.db import create_engine, migrate
from tonewatch.config import Settings

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ApiServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]

    def client(self, token: str | None = None, **options: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10.0, **options)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_api(log: Path, env: dict[str, str], timeout_s: float = 30.0) -> ApiServer:
    """`tonewatch api` on a free port with these TONEWATCH_ overrides; waits for /healthz."""
    port = free_port()
    env = {**env, "TONEWATCH_API_PORT": str(port), "TONEWATCH_API_HOST": "127.0.0.1"}
    executable = str(Path(os.environ.get("VIRTUAL_ENV", "")) / "bin" / "tonewatch")
    if not Path(executable).exists():
        import sys

        executable = str(Path(sys.executable).parent / "tonewatch")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [executable, "api"], cwd=ROOT, env={**os.environ, **env}, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = ApiServer(f"http://127.0.0.1:{port}", process, log, env)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"tonewatch api exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1.0).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"tonewatch api did not start in {timeout_s}s: {log.read_text()[-3000:]}")


@dataclass(frozen=True)
class Tenant:
    name: str
    tokens: dict[str, str]  # key name -> token

    def __getitem__(self, key_name: str) -> str:
        return self.tokens[key_name]


def make_key(settings: Settings, tenant: str, name: str, scopes: tuple[str, ...]) -> str:
    """A real key in Postgres; returns its token."""

    async def create() -> str:
        engine = create_engine(settings)
        try:
            return (await api_keys.create(engine, tenant, name, scopes))[1]
        finally:
            await engine.dispose()

    # Callable from sync tests and from fixtures of async ones (where a loop is running).
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, create()).result()


def new_tenant(settings: Settings, **keys: tuple[str, ...]) -> Tenant:
    """A fresh tenant with one key per keyword, e.g. new_tenant(s, alice=("label",))."""
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    return Tenant(tenant, {name: make_key(settings, tenant, name, s) for name, s in keys.items()})


@pytest.fixture(scope="session")
def receiver_port() -> int:
    """The one loopback port webhook tests may receive on: the API and the webhook worker
    allow it (TONEWATCH_WEBHOOK_ALLOWED_TARGETS) and the SSRF guard refuses every other."""
    return free_port()


@pytest.fixture(scope="session")
def api_env(receiver_port: int) -> dict[str, str]:
    """Settings of the API (and webhook worker) under test, as TONEWATCH_ variables."""
    return {
        "TONEWATCH_WEBHOOK_ALLOWED_TARGETS": f'["127.0.0.1:{receiver_port}"]',
        # Tests share one key per role across many calls; S5 lowers it for its own server.
        "TONEWATCH_API_RATE_PER_S": "200",
        "TONEWATCH_API_RATE_BURST": "400",
    }


@pytest.fixture(scope="session")
def api(
    settings: Settings, api_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiServer]:
    """The real API, one process for the whole session."""
    migrate(settings.database_url)
    server = start_api(tmp_path_factory.mktemp("api") / "api.log", api_env)
    yield server
    server.stop()
