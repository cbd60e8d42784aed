from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tabular import make_tabular, open_tabular

from modelyard.data.datasets import DatasetVersion, add_dataset
from modelyard.data.demo import make_loans
from modelyard.errors import DataError, InvalidInputError, TrainingError
from modelyard.project import Project
from modelyard.train.bundle import load_bundle
from modelyard.train.leaderboard import build_leaderboard
from modelyard.train.runs import get_run, list_runs
from modelyard.train.trainer import (
    CandidateResult,
    SearchOptions,
    binary_target,
    target_values,
    train_candidates,
)

#: Small budgets: the suite runs on two cores.
FAST: dict[str, dict[str, Any]] = {
    "lightgbm": {"num_threads": 1, "num_boost_round": 150},
    "hist_gb": {"max_iter": 60, "num_threads": 1},
    "mlp": {"max_iter": 40, "num_threads": 1},
}


def fast(*names: str) -> dict[str, dict[str, Any]]:
    return {n: FAST[n] for n in names if n in FAST}


@pytest.fixture(scope="module")
def trained(module_project: Project) -> tuple[DatasetVersion, Any, list[CandidateResult]]:
    frame = make_loans(2_500, recent_share=0.0, seed=11).drop(columns="period")
    dataset = add_dataset(module_project, "loans", frame)
    results = train_candidates(module_project, dataset, frame, seed=5, params=FAST)
    return dataset, frame, results


def test_features_leave_out_target_ids_time_pii_and_sensitive(module_project: Project) -> None:
    columns = list(make_loans(200).columns)
    features = module_project.spec.feature_columns(columns)
    for column in ("default", "loan_id", "applied_at", "email", "gender", "period"):
        assert column not in features
    assert "credit_score" in features


def test_every_candidate_is_a_recorded_run(module_project: Project, trained: Any) -> None:
    dataset, _, results = trained
    assert [r.name for r in results] == [
        "majority",
        "logistic",
        "tree",
        "lightgbm",
        "hist_gb",
        "mlp",
    ]
    assert [r.baseline for r in results] == [True, True, True, False, False, False]
    for result in results:
        run = get_run(module_project, result.run_id)
        assert run.status == "finished" and run.kind == "train" and run.seed == 5
        assert run.spec_hash == module_project.spec_hash
        assert run.metrics["roc_auc"] == pytest.approx(result.metrics["roc_auc"])
        assert run.params["family"] == result.name and run.params["task"] == "binary"
        assert run.params["seed"] == "5" and run.params["imbalance"] == "none"
        assert run.params["baseline"] == str(result.baseline)
        assert [i.ref for i in run.inputs] == [dataset.ref]
        artifacts = {a.name: a.digest for a in run.artifacts}
        assert {"split", "params.json", "model"} <= set(artifacts)
        stored = json.loads(module_project.artifacts.get_bytes(artifacts["params.json"]))
        assert stored == result.params
        assert artifacts["model"] == result.digest
        assert json.loads(run.tags["imbalance"])["policy"]["method"] == "none"
    assert {r.id for r in list_runs(module_project)} >= {r.run_id for r in results}


def test_models_learn_something_real(trained: Any) -> None:
    _, _, results = trained
    for result in results:
        assert {g.name for g in result.gates} == {"roc_auc", "recall", "ece"}
        assert 0 < result.metrics["threshold"] < 0.5  # false negatives cost 8× more
        if result.name == "majority":
            assert result.metrics["roc_auc"] == 0.5
        else:
            assert result.metrics["roc_auc"] > 0.6, result.name


def test_saved_bundle_predicts_exactly_what_was_evaluated(
    module_project: Project, trained: Any
) -> None:
    _, frame, results = trained
    for result in results:
        loaded = load_bundle(module_project.artifacts, result.digest)
        X = loaded.encode_frame(frame.head(300))
        np.testing.assert_array_equal(loaded.predict(X), result.bundle.predict(X))
        assert loaded.threshold == result.bundle.threshold
        assert loaded.manifest is not None
        assert loaded.manifest["model"]["size"] == result.metrics["model_bytes"]


def test_costs_are_measured_for_every_candidate(trained: Any) -> None:
    _, _, results = trained
    for result in results:
        m = result.metrics
        assert m["fit_seconds"] >= 0 and m["rows_per_second"] > 0
        assert 0 < m["predict_p50_ms"] <= m["predict_p99_ms"]
        assert m["model_bytes"] > 0


def test_an_onnx_twin_is_kept_beside_the_model(module_project: Project, trained: Any) -> None:
    _, _, results = trained
    with_onnx = []
    for result in results:
        manifest = load_bundle(module_project.artifacts, result.digest).manifest
        assert manifest is not None
        if "onnx" not in manifest:
            assert "onnx_bytes" not in result.metrics
            continue
        with_onnx.append(result.name)
        onnx = manifest["onnx"]
        assert onnx["size"] == result.metrics["onnx_bytes"]
        assert len(module_project.artifacts.get_bytes(onnx["digest"])) == onnx["size"]
        assert 0 <= onnx["max_abs_diff"] <= 1e-4
    assert "lightgbm" in with_onnx


