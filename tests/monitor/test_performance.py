"""Realised performance: predictions joined with late labels, by window and segment.

Every number is checked against scikit-learn (or NumPy) on the same rows,
joined here independently with pandas.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import typer
import yaml
from sklearn import metrics as skm
from typer.testing import CliRunner

from modelyard.cli.monitor_performance import health_command, performance_command
from modelyard.data.demo import DEMO_SPEC
from modelyard.errors import DataError, InvalidInputError
from modelyard.evaluate.metrics import expected_calibration_error
from modelyard.monitor.feedback import FEEDBACK
from modelyard.monitor.log_files import HEAD, OUTPUTS, feedback_root, model_folder, predictions_root
from modelyard.monitor.performance import realised_metrics
from modelyard.monitor.segment_writer import SegmentWriter
from modelyard.project import Project
from modelyard.registry.versions import register_model

T0 = int(datetime(2024, 5, 1, tzinfo=UTC).timestamp() * 1000)
HOUR, DAY = 3_600_000, 86_400_000
REGIONS = np.array(["north", "south", "east"])


# ---------------------------------------------------------------- writing a log


def write_segments(folder: Path, schema: pa.Schema, time_column: str, frame: pd.DataFrame) -> None:
    """``frame`` as one segment per day, through the log's own writer."""
    writer = SegmentWriter(
        folder, schema, time_column=time_column, flush_rows=10**9, flush_seconds=3600
    )
    writer.append({name: frame[name].tolist() for name in schema.names})
    writer.close()
    assert writer.dropped == 0


def write_predictions(project: Project, model: str, frame: pd.DataFrame) -> None:
    inputs = [pa.field("region", pa.string())] if "region" in frame else []
    schema = pa.schema([*HEAD, *inputs, *OUTPUTS])
    full = frame.assign(model=model, latency_ms=1.0)
    write_segments(model_folder(predictions_root(project), model), schema, "ts", full)


def write_labels(project: Project, model: str, frame: pd.DataFrame) -> None:
    folder = model_folder(feedback_root(project), model)
    write_segments(folder, FEEDBACK, "received_at", frame)


