"""Train candidates on one recorded split, evaluate them, and keep each as a run.

    train_candidates(project, dataset)       one run per family, baselines first
    ├── prepare(spec, frame, split, policy)  target, cleaning, encoder, imbalance → Prepared
    ├── search (optional)                    modelyard.train.search, cross-validated on the
    │                                        training rows; a "search" run holds the trials
    ├── fit_candidate(spec, family, params, prepared) → Fitted: model, bundle, test metrics
    └── costs                                fit time, latency, throughput, size (leaderboard)

The split follows the spec (stratified for classification, grouped when the
spec names a group column; train 64 % / validation 16 % / test 20 %) and is
recorded by row ids as an artifact of every run, so the run can be rebuilt
(``modelyard.train.reproduce``). The cleaning recipe is fitted on the training
rows only; class imbalance handling (the spec's ``training.imbalance``) touches
the training rows only. Boosted trees stop early on validation; the binary
decision threshold is chosen on validation from the spec's business costs; all
reported metrics are measured on the test rows no candidate has seen.

A candidate that fails to fit is recorded as a failed run with its error and
the others go on; only when every candidate fails does training raise.
"""

from __future__ import annotations

import importlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from modelyard.data.cleaning import Recipe, apply_recipe
from modelyard.data.datasets import DatasetVersion, load_dataset
from modelyard.data.encoding import FeatureEncoder
from modelyard.data.imbalance import ImbalancePolicy, resample, sample_weights
from modelyard.data.splits import Split, SplitPositions, make_split
from modelyard.errors import DataError, InvalidInputError, TrainingError
from modelyard.evaluate.gates import GateResult, check_gates
from modelyard.evaluate.metrics import best_threshold, task_report
from modelyard.project import Project
from modelyard.spec import MetricGoal, SearchSettings, Spec
from modelyard.store import Blob
from modelyard.train import flavors
from modelyard.train.bundle import ModelBundle, OnnxBlob
from modelyard.train.families import CVData, Family, TrainingData, families_for
from modelyard.train.leaderboard import json_records, measure_costs
from modelyard.train.runs import Run

#: ``progress(family, stage)``; stage is "search", "search 3/20", "fit", "done" or "failed".
Progress = Callable[[str, str], None]
TASKS = ("binary", "multiclass", "regression")
#: The metric a search optimises when the spec names no model metric.
DEFAULT_GOALS = {"binary": "roc_auc", "multiclass": "f1_macro", "regression": "rmse"}


@dataclass(frozen=True)
class SearchOptions:
    """A hyper-parameter search for every family with a search space."""

    method: str = "tpe"
    trials: int = 20
    folds: int = 3
    engine: str = "local"
    storage: str | None = None

    @classmethod
    def from_settings(cls, settings: SearchSettings, storage: str | None = None) -> SearchOptions:
        return cls(settings.method, settings.trials, settings.folds, settings.engine, storage)


@dataclass
class CandidateResult:
    """A trained (or failed) candidate: its run, its saved bundle, its test metrics and gates."""

    name: str
    baseline: bool
    run_id: str
    digest: str | None
    bundle: ModelBundle | None
    metrics: dict[str, float]
    gates: list[GateResult] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    status: str = "finished"
    error: str | None = None

    @property
    def gates_passed(self) -> bool:
        return self.status == "finished" and all(g.passed for g in self.gates)


