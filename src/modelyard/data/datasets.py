"""Datasets and their versions, stored content-addressed as Parquet, with lineage.

    v1 = add_dataset(project, "loans", "loans.csv")                 # loans@1 (raw)
    v2 = add_dataset(project, "loans", clean_frame, kind="clean",
                     parents=["loans@1"], transformation={"step": "dedupe"})
    info, frame = load_dataset(project, "loans@2")
    for batch in iter_batches(project, "loans@2", batch_rows=50_000): ...
    tree = lineage(project, "loans@1")      # parents, children, runs, and their models

**Same content, same version.** A version's ``content_hash`` is the sha256 of
a canonical JSON document holding

- ``data``: the sha256 of the source file's bytes as they are on disk (CSV,
  compressed CSV or Parquet); for a DataFrame or Arrow table, the sha256 of
  its Arrow IPC serialisation in fixed slices of 65,536 rows (values and
  types; schema metadata ignored);
- ``read``: how a CSV file was read (delimiter, encoding), which changes its rows;
- ``kind``, ``transformation`` and the sorted ids of the ``parents``.

So registering the same file twice returns the same version, one changed byte
makes a new one, and a ``clean`` version whose rows equal its raw parent's is
still a version of its own (its kind and transformation differ). Versions
are numbered per name, 1, 2, 3 ...; the database's unique
``(dataset, content_hash)`` keeps this true under concurrent writers.

**Whole or not at all.** The source is converted chunk by chunk to a
temporary Parquet file (see ``modelyard.data.ingest``; bounded memory), the
file is stored as a blob named by its own sha256, and one transaction then
adds the version row and its lineage edges. A failure or a kill at any point
leaves no version behind (at worst an unreferenced blob, or a temporary
folder under ``.modelyard/tmp``).

The schema is inferred while reading (``modelyard.data.schema``), with roles
from the spec; ``set_schema`` replaces it with an edited one and records who
and when. The schema is metadata: editing it does not change the version.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import Session

from modelyard.data.ingest import (
    DEFAULT_BLOCK_SIZE,
    CsvOptions,
    Progress,
    Source,
    Staged,
    read_batches,
    stage,
)
from modelyard.data.schema import Schema, roles_from_spec
from modelyard.errors import DataError, InvalidInputError, NotFoundError
from modelyard.project import STATE_FOLDER, Project
from modelyard.store import get_or_create, new_id, next_version, tables, utcnow

KINDS = tables.DATASET_KINDS
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
_ULID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")


@dataclass(frozen=True)
class DatasetVersion:
    """One immutable version of a named data set."""

    id: str
    name: str
    version: int
    kind: str
    content_hash: str
    n_rows: int
    n_columns: int
    created_at: datetime
    schema: Schema
    blob: str
    parents: tuple[str, ...] = ()
    transformation: dict[str, Any] | None = None
    source: dict[str, Any] | None = None
    created_by: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class RunUse:
    """A run that read a dataset version, in which role, and the model versions it made."""

    run_id: str
    name: str
    status: str
    role: str
    models: tuple[str, ...] = ()


@dataclass(frozen=True)
class Lineage:
    """A version with the versions it came from, those made from it, and the runs using it.

    The root has both ``parents`` and ``children``; a node above it only
    ``parents`` (its own ancestors), a node below it only ``children``.
    """

    version: DatasetVersion
    parents: tuple[Lineage, ...] = ()
    children: tuple[Lineage, ...] = ()
    runs: tuple[RunUse, ...] = ()


def add_dataset(
    project: Project,
    name: str,
    data: Source,
    *,
    kind: str = "raw",
    parents: Sequence[str] = (),
    transformation: dict[str, Any] | None = None,
    delimiter: str | None = None,
    encoding: str = "utf-8",
    block_size: int = DEFAULT_BLOCK_SIZE,
    progress: Progress | None = None,
    created_by: str = "local",
) -> DatasetVersion:
    """Register ``data`` (a CSV / Parquet path, a DataFrame or an Arrow table) under ``name``.

    ``parents`` are ``NAME@V`` refs or version ids; ``transformation`` is any
    JSON object describing how this version was made from them. Returns the
    existing version when the same content was registered before.
    """
    _check_name(name)
    if kind not in KINDS:
        raise InvalidInputError(f"Dataset kind must be one of {', '.join(KINDS)}; got {kind!r}.")
    _check_transformation(transformation)
    parent_ids = _resolve_parents(project, parents)
    options = CsvOptions(delimiter, encoding, block_size)
    folder = project.root / STATE_FOLDER / "tmp"
    with stage(data, folder=folder, options=options, progress=progress) as staged:
        schema = staged.schema.with_roles(roles_from_spec(project.spec, staged.schema.names))
        digest = content_hash(staged, kind, transformation, parent_ids)
        existing = _find(project, name, digest)
        if existing is not None:
            return existing
        blob = project.artifacts.put_file(staged.path)
    row = tables.DatasetVersion(
        id=new_id(),
        kind=kind,
        content_hash=digest,
        blob=blob.digest,
        n_rows=staged.n_rows,
        n_columns=len(schema.columns),
        schema=schema.to_dict(),
        transformation=transformation,
        source=staged.source,
        created_by=created_by,
    )
    return _commit(project, name, row, parent_ids)


def content_hash(
    staged: Staged, kind: str, transformation: dict[str, Any] | None, parent_ids: Iterable[str]
) -> str:
    """The version identity described in the module docstring."""
    read = {k: staged.source[k] for k in ("delimiter", "encoding") if k in staged.source}
    document = {
        "data": staged.digest,
        "read": read,
        "kind": kind,
        "transformation": transformation,
        "parents": sorted(parent_ids),
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def get_version(project: Project, ref: str) -> DatasetVersion:
    """The version ``NAME`` (latest), ``NAME@V``, or a version id, stands for."""
    with project.db.read() as session:
        return _infos(session, [_row(session, project, ref)])[0]


def load_dataset(
    project: Project, ref: str, columns: Sequence[str] | None = None
) -> tuple[DatasetVersion, pd.DataFrame]:
    """A version and all its rows as a DataFrame (``iter_batches`` reads in bounded memory)."""
    info = get_version(project, ref)
    _check_columns(info, columns)
    path = project.artifacts.local_path(info.blob)
    return info, pq.read_table(path, columns=columns).to_pandas()


def iter_batches(
    project: Project, ref: str, batch_rows: int = 65_536, columns: Sequence[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """The version's rows as Arrow record batches of at most ``batch_rows`` rows."""
    if batch_rows < 1:
        raise InvalidInputError(f"batch_rows must be at least 1; got {batch_rows}.")
    info = get_version(project, ref)
    _check_columns(info, columns)
    return read_batches(project.artifacts.local_path(info.blob), batch_rows, columns)


