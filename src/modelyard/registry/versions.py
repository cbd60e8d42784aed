"""Registered models and their versions, addressed as ``NAME``, ``NAME@3`` or ``NAME@alias``.

A version points at a model bundle's manifest digest and keeps the run that
made it, the spec hash it was judged by, its metrics and gate results. Version
numbers are allocated under a row lock on the model, so concurrent registrations
never collide; moving an alias is one transaction.

Registering a version and moving an alias each write an audit event
(``modelyard.registry.audit``) in the same transaction. ``set_alias`` is the
unguarded primitive; ``modelyard.registry.promotion`` checks roles and gates
on top of it (and is what the CLI and HTTP API call). ``model_lineage``
follows a version back to its run and dataset versions and forward to its
deployments.

A version trained here keeps its drift baseline (``baseline_digest``, the blob
that ``monitor.training_baseline`` fits on its training data): registering a
candidate stores it, before the one transaction that adds the version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from modelyard.errors import InvalidInputError, NotFoundError
from modelyard.project import Project
from modelyard.registry.audit import record
from modelyard.store import get_or_create, new_id, next_version, tables

if TYPE_CHECKING:
    from modelyard.train.trainer import CandidateResult

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
    baseline_digest: str | None = None

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
    baseline_digest: str | None = None,
) -> ModelVersion:
    """Add the next version of ``name`` (creating the model on first use).

    ``baseline_digest`` names its drift baseline's blob, already in the artifact store.
    """
    for alias in aliases:
        check_alias(alias)
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
            baseline_digest=baseline_digest,
            signature=signature,
            metrics=metrics,
            gates=gates,
            stage="none",
            created_by=created_by,
        )
        session.add(row)
        session.flush()
        record(
            session,
            actor=created_by,
            action="model.register",
            object_type="model_version",
            object_id=f"{name}@{number}",
            payload={
                "project": project.name,
                "digest": digest,
                "flavor": flavor,
                "run_id": run_id,
                "aliases": list(aliases),
            },
        )
        for alias in aliases:
            point_alias(session, model.id, alias, row.id, actor=created_by, project=project)
        return version_info(session, name, row)


def register_candidate(
    project: Project,
    name: str,
    candidate: CandidateResult,
    *,
    created_by: str = "local",
    aliases: tuple[str, ...] = (),
) -> ModelVersion:
    """Register a trained candidate (its bundle, run, signature, metrics and gates).

    Its drift baseline is fitted on the run's training data set and stored with it.
    """
    if candidate.bundle is None or candidate.digest is None:
        raise InvalidInputError(
            f"Candidate '{candidate.name}' failed to train (run {candidate.run_id}); "
            "only a trained candidate can be registered."
        )
    # The monitor sits above the registry: imported here, where registration needs its
    # baseline, rather than leaving every caller to fit and pass the baseline itself.
    from modelyard.monitor.training_baseline import store_training_baseline

    baseline_digest = store_training_baseline(project, candidate.bundle, candidate.run_id)
    return register_model(
        project,
        name,
        digest=candidate.digest,
        flavor=candidate.bundle.flavor,
        run_id=candidate.run_id,
        signature=candidate.bundle.encoder.to_dict(),
        metrics=candidate.metrics,
        gates=[g.to_dict() for g in candidate.gates],
        created_by=created_by,
        aliases=aliases,
        baseline_digest=baseline_digest,
    )


def set_alias(
    project: Project, name: str, alias: str, version: int, *, user: str = "local"
) -> ModelVersion:
    """Point ``alias`` at ``version`` of model ``name`` (moving it if it exists), audited.

    No role or gate is checked here: use ``promotion.move_alias`` on behalf of a user.
    """
    check_alias(alias)
    with project.db.write() as session:
        row = version_row(session, project, name, str(version))
        point_alias(session, row.model_id, alias, row.id, actor=user, project=project)
        return version_info(session, name, row)


def resolve(project: Project, ref: str) -> ModelVersion:
    """The version ``NAME`` (latest), ``NAME@V`` or ``NAME@alias`` stands for."""
    name, _, which = ref.partition("@")
    with project.db.read() as session:
        return version_info(session, name, version_row(session, project, name, which))


def record_evaluation(
    project: Project,
    ref: str,
    *,
    metrics: dict[str, Any],
    gates: list[dict[str, Any]],
    report_digest: str,
    data_ref: str,
) -> ModelVersion:
    """Store an evaluation's results on the version ``ref`` (best given as ``NAME@V``).

    ``metrics`` are merged over the stored ones (an evaluated value replaces
    the training-time one of the same name; others, such as ``fit_seconds``,
    stay). ``gates`` *replace* the stored gate results: promotion reads the
    latest evaluation. Each stored gate carries ``data`` (the dataset version
    it was measured on) and ``report`` (the sha256 of the evaluation's JSON
    report in the artifact store). One transaction; store the report blob first.
    """
    name, _, which = ref.partition("@")
    stored_gates = [{**gate, "data": data_ref, "report": report_digest} for gate in gates]
    with project.db.write() as session:
        row = version_row(session, project, name, which)
        row.metrics = {**(row.metrics or {}), **metrics}
        row.gates = stored_gates
        session.flush()
        return version_info(session, name, row)


def record_baseline(project: Project, ref: str, digest: str) -> ModelVersion:
    """Record the drift baseline's blob ``digest`` on a version registered without one."""
    name, _, which = ref.partition("@")
    with project.db.write() as session:
        row = version_row(session, project, name, which)
        row.baseline_digest = digest
        session.flush()
        return version_info(session, name, row)