@dataclass(frozen=True)
class Prepared:
    """The split's rows as every candidate sees them: cleaned, encoded, re-weighted."""

    task: str
    X: np.ndarray
    y: np.ndarray
    rows: SplitPositions
    encoder: FeatureEncoder
    recipe: Recipe | None
    cleaning: dict[str, Any] | None
    classes: tuple[str, ...] | None
    policy: ImbalancePolicy
    imbalance: dict[str, Any]
    X_train: np.ndarray
    y_train: np.ndarray
    sample_weight: np.ndarray | None
    test_records: list[dict[str, Any]]

    @property
    def n_classes(self) -> int:
        return len(self.classes) if self.classes is not None else 2

    def training_data(self) -> TrainingData:
        valid = self.rows.validation
        return TrainingData(
            self.X_train,
            self.y_train,
            self.X[valid],
            self.y[valid],
            self.encoder,
            self.task,
            self.n_classes,
            self.sample_weight,
        )

    def cv_data(self) -> CVData:
        """The training rows for a cross-validated search, each row once.

        Resampling before cutting folds would put copies of a row on both sides
        of a fold, so a resampling policy is given to the search as class
        weights with the same target balance (``after / before`` per class).
        """
        train = self.rows.train
        return CVData(
            self.X[train], self.y[train], self.encoder, self.task, self.n_classes, self.cv_weight
        )

    @property
    def cv_weight(self) -> np.ndarray | None:
        if self.policy.method == "none" or self.task == "regression":
            return None
        y = self.y[self.rows.train]
        if self.policy.method == "class_weight":
            return sample_weights(y)
        before, after = self.imbalance["before"]["counts"], self.imbalance["after"]["counts"]
        per_class = {int(k): after[k] / count for k, count in before.items()}
        return np.array([per_class[int(v)] for v in y])


@dataclass
class Fitted:
    """A fitted model, its saved bytes, the bundle that scores like them, and test metrics."""

    model: Any
    model_bytes: bytes
    bundle: ModelBundle
    metrics: dict[str, float]
    fit_seconds: float


# --------------------------------------------------------------------------- targets


def binary_target(spec: Spec, frame: pd.DataFrame) -> np.ndarray:
    """1 where the target is the spec's positive class (default 1), else 0."""
    target = _target_column(spec, frame)
    positive = spec.positive_class if spec.positive_class is not None else 1
    y: np.ndarray = (target.astype(str) == str(positive)).to_numpy(np.int64)
    if y.min() == y.max():
        raise DataError(
            f"Target '{spec.target}' has a single class; need both {positive!r} and another value."
        )
    return y


def target_values(spec: Spec, frame: pd.DataFrame) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """The target as the families learn it, and the class labels (multiclass: code i)."""
    if spec.task == "binary":
        return binary_target(spec, frame), None
    target = _target_column(spec, frame)
    if spec.task == "regression":
        values = pd.to_numeric(target, errors="coerce")
        bad = values.isna()
        if bad.any():
            raise DataError(
                f"Target '{spec.target}' of a regression must be numeric; {int(bad.sum())} "
                f"values are not (e.g. {target[bad].iloc[0]!r}). Fix or drop those rows."
            )
        return values.to_numpy(np.float64), None
    labels = target.astype(str)
    classes = tuple(sorted(labels.unique()))
    if len(classes) < 2:
        raise DataError(f"Target '{spec.target}' has a single class ({classes[0]!r}); need two+.")
    codes = {c: i for i, c in enumerate(classes)}
    return labels.map(codes).to_numpy(np.int64), classes


def _target_column(spec: Spec, frame: pd.DataFrame) -> pd.Series:
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
    return target


# --------------------------------------------------------------------------- preparation


def imbalance_policy(spec: Spec, seed: int) -> ImbalancePolicy:
    """The spec's ``training.imbalance`` as a policy, seeded with the run's seed."""
    training = spec.training
    return ImbalancePolicy(training.imbalance, training.target_ratio, seed)


def prepare(
    spec: Spec,
    frame: pd.DataFrame,
    split: Split,
    policy: ImbalancePolicy | None = None,
) -> Prepared:
    """Target, cleaning (fitted on training rows), encoder and imbalance for one split."""
    if spec.task not in TASKS:
        raise TrainingError(
            f"modelyard trains {', '.join(TASKS)} tasks; the spec says task '{spec.task}'."
        )
    policy = policy or imbalance_policy(spec, split.seed)
    y, classes = target_values(spec, frame)
    rows = split.positions(frame)
    raw_test = frame.iloc[rows.test]
    recipe, cleaning = None, None
    if spec.cleaning:
        recipe = Recipe.from_spec_like(list(spec.cleaning))
        frame, y, rows, cleaning = _clean(frame, y, rows, recipe)
    encoder = FeatureEncoder.fit(frame.iloc[rows.train], spec.feature_columns(list(frame.columns)))
    X = encoder.transform(frame)
    X_train, y_train = X[rows.train], y[rows.train]
    report: dict[str, Any] = {"policy": policy.to_dict()}
    if classes is not None:
        _check_classes_in_training(classes, y_train, spec.target)
    if spec.task != "regression":
        X_train, y_train, report = resample(X_train, y_train, policy)
    weights = sample_weights(y_train) if policy.method == "class_weight" else None
    inputs = recipe.inputs_for(encoder.names) if recipe else encoder.names
    return Prepared(
        spec.task,
        X,
        y,
        rows,
        encoder,
        recipe,
        cleaning,
        classes,
        policy,
        report,
        X_train,
        y_train,
        weights,
        json_records(raw_test, inputs, encoder),
    )


