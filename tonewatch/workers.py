"""Stream workers as background processes, for the demo, the benchmarks and the tests.

Each worker is `tonewatch worker` in a session of its own, with the caller's Settings passed
down as TONEWATCH_ variables, a pid file and a log under <var_dir>/workers.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from streams.watchdog import WorkerHealth
from tonewatch.config import Settings
from tonewatch.services.process import Launch, ManagedProcess

# Logged by faust once the worker has started its agents and recovered its tables.
READY_MARK: Final = "[^Worker]: Ready"


class WorkerError(RuntimeError):
    """A worker exited or did not get ready in time; the message has its log's tail."""


def settings_env(settings: Settings) -> dict[str, str]:
    """Every setting as the TONEWATCH_ variable that reproduces it in a child process."""
    env = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is not None:
            # Lists and dicts travel as JSON, which is how pydantic-settings reads them back.
            shown = json.dumps(value) if isinstance(value, list | dict) else str(value)
            env[f"TONEWATCH_{name.upper()}"] = shown
    return env


def isolated(settings: Settings, model_name: str, run: str, **overrides: Any) -> Settings:
    """Settings for a pipeline of its own on a shared broker (benchmarks, tests): topics
    under the prefix `<run>.`, consumer group `<run>`, the model `model_name`, no metrics."""
    return settings.model_copy(
        update={
            "kafka_topic_prefix": f"{run}.",
            "worker_app_id": run,
            "triton_model_name": model_name,
            "worker_metrics_port": 0,
        }
        | overrides
    )


def worker_process(settings: Settings, name: str) -> ManagedProcess:
    return ManagedProcess(f"worker-{name}", settings.var_dir / "workers")


def health_path(process: ManagedProcess) -> Path:
    return process.run_dir / f"{process.name}.health.json"


@dataclass(frozen=True)
class WorkerStatus:
    """What `services status` says of one worker started by `start_worker`."""

    name: str
    state: str
    """running, frozen (SIGSTOP), silent (no health report lately), dead or absent."""
    pid: int | None
    health: WorkerHealth | None

    @property
    def up(self) -> bool:
        return self.state == "running"

    def as_dict(self) -> dict[str, object]:
        health = asdict(self.health) if self.health else None
        return {"up": self.up, "state": self.state, "pid": self.pid, "health": health}


def worker_statuses(settings: Settings) -> list[WorkerStatus]:
    """Every worker with a pid file under <var_dir>/workers. A worker whose health file has
    not been rewritten for three watchdog periods is `silent`: alive but not working."""
    statuses = []
    for pid_file in sorted((settings.var_dir / "workers").glob("worker-*.pid")):
        process = ManagedProcess(pid_file.stem, pid_file.parent)
        state = process.state()
        health = WorkerHealth.read(health_path(process))
        silent_for = time.time() - health.checked_at if health else float("inf")
        stale = silent_for > 3 * settings.worker_watch_every_s
        if state == "running" and stale:
            state = "silent"
        pid = health.pid if health else None
        statuses.append(WorkerStatus(pid_file.stem, state, pid, health))
    return statuses


def start_worker(settings: Settings, name: str, ready_timeout_s: float = 120.0) -> ManagedProcess:
    """Start a worker and wait until faust reports it ready."""
    process = worker_process(settings, name)
    if process.pid() is not None:
        raise WorkerError(f"worker {name!r} is already running (pid {process.pid()})")
    offset = process.log_path.stat().st_size if process.log_path.exists() else 0
    tonewatch = str(Path(sys.executable).with_name("tonewatch"))
    health_path(process).unlink(missing_ok=True)
    argv = [tonewatch, "worker", "--health-file", str(health_path(process))]
    pid = process.spawn(Launch(argv=argv, env=settings_env(settings), cwd=Path.cwd()))
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if READY_MARK in _log_since(process.log_path, offset):
            return process
        if process.pid() is None:
            raise WorkerError(
                f"worker {name!r} (pid {pid}) exited during start-up; "
                f"log {process.log_path}:\n{process.log_tail(30)}"
            )
        time.sleep(0.2)
    process.stop()
    raise WorkerError(
        f"worker {name!r} not ready after {ready_timeout_s:.0f}s; "
        f"log {process.log_path}:\n{process.log_tail(30)}"
    )


def kill_worker(process: ManagedProcess, signum: signal.Signals = signal.SIGKILL) -> None:
    """SIGKILL, the crash a worker must survive: nothing gets to clean up or commit. The pid
    file stays, so `services status` reports the worker dead until it is started again."""
    pid = process.pid()
    if pid is not None:
        os.killpg(pid, signum)
        while process.state() == "running":
            time.sleep(0.05)


def _log_since(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
