"""Registered models and their versions, addressed as ``NAME``, ``NAME@3`` or ``NAME@alias``.

A version points at a model bundle's manifest digest and keeps the run that
made it, the spec hash it was judged by, its metrics and gate results. Version
numbers are allocated under a row lock on the model, so concurrent registrations
never collide; moving an alias is one transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelyard.errors import InvalidInputError, NotFoundError
from modelyard.project import Project
from modelyard.store import get_or_create, new_id, next_version, tables

ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model."""

    id: str
    name: str
    version: int
    digest: str
    flavor: str
    run_id: str | None
    stage: str
    aliases: tuple[str, ...]
    metrics: dict[str, Any]
    gates: list[dict[str, Any]]
    spec_hash: str | None
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def register_model(
    project: Project,
    name: str,
    *,
    digest: str,
    flavor: str,
    run_id: str | None,
    signature: dict[str, Any],
    metrics: dict[str, Any],
    gates: list[dict[str, Any]],
    created_by: str = "local",
    aliases: tuple[str, ...] = (),
) -> ModelVersion:
    """Add the next version of ``name`` (creating the model on first use)."""
    for alias in aliases:
        _check_alias(alias)
    with project.db.write() as session:
        model = get_or_create(
            session, tables.RegisteredModel, {"project_id": project.id, "name": name}
        )
        number = next_version(
            session, model, tables.ModelVersion.version, tables.ModelVersion.model_id
        )
        row = tables.ModelVersion(
            id=new_id(),
            model_id=model.id,
            version=number,
            run_id=run_id,
            spec_hash=project.spec_hash,
            flavor=flavor,
            digest=digest,
            signature=signature,
            metrics=metrics,
            gates=gates,
            stage="none",
            created_by=created_by,
        )
        session.add(row)
        session.flush()
        for alias in aliases:
            _point(session, model.id, alias, row.id)
        return _info(session, name, row)


def set_alias(project: Project, name: str, alias: str, version: int) -> ModelVersion:
    """Point ``alias`` at ``version`` of model ``name`` (moving it if it exists)."""
    _check_alias(alias)
    with project.db.write() as session:
        row = _version_row(session, project, name, str(version))
        _point(session, row.model_id, alias, row.id)
        return _info(session, name, row)


def resolve(project: Project, ref: str) -> ModelVersion:
    """The version ``NAME`` (latest), ``NAME@V`` or ``NAME@alias`` stands for."""
    name, _, which = ref.partition("@")
    with project.db.read() as session:
        return _info(session, name, _version_row(session, project, name, which))


def list_models(project: Project) -> list[ModelVersion]:
    with project.db.read() as session:
        rows = session.execute(
            select(tables.RegisteredModel.name, tables.ModelVersion)
            .join(tables.RegisteredModel)
            .where(tables.RegisteredModel.project_id == project.id)
            .order_by(tables.RegisteredModel.name, tables.ModelVersion.version)
        ).all()
        return [_info(session, name, row) for name, row in rows]


def _version_row(session: Session, project: Project, name: str, which: str) -> tables.ModelVersion:
    query = (
        select(tables.ModelVersion)
        .join(tables.RegisteredModel)
        .where(tables.RegisteredModel.project_id == project.id, tables.RegisteredModel.name == name)
    )
    if which.isdigit():
        query = query.where(tables.ModelVersion.version == int(which))
    elif which:
        query = query.join(
            tables.ModelAlias, tables.ModelAlias.model_version_id == tables.ModelVersion.id
        ).where(tables.ModelAlias.alias == which)
    row = session.scalar(query.order_by(tables.ModelVersion.version.desc()).limit(1))
    if row is None:
        what = f"'{name}@{which}'" if which else f"'{name}'"
        raise NotFoundError(
            f"No model version {what} in project '{project.name}'. See `modelyard models list`."
        )
    return row


def _point(session: Session, model_id: str, alias: str, version_id: str) -> None:
    current = session.get(tables.ModelAlias, (model_id, alias))
    if current is None:
        session.add(tables.ModelAlias(model_id=model_id, alias=alias, model_version_id=version_id))
    else:
        current.model_version_id = version_id


def _check_alias(alias: str) -> None:
    if alias.isdigit() or not ALIAS.match(alias):
        raise InvalidInputError(
            f"Alias {alias!r} is not valid: use lowercase letters, digits, "
            "'-' or '_', starting with a letter (e.g. 'champion')."
        )


def _info(session: Session, name: str, row: tables.ModelVersion) -> ModelVersion:
    aliases = tuple(
        session.scalars(
            select(tables.ModelAlias.alias)
            .where(tables.ModelAlias.model_version_id == row.id)
            .order_by(tables.ModelAlias.alias)
        )
    )
    return ModelVersion(
        row.id,
        name,
        row.version,
        row.digest,
        row.flavor,
        row.run_id,
        row.stage,
        aliases,
        row.metrics or {},
        row.gates or [],
        row.spec_hash,
        row.created_at,
    )
