"""Evaluate a registered model version on a dataset version, and compare two versions.

``evaluate_version(project, "loans@3", "loans-recent@1")`` loads the version's
bundle (both blobs sha256-verified), scores every row of the dataset version
through the bundle (cleaning replay, encoder, model) and builds the evaluation
dict of ``modelyard.evaluate.report``: metrics and curves, the spec's named
slices and the worst slices found automatically, fairness over
``columns.sensitive`` (binary tasks), robustness to perturbed inputs, the
gates and a model card. The JSON report is stored in the artifact store and
its digest, the metrics and the gate results are stored with the version
(``registry.versions.record_evaluation``): the stored gates replace the
training-time ones and carry the dataset version they were measured on.

Gates: every spec threshold measured here becomes a gate
``{"name", "kind", "direction", "threshold", "value", "passed", "data"}``:

- ``kind="model"``: each model metric with a threshold (``check_gates``);
- ``kind="slice"``: each spec slice with a goal threshold, named
  ``"<metric> on slice <name>"``; a slice too small to judge does not pass
  (a threshold is a promise that must be checked, never skipped);
- ``kind="system"``: ``p99_latency_ms``, the single-record p99 latency through
  the serving path measured on *this machine* (``train.leaderboard.measure_costs``).

Fairness limits in the spec (``fairness:``) are gated per sensitive column. The other
system objectives (error rate, availability, throughput, cost) need live
traffic: they are listed under ``not_gated`` and read by release and rollback.

Sampling, stated in the dict under ``sampling``: the worst-slice search runs on
at most ``SLICE_SEARCH_ROWS`` rows and robustness on at most
``ROBUSTNESS_ROWS`` rows (uniform samples without replacement, seeded);
metrics, curves, named slices and fairness use every row.

``compare_versions`` scores both versions on the identical rows and runs the
paired bootstrap of ``evaluate.compare.compare_models`` on the spec's model
metrics (verdict better / worse / no evidence per metric, ``b`` against
``a``); for classification, accuracy is added when the spec does not list it,
so that McNemar's test is reported.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from modelyard.data.datasets import load_dataset
from modelyard.errors import DataError
from modelyard.evaluate.compare import Comparison, Scored, compare_models
from modelyard.evaluate.fairness import fairness_report
from modelyard.evaluate.gates import check_gates
from modelyard.evaluate.report import build_evaluation, model_card
from modelyard.evaluate.robustness import robustness_report
from modelyard.evaluate.slices import SliceResult, named_slices, worst_slices
from modelyard.files import json_text
from modelyard.project import Project
from modelyard.registry.versions import ModelVersion, record_evaluation, resolve
from modelyard.spec import Spec
from modelyard.train.bundle import ModelBundle, load_bundle
from modelyard.train.leaderboard import json_records, measure_costs
from modelyard.train.trainer import primary_goal, target_values

__all__ = [
    "LATENCY_RECORDS",
    "ROBUSTNESS_ROWS",
    "SLICE_SEARCH_ROWS",
    "compare_versions",
    "evaluate_version",
    "report_bytes",
]

#: The worst-slice search looks at a uniform sample of at most this many rows.
SLICE_SEARCH_ROWS = 50_000
#: Robustness perturbs a uniform sample of at most this many rows.
ROBUSTNESS_ROWS = 5_000
#: Distinct records the latency measurement cycles through.
LATENCY_RECORDS = 200

Progress = Callable[[str], None]


@dataclass(frozen=True)
class _Scored:
    """One version's output on every row of one dataset version."""

    version: ModelVersion
    bundle: ModelBundle
    y: np.ndarray
    scores: np.ndarray
    y_pred: np.ndarray | None


