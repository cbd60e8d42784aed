"""Slices: the metric on subsets of the evaluation rows, with sample sizes and intervals.

- ``named_slices`` evaluates the spec's slices (``Spec.slices``): each ``where``
  is a pandas query on the raw evaluation rows; a slice with a ``goal`` is
  judged on the goal's metric and threshold, the others on the primary metric.
  A slice smaller than its ``min_size`` is reported with its size but no value
  ("too small to judge").
- ``worst_slices`` discovers weak segments on its own: every value of every
  feature and, with ``pairs``, every combination of two features' values.
  Numeric features with more than ``bins`` distinct values are cut into
  quantile bins fitted on these rows (open-ended outer bins); other values are
  taken as they are, and a missing value is a value of its own. Slices under
  ``min_size`` rows are skipped.

Ranking. A slice's point value is a noisy estimate, and the smaller the slice
the noisier: ranking by it would put small slices that were unlucky first, and
among a thousand candidate slices some are very unlucky. ``worst_slices``
lists the slices whose point value is worse than overall, ordered by their
optimistic bound ``value ± z·SE`` (``+`` where higher is better; SE is the
bootstrap standard error) with ``z`` Bonferroni-adjusted for the number of
slices judged (``alpha / 2m``): a slice ranks high only when even its
optimistic value is bad, so a large, clearly weak segment beats a small,
possibly unlucky one. That bound is reported as ``rank_bound``; ``ci_low`` /
``ci_high`` are the ordinary ``1 − alpha`` percentile interval of the slice
(its own rows resampled), and ``clearly_worse`` says whether it excludes the
overall value.

A weak segment is reported once, not once per sub-segment: as in Slice Finder
(Chung et al., 2019), a single-feature slice that is clearly worse than
overall (its whole interval on the bad side) is not combined with other
features, because its pairs would only repeat it (a noisier copy of the same
weakness, the most extreme of many by chance). Pairs are searched among the
other levels, where an interaction of two features can show a weakness
neither shows alone. To look inside a weak segment, run ``worst_slices`` on
its rows.

Cost: the candidates are ``features + features·(features − 1)/2`` partitions of
the rows; label metrics (recall, precision, F1, accuracy) bootstrap on cell
counts at a cost independent of slice size, score metrics (ROC-AUC, log loss,
…) cost ``n_boot × rows`` per slice, about ``n_boot × rows × partitions / 2``
in all. For millions of rows and many features, pass a sample of the rows or
fewer features.
"""

from __future__ import annotations

import itertools
import keyword
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.stats import norm

from modelyard.errors import DataError, InvalidInputError
from modelyard.evaluate.bootstrap import Metric, as_metric, metric_fn, percentile_interval
from modelyard.evaluate.bootstrap import replicates as bootstrap_replicates
from modelyard.spec import Slice, Spec

__all__ = ["SliceResult", "named_slices", "worst_slices"]

Ints = npt.NDArray[np.intp]
Direction = Literal["max", "min"]


@dataclass(frozen=True)
class SliceResult:
    """The metric on one slice next to its value on all rows.

    ``gap`` is ``value − overall`` in the metric's units (negative is worse
    for a metric where higher is better). ``value``, the interval and ``gap``
    are None when the slice is too small to judge or the metric is undefined
    on it; ``note`` then says why. ``ci_low`` / ``ci_high`` are the bootstrap
    percentile interval, ``std_error`` the bootstrap standard error;
    ``rank_bound`` (``worst_slices`` only) is the multiplicity-adjusted
    optimistic bound the ranking uses. ``goal`` and ``passed`` are the spec
    slice's goal and its verdict, when it has a threshold.
    """

    name: str
    condition: str
    size: int
    value: float | None
    ci_low: float | None
    ci_high: float | None
    overall: float
    gap: float | None
    metric: str = ""
    direction: Direction = "max"
    std_error: float | None = None
    rank_bound: float | None = None
    goal: str | None = None
    passed: bool | None = None
    note: str | None = None

    @property
    def clearly_worse(self) -> bool:
        """True when the whole interval lies on the bad side of the overall value."""
        bound = self.ci_high if self.direction == "max" else self.ci_low
        if bound is None:
            return False
        return bound < self.overall if self.direction == "max" else bound > self.overall

    def to_dict(self) -> dict[str, Any]:
        out = {k: _finite(v) if isinstance(v, float) else v for k, v in asdict(self).items()}
        out["clearly_worse"] = self.clearly_worse
        return out


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------- named slices


