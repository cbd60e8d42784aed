"""``/api/v1/runs``: training runs (read only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.encoders import jsonable_encoder

from modelyard.api.auth import ProjectDep, Reader

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])


@router.get("")
def list_recent_runs(
    project: ProjectDep,
    who: Reader,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    kind: Annotated[str | None, Query(min_length=1, max_length=32, pattern=r"^[\w.-]+$")] = None,
) -> dict[str, Any]:
    """The newest runs first, optionally of one ``kind`` (train, search, …)."""
    from modelyard.train.runs import list_runs

    return {"runs": jsonable_encoder(list_runs(project, limit, kind=kind))}


@router.get("/{run_id}")
def get_one_run(
    project: ProjectDep,
    who: Reader,
    run_id: Annotated[str, Path(min_length=1, max_length=26, pattern=r"^[0-9A-Za-z]+$")],
) -> dict[str, Any]:
    """Everything a run recorded (an id prefix is enough when it is unambiguous)."""
    from modelyard.train.runs import get_run

    run = get_run(project, run_id)
    encoded: dict[str, Any] = jsonable_encoder(run)
    encoded["history"] = {
        key: [point._asdict() for point in points] for key, points in run.history.items()
    }
    return jsonable_encoder(encoded)  # type: ignore[no-any-return]
