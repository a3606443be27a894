"""The models: every version in the Triton repository, its metrics, which one serves, its
status in the registry (champion, retired, candidate), the rejected challengers, the
retrain rounds, and each round's report (Markdown, JSON and PNGs).

Models are shared by all tenants (one served model), so any `read` key may list them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel

from storage import model_registry
from tonewatch.api.auth import Reader
from tonewatch.api.state import api_state
from tonewatch.config import Settings

# No import of inference/ here: it loads torch, which would slow every API start by ~15 s.
router = APIRouter(prefix="/v1", tags=["models"])
TRITON_TIMEOUT_S: Final = 2.0
SUMMARY_METRICS: Final = ("sentiment_macro_f1", "sentiment_accuracy", "risk_macro_f1")


# The files of a round's report that the API hands out, and nothing else.
REPORT_FILES: Final = {
    "REPORT.md": "text/markdown; charset=utf-8",
    "report.json": "application/json",
    "comparison.png": "image/png",
    "confusion.png": "image/png",
    "training_curve.png": "image/png",
}


class ModelVersion(BaseModel):
    version: str
    status: str  # the registry's (champion, retired, candidate), else "available"
    serving: bool
    created_at: datetime
    source: str | None  # the trained version it was exported from
    reason: str | None = None
    report: str | None = None  # URL of the report of the round that made it
    metrics: dict[str, dict[str, float | None]]


class Challenger(BaseModel):
    trained_id: str
    status: str
    reason: str | None
    run_id: int | None
    created_at: datetime
    report: str | None


class Round(BaseModel):
    id: int
    trigger: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    labels_used: int
    reasons: list[str]
    error: str | None
    report: str | None


class Models(BaseModel):
    name: str
    serving: str | None
    triton_reachable: bool
    versions: list[ModelVersion]
    rejected: list[Challenger]
    rounds: list[Round]


@router.get("/models")
async def list_models(caller: Reader, request: Request) -> Models:
    state = api_state(request)
    settings = state.settings
    serving = await _serving_versions(settings)
    history = await model_registry.history(state.engine, settings.triton_model_name)
    registered = {str(v.version): v for v in history if v.version is not None}
    folder = settings.model_repository / settings.triton_model_name
    numbered = sorted((int(p.name) for p in folder.glob("*") if p.name.isdigit()), reverse=True)
    listed = [
        _version(settings, folder / str(v), serving or set(), registered.get(str(v)))
        for v in numbered
    ]
    runs = await model_registry.recent_runs(state.engine)
    rejected = [_challenger(settings, v) for v in history if v.version is None]
    return Models(
        name=settings.triton_model_name,
        serving=max(serving, key=int) if serving else None,
        triton_reachable=serving is not None,
        versions=listed,
        rejected=rejected,
        rounds=[_round(settings, run) for run in runs],
    )


@router.get("/models/reports/{trained_id}/{file}")
async def report_file(trained_id: str, file: str, caller: Reader, request: Request) -> FileResponse:
    """A file of a retrain round's report: REPORT.md, report.json or one of its PNGs."""
    settings = api_state(request).settings
    folder = _report_dir(settings, trained_id)
    if folder is None or file not in REPORT_FILES or not (folder / file).is_file():
        raise HTTPException(404, "no such report file")
    return FileResponse(folder / file, media_type=REPORT_FILES[file])


def _report_dir(settings: Settings, trained_id: str) -> Path | None:
    """The report folder of a trained version, only if it lies inside the models folder."""
    root = settings.trained_models.resolve()
    folder = (root / trained_id / "report").resolve()
    return folder if folder.parent.parent == root and folder.is_dir() else None


def _report_url(settings: Settings, trained_id: str | None) -> str | None:
    if not trained_id or _report_dir(settings, trained_id) is None:
        return None
    return f"/v1/models/reports/{trained_id}/REPORT.md"


def _challenger(settings: Settings, v: model_registry.ModelVersion) -> Challenger:
    return Challenger(
        trained_id=v.trained_id, status=v.status, reason=v.reason, run_id=v.run_id,
        created_at=v.created_at, report=_report_url(settings, v.trained_id),
    )  # fmt: skip


def _round(settings: Settings, run: model_registry.RetrainRun) -> Round:
    decision = run.summary.get("decision")
    reasons = decision.get("reasons", []) if isinstance(decision, dict) else []
    trained_id = Path(run.report_dir).parent.name if run.report_dir else None
    return Round(
        id=run.id, trigger=run.trigger, status=run.status, started_at=run.started_at,
        finished_at=run.finished_at, labels_used=run.labels_used,
        reasons=[str(r) for r in reasons], error=run.error,
        report=_report_url(settings, trained_id),
    )  # fmt: skip


def _version(
    settings: Settings,
    folder: Path,
    serving: set[str],
    registered: model_registry.ModelVersion | None,
) -> ModelVersion:
    source = _read_json(folder / "serving.json").get("source")
    metrics = _read_json(settings.trained_models / source / "metrics.json") if source else {}
    return ModelVersion(
        version=folder.name,
        status=registered.status if registered else "available",
        serving=folder.name in serving,
        created_at=datetime.fromtimestamp(folder.stat().st_mtime, UTC),
        source=source,
        reason=registered.reason if registered else None,
        report=_report_url(settings, source),
        metrics={
            name: {k: figures.get(k) for k in SUMMARY_METRICS}
            for name, figures in sorted(metrics.items())
            if isinstance(figures, dict)
        },
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


async def _serving_versions(settings: Settings) -> set[str] | None:
    """The versions Triton has READY, or None when Triton does not answer."""
    try:
        async with httpx.AsyncClient(timeout=TRITON_TIMEOUT_S) as client:
            response = await client.post(f"{settings.triton_http_url}/v2/repository/index")
            response.raise_for_status()
    except httpx.HTTPError:
        return None
    return {
        str(m["version"])
        for m in response.json()
        if m.get("name") == settings.triton_model_name and m.get("state") == "READY"
    }