def _check_classes_in_training(classes: tuple[str, ...], y_train: np.ndarray, target: str) -> None:
    missing = [c for i, c in enumerate(classes) if not np.any(y_train == i)]
    if missing:
        raise DataError(
            f"Classes {missing} of target '{target}' have no training rows after the split; "
            "a model cannot learn them. Add rows of those classes or merge them into others."
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


# --------------------------------------------------------------------------- one candidate


def fit_candidate(spec: Spec, family: Family, params: dict[str, Any], data: Prepared) -> Fitted:
    """Fit ``family`` with ``params`` on the training rows; measure it on the test rows.

    The bundle scores with the model exactly as it is saved, and the metrics
    come from that bundle, so what is reported is what will be served.
    """
    training = data.training_data()
    started = time.perf_counter()
    model = family.fit(training, params)
    fit_seconds = time.perf_counter() - started
    model_bytes = flavors.dump(family.flavor, model)
    bundle = ModelBundle.from_bytes(
        family.flavor, model_bytes, data.encoder, data.task, spec.target
    )
    bundle.recipe, bundle.classes = data.recipe, data.classes
    if data.task == "binary":
        valid = data.rows.validation
        bundle.threshold, _ = best_threshold(
            data.y[valid],
            bundle.predict(data.X[valid]),
            spec.costs.false_positive,
            spec.costs.false_negative,
        )
    test = data.rows.test
    metrics = task_report(data.task, data.y[test], bundle.predict(data.X[test]), bundle.threshold)
    return Fitted(model, model_bytes, bundle, metrics, fit_seconds)


def run_params(family: Family, params: dict[str, Any], data: Prepared, seed: int) -> dict[str, Any]:
    """What a run records as parameters (strings in the store; ``params.json`` keeps them exact)."""
    return {
        **params,
        "family": family.name,
        "task": data.task,
        "seed": seed,
        "baseline": family.baseline,
        "features": len(data.encoder.fields),
        "imbalance": data.policy.method,
        "imbalance_target_ratio": data.policy.target_ratio,
    }


def primary_goal(spec: Spec) -> MetricGoal:
    """The spec's first model metric (the one candidates are ranked and searched on)."""
    goals = spec.metric_goals("model")
    return goals[0] if goals else MetricGoal(name=DEFAULT_GOALS[spec.task])


# --------------------------------------------------------------------------- the entry point


def train_candidates(
    project: Project,
    dataset: DatasetVersion,
    frame: pd.DataFrame | None = None,
    *,
    families: list[str] | None = None,
    seed: int | None = None,
    progress: Progress | None = None,
    search: SearchOptions | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[CandidateResult]:
    """Fit and evaluate every candidate on the same split; one run each, baselines first.

    ``frame`` is the dataset version's rows (loaded when not given). ``families``
    defaults to the spec's ``training.families``, else every family for the
    task; ``seed`` to ``training.seed``; ``search`` to ``training.search`` (no
    search when neither is set). ``params`` overrides defaults per family for the
    final fit, e.g. ``{"lightgbm": {"num_leaves": 15}}`` (a search explores the
    family's space from its defaults; the values it finds win for the searched
    keys). Build the leaderboard from the result with
    ``modelyard.train.leaderboard.build_leaderboard``.
    """
    spec = project.spec
    seed = spec.training.seed if seed is None else seed
    chosen = families_for(spec.task, families or _list(spec.training.families))
    _check_overrides(params or {}, chosen)
    if search is None and spec.training.search is not None:
        search = SearchOptions.from_settings(spec.training.search)
    search_fn = _search_function() if search is not None else None
    if frame is None:
        _, frame = load_dataset(project, dataset.id)
    _check_frame_is_dataset(frame, dataset)
    split = make_split(frame, spec, seed=seed)
    data = prepare(spec, frame, split, imbalance_policy(spec, seed))
    split_blob = project.artifacts.put_bytes(json.dumps(split.to_dict()).encode())
    results = []
    for family in chosen:
        chosen_params = {**family.defaults(spec.task, seed), **(params or {}).get(family.name, {})}
        job = _Job(project, dataset, split, split_blob, data, seed, progress)
        results.append(job.run(family, chosen_params, search, search_fn))
    if all(r.status == "failed" for r in results):
        errors = "; ".join(f"{r.name}: {r.error}" for r in results)
        raise TrainingError(f"Every candidate failed to fit ({errors}). See `modelyard runs list`.")
    return results


@dataclass
class _Job:
    """One candidate's run: search, fit, evaluate, measure, save, record."""

    project: Project
    dataset: DatasetVersion
    split: Split
    split_blob: Blob
    data: Prepared
    seed: int
    progress: Progress | None

    def run(
        self,
        family: Family,
        params: dict[str, Any],
        search: SearchOptions | None,
        search_fn: Callable[..., Any] | None,
    ) -> CandidateResult:
        run = Run(self.project, name=family.name, seed=self.seed)
        searching = search is not None and search_fn is not None and bool(family.space)
        self._say(family.name, "search" if searching else "fit")
        try:
            with run:
                self._record_inputs(run)
                if searching and search is not None and search_fn is not None:
                    params = self._search(run, family, params, search, search_fn)
                    self._say(family.name, "fit")
                result = self._fit(run, family, params)
        except Exception as exc:
            self._say(family.name, "failed")
            return CandidateResult(
                family.name,
                family.baseline,
                run.id,
                None,
                None,
                {},
                params=params,
                status="failed",
                error=run.tags.get("error", f"{type(exc).__name__}: {exc}"),
            )
        self._say(family.name, "done")
        return result

    def _record_inputs(self, run: Run) -> None:
        run.split = self.split.describe()
        run.log_artifact("split", self.split_blob)
        run.add_input(self.dataset.id, "train")
        tags = {"imbalance": json.dumps(self.data.imbalance)[:2000]}
        if self.data.cleaning:
            tags["cleaning"] = json.dumps(self.data.cleaning["fit"])[:2000]
        run.set_tags(tags)

    def _search(
        self,
        run: Run,
        family: Family,
        params: dict[str, Any],
        options: SearchOptions,
        search_fn: Callable[..., Any],
    ) -> dict[str, Any]:
        """Search the family's space on the training rows; the trials hang under a
        "search" run that this candidate's run also points at."""
        goal = primary_goal(self.project.spec)
        settings = {
            "search_method": options.method,
            "search_trials": options.trials,
            "search_folds": options.folds,
            "search_engine": options.engine,
            "search_metric": goal.name,
        }
        search_run = Run(self.project, name=f"{family.name}-search", kind="search", seed=self.seed)
        with search_run as parent:
            self._record_inputs(parent)
            parent.log_params({**settings, "family": family.name, "task": self.data.task})
        run.parent_id = parent.id

        def tick(done: int, total: int) -> None:
            self._say(family.name, f"search {done}/{total}")

        found = search_fn(
            self.project,
            family,
            self.data.cv_data(),
            method=options.method,
            trials=options.trials,
            folds=options.folds,
            engine=options.engine,
            seed=self.seed,
            parent_run_id=parent.id,
            storage=options.storage,
            metric=goal,
            progress=tick,
        )
        run.log_params(
            {
                **settings,
                "search_trials_run": len(found.trials),
                "search_cv_score": found.best_score,
            }
        )
        searched = {k: v for k, v in found.best_params.items() if k in family.space}
        return {**params, **searched}

    def _fit(self, run: Run, family: Family, params: dict[str, Any]) -> CandidateResult:
        spec = self.project.spec
        run.log_params(run_params(family, params, self.data, self.seed))
        run.log_artifact("params.json", self.project.artifacts.put_bytes(_params_json(params)))
        fitted = fit_candidate(spec, family, params, self.data)
        metrics = {**measured(fitted), "fit_seconds": fitted.fit_seconds}
        unmeasured = sorted(set(fitted.metrics) - set(metrics))
        if unmeasured:
            run.set_tags({"unmeasured": ", ".join(unmeasured)})
        onnx = _export_onnx(family, fitted.model, self.data, run)
        metrics.update(measure_costs(fitted.bundle, self.data.test_records))
        if onnx is not None:
            metrics["onnx_bytes"] = float(len(onnx.data))
        manifest = fitted.bundle.save(self.project.artifacts, fitted.model_bytes, onnx)
        run.log_metrics(metrics)
        run.log_artifact("model", manifest)
        return CandidateResult(
            family.name,
            family.baseline,
            run.id,
            manifest.digest,
            fitted.bundle,
            metrics,
            check_gates(spec, metrics, "model"),
            params=params,
        )

    def _say(self, name: str, stage: str) -> None:
        if self.progress:
            self.progress(name, stage)


def measured(fitted: Fitted) -> dict[str, float]:
    """The test metrics that could be measured (a NaN, e.g. the ROC-AUC of a class absent
    from the test rows, is left out: it is not a number a run can keep), and the model size."""
    kept = {k: v for k, v in fitted.metrics.items() if not math.isnan(v)}
    return {**kept, "model_bytes": float(len(fitted.model_bytes))}


def _params_json(params: dict[str, Any]) -> bytes:
    try:
        return json.dumps(params, sort_keys=True).encode()
    except TypeError as exc:
        raise InvalidInputError(
            f"Model parameters must be JSON values (numbers, strings, booleans, null): {exc}."
        ) from exc


def _list(names: tuple[str, ...] | None) -> list[str] | None:
    return list(names) if names else None


def _check_overrides(params: Mapping[str, Mapping[str, Any]], chosen: list[Family]) -> None:
    unknown = sorted(set(params) - {f.name for f in chosen})
    if unknown:
        raise InvalidInputError(
            f"Parameters given for families {unknown}, which are not being trained "
            f"({', '.join(f.name for f in chosen)})."
        )


def _check_frame_is_dataset(frame: pd.DataFrame, dataset: DatasetVersion) -> None:
    if len(frame) != dataset.n_rows or len(frame.columns) != dataset.n_columns:
        raise InvalidInputError(
            f"The frame has {len(frame):,} rows × {len(frame.columns)} columns but dataset "
            f"{dataset.ref} has {dataset.n_rows:,} × {dataset.n_columns}: runs record the "
            "dataset version, so train on its rows (or leave frame out to load them)."
        )


def _search_function() -> Callable[..., Any]:
    """``modelyard.train.search.search``; a clear error when this installation lacks it."""
    try:
        search_module = importlib.import_module("modelyard.train.search")
    except ModuleNotFoundError as exc:
        if exc.name != "modelyard.train.search":
            raise
        raise TrainingError(
            "Hyper-parameter search is not available in this installation "
            "(modelyard.train.search is missing). Train without --search."
        ) from exc
    found: Callable[..., Any] = search_module.search
    return found


def _export_onnx(family: Family, model: Any, data: Prepared, run: Run) -> OnnxBlob | None:
    """The ONNX twin of ``model`` when ``modelyard.train.onnx`` can make one; never fatal."""
    try:
        onnx_module = importlib.import_module("modelyard.train.onnx")
    except ModuleNotFoundError as exc:
        if exc.name == "modelyard.train.onnx":
            return None
        run.set_tags({"onnx_error": f"{type(exc).__name__}: {exc}"[:2000]})
        return None
    sample = data.X[data.rows.test[:256]]

    def skipped(reason: str) -> None:
        run.set_tags({"onnx": reason[:2000]})

    try:
        export = onnx_module.export_onnx(
            family.flavor, model, data.encoder, data.task, sample, on_skip=skipped
        )
        if export is None:
            return None
        return OnnxBlob(export.data, float(export.max_abs_diff))
    except Exception as exc:
        run.set_tags({"onnx_error": f"{type(exc).__name__}: {exc}"[:2000]})
        return None
