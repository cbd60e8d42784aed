"""The prediction log: requests through the app come back from Parquet as sent and answered,
PII never reaches disk, sampling and the bounded buffer behave, segments flush by size and
time, retention removes whole old days, and the CLI shows the latest rows."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from modelyard.data.demo import DEMO_SPEC, make_loans
from modelyard.data.encoding import FeatureEncoder
from modelyard.errors import DataError, InvalidInputError
from modelyard.monitor.log_files import (
    ENV_PREDICTIONS,
    FIXED,
    TIMESTAMP,
    apply_retention,
    predictions_root,
    read_predictions,
)
from modelyard.monitor.pii import ENV_KEY, hash_values
from modelyard.monitor.predlog import PredictionLog
from modelyard.monitor.segment_writer import SegmentWriter
from modelyard.project import Project
from modelyard.serve.app import Scored, create_app
from modelyard.serve.model import ServedModel
from modelyard.serve.protocols import prediction
from modelyard.serve.signature import Rows
from modelyard.spec import PredictionLogSettings
from modelyard.train import flavors
from modelyard.train.bundle import ModelBundle
from modelyard.train.families import FAMILIES, TrainingData

FEATURES = ["age", "income", "credit_score", "purpose", "home_ownership", "email"]


def _bundle(task: str, frame: pd.DataFrame, features: list[str], target: Any) -> ModelBundle:
    encoder = FeatureEncoder.fit(frame, features)
    X = encoder.transform(frame)
    family = FAMILIES["logistic" if task != "regression" else "linear"]
    model = family.fit(TrainingData(X, target, X, target, encoder, task), family.defaults(task, 0))
    return ModelBundle.from_bytes("sklearn", flavors.dump("sklearn", model), encoder, task, "y")


def _records(frame: pd.DataFrame, features: list[str]) -> list[dict[str, Any]]:
    rows = frame[features].astype(object)
    records: list[dict[str, Any]] = rows.where(rows.notna(), None).to_dict("records")
    return records


@pytest.fixture(scope="module")
def loans() -> tuple[ServedModel, list[dict[str, Any]]]:
    """loans v3 takes the applicant's e-mail as a category input (the spec lists it as PII)."""
    frame = make_loans(600, recent_share=0.0, seed=3)
    bundle = _bundle("binary", frame, FEATURES, frame["default"].to_numpy())
    records = _records(frame.sample(8, random_state=1), FEATURES)
    records[0]["email"] = "unseen.person@example.net"
    records[1]["income"] = None
    return ServedModel("loans", 3, bundle), records


@pytest.fixture(scope="module")
def numeric() -> ServedModel:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    bundle = _bundle("binary", frame, ["a", "b", "c"], (frame["a"] > 0).astype(int).to_numpy())
    return ServedModel("m", 1, bundle)


@pytest.fixture(autouse=True)
def _own_locations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_PREDICTIONS, raising=False)
    monkeypatch.delenv(ENV_KEY, raising=False)


def _open(folder: Path, monitoring: str = "") -> Project:
    folder.mkdir(parents=True)
    (folder / "modelyard.yaml").write_text(DEMO_SPEC + monitoring)
    return Project.open(folder / "modelyard.yaml")


def _v2(records: list[dict[str, Any]], request_id: str | None = None) -> dict[str, Any]:
    inputs = [
        {
            "name": name,
            "shape": [len(records)],
            "datatype": "BYTES" if isinstance(records[0][name], str) else "FP64",
            "data": [r[name] for r in records],
        }
        for name in records[0]
    ]
    return {"inputs": inputs} | ({"id": request_id} if request_id else {})


def _scored(model: ServedModel, record: dict[str, Any], request_id: str = "r") -> Scored:
    rows = Rows(n=1, records=[record])
    scores = model.bundle.predict(model.signature.encode(rows))
    return Scored(request_id, model, rows, prediction(model.bundle, scores), 0.002)


def _settings(**changes: Any) -> PredictionLogSettings:
    return PredictionLogSettings(**({"flush_seconds": 3600.0} | changes))


def _by_request(table: pa.Table) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = table.to_pylist()
    return sorted(rows, key=lambda r: (r["request_id"] or "", r["row"]))


# ---------------------------------------------------------------- round trip through the app


