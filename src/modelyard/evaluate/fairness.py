"""Fairness: per-group metrics and the disparity measures, with fairlearn's definitions.

For each sensitive attribute (``Spec.columns.sensitive``) the rows are split by
the attribute's value and each group gets its size, selection rate
P(ŷ = 1), true-positive rate P(ŷ = 1 | y = 1), false-positive rate
P(ŷ = 1 | y = 0), accuracy and, optionally, the primary metric. Then:

- demographic-parity difference = max − min selection rate; ratio = min / max;
- equalised-odds difference = the larger of the TPR gap (max − min) and the
  FPR gap; equalised-odds ratio = the smaller of the TPR ratio and the FPR
  ratio (each min / max).

These are fairlearn's definitions (``demographic_parity_difference`` …
``equalized_odds_ratio`` with ``method="between_groups"``, ``agg="worst_case"``),
implemented with numpy and checked against fairlearn in the tests, including
its edge cases:

- a group with no positive labels has TPR 0, one with no negatives FPR 0
  (scikit-learn's normalised confusion matrix turns 0/0 into 0). That can
  inflate the equalised-odds difference, so the result carries a note naming
  such groups;
- a ratio whose largest rate is 0 is 0/0: NaN (``null`` in JSON);
- the equalised-odds ratio is NaN when the TPR ratio is; when only the FPR
  ratio is NaN (no group has a false positive) it is the TPR ratio.

Unlike fairlearn, which refuses them, missing values of a sensitive attribute
form their own group, reported with ``group = None``: dropping those rows
would hide exactly the people whose attribute was not recorded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from modelyard.errors import DataError, InvalidInputError
from modelyard.evaluate.bootstrap import Metric, metric_fn

__all__ = ["FairnessResult", "GroupMetrics", "fairness_report"]

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class GroupMetrics:
    """One value of a sensitive attribute and how the model treats its rows."""

    group: Any  # the attribute's value; None for rows where it is missing
    size: int
    positives: int
    selection_rate: float
    tpr: float
    fpr: float
    accuracy: float
    metric: float | None = None  # the primary metric on the group, when one was asked for

    def to_dict(self) -> dict[str, Any]:
        return {k: _json(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class FairnessResult:
    """Per-group metrics and disparities for one sensitive attribute."""

    attribute: str
    groups: tuple[GroupMetrics, ...]
    demographic_parity_difference: float
    demographic_parity_ratio: float
    equalized_odds_difference: float
    equalized_odds_ratio: float
    metric_name: str | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "attribute": self.attribute,
            "groups": [g.to_dict() for g in self.groups],
            "demographic_parity_difference": _json(self.demographic_parity_difference),
            "demographic_parity_ratio": _json(self.demographic_parity_ratio),
            "equalized_odds_difference": _json(self.equalized_odds_difference),
            "equalized_odds_ratio": _json(self.equalized_odds_ratio),
            "metric_name": self.metric_name,
            "notes": list(self.notes),
        }


def _json(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def fairness_report(
    frame: pd.DataFrame,
    sensitive: Sequence[str],
    y: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    *,
    scores: npt.ArrayLike | None = None,
    metric: str | Metric | None = None,
) -> list[FairnessResult]:
    """One ``FairnessResult`` per attribute in ``sensitive`` (columns of ``frame``).

    ``y`` and ``y_pred`` are binary (0/1, 1 = positive), one per row of
    ``frame``. With ``metric`` (a binary catalogue name such as ``"roc_auc"``,
    or a ``metric_fn`` result) and the ``scores`` it needs, each group also
    gets that metric.
    """
    truth, predicted = _binary_labels(y, y_pred, len(frame))
    primary = metric_fn(metric, "binary") if isinstance(metric, str) else metric
    score_arr = None if scores is None else np.asarray(scores, dtype=np.float64)
    if primary is not None and score_arr is None:
        raise InvalidInputError(f"fairness_report: metric {primary.name!r} needs scores.")
    results = []
    for attribute in sensitive:
        if attribute not in frame.columns:
            raise DataError(
                f"Sensitive attribute {attribute!r} is not a column of the evaluation data "
                f"(columns: {', '.join(map(str, frame.columns))}). Fix columns.sensitive "
                "in modelyard.yaml or add the column."
            )
        codes, values = _groups(frame[attribute])
        groups = _group_metrics(codes, values, truth, predicted)
        if primary is not None and score_arr is not None:
            groups = _with_metric(groups, codes, primary, truth, score_arr, predicted)
        results.append(_disparities(attribute, groups, primary))
    return results


def _binary_labels(
    y: npt.ArrayLike, y_pred: npt.ArrayLike, rows: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    arrays = []
    for label, values in (("y", y), ("y_pred", y_pred)):
        arr = np.asarray(values).ravel()
        if arr.size != rows:
            raise InvalidInputError(
                f"fairness_report: {label} has {arr.size} values for {rows} rows; "
                "pass one per evaluation row."
            )
        if not np.all(np.isin(arr, (0, 1))):
            raise InvalidInputError(
                f"fairness_report: {label} must be binary labels 0/1 (1 = positive); "
                f"got values {pd.unique(arr)[:5].tolist()}."
            )
        arrays.append(arr.astype(np.intp))
    return arrays[0], arrays[1]


def _groups(column: pd.Series) -> tuple[npt.NDArray[np.intp], list[Any]]:
    """Group code per row (sorted values first, missing last) and the value of each code."""
    codes, uniques = pd.factorize(column, sort=True, use_na_sentinel=True)
    values: list[Any] = [_json(v) for v in uniques]
    codes = np.asarray(codes, dtype=np.intp)
    if (codes < 0).any():
        codes = np.where(codes < 0, len(values), codes)
        values.append(None)
    return codes, values


def _group_metrics(
    codes: npt.NDArray[np.intp],
    values: list[Any],
    y: npt.NDArray[np.intp],
    y_pred: npt.NDArray[np.intp],
) -> list[GroupMetrics]:
    table = np.bincount(codes * 4 + 2 * y + y_pred, minlength=4 * len(values)).reshape(-1, 4)
    tn, fp, fn, tp = table.T.astype(np.float64)
    size = table.sum(axis=1)
    return [
        GroupMetrics(
            group=value,
            size=int(size[g]),
            positives=int(tp[g] + fn[g]),
            selection_rate=float((fp[g] + tp[g]) / size[g]),
            tpr=_rate(tp[g], tp[g] + fn[g]),
            fpr=_rate(fp[g], fp[g] + tn[g]),
            accuracy=float((tp[g] + tn[g]) / size[g]),
        )
        for g, value in enumerate(values)
    ]


def _rate(hits: float, total: float) -> float:
    """``hits / total``, 0 when there is nothing to count (fairlearn / scikit-learn)."""
    return float(hits / total) if total > 0 else 0.0


def _with_metric(
    groups: list[GroupMetrics],
    codes: npt.NDArray[np.intp],
    metric: Metric,
    y: npt.NDArray[np.intp],
    scores: Floats,
    y_pred: npt.NDArray[np.intp],
) -> list[GroupMetrics]:
    out = []
    for g, group in enumerate(groups):
        rows = codes == g
        value = metric(y[rows], scores[rows], y_pred[rows])
        out.append(GroupMetrics(**{**asdict(group), "metric": value}))
    return out


def _spread(rates: Sequence[float]) -> tuple[float, float]:
    """max − min, and min / max (NaN when max is 0)."""
    low, high = min(rates), max(rates)
    return high - low, (low / high if high > 0 else math.nan)


def _disparities(
    attribute: str, groups: list[GroupMetrics], metric: Metric | None
) -> FairnessResult:
    dp_diff, dp_ratio = _spread([g.selection_rate for g in groups])
    tpr_diff, tpr_ratio = _spread([g.tpr for g in groups])
    fpr_diff, fpr_ratio = _spread([g.fpr for g in groups])
    # fairlearn takes Python's min([tpr_ratio, fpr_ratio]): a NaN in either place yields the first
    eo_ratio = (
        tpr_ratio if math.isnan(tpr_ratio) or math.isnan(fpr_ratio) else min(tpr_ratio, fpr_ratio)
    )
    return FairnessResult(
        attribute=attribute,
        groups=tuple(groups),
        demographic_parity_difference=dp_diff,
        demographic_parity_ratio=dp_ratio,
        equalized_odds_difference=max(tpr_diff, fpr_diff),
        equalized_odds_ratio=eo_ratio,
        metric_name=None if metric is None else metric.name,
        notes=_notes(attribute, groups),
    )


def _notes(attribute: str, groups: list[GroupMetrics]) -> tuple[str, ...]:
    notes = []
    for g in groups:
        name = f"{attribute}={g.group!r}" if g.group is not None else f"{attribute} missing"
        if g.positives == 0:
            notes.append(
                f"Group {name} has no positive labels: its TPR is reported as 0 (fairlearn's "
                "convention), which can inflate the equalised-odds difference."
            )
        if g.positives == g.size:
            notes.append(
                f"Group {name} has no negative labels: its FPR is reported as 0 (fairlearn's "
                "convention), which can inflate the equalised-odds difference."
            )
    return tuple(notes)
