"""The model registry (`model_versions`) and the retrain rounds (`retrain_runs`).

A model version is a `candidate` (exported, not served), the `champion` (served), `retired`
(a former champion) or `rejected` (failed the gate; usually without a Triton version).
Status changes of one model take a transaction-scoped advisory lock, so two processes
promoting at once still leave exactly one champion. The registry follows Triton: callers
switch serving first (inference.serving) and record it here after.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, get_args

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.db import connection_errors
from storage.exceptions import StorageError
from storage.tables import ModelVersionRow, RetrainRunRow

Status = Literal["candidate", "champion", "retired", "rejected"]
STATUSES: Final[tuple[Status, ...]] = get_args(Status)
ROLLED_BACK: Final = "rolled back"
ADOPTED: Final = "served before the registry existed"
ABANDONED: Final = "abandoned: the worker stopped mid-round"


class UnknownVersion(StorageError):
    """The registry has no such version of the model."""


@dataclass(frozen=True)
class ModelVersion:
    id: int
    model_name: str
    version: int | None
    trained_id: str
    status: str
    metrics: dict[str, Any]
    reason: str | None
    run_id: int | None
    created_at: datetime
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "trained_id": self.trained_id,
            "status": self.status,
            "reason": self.reason,
            "metrics": self.metrics,
            "run_id": self.run_id,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True)
class RetrainRun:
    id: int
    trigger: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    labels_used: int
    summary: dict[str, Any]
    report_dir: str | None
    error: str | None


def _version(row: Any) -> ModelVersion:
    m = row._mapping
    return ModelVersion(
        m["id"], m["model_name"], m["version"], m["trained_id"], m["status"], m["metrics"],
        m["reason"], m["run_id"], m["created_at"], m["updated_at"],
    )  # fmt: skip


def _run(row: Any) -> RetrainRun:
    m = row._mapping
    return RetrainRun(
        m["id"], m["trigger"], m["status"], m["started_at"], m["finished_at"],
        m["labels_used"], m["summary"], m["report_dir"], m["error"],
    )  # fmt: skip


def _model_lock(model_name: str) -> int:
    """The key of a model's registry lock (a Postgres advisory lock takes a signed int64)."""
    digest = hashlib.sha256(f"tonewatch:model-registry:{model_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def _lock(conn: AsyncConnection, model_name: str) -> None:
    await conn.execute(select(func.pg_advisory_xact_lock(_model_lock(model_name))))


_VERSIONS = select(ModelVersionRow.__table__)


async def record_candidate(
    engine: AsyncEngine,
    model_name: str,
    trained_id: str,
    metrics: dict[str, Any],
    run_id: int | None = None,
    *,
    version: int | None = None,
    status: Literal["candidate", "rejected"] = "candidate",
    reason: str | None = None,
) -> ModelVersion:
    """Record a trained model: a candidate (with its Triton version, once exported) or a
    rejected challenger. Champions are made by `promote`.

    Recording the same (model, version) again replaces the row: the folder under that
    number is what Triton would load now.
    """
    if status not in ("candidate", "rejected"):
        raise ValueError(f"record a candidate or a rejected challenger, not {status!r}")
    values = {
        "model_name": model_name, "version": version, "trained_id": trained_id,
        "status": status, "metrics": metrics, "reason": reason, "run_id": run_id,
    }  # fmt: skip
    statement = insert(ModelVersionRow).values(**values)
    if version is not None:
        statement = statement.on_conflict_do_update(
            index_elements=["model_name", "version"],
            set_={**{k: statement.excluded[k] for k in values}, "updated_at": func.now()},
        )
    with connection_errors():
        async with engine.begin() as conn:
            await _lock(conn, model_name)
            row = (await conn.execute(statement.returning(ModelVersionRow.__table__))).one()
    return _version(row)


async def set_status(
    engine: AsyncEngine, model_name: str, version: int, status: Status, reason: str | None = None
) -> ModelVersion:
    """Change a version's status (UnknownVersion if the registry lacks it). Champions are
    made by `promote`, which retires the one before in the same transaction."""
    if status not in STATUSES or status == "champion":
        raise ValueError(f"set_status takes {STATUSES[:1] + STATUSES[2:]}, not {status!r}")
    query = (
        update(ModelVersionRow)
        .where(ModelVersionRow.model_name == model_name, ModelVersionRow.version == version)
        .values(status=status, reason=reason, updated_at=func.now())
        .returning(ModelVersionRow.__table__)
    )
    with connection_errors():
        async with engine.begin() as conn:
            await _lock(conn, model_name)
            row = (await conn.execute(query)).first()
    if row is None:
        raise UnknownVersion(f"the registry has no version {version} of {model_name}")
    return _version(row)


async def promote(
    engine: AsyncEngine,
    model_name: str,
    version: int,
    *,
    retire_reason: str | None = None,
    reason: str | None = None,
) -> ModelVersion:
    """Make `version` the champion and retire the champion before it, in one transaction.

    `retire_reason` is recorded on the retired one (default: "replaced by version N"),
    `reason` on the new champion. Returns the new champion.
    """
    query = (
        update(ModelVersionRow)
        .where(ModelVersionRow.model_name == model_name, ModelVersionRow.version == version)
        .values(status="champion", reason=reason, updated_at=func.now())
        .returning(ModelVersionRow.__table__)
    )
    with connection_errors():
        async with engine.begin() as conn:
            await _lock(conn, model_name)
            await _retire_champions(
                conn, model_name, retire_reason or f"replaced by version {version}", version
            )
            row = (await conn.execute(query)).first()
            if row is None:
                # Raising rolls the retirement back: the old champion stays the champion.
                raise UnknownVersion(f"the registry has no version {version} of {model_name}")
    return _version(row)


async def _retire_champions(
    conn: AsyncConnection, model_name: str, reason: str, keep: int | None = None
) -> None:
    query = (
        update(ModelVersionRow)
        .where(ModelVersionRow.model_name == model_name, ModelVersionRow.status == "champion")
        .values(status="retired", reason=reason, updated_at=func.now())
    )
    if keep is not None:
        query = query.where(ModelVersionRow.version.is_distinct_from(keep))
    await conn.execute(query)


async def _one(engine: AsyncEngine, query: Any) -> ModelVersion | None:
    with connection_errors():
        async with engine.connect() as conn:
            row = (await conn.execute(query)).first()
    return None if row is None else _version(row)


async def champion(engine: AsyncEngine, model_name: str) -> ModelVersion | None:
    """The version that should be serving, or None before any was promoted or adopted."""
    return await _one(
        engine,
        _VERSIONS.where(
            ModelVersionRow.model_name == model_name, ModelVersionRow.status == "champion"
        ).order_by(ModelVersionRow.updated_at.desc(), ModelVersionRow.id.desc()),
    )


async def previous_champion(engine: AsyncEngine, model_name: str) -> ModelVersion | None:
    """The most recently retired champion that was not rolled back: where a rollback goes.

    Rolled-back versions are left out, so that rolling back twice goes two champions back
    rather than returning to the version just rolled back.
    """
    return await _one(
        engine,
        _VERSIONS.where(
            ModelVersionRow.model_name == model_name,
            ModelVersionRow.status == "retired",
            ModelVersionRow.version.is_not(None),
            ModelVersionRow.reason.is_distinct_from(ROLLED_BACK),
        ).order_by(ModelVersionRow.updated_at.desc(), ModelVersionRow.id.desc()),
    )


async def get(engine: AsyncEngine, model_name: str, version: int) -> ModelVersion | None:
    return await _one(
        engine,
        _VERSIONS.where(
            ModelVersionRow.model_name == model_name, ModelVersionRow.version == version
        ),
    )


async def history(engine: AsyncEngine, model_name: str, limit: int = 100) -> list[ModelVersion]:
    """The model's versions and rejected challengers, newest first."""
    query = (
        _VERSIONS.where(ModelVersionRow.model_name == model_name)
        .order_by(ModelVersionRow.created_at.desc(), ModelVersionRow.id.desc())
        .limit(limit)
    )
    with connection_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
    return [_version(row) for row in rows]


async def adopt_existing(
    engine: AsyncEngine, model_name: str, version: int, trained_id: str, metrics: dict[str, Any]
) -> ModelVersion:
    """Make a version served before the registry existed its champion, if it has none yet.

    Returns the champion: the adopted version, or the one already recorded (a no-op then).
    """
    values = {
        "model_name": model_name, "version": version, "trained_id": trained_id,
        "status": "champion", "metrics": metrics, "reason": ADOPTED,
    }  # fmt: skip
    upsert = (
        insert(ModelVersionRow)
        .values(**values)
        .on_conflict_do_update(
            index_elements=["model_name", "version"],
            set_={"status": "champion", "reason": ADOPTED, "updated_at": func.now()},
        )
        .returning(ModelVersionRow.__table__)
    )
    current = _VERSIONS.where(
        ModelVersionRow.model_name == model_name, ModelVersionRow.status == "champion"
    )
    with connection_errors():
        async with engine.begin() as conn:
            await _lock(conn, model_name)
            found = (await conn.execute(current)).first()
            row = found if found is not None else (await conn.execute(upsert)).one()
    return _version(row)


async def start_run(engine: AsyncEngine, trigger: str) -> int:
    """Record a retrain round as running; returns its id."""
    query = (
        insert(RetrainRunRow)
        .values(trigger=trigger, status="running", summary={})
        .returning(RetrainRunRow.id)
    )
    with connection_errors():
        async with engine.begin() as conn:
            return int((await conn.execute(query)).scalar_one())


async def finish_run(
    engine: AsyncEngine,
    run_id: int,
    status: str,
    *,
    summary: dict[str, Any],
    report_dir: str | None = None,
    labels_used: int = 0,
    error: str | None = None,
) -> None:
    """Record how a round ended: promoted, rejected, failed or skipped."""
    query = (
        update(RetrainRunRow)
        .where(RetrainRunRow.id == run_id)
        .values(
            status=status,
            summary=summary,
            report_dir=report_dir,
            labels_used=labels_used,
            error=error,
            finished_at=func.now(),
        )
    )
    with connection_errors():
        async with engine.begin() as conn:
            await conn.execute(query)


async def abandon_running(engine: AsyncEngine) -> int:
    """Mark rounds still `running` as failed: call it holding the round lock, when any such
    run was left by a worker that died mid-round. Returns how many there were."""
    query = (
        update(RetrainRunRow)
        .where(RetrainRunRow.status == "running")
        .values(
            status="failed",
            error=ABANDONED,
            finished_at=func.now(),
        )
    )
    with connection_errors():
        async with engine.begin() as conn:
            return (await conn.execute(query)).rowcount


async def last_run_started(engine: AsyncEngine) -> datetime | None:
    """When the newest retrain round that came to an end started (None: never). A round
    left `running` or abandoned by a dead worker does not count: its labels are still new."""
    ended = (RetrainRunRow.status.in_(("promoted", "rejected"))) | (
        (RetrainRunRow.status == "failed") & (RetrainRunRow.error != ABANDONED)
    )
    query = select(func.max(RetrainRunRow.started_at)).where(ended)
    with connection_errors():
        async with engine.connect() as conn:
            return (await conn.execute(query)).scalar()


async def recent_runs(engine: AsyncEngine, limit: int = 20) -> list[RetrainRun]:
    """Retrain rounds, newest first."""
    query = (
        select(RetrainRunRow.__table__)
        .order_by(RetrainRunRow.started_at.desc(), RetrainRunRow.id.desc())
        .limit(limit)
    )
    with connection_errors():
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).all()
    return [_run(row) for row in rows]
