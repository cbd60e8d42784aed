"""Where the prediction and feedback logs live, and reading them back.

    <predictions_root>/<model>/date=YYYY-MM-DD/<worker>-<seq>.parquet

``HEAD`` and ``OUTPUTS`` are the columns every prediction log has around the
model's inputs (see ``modelyard.monitor.predlog``); ``read_predictions`` reads
a time range of them with the date partitions pruned; ``apply_retention``
deletes whole days past the retention (prediction and feedback logs alike).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from modelyard.errors import DataError, InvalidInputError

if TYPE_CHECKING:
    from modelyard.project import Project

ENV_PREDICTIONS = "MODELYARD_PREDICTIONS"
TIMESTAMP = pa.timestamp("ms", tz="UTC")
HEAD = pa.schema(
    [
        ("request_id", pa.string()),
        ("row", pa.int32()),
        ("ts", TIMESTAMP),
        ("model", pa.string()),
        ("version", pa.int32()),
        ("latency_ms", pa.float32()),
    ]
)
OUTPUTS = pa.schema([("score", pa.float64()), ("label", pa.string()), ("confidence", pa.float64())])
FIXED = pa.schema([*HEAD, *OUTPUTS])
"""The columns every prediction log has, whatever the model's inputs."""


def predictions_root(project: Project) -> Path:
    """``$MODELYARD_PREDICTIONS``, or ``<project>/.modelyard/predictions``."""
    from modelyard.project import STATE_FOLDER

    override = os.environ.get(ENV_PREDICTIONS)
    return Path(override) if override else project.root / STATE_FOLDER / "predictions"


def feedback_root(project: Project) -> Path:
    """``<project>/.modelyard/feedback``: where labels for logged predictions are written."""
    from modelyard.project import STATE_FOLDER

    return project.root / STATE_FOLDER / "feedback"


def model_folder(root: str | os.PathLike[str], model: str) -> Path:
    """``root/model``, refusing a name that would leave ``root``."""
    if not model or model.startswith(".") or any(c in model for c in "/\\\0"):
        raise InvalidInputError(
            f"{model!r} cannot name a log folder; use the model's registered name."
        )
    return Path(root) / model


def read_predictions(
    project_or_root: Project | str | os.PathLike[str],
    model: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    columns: Sequence[str] | None = None,
) -> pa.Table:
    """The logged rows of ``model`` with ``since <= ts < until`` (naive times are UTC).

    Segments written by different model versions may hold different inputs;
    a column a segment lacks reads as null. Rows come in no particular order.
    An empty or missing log gives an empty table with the fixed columns.
    """
    if isinstance(project_or_root, str | os.PathLike):
        root = Path(project_or_root)
    else:
        root = predictions_root(project_or_root)
    since, until = _utc(since), _utc(until)
    files = _segment_files(model_folder(root, model), since, until)
    if not files:
        return _empty(columns)
    schema = _unified_schema(files, model, root)
    missing = [c for c in columns or () if c not in schema.names]
    if missing:
        raise DataError(
            f"The prediction log of '{model}' has no column(s) {missing}; it has {schema.names}."
        )
    condition = None
    if since is not None:
        condition = ds.field("ts") >= pa.scalar(since, TIMESTAMP)
    if until is not None:
        before = ds.field("ts") < pa.scalar(until, TIMESTAMP)
        condition = before if condition is None else condition & before
    dataset = ds.dataset([str(f) for f in files], schema=schema, format="parquet")
    try:
        return dataset.to_table(columns=list(columns) if columns else None, filter=condition)
    except pa.ArrowException as exc:
        raise DataError(
            f"The prediction log of '{model}' in {root} cannot be read: {exc}."
        ) from None


def _unified_schema(files: list[Path], model: str, root: Path) -> pa.Schema:
    try:
        schemas = [pq.read_schema(f) for f in files]
    except (OSError, pa.ArrowException) as exc:
        raise DataError(
            f"A segment of the prediction log of '{model}' in {root} cannot be read ({exc}); "
            "move the damaged file away."
        ) from None
    try:
        return pa.unify_schemas(schemas)
    except pa.ArrowException as exc:
        raise DataError(
            f"The prediction log of '{model}' in {root} holds segments whose columns "
            f"disagree ({exc}); read a time range written by one model version."
        ) from None


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _segment_files(folder: Path, since: datetime | None, until: datetime | None) -> list[Path]:
    """The segments of the date partitions that can hold rows in ``[since, until)``."""
    first = since.astimezone(UTC).date() if since else date.min
    last = until.astimezone(UTC).date() if until else date.max
    files: list[Path] = []
    for day, partition in _partitions(folder):
        if first <= day <= last:
            files.extend(sorted(partition.glob("*.parquet")))
    return files


def _partitions(folder: Path) -> list[tuple[date, Path]]:
    if not folder.is_dir():
        return []
    found = []
    for partition in folder.glob("date=*"):
        try:
            found.append((date.fromisoformat(partition.name.removeprefix("date=")), partition))
        except ValueError:
            continue  # not ours
    return sorted(found)


def _empty(columns: Sequence[str] | None) -> pa.Table:
    names = list(columns) if columns else FIXED.names
    fields = [FIXED.field(n) if n in FIXED.names else pa.field(n, pa.null()) for n in names]
    return pa.schema(fields).empty_table()


def apply_retention(
    root: str | os.PathLike[str],
    model: str,
    retention_seconds: float,
    *,
    now: datetime | None = None,
) -> int:
    """Delete the date partitions whose whole day is older than the retention; files removed.

    Works on the prediction and the feedback log alike (both are
    ``root/model/date=…``). A day is kept while any moment of it is within
    ``retention_seconds`` of ``now``.
    """
    cutoff = (_utc(now) or datetime.now(UTC)) - timedelta(seconds=retention_seconds)
    removed = 0
    for day, partition in _partitions(model_folder(root, model)):
        day_end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        if day_end > cutoff:
            break  # partitions come in date order
        for file in partition.iterdir():
            try:
                file.unlink()
                removed += 1
            except FileNotFoundError:
                continue  # another worker removed it first
        try:
            partition.rmdir()
        except OSError:
            continue  # a file arrived meanwhile; the next run removes it
    return removed


__all__ = [
    "ENV_PREDICTIONS",
    "FIXED",
    "HEAD",
    "OUTPUTS",
    "TIMESTAMP",
    "apply_retention",
    "feedback_root",
    "model_folder",
    "predictions_root",
    "read_predictions",
]
