"""Label-revision history, kept as dataset versions.

A revision is a new version of the same dataset: the parent's rows with some
labels changed. Its ``transformation`` JSON records what changed, who changed
it and why, and its lineage points at the parent version::

    {"label_revision": {"column": "default", "id_column": "loan_id",
                        "parent": "loans@1", "author": "ana", "source": "manual",
                        "changed": [{"id": "L0000042", "old": 0, "new": 1,
                                     "reason": "chargeback confirmed"}]}}

``label_history`` reads those records back, oldest first. Undoing a change is
itself a revision (its record differs, so it is a new version). Versions are
content-addressed, so repeating the very same revision of the same parent
makes nothing new and is refused, naming the version that already holds it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from modelyard.data.datasets import DatasetVersion, add_dataset, list_datasets, load_dataset
from modelyard.errors import ConflictError, DataError, InvalidInputError, NotFoundError
from modelyard.project import Project
from modelyard.store import tables

SOURCES = ("adjudication", "manual", "mislabel-review")
CHANGE_COLUMNS = ("id", "new_label", "reason")


@dataclass(frozen=True)
class LabelChange:
    """One label changed: the row's id, the old and new label, and why."""

    id: Any
    old: Any
    new: Any
    reason: str | None


@dataclass(frozen=True)
class LabelRevision:
    """One revision: the version it made, the version it revised, and its changes."""

    version: DatasetVersion
    parent: str | None
    column: str
    author: str
    source: str
    changes: tuple[LabelChange, ...]


def revise_labels(
    project: Project,
    ref: str,
    changes: pd.DataFrame,
    author: str,
    *,
    source: str = "manual",
    column: str | None = None,
    id_column: str | None = None,
) -> DatasetVersion:
    """Make a new version of dataset ``ref`` with the labels in ``changes`` replaced.

    ``changes`` has columns ``id`` (a value of ``id_column``, default the
    spec's id column, or the 0-based row number when there is none),
    ``new_label`` and ``reason``. ``column`` defaults to the spec's target.
    """
    _check_author_and_source(author, source)
    parent, frame = load_dataset(project, ref)
    column = column or project.spec.target
    if column not in frame.columns:
        raise DataError(
            f"Label column '{column}' is not in {parent.ref}; it has {list(frame.columns)}."
        )
    id_column = id_column if id_column is not None else project.spec.columns.id
    ids, positions = _positions(frame, id_column, _check_changes(changes), parent.ref)
    old = frame[column].iloc[positions].tolist()
    new = _coerce(changes["new_label"], frame[column], column)
    _refuse_unchanged(ids, old, new, column)
    revised = frame.copy()
    revised[column] = _replace(frame[column], positions, new)
    record = {
        "column": column,
        "id_column": id_column,
        "parent": parent.ref,
        "author": author,
        "source": source,
        "changed": [
            {"id": _json(i), "old": _json(o), "new": _json(n), "reason": _reason(r)}
            for i, o, n, r in zip(ids, old, new, changes["reason"], strict=True)
        ],
    }
    before = max(v.version for v in _versions(project, parent.name))
    version = add_dataset(
        project,
        parent.name,
        revised,
        kind=parent.kind,
        parents=(parent.id,),
        transformation={"label_revision": record},
    )
    if version.version <= before:
        raise ConflictError(
            f"Revising {parent.ref} this way gives the content of the existing version "
            f"{version.ref} (same sha256), so no new version was made. Use {version.ref}."
        )
    return version


def label_history(project: Project, name: str) -> list[LabelRevision]:
    """Every label revision of dataset ``name``, oldest first."""
    versions = {v.id: v for v in _versions(project, name)}
    if not versions:
        raise NotFoundError(
            f"No dataset '{name}' in project '{project.name}'. See `modelyard data list`."
        )
    with project.db.read() as session:
        records: dict[str, Any] = dict(
            session.execute(
                select(tables.DatasetVersion.id, tables.DatasetVersion.transformation).where(
                    tables.DatasetVersion.id.in_(list(versions))
                )
            ).all()
        )
        parents = _parents(session, list(versions))
    history = []
    for version_id, version in sorted(versions.items(), key=lambda kv: kv[1].version):
        record = (records.get(version_id) or {}).get("label_revision")
        if record is not None:
            history.append(_revision(version, parents.get(version_id), record))
    return history


def _versions(project: Project, name: str) -> list[DatasetVersion]:
    return [v for v in list_datasets(project) if v.name == name]


def _parents(session: Any, ids: list[str]) -> dict[str, str]:
    parent = tables.DatasetVersion
    rows = session.execute(
        select(tables.DatasetLineage.child_version_id, tables.Dataset.name, parent.version)
        .join(parent, parent.id == tables.DatasetLineage.parent_version_id)
        .join(tables.Dataset, tables.Dataset.id == parent.dataset_id)
        .where(tables.DatasetLineage.child_version_id.in_(ids))
    ).all()
    return {child: f"{name}@{number}" for child, name, number in rows}


def _revision(version: DatasetVersion, parent: str | None, record: dict[str, Any]) -> LabelRevision:
    changes = tuple(
        LabelChange(c.get("id"), c.get("old"), c.get("new"), c.get("reason"))
        for c in record.get("changed", [])
    )
    return LabelRevision(
        version=version,
        parent=parent or record.get("parent"),
        column=record.get("column", ""),
        author=record.get("author", ""),
        source=record.get("source", ""),
        changes=changes,
    )