def evaluate_version(
    project: Project,
    model_ref: str,
    data_ref: str,
    *,
    slices: bool = True,
    robustness: bool = True,
    fairness: bool = True,
    n_boot: int = 200,
    seed: int = 0,
    progress: Progress | None = None,
    predictions: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Evaluate ``model_ref`` on ``data_ref``, store the results with the version, return them.

    Returns the evaluation dict (``modelyard.evaluate.report``'s shape, plus
    ``sampling``, ``latency`` and ``not_gated``); write it with
    ``report.write_report``. With ``predictions``, also writes a Parquet file
    of the rows the numbers come from: ``row`` (position), the spec's id column,
    ``label``, ``score`` (multiclass ``score_<class>``, regression
    ``prediction``) and ``y_pred``. ``slices=False`` skips the slice sections
    of the report, not the spec's slice goals: those are gates.
    """
    say = progress or (lambda _: None)
    spec = project.spec
    version = resolve(project, model_ref)
    say(f"loading {version.ref} and {data_ref}")
    bundle = load_bundle(project.artifacts, version.digest)
    dataset, frame = load_dataset(project, data_ref)
    frame = frame.reset_index(drop=True)
    say(f"scoring {len(frame):,} rows")
    scored = _score(spec, version, bundle, frame)
    if predictions is not None:
        _write_predictions(predictions, spec, frame, scored)
    y, scores, y_pred = scored.y, scored.scores, scored.y_pred
    metric = primary_goal(spec).name
    rng = np.random.default_rng(seed)
    sampling: dict[str, Any] = {}

    found_slices: list[SliceResult] = []
    named: list[SliceResult] = []
    gated = any(p.goal is not None and p.goal.threshold is not None for p in spec.slices)
    if slices or gated:  # slice goals are gates: measured even when slices are not reported
        say("slices")
        named = named_slices(frame, spec, y, scores, y_pred, metric, n_boot=n_boot, seed=seed)
    if slices:
        found_slices = [*named, *_worst_slices(spec, frame, scored, metric, n_boot, seed, rng)]
        sampling["worst_slices"] = _sampled(min(len(frame), SLICE_SEARCH_ROWS), len(frame))

    fair: list[Any] = []
    if fairness and spec.task == "binary" and spec.columns.sensitive and y_pred is not None:
        say("fairness")
        fair = fairness_report(
            frame, spec.columns.sensitive, y, y_pred, scores=scores, metric=metric
        )

    perturbed: list[Any] = []
    if robustness:
        say("robustness")
        rows = _sample(len(frame), ROBUSTNESS_ROWS, rng)
        sample = frame.iloc[rows].reset_index(drop=True)
        perturbed = robustness_report(
            bundle, sample, y[rows], metric=metric, seed=seed, reference=frame
        )
        sampling["robustness"] = _sampled(rows.size, len(frame))

    say("latency on this machine")
    records = json_records(frame.head(LATENCY_RECORDS), bundle.input_names, bundle.encoder)
    costs = measure_costs(bundle, records)

    evaluation = build_evaluation(
        spec,
        model={
            "name": version.name,
            "version": version.version,
            "ref": version.ref,
            "flavor": version.flavor,
            "digest": version.digest,
            "run": version.run_id,
        },
        data={"ref": dataset.ref, "digest": dataset.content_hash},
        y=y,
        scores=scores,
        threshold=bundle.threshold,
        slices=found_slices,
        robustness=perturbed,
        fairness=fair,
    )
    gates = _gates(spec, evaluation["metrics"], named, costs, dataset.ref, fair)
    evaluation["gates"] = gates
    evaluation["created_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    evaluation["sampling"] = sampling
    evaluation["latency"] = {**costs, "records": len(records), "machine": "this machine"}
    evaluation["not_gated"] = _not_gated(spec, gates)
    evaluation["model_card"] = model_card(evaluation, spec)

    say("storing the results with the version")
    _store(project, version, dataset.ref, evaluation, costs)
    return evaluation


def _store(
    project: Project,
    version: ModelVersion,
    data_ref: str,
    evaluation: dict[str, Any],
    costs: dict[str, float],
) -> None:
    """The report blob first, then metrics and gates in one transaction."""
    blob = project.artifacts.put_bytes(report_bytes(evaluation))
    stored = {k: v for k, v in evaluation["metrics"].items() if isinstance(v, int | float)}
    if "predict_p99_ms" in costs:
        stored["p99_latency_ms"] = costs["predict_p99_ms"]
    record_evaluation(
        project,
        version.ref,
        metrics=stored,
        gates=evaluation["gates"],
        report_digest=blob.digest,
        data_ref=data_ref,
    )


def report_bytes(evaluation: dict[str, Any]) -> bytes:
    """The JSON report exactly as ``report.write_report`` writes it (and as it is stored)."""
    return json_text(evaluation).encode("utf-8")


def compare_versions(
    project: Project,
    ref_a: str,
    ref_b: str,
    data_ref: str,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[Comparison]:
    """Challenger ``ref_b`` against champion ``ref_a`` on every row of ``data_ref``.

    One ``Comparison`` per spec model metric (``diff`` is ``b − a``; the
    verdict says whether ``b`` is better, worse, or there is no evidence),
    plus accuracy with McNemar's test for classification tasks.
    """
    spec = project.spec
    _, frame = load_dataset(project, data_ref)
    frame = frame.reset_index(drop=True)
    a, b = (_load_and_score(project, spec, ref, frame) for ref in (ref_a, ref_b))
    if a.bundle.task != b.bundle.task:
        raise DataError(
            f"{a.version.ref} is a {a.bundle.task} model and {b.version.ref} a "
            f"{b.bundle.task} one; compare models of the same task."
        )
    metrics: list[Any] = list(spec.metric_goals("model"))
    if spec.task in ("binary", "multiclass") and not any(g.name == "accuracy" for g in metrics):
        metrics.append("accuracy")
    return compare_models(
        a.y,
        Scored(a.scores, a.y_pred),
        Scored(b.scores, b.y_pred),
        metrics,
        n_boot=n_boot,
        seed=seed,
    )


def _write_predictions(
    path: str | os.PathLike[str], spec: Spec, frame: pd.DataFrame, scored: _Scored
) -> Path:
    """The rows the numbers come from, as Parquet; the file appears whole.

    Columns: ``row`` (position in the dataset version), the spec's id column
    when the data has it, ``label`` (as the model learns it: binary 1 =
    positive class, multiclass the class code, regression the value), the
    scores (binary ``score`` = P(positive); multiclass ``score_<class>``;
    regression ``prediction``) and ``y_pred`` (classification: the label at the
    model's threshold, or the arg-max class).
    """
    columns: dict[str, Any] = {"row": np.arange(len(frame), dtype=np.int64)}
    id_column = spec.columns.id
    if id_column and id_column in frame.columns and id_column not in ("row", "label"):
        columns[id_column] = frame[id_column].to_numpy()
    columns["label"] = scored.y
    if scored.scores.ndim == 2:
        classes = scored.bundle.classes or tuple(str(i) for i in range(scored.scores.shape[1]))
        for i, name in enumerate(classes):
            columns[f"score_{name}"] = scored.scores[:, i]
    elif scored.bundle.task == "regression":
        columns["prediction"] = scored.scores
    else:
        columns["score"] = scored.scores
    if scored.y_pred is not None:
        columns["y_pred"] = scored.y_pred
    table = pa.table(columns)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(handle)
    try:
        pq.write_table(table, temporary)
        Path(temporary).replace(target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


# --------------------------------------------------------------------------- helpers


def _load_and_score(project: Project, spec: Spec, ref: str, frame: pd.DataFrame) -> _Scored:
    version = resolve(project, ref)
    return _score(spec, version, load_bundle(project.artifacts, version.digest), frame)


def _score(spec: Spec, version: ModelVersion, bundle: ModelBundle, frame: pd.DataFrame) -> _Scored:
    if bundle.task != spec.task:
        raise DataError(
            f"{version.ref} is a {bundle.task} model but the spec's task is {spec.task}; "
            "evaluate it with the spec it was trained under (--spec)."
        )
    y = _labels(spec, bundle, frame)
    scores = np.asarray(bundle.score_frame(frame))
    y_pred: np.ndarray | None = None
    if bundle.task == "binary":
        y_pred = (scores >= bundle.threshold).astype(np.int64)
    elif bundle.task == "multiclass":
        y_pred = np.argmax(scores, axis=1).astype(np.int64)
    return _Scored(version, bundle, y, scores, y_pred)


def _labels(spec: Spec, bundle: ModelBundle, frame: pd.DataFrame) -> np.ndarray:
    """The target as the model learnt it (multiclass: codes of the *model's* classes)."""
    y, classes = target_values(spec, frame)
    if classes is None or bundle.classes is None or tuple(classes) == tuple(bundle.classes):
        return y
    codes = {c: i for i, c in enumerate(bundle.classes)}
    unknown = sorted(set(classes) - set(codes))
    if unknown:
        raise DataError(
            f"Target '{spec.target}' holds classes the model never learnt: {unknown}. "
            f"The model knows {list(bundle.classes)}; evaluate on data of those classes."
        )
    return np.asarray([codes[classes[i]] for i in y], dtype=np.int64)


def _worst_slices(
    spec: Spec,
    frame: pd.DataFrame,
    scored: _Scored,
    metric: str,
    n_boot: int,
    seed: int,
    rng: np.random.Generator,
) -> list[SliceResult]:
    """The worst slices over the spec's features, searched on a sample of the rows."""
    rows = _sample(len(frame), SLICE_SEARCH_ROWS, rng)
    features = [c for c in spec.feature_columns(list(frame.columns)) if c in frame.columns]
    return worst_slices(
        frame.iloc[rows].reset_index(drop=True),
        features,
        scored.y[rows],
        scored.scores[rows],
        None if scored.y_pred is None else scored.y_pred[rows],
        metric,
        n_boot=n_boot,
        seed=seed,
    )


def _sample(n: int, limit: int, rng: np.random.Generator) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(rng.choice(n, size=limit, replace=False))


def _sampled(rows: int, total: int) -> dict[str, Any]:
    return {"rows": rows, "of": total, "sampled": rows < total}


def _gates(
    spec: Spec,
    metrics: dict[str, Any],
    named: list[SliceResult],
    costs: dict[str, float],
    data_ref: str,
    fairness: Sequence[Any] = (),
) -> list[dict[str, Any]]:
    gates = [{**g.to_dict(), "kind": "model"} for g in check_gates(spec, metrics, "model")]
    gates += _fairness_gates(spec, fairness)
    for piece, result in zip(spec.slices, named, strict=True):
        goal = piece.goal
        if goal is None or goal.threshold is None:
            continue
        gates.append(
            {
                "name": f"{goal.name} on slice {piece.name}",
                "direction": goal.direction or "max",
                "threshold": goal.threshold,
                "value": result.value,
                "passed": bool(result.passed),
                "kind": "slice",
                "rows": result.size,
                **({"note": result.note} if result.note else {}),
            }
        )
    measured = {"p99_latency_ms": costs["predict_p99_ms"]} if "predict_p99_ms" in costs else {}
    for g in check_gates(spec, measured, "system"):
        if g.name == "p99_latency_ms":
            gates.append({**g.to_dict(), "kind": "system", "note": "measured on this machine"})
    return [{**g, "data": data_ref} for g in gates]


def _fairness_gates(spec: Spec, results: Sequence[Any]) -> list[dict[str, Any]]:
    """One gate per sensitive column and per fairness limit the spec sets."""
    gates = []
    for result in results:
        for measure, (direction, limit) in spec.fairness.limits().items():
            value = getattr(result, measure)
            known = value is not None and not math.isnan(value)  # NaN: all-zero rates
            passed = known and (value <= limit if direction == "min" else value >= limit)
            gates.append(
                {
                    "name": f"{measure} ({result.attribute})",
                    "direction": direction,
                    "threshold": limit,
                    "value": value if known else None,
                    "passed": bool(passed),
                    "kind": "fairness",
                }
            )
    return gates


def _not_gated(spec: Spec, gates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spec thresholds this evaluation cannot measure, and who does."""
    done = {g["name"] for g in gates}
    return [
        {
            "name": goal.name,
            "threshold": goal.threshold,
            "reason": "needs live traffic: measured by serving, read by release and rollback",
        }
        for goal in spec.metric_goals("system")
        if goal.threshold is not None and goal.name not in done
    ]