def list_models(project: Project) -> list[ModelVersion]:
    with project.db.read() as session:
        rows = session.execute(
            select(tables.RegisteredModel.name, tables.ModelVersion)
            .join(tables.RegisteredModel)
            .where(tables.RegisteredModel.project_id == project.id)
            .order_by(tables.RegisteredModel.name, tables.ModelVersion.version)
        ).all()
        return [version_info(session, name, row) for name, row in rows]


@dataclass(frozen=True)
class ModelLineage:
    """Where a version came from and where it went.

    ``inputs`` are the dataset versions its run read (``dataset``, ``version``,
    ``role``, ``content_hash``); ``deployments`` the serving targets that run
    it (``name``, ``status``).
    """

    version: ModelVersion
    run: dict[str, Any] | None
    inputs: list[dict[str, Any]]
    deployments: list[dict[str, Any]]


def model_lineage(project: Project, ref: str) -> ModelLineage:
    """Dataset versions → run → the version ``ref`` → its deployments."""
    name, _, which = ref.partition("@")
    with project.db.read() as session:
        row = version_row(session, project, name, which)
        run = session.get(tables.Run, row.run_id) if row.run_id else None
        inputs = session.execute(
            select(tables.Dataset.name, tables.DatasetVersion, tables.RunInput.role)
            .join(tables.DatasetVersion, tables.DatasetVersion.dataset_id == tables.Dataset.id)
            .join(tables.RunInput, tables.RunInput.dataset_version_id == tables.DatasetVersion.id)
            .where(tables.RunInput.run_id == row.run_id)
            .order_by(tables.RunInput.role, tables.Dataset.name)
        ).all()
        deployments = session.scalars(
            select(tables.Deployment)
            .where(tables.Deployment.model_version_id == row.id)
            .order_by(tables.Deployment.name)
        ).all()
        return ModelLineage(
            version_info(session, name, row),
            None if run is None else {"id": run.id, "name": run.name, "status": run.status},
            [
                {"dataset": d, "version": v.version, "role": r, "content_hash": v.content_hash}
                for d, v, r in inputs
            ],
            [{"name": d.name, "status": d.status} for d in deployments],
        )


def version_row(session: Session, project: Project, name: str, which: str) -> tables.ModelVersion:
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


def point_alias(
    session: Session, model_id: str, alias: str, version_id: str, *, actor: str, project: Project
) -> None:
    """Point ``alias`` at ``version_id`` and audit the move (from which version, to which)."""
    current = session.get(tables.ModelAlias, (model_id, alias))
    before = None if current is None else current.model_version_id
    if current is None:
        session.add(tables.ModelAlias(model_id=model_id, alias=alias, model_version_id=version_id))
    else:
        current.model_version_id = version_id
    session.flush()
    name = session.get_one(tables.RegisteredModel, model_id).name
    record(
        session,
        actor=actor,
        action="alias.move",
        object_type="model_alias",
        object_id=f"{name}@{alias}",
        payload={
            "project": project.name,
            "from_version": None if before is None else _number(session, before),
            "to_version": _number(session, version_id),
        },
    )


def _number(session: Session, version_id: str) -> int:
    return session.get_one(tables.ModelVersion, version_id).version


def check_alias(alias: str) -> None:
    if alias.isdigit() or not ALIAS.match(alias):
        raise InvalidInputError(
            f"Alias {alias!r} is not valid: use lowercase letters, digits, "
            "'-' or '_', starting with a letter (e.g. 'champion')."
        )


def version_info(session: Session, name: str, row: tables.ModelVersion) -> ModelVersion:
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
        row.baseline_digest,
    )
