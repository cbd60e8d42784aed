"""Batch scoring: scores equal the model's, rejects say why, chunks and resumes lose nothing."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightgbm
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from modelyard.data.demo import make_loans
from modelyard.data.encoding import FeatureEncoder
from modelyard.errors import DataError, InvalidInputError
from modelyard.serve.batch import (
    NOT_A_NUMBER,
    NOT_FINITE,
    REQUIRED,
    BatchProgress,
    ChunkScorer,
    score_file,
)
from modelyard.train.bundle import ModelBundle

if TYPE_CHECKING:
    from conftest import DemoModel

SECRET = "SECRET-4711"  # a value that must never reach a rejects file


class Interrupted(Exception):
    pass


def stop_after(chunks: int) -> Any:
    """An ``on_progress`` that interrupts the run once ``chunks`` chunks are written."""

    def on_progress(progress: BatchProgress) -> None:
        if progress.chunks_done == chunks:
            raise Interrupted

    return on_progress


@pytest.fixture(scope="module")
def bundle(demo_model: DemoModel) -> ModelBundle:
    """The demo champion: LightGBM with categories and a cleaning recipe, as registered."""
    bundle = demo_model.champion.bundle
    assert bundle is not None and bundle.recipe is not None and bundle.task == "binary"
    return bundle


def write(frame: pd.DataFrame, path: Path, row_group_size: int | None = None) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size)
    return path


def expected_scores(bundle: ModelBundle, frame: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """The oracle: the bundle's own frame path on the given rows, in one call."""
    return bundle.predict(bundle.encode_frame(frame.iloc[rows].reset_index(drop=True)))


def bad_applications(bundle: ModelBundle) -> tuple[pd.DataFrame, pd.DataFrame, set[Any]]:
    """(what the model should see, the file's rows with bad values, the expected rejects)."""
    fields = {f.name: f for f in bundle.encoder.fields}
    assert not fields["age"].nullable and not fields["purpose"].nullable  # what the rows test
    truth = make_loans(1_000, seed=11).reset_index(drop=True)
    truth.loc[40, "purpose"] = "a purpose never seen"  # scored as missing, as serving does
    bad = truth.copy()
    bad["age"] = bad["age"].astype(object)
    bad["income"] = bad["income"].astype(float)
    bad.loc[3, "age"] = SECRET
    bad.loc[10, "income"] = np.inf
    bad.loc[11, "income"] = -np.inf
    bad.loc[20, "age"] = None
    bad.loc[30, ["purpose", "age"]] = [None, "12 years"]
    bad["age"] = bad["age"].map(lambda v: None if v is None else str(v))
    rejects = {
        (3, "age", NOT_A_NUMBER),
        (10, "income", NOT_FINITE),
        (11, "income", NOT_FINITE),
        (20, "age", REQUIRED),
        (30, "age", NOT_A_NUMBER),
        (30, "purpose", REQUIRED),
    }
    return truth, bad, rejects


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_scores_equal_the_model_and_bad_rows_are_rejected_with_reasons(
    bundle: ModelBundle, tmp_path: Path, suffix: str
) -> None:
    truth, bad, expected_rejects = bad_applications(bundle)
    source = write(bad, tmp_path / f"in{suffix}", row_group_size=300)
    result = score_file(
        bundle, source, tmp_path / "out.parquet", chunk_rows=256, keep_columns=["loan_id"]
    )

    rejects = pd.read_parquet(result.rejects_path)
    assert set(rejects.itertuples(index=False, name=None)) == expected_rejects
    assert len(rejects) == len(expected_rejects)
    assert SECRET.encode() not in result.rejects_path.read_bytes()
    assert not any(word in reason for reason in rejects["reason"] for word in ("SECRET", "12"))

    scores = pd.read_parquet(result.output_path)
    assert list(scores.columns) == ["row", "loan_id", "probability", "label"]
    rejected = {r for r, _, _ in expected_rejects}
    kept = np.array([i for i in range(len(truth)) if i not in rejected])
    assert scores["row"].to_numpy().tolist() == kept.tolist()
    assert scores["loan_id"].tolist() == truth["loan_id"].iloc[kept].tolist()
    oracle = expected_scores(bundle, truth, kept)
    np.testing.assert_allclose(scores["probability"], oracle, rtol=0, atol=1e-12)
    assert (scores["label"] == (oracle >= bundle.threshold)).all()
    assert scores["label"].dtype == np.int64
    assert (result.rows_in, result.rows_scored, result.rows_rejected) == (1_000, 995, 5)
    assert (result.chunks, result.resumed_chunks) == (4, 0)
    assert not (tmp_path / "out.parquet.parts").exists()