def named_slices(
    frame: pd.DataFrame,
    spec: Spec,
    y: npt.ArrayLike,
    scores: npt.ArrayLike,
    y_pred: npt.ArrayLike | None,
    metric: str | Metric,
    *,
    n_boot: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
) -> list[SliceResult]:
    """One result per ``spec.slices`` entry, in the spec's order."""
    _check_rows(frame, y, scores, y_pred)
    primary = as_metric(metric, scores)
    rows = frame.reset_index(drop=True)
    judges: dict[str, _Judge] = {}
    results = []
    for piece in spec.slices:
        chosen = primary if piece.goal is None else metric_fn(piece.goal.name, primary.task)
        if chosen.name not in judges:
            judges[chosen.name] = _Judge(chosen, y, scores, y_pred, n_boot, seed, alpha)
        judge = judges[chosen.name]
        result = judge(piece.name, piece.where, _query(rows, piece), piece.min_size)
        results.append(_with_goal(result, piece))
    return results


def _query(rows: pd.DataFrame, piece: Slice) -> Ints:
    """Positions of the rows that ``piece.where`` selects; a clear error if it cannot run."""
    try:
        selected = rows.query(piece.where)
    except Exception as exc:  # pandas raises many types here; all mean "fix the expression"
        raise DataError(
            f"Slice {piece.name!r}: cannot evaluate where {piece.where!r} on the evaluation "
            f"rows ({type(exc).__name__}: {exc}). Fix the slice's where in modelyard.yaml; "
            f"the columns are: {', '.join(map(str, rows.columns))}.",
            details={"slice": piece.name, "where": piece.where},
        ) from exc
    if not isinstance(selected, pd.DataFrame):
        raise DataError(
            f"Slice {piece.name!r}: where {piece.where!r} does not select rows; write a "
            "condition such as \"region == 'north' and age >= 65\".",
            details={"slice": piece.name, "where": piece.where},
        )
    return np.asarray(selected.index, dtype=np.intp)


def _with_goal(result: SliceResult, piece: Slice) -> SliceResult:
    goal = piece.goal
    if goal is None or goal.threshold is None:
        return result
    passed = None if result.value is None else goal.passes(result.value)
    return SliceResult(**{**asdict(result), "goal": goal.label, "passed": passed})


# --------------------------------------------------------------------------- one slice


class _Judge:
    """Evaluates slices of one set of rows on one metric, against its overall value."""

    def __init__(
        self,
        metric: Metric,
        y: npt.ArrayLike,
        scores: npt.ArrayLike,
        y_pred: npt.ArrayLike | None,
        n_boot: int,
        seed: int,
        alpha: float,
        *,
        only_if_worse: bool = False,
    ) -> None:
        self.metric = metric
        self.y, self.scores = np.asarray(y), np.asarray(scores)
        self.y_pred = None if y_pred is None else np.asarray(y_pred)
        self.overall = metric(self.y, self.scores, self.y_pred)
        self.n_boot, self.seed, self.alpha = n_boot, seed, alpha
        self.only_if_worse = only_if_worse  # skip the bootstrap of slices that are not worse

    def __call__(self, name: str, condition: str, index: Ints, min_size: int) -> SliceResult:
        """The slice's value and interval, or a note on why it cannot be judged."""
        metric = self.metric
        base = asdict(
            SliceResult(name, condition, int(index.size), None, None, None, self.overall, None)
        )
        base.update(metric=metric.name, direction=metric.direction)
        if index.size < min_size:
            note = f"too small to judge: {index.size} rows, fewer than min_size {min_size}"
            return SliceResult(**{**base, "note": note})
        sub_pred = None if self.y_pred is None else self.y_pred[index]
        prepared = metric.prepare(self.y[index], self.scores[index], sub_pred)
        value = prepared.value()
        if math.isnan(value):
            return SliceResult(**{**base, "note": f"{metric.name} is undefined on this slice"})
        worse = value < self.overall if metric.direction == "max" else value > self.overall
        low = high = spread = math.nan
        if worse or not self.only_if_worse:
            boot = bootstrap_replicates([prepared], self.n_boot, self.seed)[:, 0]
            low, high = percentile_interval(boot, self.alpha)
            finite = boot[np.isfinite(boot)]
            spread = float(np.std(finite, ddof=1)) if finite.size > 1 else math.nan
        base.update(value=value, ci_low=low, ci_high=high, gap=value - self.overall)
        return SliceResult(**{**base, "std_error": spread})


