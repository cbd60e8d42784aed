"""Datasets and their versions, stored content-addressed as Parquet.

Registering the same content twice gives back the same version; new content
gets the next number for that name. The Parquet blob is written first and the
version row committed after it, so a version is never visible without its data.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select

from modelyard.errors import DataError, NotFoundError
from modelyard.project import Project
from modelyard.store import get_or_create, new_id, next_version, tables

KINDS = ("raw", "clean", "features")


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

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def add_dataset(
    project: Project,
    name: str,
    data: pd.DataFrame | str | Path,
    *,
    kind: str = "raw",
    parents: tuple[str, ...] = (),
    transformation: dict[str, Any] | None = None,
) -> DatasetVersion:
    """Register ``data`` (a frame, or a CSV / Parquet path) as a version of ``name``."""
    if kind not in KINDS:
        raise DataError(f"Dataset kind must be one of {KINDS}; got {kind!r}.")
    frame = data if isinstance(data, pd.DataFrame) else read_table(Path(data))
    blob = project.artifacts.put_bytes(_to_parquet(frame))
    with project.db.write() as session:
        dataset = get_or_create(session, tables.Dataset, {"project_id": project.id, "name": name})
        number = next_version(
            session, dataset, tables.DatasetVersion.version, tables.DatasetVersion.dataset_id
        )
        existing = session.scalar(
            select(tables.DatasetVersion).where(
                tables.DatasetVersion.dataset_id == dataset.id,
                tables.DatasetVersion.content_hash == blob.digest,
            )
        )
        if existing is not None:
            return _info(name, existing)
        row = tables.DatasetVersion(
            id=new_id(),
            dataset_id=dataset.id,
            version=number,
            kind=kind,
            content_hash=blob.digest,
            blob=blob.digest,
            n_rows=len(frame),
            n_columns=frame.shape[1],
            schema=_schema(frame),
            transformation=transformation,
        )
        session.add(row)
        session.flush()
        for parent in parents:
            session.add(tables.DatasetLineage(child_version_id=row.id, parent_version_id=parent))
        return _info(name, row)


def load_dataset(project: Project, ref: str) -> tuple[DatasetVersion, pd.DataFrame]:
    """The version named ``NAME`` (latest) or ``NAME@V``, and its rows."""
    info = get_version(project, ref)
    frame = pd.read_parquet(io.BytesIO(project.artifacts.get_bytes(info.content_hash)))
    return info, frame


def get_version(project: Project, ref: str) -> DatasetVersion:
    name, _, number = ref.partition("@")
    with project.db.read() as session:
        query = (
            select(tables.DatasetVersion)
            .join(tables.Dataset)
            .where(tables.Dataset.project_id == project.id, tables.Dataset.name == name)
        )
        if number:
            if not number.isdigit():
                raise DataError(f"Dataset version must be a number, as in '{name}@2'; got {ref!r}.")
            query = query.where(tables.DatasetVersion.version == int(number))
        row = session.scalar(query.order_by(tables.DatasetVersion.version.desc()).limit(1))
    if row is None:
        raise NotFoundError(
            f"No dataset version '{ref}' in project '{project.name}'. See `modelyard data list`."
        )
    return _info(name, row)


def list_datasets(project: Project) -> list[DatasetVersion]:
    with project.db.read() as session:
        rows = session.execute(
            select(tables.Dataset.name, tables.DatasetVersion)
            .join(tables.Dataset)
            .where(tables.Dataset.project_id == project.id)
            .order_by(tables.Dataset.name, tables.DatasetVersion.version)
        ).all()
    return [_info(name, row) for name, row in rows]


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file, with errors that name the file."""
    if not path.exists():
        raise DataError(f"No such file: {path}.")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if path.suffix.lower() in (".csv", ".txt", ".gz"):
            return pd.read_csv(path)
    except (ValueError, OSError) as exc:
        raise DataError(f"Cannot read {path}: {exc}") from exc
    raise DataError(f"Cannot read {path}: use a .csv or .parquet file.")


def _to_parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, compression="zstd")
    return buffer.getvalue()


def _schema(frame: pd.DataFrame) -> dict[str, Any]:
    return {
        "columns": [
            {"name": str(c), "dtype": str(frame[c].dtype), "nullable": bool(frame[c].isna().any())}
            for c in frame.columns
        ]
    }


def _info(name: str, row: tables.DatasetVersion) -> DatasetVersion:
    return DatasetVersion(
        row.id,
        name,
        row.version,
        row.kind,
        row.content_hash,
        row.n_rows,
        row.n_columns,
        row.created_at,
    )
