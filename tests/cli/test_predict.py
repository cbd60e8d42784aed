"""``modelyard predict``: batch scoring from the command line, its summary and its resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from modelyard.cli import app
from modelyard.cli import predict as predict_cli
from modelyard.data.datasets import add_dataset
from modelyard.data.demo import make_loans
from modelyard.errors import DataError, InvalidInputError, NotFoundError
from modelyard.monitor.log_files import ENV_PREDICTIONS, read_predictions
from modelyard.project import Project
from modelyard.registry.versions import register_candidate
from modelyard.serve.batch import BatchProgress
from modelyard.train.bundle import ModelBundle
from modelyard.train.trainer import train_candidates

runner = CliRunner()


@pytest.fixture(scope="module")
def champion(module_project: Project) -> ModelBundle:
    """loans@1, alias champion: LightGBM on 2,000 demo rows, with the demo's recipe."""
    frame = make_loans(2_000, seed=4)
    dataset = add_dataset(module_project, "loans", frame)
    params = {"lightgbm": {"num_threads": 1, "num_boost_round": 40}}
    (result,) = train_candidates(
        module_project, dataset, frame, families=["lightgbm"], params=params
    )
    register_candidate(module_project, "loans", result, aliases=("champion",))
    assert result.bundle is not None
    return result.bundle


@pytest.fixture
def rows(tmp_path: Path) -> tuple[pd.DataFrame, Path]:
    """Unseen applications as a CSV, one of them with text where a number belongs."""
    frame = make_loans(1_100, seed=8)
    frame["age"] = frame["age"].astype(object)
    frame.loc[7, "age"] = "forty"
    path = tmp_path / "applications.csv"
    frame.to_csv(path, index=False)
    return frame, path


def _predict(module_project: Project, source: Path, output: Path, *options: str) -> list[str]:
    return [
        "--spec",
        str(module_project.spec_path),
        "predict",
        "loans@champion",
        "--input",
        str(source),
        "--output",
        str(output),
        *options,
    ]


def test_predict_scores_the_file_and_says_where_everything_went(
    module_project: Project, champion: ModelBundle, rows: tuple[pd.DataFrame, Path]
) -> None:
    frame, source = rows
    output = source.parent / "scores.parquet"
    args = _predict(module_project, source, output, "--keep", "loan_id", "--chunk-rows", "300")
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    text = " ".join(done.output.split())
    assert "Scored 1,099 of 1,100 rows with loans@1, 1 rejected" in text
    assert f"Scores: {output}" in text
    rejects = source.parent / "scores.rejects.parquet"
    assert f"Rejects: {rejects} (row, field, reason)" in text

    scores = pd.read_parquet(output)
    assert list(scores.columns) == ["row", "loan_id", "probability", "label"]
    kept = np.array([i for i in range(1_100) if i != 7])
    assert scores["row"].tolist() == kept.tolist()
    assert scores["loan_id"].tolist() == frame["loan_id"].iloc[kept].tolist()
    clean = frame.iloc[kept].astype({"age": float}).reset_index(drop=True)
    oracle = champion.predict(champion.encode_frame(clean))
    np.testing.assert_allclose(scores["probability"], oracle, rtol=0, atol=1e-12)
    assert pd.read_parquet(rejects).to_dict("records") == [
        {"row": 7, "field": "age", "reason": "expected a number, got text"}
    ]


def test_ctrl_c_keeps_finished_chunks_and_the_same_command_resumes(
    module_project: Project,
    champion: ModelBundle,
    rows: tuple[pd.DataFrame, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, source = rows
    output = source.parent / "scores.parquet"
    args = _predict(module_project, source, output, "--chunk-rows", "250")
    update = predict_cli._ProgressBar.update

    def interrupt_after_two(bar: predict_cli._ProgressBar, progress: BatchProgress) -> None:
        update(bar, progress)
        if progress.chunks_done == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(predict_cli._ProgressBar, "update", interrupt_after_two)
        stopped = runner.invoke(app, args)
    assert stopped.exit_code == 130, stopped.output
    assert "Interrupted. Finished chunks are kept" in stopped.output
    assert not output.exists()

    resumed = runner.invoke(app, args)
    assert resumed.exit_code == 0, resumed.output
    assert "Resumed an interrupted run: 2 of 5 chunks were scored before." in resumed.output
    assert pd.read_parquet(output)["row"].tolist() == [i for i in range(1_100) if i != 7]

    again = runner.invoke(app, [*args, "--no-resume"])
    assert again.exit_code == 0 and "Resumed" not in again.output


@pytest.mark.parametrize(
    ("options", "error", "fragment"),
    [
        (("--engine", "spark"), InvalidInputError, "--engine must be one of local, ray"),
        (
            ("--keep", "nope"),
            InvalidInputError,
            "Cannot keep column(s) ['nope']: applications.csv has no such",
        ),
    ],
)
def test_bad_options_are_errors_with_a_way_out(
    module_project: Project,
    champion: ModelBundle,
    rows: tuple[pd.DataFrame, Path],
    options: tuple[str, ...],
    error: type[Exception],
    fragment: str,
) -> None:
    _, source = rows
    done = runner.invoke(app, _predict(module_project, source, source.with_suffix(".pq"), *options))
    assert isinstance(done.exception, error)  # `modelyard` turns it into one red line, exit 2
    assert fragment in str(done.exception)


def test_a_file_without_a_model_field_or_an_unknown_model_is_refused(
    module_project: Project, champion: ModelBundle, tmp_path: Path
) -> None:
    source = tmp_path / "in.parquet"
    make_loans(200).drop(columns=["credit_score"]).to_parquet(source)
    done = runner.invoke(app, _predict(module_project, source, tmp_path / "out.parquet"))
    assert isinstance(done.exception, DataError)
    assert "lacks the column(s) ['credit_score']" in str(done.exception)
    unknown = _predict(module_project, source, tmp_path / "out.parquet")
    unknown[3] = "loans@9"
    done = runner.invoke(app, unknown)
    assert isinstance(done.exception, NotFoundError)


def test_predict_writes_the_scored_rows_to_the_prediction_log(
    module_project: Project,
    champion: ModelBundle,
    rows: tuple[pd.DataFrame, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frame, source = rows
    logs = source.parent / "predictions"
    monkeypatch.setenv(ENV_PREDICTIONS, str(logs))
    output = source.parent / "logged.parquet"
    done = runner.invoke(app, _predict(module_project, source, output, "--chunk-rows", "300"))
    assert done.exit_code == 0, done.output
    assert "Prediction log: 1,099 rows written" in " ".join(done.output.split())

    logged = read_predictions(logs, "loans").to_pandas()
    logged = logged.sort_values(["request_id", "row"], ignore_index=True)
    ids = logged["request_id"].unique()
    assert len(ids) == 4 and all(i.startswith("batch-") for i in ids)  # a request per chunk
    scores = pd.read_parquet(output).sort_values("row", ignore_index=True)
    np.testing.assert_array_equal(logged["score"], scores["probability"])
    assert logged["label"].tolist() == scores["label"].astype(str).tolist()
    scored_rows = frame.drop(index=7).reset_index(drop=True)  # row 7 was rejected
    np.testing.assert_array_equal(logged["income"], scored_rows["income"].astype(float))
    assert logged["purpose"].tolist() == scored_rows["purpose"].tolist()
    assert logged["latency_ms"].isna().all() and (logged["version"] == 1).all()