# --------------------------------------------------------------------------- discovery


def worst_slices(
    frame: pd.DataFrame,
    features: Sequence[str],
    y: npt.ArrayLike,
    scores: npt.ArrayLike,
    y_pred: npt.ArrayLike | None,
    metric: str | Metric,
    *,
    direction: Direction | None = None,
    min_size: int = 100,
    top: int = 10,
    pairs: bool = True,
    bins: int = 4,
    n_boot: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
) -> list[SliceResult]:
    """Up to ``top`` slices worse than overall, the most clearly worse first.

    ``direction`` overrides the catalogue's ("max": higher is better).
    """
    _check_rows(frame, y, scores, y_pred)
    if bins < 2 or min_size < 1 or top < 1:
        raise InvalidInputError(
            f"worst_slices needs bins >= 2, min_size >= 1 and top >= 1; got bins={bins}, "
            f"min_size={min_size}, top={top}."
        )
    chosen = as_metric(metric, scores)
    if direction is not None and direction != chosen.direction:
        chosen = Metric(chosen.name, chosen.task, direction, chosen.build)
    judge = _Judge(chosen, y, scores, y_pred, n_boot, seed, alpha, only_if_worse=True)
    levels = [_levels(frame, feature, bins) for feature in features]
    singles = {key: judge(*found, min_size) for key, found in _singles(levels, min_size)}
    flagged = {key for key, result in singles.items() if result.clearly_worse}
    found = list(singles.values())
    if pairs:
        found += [judge(*c, min_size) for c in _pairs(levels, min_size, skip=flagged)]
    z = float(norm.isf(alpha / (2 * max(len(found), 1))))
    ranked = [r for r in (_with_rank_bound(r, z) for r in found) if r.rank_bound is not None]
    ranked.sort(key=lambda r: (-_shortfall(r), -r.size, r.name))
    return ranked[:top]


def _with_rank_bound(result: SliceResult, z: float) -> SliceResult:
    """Add the Bonferroni-adjusted optimistic bound ``value ± z·SE`` to a worse slice."""
    if result.value is None or result.gap is None or result.std_error is None:
        return result
    maximise = result.direction == "max"
    if math.isnan(result.std_error) or (result.gap >= 0 if maximise else result.gap <= 0):
        return result
    bound = result.value + (z if maximise else -z) * result.std_error
    return SliceResult(**{**asdict(result), "rank_bound": bound})


def _shortfall(result: SliceResult) -> float:
    """How far the rank bound lies on the bad side of the overall value."""
    bound = result.rank_bound if result.rank_bound is not None else math.nan
    return result.overall - bound if result.direction == "max" else bound - result.overall


@dataclass(frozen=True)
class _Levels:
    """One feature's partition of the rows: a code per row, a (name, condition) per code."""

    codes: Ints
    labels: list[tuple[str, str]]


def _levels(frame: pd.DataFrame, feature: str, bins: int) -> _Levels:
    if feature not in frame.columns:
        raise DataError(
            f"Feature {feature!r} is not a column of the evaluation rows; columns are: "
            f"{', '.join(map(str, frame.columns))}."
        )
    column = frame[feature]
    ref = _column_ref(feature)
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    if numeric and column.nunique(dropna=True) > bins:
        return _binned(column, feature, ref, bins)
    codes, uniques = pd.factorize(column, sort=True, use_na_sentinel=True)
    labels = [(f"{feature} = {v}", f"{ref} == {_literal(v)}") for v in uniques]
    return _with_missing(np.asarray(codes, dtype=np.intp), labels, feature, ref)


