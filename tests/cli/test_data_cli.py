"""``modelyard data …`` end to end: register, show, export and edit a schema, validate, diff."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from modelyard.cli import app
from modelyard.data.demo import DEMO_SPEC

runner = CliRunner()


@pytest.fixture
def spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MODELYARD_DB_URL", raising=False)
    monkeypatch.delenv("MODELYARD_ARTIFACTS", raising=False)
    path = tmp_path / "modelyard.yaml"
    path.write_text(DEMO_SPEC)
    return path


def _frame(rows: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "loan_id": [f"L{i}" for i in range(rows)],
            "age": 18 + np.arange(rows) % 52,  # 18 to 69
            "region": rng.choice(["north", "south"], rows),
            "default": rng.integers(0, 2, rows),
        }
    )


def _run(spec: Path, *args: str) -> Result:
    return runner.invoke(app, ["--spec", str(spec), "data", *args])


def _csv(folder: Path, name: str, frame: pd.DataFrame, **options: str) -> Path:
    path = folder / name
    frame.to_csv(path, index=False, **options)  # type: ignore[call-overload]
    return path


def test_add_list_show_and_add_again(spec: Path, tmp_path: Path) -> None:
    path = _csv(tmp_path, "loans.csv", _frame())
    added = _run(spec, "add", "loans", str(path))
    assert added.exit_code == 0, added.output
    assert "registered loans@1" in added.output and "200 rows × 4 columns" in added.output
    again = _run(spec, "add", "loans", str(path))
    assert "already registered as loans@1" in again.output
    listed = _run(spec, "list")
    assert "loans@1" in listed.output and "raw" in listed.output
    shown = _run(spec, "show", "loans@1")
    assert shown.exit_code == 0, shown.output
    for text in ("loan_id", "category", "target", "id", "loans.csv"):
        assert text in shown.output


def test_export_edit_and_validate_against_a_schema_file(spec: Path, tmp_path: Path) -> None:
    _run(spec, "add", "loans", str(_csv(tmp_path, "loans.csv", _frame())))
    assert _run(spec, "validate", "loans@1").exit_code == 0
    exported = tmp_path / "schema.yaml"
    assert _run(spec, "schema", "loans@1", "--export", str(exported)).exit_code == 0
    text = exported.read_text()
    assert "- name: age" in text
    exported.write_text(text.replace("max: 69", "max: 40", 1))
    checked = _run(spec, "validate", "loans@1", "--schema", str(exported))
    assert checked.exit_code == 1, checked.output
    assert "above_max" in checked.output and "age" in checked.output

    stored = _run(spec, "schema", "loans@1", "--set", str(exported))
    assert stored.exit_code == 0, stored.output
    assert _run(spec, "validate", "loans@1").exit_code == 1, "the stored schema is now stricter"
    assert "edited by" in _run(spec, "show", "loans@1").output


def test_a_file_with_injected_defects_fails_against_a_version(spec: Path, tmp_path: Path) -> None:
    _run(spec, "add", "loans", str(_csv(tmp_path, "loans.csv", _frame())))
    bad = _frame()
    bad.loc[4, "age"] = 400
    bad.loc[[6, 7], "region"] = ["North", "NORTH "]
    path = _csv(tmp_path, "bad.csv", bad)
    result = _run(spec, "validate", str(path), "--against", "loans@1")
    assert result.exit_code == 1, result.output
    for text in ("above_max", "unknown_category", "spelling", "'North'"):
        assert text in result.output
    missing = _run(spec, "validate", str(path))
    assert "--schema FILE or --against" in str(missing.exception)


def test_diff_and_lineage(spec: Path, tmp_path: Path) -> None:
    _run(spec, "add", "loans", str(_csv(tmp_path, "loans.csv", _frame())))
    changed = _frame().drop(columns=["region"]).assign(age=lambda f: f["age"] + 0.5)
    path = _csv(tmp_path, "loans2.csv", changed)
    added = _run(spec, "add", "loans", str(path), "--kind", "clean", "--parent", "loans@1")
    assert added.exit_code == 0, added.output
    result = _run(spec, "diff", "loans@1", "loans@2")
    assert result.exit_code == 0, result.output
    assert "dropped" in result.output and "integer → float" in result.output
    tree = _run(spec, "lineage", "loans@1")
    assert "used to make" in tree.output and "loans@2" in tree.output


def test_a_semicolon_file_needs_and_accepts_delimiter(spec: Path, tmp_path: Path) -> None:
    path = _csv(tmp_path, "semi.csv", _frame(), sep=";")
    refused = _run(spec, "add", "loans", str(path))
    assert refused.exit_code != 0 and "--delimiter ';'" in str(refused.exception)
    accepted = _run(spec, "add", "loans", str(path), "--delimiter", ";")
    assert accepted.exit_code == 0, accepted.output


def test_malformed_input_is_one_red_line_and_exit_2(spec: Path, tmp_path: Path) -> None:
    path = tmp_path / "cut.csv"
    path.write_text("a,b,c\n1,2,3\n4,5\n")
    done = subprocess.run(
        [sys.executable, "-m", "modelyard", "--spec", str(spec), "data", "add", "x", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error:") and "cut.csv" in lines[0].replace("\n", "")
    assert "line 3" in done.stderr
