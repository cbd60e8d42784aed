"""The evaluation report: one self-contained HTML page and its machine-readable JSON twin.

    evaluation = build_evaluation(spec, model={...}, data={...}, y=y, scores=scores,
                                  slices=..., robustness=..., fairness=...)
    write_report(evaluation, "report.html", "report.json")

An *evaluation* is a plain dict; the JSON twin is that dict, written as is.
``render_report`` and ``write_report`` also accept numpy numbers and arrays,
tuples and objects with a ``to_dict()`` (``Perturbation``, ``GateResult``) and
turn them into plain values first; a non-finite number becomes ``null``. The
page never fetches anything (no external fonts, scripts or styles; plots are
inline SVG from ``modelyard.evaluate.plots``) and escapes all user text.

Shape (``"format": "modelyard.evaluation/1"``); only ``model``, ``data``,
``task`` and ``metrics`` are required, a missing section is shown as "not
part of this evaluation"::

    {
      "format":  "modelyard.evaluation/1",
      "model":   {"name", "version", "flavor", "digest", "threshold"},
      "data":    {"ref", "rows"},
      "task":    "binary" | "multiclass" | "regression",
      "metrics": {name: value}                       # metrics.task_report
      "curves":  binary (``curves``):
                 {"roc":  {"fpr": [..], "tpr": [..], "auc"},
                  "pr":   {"recall": [..], "precision": [..], "ap", "prevalence"},
                  "calibration": {"strategy": "uniform" | "quantile", "ece",
                                  "bins": [{"lo", "hi", "mean_pred", "frac_pos", "count"}]},
                  "cost": {"thresholds": [..], "costs": [..], "false_positive",
                           "false_negative", "currency", "best_threshold", "best_cost",
                           "chosen_threshold", "chosen_cost"}}
                 regression (``regression_curves``):
                 {"residuals": {"edges": [..], "counts": [..], "mean", "std"},
                  "error_quantiles": [{"quantile", "abs_error"}]}
      "slices":  [{"name", "condition", "size", "value", "ci_low", "ci_high", "overall",
                   "metric", "direction"}]       # metric and direction optional
      "robustness": [{"name", "kind", "metric", "metric_before", "metric_after", "delta",
                      "flip_rate", "rows", "rejected", "handled", "errors", "example"}]
      "fairness": [{"attribute", "groups": [{"group", "size", "selection_rate", "tpr",
                    "fpr", ...}], "demographic_parity_difference",
                    "equalized_odds_difference", ...}]
      "gates":   [{"name", "direction", "threshold", "value", "passed"}]
      "model_card": {"intended_use", "data", "metrics": {name: value}, "limitations": [..]}
      "drift":   [{"feature", "labels": [..], "reference": [shares], "current": [shares],
                   "statistics": {name: value}, "drifted"}]           # optional
    }

Precision of the curves: the JSON keeps at most ``JSON_POINTS`` (1,000) vertices
per curve, spread evenly along the curve's length (``plots.thin``; the ends and
the cheapest threshold are always kept), coordinates rounded to 6 decimals.
The summaries — AUC, average precision, ECE, the cheapest and the chosen
threshold and their costs — are computed on every row, unrounded. The page
draws at most ``plots.MAX_POINTS`` (200) vertices per curve. ``costs`` are
totals over the evaluated rows: ``false_positive × FP + false_negative × FN``;
the cost at ``thresholds[0]`` (above every score) is that of predicting no
positive at all.

Model card: ``intended_use`` from the spec's ``decision`` and ``description``;
``limitations`` derived from the failing gates, the slices significantly worse
than overall (their interval excludes the overall value; without an interval,
more than ``SLICE_GAP`` worse, relatively), perturbations that flip at least
``FLIP_LIMIT`` of the decisions or crash, fairness differences of at least
``FAIRNESS_LIMIT``, drifted features and small evaluation sets.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from jinja2 import Environment
from markupsafe import Markup
from sklearn import metrics as skm

from modelyard.errors import InvalidInputError
from modelyard.evaluate import plots
from modelyard.evaluate.gates import check_gates
from modelyard.evaluate.metrics import task_report
from modelyard.files import write_json_atomically, write_text_atomically
from modelyard.pages import page_environment
from modelyard.spec import METRICS, Spec

__all__ = [
    "FORMAT",
    "build_evaluation",
    "curves",
    "model_card",
    "regression_curves",
    "render_report",
    "write_report",
]

FORMAT = "modelyard.evaluation/1"
JSON_POINTS = 1_000
DECIMALS = 6
SLICE_GAP = 0.1
FLIP_LIMIT = 0.1
FAIRNESS_LIMIT = 0.1
SMALL_DATA = 1_000
ERROR_QUANTILES = (0.5, 0.75, 0.9, 0.95, 0.99, 1.0)


# --------------------------------------------------------------------------- curves


def curves(
    y: Sequence[Any] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    costs_fp: float = 1.0,
    costs_fn: float = 1.0,
    *,
    threshold: float | None = None,
    currency: str = "",
    calibration_bins: int = 15,
    calibration_strategy: Literal["uniform", "quantile"] = "uniform",
) -> dict[str, Any]:
    """ROC, precision-recall, calibration and cost curves of binary ``scores`` (P(positive)).

    ``y`` holds 0/1 labels. ``threshold`` is the model's decision threshold,
    marked on the cost curve. Calibration uses ``calibration_bins`` equal-width
    bins (``"uniform"``, as ECE does) or equal-mass bins (``"quantile"``).
    """
    labels, proba = _binary_inputs(y, scores)
    return {
        "roc": _roc(labels, proba),
        "pr": _pr(labels, proba),
        "calibration": calibration(labels, proba, calibration_bins, calibration_strategy),
        "cost": cost_curve(labels, proba, costs_fp, costs_fn, threshold, currency),
    }


def _binary_inputs(y: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(y)
    proba = np.asarray(scores, dtype=float)
    if labels.shape != proba.shape or labels.ndim != 1:
        raise InvalidInputError(
            f"curves needs one score per label; got labels of shape {labels.shape} and "
            f"scores of shape {proba.shape}."
        )
    if not set(np.unique(labels).tolist()) == {0, 1}:
        raise InvalidInputError(
            "curves needs 0/1 labels with both classes present; got the values "
            f"{np.unique(labels)[:5].tolist()}. Map the positive class to 1 first."
        )
    if not np.isfinite(proba).all():
        raise InvalidInputError("curves needs finite scores; some are NaN or infinite.")
    return labels.astype(int), proba


def _round(values: Iterable[float]) -> list[float]:
    return [round(float(v), DECIMALS) for v in values]


def _roc(y: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    fpr, tpr, _ = skm.roc_curve(y, proba)
    keep = plots.thin(fpr, tpr, JSON_POINTS)
    return {
        "fpr": _round(fpr[keep]),
        "tpr": _round(tpr[keep]),
        "auc": float(skm.roc_auc_score(y, proba)),
    }


def _pr(y: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    precision, recall, _ = skm.precision_recall_curve(y, proba, drop_intermediate=True)
    keep = plots.thin(recall, precision, JSON_POINTS)
    return {
        "recall": _round(recall[keep]),
        "precision": _round(precision[keep]),
        "ap": float(skm.average_precision_score(y, proba)),
        "prevalence": float(np.mean(y)),
    }


def calibration(
    y: np.ndarray,
    proba: np.ndarray,
    bins: int = 15,
    strategy: Literal["uniform", "quantile"] = "uniform",
) -> dict[str, Any]:
    """Reliability bins and the expected calibration error over them.

    A bin holds the scores in ``(lo, hi]`` (the first also ``lo``), as
    ``metrics.expected_calibration_error`` counts them; with ``uniform`` bins
    the ECE here equals that one. Empty bins have ``count`` 0 and null means.
    """
    if bins < 1:
        raise InvalidInputError(f"calibration needs at least 1 bin; got {bins}.")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, bins + 1)
    elif strategy == "quantile":
        edges = np.unique(np.quantile(proba, np.linspace(0.0, 1.0, bins + 1)))
        edges = edges if len(edges) > 1 else np.array([edges[0], edges[0]])
    else:
        raise InvalidInputError(
            f"Unknown calibration strategy {strategy!r}; use 'uniform' or 'quantile'."
        )
    k = len(edges) - 1
    which = np.clip(np.digitize(proba, edges[1:-1], right=True), 0, k - 1)
    counts = np.bincount(which, minlength=k)
    predicted = np.bincount(which, weights=proba, minlength=k)
    observed = np.bincount(which, weights=y.astype(float), minlength=k)
    table = []
    for i in range(k):
        n = int(counts[i])
        table.append(
            {
                "lo": float(edges[i]),
                "hi": float(edges[i + 1]),
                "mean_pred": float(predicted[i] / n) if n else None,
                "frac_pos": float(observed[i] / n) if n else None,
                "count": n,
            }
        )
    used = counts > 0
    gaps = np.abs(predicted[used] - observed[used])
    return {"strategy": strategy, "bins": table, "ece": float(np.sum(gaps) / len(proba))}


def cost_curve(
    y: np.ndarray,
    proba: np.ndarray,
    cost_fp: float,
    cost_fn: float,
    threshold: float | None = None,
    currency: str = "",
) -> dict[str, Any]:
    """Total cost ``cost_fp × FP + cost_fn × FN`` at every distinct score threshold."""
    fpr, tpr, thresholds = skm.roc_curve(y, proba, drop_intermediate=False)
    positives = int(np.sum(y))
    negatives = len(y) - positives
    costs = cost_fp * np.rint(fpr * negatives) + cost_fn * np.rint((1 - tpr) * positives)
    thresholds = thresholds.copy()
    thresholds[0] = max(1.0, float(np.nextafter(proba.max(), np.inf)))  # "never positive"
    best = int(np.argmin(costs))
    keep = plots.thin(thresholds, costs, JSON_POINTS, keep=[best])
    chosen_cost = None
    if threshold is not None:
        positive = proba >= threshold
        false_pos = int(np.sum(positive & (y == 0)))
        false_neg = int(np.sum(~positive & (y == 1)))
        chosen_cost = cost_fp * false_pos + cost_fn * false_neg
    return {
        "thresholds": _round(thresholds[keep]),
        "costs": [float(c) for c in costs[keep]],
        "false_positive": float(cost_fp),
        "false_negative": float(cost_fn),
        "currency": currency,
        "best_threshold": float(thresholds[best]),
        "best_cost": float(costs[best]),
        "chosen_threshold": None if threshold is None else float(threshold),
        "chosen_cost": chosen_cost,
    }


def regression_curves(
    y: Sequence[float] | np.ndarray, predicted: Sequence[float] | np.ndarray, bins: int = 30
) -> dict[str, Any]:
    """A histogram of residuals (actual − predicted) and quantiles of the absolute error."""
    actual = np.asarray(y, dtype=float)
    guess = np.asarray(predicted, dtype=float)
    if actual.shape != guess.shape or actual.size == 0:
        raise InvalidInputError(
            f"regression_curves needs one prediction per target; got {actual.shape} and "
            f"{guess.shape}."
        )
    residual = actual - guess
    counts, edges = np.histogram(residual[np.isfinite(residual)], bins=bins)
    errors = np.abs(residual)
    return {
        "residuals": {
            "edges": _round(edges),
            "counts": counts.tolist(),
            "mean": float(np.mean(residual)),
            "std": float(np.std(residual)),
        },
        "error_quantiles": [
            {"quantile": q, "abs_error": float(np.quantile(errors, q))} for q in ERROR_QUANTILES
        ],
    }


# --------------------------------------------------------------------------- the evaluation


def build_evaluation(
    spec: Spec,
    *,
    model: Mapping[str, Any],
    data: Mapping[str, Any],
    y: Sequence[Any] | np.ndarray,
    scores: Sequence[Any] | np.ndarray,
    threshold: float = 0.5,
    slices: Sequence[Any] = (),
    robustness: Sequence[Any] = (),
    fairness: Sequence[Any] = (),
    drift: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """The evaluation dict for ``scores`` of ``y``: metrics, curves, model gates, model card.

    ``model`` and ``data`` are copied as given (see the shape above); the
    other sections are computed elsewhere (slices, robustness, fairness,
    drift) and passed in. Only the spec's *model* gates are checked: system
    ones (latency, error rate) are measured by serving, not here.
    """
    labels, predicted = np.asarray(y), np.asarray(scores)
    metrics = task_report(spec.task, labels, predicted, threshold)
    found: dict[str, Any] = {}
    if spec.task == "binary":
        costs = spec.costs
        found = curves(
            labels,
            predicted,
            costs.false_positive,
            costs.false_negative,
            threshold=threshold,
            currency=costs.currency,
        )
    elif spec.task == "regression":
        found = regression_curves(labels, predicted)
    evaluation: dict[str, Any] = {
        "format": FORMAT,
        "model": {**model, "threshold": model.get("threshold", threshold)},
        "data": {"rows": len(labels), **data},
        "task": spec.task,
        "metrics": metrics,
        "curves": found,
        "slices": list(slices),
        "robustness": list(robustness),
        "fairness": list(fairness),
        "gates": check_gates(spec, metrics, kind="model"),
    }
    if drift is not None:
        evaluation["drift"] = list(drift)
    plain: dict[str, Any] = _plain(evaluation)
    plain["model_card"] = model_card(plain, spec)
    return plain


def _plain(value: Any, where: str = "evaluation") -> Any:
    """``value`` as JSON values: dicts, lists, str, int, float (finite), bool, None."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic | np.ndarray):
        return _plain(value.tolist(), where)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if callable(getattr(value, "to_dict", None)):
        return _plain(value.to_dict(), where)
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value), where)
    raise InvalidInputError(
        f"{where} is a {type(value).__name__}, which has no JSON form; use numbers, "
        "strings, lists and dicts."
    )


