"""Bootstrap confidence intervals, vectorised over resamples.

A bootstrap resample is a vector of row counts (how often each row was drawn);
a chunk of resamples is a ``(B, n)`` count matrix, and every metric here is
written as a function of such a matrix, so one numpy expression evaluates ``B``
resamples at once. The loop runs over chunks, never over single resamples::

    metric_fn(name, task) ─► Metric ─prepare(y, scores, y_pred)─► Prepared
        Prepared.on_weights(W: (B, n) counts) ─► (B,) values
        _Cells.from_counts(C: (B, cells) counts) ─► (B,) values
    replicates([Prepared, ...], n_boot, seed) ─► (n_boot, m) metric values
    bootstrap_metric ─► Estimate(value, low, high)
    paired_bootstrap ─► PairedEstimate(a, b, diff, low, high)

Resampling is the ordinary (multinomial) bootstrap: ``n`` rows drawn with
replacement from ``n``. Count matrices are built in chunks of about 4 million
cells (4 resamples of 1,000,000 rows), so memory stays bounded.

Two evaluation paths, chosen automatically:

- **Sufficient statistics** for metrics of a contingency table (accuracy,
  balanced accuracy, precision, recall, F1 and their macro averages): the cell
  counts of ``n`` rows drawn with replacement follow ``Multinomial(n, cell
  shares)`` exactly, so the bootstrap draws those counts directly, at a cost
  independent of ``n``. When several such metrics are bootstrapped together
  (e.g. both models of a paired comparison) the draw is over their joint cells,
  so they see the same resamples.
- **Row weights** for everything else: means of per-row losses (log loss,
  Brier, MAE, RMSE, MAPE) are matrix-vector products; R² uses three weighted
  sums; ROC-AUC and average precision use the rank statistic with the rows
  sorted by score once, per-distinct-score weight sums (``np.add.reduceat``)
  and cumulative sums along each resample; ECE uses per-bin weight sums.

No catalogue metric needs a per-resample fallback to scikit-learn. The ranking
metrics (``*_at_k``) are not supported: resampling rows would cut queries
apart. Conventions (each matches scikit-learn on the resampled rows, tested):
precision, recall and F1 are 0 when undefined (``zero_division=0``, as
``evaluate.metrics``); ROC-AUC and average precision are NaN when a class is
absent (scikit-learn raises or warns). Resamples where a metric is NaN are
left out of the percentile interval; if all are, the interval is NaN.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from modelyard.errors import InvalidInputError
from modelyard.spec import METRICS

__all__ = [
    "Estimate",
    "Metric",
    "PairedEstimate",
    "Prepared",
    "as_metric",
    "bootstrap_metric",
    "infer_task",
    "metric_fn",
    "paired_bootstrap",
    "percentile_interval",
    "replicates",
    "resample_weights",
]

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.intp]
Direction = Literal["max", "min"]

CHUNK_CELLS = 1 << 22  # rows × resamples per count matrix: 32 MB of float64
MAX_JOINT_CELLS = 4096  # above this, the sufficient-statistics path is not worth it
_EPS_LOG = 1e-15  # probability clipping for log loss, as evaluate.metrics does
_ECE_BINS = 15  # DESIGN.md: ECE over 15 equal-width bins


# --------------------------------------------------------------------------- results


class Estimate(NamedTuple):
    """A metric on the evaluation rows and its bootstrap percentile interval."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float | None]:
        return {k: _finite_or_none(v) for k, v in self._asdict().items()}


class PairedEstimate(NamedTuple):
    """Two models on the same rows: each value, ``diff = b - a`` and its interval."""

    a: float
    b: float
    diff: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float | None]:
        return {k: _finite_or_none(v) for k, v in self._asdict().items()}


def _finite_or_none(value: float) -> float | None:
    """JSON has no NaN: an undefined value is ``null``."""
    return float(value) if np.isfinite(value) else None


# --------------------------------------------------------------------------- prepared metrics


class Prepared(ABC):
    """A metric bound to one set of rows, evaluated on resample count matrices."""

    n: int

    @abstractmethod
    def on_weights(self, weights: Floats) -> Floats:
        """The metric on each row of a ``(B, n)`` count matrix; returns ``(B,)``."""

    def value(self) -> float:
        """The metric on the rows themselves (every count 1)."""
        return float(self.on_weights(np.ones((1, self.n)))[0])


