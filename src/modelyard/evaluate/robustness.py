"""Robustness: how far predictions move when inputs are noisy, missing, out of range or malformed.

``robustness_report(bundle, frame, y, metric=...)`` scores perturbed copies of
an evaluation frame and returns one ``Perturbation`` per perturbation::

    kind          what is done                                                path
    noise         Gaussian noise on every numeric input,                      frame
                  σ = scale × that column's standard deviation
    missing       every input cell blanked with probability ``share``         frame
    out_of_range  one numeric input per row set to +10× or −10× the largest   frame
                  magnitude seen in the reference (training) rows
    malformed     each record sent alone through the serving path             records
                  (``bundle.encode_records``) and scored: a wrong type in a
                  number or a category field, an unknown category, a missing
                  field, null in a non-nullable field, NaN or ±inf in a number
                  field, a record that is not an object

Frame perturbations use common random numbers: one draw of noise (and of the
blanking uniforms) is scaled or thresholded for every level, so a larger level
perturbs a superset of what a smaller one did and the levels compare fairly.

``flip_rate`` is the share of scored rows whose decision changed: the label at
the bundle's threshold (binary), the arg-max class (multiclass), or, for
regression, a prediction moving by more than 10 % of the target's standard
deviation. A non-finite score always counts as a flip.

A malformed record must be *rejected* with an ``InvalidInputError`` whose
message says what is wrong, or *handled* (encoded and scored to a finite
value). Anything else — another exception, an empty message, a rejection that
does not name the corrupted field, a NaN score — is recorded in ``errors``: the
serving path has a bug. Malformed results carry no metric (only a sample of
rows is sent); their ``flip_rate`` compares the handled rows with their clean
scores. A kind that cannot apply (no non-nullable field) is left out.

The bundle is anything with the ``Scorable`` members (``ModelBundle`` has
them); evaluation sits below training, so it does not import it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from modelyard.data.encoding import FeatureEncoder
from modelyard.errors import InvalidInputError, ModelyardError
from modelyard.evaluate.metrics import task_report

__all__ = ["Perturbation", "Scorable", "robustness_report"]

#: A regression prediction "flips" when it moves by more than this share of the target's std.
REGRESSION_FLIP = 0.1
#: Out-of-range values are this many times the largest magnitude seen in the reference rows.
OUT_OF_RANGE_FACTOR = 10.0
_MAX_ERRORS = 10


class Scorable(Protocol):
    """What robustness needs from a model bundle (``modelyard.train.bundle.ModelBundle``)."""

    task: str
    threshold: float
    encoder: FeatureEncoder

    @property
    def input_names(self) -> list[str]: ...

    def encode_frame(self, frame: pd.DataFrame) -> np.ndarray: ...

    def encode_records(self, records: list[Any]) -> np.ndarray: ...

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Perturbation:
    """What one perturbation did to the metric and to the decisions.

    ``delta`` is ``metric_after - metric_before`` (compare with the metric's
    direction). ``rows`` were perturbed; ``rejected`` of them were refused with
    an ``InvalidInputError``, ``handled`` were scored. ``errors`` lists what
    should never happen (see the module docstring); ``example`` is the first
    rejection message, to show what a caller would read.
    """

    name: str
    kind: str
    metric_before: float | None
    metric_after: float | None
    delta: float | None
    flip_rate: float | None
    rows: int
    rejected: int
    handled: int
    errors: tuple[str, ...] = ()
    metric: str = ""
    example: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["errors"] = list(self.errors)
        return out


def robustness_report(
    bundle: Scorable,
    frame: pd.DataFrame,
    y: Sequence[Any] | np.ndarray | pd.Series,
    *,
    metric: str,
    seed: int = 0,
    noise_scales: Sequence[float] = (0.05, 0.1, 0.25),
    missing_shares: Sequence[float] = (0.1, 0.3),
    reference: pd.DataFrame | None = None,
    malformed_rows: int = 100,
) -> list[Perturbation]:
    """Score perturbed copies of ``frame`` (labels ``y``, in the model's encoding).

    ``metric`` names a metric of the task's report (``roc_auc``, ``rmse``, ...).
    ``reference`` (the training rows; default ``frame``) gives each column's
    spread and range. ``malformed_rows`` records are sent per malformed kind.
    """
    labels = np.asarray(y)
    _check_arguments(frame, labels, noise_scales, missing_shares, malformed_rows)
    clean = _Clean.measure(bundle, frame, labels, metric)
    ref = frame if reference is None else reference
    rng = np.random.default_rng(seed)
    results = list(_noise(clean, frame, ref, noise_scales, rng))
    results += _missing(clean, frame, missing_shares, rng)
    results += _out_of_range(clean, frame, ref, rng)
    results += _malformed(clean, frame, malformed_rows, rng)
    return results


# --------------------------------------------------------------------------- the clean baseline


@dataclass
class _Clean:
    """The unperturbed scores and metric, and how to compare perturbed ones with them."""

    bundle: Scorable
    y: np.ndarray
    metric: str
    scores: np.ndarray
    value: float
    numeric: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)

    @classmethod
    def measure(cls, bundle: Scorable, frame: pd.DataFrame, y: np.ndarray, metric: str) -> _Clean:
        scores = bundle.predict_proba(bundle.encode_frame(frame))
        report = task_report(bundle.task, y, scores, bundle.threshold)
        if metric not in report:
            raise InvalidInputError(
                f"Robustness cannot measure metric {metric!r} for task {bundle.task!r}; "
                f"choose one of {sorted(k for k in report if k != 'threshold')}."
            )
        inputs = [c for c in bundle.input_names if c in frame.columns]
        categories = {f.name for f in bundle.encoder.fields if f.kind == "category"}
        numeric = [c for c in inputs if c not in categories and _is_number(frame[c])]
        return cls(bundle, y, metric, scores, report[metric], numeric, inputs)

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return self.bundle.predict_proba(self.bundle.encode_frame(frame))

    def value_of(self, scores: np.ndarray) -> float:
        return task_report(self.bundle.task, self.y, scores, self.bundle.threshold)[self.metric]

    def flips(self, before: np.ndarray, after: np.ndarray) -> np.ndarray:
        """Per row: did the decision change (or the score become non-finite)?"""
        task = self.bundle.task
        if task == "multiclass":
            broken = ~np.isfinite(after).all(axis=1)
            return np.asarray((before.argmax(axis=1) != after.argmax(axis=1)) | broken)
        if task == "regression":
            tolerance = REGRESSION_FLIP * float(np.std(self.y.astype(float)))
            return np.asarray(~(np.abs(after - before) <= tolerance))
        t = self.bundle.threshold
        return np.asarray(((before >= t) != (after >= t)) | ~np.isfinite(after))


def _is_number(column: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column))


def _check_arguments(
    frame: pd.DataFrame,
    y: np.ndarray,
    scales: Sequence[float],
    shares: Sequence[float],
    malformed_rows: int,
) -> None:
    if len(frame) == 0 or len(frame) != len(y):
        raise InvalidInputError(
            f"Robustness needs a non-empty frame and one label per row; got {len(frame)} "
            f"row(s) and {len(y)} label(s)."
        )
    if any(not (math.isfinite(s) and s > 0) for s in scales):
        raise InvalidInputError(f"noise_scales must be positive numbers; got {list(scales)}.")
    if any(not (0 < s <= 1) for s in shares):
        raise InvalidInputError(f"missing_shares must lie in (0, 1]; got {list(shares)}.")
    if malformed_rows < 1:
        raise InvalidInputError(f"malformed_rows must be at least 1; got {malformed_rows}.")


# --------------------------------------------------------------------------- frame perturbations


def _frame_result(clean: _Clean, name: str, kind: str, perturbed: pd.DataFrame) -> Perturbation:
    """Score a perturbed frame (the batch path) and compare it with the clean scores."""
    rows = len(perturbed)
    value: float | None = None
    flip_rate: float | None = None
    errors: tuple[str, ...] = ()
    example: str | None = None
    try:
        after = clean.score(perturbed)
        value = clean.value_of(after)
        flip_rate = float(np.mean(clean.flips(clean.scores, after)))
    except ModelyardError as exc:
        example = exc.message
    except Exception as exc:
        errors = (_describe(exc),)
    return Perturbation(
        name=name,
        kind=kind,
        metric_before=clean.value,
        metric_after=value,
        delta=None if value is None else value - clean.value,
        flip_rate=flip_rate,
        rows=rows,
        rejected=rows if example is not None else 0,
        handled=rows if flip_rate is not None else 0,
        errors=errors,
        metric=clean.metric,
        example=example,
    )


def _noise(
    clean: _Clean,
    frame: pd.DataFrame,
    ref: pd.DataFrame,
    scales: Sequence[float],
    rng: np.random.Generator,
) -> Iterator[Perturbation]:
    if not clean.numeric:
        return
    z = rng.standard_normal((len(frame), len(clean.numeric)))
    spread = [_finite_or(ref[c].astype(float).std(), 1.0) for c in clean.numeric]
    for scale in scales:
        noisy = frame.copy()
        for j, column in enumerate(clean.numeric):
            noisy[column] = frame[column].astype(float) + z[:, j] * scale * spread[j]
        yield _frame_result(clean, f"noise σ = {scale:g} × std", "noise", noisy)


def _missing(
    clean: _Clean, frame: pd.DataFrame, shares: Sequence[float], rng: np.random.Generator
) -> Iterator[Perturbation]:
    u = rng.random((len(frame), len(clean.inputs)))
    for share in shares:
        blanked = frame.copy()
        for j, column in enumerate(clean.inputs):
            blanked[column] = frame[column].where(~(u[:, j] < share))
        yield _frame_result(clean, f"missing {share:.0%} of values", "missing", blanked)


def _out_of_range(
    clean: _Clean, frame: pd.DataFrame, ref: pd.DataFrame, rng: np.random.Generator
) -> Iterator[Perturbation]:
    if not clean.numeric:
        return
    which = rng.integers(0, len(clean.numeric), len(frame))
    for sign, label in ((1.0, "+"), (-1.0, "−")):
        shifted = frame.copy()
        for j, column in enumerate(clean.numeric):
            values = ref[column].astype(float)
            largest = _finite_or(max(abs(values.min()), abs(values.max())), 0.0) or 1.0
            extreme = sign * OUT_OF_RANGE_FACTOR * largest
            shifted[column] = frame[column].astype(float).where(which != j, extreme)
        name = f"out of range: {label}{OUT_OF_RANGE_FACTOR:g}× the largest value"
        yield _frame_result(clean, name, "out_of_range", shifted)


def _finite_or(value: float, default: float) -> float:
    return float(value) if math.isfinite(value) else default


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


# --------------------------------------------------------------------------- malformed records


@dataclass(frozen=True)
class _Kind:
    name: str
    fields: list[str]
    values: tuple[Any, ...]
    delete: bool = False

    def corrupt(self, record: dict[str, Any], i: int) -> str:
        name = self.fields[i % len(self.fields)]
        if self.delete:
            record.pop(name, None)
        else:
            record[name] = self.values[i % len(self.values)]
        return name


def _malformed_kinds(bundle: Scorable) -> list[_Kind]:
    inputs = set(bundle.input_names)
    fields = [f for f in bundle.encoder.fields if f.name in inputs]
    numbers = [f.name for f in fields if f.kind == "number"]
    categories = [f.name for f in fields if f.kind == "category"]
    required = [f.name for f in fields if not f.nullable]
    inf = float("inf")
    kinds = [
        _Kind("wrong type in a number field", numbers, ("n/a", "42", "", True, [1.0])),
        _Kind("wrong type in a category field", categories, (["a", "b"], [], {"value": "x"})),
        _Kind("unknown category", categories, ("__never_seen__", "", "ünïcødé <b>x</b>")),
        _Kind("missing field", sorted(inputs), (), delete=True),
        _Kind("null in a non-nullable field", required, (None,)),
        _Kind("NaN in a number field", numbers, (float("nan"),)),
        _Kind("infinity in a number field", numbers, (inf, -inf)),
    ]
    return [k for k in kinds if k.fields]


def _records(frame: pd.DataFrame, names: list[str]) -> list[dict[str, Any]]:
    """Rows as JSON-like records: native Python values, None for missing."""
    rows = frame[names].astype(object)
    return [
        {k: (None if _is_missing(v) else _native(v)) for k, v in row.items()}
        for row in rows.to_dict("records")
    ]


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _native(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _malformed(
    clean: _Clean, frame: pd.DataFrame, limit: int, rng: np.random.Generator
) -> list[Perturbation]:
    bundle = clean.bundle
    names = [c for c in bundle.input_names if c in frame.columns]
    picked = np.sort(rng.choice(len(frame), size=min(limit, len(frame)), replace=False))
    records = _records(frame.iloc[picked], names)
    baseline = clean.scores[picked]
    results = [_send_malformed(clean, kind, records, baseline) for kind in _malformed_kinds(bundle)]
    results.append(_send_not_objects(clean, records))
    return results


@dataclass
class _Tally:
    """Outcomes of sending records one at a time through the serving path."""

    rejected: int = 0
    handled: int = 0
    errors: list[str] = field(default_factory=list)
    example: str | None = None
    scored_rows: list[int] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)

    def error(self, row: int, text: str) -> None:
        message = f"row {row}: {text}"
        if len(self.errors) < _MAX_ERRORS and message not in self.errors:
            self.errors.append(message)

    def send(self, bundle: Scorable, record: Any, row: int, corrupted: str | None) -> None:
        try:
            X = bundle.encode_records([record])
        except InvalidInputError as exc:
            self._rejected(exc, row, corrupted, bundle.encoder.names)
            return
        except Exception as exc:
            self.error(row, f"encode_records raised {_describe(exc)}")
            return
        try:
            score = np.asarray(bundle.predict_proba(X))
        except Exception as exc:
            self.error(row, f"the model raised {_describe(exc)} on an accepted record")
            return
        if not np.isfinite(score).all():
            self.error(row, f"an accepted record was scored {score.tolist()}")
            return
        self.handled += 1
        self.scored_rows.append(row)
        self.scores.append(score[0])

    def _rejected(
        self, exc: InvalidInputError, row: int, corrupted: str | None, fields: list[str]
    ) -> None:
        self.rejected += 1
        text = exc.message.strip()
        if not text:
            self.error(row, "rejected with an empty message")
        elif corrupted in fields and corrupted not in f"{text} {exc.details}":
            self.error(row, f"rejected without naming field {corrupted!r}: {text}")
        if self.example is None:
            self.example = text


def _send_malformed(
    clean: _Clean, kind: _Kind, records: list[dict[str, Any]], baseline: np.ndarray
) -> Perturbation:
    tally = _Tally()
    for i, record in enumerate(records):
        bad = dict(record)
        corrupted = kind.corrupt(bad, i)
        tally.send(clean.bundle, bad, i, corrupted)
    flip_rate = None
    if tally.scored_rows:
        before = baseline[tally.scored_rows]
        flip_rate = float(np.mean(clean.flips(before, np.stack(tally.scores))))
    return _malformed_result(clean, f"malformed: {kind.name}", len(records), tally, flip_rate)


def _send_not_objects(clean: _Clean, records: list[dict[str, Any]]) -> Perturbation:
    shapes: tuple[Callable[[dict[str, Any]], Any], ...] = (
        lambda r: list(r.values()),
        str,
        lambda r: None,
        lambda r: 42,
    )
    tally = _Tally()
    for i, record in enumerate(records):
        tally.send(clean.bundle, shapes[i % len(shapes)](record), i, None)
    if tally.handled:
        tally.error(tally.scored_rows[0], "a record that is not an object was accepted")
    return _malformed_result(clean, "malformed: not an object", len(records), tally, None)


def _malformed_result(
    clean: _Clean, name: str, rows: int, tally: _Tally, flip_rate: float | None
) -> Perturbation:
    return Perturbation(
        name=name,
        kind="malformed",
        metric_before=None,
        metric_after=None,
        delta=None,
        flip_rate=flip_rate,
        rows=rows,
        rejected=tally.rejected,
        handled=tally.handled,
        errors=tuple(tally.errors),
        metric=clean.metric,
        example=tally.example,
    )