def list_datasets(project: Project) -> list[DatasetVersion]:
    """Every version of every dataset in the project, by name then version."""
    with project.db.read() as session:
        rows = session.execute(
            select(tables.Dataset.name, tables.DatasetVersion)
            .join(tables.Dataset)
            .where(tables.Dataset.project_id == project.id)
            .order_by(tables.Dataset.name, tables.DatasetVersion.version)
        ).all()
        return _infos(session, [(name, row) for name, row in rows])


def set_schema(
    project: Project, ref: str, schema: Schema, *, edited_by: str = "local"
) -> DatasetVersion:
    """Store an edited schema for a version; it must name exactly the version's columns."""
    with project.db.write() as session:
        name, row = _row(session, project, ref)
        current = Schema.from_dict(row.schema, f"{name}@{row.version}")
        missing = [c for c in current.names if c not in schema]
        extra = [c for c in schema.names if c not in current]
        if missing or extra:
            raise DataError(
                f"The edited schema does not match {name}@{row.version}: "
                f"missing {missing or 'none'}, not in the data {extra or 'none'}. A schema "
                "describes the version's own columns; to check other data, use "
                "`modelyard data validate ... --schema FILE` instead."
            )
        ordered = tuple(schema.column(c) for c in current.names)
        stamped = Schema(ordered, edited_by, utcnow().isoformat())
        row.schema = stamped.to_dict()
        return _infos(session, [(name, row)])[0]


