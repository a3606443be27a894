"""A daemon process we own: spawned in its own session, tracked by a pid file, stopped by group.

Linux only: liveness is read from /proc, so a zombie left behind by a parent that never reaps
(PID 1 in a container often does not) counts as gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


def _state(pid: int) -> str | None:
    """The process state letter from /proc, or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may contain spaces and parentheses: the state follows the last ')'.
    return stat.rsplit(")", 1)[1].split()[0]


def _start_ticks(pid: int) -> int | None:
    """When the process started (clock ticks after boot): tells a reused pid from ours."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def is_alive(pid: int) -> bool:
    state = _state(pid)
    return state is not None and state not in ("Z", "X")


def _process_table() -> dict[int, tuple[str, int, int]]:
    """pid -> (state, parent pid, process group) for every process, from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        table[int(entry.name)] = (fields[0], int(fields[1]), int(fields[2]))
    return table


def process_tree(pid: int) -> set[int]:
    """Live processes that belong to the daemon `pid`: its process group and its descendants.

    Both, because some servers move their children into groups of their own (Postgres
    backends call setsid()), and a group outlives a parent that died.
    """
    table = _process_table()
    tree = {p for p, (_, _, group) in table.items() if group == pid} | {pid}
    grew = True
    while grew:
        children = {p for p, (_, parent, _) in table.items() if parent in tree}
        grew = not children <= tree
        tree |= children
    return {p for p in tree if p in table and table[p][0] not in ("Z", "X")}


@dataclass(frozen=True)
class Launch:
    """How to start a service: its argv, extra environment and the user to run as."""

    argv: Sequence[str]
    env: Mapping[str, str]
    user: str | None = None
    cwd: Path | None = None


@dataclass(frozen=True)
class ManagedProcess:
    """One service process, its pid file and its log under `run_dir`."""

    name: str
    run_dir: Path
    stop_signal: signal.Signals = signal.SIGTERM

    @property
    def pid_path(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_path(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid of our running process, clearing a stale pid file."""
        try:
            pid, started = (int(field) for field in self.pid_path.read_text().split())
        except (FileNotFoundError, ValueError):
            return None
        if _start_ticks(pid) == started and process_tree(pid):
            return pid
        self.pid_path.unlink(missing_ok=True)
        return None

    def state(self) -> str:
        """ "running", "frozen" (SIGSTOP), "dead" (its pid file outlived it) or "absent".

        Unlike pid(), this keeps a stale pid file: a crash stays visible until a restart.
        """
        try:
            pid, started = (int(field) for field in self.pid_path.read_text().split())
        except (FileNotFoundError, ValueError):
            return "absent"
        if _start_ticks(pid) != started or not is_alive(pid):
            return "dead"
        return "frozen" if _state(pid) == "T" else "running"

    def spawn(self, launch: Launch) -> int:
        """Start the process in a new session (its pid is its process group id)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.name}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                list(launch.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **launch.env},
                cwd=launch.cwd,
                user=launch.user,
                start_new_session=True,
            )
        self.pid_path.write_text(f"{proc.pid} {_start_ticks(proc.pid)}\n")
        return proc.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the daemon and everything it started: the stop signal to its group, then
        SIGKILL to whatever of its tree is left after the timeout.

        Returns False when there was nothing of ours running.
        """
        pid = self.pid()
        if pid is None:
            return False
        tree = process_tree(pid)  # before the signal: orphans lose their link to the parent
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, self.stop_signal)
        deadline = time.monotonic() + timeout_s
        while _alive(tree) and time.monotonic() < deadline:
            time.sleep(0.2)
        for leftover in _alive(tree | process_tree(pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover, signal.SIGKILL)
        while _alive(tree) and time.monotonic() < deadline + 10:
            time.sleep(0.1)
        self.pid_path.unlink(missing_ok=True)
        return True


def _alive(pids: set[int]) -> set[int]:
    return {p for p in pids if is_alive(p)}
