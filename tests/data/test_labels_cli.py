"""``modelyard data agreement | adjudicate | label-issues | revise-labels | label-history``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import modelyard.cli.data_labels  # noqa: F401  (registers the commands; not wired yet)
from modelyard.cli import app
from modelyard.data.datasets import add_dataset, load_dataset
from modelyard.data.demo import make_loans
from modelyard.errors import InvalidInputError
from modelyard.project import Project

runner = CliRunner()
nan = np.nan

KRIPPENDORFF_2011 = pd.DataFrame(
    {
        "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        "C": [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    }
)


def _run(project: Project, *args: str) -> str:
    result = runner.invoke(app, ["--spec", str(project.spec_path), "data", *args])
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_agreement_from_a_csv_file(project: Project, tmp_path: Path) -> None:
    path = tmp_path / "votes.csv"
    KRIPPENDORFF_2011.rename_axis("unit").to_csv(path)
    out = _run(project, "agreement", str(path), "--id", "unit")
    assert "12 items; annotators: A, B, C, D" in out
    assert "Krippendorff's alpha (nominal): 0.7434" in out
    assert "Fleiss' kappa: n/a" in out
    assert "Cohen's kappa" in out and "0.8448" in out  # A–B
    assert "Disagreement" in out
    assert "│ C         │ 9     │ 2       │ 0.2222 │" in out


def test_agreement_on_a_dataset_version_with_chosen_columns(project: Project) -> None:
    frame = pd.DataFrame(
        {
            "loan_id": ["L1", "L2", "L3", "L4"],
            "income": [1.0, 2.0, 3.0, 4.0],
            "ann": [0, 1, 1, 0],
            "bob": [0, 1, 0, 0],
        }
    )
    add_dataset(project, "labels", frame)
    out = _run(project, "agreement", "labels@1", "--columns", "ann,bob")
    assert "4 items; annotators: ann, bob" in out
    # P̄ = 3/4, P̄e = (5/8)² + (3/8)² = 17/32, κ = (24/32 - 17/32) / (15/32) = 7/15
    assert "Fleiss' kappa: 0.4667" in out


def test_adjudicate_writes_majority_labels_and_lists_ties(project: Project, tmp_path: Path) -> None:
    votes = pd.DataFrame(
        {"item": ["a", "b", "c"], "x": ["cat", "cat", "dog"], "y": ["cat", "dog", "dog"]}
    )
    path, out_path = tmp_path / "votes.csv", tmp_path / "labels.csv"
    votes.to_csv(path, index=False)
    out = _run(project, "adjudicate", str(path), "--id", "item", "--out", str(out_path))
    assert "1 tie(s), 1 left open" in out and "cat, dog" in out
    written = pd.read_csv(out_path)
    assert written.columns.tolist() == ["item", "label"]
    assert written.loc[[0, 2], "label"].tolist() == ["cat", "dog"]
    assert pd.isna(written.loc[1, "label"])  # the tie is left open
    _run(
        project, "adjudicate", str(path), "--id", "item", "--out", str(out_path), "--tie-break", "y"
    )
    assert pd.read_csv(out_path)["label"].tolist() == ["cat", "dog", "dog"]


def test_adjudicate_refuses_an_unknown_policy(project: Project, tmp_path: Path) -> None:
    path = tmp_path / "votes.csv"
    KRIPPENDORFF_2011.to_csv(path, index=False)
    result = runner.invoke(
        app,
        ["data", "adjudicate", str(path), "--out", str(tmp_path / "o.csv"), "--tie-break", "coin"],
    )
    assert isinstance(result.exception, InvalidInputError)


def test_label_issues_on_the_demo_loans(project: Project) -> None:
    frame = make_loans(300, seed=3)
    flipped = frame.copy()
    flipped.loc[:9, "default"] = 1 - flipped.loc[:9, "default"]
    add_dataset(project, "loans", flipped)
    out = _run(project, "label-issues", "loans@1", "--top", "5", "--folds", "3")
    assert "labelled rows look mislabelled" in out
    assert "loan_id" in out and "P(given)" in out
    shown = [line for line in out.splitlines() if "│ L0" in line]
    assert 1 <= len(shown) <= 5


def test_revise_labels_and_history_from_the_command_line(project: Project, tmp_path: Path) -> None:
    add_dataset(project, "loans", make_loans(120, seed=1))
    changes = tmp_path / "changes.csv"
    original = load_dataset(project, "loans@1")[1]["default"].iloc[3]
    pd.DataFrame({"id": ["L0000003"], "new_label": [1 - original], "reason": ["audit"]}).to_csv(
        changes, index=False
    )
    out = _run(project, "revise-labels", "loans@1", str(changes), "--author", "ana")
    assert "loans@2: 1 label(s) changed" in out
    history = _run(project, "label-history", "loans")
    assert "loans@2" in history and "loans@1" in history and "ana" in history


def test_revise_labels_keeps_leading_zeros_of_text_ids(project: Project, tmp_path: Path) -> None:
    add_dataset(project, "codes", pd.DataFrame({"loan_id": ["007", "7"], "default": [0, 0]}))
    changes = tmp_path / "changes.csv"
    changes.write_text("id,new_label,reason\n007,1,confirmed\n")
    _run(project, "revise-labels", "codes@1", str(changes), "--author", "ana", "--source", "manual")
    assert load_dataset(project, "codes")[1]["default"].tolist() == [1, 0]


@pytest.mark.parametrize("command", ["agreement", "adjudicate", "label-issues"])
def test_commands_are_listed_under_data(command: str) -> None:
    result = runner.invoke(app, ["data", "--help"])
    assert command in result.output