def _complete(evaluation: Mapping[str, Any]) -> dict[str, Any]:
    plain = _plain(evaluation)
    if not isinstance(plain, dict):
        raise InvalidInputError(f"An evaluation is a dict; got {type(evaluation).__name__}.")
    missing = [k for k in ("model", "data", "task", "metrics") if k not in plain]
    if missing:
        raise InvalidInputError(
            f"The evaluation lacks {missing}; build it with build_evaluation or add them "
            "(see modelyard.evaluate.report for the shape)."
        )
    plain.setdefault("format", FORMAT)
    if not plain.get("model_card"):
        plain["model_card"] = model_card(plain)
    return plain


# --------------------------------------------------------------------------- model card


def model_card(evaluation: Mapping[str, Any], spec: Spec | None = None) -> dict[str, Any]:
    """Intended use, data, headline metrics and limitations derived from ``evaluation``."""
    metrics = evaluation.get("metrics") or {}
    names = [g.name for g in spec.metrics] if spec else [g["name"] for g in _gates(evaluation)]
    headline = {n: metrics.get(n) for n in names if n in metrics} or dict(metrics)
    return {
        "intended_use": _intended_use(spec),
        "data": _data_sentence(evaluation),
        "metrics": headline,
        "limitations": limitations(evaluation),
    }


