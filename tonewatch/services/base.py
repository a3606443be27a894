"""What every local service shares: install, prepare, spawn, wait until ready, probe, stop."""

from __future__ import annotations

import signal
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from tonewatch.config import Settings
from tonewatch.services.exceptions import ProbeError, ServiceStartError
from tonewatch.services.process import Launch, ManagedProcess


@dataclass(frozen=True)
class ServiceStatus:
    """What `services status` reports for one service."""

    name: str
    up: bool
    port: int
    version: str | None
    pid: int | None
    log: str
    detail: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "up": self.up,
            "version": self.version,
            "port": self.port,
            "pid": self.pid,
            "log": self.log,
            "detail": self.detail,
        }


class LocalService(ABC):
    """A real server that the project installs, starts and stops on this machine."""

    name: ClassVar[str]
    probe_timeout_s: ClassVar[float] = 2.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.run_dir = settings.var_dir.resolve() / self.name
        self.process = ManagedProcess(self.name, self.run_dir, self.stop_signal())

    @property
    @abstractmethod
    def port(self) -> int:
        """The port clients connect to."""

    @abstractmethod
    def install(self) -> None:
        """Make sure the server's binaries are present (download or apt-get when missing)."""

    @abstractmethod
    def prepare(self) -> None:
        """Create configuration and data directories; idempotent."""

    @abstractmethod
    def launch(self) -> Launch:
        """The command that runs the server in the foreground."""

    @abstractmethod
    def probe(self) -> str:
        """Ask the server for its version over its own protocol; raise ProbeError if it can't."""

    def after_ready(self) -> None:  # noqa: B027  (an optional hook, not abstract)
        """One-off setup that needs the running server (e.g. the database role)."""

    def stop_signal(self) -> signal.Signals:
        return signal.SIGTERM

    def status(self) -> ServiceStatus:
        try:
            version, up, detail = self.probe(), True, None
        except ProbeError as exc:
            version, up, detail = None, False, str(exc)
        return ServiceStatus(
            name=self.name,
            up=up,
            port=self.port,
            version=version,
            pid=self.process.pid(),
            log=str(self.process.log_path),
            detail=detail,
        )

    def start(self) -> bool:
        """Spawn the server unless it already answers. Returns True if it was spawned."""
        try:
            self.probe()
            return False
        except ProbeError:
            pass
        if self.process.pid() is not None:
            return False  # ours, still starting: wait_ready() will tell
        self.install()
        self.prepare()
        self.process.spawn(self.launch())
        return True

    def wait_ready(self, timeout_s: float) -> str:
        """Poll the probe until it answers; fail fast, naming the log, if the process dies."""
        deadline = time.monotonic() + timeout_s
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            try:
                version = self.probe()
            except ProbeError as exc:
                last_error = str(exc)
            else:
                self.after_ready()
                return version
            if self.process.pid() is None:
                raise ServiceStartError(
                    self.name, "the process exited", self.process.log_path, self.process.log_tail()
                )
            time.sleep(0.25)
        self.process.stop(timeout_s=10)
        raise ServiceStartError(
            self.name,
            f"not ready after {timeout_s:.0f}s ({last_error})",
            self.process.log_path,
            self.process.log_tail(),
        )

    def stop(self) -> bool:
        return self.process.stop()

    def write_if_changed(self, path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
