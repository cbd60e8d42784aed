"""Train candidates on one recorded split, evaluate them, and keep each as a run.

The split is stratified and seeded (train 64 % / validation 16 % / test 20 %).
Boosted trees stop early on validation; the decision threshold is chosen on
validation from the spec's business costs; all reported metrics are measured
on the test rows no candidate has seen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modelyard.data.datasets import DatasetVersion
from modelyard.data.encoding import FeatureEncoder
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
class Split:
    """Row positions of each part, and how they were drawn."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    seed: int

    def describe(self) -> dict[str, Any]:
        return {
            "method": "stratified",
            "seed": self.seed,
            "rows": {
                "train": len(self.train),
                "validation": len(self.validation),
                "test": len(self.test),
            },
        }


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


def stratified_split(y: np.ndarray, seed: int) -> Split:
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    rest, test = train_test_split(rows, test_size=0.2, stratify=y, random_state=seed)
    train, valid = train_test_split(rest, test_size=0.2, stratify=y[rest], random_state=seed)
    return Split(np.sort(train), np.sort(valid), np.sort(test), seed)


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
    split = stratified_split(y, seed)
    features = project.spec.feature_columns(list(frame.columns))
    encoder = FeatureEncoder.fit(frame.iloc[split.train], features)
    X = encoder.transform(frame)
    results = []
    for candidate in candidates or default_candidates(seed):
        if progress:
            progress(candidate.name)
        results.append(_train_one(project, dataset, candidate, encoder, X, y, split))
    return results


def _train_one(
    project: Project,
    dataset: DatasetVersion,
    candidate: Candidate,
    encoder: FeatureEncoder,
    X: np.ndarray,
    y: np.ndarray,
    split: Split,
) -> CandidateResult:
    costs = project.spec.costs
    with Run(project, name=candidate.name, seed=split.seed) as run:
        run.split = split.describe()
        run.add_input(dataset.id, "train")
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


def _single_row_latency_ms(bundle: ModelBundle, rows: np.ndarray) -> float:
    timings = []
    for i in range(len(rows)):
        started = time.perf_counter()
        bundle.predict_proba(rows[i : i + 1])
        timings.append(time.perf_counter() - started)
    return float(np.median(timings) * 1000)
