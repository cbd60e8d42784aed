"""Hyper-parameter search on the local engine: samplers, CV runs, failures, pruning, sharing."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from modelyard.data.demo import make_loans
from modelyard.data.encoding import FeatureEncoder
from modelyard.errors import TrainingError
from modelyard.project import Project
from modelyard.spec import MetricGoal
from modelyard.train.crossval import check_metric, make_folds
from modelyard.train.families import (
    FAMILIES,
    Choice,
    CVData,
    Family,
    Float,
    Int,
    TrainingData,
)
from modelyard.train.runs import Run, get_run, list_runs
from modelyard.train.search import Method, SearchResult, grid_space, search

AUC = MetricGoal(name="roc_auc")
LOG_LOSS = MetricGoal(name="log_loss")
LOGISTIC = FAMILIES["logistic"]


def loans_data(rows: int = 1_200, seed: int = 3) -> CVData:
    """Encoded demo loans for a binary search (the same for the same arguments)."""
    frame = make_loans(rows, recent_share=0.0, seed=seed)
    y = (frame["default"].astype(str) == "1").to_numpy(np.int64)
    ignored = {"default", "loan_id", "applied_at", "email", "gender", "period"}
    features = [c for c in frame.columns if c not in ignored]
    encoder = FeatureEncoder.fit(frame, features)
    return CVData(encoder.transform(frame), y, encoder, "binary")


@pytest.fixture(scope="module")
def data() -> CVData:
    return loans_data()


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread() -> Iterator[None]:
    """Tiny logistic fits run far faster on one BLAS thread than on several contending."""
    with threadpool_limits(limits=1):
        yield


def parent_run(project: Project) -> str:
    """A recorded search run for trials to point at."""
    run = Run(project, name="search", kind="search")
    run.finish()
    return run.id


# --------------------------------------------------------------------------- fake families
# All fit a real logistic pipeline (so dump/load/score are the real ones) and add a twist.


def _fake_defaults(task: str, seed: int) -> dict[str, Any]:
    return {**LOGISTIC.defaults(task, seed), "boom": False, "flip": 0.0, "extra": 5}


def _fit_fake(data: TrainingData, params: dict[str, Any]) -> Any:
    if params["boom"]:
        raise ValueError(f"boom: this candidate cannot be fitted (C={params['C']})")
    if params["flip"] > 0.75:  # learn the labels upside down: a hopeless trial
        data = dataclasses.replace(data, y=1 - data.y)
    return LOGISTIC.fit(data, params)


def fake_family(**space: Any) -> Family:
    return Family("fake", "sklearn", frozenset({"binary"}), _fake_defaults, _fit_fake, space)


def stored_trials(study_name: str, url: str) -> list[optuna.trial.FrozenTrial]:
    """The trials of a stored study, read with a storage that is closed afterwards."""
    storage = optuna.storages.RDBStorage(url)
    try:
        return optuna.load_study(study_name=study_name, storage=storage).trials
    finally:
        storage.remove_session()
        storage.engine.dispose()


def child_runs(project: Project, parent: str) -> list[Any]:
    return list_runs(project, 500, parent=parent)


# --------------------------------------------------------------------------- methods


@pytest.mark.parametrize("method", ["grid", "random", "tpe"])
def test_each_method_records_its_trials_as_child_runs(
    project: Project, data: CVData, method: Method
) -> None:
    parent = parent_run(project)
    result = search(
        project, LOGISTIC, data, method=method, trials=4, folds=3, metric=AUC, parent_run_id=parent
    )
    assert len(result.trials) == 4
    assert result.study_name == f"loans-logistic-{method}"
    runs = {r.id: r for r in child_runs(project, parent)}
    assert set(runs) == {t.run_id for t in result.trials}
    for trial in result.trials:
        run = get_run(project, trial.run_id)
        assert (run.name, run.kind, run.status) == (
            f"logistic-trial-{trial.number}",
            "trial",
            "finished",
        )
        assert run.parent_id == parent
        assert run.tags["state"] == trial.state == "complete"
        assert run.params["C"] == str(trial.params["C"])
        assert [p.step for p in run.history["fold_roc_auc"]] == [0, 1, 2]
        assert [p.value for p in run.history["fold_roc_auc"]] == pytest.approx(trial.fold_scores)
        assert run.metrics["cv_roc_auc"] == pytest.approx(trial.score)
        assert trial.score == pytest.approx(np.mean(trial.fold_scores))
        assert 0.6 < trial.score < 1.0  # the demo data has signal


def test_grid_covers_exactly_the_grid(project: Project, data: CVData) -> None:
    family = fake_family(
        C=Float(1e-3, 10.0, log=True, grid=(0.1, 1.0)),
        max_iter=Choice((200, 300, 400)),
        extra=Int(1, 9),  # no grid values: keeps the default
    )
    result = search(project, family, data, method="grid", trials=50, folds=3, metric=AUC)
    seen = [(t.params["C"], t.params["max_iter"]) for t in result.trials]
    assert sorted(seen) == sorted(itertools.product((0.1, 1.0), (200, 300, 400)))
    assert {t.params["extra"] for t in result.trials} == {5}
    assert grid_space(family.space) == {"C": [0.1, 1.0], "max_iter": [200, 300, 400]}


def test_grid_capped_by_trials_takes_distinct_points(project: Project, data: CVData) -> None:
    result = search(project, LOGISTIC, data, method="grid", trials=3, folds=3, metric=AUC)
    values = [t.params["C"] for t in result.trials]
    assert len(values) == len(set(values)) == 3
    assert set(values) <= {0.01, 0.1, 1.0, 10.0}


@pytest.mark.parametrize("goal", [AUC, LOG_LOSS], ids=lambda g: g.name)
def test_best_is_the_best_complete_trial_in_the_metric_s_direction(
    project: Project, data: CVData, goal: MetricGoal
) -> None:
    result = search(project, LOGISTIC, data, method="random", trials=5, folds=3, metric=goal)
    scores = [t.score for t in result.trials if t.score is not None]
    assert len(scores) >= 2 and len(set(scores)) == len(scores)
    best = max(scores) if goal.direction == "max" else min(scores)
    assert result.best_score == best
    [winner] = [t for t in result.trials if t.score == best]
    assert result.best_params == winner.params
    metric_key = f"cv_{goal.name}"
    assert get_run(project, winner.run_id).metrics[metric_key] == pytest.approx(best)


@pytest.mark.parametrize("method", ["random", "tpe"])
def test_the_same_seed_samples_the_same_params(
    project: Project, data: CVData, method: Method
) -> None:
    majority = FAMILIES["majority"]  # fast: the params are what this test is about
    family = dataclasses.replace(
        majority, space={"C": Float(1e-2, 10.0, log=True), "max_iter": Int(100, 400)}
    )

    def sampled(seed: int) -> list[tuple[Any, Any]]:
        result = search(
            project, family, data, method=method, trials=12, folds=2, seed=seed, metric=LOG_LOSS
        )
        return [(t.params["C"], t.params["max_iter"]) for t in result.trials]

    first = sampled(7)
    assert sampled(7) == first
    assert sampled(8) != first
    assert len(set(first)) == len(first)


def synthetic(task: str, rows: int = 600) -> CVData:
    """Three numeric features; a noisy linear target, cut into three classes for multiclass."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(rows, 3)), columns=["a", "b", "c"])
    target = frame["a"] + 0.5 * frame["b"] + rng.normal(scale=0.3, size=rows)
    encoder = FeatureEncoder.fit(frame, ["a", "b", "c"])
    if task == "regression":
        return CVData(encoder.transform(frame), target.to_numpy(), encoder, task, n_classes=0)
    classes = np.digitize(target, np.quantile(target, [1 / 3, 2 / 3]))
    return CVData(encoder.transform(frame), classes, encoder, task, n_classes=3)


