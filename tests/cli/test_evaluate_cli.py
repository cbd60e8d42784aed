"""``modelyard evaluate`` and ``modelyard compare`` through the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from modelyard.cli import app
from modelyard.data.datasets import add_dataset
from modelyard.data.demo import DEMO_SPEC, make_loans
from modelyard.errors import NotFoundError
from modelyard.project import Project
from modelyard.registry.versions import register_candidate, resolve
from modelyard.train.trainer import train_candidates

runner = CliRunner()

#: Thresholds every trained demo model meets, and a latency budget no machine misses.
LENIENT = {
    "metrics": [
        {"name": "roc_auc", "threshold": 0.55},
        {"name": "recall", "threshold": 0.05},
    ],
    "slos": {"p99_latency_ms": 10_000.0},
}
#: A ranking quality no model reaches on the demo data.
STRICT = {
    "metrics": [{"name": "roc_auc", "threshold": 0.99}, {"name": "recall"}],
    "slos": {"p99_latency_ms": 10_000.0},
}


def _write_spec(folder: Path, name: str, change: dict[str, Any]) -> Path:
    document = yaml.safe_load(DEMO_SPEC)
    document.update(change)
    path = folder / name
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def trained(module_project: Project) -> Iterator[Project]:
    """loans@1 (logistic) and loans@2 (LightGBM) on dataset loans@1 (3,000 demo rows)."""
    project = module_project
    frame = make_loans(3000)
    dataset = add_dataset(project, "loans", frame)
    for r in train_candidates(project, dataset, frame, families=["logistic", "lightgbm"]):
        register_candidate(project, "loans", r)
    yield project


@pytest.mark.parametrize(("change", "exit_code"), [(LENIENT, 0), (STRICT, 1)])
def test_evaluate_writes_the_files_and_exits_1_when_a_gate_fails(
    trained: Project, tmp_path: Path, change: dict[str, Any], exit_code: int
) -> None:
    spec = _write_spec(trained.root, f"spec-{exit_code}.yaml", change)
    html, js, parquet = tmp_path / "out.html", tmp_path / "out.json", tmp_path / "out.parquet"
    args = ["--spec", str(spec), "evaluate", "loans@2", "--data", "loans@1"]
    args += ["--report", str(html), "--json", str(js), "--predictions", str(parquet)]
    done = runner.invoke(app, [*args, "--no-robustness", "--boot", "50"])
    assert done.exit_code == exit_code, done.output
    out = done.output
    assert "Evaluated loans@2 on loans@1 (3,000 rows)" in out
    assert "Gates" in out and "p99_latency_ms" in out and "roc_auc" in out
    for path in (html, js, parquet):
        assert path.is_file() and str(path) in out.replace("\n", "")
    if exit_code:
        assert "FAIL" in out and "1 of 2 gates failed: roc_auc" in out
    else:
        assert "FAIL" not in out and "All 3 gates passed." in out

    saved = json.loads(js.read_text())
    rows = pd.read_parquet(parquet)
    assert saved["metrics"]["roc_auc"] == pytest.approx(
        roc_auc_score(rows["label"], rows["score"]), abs=1e-12
    )
    assert saved["robustness"] == []  # --no-robustness
    stored = resolve(trained, "loans@2")  # promotion reads what this run found
    assert [g["passed"] for g in stored.gates] == [g["passed"] for g in saved["gates"]]
    assert all(g["data"] == "loans@1" for g in stored.gates)


def test_evaluate_an_unknown_version_is_an_error_not_a_failed_gate(trained: Project) -> None:
    args = ["--spec", str(trained.spec_path), "evaluate", "loans@9", "--data", "loans@1"]
    done = runner.invoke(app, args)
    assert isinstance(done.exception, NotFoundError)  # `modelyard` turns it into exit code 2
    assert "loans@9" in done.exception.message


def test_compare_prints_a_verdict_per_spec_metric(trained: Project) -> None:
    base = ["--spec", str(trained.spec_path), "compare"]
    same = runner.invoke(app, [*base, "loans@1", "loans@1", "--data", "loans@1", "--boot", "200"])
    assert same.exit_code == 0, same.output
    lines = same.output.splitlines()
    for metric in ("roc_auc", "recall", "ece", "accuracy"):
        row = next(line for line in lines if line.strip("│ ").startswith(metric))
        assert "no evidence" in row, row
    accuracy = next(line for line in lines if line.strip("│ ").startswith("accuracy"))
    assert accuracy.rstrip(" │").endswith("1")  # McNemar p = 1 for identical predictions

    versus = runner.invoke(app, [*base, "loans@1", "loans@2", "--data", "loans@1"])
    assert versus.exit_code == 0, versus.output
    auc = next(
        line for line in versus.output.splitlines() if line.strip("│ ").startswith("roc_auc")
    )
    assert "better" in auc
    assert "loans@2 (b) against loans@1 (a) on loans@1" in versus.output