def test_requests_come_back_as_sent_and_answered(
    project: Project, loans: tuple[ServedModel, list[dict[str, Any]]]
) -> None:
    model, records = loans
    log = PredictionLog.for_project(project, "loans")
    assert log is not None
    client = TestClient(create_app(model, hooks=[log.record]))
    before = datetime.now(UTC)
    first = client.post("/v1/models/loans:predict", json={"records": records[:3]})
    v2 = client.post("/v2/models/loans/infer", json=_v2(records[3:5], "req-2")).json()
    after = datetime.now(UTC)
    v1, v1_id = first.json(), first.headers["x-request-id"]  # the server made one up
    log.close()
    assert log.stats() == {"written": 5, "dropped": 0, "segments": 1}

    table = read_predictions(project, "loans")
    assert table.schema.names == [
        *FIXED.names[:6],
        *FEATURES,
        *FIXED.names[6:],
    ]
    assert table.schema.field("ts").type == TIMESTAMP
    assert table.schema.field("income").type == pa.float64()
    assert table.schema.field("purpose").type == pa.string()
    key = (project.root / ".modelyard" / "pii.key").read_bytes()
    answered = [(p["probability"], p["label"]) for p in v1["predictions"]]
    probability, label = v2["outputs"]
    answered += list(zip(probability["data"], label["data"], strict=True))
    expected_ids = [v1_id] * 3 + ["req-2"] * 2
    logged = sorted(table.to_pylist(), key=lambda r: (r["request_id"] == "req-2", r["row"]))
    for got, sent, (p, lab), request_id in zip(
        logged, records[:5], answered, expected_ids, strict=True
    ):
        assert got["request_id"] == request_id
        assert (got["model"], got["version"]) == ("loans", 3)
        assert before - timedelta(milliseconds=1) <= got["ts"] <= after
        assert got["latency_ms"] > 0
        for name in ("age", "income", "credit_score"):
            assert got[name] == (None if sent[name] is None else float(sent[name]))
        assert (got["purpose"], got["home_ownership"]) == (sent["purpose"], sent["home_ownership"])
        assert got["email"] == hash_values([sent["email"]], key)[0]
        assert got["score"] == p and got["label"] == str(lab)
        assert got["confidence"] == pytest.approx(max(p, 1 - p), abs=1e-15)
    assert [r["row"] for r in logged] == [0, 1, 2, 0, 1]


def test_duckdb_reads_the_hive_folder(
    project: Project, loans: tuple[ServedModel, list[dict[str, Any]]]
) -> None:
    import duckdb

    model, records = loans
    log = PredictionLog.for_project(project, "loans")
    assert log is not None
    client = TestClient(create_app(model, hooks=[log.record]))
    client.post("/v2/models/loans/infer", json=_v2(records, "req-d"))
    log.close()
    folder = predictions_root(project) / "loans"
    query = (
        f"SELECT row, income, purpose, email, score, date FROM read_parquet("
        f"'{folder}/**/*.parquet', hive_partitioning = true) ORDER BY row"
    )
    got = duckdb.sql(query).fetchall()
    expected = _by_request(read_predictions(project, "loans"))
    assert [g[:5] for g in got] == [
        (r["row"], r["income"], r["purpose"], r["email"], r["score"]) for r in expected
    ]
    assert {str(g[5]) for g in got} == {expected[0]["ts"].date().isoformat()}


def test_a_numeric_matrix_is_logged_column_by_column(tmp_path: Path, numeric: ServedModel) -> None:
    log = PredictionLog(tmp_path / "m", _settings())
    client = TestClient(create_app(numeric, hooks=[log.record]))
    matrix = [[0.5, -1.25, 3.0], [-2.0, 0.0, 1e-3]]
    tensor = {"name": "input-0", "shape": [2, 3], "datatype": "FP64", "data": matrix}
    body = client.post("/v2/models/m/infer", json={"id": "mx", "inputs": [tensor]}).json()
    log.close()
    rows = _by_request(read_predictions(tmp_path, "m"))
    assert [[r["a"], r["b"], r["c"]] for r in rows] == matrix
    assert [r["score"] for r in rows] == body["outputs"][0]["data"]


