"""Champion vs challenger: is model ``b`` better than model ``a`` on the same rows?

For each metric, a **paired** bootstrap: every resample draws the same rows
for both models, and the percentile interval of ``b − a`` over the resamples
decides (the pairing removes the row-to-row variation both models share, so
a real difference shows with far fewer rows than two separate intervals need):

- ``"better"``: the whole interval lies on the metric's good side of 0
  (above 0 where higher is better, below 0 where lower is better);
- ``"worse"``: the whole interval lies on the bad side;
- ``"no evidence"``: the interval contains 0 (or the metric is undefined).

All metrics of one comparison are evaluated on the same resamples.

For accuracy, McNemar's test is reported too: it looks only at the rows where
exactly one model is right (``a_only``, ``b_only``); under "equally accurate"
each such row is a fair coin. With fewer than 25 of them the exact binomial
test (two-sided, ``scipy.stats.binomtest``) is used and ``statistic`` is
``min(a_only, b_only)``; otherwise the chi-square statistic with Edwards'
continuity correction, ``max(|a_only − b_only| − 1, 0)² / (a_only + b_only)``,
against chi-square with one degree of freedom. The verdict itself always comes
from the bootstrap interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
from scipy.stats import binomtest, chi2

from modelyard.errors import InvalidInputError
from modelyard.evaluate.bootstrap import Metric, as_metric, percentile_interval, replicates
from modelyard.spec import METRICS

__all__ = [
    "Comparison",
    "McNemarResult",
    "Scored",
    "compare_models",
    "mcnemar",
    "mcnemar_from_counts",
]

Verdict = Literal["better", "worse", "no evidence"]
EXACT_BELOW = 25  # discordant pairs under which McNemar uses the exact binomial test


class _Goal(Protocol):
    """Anything with a metric name and a direction, such as ``spec.MetricGoal``."""

    @property
    def name(self) -> str: ...

    @property
    def direction(self) -> str | None: ...


MetricLike = str | tuple[str, str] | _Goal | Metric


@dataclass(frozen=True)
class Scored:
    """One model's output on the evaluation rows.

    ``scores``: P(positive) (binary), an ``(n, k)`` probability matrix
    (multiclass) or the predictions (regression). ``y_pred``: the labels at
    the chosen threshold; needed for label metrics and McNemar on binary tasks.
    """

    scores: npt.ArrayLike
    y_pred: npt.ArrayLike | None = None


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test on which rows each model gets right."""

    a_only: int  # rows model a gets right and model b gets wrong
    b_only: int  # rows model b gets right and model a gets wrong
    statistic: float
    p_value: float
    method: Literal["exact", "chi2"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Comparison:
    """One metric for both models, the paired difference ``b − a`` and the verdict."""

    metric: str
    direction: str
    a: float
    b: float
    diff: float
    ci_low: float
    ci_high: float
    verdict: Verdict
    alpha: float
    n_boot: int
    mcnemar: McNemarResult | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            k: (v if not isinstance(v, float) or math.isfinite(v) else None)
            for k, v in asdict(self).items()
            if k != "mcnemar"
        }
        out["mcnemar"] = None if self.mcnemar is None else self.mcnemar.to_dict()
        return out


