import signal
import sys
import time
from pathlib import Path

import pytest

from tonewatch.services.process import Launch, ManagedProcess, is_alive, process_tree

pytestmark = pytest.mark.unit


def test_stop_takes_down_the_whole_group(tmp_path: Path) -> None:
    proc = ManagedProcess("sleeper", tmp_path)
    # A parent that ignores SIGTERM, with a child: stop() must escalate and reach both.
    script = "trap '' TERM; sleep 60 & sleep 60"
    pid = proc.spawn(Launch(argv=["bash", "-c", script], env={}))
    deadline = time.monotonic() + 5
    while len(process_tree(pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(process_tree(pid)) >= 3  # bash + two sleeps
    assert proc.pid() == pid

    started = time.monotonic()
    assert proc.stop(timeout_s=1.0) is True
    assert time.monotonic() - started < 10
    assert process_tree(pid) == set()
    assert not proc.pid_path.exists()
    assert proc.stop() is False


def test_stale_pid_file_is_cleared(tmp_path: Path) -> None:
    proc = ManagedProcess("gone", tmp_path, signal.SIGINT)
    pid = proc.spawn(Launch(argv=[sys.executable, "-c", "pass"], env={}))
    deadline = time.monotonic() + 5
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.pid() is None
    assert not proc.pid_path.exists()


def test_log_keeps_output_and_tail_reads_it(tmp_path: Path) -> None:
    proc = ManagedProcess("talker", tmp_path)
    pid = proc.spawn(Launch(argv=["bash", "-c", "for i in 1 2 3; do echo line$i; done"], env={}))
    deadline = time.monotonic() + 5
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.log_tail(2).splitlines() == ["line2", "line3"]


def test_stop_reaches_children_that_left_the_group(tmp_path: Path) -> None:
    """Postgres backends call setsid(): killing the group alone would orphan them."""
    proc = ManagedProcess("escaper", tmp_path)
    pid = proc.spawn(Launch(argv=["bash", "-c", "setsid sleep 60 & wait"], env={}))
    deadline = time.monotonic() + 5
    while len(process_tree(pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    tree = process_tree(pid)
    assert len(tree) == 2
    proc.stop(timeout_s=2.0)
    assert not any(is_alive(p) for p in tree)


def test_a_reused_pid_is_not_mistaken_for_ours(tmp_path: Path) -> None:
    proc = ManagedProcess("impostor", tmp_path)
    proc.run_dir.mkdir(parents=True, exist_ok=True)
    proc.pid_path.write_text("1 12345\n")  # pid 1 exists, but did not start at that tick
    assert proc.pid() is None
    assert proc.stop() is False