@dataclass(frozen=True)
class _Groups:
    """Rows grouped by an integer key, for per-group weight sums along axis 1."""

    order: Ints
    starts: Ints
    keys: Ints  # the key of each non-empty group, ascending
    size: int  # keys lie in [0, size)

    @classmethod
    def of(cls, key: npt.ArrayLike, size: int) -> _Groups:
        key = np.asarray(key, dtype=np.intp)
        order = np.argsort(key, kind="stable")
        ordered = key[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if key.size else order
        return cls(order, starts, ordered[starts], size)

    def sums(self, sorted_weights: Floats) -> Floats:
        """Per-key sums of ``(B, n)`` weights already in ``order``; absent keys sum to 0."""
        out = np.zeros((sorted_weights.shape[0], self.size))
        if self.starts.size:
            out[:, self.keys] = np.add.reduceat(sorted_weights, self.starts, axis=1)
        return out


class _Cells(Prepared):
    """A metric of a contingency table: rows fall in cells, the metric reads cell counts."""

    def __init__(self, codes: Ints, n_cells: int, from_counts: Callable[[Floats], Floats]) -> None:
        self.n = codes.size
        self.codes = codes
        self.n_cells = n_cells
        self.from_counts = from_counts
        self._groups = _Groups.of(codes, n_cells)

    def on_weights(self, weights: Floats) -> Floats:
        ordered = np.take(weights, self._groups.order, axis=1)
        return self.from_counts(self._groups.sums(ordered))

    def value(self) -> float:
        counts = np.bincount(self.codes, minlength=self.n_cells).astype(np.float64)
        return float(self.from_counts(counts[None, :])[0])


class _Mean(Prepared):
    """The weighted mean of a per-row quantity, then ``finish`` (e.g. a square root)."""

    def __init__(self, per_row: Floats, finish: Callable[[Floats], Floats] | None = None) -> None:
        self.n = per_row.size
        self.per_row = per_row
        self.finish = finish

    def on_weights(self, weights: Floats) -> Floats:
        mean: Floats = (weights @ self.per_row) / weights.sum(axis=1)
        return self.finish(mean) if self.finish is not None else mean


class _R2(Prepared):
    """Coefficient of determination from weighted sums (y centred for accuracy)."""

    def __init__(self, y: Floats, predicted: Floats) -> None:
        self.n = y.size
        centred = y - y.mean() if y.size else y
        self.stack = np.stack([np.ones_like(y), centred, centred**2, (y - predicted) ** 2], axis=1)

    def on_weights(self, weights: Floats) -> Floats:
        total, s1, s2, residual = (weights @ self.stack).T
        spread = s2 - s1**2 / total
        flat = spread <= 1e-12 * np.maximum(s2, np.finfo(float).tiny)
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = 1.0 - residual / spread
        # scikit-learn: constant y gives 1 for a perfect fit, else 0.
        return np.where(flat, np.where(residual == 0, 1.0, 0.0), r2)


class _Ranks(Prepared):
    """ROC-AUC or average precision of one score column, from weights per distinct score.

    Rows are sorted by score once; a resample's positive and negative weight
    per distinct score (rows themselves when no two scores tie) give the
    rank statistic through cumulative sums along each resample.
    """

    def __init__(self, y: Floats, scores: Floats, kind: Literal["auc", "ap"]) -> None:
        self.n = y.size
        distinct, key = np.unique(scores, return_inverse=True)
        self.groups = _Groups.of(key, distinct.size)
        self.ties = distinct.size < y.size
        self.y_sorted = y[self.groups.order]
        self.kind = kind

    def _per_score(self, weights: Floats) -> tuple[Floats, Floats]:
        ordered = np.take(weights, self.groups.order, axis=1)
        pos = ordered * self.y_sorted
        ordered -= pos  # now the negatives' weights
        if self.ties:
            return self.groups.sums(pos), self.groups.sums(ordered)
        return pos, ordered

    def on_weights(self, weights: Floats) -> Floats:
        pos, neg = self._per_score(weights)
        n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
        defined = (n_pos > 0) & (n_neg > 0)
        scale = np.where(defined, n_pos * n_neg if self.kind == "auc" else n_pos, 1.0)
        value = (self._auc(pos, neg) if self.kind == "auc" else self._ap(pos, neg)) / scale
        return np.where(defined, value, np.nan)

    @staticmethod
    def _auc(pos: Floats, neg: Floats) -> Floats:
        """Weighted count of (positive, negative) pairs ordered right, ties counted half."""
        below = np.cumsum(neg, axis=1)
        neg *= 0.5
        below -= neg  # negatives strictly lower, plus half of those tied
        wins: Floats = np.einsum("ij,ij->i", pos, below)
        return wins

    @staticmethod
    def _ap(pos: Floats, neg: Floats) -> Floats:
        """Sum over descending scores of the positives' weight times the precision there."""
        tp = np.cumsum(pos[:, ::-1], axis=1)
        flagged = tp + np.cumsum(neg[:, ::-1], axis=1)
        np.divide(tp, flagged, out=tp, where=flagged > 0)  # where flagged = 0, so is tp
        total: Floats = np.einsum("ij,ij->i", pos[:, ::-1], tp)
        return total


class _MacroRanks(Prepared):
    """One-vs-rest macro average of ``_Ranks``; NaN when any class is absent."""

    def __init__(self, parts: list[_Ranks]) -> None:
        self.n = parts[0].n
        self.parts = parts

    def on_weights(self, weights: Floats) -> Floats:
        mean: Floats = np.mean([p.on_weights(weights) for p in self.parts], axis=0)
        return mean


class _Calibration(Prepared):
    """Expected calibration error over equal-width bins (as ``evaluate.metrics``)."""

    def __init__(self, hit: Floats, confidence: Floats, bins: int = _ECE_BINS) -> None:
        self.n = hit.size
        edges = np.linspace(0.0, 1.0, bins + 1)
        which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
        self.groups = _Groups.of(which, bins)
        self.gap = (confidence - hit)[self.groups.order]

    def on_weights(self, weights: Floats) -> Floats:
        ordered = np.take(weights, self.groups.order, axis=1)
        total = ordered.sum(axis=1)
        ordered *= self.gap
        ece: Floats = np.abs(self.groups.sums(ordered)).sum(axis=1) / total
        return ece


# --------------------------------------------------------------------------- contingency metrics


def _confusion(counts: Floats) -> tuple[Floats, Floats, Floats, Floats]:
    """Per class: true count (row sums), predicted count (column sums), hits; and the total."""
    k = math.isqrt(counts.shape[1])
    table = counts.reshape(-1, k, k)  # [resample, true class, predicted class]
    hits = np.diagonal(table, axis1=1, axis2=2)
    return table.sum(axis=2), table.sum(axis=1), hits, counts.sum(axis=1)


def _ratio(num: Floats, den: Floats) -> Floats:
    """``num / den``, 0 where ``den`` is 0 (scikit-learn's ``zero_division=0``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def _accuracy(counts: Floats) -> Floats:
    _, _, hits, total = _confusion(counts)
    accuracy: Floats = hits.sum(axis=1) / total
    return accuracy


def _balanced_accuracy(counts: Floats) -> Floats:
    """Mean recall over the classes present in ``y`` (scikit-learn drops the others)."""
    true, _, hits, _ = _confusion(counts)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(true > 0, hits / true, np.nan)
    mean: Floats = np.nanmean(recall, axis=1)
    return mean


def _per_class(kind: str, counts: Floats) -> Floats:
    true, predicted, hits, _ = _confusion(counts)
    if kind == "precision":
        return _ratio(hits, predicted)
    if kind == "recall":
        return _ratio(hits, true)
    return _ratio(2 * hits, true + predicted)  # f1


def _positive_class(kind: str) -> Callable[[Floats], Floats]:
    return lambda counts: _per_class(kind, counts)[:, 1]


def _macro(kind: str) -> Callable[[Floats], Floats]:
    return lambda counts: _per_class(kind, counts).mean(axis=1)


_TABLE_METRICS: dict[str, Callable[[Floats], Floats]] = {
    "accuracy": _accuracy,
    "balanced_accuracy": _balanced_accuracy,
    "precision": _positive_class("precision"),
    "recall": _positive_class("recall"),
    "f1": _positive_class("f1"),
    "precision_macro": _macro("precision"),
    "recall_macro": _macro("recall"),
    "f1_macro": _macro("f1"),
}


# --------------------------------------------------------------------------- the catalogue


@dataclass(frozen=True)
class Metric:
    """A catalogue metric for one task: call it for a value, ``prepare`` it to bootstrap."""

    name: str
    task: str
    direction: Direction
    build: Callable[[Floats, Floats, npt.NDArray[Any]], Prepared]

    def prepare(
        self, y: npt.ArrayLike, scores: npt.ArrayLike, y_pred: npt.ArrayLike | None = None
    ) -> Prepared:
        """Validate the rows and bind the metric to them."""
        y_arr, score_arr, pred_arr = _validated(self, y, scores, y_pred)
        return self.build(y_arr, score_arr, pred_arr)

    def __call__(
        self, y: npt.ArrayLike, scores: npt.ArrayLike, y_pred: npt.ArrayLike | None = None
    ) -> float:
        return self.prepare(y, scores, y_pred).value()


def _binary(name: str) -> Callable[[Floats, Floats, npt.NDArray[Any]], Prepared]:
    if name in _TABLE_METRICS:
        table = _TABLE_METRICS[name]
        return lambda y, s, p: _Cells((2 * y + p).astype(np.intp), 4, table)
    if name in ("roc_auc", "pr_auc"):
        kind: Literal["auc", "ap"] = "auc" if name == "roc_auc" else "ap"
        return lambda y, s, p: _Ranks(y, s, kind)
    if name == "log_loss":
        return lambda y, s, p: _Mean(_binary_log_loss(y, s))
    if name == "brier":
        return lambda y, s, p: _Mean((s - y) ** 2)
    return lambda y, s, p: _Calibration(y, s)  # ece


def _binary_log_loss(y: Floats, scores: Floats) -> Floats:
    clipped = np.clip(scores, _EPS_LOG, 1 - _EPS_LOG)
    loss: Floats = -(y * np.log(clipped) + (1 - y) * np.log1p(-clipped))
    return loss


def _multiclass(name: str) -> Callable[[Floats, Floats, npt.NDArray[Any]], Prepared]:
    if name in _TABLE_METRICS:
        table = _TABLE_METRICS[name]
        return lambda y, s, p: _Cells((y * s.shape[1] + p).astype(np.intp), s.shape[1] ** 2, table)
    if name in ("roc_auc", "pr_auc"):
        kind: Literal["auc", "ap"] = "auc" if name == "roc_auc" else "ap"
        return lambda y, s, p: _MacroRanks(
            [_Ranks((y == c).astype(np.float64), s[:, c], kind) for c in range(s.shape[1])]
        )
    rows = np.arange  # index helper for the per-row lookups below
    if name == "log_loss":
        return lambda y, s, p: _Mean(
            -np.log(np.clip(s[rows(y.size), y.astype(np.intp)], _EPS_LOG, 1.0))
        )
    if name == "brier":
        return lambda y, s, p: _Mean(((s - np.eye(s.shape[1])[y.astype(np.intp)]) ** 2).sum(axis=1))
    return lambda y, s, p: _Calibration((p == y).astype(np.float64), s[rows(y.size), p])  # ece


def _regression(name: str) -> Callable[[Floats, Floats, npt.NDArray[Any]], Prepared]:
    if name == "mae":
        return lambda y, s, p: _Mean(np.abs(y - s))
    if name == "rmse":
        return lambda y, s, p: _Mean((y - s) ** 2, np.sqrt)
    if name == "mape":
        eps = np.finfo(np.float64).eps
        return lambda y, s, p: _Mean(np.abs(y - s) / np.maximum(np.abs(y), eps))
    return lambda y, s, p: _R2(y, s)  # r2


_SCORED = frozenset({"roc_auc", "pr_auc", "log_loss", "brier", "ece"})
_BUILDERS: dict[str, tuple[Callable[[str], Any], frozenset[str]]] = {
    "binary": (_binary, _SCORED | {"accuracy", "balanced_accuracy", "precision", "recall", "f1"}),
    "multiclass": (_multiclass, _SCORED | {*_TABLE_METRICS} - {"precision", "recall", "f1"}),
    "regression": (_regression, frozenset({"mae", "rmse", "mape", "r2"})),
}


def metric_fn(name: str, task: str) -> Metric:
    """The catalogue metric ``name`` for ``task`` (binary, multiclass or regression).

    Call the result as ``metric(y, scores, y_pred)``: ``scores`` are P(positive)
    for binary, an ``(n, k)`` probability matrix for multiclass (``y`` holds
    class codes 0..k-1; ``y_pred`` defaults to the arg-max) and the predictions
    for regression (``y_pred`` is ignored).
    """
    if task not in _BUILDERS:
        raise InvalidInputError(
            f"Cannot bootstrap metrics for task {task!r}: supported tasks are "
            f"{', '.join(_BUILDERS)} (ranking metrics would cut queries apart)."
        )
    builder, names = _BUILDERS[task]
    if name not in names:
        raise InvalidInputError(
            f"Metric {name!r} has no bootstrap implementation for task {task!r}; "
            f"use one of: {', '.join(sorted(names))}."
        )
    return Metric(name, task, METRICS[name].direction, builder(name))


def infer_task(name: str, scores: npt.ArrayLike) -> str:
    """Regression for regression metrics, multiclass for 2-D scores, else binary."""
    info = METRICS.get(name)
    if info is not None and info.tasks == {"regression"}:
        return "regression"
    return "multiclass" if np.ndim(scores) == 2 else "binary"


def as_metric(metric: str | Metric, scores: npt.ArrayLike) -> Metric:
    """``metric`` itself, or the catalogue metric of that name for the task ``infer_task`` finds."""
    if isinstance(metric, Metric):
        return metric
    if metric not in METRICS:
        raise InvalidInputError(f"Unknown metric {metric!r}; known metrics: {', '.join(METRICS)}.")
    return metric_fn(metric, infer_task(metric, scores))


# --------------------------------------------------------------------------- validation


def _validated(
    metric: Metric, y: npt.ArrayLike, scores: npt.ArrayLike, y_pred: npt.ArrayLike | None
) -> tuple[Floats, Floats, npt.NDArray[Any]]:
    where = f"metric {metric.name!r} ({metric.task})"
    y_arr, score_arr = _floats(y, "y", where).ravel(), _floats(scores, "scores", where)
    if score_arr.shape[:1] != y_arr.shape:
        raise InvalidInputError(
            f"{where}: y has {y_arr.size} rows but scores have {score_arr.shape[0]}; "
            "pass one score per evaluation row."
        )
    if y_arr.size == 0:
        raise InvalidInputError(f"{where}: there are no rows to evaluate.")
    if not (np.all(np.isfinite(score_arr)) and np.all(np.isfinite(y_arr))):
        raise InvalidInputError(
            f"{where}: y and scores must be finite numbers; drop or fill the rows with "
            "missing values before evaluating."
        )
    if metric.task == "regression":
        return y_arr, score_arr.ravel(), score_arr.ravel()
    k = 2 if metric.task == "binary" else (score_arr.shape[1] if score_arr.ndim == 2 else 0)
    if (metric.task == "binary") != (score_arr.ndim == 1) or k < 2:
        shape = "a vector of P(positive)" if metric.task == "binary" else "an (n, k) matrix"
        raise InvalidInputError(f"{where}: scores must be {shape}; got shape {score_arr.shape}.")
    if y_pred is None:
        if metric.task == "binary" and metric.name in _TABLE_METRICS:
            raise InvalidInputError(f"{where} needs y_pred, the labels at the chosen threshold.")
        pred = score_arr.argmax(axis=1) if metric.task == "multiclass" else (score_arr >= 0.5)
    else:
        pred = np.asarray(y_pred).ravel()
    if pred.shape != y_arr.shape:
        raise InvalidInputError(f"{where}: y has {y_arr.size} rows but y_pred has {pred.size}.")
    for label, values in (("y", y_arr), ("y_pred", pred)):
        if not np.all(np.isin(values, np.arange(k))):
            raise InvalidInputError(
                f"{where}: {label} must hold class codes 0..{k - 1} (1 = positive); "
                f"got values {np.unique(values)[:5].tolist()}."
            )
    return y_arr, score_arr, pred.astype(np.intp)


def _floats(values: npt.ArrayLike, label: str, where: str) -> Floats:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"{where}: {label} must be numbers (class codes 0..k-1 for labels); encode "
            "string labels first."
        ) from None


# --------------------------------------------------------------------------- resampling


def resample_weights(n: int, n_boot: int, seed: int | np.random.Generator = 0) -> Iterator[Floats]:
    """Bootstrap resamples of ``n`` rows as ``(B, n)`` count matrices, ``B`` summing to ``n_boot``.

    Row ``b`` of a matrix counts how often each row was drawn in resample
    ``b`` (each row sums to ``n``). Chunks hold about ``CHUNK_CELLS`` cells.
    """
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, CHUNK_CELLS // max(n, 1)))
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        drawn = rng.integers(0, n, size=(size, n))
        drawn += np.arange(0, size * n, n)[:, None]  # resample b counts into [b*n, (b+1)*n)
        counts = np.bincount(drawn.ravel(), minlength=size * n)
        yield counts.reshape(size, n).astype(np.float64)


def replicates(
    prepared: Sequence[Prepared], n_boot: int, seed: int | np.random.Generator = 0
) -> Floats:
    """``(n_boot, m)``: each prepared metric on the same ``n_boot`` resamples of its rows."""
    n = {p.n for p in prepared}
    if len(n) != 1 or n_boot < 1:
        raise InvalidInputError(
            f"Bootstrap needs n_boot >= 1 and metrics over the same rows; got n_boot={n_boot} "
            f"and row counts {sorted(n)}."
        )
    rng = np.random.default_rng(seed)
    cells = [p for p in prepared if isinstance(p, _Cells)]
    if len(cells) == len(prepared):
        joint = _joint_cells(cells)
        if joint is not None:
            return _from_cells(cells, *joint, n_boot=n_boot, rng=rng)
    out = np.empty((n_boot, len(prepared)))
    start = 0
    for weights in resample_weights(n.pop(), n_boot, rng):
        for j, p in enumerate(prepared):
            out[start : start + weights.shape[0], j] = p.on_weights(weights)
        start += weights.shape[0]
    return out


def _joint_cells(cells: list[_Cells]) -> tuple[Ints, Ints] | None:
    """The joint cell of each row over all tables: (first row of each joint cell, shares)."""
    joint = np.zeros(cells[0].n, dtype=np.int64)
    span = 1
    for c in cells:
        span *= c.n_cells
        if span > 1 << 62:
            return None
        joint = joint * c.n_cells + c.codes
    _, first, counts = np.unique(joint, return_index=True, return_counts=True)
    if first.size > MAX_JOINT_CELLS:
        return None
    return first, counts


def _from_cells(
    cells: list[_Cells], first: Ints, counts: Ints, *, n_boot: int, rng: np.random.Generator
) -> Floats:
    """Draw joint cell counts ~ Multinomial(n, shares), then read each metric's table from them."""
    n = int(counts.sum())
    drawn = rng.multinomial(n, counts / n, size=n_boot).astype(np.float64)
    out = np.empty((n_boot, len(cells)))
    for j, c in enumerate(cells):
        to_cell = np.zeros((first.size, c.n_cells))
        to_cell[np.arange(first.size), c.codes[first]] = 1.0
        out[:, j] = c.from_counts(drawn @ to_cell)
    return out


def percentile_interval(values: npt.ArrayLike, alpha: float) -> tuple[float, float]:
    """The ``alpha/2`` and ``1 - alpha/2`` percentiles of the finite values (NaN if none)."""
    if not 0 < alpha < 1:
        raise InvalidInputError(f"alpha must lie in (0, 1), e.g. 0.05; got {alpha}.")
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


# --------------------------------------------------------------------------- public entry points


def bootstrap_metric(
    metric: str | Metric,
    y: npt.ArrayLike,
    scores: npt.ArrayLike,
    y_pred: npt.ArrayLike | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> Estimate:
    """The metric on the rows and its ``1 - alpha`` bootstrap percentile interval.

    ``metric`` is a catalogue name (the task is inferred: regression metrics,
    else multiclass for 2-D scores, else binary) or a ``metric_fn`` result.
    """
    prepared = as_metric(metric, scores).prepare(y, scores, y_pred)
    low, high = percentile_interval(replicates([prepared], n_boot, seed)[:, 0], alpha)
    return Estimate(prepared.value(), low, high)


def paired_bootstrap(
    metric: str | Metric,
    y: npt.ArrayLike,
    a_scores: npt.ArrayLike,
    a_pred: npt.ArrayLike | None,
    b_scores: npt.ArrayLike,
    b_pred: npt.ArrayLike | None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> PairedEstimate:
    """Models ``a`` and ``b`` on the same resampled rows: values, ``b - a`` and its interval."""
    resolved = as_metric(metric, a_scores)
    pair = [resolved.prepare(y, a_scores, a_pred), resolved.prepare(y, b_scores, b_pred)]
    values = replicates(pair, n_boot, seed)
    low, high = percentile_interval(values[:, 1] - values[:, 0], alpha)
    a, b = pair[0].value(), pair[1].value()
    return PairedEstimate(a, b, b - a, low, high)
