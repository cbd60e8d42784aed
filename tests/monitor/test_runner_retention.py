"""Each monitor run deletes the prediction and feedback log files past the retention."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_runner import RULE, _cli, open_project, write_log
from typer.testing import CliRunner

from modelyard.monitor.feedback import FEEDBACK
from modelyard.monitor.log_files import feedback_root, predictions_root, read_predictions
from modelyard.monitor.runner import RunResult, run_forever, run_once
from modelyard.project import Project

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WEEK = {"log": {"retention": "7d"}}


@pytest.fixture
def weekly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """A project that keeps its logs for seven days, with one latency rule."""
    monkeypatch.delenv("MODELYARD_DB_URL", raising=False)
    monkeypatch.delenv("MODELYARD_PREDICTIONS", raising=False)
    project = open_project(tmp_path / "project", {**WEEK, "alerts": [RULE]})
    yield project
    project.close()


def feedback_segment(project: Project, model: str, day: date, name: str) -> Path:
    """One feedback segment in the ``date=…`` partition of ``day``."""
    received = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
    table = pa.Table.from_pylist(
        [{"request_id": "r1", "row": 0, "label": "1", "received_at": received}], schema=FEEDBACK
    )
    path = feedback_root(project) / model / f"date={day.isoformat()}" / f"{name}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def partitions(root: Path, model: str = "loans") -> list[str]:
    return sorted(p.name for p in (root / model).glob("date=*"))


def segments(root: Path, model: str = "loans") -> int:
    return len(list((root / model).glob("date=*/*.parquet")))


def test_a_run_deletes_the_days_past_the_retention_in_both_logs(weekly: Project) -> None:
    # 7 days before 2026-03-01 12:00 is 2026-02-22 12:00: a day goes once it has wholly passed it
    old = [T0 - timedelta(days=9, hours=h) for h in range(3)]  # 2026-02-20
    write_log(weekly, old[:2], [5.0, 5.0])
    write_log(weekly, old[2:], [5.0])  # a second segment that day
    write_log(weekly, [datetime(2026, 2, 22, 1, tzinfo=UTC)], [5.0])  # half inside: kept
    write_log(weekly, [T0 - timedelta(minutes=m) for m in range(1, 4)], [5.0] * 3)
    write_log(weekly, old, [5.0] * 3, model="other")  # another model's log is not this run's
    for name in ("a", "b"):
        feedback_segment(weekly, "loans", date(2026, 2, 1), name)
    kept_feedback = feedback_segment(weekly, "loans", date(2026, 2, 28), "c")
    predictions, feedback = predictions_root(weekly), feedback_root(weekly)
    assert segments(predictions) == 4 and segments(feedback) == 3

    result = run_once(weekly, "loans", now=T0)

    assert result.removed_files == 2 + 2
    assert partitions(predictions) == ["date=2026-02-22", "date=2026-03-01"]
    assert partitions(feedback) == ["date=2026-02-28"] and kept_feedback.is_file()
    assert partitions(predictions, "other") == ["date=2026-02-20"]
    assert read_predictions(weekly, "loans").num_rows == 4
    assert result.to_dict()["removed_files"] == 4
    assert run_once(weekly, "loans", now=T0 + timedelta(minutes=1)).removed_files == 0


def test_a_spec_without_rules_still_prunes(tmp_path: Path) -> None:
    project = open_project(tmp_path / "project", WEEK)
    try:
        feedback_segment(project, "loans", date(2026, 1, 5), "a")
        assert run_once(project, "loans", now=T0) == RunResult("loans", None, T0, (), 1)
    finally:
        project.close()


def test_every_loop_of_the_monitor_prunes(weekly: Project) -> None:
    today = datetime.now(UTC)
    write_log(weekly, [today - timedelta(days=30)], [5.0])
    write_log(weekly, [today - timedelta(minutes=1)], [5.0])
    stop = threading.Event()
    removed: list[int] = []

    def on_result(result: RunResult) -> None:
        removed.append(result.removed_files)
        if len(removed) == 1:  # a segment the next run must remove
            feedback_segment(weekly, "loans", (today - timedelta(days=20)).date(), "late")
        else:
            stop.set()

    assert run_forever(weekly, "loans", 0.01, on_result=on_result, stop=stop) == 2
    assert removed == [1, 1]
    assert partitions(predictions_root(weekly)) == [f"date={today.date().isoformat()}"]
    assert partitions(feedback_root(weekly)) == []


def test_the_command_says_what_it_removed_only_when_it_removed_something(
    weekly: Project, tmp_path: Path
) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=40)
    write_log(weekly, [long_ago, long_ago + timedelta(hours=1)], [5.0, 5.0])
    feedback_segment(weekly, "loans", long_ago.date(), "a")
    out = tmp_path / "out" / "run.json"
    command = ["--spec", str(weekly.spec_path), "run", "loans", "--once", "--json", str(out)]
    runner = CliRunner()

    first = runner.invoke(_cli(), command)
    assert first.exit_code == 0, first.output
    assert "loans removed 2 log files older than the 7d retention" in " ".join(first.output.split())
    written = json.loads(out.read_text())
    assert written["removed_files"] == 2 and written["model"] == "loans"
    (evaluation,) = written["evaluations"]
    assert (evaluation["rule"], evaluation["event"], evaluation["samples"]) == (
        "slow-answers",
        "not_judged",
        0,
    )

    second = runner.invoke(_cli(), command)
    assert second.exit_code == 0, second.output
    assert "removed" not in second.output and "not judged" in second.output
    assert json.loads(out.read_text())["removed_files"] == 0
