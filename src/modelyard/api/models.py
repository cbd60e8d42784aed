"""``/api/v1/models``: model versions, aliases, approvals, promotion and rollback.

Writes act as the token's user. The route only authenticates; the role
(``approve``, ``alias``, ``promote``) and the registry's rules (four eyes,
gates, approvals required) are checked by ``registry.promotion``, which
records every refusal in the audit log before answering 403 or 409.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field

from modelyard.api.auth import ProjectDep, Reader, caller
from modelyard.api.params import MAX_INT, Name, VersionNumber, VersionRef
from modelyard.registry.users import Identity

router = APIRouter(prefix="/api/v1/models", tags=["models"])

Caller = Annotated[Identity, Depends(caller)]
# Must hold a character other than ASCII white space (what the registry calls blank).
Text = Annotated[str, Field(min_length=1, max_length=10_000, pattern=r"[^ \t\n\r\x0b\x0c]")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AliasBody(_Body):
    version: Annotated[int, Field(ge=1, le=MAX_INT)]


class ApproveBody(_Body):
    comment: Text | None = None


class RejectBody(_Body):
    comment: Text


class PromoteBody(_Body):
    stage: Literal["staging", "production"] = "production"
    override_reason: Text | None = None


class RollbackBody(_Body):
    reason: Text


@router.get("")
def list_model_versions(project: ProjectDep, who: Reader) -> dict[str, Any]:
    """Every version of every registered model, by name then version."""
    from modelyard.registry.versions import list_models

    return {"models": jsonable_encoder(list_models(project))}


@router.get("/{name}/versions/{version}")
def get_model_version(
    project: ProjectDep, who: Reader, name: Name, version: VersionRef
) -> dict[str, Any]:
    """One version, by number or alias: metrics, gates, stage and aliases."""
    from modelyard.registry.versions import resolve

    return _encoded(resolve(project, f"{name}@{version}"))


@router.post("/{name}/aliases/{alias}")
def move_alias(
    project: ProjectDep,
    who: Caller,
    name: Name,
    alias: Annotated[str, Path(pattern=r"^[a-z][a-z0-9_-]{0,63}$", description="e.g. champion")],
    body: AliasBody,
) -> dict[str, Any]:
    """Point ``alias`` at ``version`` (not ``champion``: it moves only by promotion)."""
    from modelyard.registry.promotion import move_alias as move

    return _encoded(move(project, name, alias, body.version, user=who.user.name))


@router.post("/{name}/versions/{version}/approve")
def approve_version(
    project: ProjectDep, who: Caller, name: Name, version: VersionNumber, body: ApproveBody
) -> dict[str, Any]:
    """Approve the version as the token's user (never its author)."""
    from modelyard.registry.promotion import approve

    result = approve(project, f"{name}@{version}", user=who.user.name, comment=body.comment)
    return {"result": jsonable_encoder(result)}


@router.post("/{name}/versions/{version}/reject")
def reject_version(
    project: ProjectDep, who: Caller, name: Name, version: VersionNumber, body: RejectBody
) -> dict[str, Any]:
    """Reject the version as the token's user; a comment saying why is required."""
    from modelyard.registry.promotion import reject

    result = reject(project, f"{name}@{version}", user=who.user.name, comment=body.comment)
    return {"result": jsonable_encoder(result)}


@router.post("/{name}/versions/{version}/promote")
def promote_version(
    project: ProjectDep, who: Caller, name: Name, version: VersionNumber, body: PromoteBody
) -> dict[str, Any]:
    """Move the version to ``stage`` once its gates and approvals allow it."""
    from modelyard.registry.promotion import promote

    promoted = promote(
        project,
        f"{name}@{version}",
        body.stage,
        user=who.user.name,
        override_reason=body.override_reason,
    )
    return _encoded(promoted)


@router.post("/{name}/rollback")
def rollback_model(
    project: ProjectDep, who: Caller, name: Name, body: RollbackBody
) -> dict[str, Any]:
    """Put the previous production version back as the token's user; champion follows."""
    from modelyard.registry.promotion import rollback

    return _encoded(rollback(project, name, user=who.user.name, reason=body.reason))


def _encoded(value: Any) -> dict[str, Any]:
    encoded: dict[str, Any] = jsonable_encoder(value)
    return encoded
