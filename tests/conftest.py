"""Session fixtures: the real local services, started once when they are down."""

from __future__ import annotations

import json
import os
from collections.abc import Generator

import pytest

from tonewatch import services
from tonewatch.bench.faults import ONLY_ENV, REPORT_ENV
from tonewatch.config import Settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def running_services(settings: Settings) -> list[services.ServiceStatus]:
    """Start every service that is down. A service that cannot start fails the test run."""
    return services.up(settings)


# --- the reliability report (`tonewatch bench faults`) ------------------------------------
# A test marked `@pytest.mark.reliability("F3")` is the check of that RELIABILITY.md id. With
# TONEWATCH_RELIABILITY_REPORT set, each one appends a JSON line to that file: its ids, its
# verdict, its duration, and the figures it put in the `figures` fixture.

FIGURES = pytest.StashKey[dict[str, object]]()
VERDICTS = pytest.StashKey[list[pytest.TestReport]]()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> dict[str, object]:
    """The figures of a reliability test (ledger counts, timings), for its report row."""
    found: dict[str, object] = request.node.stash.setdefault(FIGURES, {})
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    marker = item.get_closest_marker("reliability")
    path = os.environ.get(REPORT_ENV)
    if marker is None or not path:
        return report
    reports = item.stash.setdefault(VERDICTS, [])
    reports.append(report)
    if report.when == "teardown":
        outcome = "failed" if any(r.failed for r in reports) else "passed"
        if outcome == "passed" and any(r.skipped for r in reports):
            outcome = "skipped"
        row = {
            "ids": list(marker.args), "test": item.nodeid, "outcome": outcome,
            "seconds": round(sum(r.duration for r in reports), 1),
            "figures": item.stash.get(FIGURES, {}),
        }  # fmt: skip
        with open(path, "a") as out:
            out.write(json.dumps(row, default=str) + "\n")
    return report


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With TONEWATCH_RELIABILITY_ONLY="F3,S1", reliability tests of other ids are left out."""
    only = {rid for rid in os.environ.get(ONLY_ENV, "").split(",") if rid}
    if not only:
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker("reliability")
        (keep if marker is None or only & set(marker.args) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