def test_tensor_requests_are_logged_a_batch_at_a_time(
    tmp_path: Path, numeric: ServedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``prediction_log=`` the server's batcher hands tensor requests to the log in
    whole batches; only other shapes go through ``record``."""
    log = PredictionLog(tmp_path / "m", _settings())
    recorded: list[str | None] = []
    record = log.record
    monkeypatch.setattr(log, "record", lambda s: (recorded.append(s.request_id), record(s)))
    client = TestClient(create_app(numeric, prediction_log=log))
    matrix = [[0.5, -1.25, 3.0], [-2.0, 0.0, 1e-3], [1.0, 2.0, -3.0]]
    answers = {}
    for request_id, part in (("t1", matrix[:1]), ("t2", matrix[1:])):
        tensor = {"name": "x", "shape": [len(part), 3], "datatype": "FP64", "data": part}
        reply = client.post("/v2/models/m/infer", json={"id": request_id, "inputs": [tensor]})
        answers[request_id] = reply.json()["outputs"]
    client.post(
        "/v1/models/m:predict",
        json={"records": [{"a": 1.0, "b": 2.0, "c": -3.0}]},
        headers={"x-request-id": "rec"},
    )
    log.close()
    assert recorded == ["rec"]
    rows = _by_request(read_predictions(tmp_path, "m"))
    assert [(r["request_id"], r["row"]) for r in rows] == [
        ("rec", 0),
        ("t1", 0),
        ("t2", 0),
        ("t2", 1),
    ]
    assert [[r["a"], r["b"], r["c"]] for r in rows[1:]] == matrix
    tensor_rows = rows[1:]
    probabilities = answers["t1"][0]["data"] + answers["t2"][0]["data"]
    labels = answers["t1"][1]["data"] + answers["t2"][1]["data"]
    assert [r["score"] for r in tensor_rows] == probabilities
    assert [r["label"] for r in tensor_rows] == [str(v) for v in labels]
    assert rows[0]["score"] == tensor_rows[2]["score"]  # the same row, sent as a record
    assert all(r["latency_ms"] > 0 and r["version"] == 1 for r in rows)


def test_the_batch_tap_keeps_only_tagged_and_sampled_requests(
    tmp_path: Path, numeric: ServedModel
) -> None:
    log = PredictionLog(tmp_path / "m", _settings(sample_rate=0.5), rng=random.Random(3))
    tap = log.batch_tap(numeric, "binary")
    assert tap is not None
    X = np.arange(30, dtype=np.float64).reshape(10, 3)
    scores = np.linspace(0.05, 0.95, 10)
    requests: list[tuple[int, Any]] = [(2, ("a", 0.0)), (1, None), (3, ("c", 0.0))]
    requests += [(1, (f"s{i}", 0.0)) for i in range(4)]
    tap(X, scores, requests)
    log.close()
    draws = random.Random(3)
    kept = [name for name in ["a", "c", "s0", "s1", "s2", "s3"] if draws.random() < 0.5]
    rows = _by_request(read_predictions(tmp_path, "m"))
    assert sorted({r["request_id"] for r in rows}) == sorted(kept) and kept
    first_row = {"a": 0, "c": 3, "s0": 6, "s1": 7, "s2": 8, "s3": 9}
    for r in rows:
        i = first_row[r["request_id"]] + r["row"]
        assert [r["a"], r["b"], r["c"]] == X[i].tolist()
        assert r["score"] == scores[i] and r["label"] == str(int(scores[i] >= 0.5))


def test_a_model_with_category_inputs_is_logged_request_by_request(
    tmp_path: Path, loans: tuple[ServedModel, list[dict[str, Any]]], numeric: ServedModel
) -> None:
    model, _ = loans
    log = PredictionLog(tmp_path / "loans", _settings())
    assert log.batch_tap(model, "binary") is None
    hashed = PredictionLog(tmp_path / "m", _settings(), pii=["b"], key=b"k" * 32)
    assert hashed.batch_tap(numeric, "binary") is None


def test_rows_scored_in_batch_are_logged_with_pii_hashed(
    tmp_path: Path, loans: tuple[ServedModel, list[dict[str, Any]]]
) -> None:
    """``modelyard predict``'s path: Arrow columns in, one request, written at once."""
    model, records = loans
    key = b"k" * 32
    log = PredictionLog(tmp_path / "loans", _settings(buffer_rows=3), pii=["email"], key=key)
    inputs = pa.Table.from_pylist(records)
    scores = model.bundle.predict(model.signature.encode(Rows(n=len(records), records=records)))
    log.log_scored(model, "binary", inputs, scores, "batch-x")
    log.log_scored(model, "binary", inputs.slice(0, 0), scores[:0], "batch-empty")
    log.close()
    assert log.stats() == {"written": 8, "dropped": 0, "segments": 1}
    rows = sorted(read_predictions(tmp_path, "loans").to_pylist(), key=lambda r: r["row"])
    assert [(r["request_id"], r["row"]) for r in rows] == [("batch-x", i) for i in range(8)]
    assert [r["email"] for r in rows] == hash_values([r["email"] for r in records], key)
    assert [r["income"] for r in rows] == [r["income"] for r in records]  # None stays missing
    assert [r["purpose"] for r in rows] == [r["purpose"] for r in records]
    assert [r["score"] for r in rows] == scores.tolist()
    labels = prediction(model.bundle, scores).labels
    assert labels is not None and [r["label"] for r in rows] == [str(v) for v in labels]
    assert all(r["latency_ms"] is None for r in rows)


def _one_row_requests(client: TestClient, name: str, record: dict[str, Any], tag: str) -> None:
    """``record`` as one-row requests of every shape the server takes (ids ``tag-…``)."""
    client.post(
        f"/v1/models/{name}:predict",
        json={"records": [record]},
        headers={"x-request-id": f"{tag}-records"},
    )
    client.post(f"/v2/models/{name}/infer", json=_v2([record], f"{tag}-columns"))
    if all(isinstance(v, float) for v in record.values()):
        tensor = {
            "name": "input-0",
            "shape": [1, 3],
            "datatype": "FP64",
            "data": [list(record.values())],
        }
        client.post(f"/v2/models/{name}/infer", json={"id": f"{tag}-matrix", "inputs": [tensor]})


def test_every_request_shape_logs_the_same_row(
    tmp_path: Path, loans: tuple[ServedModel, list[dict[str, Any]]], numeric: ServedModel
) -> None:
    model, records = loans
    for served, record in ((model, records[1]), (numeric, {"a": 0.5, "b": -1.25, "c": 3.0})):
        log = PredictionLog(tmp_path / served.name, _settings(), pii=["email"], key=b"k" * 32)
        client = TestClient(create_app(served, hooks=[log.record]))
        _one_row_requests(client, served.name, record, "one")
        several = client.post(f"/v1/models/{served.name}:predict", json={"records": [record] * 3})
        log.close()
        logged = read_predictions(tmp_path, served.name)
        inputs = [c for c in logged.column_names if c not in FIXED.names]
        assert inputs == list(record)
        expected = {
            k: (hash_values([v], b"k" * 32)[0] if k == "email" else v) for k, v in record.items()
        }
        rows = logged.to_pylist()
        assert len(rows) == (2 if served is model else 3) + 3
        for row in rows:
            assert {k: row[k] for k in inputs} == expected, row["request_id"]
        probability = several.json()["predictions"][0]["probability"]
        assert {r["score"] for r in rows} == {probability}
        assert sorted(r["row"] for r in rows) == [0] * (len(rows) - 2) + [1, 2]
    assert records[1]["income"] is None  # the missing number reads back as null, not NaN


def test_a_hashed_number_has_one_digest_whatever_the_shape(
    tmp_path: Path, numeric: ServedModel
) -> None:
    key = b"k" * 32
    log = PredictionLog(tmp_path / "m", _settings(), pii=["b"], key=key)
    client = TestClient(create_app(numeric, hooks=[log.record]))
    _one_row_requests(client, "m", {"a": 0.5, "b": 2.0, "c": 3.0}, "float")
    client.post("/v1/models/m:predict", json={"records": [{"a": 0.5, "b": 2, "c": 3.0}] * 2})
    log.close()
    logged = read_predictions(tmp_path, "m")
    assert logged.schema.field("b").type == pa.string()
    assert logged.column("b").to_pylist() == [hash_values(["2.0"], key)[0]] * 5
    assert logged.column("a").to_pylist() == [0.5] * 5


def test_a_dropped_input_leaves_a_matrix_request_in_order(
    tmp_path: Path, numeric: ServedModel
) -> None:
    log = PredictionLog(tmp_path / "m", _settings(pii="drop"), pii=["b"])
    client = TestClient(create_app(numeric, hooks=[log.record]))
    _one_row_requests(client, "m", {"a": 0.5, "b": 2.0, "c": 3.0}, "x")
    log.close()
    logged = read_predictions(tmp_path, "m")
    assert "b" not in logged.column_names and logged.num_rows == 3
    assert logged.column("a").to_pylist() == [0.5] * 3
    assert logged.column("c").to_pylist() == [3.0] * 3


def test_rows_beyond_one_block_keep_their_order(tmp_path: Path, numeric: ServedModel) -> None:
    rng = np.random.default_rng(1)
    big = rng.normal(size=(1500, 3))
    log = PredictionLog(tmp_path / "m", _settings())
    client = TestClient(create_app(numeric, hooks=[log.record]))
    for row in big[:700]:
        log.record(_scored(numeric, dict(zip("abc", row.tolist(), strict=True))))
    tensor = {"name": "input-0", "shape": [1500, 3], "datatype": "FP64", "data": big.tolist()}
    client.post("/v2/models/m/infer", json={"id": "big", "inputs": [tensor]})
    for row in big[700:1000]:
        log.record(_scored(numeric, dict(zip("abc", row.tolist(), strict=True))))
    log.close()
    logged = read_predictions(tmp_path, "m")
    assert logged.num_rows == 2500
    table = logged.to_pandas()
    assert log.stats()["segments"] == 1  # one file keeps the order of arrival
    singles = table[table["request_id"] != "big"]
    np.testing.assert_array_equal(singles[["a", "b", "c"]].to_numpy(), big[:1000])
    block = table[table["request_id"] == "big"].sort_values("row")
    assert block["row"].tolist() == list(range(1500))
    np.testing.assert_array_equal(block[["a", "b", "c"]].to_numpy(), big)
    np.testing.assert_allclose(block["score"], numeric.bundle.predict(big), rtol=0, atol=1e-12)


def test_a_value_that_is_no_number_becomes_null_and_keeps_the_segment(
    tmp_path: Path, numeric: ServedModel
) -> None:
    """The writer converts the buffered requests together; one bad value must not cost the
    other rows of the segment (the server validates inputs, a custom hook may not)."""
    log = PredictionLog(tmp_path / "m", _settings())
    good = _scored(numeric, {"a": 0.5, "b": -1.25, "c": 3.0}, "good")
    odd = Scored(
        "odd",
        numeric,
        Rows(n=1, records=[{"a": "many", "b": 1.0, "c": 2.0}]),
        good.prediction,
        0.001,
    )
    for scored in (good, odd, good):
        log.record(scored)
    log.close()
    rows = _by_request(read_predictions(tmp_path, "m"))
    assert [(r["request_id"], r["a"], r["c"]) for r in rows] == [
        ("good", 0.5, 3.0),
        ("good", 0.5, 3.0),
        ("odd", None, 2.0),
    ]
    assert log.stats() == {"written": 3, "dropped": 0, "segments": 1}


def test_multiclass_and_regression_outputs(tmp_path: Path) -> None:
    frame = make_loans(900, recent_share=0.0, seed=5)
    features = ["age", "income", "credit_score"]
    purpose = frame["purpose"].astype(str)
    classes = sorted(purpose.unique())
    multi = _bundle("multiclass", frame, features, purpose.map(classes.index).to_numpy())
    multi.classes = tuple(classes)
    regression = _bundle("regression", frame, features, frame["interest_rate"].to_numpy())
    records = _records(frame.head(4), features)
    for name, bundle in (("p", multi), ("r", regression)):
        log = PredictionLog(tmp_path / name, _settings())
        client = TestClient(create_app(ServedModel(name, 1, bundle), hooks=[log.record]))
        client.post(f"/v1/models/{name}:predict", json={"records": records})
        log.close()
        rows = _by_request(read_predictions(tmp_path, name))
        scores = bundle.predict(bundle.encode_records(records))
        if name == "p":
            assert [r["score"] for r in rows] == scores.max(1).tolist()
            assert [r["confidence"] for r in rows] == scores.max(1).tolist()
            assert [r["label"] for r in rows] == [classes[i] for i in scores.argmax(1)]
        else:
            assert [r["score"] for r in rows] == scores.tolist()
            assert {r["label"] for r in rows} == {None} == {r["confidence"] for r in rows}


# ---------------------------------------------------------------- PII


def _found(folder: Path, values: list[str]) -> list[str]:
    """The values that occur in any file under ``folder``: in its raw bytes (footer, statistics,
    page headers are never compressed) or in any decoded text cell (pages are zstd-compressed,
    so a value stored there need not appear in the raw bytes)."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert files, f"nothing written under {folder}"
    raw = b"".join(p.read_bytes() for p in files)
    cells = [
        cell
        for f in files
        for column in pq.read_table(f).columns
        if pa.types.is_string(column.type)
        for cell in column.to_pylist()
        if cell
    ]
    return [v for v in values if v.encode() in raw or any(v in cell for cell in cells)]


@pytest.mark.parametrize("mode", ["hash", "drop"])
def test_pii_never_reaches_disk(
    tmp_path: Path, loans: tuple[ServedModel, list[dict[str, Any]]], mode: str
) -> None:
    model, records = loans
    project = _open(tmp_path / "p", f"monitoring:\n  log:\n    pii: {mode}\n")
    try:
        log = PredictionLog.for_project(project, "loans")
        assert log is not None
        client = TestClient(create_app(model, hooks=[log.record]))
        client.post("/v1/models/loans:predict", json={"records": records})
        client.post("/v2/models/loans/infer", json=_v2(records, "req-p"))
        log.close()
        table = read_predictions(project, "loans")
        emails = [r["email"] for r in records]
        assert _found(predictions_root(project) / "loans", emails) == []
    finally:
        project.close()
    if mode == "drop":
        assert "email" not in table.column_names
    else:
        key = (tmp_path / "p" / ".modelyard" / "pii.key").read_bytes()
        assert sorted(table.column("email").to_pylist()) == sorted(hash_values(emails * 2, key))

    # the check can see a leak: the same rows logged without the PII rule hold every address
    control = PredictionLog(tmp_path / "control" / "loans", _settings())
    client = TestClient(create_app(model, hooks=[control.record]))
    client.post("/v1/models/loans:predict", json={"records": records})
    control.close()
    assert _found(tmp_path / "control" / "loans", emails) == emails


def test_a_pii_field_the_model_does_not_take_is_not_logged(
    tmp_path: Path, numeric: ServedModel
) -> None:
    log = PredictionLog(tmp_path / "m", _settings(), pii=["email"], key=b"k" * 32)
    client = TestClient(create_app(numeric, hooks=[log.record]))
    record = {"a": 1.0, "b": 2.0, "c": 3.0, "email": "someone.secret@example.org"}
    assert client.post("/v1/models/m:predict", json={"records": [record]}).status_code == 200
    log.close()
    assert _found(tmp_path / "m", ["someone.secret"]) == []
    assert read_predictions(tmp_path, "m").column_names == [
        *FIXED.names[:6],
        "a",
        "b",
        "c",
        *FIXED.names[6:],
    ]


def test_hashing_without_a_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="needs a key"):
        PredictionLog(tmp_path, _settings(pii="hash"), pii=["email"])


# ---------------------------------------------------------------- sampling and the buffer


def test_sampling_logs_the_requests_the_injected_rng_picks(
    tmp_path: Path, loans: tuple[ServedModel, list[dict[str, Any]]]
) -> None:
    model, records = loans
    scored = _scored(model, records[2])
    log = PredictionLog(tmp_path / "loans", _settings(sample_rate=0.5), rng=random.Random(11))
    for _ in range(400):
        log.record(scored)
    log.close()
    draws = random.Random(11)
    expected = sum(draws.random() < 0.5 for _ in range(400))
    assert 150 < expected < 250  # about half
    assert log.stats()["written"] == expected == read_predictions(tmp_path, "loans").num_rows


def test_a_full_buffer_drops_and_counts_instead_of_waiting(
    tmp_path: Path, loans: tuple[ServedModel, list[dict[str, Any]]]
) -> None:
    model, records = loans
    log = PredictionLog(tmp_path / "loans", _settings(buffer_rows=5, flush_rows=1000))
    scored = _scored(model, records[2])
    for _ in range(8):
        log.record(scored)
    assert log.stats() == {"written": 0, "dropped": 3, "segments": 0}
    log.close()
    assert log.stats() == {"written": 5, "dropped": 3, "segments": 1}
    assert read_predictions(tmp_path, "loans").num_rows == 5
    log.record(scored)  # after close: dropped, never raised
    assert log.stats()["dropped"] == 4


def _wait_for(condition: Any, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_segment_is_written_when_flush_seconds_pass(
    tmp_path: Path, loans: tuple[ServedModel, list[dict[str, Any]]]
) -> None:
    model, records = loans
    log = PredictionLog(tmp_path / "loans", _settings(flush_seconds=0.05))
    log.record(_scored(model, records[2]))
    assert _wait_for(lambda: log.stats()["segments"] == 1)
    assert read_predictions(tmp_path, "loans").num_rows == 1  # readable before close
    log.close()


def test_a_segment_is_written_when_flush_rows_are_buffered(
    tmp_path: Path, loans: tuple[ServedModel, list[dict[str, Any]]]
) -> None:
    model, records = loans
    log = PredictionLog(tmp_path / "loans", _settings(flush_rows=3))
    scored = _scored(model, records[2])
    log.record(scored)
    log.record(scored)
    assert log.stats()["segments"] == 0  # the thread waits an hour unless woken
    log.record(scored)
    assert _wait_for(lambda: log.stats()["segments"] == 1)
    assert log.stats()["written"] == 3
    log.close()


def test_each_model_version_gets_its_own_columns(
    tmp_path: Path, loans: tuple[ServedModel, list[dict[str, Any]]], numeric: ServedModel
) -> None:
    model, records = loans
    reloaded = ServedModel("loans", 4, numeric.bundle)
    log = PredictionLog(tmp_path / "loans", _settings(), pii=["email"], key=b"k" * 32)
    log.record(_scored(model, records[2], "old"))
    log.record(_scored(reloaded, {"a": 1.0, "b": 2.0, "c": 3.0}, "new"))
    log.close()
    assert log.stats()["segments"] == 2
    old, new = _by_request(read_predictions(tmp_path, "loans"))[::-1]
    assert (old["version"], old["a"], old["purpose"]) == (3, None, records[2]["purpose"])
    assert (new["version"], new["a"], new["purpose"]) == (4, 1.0, None)


def test_append_refuses_ragged_or_missing_columns_and_keeps_the_buffer(tmp_path: Path) -> None:
    schema = pa.schema([("ts", TIMESTAMP), ("value", pa.float64())])
    writer = SegmentWriter(tmp_path / "w", schema, time_column="ts", flush_seconds=3600)
    now = time.time_ns() // 1_000_000
    with pytest.raises(InvalidInputError):
        writer.append({"ts": [now, now], "value": [1.0]})
    with pytest.raises(InvalidInputError):
        writer.append({"ts": [now]})
    assert writer.append({"ts": [now], "value": ["not a number"]})
    assert writer.append({"ts": [now], "value": [2]})
    writer.close()
    table = pq.read_table(next((tmp_path / "w").rglob("*.parquet")))
    assert table.column("value").to_pylist() == [None, 2.0]


def test_tables_handed_to_the_thread_are_all_written_in_order_by_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = pa.schema([("ts", TIMESTAMP), ("value", pa.float64())])
    writer = SegmentWriter(tmp_path / "w", schema, time_column="ts", flush_seconds=3600)
    written: list[float] = []
    write = writer._write
    monkeypatch.setattr(
        writer,
        "_write",
        lambda t: (time.sleep(0.01), write(t), written.append(t.column("value")[0].as_py())),
    )
    now = time.time_ns() // 1_000_000
    for i in range(6):  # more than may wait: write_later blocks until the thread catches up
        writer.write_later(
            pa.table({"ts": pa.array([now, now]).cast(TIMESTAMP), "value": [float(i), float(i)]})
        )
    with pytest.raises(InvalidInputError, match="schema"):
        writer.write_later(pa.table({"value": [1.0]}))
    writer.close()
    assert written == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert writer.stats() == {"written": 12, "dropped": 0, "segments": 6}
    writer.write_later(pa.table({"ts": pa.array([now]).cast(TIMESTAMP), "value": [9.0]}))
    assert writer.stats()["dropped"] == 1  # closed: counted, not written


def test_a_failed_write_is_dropped_and_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    schema = pa.schema([("ts", TIMESTAMP)])
    writer = SegmentWriter(blocked, schema, time_column="ts", flush_seconds=3600)
    writer.append({"ts": [0, 1]})
    writer.close()
    assert writer.stats() == {"written": 0, "dropped": 2, "segments": 0}
    assert "could not write 2 logged rows" in caplog.text


# ---------------------------------------------------------------- reading and retention

DAY = 86_400_000


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def test_rows_are_filtered_on_ts_and_partitioned_by_day(tmp_path: Path) -> None:
    start = datetime(2024, 5, 1, 22, 0, tzinfo=UTC)
    moments = [start + timedelta(hours=h) for h in range(6)]  # 22:00 on May 1 to 03:00 on May 2
    schema = pa.schema([("ts", TIMESTAMP), ("hour", pa.int32())])
    writer = SegmentWriter(tmp_path / "loans", schema, time_column="ts", flush_seconds=3600)
    writer.append({"ts": [_ms(m) for m in moments], "hour": list(range(6))})
    writer.close()
    assert sorted(p.name for p in (tmp_path / "loans").iterdir()) == [
        "date=2024-05-01",
        "date=2024-05-02",
    ]
    got = read_predictions(tmp_path, "loans", since=moments[1], until=moments[4])
    assert sorted(got.column("hour").to_pylist()) == [1, 2, 3]
    naive = read_predictions(tmp_path, "loans", since=moments[3].replace(tzinfo=None))
    assert sorted(naive.column("hour").to_pylist()) == [3, 4, 5]
    assert read_predictions(tmp_path, "loans", columns=["hour"]).column_names == ["hour"]
    with pytest.raises(DataError, match="no column"):
        read_predictions(tmp_path, "loans", columns=["score"])


def test_reading_an_empty_or_missing_log_gives_an_empty_table(tmp_path: Path) -> None:
    missing = read_predictions(tmp_path / "nowhere", "loans")
    assert missing.num_rows == 0 and missing.schema == FIXED
    (tmp_path / "loans").mkdir()
    some = read_predictions(tmp_path, "loans", columns=["ts", "score", "age"])
    assert some.num_rows == 0 and some.column_names == ["ts", "score", "age"]
    assert some.schema.field("ts").type == TIMESTAMP
    with pytest.raises(InvalidInputError):
        read_predictions(tmp_path, "../elsewhere")


def test_retention_deletes_whole_old_days_only(tmp_path: Path) -> None:
    now = datetime(2024, 3, 31, 12, 0, tzinfo=UTC)  # 30 days back: 2024-03-01 12:00
    days = ["2024-02-20", "2024-02-29", "2024-03-01", "2024-03-31"]
    noon = [_ms(datetime.fromisoformat(d).replace(hour=12, tzinfo=UTC)) for d in days]
    schema = pa.schema([("ts", TIMESTAMP)])
    writer = SegmentWriter(tmp_path / "loans", schema, time_column="ts", flush_seconds=3600)
    writer.append({"ts": noon})
    writer.flush()
    writer.append({"ts": noon})
    writer.close()
    assert writer.stats()["segments"] == 8
    removed = apply_retention(tmp_path, "loans", 30 * 86_400, now=now)
    assert removed == 4
    kept = sorted(p.name for p in (tmp_path / "loans").iterdir())
    assert kept == ["date=2024-03-01", "date=2024-03-31"]
    assert read_predictions(tmp_path, "loans").num_rows == 4
    assert apply_retention(tmp_path, "loans", 30 * 86_400, now=now) == 0
    assert apply_retention(tmp_path / "nowhere", "loans", 1, now=now) == 0


# ---------------------------------------------------------------- from the spec


def test_for_project_follows_the_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    off = _open(tmp_path / "off", "monitoring:\n  log:\n    enabled: false\n")
    try:
        assert PredictionLog.for_project(off, "loans") is None
    finally:
        off.close()
    project = _open(tmp_path / "on", "monitoring:\n  log:\n    retention: 2d\n")
    try:
        assert predictions_root(project) == tmp_path / "on" / ".modelyard" / "predictions"
        monkeypatch.setenv(ENV_PREDICTIONS, str(tmp_path / "elsewhere"))
        assert predictions_root(project) == tmp_path / "elsewhere"
        old = tmp_path / "elsewhere" / "loans" / "date=2000-01-01"
        old.mkdir(parents=True)
        (old / "w-000001.parquet").write_bytes(b"")
        log = PredictionLog.for_project(project, "loans")
        assert log is not None and log.folder == tmp_path / "elsewhere" / "loans"
        assert not old.exists()  # retention ran at start
        log.close()
    finally:
        project.close()


# ---------------------------------------------------------------- the CLI


def _cli() -> typer.Typer:
    from modelyard.cli.monitor_log import log_command

    cli = typer.Typer()

    @cli.callback()
    def options(ctx: typer.Context, spec: Annotated[Path, typer.Option()]) -> None:
        ctx.obj = {"spec": spec}

    cli.command("log")(log_command)
    return cli


def test_cli_prints_the_latest_rows_and_the_location(
    project: Project, numeric: ServedModel
) -> None:
    log = PredictionLog.for_project(project, "m")
    assert log is not None
    for request_id in ("req-1", "req-2", "req-3"):
        log.record(_scored(numeric, {"a": 0.25, "b": 1.5, "c": -2.0}, request_id))
        time.sleep(0.003)  # distinct milliseconds, so "latest" is well defined
    log.close()
    runner = CliRunner()
    spec = ["--spec", str(project.spec_path)]
    result = runner.invoke(_cli(), [*spec, "log", "m", "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert "req-3" in result.output and "req-2" in result.output
    assert "req-1" not in result.output
    assert "latest 2 of 3 rows" in result.output
    assert f"Log: {predictions_root(project) / 'm'}" in result.output.replace("\n", "")
    empty = runner.invoke(_cli(), [*spec, "log", "other", "--since", "5m"])
    assert empty.exit_code == 0 and "No predictions of 'other'" in empty.output
    bad = runner.invoke(_cli(), [*spec, "log", "m", "--since", "yesterday"])
    assert isinstance(bad.exception, InvalidInputError)
