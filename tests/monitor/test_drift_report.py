"""The drift report files and ``modelyard monitor drift`` on two registered versions."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from modelyard.cli import app
from modelyard.data.datasets import add_dataset
from modelyard.data.demo import DEMO_SPEC, make_loans
from modelyard.errors import InvalidInputError
from modelyard.monitor.drift import compare
from modelyard.monitor.report import MAX_BARS, render_drift_report, write_drift_report
from modelyard.project import Project

runner = CliRunner()
EVIL = "<script>alert('x')</script>"


class _Checker(HTMLParser):
    """Collects the tags and text of a page, failing on any script."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag != "script"
        self.svgs += tag == "svg"

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_and_json_hold_every_column_and_escape_user_text(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"x": rng.normal(0, 1, 3_000), EVIL: rng.choice(["a", EVIL], 3_000)})
    current = pd.DataFrame({"x": rng.normal(1, 1, 3_000), EVIL: rng.choice(["a", EVIL], 3_000)})
    report = compare(reference, current, reference_name="train", current_name="today")
    write_drift_report(report, html=tmp_path / "d.html", json_path=tmp_path / "d.json")
    page = (tmp_path / "d.html").read_text()
    checker = _Checker()
    checker.feed(page)
    assert checker.svgs == 2  # one bar chart per column
    text = "".join(checker.text)
    assert EVIL in text  # shown as text, never as markup
    assert "x" in text and "today" in text and "train" in text
    stored = json.loads((tmp_path / "d.json").read_text())
    assert stored == json.loads(json.dumps(report.to_dict()))
    assert stored["drifted_features"] == ["x"]
    assert stored["features"][0]["statistics"]["wasserstein"] > 0.5


def test_many_categories_are_drawn_as_the_bins_that_moved_most() -> None:
    rng = np.random.default_rng(1)
    labels = [f"v{i:02d}" for i in range(40)]
    reference = pd.DataFrame({"c": rng.choice(labels, 20_000)})
    current = pd.DataFrame(
        {"c": np.where(rng.random(20_000) < 0.2, "v07", rng.choice(labels, 20_000))}
    )
    page = render_drift_report(compare(reference, current))
    assert "v07" in page and f"{40 + 1 - (MAX_BARS - 1)} other" in page


def test_writing_into_a_missing_folder_says_what_to_do(tmp_path: Path) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    with pytest.raises(InvalidInputError, match="folder exists"):
        write_drift_report(compare(frame, frame), html=tmp_path / "nope" / "d.html")


@pytest.fixture
def spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MODELYARD_DB_URL", raising=False)
    monkeypatch.delenv("MODELYARD_ARTIFACTS", raising=False)
    path = tmp_path / "modelyard.yaml"
    path.write_text(DEMO_SPEC)
    loans = make_loans(20_000)
    project = Project.open(path)
    add_dataset(project, "loans", loans[loans["period"] == "reference"])
    add_dataset(project, "loans", loans[loans["period"] == "recent"])
    project.close()
    return path


def test_cli_compares_two_versions_and_writes_json_and_html(spec: Path, tmp_path: Path) -> None:
    out_json, out_html = tmp_path / "drift.json", tmp_path / "drift.html"
    args = [
        "--spec",
        str(spec),
        "monitor",
        "drift",
        "--reference",
        "loans@1",
        "--current",
        "loans@2",
    ]
    result = runner.invoke(app, [*args, "--json", str(out_json), "--report", str(out_html)])
    assert result.exit_code == 0, result.output
    assert "income" in result.output and "wasserstein" in result.output
    assert "Some drift" in result.output
    stored = json.loads(out_json.read_text())
    assert (stored["reference"], stored["current"]) == ("loans@1", "loans@2")
    assert {"income", "purpose", "interest_rate"} <= set(stored["drifted_features"])
    assert "age" not in stored["drifted_features"]
    # only the spec's feature columns: no id, time, target, PII or sensitive column
    compared = {f["feature"] for f in stored["features"]}
    assert compared.isdisjoint({"loan_id", "applied_at", "default", "email", "gender", "period"})
    assert "<svg" in out_html.read_text()


def test_cli_exit_codes_columns_and_tests(spec: Path) -> None:
    base = ["--spec", str(spec), "monitor", "drift", "--reference", "loans@1", "--current"]
    failing = runner.invoke(app, [*base, "loans@2", "--columns", "income,age", "--fail-on-drift"])
    assert failing.exit_code == 1, failing.output
    assert "income" in failing.output and "purpose" not in failing.output
    calm = runner.invoke(app, [*base, "loans@1", "--columns", "age", "--fail-on-drift"])
    assert calm.exit_code == 0 and "No drift" in calm.output
    picked = runner.invoke(app, [*base, "loans@2", "--columns", "income", "--test", "income=psi"])
    assert picked.exit_code == 0 and "psi" in picked.output
    malformed = runner.invoke(app, [*base, "loans@2", "--test", "income"])
    assert isinstance(malformed.exception, InvalidInputError)
    assert "COLUMN=TEST" in malformed.exception.message
