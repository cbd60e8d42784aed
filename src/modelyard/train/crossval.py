"""k-fold cross-validation of one family's parameters: the unit of work of a search.

``CVJob`` holds everything a fold needs — the family's ``fit`` and flavor, the
rows, the fold positions and the metric — and nothing else, so a remote worker
can run ``job.run_fold(params, i)`` without the project or its metadata database.
Folds are stratified for classification and shuffled with the seed, so every
trial of a search sees the same folds. A fold's model is scored by the flavor's
scorer class, the one ``flavors.load`` gives serving.

``score`` takes one metric of ``evaluate.metrics.task_report`` on the scorer's
output, so search and evaluation measure alike; binary label metrics (F1,
accuracy, …) are taken at 0.5 — the decision threshold is chosen later, on the
final model, from the spec's costs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from modelyard.errors import TrainingError
from modelyard.evaluate.metrics import task_report
from modelyard.spec import METRICS
from modelyard.train import flavors
from modelyard.train.families import CVData, TrainingData

Fold = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class CVJob:
    """A family's ``fit`` cross-validated on fixed folds of ``data``, scored by ``metric``."""

    fit: Callable[[TrainingData, dict[str, Any]], Any]
    flavor: str
    data: CVData
    folds: tuple[Fold, ...]
    metric: str

    def run_fold(self, params: dict[str, Any], fold: int) -> float:
        """Fit on every fold but ``fold``, score ``fold``'s rows."""
        train, valid = self.folds[fold]
        data = self.data
        weight = None if data.sample_weight is None else data.sample_weight[train]
        model = self.fit(
            TrainingData(
                data.X[train],
                data.y[train],
                data.X[valid],
                data.y[valid],
                data.encoder,
                data.task,
                data.n_classes,
                weight,
            ),
            params,
        )
        scorer = _scorer(self.flavor, model, data.task)
        value = score(self.metric, data.task, data.y[valid], scorer.predict(data.X[valid]))
        if not np.isfinite(value):
            raise TrainingError(f"{self.metric} on fold {fold} is {value}: the model is unusable.")
        return value


_SCORERS: dict[str, Callable[[Any, str], flavors.Scorer]] = {
    "lightgbm": flavors.LightGBMScorer,
    "sklearn": flavors.SklearnScorer,
}


def _scorer(flavor: str, model: Any, task: str) -> flavors.Scorer:
    """The scorer serving would build from the saved model, built on the fitted one
    (saving is lossless; skipping it saves a skops round trip per fold)."""
    scorer = _SCORERS.get(flavor)
    if scorer is None:
        return flavors.load(flavor, flavors.dump(flavor, model), task)
    return scorer(model, task)


def make_folds(data: CVData, folds: int, seed: int) -> tuple[Fold, ...]:
    """``folds`` shuffled folds of ``data``'s rows, stratified for classification."""
    if folds < 2:
        raise TrainingError(f"Cross-validation needs folds >= 2; got {folds}. Use 3 or 5.")
    if len(data.y) < folds:
        raise TrainingError(
            f"Cannot cut {len(data.y)} rows into {folds} folds; use fewer folds or more rows."
        )
    if data.task == "regression":
        splitter: KFold | StratifiedKFold = KFold(folds, shuffle=True, random_state=seed)
    else:
        _check_class_counts(data.y, folds)
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return tuple(splitter.split(data.X, data.y))


def _check_class_counts(y: np.ndarray, folds: int) -> None:
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < folds:
        rare = classes[int(np.argmin(counts))].item()
        raise TrainingError(
            f"Class {rare!r} has {counts.min()} rows, fewer than the {folds} folds, so some "
            "fold would have none of it. Use fewer folds, or collect more rows of that class."
        )


def check_metric(metric: str, task: str) -> None:
    """Refuse, before any work, a metric that cannot score ``task`` in cross-validation."""
    usable = [m for m in _reported(task) if m in METRICS]
    if metric not in usable:
        raise TrainingError(
            f"Search cannot optimise '{metric}' for a {task} task; "
            f"choose one of {', '.join(usable)}."
        )


def _reported(task: str) -> list[str]:
    """The metric names ``task_report`` gives for ``task`` (asked of a tiny sample)."""
    if task not in _SAMPLES:
        raise TrainingError(f"Search cannot train task {task!r}; known: {', '.join(_SAMPLES)}.")
    y, scores = _SAMPLES[task]
    return list(task_report(task, np.asarray(y), np.asarray(scores)))


_SAMPLES: dict[str, tuple[list[Any], list[Any]]] = {
    "binary": ([0, 1, 0, 1], [0.2, 0.7, 0.4, 0.6]),
    "multiclass": ([0, 1, 2], [[0.6, 0.2, 0.2], [0.2, 0.6, 0.2], [0.2, 0.2, 0.6]]),
    "regression": ([1.0, 2.0, 3.0], [1.1, 1.9, 3.2]),
}


def score(metric: str, task: str, y: np.ndarray, predicted: np.ndarray) -> float:
    """Catalogue metric ``metric`` of the scorer output ``predicted`` against ``y``."""
    return task_report(task, y, predicted)[metric]
