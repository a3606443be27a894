"""`tonewatch bench faults` runs the reliability tests and reports a row per id."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import run_cli

pytestmark = pytest.mark.integration


@pytest.mark.timeout(300)
def test_bench_faults_runs_the_chosen_ids_and_reports_them() -> None:
    result = run_cli("bench", "faults", "--json", "--only", "S3")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(result.stdout)
    rows = {row["id"]: row for row in report["tests"]}
    assert list(rows) == ["S3"]
    assert rows["S3"]["passed"]
    assert rows["S3"]["tests"] == [
        "tests/integration/test_api_tenancy.py::test_a_tenant_sees_and_touches_nothing_of_another",
        "tests/integration/test_api_tenancy.py::test_secrets_are_shown_once_and_revoked_keys_fail_everywhere",
    ]
    assert report["suite_seconds"] > 0


def test_bench_faults_refuses_unknown_ids() -> None:
    result = run_cli("bench", "faults", "--only", "F9")
    assert result.returncode == 2
    assert "unknown id(s): F9" in result.stderr