@pytest.mark.parametrize(
    ("task", "goal"),
    [("regression", MetricGoal(name="rmse")), ("multiclass", MetricGoal(name="f1_macro"))],
)
def test_regression_and_multiclass_searches_score_their_own_metrics(
    project: Project, task: str, goal: MetricGoal
) -> None:
    result = search(
        project, FAMILIES["tree"], synthetic(task), method="grid", trials=3, folds=3, metric=goal
    )
    scores = [t.score for t in result.trials]
    assert len(scores) == 3 and all(s is not None for s in scores)
    if task == "regression":
        assert result.best_score == min(s for s in scores if s is not None) < 0.6
    else:
        assert result.best_score == max(s for s in scores if s is not None) > 0.6


def test_each_fold_fits_on_its_own_rows_and_weights(project: Project, data: CVData) -> None:
    seen: list[tuple[int, int, float]] = []
    majority = FAMILIES["majority"]

    def fit(fold: TrainingData, params: dict[str, Any]) -> Any:
        assert fold.sample_weight is not None
        seen.append((len(fold.y), len(fold.y_valid), float(fold.sample_weight.sum())))
        return majority.fit(fold, params)

    weights = np.arange(len(data.y), dtype=float)
    weighted = dataclasses.replace(data, sample_weight=weights)
    family = dataclasses.replace(majority, fit=fit)
    search(project, family, weighted, method="grid", trials=1, folds=4, metric=AUC)
    folds = make_folds(weighted, 4, seed=42)
    assert seen == [(len(t), len(v), float(weights[t].sum())) for t, v in folds]