def lineage(project: Project, ref: str) -> Lineage:
    """The version's ancestors and descendants, the runs that read each, and their models."""
    with project.db.read() as session:
        _, root = _row(session, project, ref)
        up, down = _edges(session, project)
        ids = {root.id} | _reach(root.id, up) | _reach(root.id, down)
        rows = session.execute(
            select(tables.Dataset.name, tables.DatasetVersion)
            .join(tables.Dataset)
            .where(tables.DatasetVersion.id.in_(ids))
        ).all()
        versions = {v.id: v for v in _infos(session, [(n, r) for n, r in rows])}
        runs = _runs(session, ids)

    def node(version_id: str, direction: str) -> Lineage:
        edges = up if direction == "up" else down
        related = tuple(node(v, direction) for v in sorted(edges[version_id]))
        runs_here = tuple(runs[version_id])
        if direction == "up":
            return Lineage(versions[version_id], parents=related, runs=runs_here)
        return Lineage(versions[version_id], children=related, runs=runs_here)

    return Lineage(
        versions[root.id],
        parents=node(root.id, "up").parents,
        children=node(root.id, "down").children,
        runs=tuple(runs[root.id]),
    )


def read_table(path: str | Path, *, delimiter: str | None = None) -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame, with errors that name the file."""
    with stage(path, options=CsvOptions(delimiter=delimiter)) as staged:
        return pq.read_table(staged.path).to_pandas()


# ---------------------------------------------------------------------- writing


def _commit(
    project: Project, name: str, row: tables.DatasetVersion, parent_ids: list[str]
) -> DatasetVersion:
    """One transaction: number the version, add it and its lineage edges (or find it)."""
    with project.db.write() as session:
        dataset = get_or_create(session, tables.Dataset, {"project_id": project.id, "name": name})
        number = next_version(
            session, dataset, tables.DatasetVersion.version, tables.DatasetVersion.dataset_id
        )
        existing = session.scalar(
            select(tables.DatasetVersion).where(
                tables.DatasetVersion.dataset_id == dataset.id,
                tables.DatasetVersion.content_hash == row.content_hash,
            )
        )
        if existing is not None:  # a concurrent writer registered the same content first
            return _infos(session, [(name, existing)])[0]
        row.dataset_id, row.version = dataset.id, number
        session.add(row)
        session.flush()
        session.add_all(
            tables.DatasetLineage(child_version_id=row.id, parent_version_id=p) for p in parent_ids
        )
        session.flush()
        return _infos(session, [(name, row)])[0]


def _find(project: Project, name: str, digest: str) -> DatasetVersion | None:
    with project.db.read() as session:
        row = session.scalar(
            select(tables.DatasetVersion)
            .join(tables.Dataset)
            .where(
                tables.Dataset.project_id == project.id,
                tables.Dataset.name == name,
                tables.DatasetVersion.content_hash == digest,
            )
        )
        return None if row is None else _infos(session, [(name, row)])[0]


def _resolve_parents(project: Project, parents: Sequence[str]) -> list[str]:
    if isinstance(parents, str):
        parents = [parents]
    with project.db.read() as session:
        ids = [_row(session, project, ref)[1].id for ref in parents]
    return sorted(set(ids))


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInputError(
            f"Dataset names are 1-200 letters, digits, '.', '_' or '-', starting with a letter "
            f"or digit (no '@', which separates the version); got {name!r}."
        )


def _check_transformation(transformation: Any) -> None:
    if transformation is None:
        return
    try:
        if not isinstance(transformation, dict):
            raise TypeError(f"got {type(transformation).__name__}")
        json.dumps(transformation, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"transformation must be a JSON object (a dict of strings, numbers, lists and "
            f"dicts) describing how the data was made: {exc}."
        ) from exc


# ---------------------------------------------------------------------- reading


def _row(session: Session, project: Project, ref: str) -> tuple[str, tables.DatasetVersion]:
    """The (dataset name, version row) that ``ref`` names within the project."""
    query = (
        select(tables.Dataset.name, tables.DatasetVersion)
        .join(tables.Dataset)
        .where(tables.Dataset.project_id == project.id)
    )
    if "@" not in ref and _ULID.fullmatch(ref):
        found = session.execute(query.where(tables.DatasetVersion.id == ref)).first()
        if found is not None:
            return found[0], found[1]
    name, _, number = ref.partition("@")
    query = query.where(tables.Dataset.name == name)
    if number:
        if not number.isdigit():
            raise InvalidInputError(
                f"A dataset version is a number, as in '{name}@2'; got {ref!r}."
            )
        query = query.where(tables.DatasetVersion.version == int(number))
    found = session.execute(query.order_by(tables.DatasetVersion.version.desc()).limit(1)).first()
    if found is None:
        raise NotFoundError(
            f"No dataset version '{ref}' in project '{project.name}'. "
            "See `modelyard data list` for what is registered."
        )
    return found[0], found[1]


def _infos(
    session: Session, rows: Sequence[tuple[str, tables.DatasetVersion]]
) -> list[DatasetVersion]:
    parents: dict[str, list[str]] = defaultdict(list)
    ids = [row.id for _, row in rows]
    for start in range(0, len(ids), 500):
        for child, name, number in session.execute(
            select(
                tables.DatasetLineage.child_version_id,
                tables.Dataset.name,
                tables.DatasetVersion.version,
            )
            .join(
                tables.DatasetVersion,
                tables.DatasetVersion.id == tables.DatasetLineage.parent_version_id,
            )
            .join(tables.Dataset)
            .where(tables.DatasetLineage.child_version_id.in_(ids[start : start + 500]))
            .order_by(tables.Dataset.name, tables.DatasetVersion.version)
        ):
            parents[child].append(f"{name}@{number}")
    return [_info(name, row, tuple(parents[row.id])) for name, row in rows]


def _info(name: str, row: tables.DatasetVersion, parents: tuple[str, ...]) -> DatasetVersion:
    return DatasetVersion(
        id=row.id,
        name=name,
        version=row.version,
        kind=row.kind,
        content_hash=row.content_hash,
        n_rows=row.n_rows,
        n_columns=row.n_columns,
        created_at=row.created_at,
        schema=Schema.from_dict(row.schema, f"the stored schema of {name}@{row.version}"),
        blob=row.blob,
        parents=parents,
        transformation=row.transformation,
        source=row.source,
        created_by=row.created_by,
    )


def _check_columns(info: DatasetVersion, columns: Sequence[str] | None) -> None:
    unknown = [c for c in columns or () if c not in info.schema]
    if unknown:
        raise DataError(
            f"{info.ref} has no column(s) {unknown}; its columns are {info.schema.names}."
        )


# ---------------------------------------------------------------------- lineage


def _edges(session: Session, project: Project) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """child → parents and parent → children, for the whole project."""
    up: dict[str, list[str]] = defaultdict(list)
    down: dict[str, list[str]] = defaultdict(list)
    child_row = tables.DatasetVersion.id == tables.DatasetLineage.child_version_id
    for child, parent in session.execute(
        select(tables.DatasetLineage.child_version_id, tables.DatasetLineage.parent_version_id)
        .join(tables.DatasetVersion, child_row)
        .join(tables.Dataset)
        .where(tables.Dataset.project_id == project.id)
    ):
        up[child].append(parent)
        down[parent].append(child)
    return up, down


def _reach(start: str, edges: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(edges[start])
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(edges[current])
    return seen


def _runs(session: Session, ids: set[str]) -> dict[str, list[RunUse]]:
    """For each version id, the runs that read it, with the model versions each produced."""
    uses = session.execute(
        select(
            tables.RunInput.dataset_version_id,
            tables.RunInput.role,
            tables.Run.id,
            tables.Run.name,
            tables.Run.status,
        )
        .join(tables.Run, tables.Run.id == tables.RunInput.run_id)
        .where(tables.RunInput.dataset_version_id.in_(ids))
        .order_by(tables.Run.started_at, tables.Run.id)
    ).all()
    models: dict[str | None, list[str]] = defaultdict(list)
    for run_id, model, number in session.execute(
        select(tables.ModelVersion.run_id, tables.RegisteredModel.name, tables.ModelVersion.version)
        .join(tables.RegisteredModel)
        .where(tables.ModelVersion.run_id.in_({u[2] for u in uses}))
        .order_by(tables.RegisteredModel.name, tables.ModelVersion.version)
    ):
        models[run_id].append(f"{model}@{number}")
    out: dict[str, list[RunUse]] = defaultdict(list)
    for version_id, role, run_id, name, status in uses:
        out[version_id].append(RunUse(run_id, name, status, role, tuple(models[run_id])))
    return out