def compare_models(
    y: npt.ArrayLike,
    a: Scored,
    b: Scored,
    metrics: Sequence[MetricLike],
    *,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> list[Comparison]:
    """Challenger ``b`` against champion ``a``, one ``Comparison`` per metric.

    ``metrics`` are catalogue names, ``(name, direction)`` pairs, goals such as
    ``spec.metric_goals("model")`` or ``metric_fn`` results; a direction left
    unset comes from the catalogue. The task is inferred from the scores (see
    ``bootstrap.infer_task``).
    """
    resolved = [_resolve(m, a.scores) for m in metrics]
    if not resolved:
        raise InvalidInputError("compare_models needs at least one metric, e.g. ['roc_auc'].")
    prepared = [
        p
        for metric, _ in resolved
        for p in (metric.prepare(y, a.scores, a.y_pred), metric.prepare(y, b.scores, b.y_pred))
    ]
    values = replicates(prepared, n_boot, seed)
    out = []
    for j, (metric, direction) in enumerate(resolved):
        value_a, value_b = prepared[2 * j].value(), prepared[2 * j + 1].value()
        low, high = percentile_interval(values[:, 2 * j + 1] - values[:, 2 * j], alpha)
        out.append(
            Comparison(
                metric=metric.name,
                direction=direction,
                a=value_a,
                b=value_b,
                diff=value_b - value_a,
                ci_low=low,
                ci_high=high,
                verdict=_verdict(low, high, direction),
                alpha=alpha,
                n_boot=n_boot,
                mcnemar=_mcnemar_for(metric, y, a, b) if metric.name == "accuracy" else None,
            )
        )
    return out


def _resolve(metric: MetricLike, scores: npt.ArrayLike) -> tuple[Metric, str]:
    """The metric to compute and the direction its verdict uses."""
    if isinstance(metric, Metric):
        return metric, metric.direction
    if isinstance(metric, str):
        name, direction = metric, None
    elif isinstance(metric, tuple):
        name, direction = metric
    else:
        name, direction = metric.name, metric.direction
    resolved = as_metric(name, scores)
    direction = direction or METRICS[name].direction
    if direction not in ("max", "min"):
        raise InvalidInputError(
            f"Direction of {name!r} must be 'max' (higher is better) or 'min'; got {direction!r}."
        )
    return resolved, direction


def _verdict(low: float, high: float, direction: str) -> Verdict:
    if math.isnan(low) or math.isnan(high):
        return "no evidence"
    if low > 0:
        return "better" if direction == "max" else "worse"
    if high < 0:
        return "worse" if direction == "max" else "better"
    return "no evidence"


def _mcnemar_for(metric: Metric, y: npt.ArrayLike, a: Scored, b: Scored) -> McNemarResult:
    if metric.task == "multiclass":
        preds = [s.y_pred if s.y_pred is not None else np.argmax(s.scores, axis=1) for s in (a, b)]
    else:
        preds = [s.y_pred for s in (a, b)]
    if preds[0] is None or preds[1] is None:
        raise InvalidInputError("McNemar's test on accuracy needs y_pred for both models.")
    return mcnemar(y, preds[0], preds[1])


def mcnemar(
    y: npt.ArrayLike,
    a_pred: npt.ArrayLike,
    b_pred: npt.ArrayLike,
    *,
    exact_below: int = EXACT_BELOW,
) -> McNemarResult:
    """McNemar's test of equal accuracy for two models' labels on the same rows."""
    truth, a_labels, b_labels = (np.asarray(v).ravel() for v in (y, a_pred, b_pred))
    if not truth.size == a_labels.size == b_labels.size:
        raise InvalidInputError(
            f"mcnemar: y, a_pred and b_pred need one value per row; got {truth.size}, "
            f"{a_labels.size} and {b_labels.size}."
        )
    a_right, b_right = a_labels == truth, b_labels == truth
    a_only = int(np.sum(a_right & ~b_right))
    b_only = int(np.sum(b_right & ~a_right))
    return mcnemar_from_counts(a_only, b_only, exact_below=exact_below)


def mcnemar_from_counts(
    a_only: int, b_only: int, *, exact_below: int = EXACT_BELOW
) -> McNemarResult:
    """McNemar's test from the two discordant counts of a paired 2×2 table."""
    discordant = a_only + b_only
    if discordant < exact_below:
        p_value = 1.0 if discordant == 0 else binomtest(b_only, discordant, 0.5).pvalue
        return McNemarResult(a_only, b_only, float(min(a_only, b_only)), float(p_value), "exact")
    statistic = max(abs(a_only - b_only) - 1, 0) ** 2 / discordant
    return McNemarResult(a_only, b_only, statistic, float(chi2.sf(statistic, 1)), "chi2")