def _intended_use(spec: Spec | None) -> str:
    if spec is None:
        return "Not stated: the evaluation was made without its spec."
    parts = [p.strip() for p in (spec.decision, spec.description) if p and p.strip()]
    if not parts:
        parts = ["Not stated: add a `decision:` line to modelyard.yaml."]
    target = f"Predicts {spec.target!r} ({spec.task})."
    return " ".join([*parts, target])


def _data_sentence(evaluation: Mapping[str, Any]) -> str:
    data = evaluation.get("data") or {}
    rows = data.get("rows")
    sentence = f"Evaluated on {data.get('ref') or 'an unnamed data set'}"
    sentence += f" ({rows:,} rows)." if isinstance(rows, int) else "."
    prevalence = (evaluation.get("curves") or {}).get("pr", {}).get("prevalence")
    if prevalence is not None:
        sentence += f" {prevalence:.1%} of them are positive."
    return sentence


def limitations(evaluation: Mapping[str, Any]) -> list[str]:
    """One sentence per problem the evaluation shows; see the module docstring for the rules."""
    found = [_gate_limit(g) for g in _gates(evaluation) if not g.get("passed")]
    slices = evaluation.get("slices") or []
    found += [_slice_limit(s) for s in worse_slices(slices)[:3]]
    found += [_goal_limit(s) for s in slices if s.get("passed") is False and not _is_worse(s)]
    found += _robustness_limits(evaluation.get("robustness") or [])
    found += _fairness_limits(evaluation.get("fairness") or [])
    drifted = [d.get("feature") for d in evaluation.get("drift") or [] if d.get("drifted")]
    if drifted:
        found.append(f"Features drifted from the training data: {', '.join(map(str, drifted))}.")
    rows = (evaluation.get("data") or {}).get("rows")
    if isinstance(rows, int) and rows < SMALL_DATA:
        found.append(f"Evaluated on only {rows:,} rows: every number here is uncertain.")
    return found or ["No failing gate, weak slice, fragile input or fairness gap was found."]


