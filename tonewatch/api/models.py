"""The models: every version in the Triton repository, its metrics, and which one serves.

Models are shared by all tenants (one served model), so any `read` key may list them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx
from fastapi import APIRouter, Request
from pydantic import BaseModel

from tonewatch.api.auth import Reader
from tonewatch.api.state import api_state
from tonewatch.config import Settings

# No import of inference/ here: it loads torch, which would slow every API start by ~15 s.
router = APIRouter(prefix="/v1", tags=["models"])
TRITON_TIMEOUT_S: Final = 2.0
SUMMARY_METRICS: Final = ("sentiment_macro_f1", "sentiment_accuracy", "risk_macro_f1")


class ModelVersion(BaseModel):
    version: str
    status: str  # serving or available
    created_at: datetime
    source: str | None  # the trained version it was exported from
    metrics: dict[str, dict[str, float | None]]


class Models(BaseModel):
    name: str
    serving: str | None
    triton_reachable: bool
    versions: list[ModelVersion]


@router.get("/models")
async def list_models(caller: Reader, request: Request) -> Models:
    settings = api_state(request).settings
    serving = await _serving_versions(settings)
    folder = settings.model_repository / settings.triton_model_name
    numbered = sorted((int(p.name) for p in folder.glob("*") if p.name.isdigit()), reverse=True)
    listed = [_version(settings, folder / str(v), serving or set()) for v in numbered]
    newest_serving = max(serving, key=int) if serving else None
    return Models(
        name=settings.triton_model_name,
        serving=newest_serving,
        triton_reachable=serving is not None,
        versions=listed,
    )


def _version(settings: Settings, folder: Path, serving: set[str]) -> ModelVersion:
    source = _read_json(folder / "serving.json").get("source")
    metrics = _read_json(settings.trained_models / source / "metrics.json") if source else {}
    return ModelVersion(
        version=folder.name,
        status="serving" if folder.name in serving else "available",
        created_at=datetime.fromtimestamp(folder.stat().st_mtime, UTC),
        source=source,
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
