"""``evaluate_version`` and ``compare_versions`` on registered demo models."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from sklearn.metrics import recall_score, roc_auc_score

from modelyard.data.datasets import add_dataset, load_dataset
from modelyard.data.demo import DEMO_SPEC, make_loans
from modelyard.evaluate.report import write_report
from modelyard.project import Project
from modelyard.registry import evaluation as evaluation_module
from modelyard.registry.evaluation import compare_versions, evaluate_version
from modelyard.registry.versions import register_candidate, resolve
from modelyard.train.trainer import train_candidates


def _spec_variant(project: Project, filename: str, change: dict[str, Any]) -> Project:
    """The demo spec with ``change`` applied, opened on the same stores as ``project``."""
    document = yaml.safe_load(DEMO_SPEC)
    document.update(change)
    path = project.root / filename
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return Project.open(path)


@pytest.fixture(scope="module")
def trained(module_project: Project) -> Iterator[tuple[Project, str]]:
    """loans@1 (logistic) and loans@2 (LightGBM), trained on 3,000 demo rows."""
    project = module_project
    frame = make_loans(3000)
    dataset = add_dataset(project, "loans", frame)
    results = train_candidates(project, dataset, frame, families=["logistic", "lightgbm"])
    for r in results:
        register_candidate(project, "loans", r)
    yield project, dataset.ref


def test_evaluation_files_recompute_from_the_predictions(
    trained: tuple[Project, str], tmp_path: Path
) -> None:
    project, data_ref = trained
    html, js, parquet = tmp_path / "r.html", tmp_path / "r.json", tmp_path / "p.parquet"
    steps: list[str] = []
    evaluation = evaluate_version(
        project, "loans@2", data_ref, n_boot=100, progress=steps.append, predictions=parquet
    )
    write_report(evaluation, html, js)
    assert "<svg" in html.read_text() and steps

    saved = json.loads(js.read_text())
    predictions = pd.read_parquet(parquet)
    _, rows = load_dataset(project, data_ref)
    assert len(predictions) == len(rows) == saved["data"]["rows"]
    assert predictions["loan_id"].tolist() == rows["loan_id"].tolist()
    assert predictions["label"].tolist() == (rows["default"] == 1).astype(int).tolist()
    labels, scores = predictions["label"].to_numpy(), predictions["score"].to_numpy()
    assert saved["metrics"]["roc_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    threshold = saved["model"]["threshold"]
    assert predictions["y_pred"].tolist() == (scores >= threshold).astype(int).tolist()
    assert saved["metrics"]["recall"] == pytest.approx(
        recall_score(labels, predictions["y_pred"]), abs=1e-12
    )
    # every section is there: slices (worst ones found), fairness over gender, robustness
    assert saved["slices"] and saved["fairness"][0]["attribute"] == "gender"
    assert {r["kind"] for r in saved["robustness"]} >= {"noise", "missing", "malformed"}
    assert saved["sampling"]["worst_slices"] == {"rows": 3000, "of": 3000, "sampled": False}

    # the stored report is the JSON file, byte for byte
    stored = resolve(project, "loans@2")
    digest = hashlib.sha256(js.read_bytes()).hexdigest()
    assert {g["report"] for g in stored.gates} == {digest}
    assert json.loads(project.artifacts.get_bytes(digest)) == saved


def test_gates_are_stored_with_the_version_and_carry_the_data(
    trained: tuple[Project, str],
) -> None:
    project, data_ref = trained
    evaluation = evaluate_version(project, "loans@1", data_ref, robustness=False, n_boot=50)
    after = resolve(project, "loans@1")
    assert [g["name"] for g in after.gates] == ["roc_auc", "recall", "ece", "p99_latency_ms"]
    assert all(g["data"] == data_ref for g in after.gates)
    latency = next(g for g in after.gates if g["name"] == "p99_latency_ms")
    assert latency["kind"] == "system" and latency["threshold"] == 50.0
    assert latency["value"] == evaluation["latency"]["predict_p99_ms"] > 0
    assert latency["passed"] == (latency["value"] <= 50.0)
    assert after.metrics["roc_auc"] == evaluation["metrics"]["roc_auc"]
    assert after.metrics["p99_latency_ms"] == latency["value"]
    assert "fit_seconds" in after.metrics  # training-time costs are kept
    assert evaluation["robustness"] == [] and "robustness" not in evaluation["sampling"]
    assert [n["name"] for n in evaluation["not_gated"]] == ["error_rate"]


def test_slice_goals_and_unreachable_thresholds_are_failing_gates(
    trained: tuple[Project, str],
) -> None:
    project, data_ref = trained
    strict = _spec_variant(
        project,
        "strict.yaml",
        {
            "metrics": [{"name": "roc_auc", "threshold": 0.99}],
            "slices": [
                {
                    "name": "north",
                    "where": "region == 'north'",
                    "goal": {"name": "recall", "threshold": 0.01},
                },
                {
                    "name": "nobody",
                    "where": "income > 1e12",
                    "goal": {"name": "recall", "threshold": 0.01},
                },
            ],
        },
    )
    try:
        evaluation = evaluate_version(
            strict, "loans@2", data_ref, slices=False, robustness=False, n_boot=50
        )
    finally:
        strict.close()
    gates = {g["name"]: g for g in evaluation["gates"]}
    assert gates["roc_auc"]["passed"] is False and gates["roc_auc"]["value"] < 0.99
    north = gates["recall on slice north"]
    assert north["kind"] == "slice" and north["passed"] is True and north["rows"] > 100
    nobody = gates["recall on slice nobody"]
    assert nobody["passed"] is False and nobody["value"] is None and nobody["rows"] == 0
    assert evaluation["slices"] == []  # not reported, but their goals are still gates
    assert any("Fails the gate roc_auc" in t for t in evaluation["model_card"]["limitations"])
    assert not resolve(project, "loans@2").gates[0]["passed"]  # what promotion will read


def test_large_data_is_sampled_for_slice_search_and_robustness_and_says_so(
    trained: tuple[Project, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project, data_ref = trained
    monkeypatch.setattr(evaluation_module, "SLICE_SEARCH_ROWS", 1000)
    monkeypatch.setattr(evaluation_module, "ROBUSTNESS_ROWS", 500)
    evaluation = evaluate_version(project, "loans@1", data_ref, n_boot=50)
    assert evaluation["sampling"] == {
        "worst_slices": {"rows": 1000, "of": 3000, "sampled": True},
        "robustness": {"rows": 500, "of": 3000, "sampled": True},
    }
    noise = next(r for r in evaluation["robustness"] if r["kind"] == "noise")
    assert noise["rows"] == 500
    assert evaluation["data"]["rows"] == 3000  # the metrics use every row


def test_compare_gives_a_verdict_per_spec_metric(trained: tuple[Project, str]) -> None:
    project, data_ref = trained
    same = compare_versions(project, "loans@1", "loans@1", data_ref, n_boot=200)
    assert [c.metric for c in same] == ["roc_auc", "recall", "ece", "accuracy"]
    assert {c.verdict for c in same} == {"no evidence"}
    assert all(c.diff == 0 for c in same)
    assert same[-1].mcnemar is not None and same[-1].mcnemar.p_value == 1.0

    # LightGBM against logistic regression on the demo data: clearly better ranking
    versus = {c.metric: c for c in compare_versions(project, "loans@1", "loans@2", data_ref)}
    auc = versus["roc_auc"]
    assert auc.verdict == "better" and auc.ci_low > 0
    assert auc.a < auc.b and auc.diff == pytest.approx(auc.b - auc.a)


def test_fairness_limits_are_gates_per_sensitive_column(trained: tuple[Project, str]) -> None:
    project, data_ref = trained
    limited = _spec_variant(
        project,
        "fair.yaml",
        {"fairness": {"demographic_parity_difference": 1.0, "equalized_odds_ratio": 1.0}},
    )
    try:
        evaluation = evaluate_version(
            limited, "loans@2", data_ref, slices=False, robustness=False, n_boot=50
        )
    finally:
        limited.close()
    gates = {g["name"]: g for g in evaluation["gates"] if g["kind"] == "fairness"}
    assert set(gates) == {
        "demographic_parity_difference (gender)",
        "equalized_odds_ratio (gender)",
    }
    reported = evaluation["fairness"][0]
    parity = gates["demographic_parity_difference (gender)"]
    assert parity["value"] == pytest.approx(reported["demographic_parity_difference"])
    assert parity["passed"] is True  # a difference is at most 1 by definition
    ratio = gates["equalized_odds_ratio (gender)"]
    assert ratio["passed"] is (ratio["value"] == 1.0)  # "at least 1": only perfect parity passes
