"""Train candidates on one recorded split, evaluate them, and keep each as a run.

The split follows the spec (stratified for classification, grouped when the
spec names a group column; train 64 % / validation 16 % / test 20 %) and is
recorded by row ids as an artifact of every run, so the run can be rebuilt.
Boosted trees stop early on validation; the decision threshold is chosen on
validation from the spec's business costs; all reported metrics are measured
on the test rows no candidate has seen.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modelyard.data.cleaning import Recipe, apply_recipe
from modelyard.data.datasets import DatasetVersion
from modelyard.data.encoding import FeatureEncoder
from modelyard.data.splits import SplitPositions, make_split
from modelyard.errors import DataError, TrainingError
from modelyard.evaluate.gates import GateResult, check_gates
from modelyard.evaluate.metrics import best_threshold, classification_report
from modelyard.project import Project
from modelyard.spec import Spec
from modelyard.train import flavors
from modelyard.train.bundle import ModelBundle
from modelyard.train.candidates import Candidate, default_candidates
from modelyard.train.runs import Run

Progress = Callable[[str], None]


@dataclass
class CandidateResult:
    """A trained candidate: its run, its saved bundle, its test metrics and gates."""

    name: str
    baseline: bool
    run_id: str
    digest: str
    bundle: ModelBundle
    metrics: dict[str, float]
    gates: list[GateResult] = field(default_factory=list)

    @property
    def gates_passed(self) -> bool:
        return all(g.passed for g in self.gates)


def binary_target(spec: Spec, frame: pd.DataFrame) -> np.ndarray:
    if spec.target not in frame.columns:
        raise DataError(
            f"Target column '{spec.target}' (from the spec) is not in the data; "
            f"columns are {list(frame.columns)}."
        )
    target = frame[spec.target]
    if target.isna().any():
        raise DataError(
            f"Target '{spec.target}' has {int(target.isna().sum())} missing values; "
            "drop or label those rows first."
        )
    positive = spec.positive_class if spec.positive_class is not None else 1
    y: np.ndarray = (target.astype(str) == str(positive)).to_numpy(np.int64)
    if y.min() == y.max():
        raise DataError(
            f"Target '{spec.target}' has a single class; need both {positive!r} and another value."
        )
    return y


def train_candidates(
    project: Project,
    dataset: DatasetVersion,
    frame: pd.DataFrame,
    *,
    candidates: list[Candidate] | None = None,
    seed: int = 42,
    progress: Progress | None = None,
) -> list[CandidateResult]:
    """Fit and evaluate every candidate on the same split; one run each."""
    if project.spec.task != "binary":
        raise TrainingError(
            f"This release trains binary tasks; the spec says task '{project.spec.task}'."
        )
    y = binary_target(project.spec, frame)
    split = make_split(frame, project.spec, seed=seed)
    rows = split.positions(frame)
    record = project.artifacts.put_bytes(json.dumps(split.to_dict()).encode())
    recipe, cleaning = None, None
    if project.spec.cleaning:
        recipe = Recipe.from_spec_like(list(project.spec.cleaning))
        frame, y, rows, cleaning = _clean(frame, y, rows, recipe)
    features = project.spec.feature_columns(list(frame.columns))
    encoder = FeatureEncoder.fit(frame.iloc[rows.train], features)
    X = encoder.transform(frame)
    results = []
    for candidate in candidates or default_candidates(seed):
        if progress:
            progress(candidate.name)
        with Run(project, name=candidate.name, seed=split.seed) as run:
            run.split = split.describe()
            run.log_artifact("split", record)
            run.add_input(dataset.id, "train")
            if cleaning:
                run.tags["cleaning"] = json.dumps(cleaning["fit"])[:2000]
            result = _train_one(project, run, candidate, encoder, X, y, rows, recipe)
            results.append(result)
    return results


def _train_one(
    project: Project,
    run: Run,
    candidate: Candidate,
    encoder: FeatureEncoder,
    X: np.ndarray,
    y: np.ndarray,
    split: SplitPositions,
    recipe: Recipe | None,
) -> CandidateResult:
    costs = project.spec.costs
    run.log_params(
        {**candidate.params, "features": len(encoder.fields), "baseline": candidate.baseline}
    )
    started = time.perf_counter()
    try:
        model = candidate.fit(
            X[split.train],
            y[split.train],
            X[split.validation],
            y[split.validation],
            encoder,
            candidate.params,
        )
    except (ValueError, RuntimeError) as exc:
        raise TrainingError(f"Candidate '{candidate.name}' failed to fit: {exc}") from exc
    fit_seconds = time.perf_counter() - started
    model_bytes = flavors.dump(candidate.flavor, model)
    bundle = ModelBundle.from_bytes(
        candidate.flavor, model_bytes, encoder, project.spec.task, project.spec.target
    )
    bundle.recipe = recipe
    bundle.threshold, _ = best_threshold(
        y[split.validation],
        bundle.predict_proba(X[split.validation]),
        costs.false_positive,
        costs.false_negative,
    )
    metrics = classification_report(
        y[split.test], bundle.predict_proba(X[split.test]), bundle.threshold
    )
    metrics["fit_seconds"] = fit_seconds
    metrics["predict_p50_ms"] = _single_row_latency_ms(bundle, X[split.test[:200]])
    manifest = bundle.save(project.artifacts, model_bytes)
    metrics["model_bytes"] = float(len(model_bytes))
    run.log_metrics(metrics)
    run.log_artifact("model", manifest)
    return CandidateResult(
        candidate.name,
        candidate.baseline,
        run.id,
        manifest.digest,
        bundle,
        metrics,
        check_gates(project.spec, metrics, "model"),
    )


def _clean(
    frame: pd.DataFrame, y: np.ndarray, rows: SplitPositions, recipe: Recipe
) -> tuple[pd.DataFrame, np.ndarray, SplitPositions, dict[str, Any]]:
    """Fit ``recipe`` on the training rows only; replay it on the others as serving will.

    Row filters (de-duplication, outlier removal) may drop training rows, never
    validation or test rows, so the positions are renumbered for what is kept.
    """
    clean, report = apply_recipe(frame.reset_index(drop=True), recipe, fit_rows=rows.train)
    kept = clean.index.to_numpy()
    where = np.full(len(frame), -1)
    where[kept] = np.arange(len(kept))
    renumbered = SplitPositions(
        where[np.intersect1d(rows.train, kept)], where[rows.validation], where[rows.test]
    )
    return clean.reset_index(drop=True), y[kept], renumbered, report


def _single_row_latency_ms(bundle: ModelBundle, rows: np.ndarray) -> float:
    timings = []
    for i in range(len(rows)):
        started = time.perf_counter()
        bundle.predict_proba(rows[i : i + 1])
        timings.append(time.perf_counter() - started)
    return float(np.median(timings) * 1000)
