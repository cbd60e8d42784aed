"""``modelyard train`` and ``modelyard runs reproduce`` through the command line."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from modelyard.cli import app
from modelyard.data.datasets import add_dataset
from modelyard.data.demo import make_loans
from modelyard.errors import InvalidInputError, NotFoundError
from modelyard.project import Project
from modelyard.store import tables
from modelyard.train.runs import list_runs

runner = CliRunner()
FAMILIES = ["-f", "majority", "-f", "logistic", "-f", "tree"]


def test_train_prints_the_leaderboard_and_records_a_run_per_candidate(project: Project) -> None:
    add_dataset(project, "loans", make_loans(800, recent_share=0.0).drop(columns="period"))
    done = runner.invoke(app, ["--spec", str(project.spec_path), "train", *FAMILIES])
    assert done.exit_code == 0, done.output
    out = done.output
    assert "Training 3 candidates on loans@1 (800 rows)" in out
    assert "Leaderboard on the test rows, by roc_auc" in out
    for name in ("majority*", "logistic*", "tree*"):
        assert name in out
    for header in ("vs baseline", "p50 ms", "p99 ms", "rows/s", "size"):
        assert header in out
    assert "✓" in out and "✗" in out  # the demo's ece gate passes for majority, roc_auc fails
    runs = list_runs(project)
    assert {r.name for r in runs} == {"majority", "logistic", "tree"}
    for run in runs:
        assert run.id in out


def test_train_defaults_to_the_only_dataset_and_asks_when_unsure(project: Project) -> None:
    frame = make_loans(600, recent_share=0.0).drop(columns="period")
    add_dataset(project, "applications", frame)
    done = runner.invoke(app, ["--spec", str(project.spec_path), "train", "-f", "majority"])
    assert done.exit_code == 0, done.output
    assert "on applications@1" in done.output
    add_dataset(project, "more", frame.head(300))
    unsure = runner.invoke(app, ["--spec", str(project.spec_path), "train", "-f", "majority"])
    assert isinstance(unsure.exception, InvalidInputError)
    assert "--data" in unsure.exception.message
    chosen = runner.invoke(
        app, ["--spec", str(project.spec_path), "train", "--data", "more@1", "-f", "tree"]
    )
    assert chosen.exit_code == 0 and "on more@1 (300 rows)" in chosen.output


def test_train_without_data_or_with_stray_search_options_says_what_to_do(
    project: Project,
) -> None:
    empty = runner.invoke(app, ["--spec", str(project.spec_path), "train"])
    assert isinstance(empty.exception, NotFoundError)
    assert "modelyard data add" in empty.exception.message
    stray = runner.invoke(app, ["--spec", str(project.spec_path), "train", "--trials", "5"])
    assert isinstance(stray.exception, InvalidInputError)
    assert "--search" in stray.exception.message
    bad = runner.invoke(app, ["--spec", str(project.spec_path), "train", "--search", "bayes"])
    assert isinstance(bad.exception, InvalidInputError)
    assert "grid, random, tpe" in bad.exception.message


def test_runs_reproduce_exits_0_when_identical_and_1_with_every_difference(
    project: Project,
) -> None:
    add_dataset(project, "loans", make_loans(700, recent_share=0.0).drop(columns="period"))
    trained = runner.invoke(app, ["--spec", str(project.spec_path), "train", "-f", "tree"])
    assert trained.exit_code == 0, trained.output
    (run,) = list_runs(project)
    same = runner.invoke(app, ["--spec", str(project.spec_path), "runs", "reproduce", run.id])
    assert same.exit_code == 0, same.output
    assert "every metric reproduced exactly" in same.output
    assert re.search(r"roc_auc\s+│\s+[0-9.]+\s+│\s+[0-9.]+\s+│\s+│\s+yes", same.output)
    with project.db.write() as session:
        session.execute(
            update(tables.RunMetric)
            .where(tables.RunMetric.run_id == run.id, tables.RunMetric.key.in_(["f1", "ece"]))
            .values(value=0.123)
        )
    differs = runner.invoke(app, ["--spec", str(project.spec_path), "runs", "reproduce", run.id])
    assert differs.exit_code == 1, differs.output
    assert "2 of" in differs.output and "metrics differ" in differs.output
    assert len(re.findall(r"│\s+NO\s+│", differs.output)) == 2


@pytest.mark.parametrize("args", [["train", "--help"], ["runs", "reproduce", "--help"]])
def test_help_of_the_new_commands(args: list[str]) -> None:
    done = runner.invoke(app, args)
    assert done.exit_code == 0
    assert "Usage" in done.output


def test_train_with_a_search(project: Project) -> None:
    add_dataset(project, "loans", make_loans(800, recent_share=0.0).drop(columns="period"))
    args = ["train", "-f", "majority", "-f", "logistic", "--search", "grid", "--trials", "2"]
    done = runner.invoke(app, ["--spec", str(project.spec_path), *args, "--folds", "2"])
    assert done.exit_code == 0, done.output
    assert "grid search of 2 trials each" in done.output
    kinds = sorted(r.kind for r in list_runs(project))
    assert kinds == ["search", "train", "train", "trial", "trial"]  # majority has no space