def binary_traffic(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three days of binary predictions (some requests of two rows) and their late labels.

    A quarter of the rows are never labelled; five are labelled twice, the
    wrong label first; labels come as 0/1, true/false and 1.0; a few are for
    requests the log never saw.
    """
    rng = np.random.default_rng(seed)
    requests = 900
    ts = np.sort(T0 + rng.integers(0, 3 * DAY, requests))
    ts[10] = T0 + DAY  # exactly on a boundary: the second day's
    predictions = pd.DataFrame(
        {"request_id": [f"r{i}" for i in range(requests)], "row": 0, "ts": ts}
    )
    second = predictions[rng.random(requests) < 0.3].assign(row=1)
    predictions = pd.concat([predictions, second], ignore_index=True)
    n = len(predictions)
    score = rng.beta(2, 3, n)
    predictions = predictions.assign(
        version=1,
        region=REGIONS[rng.choice(3, n, p=[0.5, 0.3, 0.2])],
        score=score,
        label=np.where(score >= 0.5, "1", "0"),
        confidence=np.maximum(score, 1 - score),
        truth=(rng.random(n) < score).astype(int),
    )
    labelled = predictions[rng.random(n) < 0.75]
    delay = rng.exponential(6 * HOUR, len(labelled)).astype(np.int64)
    spellings = {1: ["1", "true", "1.0", "TRUE"], 0: ["0", "false", "0.0", "False"]}
    labels = pd.DataFrame(
        {
            "request_id": labelled["request_id"].to_numpy(),
            "row": labelled["row"].to_numpy(),
            "label": [spellings[t][i % 4] for i, t in enumerate(labelled["truth"])],
            "received_at": labelled["ts"].to_numpy() + delay,
        }
    )
    fixed = labels.iloc[:5]
    wrong = fixed.assign(
        label=np.where(fixed["label"].isin(["1", "true", "1.0", "TRUE"]), "0", "1"),
        received_at=fixed["received_at"] - HOUR,
    )
    strangers = pd.DataFrame(
        {"request_id": [f"x{i}" for i in range(8)], "row": 0, "label": "1", "received_at": T0}
    )
    # the wrong labels are written last but arrived first: arrival time decides, not file order
    return predictions, pd.concat([labels, strangers, wrong], ignore_index=True)


def expected_join(predictions: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    latest = labels.sort_values("received_at", kind="stable").drop_duplicates(
        ["request_id", "row"], keep="last"
    )
    joined = predictions.merge(latest, on=["request_id", "row"], how="left", suffixes=("", "_y"))
    joined["y"] = joined["label_y"].str.lower().isin(["1", "true", "1.0"]).astype(int)
    joined["window"] = (joined["ts"] - T0) // DAY
    return joined


@pytest.fixture
def binary_log(project: Project) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    predictions, labels = binary_traffic()
    write_predictions(project, "loans", predictions.drop(columns="truth"))
    write_labels(project, "loans", labels)
    yield predictions, labels


Oracle = Callable[[pd.Series, pd.Series], float]
ORACLE: dict[str, Oracle] = {
    "roc_auc": skm.roc_auc_score,
    "pr_auc": skm.average_precision_score,
    "brier": skm.brier_score_loss,
    "log_loss": skm.log_loss,
    "recall": lambda y, p: skm.recall_score(y, p >= 0.5),
    "precision": lambda y, p: skm.precision_score(y, p >= 0.5),
    "accuracy": lambda y, p: skm.accuracy_score(y, p >= 0.5),
    "f1": lambda y, p: skm.f1_score(y, p >= 0.5),
}


# ---------------------------------------------------------------- binary


def test_daily_metrics_equal_scikit_learn_on_the_same_joined_rows(
    project: Project, binary_log: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    joined = expected_join(*binary_log)
    found = realised_metrics(project, "loans", window="1d", metrics=list(ORACLE))
    assert [w.start for w in found.windows] == [datetime(2024, 5, d, tzinfo=UTC) for d in (1, 2, 3)]
    assert all(w.end - w.start == timedelta(days=1) for w in found.windows)
    for w, (_, day) in zip(found.windows, joined.groupby("window"), strict=True):
        have = day[day["label_y"].notna()]
        assert (w.predictions, w.labelled) == (len(day), len(have))
        assert w.coverage == pytest.approx(len(have) / len(day))
        for name, oracle in ORACLE.items():
            assert w.metrics[name] == pytest.approx(oracle(have["y"], have["score"]), rel=1e-12)
    labelled = joined[joined["label_y"].notna()]
    assert found.overall.metrics["roc_auc"] == pytest.approx(
        skm.roc_auc_score(labelled["y"], labelled["score"]), rel=1e-12
    )
    assert found.overall.labelled == len(labelled) < found.overall.predictions == len(joined)


def test_the_latest_label_wins_whatever_order_the_files_hold(
    project: Project, binary_log: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    predictions, labels = binary_log
    stale = labels.sort_values("received_at", kind="stable").drop_duplicates(
        ["request_id", "row"], keep="first"
    )
    with_stale = expected_join(predictions, stale)
    right = expected_join(predictions, labels)
    found = realised_metrics(project, "loans", metrics=["accuracy"]).overall.metrics["accuracy"]
    have = right[right["label_y"].notna()]
    assert found == pytest.approx(skm.accuracy_score(have["y"], have["score"] >= 0.5))
    wrong = with_stale[with_stale["label_y"].notna()]
    assert found != pytest.approx(skm.accuracy_score(wrong["y"], wrong["score"] >= 0.5))


def test_the_spec_metrics_are_the_default_and_ece_is_the_evaluations(
    project: Project, binary_log: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    found = realised_metrics(project, "loans")
    assert found.metrics == ("roc_auc", "recall", "ece")  # the demo spec's goals
    assert found.facts.task == "binary" and found.facts.version is None  # not registered
    joined = expected_join(*binary_log)
    have = joined[joined["label_y"].notna()]
    expected = expected_calibration_error(have["y"].to_numpy(), have["score"].to_numpy())
    assert found.overall.metrics["ece"] == pytest.approx(expected, rel=1e-12)


def test_time_to_label_quantiles_equal_numpys(
    project: Project, binary_log: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    joined = expected_join(*binary_log)
    found = realised_metrics(project, "loans")
    delays = (joined["received_at"] - joined["ts"]).dropna().to_numpy() / 1000
    delay = found.time_to_label
    assert delay.count == len(delays)
    assert delay.p50 == pytest.approx(np.quantile(delays, 0.5))
    assert delay.p90 == pytest.approx(np.quantile(delays, 0.9))
    assert delay.max == pytest.approx(delays.max())
    first = joined[(joined["window"] == 0) & joined["label_y"].notna()]
    first_delays = (first["received_at"] - first["ts"]).to_numpy() / 1000
    assert found.windows[0].time_to_label.p90 == pytest.approx(np.quantile(first_delays, 0.9))


def test_since_and_until_bound_the_predictions_time(
    project: Project, binary_log: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    joined = expected_join(*binary_log)
    found = realised_metrics(
        project,
        "loans",
        since=datetime(2024, 5, 2),  # naive: UTC
        until="2024-05-03T00:00:00+00:00",
        window="12h",
    )
    assert [w.start.hour for w in found.windows] == [0, 12]
    assert sum(w.predictions for w in found.windows) == int((joined["window"] == 1).sum())
    assert found.overall.predictions == int((joined["window"] == 1).sum())


def test_segments_break_every_window_down_by_a_logged_input(
    project: Project, binary_log: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    joined = expected_join(*binary_log)
    found = realised_metrics(project, "loans", segment="region", metrics=["roc_auc", "recall"])
    assert [s.value for s in found.segments] == ["north", "south", "east"]  # by size
    for s in found.segments:
        rows = joined[joined["region"] == s.value]
        have = rows[rows["label_y"].notna()]
        assert (s.overall.predictions, s.overall.labelled) == (len(rows), len(have))
        assert s.overall.metrics["roc_auc"] == pytest.approx(
            skm.roc_auc_score(have["y"], have["score"]), rel=1e-12
        )
        assert [w.predictions for w in s.windows] == rows.groupby("window").size().tolist()
    document = json.loads(json.dumps(found.to_dict()))
    assert document["segments"][0]["value"] == "north"
    assert document["overall"]["predictions"] == len(joined)


def test_windows_without_labels_or_with_one_class_report_no_metrics(project: Project) -> None:
    predictions = pd.DataFrame(
        {
            "request_id": [f"q{i}" for i in range(8)],
            "row": 0,
            "ts": [T0 + HOUR * i for i in range(5)] + [T0 + DAY + HOUR * i for i in range(3)],
            "version": 1,
            "score": [0.1, 0.2, 0.3, 0.2, 0.6, 0.4, 0.7, 0.2],
            "label": ["0", "0", "0", "0", "1", "0", "1", "0"],
            "confidence": 0.7,
        }
    )
    write_predictions(project, "loans", predictions)
    labels = pd.DataFrame(
        {"request_id": ["q0", "q1", "q2"], "row": 0, "label": "0", "received_at": T0 + DAY}
    )
    write_labels(project, "loans", labels)
    one_class, unlabelled = realised_metrics(project, "loans").windows
    assert (one_class.predictions, one_class.labelled) == (5, 3)
    assert set(one_class.metrics.values()) == {None}
    assert one_class.note is not None and "one class" in one_class.note
    assert (unlabelled.labelled, unlabelled.coverage, unlabelled.time_to_label.count) == (0, 0, 0)
    assert set(unlabelled.metrics.values()) == {None}


def test_the_registered_versions_threshold_decides_the_label_metrics(
    project: Project, binary_log: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    manifest = {"format": "modelyard.model/1", "task": "binary", "threshold": 0.3}
    blob = project.artifacts.put_bytes(json.dumps(manifest).encode())
    register_model(
        project, "loans", digest=blob.digest, flavor="sklearn", run_id=None,
        signature={}, metrics={}, gates=[],
    )  # fmt: skip
    found = realised_metrics(project, "loans", metrics=["recall", "roc_auc"])
    assert (found.facts.version, found.facts.threshold) == (1, 0.3)
    joined = expected_join(*binary_log)
    have = joined[joined["label_y"].notna()]
    assert found.overall.metrics["recall"] == pytest.approx(
        skm.recall_score(have["y"], have["score"] >= 0.3)
    )


# ---------------------------------------------------------------- other tasks


def open_spec(folder: Path, **changes: object) -> Project:
    document = yaml.safe_load(DEMO_SPEC)
    document.pop("positive_class")
    document.update(changes)
    folder.mkdir(parents=True)
    (folder / "modelyard.yaml").write_text(yaml.safe_dump(document))
    return Project.open(folder / "modelyard.yaml")


def test_multiclass_metrics_come_from_the_logged_labels(tmp_path: Path) -> None:
    metrics = [{"name": "accuracy"}, {"name": "f1_macro"}, {"name": "ece"}, {"name": "roc_auc"}]
    project = open_spec(tmp_path / "p", task="multiclass", metrics=metrics)
    rng = np.random.default_rng(3)
    n = 400
    predicted = rng.choice(["1", "2", "3"], n)
    truth = np.where(rng.random(n) < 0.6, predicted, rng.choice(["1", "2", "3"], n))
    top = rng.uniform(0.34, 1.0, n)
    write_predictions(
        project,
        "kinds",
        pd.DataFrame(
            {
                "request_id": [f"m{i}" for i in range(n)],
                "row": 0,
                "ts": T0 + rng.integers(0, DAY, n),
                "version": 1,
                "score": top,
                "label": predicted,
                "confidence": top,
            }
        ),
    )
    sent = np.where(np.arange(n) % 2 == 0, truth, np.char.add(truth, ".0"))  # 2 and 2.0
    labels = pd.DataFrame(
        {
            "request_id": [f"m{i}" for i in range(n)],
            "row": 0,
            "label": sent,
            "received_at": T0 + DAY,
        }
    )
    write_labels(project, "kinds", labels)
    try:
        found = realised_metrics(project, "kinds")
    finally:
        project.close()
    assert found.metrics == ("accuracy", "f1_macro", "ece")
    assert found.unavailable == ("roc_auc",)
    got = found.overall.metrics
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(truth, predicted))
    assert got["f1_macro"] == pytest.approx(skm.f1_score(truth, predicted, average="macro"))
    assert got["ece"] == pytest.approx(
        expected_calibration_error((truth == predicted).astype(int), top)
    )


def test_regression_metrics_and_unreadable_labels(tmp_path: Path) -> None:
    project = open_spec(tmp_path / "p", task="regression", metrics=None)
    rng = np.random.default_rng(5)
    n = 300
    prediction = rng.normal(10, 3, n)
    truth = prediction + rng.normal(0, 1, n)
    write_predictions(
        project,
        "amount",
        pd.DataFrame(
            {
                "request_id": [f"g{i}" for i in range(n)],
                "row": 0,
                "ts": T0 + rng.integers(0, DAY, n),
                "version": 1,
                "score": prediction,
                "label": None,
                "confidence": None,
            }
        ),
    )
    text = [repr(float(v)) for v in truth]
    text[0] = "n/a"
    labels = pd.DataFrame(
        {
            "request_id": [f"g{i}" for i in range(n)],
            "row": 0,
            "label": text,
            "received_at": T0 + DAY,
        }
    )
    write_labels(project, "amount", labels)
    try:
        found = realised_metrics(project, "amount")
    finally:
        project.close()
    assert found.metrics == ("rmse", "mae", "r2")  # the task's default goals
    assert found.invalid_labels == 1
    got = found.overall.metrics
    assert got["rmse"] == pytest.approx(skm.root_mean_squared_error(truth[1:], prediction[1:]))
    assert got["r2"] == pytest.approx(skm.r2_score(truth[1:], prediction[1:]))
    assert found.overall.labelled == n  # the unreadable one arrived, but is not measured


# ---------------------------------------------------------------- mistakes and edges


def test_an_empty_log_gives_no_windows(project: Project) -> None:
    found = realised_metrics(project, "loans")
    assert (found.windows, found.overall.predictions, found.overall.labelled) == ((), 0, 0)


@pytest.mark.parametrize(
    ("arguments", "error", "words"),
    [
        ({"window": "1x"}, InvalidInputError, "window must be a duration"),
        ({"since": "last tuesday"}, InvalidInputError, "since must be a time"),
        ({"metrics": ["rmse"]}, InvalidInputError, "choose from"),
        ({"segment": "nowhere"}, DataError, "no column(s) ['nowhere']"),
    ],
)
def test_mistakes_say_what_to_do(
    project: Project,
    binary_log: tuple[pd.DataFrame, pd.DataFrame],
    arguments: dict[str, object],
    error: type[Exception],
    words: str,
) -> None:
    with pytest.raises(error, match=None) as caught:
        realised_metrics(project, "loans", **arguments)  # type: ignore[arg-type]
    assert words in str(caught.value)


# ---------------------------------------------------------------- the command line


def test_monitor_performance_and_health_on_the_command_line(
    project: Project,
    binary_log: tuple[pd.DataFrame, pd.DataFrame],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(project.root)
    cli = typer.Typer()
    group = typer.Typer()
    group.command("performance")(performance_command)  # as `modelyard monitor` registers them
    group.command("health")(health_command)
    cli.add_typer(group, name="monitor")
    out = tmp_path / "performance.json"
    arguments = ["--window", "1d", "--segment", "region", "--json", str(out)]
    result = CliRunner().invoke(cli, ["monitor", "performance", "loans", *arguments])
    assert result.exit_code == 0, result.output
    assert "Realised performance of loans (binary)" in result.output
    assert "By region" in result.output and "Time to label: p50" in result.output
    written = json.loads(out.read_text())
    expected = realised_metrics(project, "loans", window="1d", segment="region").to_dict()
    assert written == json.loads(json.dumps(expected))

    result = CliRunner().invoke(cli, ["monitor", "health", "loans", "--window", "1h"])
    assert result.exit_code == 0, result.output
    assert "requests/s" in result.output and "Pass --url" in result.output