def _check_author_and_source(author: str, source: str) -> None:
    if not isinstance(author, str) or not author.strip():
        raise InvalidInputError("A label revision needs an author: who is changing the labels.")
    if source not in SOURCES:
        raise InvalidInputError(f"Revision source must be one of {SOURCES}; got {source!r}.")


def _check_changes(changes: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(changes, pd.DataFrame):
        raise InvalidInputError(
            f"Changes must be a DataFrame with columns {list(CHANGE_COLUMNS)}; "
            f"got {type(changes).__name__}."
        )
    missing = [c for c in CHANGE_COLUMNS if c not in changes.columns]
    if missing:
        raise InvalidInputError(
            f"Changes are missing column(s) {missing}; expected {list(CHANGE_COLUMNS)} "
            f"(reason may be empty), got {list(changes.columns)}."
        )
    if changes.empty:
        raise InvalidInputError("No label changes given; nothing to revise.")
    duplicated = changes["id"][changes["id"].duplicated()].tolist()
    if duplicated:
        raise InvalidInputError(
            f"Row id(s) {duplicated[:5]} appear more than once in the changes; "
            "give each row one new label."
        )
    blank = changes["id"][changes["new_label"].isna()].tolist()
    if blank:
        raise InvalidInputError(
            f"Row id(s) {blank[:5]} have no new label; a revision cannot remove a label."
        )
    return changes


def _positions(
    frame: pd.DataFrame, id_column: str | None, changes: pd.DataFrame, ref: str
) -> tuple[list[Any], np.ndarray]:
    """The rows the changes address (their ids as stored in the data, and positions)."""
    if id_column is None:
        keys = pd.Index(range(len(frame)))
        where = "row numbers (the spec names no id column)"
    elif id_column not in frame.columns:
        raise DataError(f"Id column '{id_column}' is not in {ref}; it has {list(frame.columns)}.")
    else:
        keys = pd.Index(frame[id_column])
        where = f"'{id_column}'"
        if not keys.is_unique:
            repeated = keys[keys.duplicated()].unique().tolist()[:5]
            raise DataError(f"Ids in '{id_column}' of {ref} repeat (e.g. {repeated}).")
    positions = keys.get_indexer(_like(changes["id"], keys))
    unknown = changes["id"][positions < 0].tolist()
    if unknown:
        raise DataError(
            f"{len(unknown)} id(s) are not in {where} of {ref}: {unknown[:5]}. "
            "Check the ids and the dataset version.",
            details={"unknown_ids": [_json(i) for i in unknown]},
        )
    return [_json(i) for i in keys[positions]], positions


def _like(ids: pd.Series, keys: pd.Index) -> pd.Index:
    """``ids`` in the type of ``keys``: ids read from a CSV may be text for numbers or back."""
    if pd.api.types.is_numeric_dtype(keys.dtype) and not pd.api.types.is_bool_dtype(keys.dtype):
        return pd.Index(pd.to_numeric(ids, errors="coerce"))
    if len(keys) and all(isinstance(k, str) for k in keys[:1000]):
        return pd.Index([_text(v) for v in ids], dtype=object)
    return pd.Index(ids)


def _text(value: Any) -> Any:
    value = _json(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if value is None else str(value)


def _coerce(values: pd.Series, column: pd.Series, name: str) -> list[Any]:
    """The new labels as values of the label column's type, or a clear error."""
    dtype = column.dtype
    out: list[Any]
    if pd.api.types.is_bool_dtype(dtype):
        words = {"true": True, "false": False, "1": True, "0": False}
        out = [words.get(str(_json(v)).strip().lower()) for v in values]
    elif pd.api.types.is_numeric_dtype(dtype):
        numbers = pd.to_numeric(values, errors="coerce").astype(np.float64)
        whole = pd.api.types.is_integer_dtype(dtype)
        out = [
            None if math.isnan(x) or (whole and not x.is_integer()) else (int(x) if whole else x)
            for x in numbers
        ]
    else:
        texts = column.dropna().map(type).eq(str).all()
        out = [str(_json(v)) if texts else _json(v) for v in values]
    bad = [v for v, o in zip(values, out, strict=True) if o is None]
    if bad:
        raise DataError(
            f"New label(s) {bad[:5]} do not fit label column '{name}' ({dtype}). "
            "Use labels of the same type as the existing ones."
        )
    return out


def _refuse_unchanged(ids: list[Any], old: list[Any], new: list[Any], column: str) -> None:
    same = [i for i, o, n in zip(ids, old, new, strict=True) if _json(o) == n]
    if same:
        raise DataError(
            f"{len(same)} change(s) set '{column}' to the label it already has, e.g. id(s) "
            f"{same[:5]}. Remove them from the changes.",
            details={"unchanged_ids": [_json(i) for i in same]},
        )


def _replace(column: pd.Series, positions: Any, new: list[Any]) -> pd.Series:
    if isinstance(column.dtype, pd.CategoricalDtype):
        extra = [v for v in dict.fromkeys(new) if v not in column.cat.categories]
        column = column.cat.add_categories(extra)
    updated = column.copy()
    updated.iloc[positions] = new
    return updated


def _reason(value: Any) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _json(value: Any) -> Any:
    """A cell as a JSON-ready Python value."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
