"""Delayed labels: the POST /v1/feedback body, the server's feedback log, file imports, the CLI."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from modelyard.cli.feedback import feedback_app
from modelyard.errors import DataError, InvalidInputError, ServingError
from modelyard.monitor.feedback import (
    FEEDBACK,
    FeedbackLog,
    FeedbackRow,
    add_feedback_file,
    parse_feedback,
    read_feedback,
)
from modelyard.monitor.log_files import HEAD, OUTPUTS, feedback_root, model_folder, predictions_root
from modelyard.monitor.performance import realised_metrics
from modelyard.monitor.segment_writer import SegmentWriter
from modelyard.project import Project

SECRET = "jane.doe@example.com"
T0 = int(datetime(2024, 5, 1, tzinfo=UTC).timestamp() * 1000)


def body(*items: object) -> bytes:
    return json.dumps({"feedback": list(items)}).encode()


def write_predictions(project: Project, requests: int = 6) -> None:
    """``requests`` requests r0, r1, … of two rows each, scored 0.1, 0.2, …"""
    n = 2 * requests
    frame = pd.DataFrame(
        {
            "request_id": [f"r{i // 2}" for i in range(n)],
            "row": [i % 2 for i in range(n)],
            "ts": [T0 + 1000 * i for i in range(n)],
            "model": "loans",
            "version": 1,
            "latency_ms": 2.0,
            "score": [(i + 1) / (n + 1) for i in range(n)],
            "label": ["1" if (i + 1) / (n + 1) >= 0.5 else "0" for i in range(n)],
            "confidence": 0.6,
        }
    )
    schema = pa.schema([*HEAD, *OUTPUTS])
    writer = SegmentWriter(
        model_folder(predictions_root(project), "loans"), schema, time_column="ts"
    )
    writer.append({name: frame[name].tolist() for name in schema.names})
    writer.close()


# ---------------------------------------------------------------- the HTTP body


def test_a_body_becomes_rows_with_labels_stored_as_json_text() -> None:
    rows = parse_feedback(
        body(
            {"request_id": "a", "label": 1},
            {"request_id": "a", "row": 3, "label": True},
            {"request_id": "b", "label": "approved", "note": "ignored"},
            {"request_id": "c", "label": 2.5},
            {"request_id": "d", "label": 1.0},
        )
    )
    assert rows == [
        FeedbackRow("a", 0, "1"),
        FeedbackRow("a", 3, "true"),
        FeedbackRow("b", 0, "approved"),
        FeedbackRow("c", 0, "2.5"),
        FeedbackRow("d", 0, "1.0"),
    ]


@pytest.mark.parametrize(
    ("sent", "where"),
    [
        (b"{not json", None),
        (b"[]", ("feedback", None)),
        (b'{"feedback": []}', ("feedback", None)),
        (b'{"feedback": {"request_id": "a"}}', ("feedback", None)),
        (body(SECRET), ("item 0", None)),
        (body({"label": 1}), ("request_id", "required")),
        (body({"request_id": {"email": SECRET}, "label": 1}), ("request_id", "non-empty string")),
        (body({"request_id": "", "label": 1}), ("request_id", "non-empty string")),
        (body({"request_id": "x" * 300, "label": 1}), ("request_id", "longer than 256")),
        (body({"request_id": "a", "row": -1, "label": 1}), ("row", "whole number")),
        (body({"request_id": "a", "row": True, "label": 1}), ("row", "whole number")),
        (body({"request_id": "a", "row": 1.5, "label": 1}), ("row", "whole number")),
        (body({"request_id": "a", "row": SECRET, "label": 1}), ("row", "whole number")),
        (body({"request_id": "a"}), ("label", "required")),
        (body({"request_id": "a", "label": None}), ("label", "required")),
        (body({"request_id": "a", "label": [SECRET]}), ("label", "string, a number or a boolean")),
        (body({"request_id": "a", "label": ""}), ("label", "1 to 1024 characters")),
    ],
)
def test_bad_bodies_are_422s_that_never_echo_a_value(
    sent: bytes, where: tuple[str, str | None] | None
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_feedback(sent)
    error = caught.value
    assert error.http_status == 422
    rendered = json.dumps(error.to_dict())
    assert SECRET not in rendered and "xxxxxxxx" not in rendered
    if where is not None:
        field, words = where
        assert field in error.message
        if words is not None:
            assert words in error.message
            assert error.details[0]["field"] == field and error.details[0]["item"] == 0


def test_every_bad_item_is_reported_at_once_and_none_is_kept() -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_feedback(
            body(
                {"request_id": "ok", "label": 1},
                {"request_id": 5, "label": None},
                "nonsense",
                {"request_id": "ok2", "label": 0, "row": -2},
            )
        )
    details = caught.value.details
    assert [(d["item"], d["field"]) for d in details] == [
        (1, "request_id"),
        (1, "label"),
        (2, None),
        (3, "row"),
    ]
    assert caught.value.message.startswith("4 problem(s) in the feedback; first at item 1")


# ---------------------------------------------------------------- the server's log


def test_the_feedback_log_writes_what_it_is_given_with_its_arrival(project: Project) -> None:
    log = FeedbackLog.for_project(project, "loans")
    before = datetime.now(UTC).replace(microsecond=0)
    assert log.add(parse_feedback(body({"request_id": "r1", "row": 1, "label": 1}))) == 1
    assert log.add([FeedbackRow("r2", 0, "0"), FeedbackRow("r1", 1, "0")]) == 2
    log.close()
    after = datetime.now(UTC)
    stored = read_feedback(project, "loans")
    assert stored.schema == FEEDBACK
    frame = stored.to_pandas().sort_values("received_at", kind="stable")
    assert sorted(zip(frame["request_id"], frame["row"], frame["label"], strict=True)) == [
        ("r1", 1, "0"),
        ("r1", 1, "1"),
        ("r2", 0, "0"),
    ]
    assert all(before <= t.to_pydatetime() <= after for t in frame["received_at"])
    files = list((feedback_root(project) / "loans").glob("date=*/*.parquet"))
    assert files and all(f.name.endswith(".parquet") and not f.name.startswith(".") for f in files)


def test_a_full_buffer_refuses_with_a_503_to_retry(tmp_path: Path) -> None:
    writer = SegmentWriter(
        tmp_path / "loans", FEEDBACK, time_column="received_at", buffer_rows=2, flush_rows=10
    )
    log = FeedbackLog(writer)
    log.add([FeedbackRow("a", 0, "1")])
    with pytest.raises(ServingError, match="send them again") as caught:
        log.add([FeedbackRow("b", 0, "1"), FeedbackRow("c", 0, "1")])
    assert caught.value.http_status == 503
    log.close()
    assert writer.stats()["written"] == 1


def test_posted_labels_reach_the_realised_metrics(project: Project) -> None:
    write_predictions(project)
    log = FeedbackLog.for_project(project, "loans")
    sent = [{"request_id": f"r{i // 2}", "row": i % 2, "label": int(i >= 5)} for i in range(9)]
    log.add(parse_feedback(body(*sent)))
    log.close()
    found = realised_metrics(project, "loans", metrics=["accuracy"])
    assert (found.overall.predictions, found.overall.labelled) == (12, 9)
    # scores (i + 1) / 13 ≥ 0.5 from i = 6: only row 5 (label 1, score 6/13) is wrong
    assert found.overall.metrics["accuracy"] == pytest.approx(8 / 9)
    assert found.time_to_label.count == 9 and found.time_to_label.p50 is not None
    assert found.time_to_label.p50 > time.time() - T0 / 1000 - 60  # labelled today, sent 2024


# ---------------------------------------------------------------- files and the CLI


def test_a_csv_import_counts_labels_for_unknown_requests_but_keeps_them(
    project: Project, tmp_path: Path
) -> None:
    write_predictions(project)
    path = tmp_path / "labels.csv"
    path.write_text("request_id,row,label,comment\nr0,0,1,x\nr0,1,0,\nr5,,1,\nzz,0,0,late\n")
    added = add_feedback_file(project, "loans", path)
    assert (added.rows, added.unmatched, added.matched) == (4, 1, 3)
    stored = read_feedback(project, "loans").to_pandas()
    assert list(zip(stored["request_id"], stored["row"], stored["label"], strict=True)) == [
        ("r0", 0, "1"),
        ("r0", 1, "0"),
        ("r5", 0, "1"),  # an empty row cell is row 0
        ("zz", 0, "0"),
    ]
    assert realised_metrics(project, "loans").overall.labelled == 3


def test_a_parquet_import_with_other_column_names_and_no_row_column(
    project: Project, tmp_path: Path
) -> None:
    write_predictions(project)
    path = tmp_path / "labels.parquet"
    pq.write_table(pa.table({"id": ["r1", "r2", "r3"], "defaulted": [True, False, True]}), path)
    added = add_feedback_file(project, "loans", path, id_column="id", label_column="defaulted")
    assert (added.rows, added.unmatched) == (3, 0)
    assert read_feedback(project, "loans").column("label").to_pylist() == ["true", "false", "true"]


@pytest.mark.parametrize(
    ("text", "error", "words"),
    [
        ("id,label\nr0,1\n", InvalidInputError, "no column(s) ['request_id']"),
        ("request_id,label\nr0,1\nr1,\n", DataError, "Data row 2 of"),
        ("request_id,label\n,1\n", DataError, "has no request id"),
        ("request_id,row,label\nr0,first,1\n", DataError, "whole numbers"),
        ("request_id,row,label\nr0,-1,1\n", DataError, "whole numbers"),
    ],
)
def test_bad_files_are_refused_and_nothing_is_stored(
    project: Project, tmp_path: Path, text: str, error: type[Exception], words: str
) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(error) as caught:
        add_feedback_file(project, "loans", path)
    assert words in str(caught.value)
    assert read_feedback(project, "loans").num_rows == 0
    assert not list((feedback_root(project) / "loans").rglob("*.parquet*"))


def test_a_missing_file_says_so(project: Project, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="No file at"):
        add_feedback_file(project, "loans", tmp_path / "nowhere.csv")


def test_feedback_add_on_the_command_line(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_predictions(project)
    path = tmp_path / "labels.csv"
    path.write_text("ticket,outcome\nr0,1\nr1,0\nnope,1\n")
    monkeypatch.chdir(project.root)
    cli = typer.Typer()
    cli.add_typer(feedback_app, name="feedback")  # as the modelyard command registers it
    arguments = ["--model", "loans", "--id-column", "ticket", "--label-column", "outcome"]
    result = CliRunner().invoke(cli, ["feedback", "add", str(path), *arguments])
    assert result.exit_code == 0, result.output
    assert "Stored 3 label(s) for 'loans': 2 match a logged prediction, 1 do not" in result.output
    assert read_feedback(project, "loans").num_rows == 3