def _gates(evaluation: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(evaluation.get("gates") or [])


def _gate_label(gate: Mapping[str, Any]) -> str:
    sign = "≥" if gate.get("direction", "max") == "max" else "≤"
    threshold = gate.get("threshold")
    shown = f"{threshold:g}" if isinstance(threshold, int | float) else _fmt(threshold)
    return f"{gate.get('name')} {sign} {shown}"


def _gate_limit(gate: Mapping[str, Any]) -> str:
    value = gate.get("value")
    measured = "not measured" if value is None else f"measured {_fmt(value)}"
    return f"Fails the gate {_gate_label(gate)}: {measured}."


def _better(metric: Any) -> str:
    """``"max"`` or ``"min"``: the catalogue's direction of ``metric`` (``"max"`` if unknown)."""
    info = METRICS.get(metric) if isinstance(metric, str) else None
    return info.direction if info else "max"


def _direction(piece: Mapping[str, Any]) -> str:
    return str(piece.get("direction") or _better(piece.get("metric")))


def _is_worse(piece: Mapping[str, Any]) -> bool:
    """Significantly worse than overall: ``clearly_worse`` when given (``slices.SliceResult``),
    else the interval excludes overall, else more than ``SLICE_GAP`` worse, relatively."""
    if piece.get("clearly_worse") is not None:
        return bool(piece["clearly_worse"])
    value, overall = piece.get("value"), piece.get("overall")
    if value is None or overall is None:
        return False
    sign = 1.0 if _direction(piece) == "max" else -1.0
    low, high = piece.get("ci_low"), piece.get("ci_high")
    if low is not None and high is not None:
        return bool(high < overall) if sign > 0 else bool(low > overall)
    return bool(sign * (overall - value) > SLICE_GAP * abs(overall))


def worse_slices(slices: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Slices significantly worse than overall, the largest gap first."""
    worse = [s for s in slices if _is_worse(s)]
    return sorted(worse, key=lambda s: -abs(float(s["overall"]) - float(s["value"])))


def _slice_limit(piece: Mapping[str, Any]) -> str:
    metric = piece.get("metric") or "the metric"
    interval = ""
    if piece.get("ci_low") is not None and piece.get("ci_high") is not None:
        interval = f", interval {_fmt(piece['ci_low'])}–{_fmt(piece['ci_high'])}"
    return (
        f"Weaker on slice {piece.get('name')!r} ({piece.get('size', '?')} rows): {metric} "
        f"{_fmt(piece.get('value'))}{interval}, against {_fmt(piece.get('overall'))} overall."
    )


def _goal_limit(piece: Mapping[str, Any]) -> str:
    goal = f" {piece['goal']}" if piece.get("goal") else ""
    measured = f"{piece.get('metric') or 'value'} {_fmt(piece.get('value'))}"
    return f"Slice {piece.get('name')!r} fails its goal{goal}: {measured}."


def _robustness_limits(results: Sequence[Mapping[str, Any]]) -> list[str]:
    found = []
    for r in results:
        if r.get("errors"):
            found.append(
                f"Input handling bug under {r.get('name')!r}: {len(r['errors'])} unexpected "
                f"error(s), e.g. {r['errors'][0]}"
            )
        elif r.get("kind") != "malformed" and (r.get("flip_rate") or 0) >= FLIP_LIMIT:
            found.append(
                f"Sensitive to {r.get('name')}: {r['flip_rate']:.0%} of decisions change"
                + (f" and {r['metric']} moves by {_fmt(r['delta'])}." if r.get("delta") else ".")
            )
    return found


def _fairness_limits(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    found = []
    for entry in entries:
        for key, value in entry.items():
            if _flagged(key, value):
                name = key.replace("_", " ").capitalize()
                found.append(f"{name} of {value:.2f} across {entry.get('attribute', '?')}.")
    return found


# --------------------------------------------------------------------------- rendering


def render_report(evaluation: Mapping[str, Any]) -> str:
    """The evaluation as one self-contained HTML page (see the module docstring)."""
    return _render(_complete(evaluation))


def write_report(
    evaluation: Mapping[str, Any],
    html_path: str | os.PathLike[str],
    json_path: str | os.PathLike[str] | None = None,
) -> None:
    """Write the page and, with ``json_path``, its JSON twin; each file appears whole."""
    plain = _complete(evaluation)
    page = _render(plain)
    if json_path is not None:
        write_json_atomically(Path(json_path), plain, make_parents=True)
    write_text_atomically(Path(html_path), page, make_parents=True)


@cache
def _environment() -> Environment:
    return page_environment("modelyard.evaluate", {"num": _fmt, "pct": _pct, "signed": _signed})


def _render(plain: dict[str, Any]) -> str:
    return _environment().get_template("report.html.j2").render(_view(plain))


def _fmt(value: Any) -> str:
    """A number for people: thousands separated, three decimals for fractions."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 10_000 or (abs(value) >= 100 and value.is_integer()):
            return f"{value:,.0f}"
        return f"{value:.2e}" if 0 < abs(value) < 1e-3 else f"{value:.3f}"
    return str(value)


def _signed(value: Any) -> str:
    """A change: always signed, three decimals, a true minus sign."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "—"
    return f"{value:+.3f}".replace("-", "−")


def _pct(value: Any) -> str:
    return "—" if value is None else f"{float(value):.1%}"


def _view(plain: dict[str, Any]) -> dict[str, Any]:
    """Everything the template shows, with the plots drawn."""
    model, data = plain.get("model") or {}, plain.get("data") or {}
    gates = _gates(plain)
    view = {
        "title": f"{model.get('name', 'model')} v{model.get('version', '?')}",
        "model": model,
        "data": data,
        "task": plain["task"],
        "created_at": plain.get("created_at"),
        "gates": [{**g, "label": _gate_label(g)} for g in gates],
        "gates_passed": sum(bool(g.get("passed")) for g in gates),
        "metrics": plain.get("metrics") or {},
        "card": plain["model_card"],
        "robustness": _robustness_view(plain.get("robustness") or []),
        "fairness": _fairness_view(plain.get("fairness") or []),
        "drift": _drift_view(plain.get("drift")),
        **_slices_view(plain.get("slices") or []),
        **_curves_view(plain["task"], plain.get("curves") or {}),
    }
    return view


def _curves_view(task: str, found: Mapping[str, Any]) -> dict[str, Any]:
    view: dict[str, Any] = dict.fromkeys(
        ("roc", "pr", "calibration", "cost", "residuals"), None
    ) | dict.fromkeys(("calibration_info", "cost_info", "residual_info"), None)
    view["error_quantiles"] = found.get("error_quantiles") or []
    if roc := found.get("roc"):
        view["roc"] = plots.roc_plot(roc["fpr"], roc["tpr"], roc.get("auc"))
    if pr := found.get("pr"):
        view["pr"] = plots.pr_plot(
            pr["recall"], pr["precision"], pr.get("ap"), pr.get("prevalence")
        )
    if cal := found.get("calibration"):
        view["calibration"] = plots.calibration_plot(cal["bins"], cal.get("ece"))
        view["calibration_info"] = cal
    if cost := found.get("cost"):
        view["cost"] = plots.cost_plot(
            cost["thresholds"],
            cost["costs"],
            cost.get("chosen_threshold"),
            cost.get("best_threshold"),
            cost.get("currency") or "",
        )
        view["cost_info"] = cost
    if res := found.get("residuals"):
        x_label = "residual (actual − predicted)"
        view["residuals"] = plots.histogram_plot(res["edges"], res["counts"], x_label)
        view["residual_info"] = res
    view["has_curves"] = any(view[k] for k in ("roc", "pr", "calibration", "cost", "residuals"))
    return view


def _slices_view(slices: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    rows = [{**s, "worse": _is_worse(s)} for s in slices]
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_metric.setdefault(str(row.get("metric") or ""), []).append(row)
    charts = [Markup(plots.slice_plot(group, metric)) for metric, group in by_metric.items()]
    return {"slices": rows, "slice_plots": charts}


_PERTURBATION_DEFAULTS: dict[str, Any] = {
    "name": "?",
    "kind": "?",
    "metric": "",
    "metric_before": None,
    "metric_after": None,
    "delta": None,
    "flip_rate": None,
    "rows": None,
    "rejected": None,
    "handled": None,
    "example": None,
}


def _robustness_view(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for given in results:
        r = {**_PERTURBATION_DEFAULTS, **given}
        better = _better(r.get("metric"))
        delta = r.get("delta")
        worse = delta is not None and (delta < -0.01 if better == "max" else delta > 0.01)
        rows.append({**r, "worse": worse, "errors": r.get("errors") or []})
    return rows


def _fairness_view(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per attribute: its disparity numbers, notes, and a table of its groups."""
    view = []
    for entry in entries:
        groups = list(entry.get("groups") or [])
        columns = list(dict.fromkeys(k for g in groups for k in g if k != "group"))
        summary = {
            k: v for k, v in entry.items() if isinstance(v, int | float) and not isinstance(v, bool)
        }
        headers = {c: c.replace("_", " ") for c in columns}
        if "metric" in headers and entry.get("metric_name"):
            headers["metric"] = str(entry["metric_name"])
        view.append(
            {
                "attribute": entry.get("attribute", "?"),
                "summary": summary,
                "notes": [str(n) for n in entry.get("notes") or []],
                "columns": columns,
                "headers": headers,
                "groups": groups,
                "flagged": {k for k, v in summary.items() if _flagged(k, v)},
            }
        )
    return view


def _flagged(key: str, value: Any) -> bool:
    return (
        key.endswith("_difference") and isinstance(value, int | float) and value >= FAIRNESS_LIMIT
    )


def _drift_view(entries: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    if entries is None:
        return None
    view = []
    for d in entries:
        labels = [str(x) for x in d.get("labels") or []]
        reference = [float(v or 0.0) for v in d.get("reference") or []]
        current = [float(v or 0.0) for v in d.get("current") or []]
        plot = plots.drift_plot(str(d.get("feature", "?")), labels, reference, current)
        view.append({**d, "plot": plot, "statistics": d.get("statistics") or {}})
    return view