def test_a_stored_study_resumes_and_refuses_another_direction(
    project: Project, data: CVData, tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    kwargs: dict[str, Any] = {"method": "grid", "trials": 2, "folds": 2, "storage": storage}
    first = search(project, LOGISTIC, data, metric=AUC, **kwargs)
    second = search(project, LOGISTIC, data, metric=AUC, **kwargs)
    assert [t.number for t in first.trials + second.trials] == [0, 1, 2, 3]
    values = {t.params["C"] for t in first.trials + second.trials}
    assert values == {0.01, 0.1, 1.0, 10.0}
    with pytest.raises(TrainingError, match="no grid point left"):
        search(project, LOGISTIC, data, metric=AUC, **kwargs)
    with pytest.raises(TrainingError, match="was created to maximize, but log_loss is to minimize"):
        search(project, LOGISTIC, data, metric=LOG_LOSS, **kwargs)


# --------------------------------------------------------------------------- failures


def test_a_failing_trial_is_a_failed_run_and_the_search_goes_on(
    project: Project, data: CVData, tmp_path: Path
) -> None:
    parent = parent_run(project)
    family = fake_family(C=Float(1e-2, 10.0, grid=(0.1, 1.0)), boom=Choice((False, True)))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    result = search(
        project,
        family,
        data,
        method="grid",
        trials=10,
        folds=3,
        metric=AUC,
        parent_run_id=parent,
        storage=storage,
    )
    failed = [t for t in result.trials if t.state == "failed"]
    complete = [t for t in result.trials if t.state == "complete"]
    assert sorted(t.params["C"] for t in failed) == [0.1, 1.0]
    assert all(t.params["boom"] for t in failed)
    assert len(complete) == 2 and not any(t.params["boom"] for t in complete)
    for trial in failed:
        assert trial.score is None and trial.fold_scores == []
        assert trial.error is not None and trial.error.startswith("ValueError: boom")
        run = get_run(project, trial.run_id)
        assert (run.status, run.parent_id) == ("failed", parent)
        assert run.tags["state"] == "failed" and run.tags["error"] == trial.error
    states = {t.number: t.state.name for t in stored_trials(result.study_name, storage)}
    optuna_names = {"complete": "COMPLETE", "failed": "FAIL", "pruned": "PRUNED"}
    assert states == {t.number: optuna_names[t.state] for t in result.trials}
    assert result.best_score == max(t.score for t in complete if t.score is not None)


def test_lightgbm_params_that_lightgbm_refuses_fail_only_their_trial(
    project: Project, data: CVData
) -> None:
    lightgbm = FAMILIES["lightgbm"]
    family = dataclasses.replace(
        lightgbm,
        defaults=lambda task, seed: {**lightgbm.defaults(task, seed), "num_boost_round": 30},
        space={"num_leaves": Choice((1, 7))},
    )
    result = search(project, family, data, method="grid", trials=2, folds=3, metric=AUC)
    states = {t.params["num_leaves"]: (t.state, t.error) for t in result.trials}
    assert states[7] == ("complete", None)
    state, error = states[1]
    assert state == "failed" and error is not None and "num_leaves" in error
    assert result.best_params["num_leaves"] == 7


def test_when_every_trial_fails_the_search_says_so_and_keeps_the_runs(
    project: Project, data: CVData
) -> None:
    parent = parent_run(project)
    family = fake_family(boom=Choice((True,)), C=Float(0.1, 1.0, grid=(0.1, 1.0)))
    with pytest.raises(TrainingError, match=r"No trial .* completed: 2 ran, 2 failed.*boom"):
        search(
            project,
            family,
            data,
            method="grid",
            trials=5,
            folds=3,
            metric=AUC,
            parent_run_id=parent,
        )
    assert [r.status for r in child_runs(project, parent)] == ["failed", "failed"]


def test_an_interrupted_search_leaves_no_trial_running(
    project: Project, data: CVData, tmp_path: Path
) -> None:
    parent = parent_run(project)
    logistic_fit = LOGISTIC.fit

    def fit(fold: TrainingData, params: dict[str, Any]) -> Any:
        if params["C"] == 1.0:
            raise KeyboardInterrupt  # Ctrl-C while this trial's first fold is fitting
        return logistic_fit(fold, params)

    family = dataclasses.replace(LOGISTIC, fit=fit, space={"C": Choice((0.1, 1.0, 10.0))})
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    with pytest.raises(KeyboardInterrupt):
        search(
            project,
            family,
            data,
            method="grid",
            trials=3,
            folds=2,
            seed=0,
            metric=AUC,
            parent_run_id=parent,
            storage=storage,
            study_name="interrupted",
        )
    states = [t.state.name for t in stored_trials("interrupted", storage)]
    assert "RUNNING" not in states and states[-1] == "FAIL"
    runs = {r.params["C"]: r.status for r in child_runs(project, parent)}
    assert runs["1.0"] == "killed"
    assert set(runs.values()) <= {"finished", "killed"}


# --------------------------------------------------------------------------- pruning


def test_hopeless_trials_are_pruned_and_good_ones_never(project: Project, data: CVData) -> None:
    """Trials with flip > 0.75 learn inverted labels (AUC far below 0.5); the others all
    score the same, so the median pruner can only ever stop the hopeless ones."""
    parent = parent_run(project)
    family = fake_family(flip=Float(0.0, 1.0))
    result = search(
        project,
        family,
        data,
        method="random",
        trials=24,
        folds=3,
        seed=1,
        metric=AUC,
        parent_run_id=parent,
    )
    pruned = [t for t in result.trials if t.state == "pruned"]
    assert pruned, "a hopeless trial after the first five should have been pruned"
    assert all(t.params["flip"] > 0.75 for t in pruned)
    assert all(t.state == "complete" for t in result.trials if t.params["flip"] <= 0.75)
    for trial in pruned:
        assert trial.score is None
        assert len(trial.fold_scores) == 2  # warm-up: never pruned after the first fold
        run = get_run(project, trial.run_id)
        assert run.status == "finished" and run.tags["state"] == "pruned"
        assert [p.step for p in run.history["cv_roc_auc"]] == [0, 1]
    assert result.best_params["flip"] <= 0.75


# --------------------------------------------------------------------------- checks


def test_bad_arguments_are_refused_before_any_work(project: Project, data: CVData) -> None:
    def run(**kwargs: Any) -> SearchResult:
        arguments: dict[str, Any] = {"method": "random", "trials": 2, "metric": AUC, **kwargs}
        return search(project, LOGISTIC, data, **arguments)

    with pytest.raises(TrainingError, match="Unknown search method 'bayes'"):
        run(method="bayes")
    with pytest.raises(TrainingError, match="trials >= 1"):
        run(trials=0)
    with pytest.raises(TrainingError, match="folds >= 2"):
        run(folds=1)
    with pytest.raises(TrainingError, match="cannot optimise 'rmse' for a binary task"):
        run(metric=MetricGoal(name="rmse"))
    with pytest.raises(TrainingError, match="Parent run 'nope' is not recorded"):
        run(parent_run_id="nope")
    with pytest.raises(TrainingError, match="metadata database"):
        run(storage=str(project.db.url))
    with pytest.raises(TrainingError, match="Unknown search engine"):
        run(engine="dask")
    regression = dataclasses.replace(data, task="regression")
    with pytest.raises(TrainingError, match="does not train regression"):
        search(project, LOGISTIC, regression, method="grid", trials=1, metric=AUC)
    assert list_runs(project, kind="trial") == []


def test_folds_need_every_class_in_every_fold(data: CVData) -> None:
    y = np.zeros(len(data.y), dtype=np.int64)
    y[:2] = 1
    with pytest.raises(TrainingError, match="Class 1 has 2 rows, fewer than the 3 folds"):
        make_folds(dataclasses.replace(data, y=y), 3, seed=0)
    folds = make_folds(data, 4, seed=0)
    held_out = np.sort(np.concatenate([valid for _, valid in folds]))
    np.testing.assert_array_equal(held_out, np.arange(len(data.y)))
    rates = [data.y[valid].mean() for _, valid in folds]
    assert max(rates) - min(rates) < 0.01  # stratified


def test_search_optimises_the_metrics_evaluation_reports() -> None:
    for metric, task in (("f1", "binary"), ("f1_macro", "multiclass"), ("rmse", "regression")):
        check_metric(metric, task)
    with pytest.raises(TrainingError, match="choose one of"):
        check_metric("p99_latency_ms", "binary")


# --------------------------------------------------------------------------- shared storage

_WORKER = """
import json, sys, time
from collections.abc import Iterator
from pathlib import Path
from modelyard.project import Project
from modelyard.spec import MetricGoal
from modelyard.train.families import FAMILIES
from modelyard.train.search import search
sys.path.insert(0, sys.argv[1])
from test_search import loans_data

spec, storage, parent, me, barrier = sys.argv[2:7]
project = Project.open(spec)
data = loans_data()
Path(barrier, me).touch()
deadline = time.monotonic() + 120
while len(list(Path(barrier).iterdir())) < 2 and time.monotonic() < deadline:
    time.sleep(0.01)
result = search(project, FAMILIES["logistic"], data, method="tpe", trials=8, folds=3,
                metric=MetricGoal(name="roc_auc"), storage=storage, parent_run_id=parent,
                study_name="shared", seed=int(me))
print(json.dumps([[t.number, t.run_id] for t in result.trials]))
"""


@pytest.mark.postgres
def test_two_processes_search_one_study_in_postgresql(
    project: Project, postgres_url: str, tmp_path: Path
) -> None:
    parent = parent_run(project)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    tests = str(Path(__file__).parent)
    env = {k: v for k, v in os.environ.items() if k != "MODELYARD_DB_URL"}
    env |= {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}  # see one_blas_thread
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WORKER,
                tests,
                str(project.spec_path),
                postgres_url,
                parent,
                str(me),
                str(barrier),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for me in (1, 2)
    ]
    outputs = [w.communicate(timeout=300) for w in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err[-3000:]
    trials = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    numbers = [n for mine in trials for n, _ in mine]
    assert len(trials[0]) == len(trials[1]) == 8
    assert sorted(numbers) == list(range(16))  # distinct numbers, none lost
    study_trials = stored_trials("shared", postgres_url)
    assert len(study_trials) == 16
    assert {t.state.name for t in study_trials} <= {"COMPLETE", "PRUNED"}
    assert {t.user_attrs["run_id"] for t in study_trials} == {r for m in trials for _, r in m}
    assert len(child_runs(project, parent)) == 16
