"""``modelyard runs …``: list with filters, show a whole record, compare runs side by side."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from modelyard.cli import app
from modelyard.data.datasets import add_dataset
from modelyard.data.demo import DEMO_SPEC
from modelyard.errors import InvalidInputError, NotFoundError
from modelyard.project import Project
from modelyard.train.runs import Run

runner = CliRunner()

SEARCH = "01J0000000000000000000S000"
TRIAL_A = "01J0000000000000000000TA00"
TRIAL_B = "01J0000000000000000000TB00"


@pytest.fixture
def spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project holding a search run with two trials and one failed run."""
    monkeypatch.delenv("MODELYARD_DB_URL", raising=False)
    monkeypatch.delenv("MODELYARD_ARTIFACTS", raising=False)
    path = tmp_path / "modelyard.yaml"
    path.write_text(DEMO_SPEC)
    project = Project.open(path)
    try:
        _record(project)
    finally:
        project.close()
    return path


def _record(project: Project) -> None:
    version = add_dataset(project, "loans", pd.DataFrame({"age": [30, 40], "default": [0, 1]}))
    Run(project, name="search", kind="search", id=SEARCH).finish()
    for run_id, leaves, auc, loss in ((TRIAL_A, 31, 0.81, 0.40), (TRIAL_B, 63, 0.79, 0.35)):
        with Run(project, name=f"lgbm-{leaves}", id=run_id, kind="trial", parent_id=SEARCH) as run:
            run.log_params({"learning_rate": 0.05, "num_leaves": leaves})
            run.log_batch(metrics=[("log_loss", loss + 0.1 * (2 - s), s) for s in range(3)])
            run.log_metrics({"roc_auc": auc, "fit_seconds": 1.5}, step=2)
            run.set_tags({"note": "tuned"})
            run.log_artifact("model", project.artifacts.put_bytes(b"m" * 2048))
            run.add_input(version.id, "train")
    with pytest.raises(RuntimeError), Run(project, name="broken"):
        raise RuntimeError("out of memory")


def _runs(spec: Path, *args: str) -> Result:
    return runner.invoke(app, ["--spec", str(spec), "runs", *args])


def test_list_filters_by_kind_status_and_parent(spec: Path) -> None:
    listed = _runs(spec, "list")
    assert listed.exit_code == 0, listed.output
    assert all(name in listed.output for name in ("search", "lgbm-31", "lgbm-63", "broken"))
    assert "0.81" in listed.output  # the spec's roc_auc goal is a column
    trials = _runs(spec, "list", "--parent", SEARCH[:-3])
    assert "lgbm-31" in trials.output and "lgbm-63" in trials.output
    assert "broken" not in trials.output and "search " not in trials.output
    failed = _runs(spec, "list", "--status", "failed")
    assert "broken" in failed.output and "lgbm" not in failed.output
    searches = _runs(spec, "list", "--kind", "search")
    assert "search" in searches.output and "lgbm" not in searches.output
    bad = _runs(spec, "list", "--status", "done")
    assert isinstance(bad.exception, InvalidInputError)


def test_show_prints_the_whole_record(spec: Path) -> None:
    shown = _runs(spec, "show", TRIAL_A[:-2])
    assert shown.exit_code == 0, shown.output
    out = shown.output
    assert f"lgbm-31 {TRIAL_A}" in out and "trial" in out and "finished" in out
    assert SEARCH in out  # the parent
    assert "num_leaves" in out and "31" in out
    assert "log_loss" in out and "0.4" in out and "roc_auc" in out
    assert "note" in out and "tuned" in out
    assert "model" in out and "2.0 KB" in out
    assert "loans@1" in out and "train" in out
    assert "scikit-learn" in out and "CPU time" in out
    parent = _runs(spec, "show", SEARCH)
    assert "Child runs (2)" in parent.output


def test_show_explains_an_ambiguous_or_unknown_prefix(spec: Path) -> None:
    ambiguous = _runs(spec, "show", "01J0000000000000000000T")
    assert isinstance(ambiguous.exception, InvalidInputError)
    message = ambiguous.exception.message
    assert f"{TRIAL_A} (lgbm-31)" in message and f"{TRIAL_B} (lgbm-63)" in message
    assert "Give more characters" in message
    unknown = _runs(spec, "show", "nope")
    assert isinstance(unknown.exception, NotFoundError)


def test_compare_highlights_differences_and_marks_the_best(spec: Path) -> None:
    compared = _runs(spec, "compare", TRIAL_A, TRIAL_B[:-2])
    assert compared.exit_code == 0, compared.output
    lines = compared.output.splitlines()
    leaves = next(line for line in lines if "num_leaves" in line)
    assert "31" in leaves and "63" in leaves
    auc = next(line for line in lines if "roc_auc" in line)
    assert "0.81 ★" in auc and "0.79 ★" not in auc  # higher is better
    loss = next(line for line in lines if "log_loss" in line)
    assert "0.35 ★" in loss and "0.4 ★" not in loss  # lower is better
    fit = next(line for line in lines if "fit_seconds" in line)
    assert "★" not in fit  # no known direction: nothing is marked


def test_compare_marks_differing_parameters_in_colour(spec: Path) -> None:
    compared = runner.invoke(
        app,
        ["--spec", str(spec), "runs", "compare", TRIAL_A, TRIAL_B],
        env={"FORCE_COLOR": "1", "COLUMNS": "160"},
    )
    lines = compared.output.splitlines()
    leaves = next(line for line in lines if "num_leaves" in line)
    rate = next(line for line in lines if "learning_rate" in line)
    yellow = "\x1b[33m"
    assert yellow in leaves and yellow not in rate


def test_compare_filters_metrics(spec: Path) -> None:
    compared = _runs(spec, "compare", TRIAL_A, TRIAL_B, "--metric", "roc_auc")
    assert "roc_auc" in compared.output and "log_loss" not in compared.output
    unknown = _runs(spec, "compare", TRIAL_A, TRIAL_B, "--metric", "auc")
    assert isinstance(unknown.exception, InvalidInputError)
    assert "they have fit_seconds, log_loss, roc_auc" in unknown.exception.message
    alone = _runs(spec, "compare", TRIAL_A)
    assert isinstance(alone.exception, InvalidInputError)
