"""`tonewatch bench faults` runs the reliability tests and reports a row per id."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import run_cli

pytestmark = pytest.mark.integration


@pytest.mark.timeout(300)
def test_bench_faults_runs_the_chosen_ids_and_reports_them() -> None:
    result = run_cli("bench", "faults", "--json", "--only", "S3", "--only", "B4")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(result.stdout)
    rows = {row["id"]: row for row in report["tests"]}
    assert list(rows) == ["S3", "B4"]
    assert all(row["passed"] for row in rows.values())
    assert len(rows["S3"]["tests"]) == 2
    assert any("test_a_re_sent_message" in test for test in rows["B4"]["tests"])
    assert report["suite_seconds"] > 0


def test_bench_faults_refuses_unknown_ids() -> None:
    result = run_cli("bench", "faults", "--only", "F9")
    assert result.returncode == 2
    assert "unknown id(s): F9" in result.stderr
