"""``/api/v1/datasets``: dataset versions (read only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder

from modelyard.api.auth import ProjectDep, Reader
from modelyard.api.params import Name, VersionNumber

router = APIRouter(prefix="/api/v1/datasets", tags=["datasets"])


@router.get("")
def list_dataset_versions(project: ProjectDep, who: Reader) -> dict[str, Any]:
    """Every version of every dataset, by name then version."""
    from modelyard.data.datasets import list_datasets

    return {"datasets": jsonable_encoder(list_datasets(project))}


@router.get("/{name}/versions/{version}")
def get_dataset_version(
    project: ProjectDep, who: Reader, name: Name, version: VersionNumber
) -> dict[str, Any]:
    """One dataset version: its schema, size, lineage parents and source."""
    from modelyard.data.datasets import get_version

    encoded: dict[str, Any] = jsonable_encoder(get_version(project, f"{name}@{version}"))
    return encoded
