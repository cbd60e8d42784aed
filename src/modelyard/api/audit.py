"""``/api/v1/audit``: the audit log, newest first, and a check of its hash chain."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.encoders import jsonable_encoder

from modelyard.api.auth import ProjectDep, Reader

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("")
def audit_log(
    project: ProjectDep,
    who: Reader,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    object_id: Annotated[
        str | None,
        Query(
            alias="object",
            min_length=1,
            max_length=300,
            pattern=r"^[^\x00-\x1f\x7f]+$",
            description="Only events about MODEL, MODEL@V or MODEL@alias.",
        ),
    ] = None,
) -> dict[str, Any]:
    """The newest ``limit`` audit entries: who did what to which object, and when."""
    from modelyard.registry.audit import events

    return {"events": jsonable_encoder(events(project, object_id=object_id, limit=limit))}


@router.get("/verify")
def audit_verify(project: ProjectDep, who: Reader) -> dict[str, Any]:
    """Recompute the hash chain; the result names the first bad entry, if any."""
    from modelyard.registry.audit import verify

    return {"result": jsonable_encoder(verify(project))}
