"""A recorded run, rebuilt from its record alone, gives the same metrics exactly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from tabular import SPECS, make_tabular, open_tabular

from modelyard.data.datasets import add_dataset
from modelyard.errors import TrainingError
from modelyard.project import Project
from modelyard.store import tables
from modelyard.train.families import FAMILIES
from modelyard.train.leaderboard import TIMINGS
from modelyard.train.reproduce import reproduce_run
from modelyard.train.runs import get_run
from modelyard.train.trainer import CandidateResult, train_candidates

FAST: dict[str, dict[str, Any]] = {
    "lightgbm": {"num_threads": 1, "num_boost_round": 150},
    "hist_gb": {"max_iter": 60, "num_threads": 1},
    "mlp": {"max_iter": 40, "num_threads": 1},
}
TASKS = ("binary", "multiclass", "regression")
CASES = [(task, name) for task in TASKS for name, f in FAMILIES.items() if task in f.tasks]


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, tuple[Project, dict[str, CandidateResult]]]]:
    """Every family trained once per task (the regression spec has a cleaning step)."""
    out = {}
    for task in TASKS:
        project = open_tabular(tmp_path_factory.mktemp(task), task)
        dataset = add_dataset(project, "tabular", make_tabular(task, 1_000, seed=4))
        results = train_candidates(project, dataset, seed=9, params=FAST)
        out[task] = (project, {r.name: r for r in results})
    yield out
    for project, _ in out.values():
        project.close()


@pytest.mark.parametrize(("task", "family"), CASES)
def test_reproduce_gives_identical_metrics_for_every_family(
    trained: dict[str, tuple[Project, dict[str, CandidateResult]]], task: str, family: str
) -> None:
    project, results = trained[task]
    original = results[family]
    assert original.status == "finished", original.error
    result = reproduce_run(project, original.run_id[:20])
    assert result.run_id == original.run_id and result.name == family
    assert result.identical, [(c.name, c.recorded, c.reproduced) for c in result.differences]
    compared = {c.name for c in result.comparisons}
    assert "model_bytes" in compared and not compared & set(TIMINGS)
    assert compared == set(original.metrics) - {*TIMINGS, "onnx_bytes"}
    again = get_run(project, result.new_run_id)
    assert again.kind == "reproduce" and again.tags["reproduces"] == original.run_id
    assert again.tags["identical"] == "true" and again.status == "finished"
    assert again.params == get_run(project, original.run_id).params


def test_a_difference_is_reported_never_hidden(
    trained: dict[str, tuple[Project, dict[str, CandidateResult]]],
) -> None:
    project, results = trained["binary"]
    original = results["tree"]
    with project.db.write() as session:
        session.execute(
            update(tables.RunMetric)
            .where(tables.RunMetric.run_id == original.run_id, tables.RunMetric.key == "recall")
            .values(value=original.metrics["recall"] + 1e-12)
        )
    result = reproduce_run(project, original.run_id)
    assert not result.identical
    assert [c.name for c in result.differences] == ["recall"]
    (difference,) = result.differences
    assert difference.difference == pytest.approx(-1e-12, abs=1e-13)
    assert get_run(project, result.new_run_id).tags["identical"] == "false"


def test_the_recorded_spec_version_is_used_not_the_current_one(tmp_path: Path) -> None:
    project = open_tabular(tmp_path, "binary")
    dataset = add_dataset(project, "tabular", make_tabular("binary", 800))
    (original,) = train_candidates(project, dataset, families=["logistic"])
    project.close()
    changed = SPECS["binary"] + "costs:\n  false_negative: 20.0\n"  # moves the threshold
    (tmp_path / "modelyard.yaml").write_text(changed)
    reopened = Project.open(tmp_path / "modelyard.yaml")
    assert reopened.spec_hash != get_run(reopened, original.run_id).spec_hash
    result = reproduce_run(reopened, original.run_id)
    assert result.identical
    (retrained,) = train_candidates(reopened, dataset, families=["logistic"])
    assert retrained.metrics["threshold"] != original.metrics["threshold"]
    reopened.close()


def test_a_failed_run_has_nothing_to_reproduce(tmp_path: Path) -> None:
    project = open_tabular(tmp_path, "binary")
    dataset = add_dataset(project, "tabular", make_tabular("binary", 500))
    results = train_candidates(
        project,
        dataset,
        families=["majority", "lightgbm"],
        params={"lightgbm": {"num_leaves": 1}},
    )
    failed = next(r for r in results if r.status == "failed")
    with pytest.raises(TrainingError, match=r"failed \(LightGBMError.*num_leaves.*\); it has no"):
        reproduce_run(project, failed.run_id)
    project.close()