def _binned(column: pd.Series, feature: str, ref: str, bins: int) -> _Levels:
    """Quantile bins fitted on these rows; the outer bins are open-ended."""
    values = column.to_numpy(dtype=np.float64, na_value=np.nan)
    quantiles = np.nanquantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    edges = np.unique(quantiles)
    text = [_number(e) for e in edges]
    codes = np.searchsorted(edges, values, side="right").astype(np.intp)
    labels = [(f"{feature} < {text[0]}", f"{ref} < {text[0]}")]
    for lo, hi in itertools.pairwise(text):
        labels.append((f"{lo} ≤ {feature} < {hi}", f"{ref} >= {lo} and {ref} < {hi}"))
    labels.append((f"{feature} ≥ {text[-1]}", f"{ref} >= {text[-1]}"))
    codes = np.where(np.isnan(values), -1, codes)
    return _with_missing(codes, labels, feature, ref)


def _with_missing(codes: Ints, labels: list[tuple[str, str]], feature: str, ref: str) -> _Levels:
    if (codes < 0).any():
        codes = np.where(codes < 0, len(labels), codes)
        labels = [*labels, (f"{feature} missing", f"{ref}.isna()")]
    return _Levels(codes, labels)


_Key = tuple[int, int]  # (feature position, level code)


def _singles(levels: list[_Levels], min_size: int) -> Iterator[tuple[_Key, tuple[str, str, Ints]]]:
    """Every feature level with at least ``min_size`` rows: its key and (name, condition, rows)."""
    for i, level in enumerate(levels):
        for code, found in _parts(level.codes, level.labels, min_size):
            yield (i, code), found


def _pairs(
    levels: list[_Levels], min_size: int, skip: set[_Key]
) -> Iterator[tuple[str, str, Ints]]:
    """Every two-feature slice with at least ``min_size`` rows whose levels are not in ``skip``."""
    for i, a in enumerate(levels):
        for j in range(i + 1, len(levels)):
            b = levels[j]
            width = len(b.labels)
            labels = [
                (f"{na} & {nb}", f"{ca} and {cb}") for na, ca in a.labels for nb, cb in b.labels
            ]
            for code, found in _parts(a.codes * width + b.codes, labels, min_size):
                if (i, code // width) not in skip and (j, code % width) not in skip:
                    yield found


def _parts(
    codes: Ints, labels: list[tuple[str, str]], min_size: int
) -> Iterator[tuple[int, tuple[str, str, Ints]]]:
    """The rows of each code with at least ``min_size`` of them, in ascending row order."""
    order = np.argsort(codes, kind="stable")
    ends = np.cumsum(np.bincount(codes, minlength=len(labels)))
    for code, (name, condition) in enumerate(labels):
        start = ends[code - 1] if code else 0
        if ends[code] - start >= min_size:
            yield code, (name, condition, order[start : ends[code]])


# --------------------------------------------------------------------------- helpers


def _check_rows(
    frame: pd.DataFrame, y: npt.ArrayLike, scores: npt.ArrayLike, y_pred: npt.ArrayLike | None
) -> None:
    sizes = {"frame": len(frame), "y": np.shape(y)[0], "scores": np.shape(scores)[0]}
    if y_pred is not None:
        sizes["y_pred"] = np.shape(y_pred)[0]
    if len(set(sizes.values())) > 1:
        raise InvalidInputError(
            "Slices need one y, score and prediction per evaluation row; got "
            + ", ".join(f"{k}: {v}" for k, v in sizes.items())
            + "."
        )


def _column_ref(name: str) -> str:
    """How a pandas query names the column (backticks unless it is a plain identifier)."""
    plain = name.isidentifier() and not keyword.iskeyword(name)
    return name if plain else f"`{name}`"


def _literal(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return _number(value)
    return repr(value)


def _number(value: float) -> str:
    """The shortest text that reads back as the same float (integers without '.0')."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