def test_the_leaderboard_measures_everyone_against_the_best_baseline(
    module_project: Project, trained: Any
) -> None:
    _, _, results = trained
    rows = build_leaderboard(module_project.spec, results)
    assert [r.rank for r in rows] == list(range(1, len(results) + 1))
    auc = [r.metrics["roc_auc"] for r in rows]
    assert auc == sorted(auc, reverse=True)
    best_baseline = max(r.metrics["roc_auc"] for r in results if r.baseline)
    for row in rows:
        assert row.margin == pytest.approx(row.metrics["roc_auc"] - best_baseline)
        assert row.loses_to_baseline == (not row.baseline and row.margin < 0)
        assert {"fit_seconds", "predict_p50_ms", "rows_per_second", "model_bytes"} <= set(row.costs)


def test_a_candidate_that_fails_is_a_failed_run_and_the_others_finish(project: Project) -> None:
    frame = make_loans(1_000, recent_share=0.0, seed=2).drop(columns="period")
    dataset = add_dataset(project, "loans", frame)
    results = train_candidates(
        project,
        dataset,
        families=["majority", "lightgbm", "tree"],
        params={"lightgbm": {"num_leaves": 1, "num_threads": 1}},
    )
    assert [(r.name, r.status) for r in results] == [
        ("majority", "finished"),
        ("tree", "finished"),
        ("lightgbm", "failed"),
    ]
    failed = next(r for r in results if r.status == "failed")
    assert "num_leaves" in str(failed.error) and failed.bundle is None and not failed.gates_passed
    run = get_run(project, failed.run_id)
    assert run.status == "failed" and "num_leaves" in run.tags["error"]
    assert {"split", "params.json"} <= {a.name for a in run.artifacts}
    rows = build_leaderboard(project.spec, results)
    assert rows[-1].name == "lightgbm" and rows[-1].status == "failed" and rows[-1].rank is None


def test_when_every_candidate_fails_training_says_why(project: Project) -> None:
    frame = make_loans(600, recent_share=0.0, seed=2).drop(columns="period")
    dataset = add_dataset(project, "loans", frame)
    with pytest.raises(TrainingError, match=r"Every candidate failed.*num_leaves"):
        train_candidates(
            project, dataset, families=["lightgbm"], params={"lightgbm": {"num_leaves": 1}}
        )
    assert [r.status for r in list_runs(project)] == ["failed"]


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_multiclass_and_regression_train_with_their_metrics(tmp_path: Path, task: str) -> None:
    project = open_tabular(tmp_path, task)
    dataset = add_dataset(project, "tabular", make_tabular(task, 1_200))
    families = ["tree", "lightgbm"] + (["majority"] if task == "multiclass" else ["mean"])
    results = train_candidates(project, dataset, families=families, params=fast(*families))
    expected = (
        {"accuracy", "balanced_accuracy", "f1_macro", "precision_macro", "recall_macro"}
        | {"log_loss", "roc_auc"}
        if task == "multiclass"
        else {"mae", "rmse", "r2", "mape"}
    )
    for result in results:
        assert result.status == "finished", result.error
        assert expected <= set(result.metrics), result.name
        assert [g.name for g in result.gates] == ["f1_macro" if task == "multiclass" else "r2"]
        assert get_run(project, result.run_id).params["task"] == task
        manifest = load_bundle(project.artifacts, str(result.digest)).manifest
        assert manifest is not None
        assert manifest.get("classes") == (["high", "low", "mid"] if task == "multiclass" else None)
    lightgbm = next(r for r in results if r.name == "lightgbm")
    if task == "regression":
        assert lightgbm.metrics["r2"] > 0.5 and lightgbm.gates_passed
    else:
        assert lightgbm.metrics["f1_macro"] > 0.5 and lightgbm.gates_passed
    project.close()


def test_class_weights_come_from_the_spec_and_are_recorded(tmp_path: Path) -> None:
    frame = make_tabular("binary", 1_500)
    means = {}
    for method in ("none", "class_weight"):
        project = open_tabular(tmp_path / method, "binary", f"training:\n  imbalance: {method}\n")
        dataset = add_dataset(project, "tabular", frame)
        (result,) = train_candidates(project, dataset, families=["logistic"])
        run = get_run(project, result.run_id)
        assert run.params["imbalance"] == method
        report = json.loads(run.tags["imbalance"])
        assert report["policy"]["method"] == method
        assert ("class_weights" in report) == (method == "class_weight")
        assert result.bundle is not None
        X = result.bundle.encode_frame(frame)
        means[method] = float(result.bundle.predict(X).mean())
        project.close()
    assert means["class_weight"] > means["none"] + 0.05  # positives are the minority