def test_a_boolean_in_a_number_field_is_rejected_row_by_row(
    bundle: ModelBundle, tmp_path: Path
) -> None:
    frame = make_loans(100, seed=2)
    frame["age"] = [True, None] * 50
    result = score_file(bundle, write(frame, tmp_path / "in.parquet"), tmp_path / "out.parquet")
    rejects = pd.read_parquet(result.rejects_path)
    assert set(rejects.loc[rejects["row"] % 2 == 0, "reason"]) == {
        "expected a number, got a boolean"
    }
    assert set(rejects.loc[rejects["row"] % 2 == 1, "reason"]) == {REQUIRED}
    assert result.rows_scored == 0 and result.rows_rejected == 100


@pytest.mark.parametrize("chunk_rows", [13, 64, 1_000, 5_000])
def test_chunk_boundaries_do_not_change_the_output(
    bundle: ModelBundle, tmp_path: Path, chunk_rows: int
) -> None:
    _, bad, _ = bad_applications(bundle)
    source = write(bad.head(400), tmp_path / "in.parquet", row_group_size=50)
    result = score_file(bundle, source, tmp_path / "out.parquet", chunk_rows=chunk_rows)
    assert result.chunks == -(-400 // chunk_rows)
    scores = pd.read_parquet(result.output_path)
    reference = score_file(bundle, source, tmp_path / "whole.parquet", chunk_rows=400)
    pd.testing.assert_frame_equal(scores, pd.read_parquet(reference.output_path))
    pd.testing.assert_frame_equal(
        pd.read_parquet(result.rejects_path), pd.read_parquet(reference.rejects_path)
    )
    # one row group per chunk, so a reader can stream the output too
    assert pq.ParquetFile(result.output_path).metadata.num_row_groups <= result.chunks


@pytest.mark.parametrize(("suffix", "stop"), [(".parquet", 3), (".csv", 3), (".parquet", 7)])
def test_an_interrupted_run_resumes_without_losing_or_repeating_rows(
    bundle: ModelBundle, tmp_path: Path, suffix: str, stop: int
) -> None:
    _, bad, expected_rejects = bad_applications(bundle)
    source = write(bad.head(430), tmp_path / f"in{suffix}", row_group_size=50)
    output = tmp_path / "out.parquet"
    with pytest.raises(Interrupted):
        score_file(bundle, source, output, chunk_rows=64, on_progress=stop_after(stop))
    parts = sorted(p.name for p in (tmp_path / "out.parquet.parts").glob("part-*"))
    assert parts == [f"part-{n:06d}.parquet" for n in range(stop)]
    assert not output.exists()

    resumed = score_file(bundle, source, output, chunk_rows=64)
    assert (resumed.resumed_chunks, resumed.chunks) == (stop, 7)  # 430 rows, 64 a chunk
    rows = pd.read_parquet(output)["row"].to_numpy()
    rejected = {r for r, _, _ in expected_rejects}
    assert rows.tolist() == [i for i in range(430) if i not in rejected]  # each once, in order
    assert set(pd.read_parquet(resumed.rejects_path)["row"]) == rejected
    assert (resumed.rows_in, resumed.rows_rejected) == (430, len(rejected))

    fresh = score_file(bundle, source, tmp_path / "fresh.parquet", chunk_rows=64)
    pd.testing.assert_frame_equal(pd.read_parquet(output), pd.read_parquet(fresh.output_path))


def test_a_changed_input_starts_over(bundle: ModelBundle, tmp_path: Path) -> None:
    source, output = tmp_path / "in.parquet", tmp_path / "out.parquet"
    write(make_loans(300, seed=1), source)
    with pytest.raises(Interrupted):
        score_file(bundle, source, output, chunk_rows=50, on_progress=stop_after(2))
    changed = make_loans(260, seed=2)
    write(changed, source)
    result = score_file(bundle, source, output, chunk_rows=50)
    assert result.started_over and result.resumed_chunks == 0
    scores = pd.read_parquet(output)
    assert scores["row"].tolist() == list(range(260))
    oracle = expected_scores(bundle, changed, np.arange(260))
    np.testing.assert_allclose(scores["probability"], oracle, rtol=0, atol=1e-12)


def test_another_chunk_size_or_no_resume_start_over(bundle: ModelBundle, tmp_path: Path) -> None:
    source, output = write(make_loans(300, seed=1), tmp_path / "in.parquet"), tmp_path / "o.pq"
    with pytest.raises(Interrupted):
        score_file(bundle, source, output, chunk_rows=50, on_progress=stop_after(2))
    assert score_file(bundle, source, output, chunk_rows=60).started_over
    with pytest.raises(Interrupted):
        score_file(bundle, source, output, chunk_rows=50, on_progress=stop_after(2))
    again = score_file(bundle, source, output, chunk_rows=50, resume=False)
    assert again.resumed_chunks == 0 and not again.started_over


def test_a_missing_field_is_a_clear_error_before_any_work(
    bundle: ModelBundle, tmp_path: Path
) -> None:
    source = write(make_loans(200).drop(columns=["income"]), tmp_path / "in.csv")
    output = tmp_path / "out.parquet"
    with pytest.raises(DataError, match=r"lacks the column\(s\) \['income'\]"):
        score_file(bundle, source, output)
    assert list(tmp_path.iterdir()) == [source]  # nothing written


@pytest.mark.parametrize(
    ("keep", "message"),
    [
        (["nope"], r"Cannot keep column\(s\) \['nope'\]: in.parquet has no such column"),
        (["probability"], "the output has columns of those names"),
    ],
)
def test_kept_columns_must_exist_and_not_clash(
    bundle: ModelBundle, tmp_path: Path, keep: list[str], message: str
) -> None:
    source = write(make_loans(200).assign(probability=0.5), tmp_path / "in.parquet")
    with pytest.raises(InvalidInputError, match=message):
        score_file(bundle, source, tmp_path / "out.parquet", keep_columns=keep)


def test_an_empty_file_gives_empty_files_with_the_columns(
    bundle: ModelBundle, tmp_path: Path
) -> None:
    source = write(make_loans(100).head(0), tmp_path / "in.parquet")
    result = score_file(bundle, source, tmp_path / "out.parquet", keep_columns=["loan_id"])
    assert result.rows_in == 0
    assert pq.read_schema(result.output_path).names == ["row", "loan_id", "probability", "label"]
    assert pq.read_table(result.rejects_path).num_rows == 0


def test_files_that_cannot_be_scored_are_refused(bundle: ModelBundle, tmp_path: Path) -> None:
    (tmp_path / "in.json").write_text("{}")
    with pytest.raises(InvalidInputError, match=r"name it \.parquet or \.csv"):
        score_file(bundle, tmp_path / "in.json", tmp_path / "out.parquet")
    with pytest.raises(InvalidInputError, match="does not exist"):
        score_file(bundle, tmp_path / "nowhere.parquet", tmp_path / "out.parquet")
    source = write(make_loans(100), tmp_path / "in.parquet")
    with pytest.raises(InvalidInputError, match="three different files"):
        score_file(bundle, source, source)


# --------------------------------------------------------------------------- other tasks


def _small_bundle(task: str) -> tuple[ModelBundle, pd.DataFrame]:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=600),
            "z": rng.normal(size=600),
            "colour": rng.choice(["r", "g"], 600),
        }
    )
    signal = frame["x"] + (frame["colour"] == "r") + rng.normal(0, 0.3, 600)
    encoder = FeatureEncoder.fit(frame, ["x", "z", "colour"])
    params: dict[str, Any] = {"verbose": -1, "num_leaves": 7, "num_threads": 1}
    if task == "multiclass":
        y = np.digitize(signal, [-0.5, 1.0])
        params |= {"objective": "multiclass", "num_class": 3}
    else:
        y, params["objective"] = signal.to_numpy(), "regression"
    data = lightgbm.Dataset(encoder.transform(frame), y, categorical_feature=[2])
    booster = lightgbm.train(params, data, num_boost_round=15)
    model = booster.model_to_string().encode()
    bundle = ModelBundle.from_bytes("lightgbm", model, encoder, task, "y")
    if task == "multiclass":
        bundle.classes = ("low", "mid", "high")
    return bundle, frame


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_multiclass_and_regression_scores_follow_the_serving_convention(
    tmp_path: Path, task: str
) -> None:
    bundle, frame = _small_bundle(task)
    source = write(frame, tmp_path / "in.csv")
    result = score_file(bundle, source, tmp_path / "out.parquet", chunk_rows=250)
    scores = pd.read_parquet(result.output_path)
    oracle = bundle.predict(bundle.encoder.transform(frame))
    if task == "regression":
        assert list(scores.columns) == ["row", "prediction"]
        np.testing.assert_allclose(scores["prediction"], oracle, rtol=0, atol=1e-12)
        return
    columns = ["probability_low", "probability_mid", "probability_high"]
    assert list(scores.columns) == ["row", *columns, "label"]
    np.testing.assert_allclose(scores[columns].to_numpy(), oracle, rtol=0, atol=1e-12)
    assert scores["label"].tolist() == [("low", "mid", "high")[i] for i in oracle.argmax(1)]


