"""The walking skeleton, end to end, through the real command line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def modelyard(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("MODELYARD_DB_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "modelyard", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_quickstart_runs_the_lifecycle_and_leaves_a_browsable_store(tmp_path: Path) -> None:
    done = modelyard("quickstart", "--rows", "6000", "--requests", "60", cwd=tmp_path)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "Champion: loans@1" in done.stdout
    assert "60 requests, 0 failed" in done.stdout
    assert (tmp_path / "modelyard-demo" / ".modelyard" / "modelyard.db").exists()

    models = modelyard("models", "list", cwd=tmp_path / "modelyard-demo")
    assert models.returncode == 0, models.stderr
    assert "loans@1" in models.stdout and "champion" in models.stdout
    runs = modelyard("runs", "list", cwd=tmp_path / "modelyard-demo")
    assert "logistic" in runs.stdout and "lightgbm" in runs.stdout
    data = modelyard("data", "list", cwd=tmp_path / "modelyard-demo")
    assert "loans@1" in data.stdout and "loans-recent@1" in data.stdout

    again = modelyard("quickstart", "--rows", "6000", "--requests", "10", cwd=tmp_path)
    assert again.returncode == 0, again.stderr + again.stdout
    assert "Champion: loans@2" in again.stdout
    data = modelyard("data", "list", cwd=tmp_path / "modelyard-demo")
    assert "loans@2" not in data.stdout  # same content, same dataset version
    shown = modelyard("models", "show", "loans@champion", cwd=tmp_path / "modelyard-demo")
    assert "loans@2" in shown.stdout and "roc_auc" in shown.stdout


def test_readme_python_example_runs_as_printed(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    example = readme.split("```python\n", 1)[1].split("```", 1)[0]
    made = modelyard("quickstart", "--rows", "3000", "--requests", "5", cwd=tmp_path)
    assert made.returncode == 0, made.stderr + made.stdout
    done = subprocess.run(
        [sys.executable, "-c", example], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    scores = [float(x) for x in done.stdout.strip("[] \n").split()]
    assert len(scores) == 5 and all(0 < x < 1 for x in scores)
