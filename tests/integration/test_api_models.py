"""The models API: versions, rounds and the files of a round's report, and nothing else."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.api_harness import ApiServer, new_tenant
from tonewatch.config import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def report(settings: Settings) -> Iterator[str]:
    """A trained version's report folder, as a retrain round leaves it."""
    trained_id = f"selftest-{uuid.uuid4().hex[:8]}"
    folder = settings.trained_models / trained_id / "report"
    folder.mkdir(parents=True)
    (folder / "REPORT.md").write_text("# Retrain round 1: rejected\n")
    (folder / "comparison.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (folder / "secret.txt").write_text("not for the API")
    yield trained_id
    shutil.rmtree(folder.parent)


def test_models_list_and_report_files(api: ApiServer, settings: Settings, report: str) -> None:
    reader = new_tenant(settings, reader=("read",))["reader"]
    with api.client(reader) as client:
        models = client.get("/v1/models")
        assert models.status_code == 200
        assert {"serving", "versions", "rejected", "rounds"} <= set(models.json())
        md = client.get(f"/v1/models/reports/{report}/REPORT.md")
        assert md.status_code == 200
        assert md.text.startswith("# Retrain round 1")
        png = client.get(f"/v1/models/reports/{report}/comparison.png")
        assert png.headers["content-type"] == "image/png"
        for path in (
            f"/v1/models/reports/{report}/secret.txt",  # not a report file
            f"/v1/models/reports/{report}/..%2F..%2Fmetrics.json",
            "/v1/models/reports/..%2F..%2Fetc/passwd",
            "/v1/models/reports/nope/REPORT.md",
        ):
            assert client.get(path).status_code == 404, path
    with api.client() as anonymous:
        assert anonymous.get(f"/v1/models/reports/{report}/REPORT.md").status_code == 401
    assert Path(settings.trained_models / report / "report" / "secret.txt").exists()