def test_oversampling_touches_only_the_training_rows(tmp_path: Path) -> None:
    spec = "training:\n  imbalance: oversample\n  target_ratio: 1.0\n  seed: 3\n"
    project = open_tabular(tmp_path, "binary", spec)
    dataset = add_dataset(project, "tabular", make_tabular("binary", 1_000))
    (result,) = train_candidates(project, dataset, families=["tree"])
    run = get_run(project, result.run_id)
    report = json.loads(run.tags["imbalance"])
    after = report["after"]["counts"]
    assert after["0"] == after["1"] and report["before"]["rows"] == run.split["rows"]["train"]
    assert run.seed == 3 and run.params["imbalance_target_ratio"] == "1.0"
    project.close()


def test_the_spec_can_choose_the_families(tmp_path: Path) -> None:
    project = open_tabular(tmp_path, "binary", "training:\n  families: [tree, majority]\n")
    dataset = add_dataset(project, "tabular", make_tabular("binary", 600))
    assert [r.name for r in train_candidates(project, dataset)] == ["majority", "tree"]
    with pytest.raises(InvalidInputError, match="not being trained"):
        train_candidates(project, dataset, params={"lightgbm": {"num_leaves": 7}})
    project.close()


def test_the_frame_must_be_the_datasets(project: Project) -> None:
    frame = make_loans(500, recent_share=0.0).drop(columns="period")
    dataset = add_dataset(project, "loans", frame)
    with pytest.raises(InvalidInputError, match="train on its rows"):
        train_candidates(project, dataset, frame.head(400), families=["majority"])


def test_a_search_hangs_its_trials_under_a_search_run(tmp_path: Path) -> None:
    project = open_tabular(tmp_path, "binary")
    dataset = add_dataset(project, "tabular", make_tabular("binary", 800))
    progress: list[tuple[str, str]] = []
    (result,) = train_candidates(
        project,
        dataset,
        families=["logistic"],
        search=SearchOptions(method="grid", trials=2, folds=2),
        progress=lambda name, stage: progress.append((name, stage)),
    )
    run = get_run(project, result.run_id)
    assert run.params["search_method"] == "grid" and run.params["search_trials_run"] == "2"
    assert result.params["C"] in (0.01, 0.1, 1.0, 10.0)
    assert run.parent_id is not None
    parent = get_run(project, run.parent_id)
    assert parent.kind == "search" and parent.params["search_metric"] == "roc_auc"
    trials = list_runs(project, parent=parent.id, kind="trial")
    assert len(trials) == 2
    assert progress[0] == ("logistic", "search") and ("logistic", "search 2/2") in progress
    assert progress[-2:] == [("logistic", "fit"), ("logistic", "done")]
    project.close()


def test_target_problems_are_reported(module_project: Project) -> None:
    frame = make_loans(300)
    with pytest.raises(DataError, match="single class"):
        binary_target(module_project.spec, frame.assign(default=0))
    with pytest.raises(DataError, match="not in the data"):
        binary_target(module_project.spec, frame.drop(columns="default"))


def test_targets_per_task(tmp_path: Path) -> None:
    multi = open_tabular(tmp_path / "m", "multiclass")
    frame = make_tabular("multiclass", 200)
    y, classes = target_values(multi.spec, frame)
    assert classes == ("high", "low", "mid")
    assert [classes[i] for i in y[:5]] == frame["y"].head().tolist()
    regression = open_tabular(tmp_path / "r", "regression")
    with pytest.raises(DataError, match="must be numeric"):
        target_values(regression.spec, make_tabular("regression", 200).assign(y="n/a"))
    multi.close()
    regression.close()


def test_a_search_sees_each_training_row_once_with_the_policy_as_weights(tmp_path: Path) -> None:
    from modelyard.data.splits import make_split
    from modelyard.train.trainer import imbalance_policy, prepare

    frame = make_tabular("binary", 600)
    for extra, check in (
        ("training:\n  imbalance: oversample\n", "oversample"),
        ("training:\n  imbalance: undersample\n  target_ratio: 0.5\n", "undersample"),
        ("training:\n  imbalance: class_weight\n", "class_weight"),
        ("", "none"),
    ):
        project = open_tabular(tmp_path / check, "binary", extra)
        split = make_split(frame, project.spec, seed=1)
        data = prepare(project.spec, frame, split, imbalance_policy(project.spec, 1))
        cv = data.cv_data()
        assert len(cv.y) == len(data.rows.train)  # no copies, nothing dropped
        if check == "none":
            assert cv.sample_weight is None
        else:
            assert cv.sample_weight is not None
            counts = np.bincount(cv.y)
            weighted = np.bincount(cv.y, weights=cv.sample_weight)
            if check == "class_weight":
                assert weighted[0] == pytest.approx(weighted[1])
            else:  # the same balance the resampled training rows have
                np.testing.assert_allclose(weighted, np.bincount(data.y_train))
                assert (check == "oversample") == (len(data.y_train) > counts.sum())
        project.close()
