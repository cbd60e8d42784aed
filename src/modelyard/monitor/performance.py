"""Realised performance: logged predictions joined with the labels that arrived later.

    found = realised_metrics(project, "loans", window="1d", since="7d", segment="region")
    for w in found.windows:
        print(w.start, w.predictions, w.labelled, w.coverage, w.metrics["roc_auc"])
    found.time_to_label.p90            # seconds from answer to label, 90th percentile
    found.to_dict()                    # the JSON twin, every number

Predictions and labels meet on ``(request_id, row)``; a row labelled twice
counts with its latest label. Windows ``[start, start + window)`` tumble
from 1970-01-01 00:00 UTC (daily windows start at midnight UTC, as drift
windows do) and hold the predictions answered in them, whenever their
labels came; every window with a prediction is reported, in time order.

Metrics are the evaluation's own (``modelyard.evaluate.metrics``), on the
labelled rows of each window, named as in the metric catalogue; by default
the spec's model metrics. The model's task, decision threshold and classes
come from the registered version (the newest in the log), or from the spec
when the model is not registered. Labels arrive as text: for a binary
model ``1``, ``1.0``, ``true`` or the spec's ``positive_class`` mean the
positive class and anything else the negative one, as in training. The log
keeps a multiclass model's top class and its probability only, so realised
multiclass metrics are those of the labels (accuracy, macro F1, …) and the
top-label calibration error; ROC-AUC, PR-AUC, log-loss and Brier need every
class's probability and are listed as ``unavailable``. A metric that a
window cannot define (ROC-AUC over a single class, R² of one row) is None.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sklearn import metrics as skm

from modelyard.errors import InvalidInputError, NotFoundError
from modelyard.evaluate.metrics import expected_calibration_error, task_report
from modelyard.monitor.feedback import read_feedback
from modelyard.monitor.log_files import read_predictions
from modelyard.monitor.stats import finite_or_none
from modelyard.spec import Spec, parse_duration
from modelyard.spec_catalogue import METRICS

if TYPE_CHECKING:
    from modelyard.project import Project

__all__ = [
    "LabelDelay",
    "ModelFacts",
    "PerformanceWindow",
    "RealisedPerformance",
    "SegmentPerformance",
    "model_facts",
    "realised_metrics",
]

#: Segment values beyond the most frequent ones are pooled as ``OTHER``.
MAX_SEGMENTS = 50
MISSING = "(missing)"
OTHER = "(other)"
#: Metrics a multiclass model's log cannot give: they need every class's probability.
NEEDS_ALL_PROBABILITIES = frozenset({"roc_auc", "pr_auc", "log_loss", "brier"})
_POSITIVE_WORDS = frozenset({"1", "1.0", "true"})


@dataclass(frozen=True)
class LabelDelay:
    """Seconds from a prediction's answer to its label's arrival, over ``count`` labels."""

    count: int
    p50: float | None
    p90: float | None
    max: float | None


@dataclass(frozen=True)
class PerformanceWindow:
    """Predictions answered in ``[start, end)``, how many got a label, and the metrics."""

    start: datetime
    end: datetime
    predictions: int
    labelled: int
    metrics: dict[str, float | None]
    time_to_label: LabelDelay
    note: str | None = None

    @property
    def coverage(self) -> float:
        """The share of predictions that have a label (0 without predictions)."""
        return self.labelled / self.predictions if self.predictions else 0.0


@dataclass(frozen=True)
class SegmentPerformance:
    """The predictions whose segment column holds ``value``: over the range, and by window."""

    value: str
    overall: PerformanceWindow
    windows: tuple[PerformanceWindow, ...]


@dataclass(frozen=True)
class ModelFacts:
    """What reading labels and scores needs to know about the logged model."""

    task: str
    threshold: float
    classes: tuple[str, ...] | None
    positive: str
    version: int | None  # the registered version the facts come from (None: the spec)


@dataclass(frozen=True)
class RealisedPerformance:
    """Realised metrics of one model over time (and by segment), with label coverage."""

    model: str
    facts: ModelFacts
    window_seconds: int
    since: datetime | None
    until: datetime | None
    metrics: tuple[str, ...]
    unavailable: tuple[str, ...]
    overall: PerformanceWindow
    windows: tuple[PerformanceWindow, ...]
    segment: str | None = None
    segments: tuple[SegmentPerformance, ...] = ()
    invalid_labels: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def time_to_label(self) -> LabelDelay:
        return self.overall.time_to_label

    def to_dict(self) -> dict[str, Any]:
        """Every number, JSON-ready (times in ISO 8601, undefined metrics as null)."""
        return {
            "model": self.model,
            "task": self.facts.task,
            "threshold": self.facts.threshold if self.facts.task == "binary" else None,
            "facts_from_version": self.facts.version,
            "window_seconds": self.window_seconds,
            "since": _iso(self.since),
            "until": _iso(self.until),
            "metrics": list(self.metrics),
            "unavailable": list(self.unavailable),
            "invalid_labels": self.invalid_labels,
            "notes": list(self.notes),
            "overall": _window_dict(self.overall),
            "windows": [_window_dict(w) for w in self.windows],
            "segment": self.segment,
            "segments": [
                {
                    "value": s.value,
                    "overall": _window_dict(s.overall),
                    "windows": [_window_dict(w) for w in s.windows],
                }
                for s in self.segments
            ],
        }


def realised_metrics(
    project: Project,
    model: str,
    *,
    window: str = "1d",
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    segment: str | None = None,
    metrics: Sequence[str] | None = None,
) -> RealisedPerformance:
    """Realised metrics of ``model`` per tumbling ``window`` of the predictions' time.

    ``since``/``until`` bound the predictions' time: a datetime (naive is
    UTC), an ISO 8601 time, or a duration back from now (``"7d"``).
    ``segment`` names a logged column (an input, or ``version``) to break
    every window down by its values. ``metrics`` picks catalogue names
    (default: the spec's model metrics for the task).
    """
    seconds = _duration(window, "window")
    start, end = _moment(since, "since"), _moment(until, "until")
    rows = _joined(project, model, start, end, segment)
    versions = pc.unique(rows.column("version")).drop_null().to_pylist()
    facts = model_facts(project, model, max(versions) if versions else None)
    names, unavailable = _metric_names(project.spec, facts.task, metrics)
    scored = _Scored.build(rows, facts, seconds * 1000, segment)
    measure = _Measure(facts, names)
    notes = []
    if unavailable:
        notes.append(
            f"Not measurable from the log of a {facts.task} model: {', '.join(unavailable)}."
        )
    return RealisedPerformance(
        model=model,
        facts=facts,
        window_seconds=seconds,
        since=start,
        until=end,
        metrics=names,
        unavailable=unavailable,
        overall=measure.span(scored, np.arange(scored.n)),
        windows=measure.windows(scored, np.arange(scored.n)),
        segment=segment,
        segments=measure.segments(scored) if segment else (),
        invalid_labels=int(np.sum(scored.labelled & ~scored.valid)),
        notes=tuple(notes),
    )


# ---------------------------------------------------------------- the model


def model_facts(project: Project, model: str, version: int | None) -> ModelFacts:
    """Task, decision threshold and classes of ``model@version``; the spec's when unregistered."""
    from modelyard.registry.versions import resolve

    spec = project.spec
    positive = str(spec.positive_class if spec.positive_class is not None else 1)
    if version is not None:
        try:
            registered = resolve(project, f"{model}@{version}")
        except NotFoundError:
            registered = None
        if registered is not None:
            manifest = json.loads(project.artifacts.get_bytes(registered.digest))
            classes = manifest.get("classes")
            return ModelFacts(
                task=str(manifest["task"]),
                threshold=float(manifest.get("threshold", 0.5)),
                classes=tuple(str(c) for c in classes) if classes else None,
                positive=positive,
                version=version,
            )
    return ModelFacts(spec.task, 0.5, None, positive, None)


def _metric_names(
    spec: Spec, task: str, wanted: Sequence[str] | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The metrics to report and those asked for that the log cannot give."""
    applicable = [n for n, info in METRICS.items() if info.kind == "model" and task in info.tasks]
    if wanted:
        unknown = [n for n in wanted if n not in applicable]
        if unknown:
            raise InvalidInputError(
                f"No realised metric {unknown} for a {task} model; choose from "
                f"{', '.join(applicable)}."
            )
        names = list(dict.fromkeys(wanted))
    else:
        names = [g.name for g in spec.metrics if g.name in applicable] or applicable
    if task == "multiclass":
        missing = tuple(n for n in names if n in NEEDS_ALL_PROBABILITIES)
        return tuple(n for n in names if n not in NEEDS_ALL_PROBABILITIES), missing
    if task not in ("binary", "regression"):
        return (), tuple(names)
    return tuple(names), ()


# ---------------------------------------------------------------- the joined rows


def _joined(
    project: Project,
    model: str,
    since: datetime | None,
    until: datetime | None,
    segment: str | None,
) -> pa.Table:
    """Logged rows in the range with their latest label (``truth``) and its arrival."""
    columns = ["request_id", "row", "ts", "version", "score", "label", "confidence"]
    if segment is not None and segment not in columns:
        columns.append(segment)
    predictions = read_predictions(project, model, since=since, until=until, columns=columns)
    labels = (
        read_feedback(project, model)
        .rename_columns(["request_id", "row", "truth", "received_at"])
        .sort_by([("received_at", "ascending")])  # a stable sort: ties keep arrival order
        .group_by(["request_id", "row"], use_threads=False)
        .aggregate([("truth", "last"), ("received_at", "last")])
        .rename_columns(["request_id", "row", "truth", "received_at"])
    )
    joined = predictions.join(labels, keys=["request_id", "row"], join_type="left outer")
    # A join's output order varies from run to run; sums over it then differ in the last
    # bits. One order makes the same log give the same numbers every time.
    return joined.sort_by([("ts", "ascending"), ("request_id", "ascending"), ("row", "ascending")])


@dataclass(frozen=True)
class _Scored:
    """The joined rows as arrays: time, window, scores, truth, and validity of the truth."""

    ts: np.ndarray  # ms since the epoch
    window: np.ndarray  # the start of the row's window, ms
    window_ms: int
    score: np.ndarray
    predicted: np.ndarray  # the logged label (object: str or None)
    confidence: np.ndarray
    truth: np.ndarray  # binary 0/1 ints, regression floats, multiclass class text
    labelled: np.ndarray  # a label arrived
    valid: np.ndarray  # ... and it can be read for the task
    delay: np.ndarray  # seconds from answer to label (NaN when unlabelled)
    segment: np.ndarray | None

    @property
    def n(self) -> int:
        return len(self.ts)

    @classmethod
    def build(
        cls, rows: pa.Table, facts: ModelFacts, window_ms: int, segment: str | None
    ) -> _Scored:
        ts = _millis(rows.column("ts"))
        received = _millis(rows.column("received_at"))
        text = rows.column("truth")
        labelled = np.asarray(pc.is_valid(text).to_numpy(zero_copy_only=False), dtype=bool)
        truth, valid = _truth(text, facts)
        return cls(
            ts=ts,
            window=ts - np.mod(ts, window_ms),
            window_ms=window_ms,
            score=_floats(rows.column("score")),
            predicted=_objects(pc.fill_null(rows.column("label"), "")),
            confidence=_floats(rows.column("confidence")),
            truth=truth,
            labelled=labelled,
            valid=labelled & valid,
            delay=np.where(labelled, (received - ts) / 1000.0, np.nan),
            segment=_segment_values(rows.column(segment)) if segment else None,
        )


def _truth(text: pa.ChunkedArray, facts: ModelFacts) -> tuple[np.ndarray, np.ndarray]:
    """Label text → what the metrics take, and which labels could be read so."""
    clean = pc.utf8_trim_whitespace(text)
    readable = np.asarray(pc.is_valid(clean).to_numpy(zero_copy_only=False), dtype=bool)
    if facts.task == "binary":
        words = _POSITIVE_WORDS if facts.positive.lower() in _POSITIVE_WORDS else frozenset()
        positive = pa.array(sorted(words | {facts.positive.lower()}), pa.string())
        hits = pc.fill_null(pc.is_in(pc.utf8_lower(clean), value_set=positive), False)
        return np.asarray(hits.to_numpy(zero_copy_only=False), dtype=np.int64), readable
    if facts.task == "regression":
        numbers = pd.to_numeric(pd.Series(_objects(clean)), errors="coerce").to_numpy(np.float64)
        return numbers, np.isfinite(numbers)
    return _class_text(clean, facts.classes), readable


def _class_text(clean: pa.ChunkedArray, classes: tuple[str, ...] | None) -> np.ndarray:
    """Class labels as text; a number sent for a class named by its integer (2.0 → "2")."""
    whole = pc.replace_substring_regex(clean, r"^(-?\d+)\.0+$", r"\1")
    if classes:
        whole = pc.if_else(pc.is_in(clean, value_set=pa.array(classes, pa.string())), clean, whole)
    return _objects(whole)


def _objects(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A text column as a NumPy object array (None for nulls)."""
    if not len(column):
        return np.empty(0, dtype=object)
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)


def _segment_values(column: pa.ChunkedArray) -> np.ndarray:
    """The segment column as text: nulls as ``MISSING``, rare values pooled as ``OTHER``."""
    text = pc.fill_null(column.cast(pa.string()), MISSING)
    counts = pc.value_counts(text)
    order = np.argsort(-np.asarray(counts.field("counts").to_numpy()), kind="stable")
    kept = counts.field("values").take(pa.array(order[:MAX_SEGMENTS]))
    return _objects(pc.if_else(pc.is_in(text, value_set=kept), text, OTHER))


# ---------------------------------------------------------------- measuring


class _Measure:
    """Computes the reported metrics of any subset of the joined rows."""

    def __init__(self, facts: ModelFacts, names: tuple[str, ...]) -> None:
        self.facts = facts
        self.names = names

    def windows(self, rows: _Scored, subset: np.ndarray) -> tuple[PerformanceWindow, ...]:
        starts = rows.window[subset]
        order = np.argsort(starts, kind="stable")
        ordered, subset = starts[order], subset[order]
        bounds = np.flatnonzero(np.diff(ordered)) + 1
        return tuple(
            self.span(rows, part, int(ordered[first]))
            for part, first in zip(
                np.split(subset, bounds), np.concatenate([[0], bounds]), strict=True
            )
            if len(part)
        )

    def segments(self, rows: _Scored) -> tuple[SegmentPerformance, ...]:
        assert rows.segment is not None
        values, inverse, counts = np.unique(rows.segment, return_inverse=True, return_counts=True)
        found = []
        for code in np.argsort(-counts, kind="stable"):
            subset = np.flatnonzero(inverse == code)
            found.append(
                SegmentPerformance(
                    str(values[code]), self.span(rows, subset), self.windows(rows, subset)
                )
            )
        return tuple(found)

    def span(
        self, rows: _Scored, subset: np.ndarray, window_start: int | None = None
    ) -> PerformanceWindow:
        """One window (``window_start`` in ms), or the whole range of ``subset``."""
        if window_start is not None:
            start_ms, end_ms = window_start, window_start + rows.window_ms
        elif len(subset):
            start_ms = int(rows.window[subset].min())
            end_ms = int(rows.window[subset].max()) + rows.window_ms
        else:
            start_ms = end_ms = 0
        valid = subset[rows.valid[subset]]
        scores, note = self.metrics(rows, valid)
        return PerformanceWindow(
            start=_datetime(start_ms),
            end=_datetime(end_ms),
            predictions=len(subset),
            labelled=int(np.sum(rows.labelled[subset])),
            metrics=scores,
            time_to_label=_delays(rows.delay[subset[rows.labelled[subset]]]),
            note=note,
        )

    def metrics(
        self, rows: _Scored, valid: np.ndarray
    ) -> tuple[dict[str, float | None], str | None]:
        blank: dict[str, float | None] = dict.fromkeys(self.names)
        if not self.names:
            return blank, None
        if not len(valid):
            return blank, "no labelled predictions"
        facts = self.facts
        if facts.task == "multiclass":
            found = _multiclass(rows.truth[valid], rows.predicted[valid], rows.confidence[valid])
        elif facts.task == "binary" and len(np.unique(rows.truth[valid])) < 2:
            return blank, "the labels hold one class only: the metrics are undefined"
        else:
            with warnings.catch_warnings():  # R² of one row: NaN, reported as None
                warnings.simplefilter("ignore")
                found = task_report(
                    facts.task,
                    rows.truth[valid].astype(
                        np.float64 if facts.task == "regression" else np.int64
                    ),
                    rows.score[valid],
                    facts.threshold,
                )
        return {n: finite_or_none(found.get(n)) for n in self.names}, None


def _multiclass(
    truth: np.ndarray, predicted: np.ndarray, confidence: np.ndarray
) -> dict[str, float]:
    """The multiclass metrics of labels alone, and the top-label calibration error."""
    truth, predicted = truth.astype(str), predicted.astype(str)
    with warnings.catch_warnings():  # a class never predicted, or never true, is fine here
        warnings.simplefilter("ignore")
        macro = {"average": "macro", "zero_division": 0}
        return {
            "accuracy": float(skm.accuracy_score(truth, predicted)),
            "balanced_accuracy": float(skm.balanced_accuracy_score(truth, predicted)),
            "f1_macro": float(skm.f1_score(truth, predicted, **macro)),
            "precision_macro": float(skm.precision_score(truth, predicted, **macro)),
            "recall_macro": float(skm.recall_score(truth, predicted, **macro)),
            "ece": expected_calibration_error((truth == predicted).astype(int), confidence),
        }


def _delays(seconds: np.ndarray) -> LabelDelay:
    if not len(seconds):
        return LabelDelay(0, None, None, None)
    p50, p90 = np.quantile(seconds, [0.5, 0.9])
    return LabelDelay(len(seconds), float(p50), float(p90), float(np.max(seconds)))


# ---------------------------------------------------------------- small conversions


def _duration(text: str, what: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise InvalidInputError(f"{what} {exc}.") from None


def _moment(value: datetime | str | None, what: str) -> datetime | None:
    """A bound of the range: a datetime, an ISO 8601 time, or a duration back from now."""
    if value is None or isinstance(value, datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)
    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(
            f"{what} must be a time (2024-05-01 or 2024-05-01T12:00:00+00:00) or a duration "
            f"back from now (7d, 12h); got {value!r}."
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _millis(column: pa.ChunkedArray) -> np.ndarray:
    ms = pc.cast(column, pa.int64()) if len(column) else pa.array([], pa.int64())
    return np.asarray(pc.fill_null(ms, 0).to_numpy(zero_copy_only=False), dtype=np.int64)


def _floats(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if not len(column):
        return np.empty(0)
    filled = pc.fill_null(pc.cast(column, pa.float64()), math.nan)
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=np.float64)


def _datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _window_dict(w: PerformanceWindow) -> dict[str, Any]:
    delay = w.time_to_label
    return {
        "start": w.start.isoformat(),
        "end": w.end.isoformat(),
        "predictions": w.predictions,
        "labelled": w.labelled,
        "coverage": w.coverage,
        "metrics": dict(w.metrics),
        "time_to_label_seconds": {
            "count": delay.count,
            "p50": delay.p50,
            "p90": delay.p90,
            "max": delay.max,
        },
        "note": w.note,
    }