def test_one_chunk_scores_the_same_on_one_thread_or_all(bundle: ModelBundle) -> None:
    chunk = pa.Table.from_pandas(make_loans(500, seed=9), preserve_index=False)
    one = ChunkScorer(bundle, threads=1)(chunk, 1_000).scores
    every = ChunkScorer(bundle)(chunk, 1_000).scores
    assert one.equals(every)
    assert one.column("row").to_pylist() == list(range(1_000, 1_500))


# --------------------------------------------------------------------------- Ray


def test_the_ray_engine_writes_the_same_files_and_leaves_them_resumable(
    bundle: ModelBundle, tmp_path: Path
) -> None:
    import ray  # the `ray` extra: part of the test environment

    from modelyard.serve.batch_ray import ray_session, score_file_ray

    _, bad, _ = bad_applications(bundle)
    source = write(bad, tmp_path / "in.parquet", row_group_size=300)
    local = score_file(bundle, source, tmp_path / "local.parquet", chunk_rows=256)
    with ray_session():  # one instance for both runs; each run alone starts its own
        on_ray = score_file_ray(
            bundle, source, tmp_path / "ray.parquet", chunk_rows=256, keep_columns=["loan_id"]
        )
        with pytest.raises(Interrupted):
            score_file_ray(
                bundle, source, tmp_path / "half.parquet", chunk_rows=256, on_progress=stop_after(2)
            )
    assert not ray.is_initialized()

    scores = pd.read_parquet(on_ray.output_path)
    expected = pd.read_parquet(local.output_path)
    pd.testing.assert_frame_equal(scores.drop(columns=["loan_id"]), expected)
    assert scores["loan_id"].tolist() == bad["loan_id"].iloc[scores["row"]].tolist()
    pd.testing.assert_frame_equal(
        pd.read_parquet(on_ray.rejects_path), pd.read_parquet(local.rejects_path)
    )
    assert (on_ray.rows_in, on_ray.rows_scored, on_ray.chunks) == (1_000, 995, 4)

    # the interrupted Ray run is finished by the local engine, from its third chunk
    finished = score_file(bundle, source, tmp_path / "half.parquet", chunk_rows=256)
    assert (finished.resumed_chunks, finished.chunks) == (2, 4)
    pd.testing.assert_frame_equal(pd.read_parquet(finished.output_path), expected)
