"""The monitoring report of a registered model over six logged days, the last three drifted.

``loans@1`` is a logistic regression on demo applications; the log holds
1,200 rows a day (two-row requests) from fresh applications of the training
period for three days, then from the demo's drifted ``recent`` period for
three. ``region`` is a feature and PII: the log keeps it hashed. About 60 %
of the rows get their true label 1 to 30 hours later. Oracles: the drift and
performance modules on the same rows, scikit-learn and NumPy.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from html.parser import HTMLParser
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import typer
import yaml
from sklearn.metrics import recall_score, roc_auc_score
from typer.testing import CliRunner

from modelyard.cli.monitor_report import report_command
from modelyard.data.datasets import add_dataset
from modelyard.data.demo import DEMO_SPEC, NUMERIC_FEATURES, make_loans
from modelyard.errors import InvalidInputError, NotFoundError
from modelyard.monitor.baseline import Baseline
from modelyard.monitor.drift import detect_drift, prediction_drift
from modelyard.monitor.feedback import FEEDBACK
from modelyard.monitor.log_files import (
    HEAD,
    OUTPUTS,
    feedback_root,
    predictions_root,
    read_predictions,
)
from modelyard.monitor.model_report import (
    MonitorReport,
    build_monitor_report,
    render_monitor_report,
    write_monitor_report,
)
from modelyard.monitor.performance import realised_metrics
from modelyard.monitor.pii import hash_values, project_key
from modelyard.monitor.runner import alert_history, run_once
from modelyard.monitor.segment_writer import SegmentWriter
from modelyard.monitor.training_baseline import training_baseline
from modelyard.project import Project
from modelyard.registry.versions import register_candidate
from modelyard.train.bundle import ModelBundle
from modelyard.train.trainer import train_candidates

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a midnight: daily sub-windows are whole days
DAYS, EARLY_DAYS, PER_DAY = 6, 3, 1_200
NOW = T0 + timedelta(days=DAYS)
FEATURES = [*NUMERIC_FEATURES, "home_ownership", "purpose", "region"]
PII = "region"
COMPARED = [c for c in FEATURES if c != PII]
DRIFT_RULE = {
    "name": "rates-moved",
    "metric": "drift:interest_rate",
    "threshold": 0.1,
    "window": "1d",
    "min_samples": 100,
    "severity": "warning",
}


@dataclass
class Served:
    """The project, the model, what was logged and labelled, and the report over it."""

    project: Project
    bundle: ModelBundle
    rows: pd.DataFrame  # the logged applications, in log order
    ts: np.ndarray  # each row's answer time, ms
    scores: np.ndarray
    latency: np.ndarray  # per request
    labelled: np.ndarray
    delay: np.ndarray  # seconds from answer to label
    report: MonitorReport
    json: dict[str, Any]
    html: str

    def day(self, d: int) -> np.ndarray:
        found: np.ndarray = np.arange(len(self.rows)) // PER_DAY == d
        return found


def open_project(folder: Path) -> Project:
    document = yaml.safe_load(DEMO_SPEC)
    document["columns"]["pii"] = ["email", PII]
    document["columns"]["features"] = FEATURES
    document["monitoring"] = {"alerts": [DRIFT_RULE]}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "modelyard.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return Project.open(folder / "modelyard.yaml")


def write_log(
    project: Project,
    model: str,
    inputs: dict[str, list[Any]],
    ts: np.ndarray,
    scores: np.ndarray,
    latency: np.ndarray,
    version: int = 1,
    first_request: int = 0,
) -> None:
    """Two-row requests through the prediction log's own writer."""
    n = len(ts)
    fields = [
        pa.field(k, pa.float64() if k not in ("home_ownership", "purpose", PII) else pa.string())
        for k in inputs
    ]
    writer = SegmentWriter(
        predictions_root(project) / model,
        pa.schema([*HEAD, *fields, *OUTPUTS]),
        time_column="ts",
        flush_rows=10**9,
    )
    writer.append(
        {
            "request_id": [f"req-{first_request + i // 2}" for i in range(n)],
            "row": [i % 2 for i in range(n)],
            "ts": ts.tolist(),
            "model": [model] * n,
            "version": [version] * n,
            "latency_ms": np.repeat(latency, 2)[:n].tolist(),
            **inputs,
            "score": scores.tolist(),
            "label": [str(int(s >= 0.5)) for s in scores],
            "confidence": np.maximum(scores, 1 - scores).tolist(),
        }
    )
    writer.close()


def logged_inputs(project: Project, rows: pd.DataFrame) -> dict[str, list[Any]]:
    """The inputs as the server logs them: numbers as floats, categories as text, PII hashed."""
    out: dict[str, list[Any]] = {}
    for name in FEATURES:
        values = [None if pd.isna(v) else v for v in rows[name]]
        if name == PII:
            out[name] = hash_values(values, project_key(project))
        elif name in ("home_ownership", "purpose"):
            out[name] = [None if v is None else str(v) for v in values]
        else:
            out[name] = [None if v is None else float(v) for v in values]
    return out


def write_feedback(
    project: Project,
    model: str,
    ts: np.ndarray,
    truth: np.ndarray,
    labelled: np.ndarray,
    delay: np.ndarray,
) -> None:
    picked = np.flatnonzero(labelled)
    writer = SegmentWriter(
        feedback_root(project) / model, FEEDBACK, time_column="received_at", flush_rows=10**9
    )
    writer.append(
        {
            "request_id": [f"req-{i // 2}" for i in picked],
            "row": [int(i % 2) for i in picked],
            "label": [str(int(truth[i])) for i in picked],
            "received_at": (ts[picked] + (delay[picked] * 1000).astype(np.int64)).tolist(),
        }
    )
    writer.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with pytest.MonkeyPatch.context() as patch:
        for name in ("MODELYARD_DB_URL", "MODELYARD_ARTIFACTS", "MODELYARD_PREDICTIONS"):
            patch.delenv(name, raising=False)
        folder = tmp_path_factory.mktemp("served")
        project = open_project(folder / "project")
        yield _served(project, folder)
        project.close()


def _served(project: Project, folder: Path) -> Served:
    frame = make_loans(10_000, recent_share=0.36, seed=11)
    reference = frame[frame["period"] == "reference"].reset_index(drop=True)
    recent = frame[frame["period"] == "recent"].reset_index(drop=True)
    training = reference.iloc[:2_000]
    (result,) = train_candidates(
        project, add_dataset(project, "loans", training), training, families=["logistic"]
    )
    register_candidate(project, "loans", result)
    assert result.bundle is not None
    bundle = result.bundle
    early = reference.iloc[2_000 : 2_000 + EARLY_DAYS * PER_DAY]
    late = recent.iloc[: (DAYS - EARLY_DAYS) * PER_DAY]
    rows = pd.concat([early, late], ignore_index=True)
    n = len(rows)
    # a request's two rows share its answer time; requests spread evenly over each day
    i = np.arange(n)
    ts = int(T0.timestamp() * 1000) + (i // PER_DAY) * 86_400_000 + (i % PER_DAY) // 2 * 144_000
    rng = np.random.default_rng(3)
    scores = bundle.score_frame(rows)
    latency = rng.gamma(4.0, 5.0, n // 2)
    write_log(project, "loans", logged_inputs(project, rows), ts, scores, latency)
    labelled = rng.uniform(size=n) < 0.6
    delay = rng.uniform(3_600, 30 * 3_600, n)
    write_feedback(project, "loans", ts, rows["default"].to_numpy(), labelled, delay)
    run_once(project, "loans", now=NOW)  # the last day's interest rates open an alert
    report = build_monitor_report(project, "loans", window="7d", now=NOW)
    html, out = folder / "monitor.html", folder / "monitor.json"
    write_monitor_report(report, html=html, json_path=out)
    return Served(
        project,
        bundle,
        rows,
        ts,
        scores,
        latency,
        labelled,
        delay,
        report,
        json.loads(out.read_text()),
        html.read_text(),
    )


def _approx(value: Any) -> Any:
    """``value`` with every float wrapped in ``pytest.approx`` (relative 1e-12)."""
    if isinstance(value, dict):
        return {k: _approx(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_approx(v) for v in value]
    return pytest.approx(value, rel=1e-12) if isinstance(value, float) else value


# ------------------------------------------------------------------ drift


def test_the_later_sub_windows_flag_the_drifted_features_and_the_early_ones_do_not(
    served: Served,
) -> None:
    windows = served.json["drift_over_time"]
    assert [w["start"] for w in windows] == [
        (T0 + timedelta(days=d)).isoformat() for d in range(DAYS)
    ]
    assert all(w["rows"][1] == PER_DAY for w in windows)
    for d, w in enumerate(windows):
        if d < EARLY_DAYS:
            assert w["drifted_features"] == [], (d, w["drifted_features"])
            assert not w["prediction_drifted"]
        else:  # the recent period: lower incomes, higher rates and amounts, more delinquencies
            assert {"income", "interest_rate"} <= set(w["drifted_features"]), d
            assert "age" not in w["drifted_features"]
    assert {"income", "interest_rate"} <= set(served.report.drifted_features)
    assert served.json["drift"]["drifted_features"] == served.report.drifted_features


def test_the_drift_numbers_are_those_of_detect_drift_on_the_same_rows(served: Served) -> None:
    project = served.project
    baseline = training_baseline(project, "loans", 1)
    every = read_predictions(project, "loans", since=NOW - timedelta(days=7), until=NOW)
    overall = detect_drift(
        baseline, every, COMPARED, predictions=["score"], thresholds=project.spec.drift
    )
    assert served.json["drift"]["report"]["features"] == overall.to_dict()["features"]
    for d, window in enumerate(served.json["drift_over_time"]):
        start = T0 + timedelta(days=d)
        rows = read_predictions(project, "loans", since=start, until=start + timedelta(days=1))
        expected = detect_drift(
            baseline, rows, COMPARED, predictions=["score"], thresholds=project.spec.drift
        )
        assert window["features"] == expected.to_dict()["features"], d
        assert window["drift_share"] == expected.drift_share


def test_prediction_drift_is_against_the_training_scores(served: Served) -> None:
    section = served.json["prediction_drift"]
    assert section["reference"] == "training"
    assert "training data" in section["reference_label"]
    assert section["result"] == served.json["drift"]["report"]["features"][-1]
    assert section["result"]["feature"] == "score" and section["result"]["role"] == "prediction"
    # the baseline keeps the model's own scores on its training rows (the data set's first rows)
    training = make_loans(10_000, recent_share=0.36, seed=11).iloc[:2_000]
    thresholds = served.project.spec.drift
    direct = prediction_drift(
        served.bundle.score_frame(training), served.scores, thresholds=thresholds, name="score"
    )
    assert section["result"]["statistics"]["psi"] == pytest.approx(direct.statistics["psi"])


def test_pii_columns_are_neither_compared_nor_shown(served: Served) -> None:
    compared = [f["feature"] for f in served.json["drift"]["report"]["features"]]
    assert compared == [*COMPARED, "score"]
    for window in served.json["drift_over_time"]:
        assert [f["feature"] for f in window["features"]] == [*COMPARED, "score"]
    assert any("PII" in note and PII in note for note in served.json["notes"])
    hashed = set(logged_inputs(served.project, served.rows)[PII]) - {None}
    logged = read_predictions(served.project, "loans", columns=[PII]).column(PII).to_pylist()
    assert set(logged) - {None} == hashed  # the log does hold them, hashed
    raw = set(served.rows[PII].dropna())
    for text in (served.html, json.dumps(served.json)):
        assert not any(h in text for h in hashed)
        assert not re.search(rf"\b({'|'.join(raw)})\b", text, flags=re.IGNORECASE)
        assert "@example.com" not in text


# ------------------------------------------------------------------ performance, health, alerts


def test_realised_performance_is_the_modules_and_matches_scikit_learn(served: Served) -> None:
    section = served.json["performance"]
    expected = realised_metrics(
        served.project, "loans", window="1d", since=NOW - timedelta(days=7), until=NOW
    )
    # the join's row order varies between reads, so sums may differ in the last bit
    assert section == _approx(json.loads(json.dumps(expected.to_dict())))
    truth = served.rows["default"].to_numpy()
    threshold = served.bundle.threshold
    for d, window in enumerate(section["windows"]):
        mask = served.day(d) & served.labelled
        assert window["predictions"] == PER_DAY and window["labelled"] == int(mask.sum())
        assert window["coverage"] == pytest.approx(mask.sum() / PER_DAY)
        auc = roc_auc_score(truth[mask], served.scores[mask])
        assert window["metrics"]["roc_auc"] == pytest.approx(auc)
        recall = recall_score(truth[mask], (served.scores[mask] >= threshold).astype(int))
        assert window["metrics"]["recall"] == pytest.approx(recall)
        p50 = window["time_to_label_seconds"]["p50"]
        assert p50 == pytest.approx(np.quantile(served.delay[mask], 0.5), abs=1e-3)


def test_versions_and_health_come_from_the_log(served: Served) -> None:
    (version,) = served.json["versions"]
    assert version == {
        "version": 1,
        "rows": DAYS * PER_DAY,
        "requests": DAYS * PER_DAY // 2,
        "first": T0.isoformat(),
        "last": datetime.fromtimestamp(served.ts.max() / 1000, UTC).isoformat(),
    }
    health = served.json["health"]
    latency = served.latency.astype(np.float32).astype(np.float64)  # the log keeps float32
    assert health["requests"] == len(latency)
    assert health["latency_p50_ms"] == pytest.approx(np.quantile(latency, 0.5))
    assert health["latency_p99_ms"] == pytest.approx(np.quantile(latency, 0.99))
    assert health["requests_per_second"] == pytest.approx(len(latency) / (7 * 86_400))


def test_open_alerts_are_listed(served: Served) -> None:
    (alert,) = alert_history(served.project, "loans")
    (listed,) = served.json["alerts"]
    assert listed["id"] == alert.id and listed["rule"] == "rates-moved"
    assert listed["state"] == "firing" and listed["value"] == pytest.approx(alert.value)
    assert "rates-moved" in served.html


# ------------------------------------------------------------------ the page


class _Page(HTMLParser):
    """The features of the histogram figures with an SVG inside, and every text and attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.figure: str | None = None
        self.histograms: list[str] = []
        self.trends = 0
        self.drifted_cells = 0
        self.seen: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.seen += [v for v in found.values() if v]
        if tag == "figure" and "histogram" in (found.get("class") or ""):
            self.figure = found.get("data-feature")
        classes = (found.get("class") or "").split()
        self.drifted_cells += int(tag == "td" and {"cell", "drifted"} <= set(classes))
        if tag == "svg" and "plot" in classes:
            if self.figure is not None:
                self.histograms.append(self.figure)
                self.figure = None
            self.trends += int("trend" in classes)

    def handle_data(self, data: str) -> None:
        self.seen.append(data)


def test_the_page_shows_a_histogram_per_feature_and_the_trends(served: Served) -> None:
    page = _Page()
    page.feed(served.html)
    assert page.histograms == [*COMPARED, "score"]
    metrics = served.json["performance"]["metrics"]
    # drift share, score PSI, one per realised metric, label coverage
    assert page.trends == 2 + len(metrics) + 1
    text = " ".join(" ".join(page.seen).split())
    assert f"Drifted features {len(served.report.drifted_features)} of 12" in text
    for name in served.report.drifted_features:
        assert name in text
    # the drift-over-time table marks each drifted column of each sub-window
    flagged = sum(f["drifted"] for w in served.json["drift_over_time"] for f in w["features"])
    assert page.drifted_cells == flagged > 0
    assert "<script" not in served.html and "http://" not in served.html.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )


# ------------------------------------------------------------------ other logs


def test_an_unregistered_model_compares_its_scores_with_the_first_sub_window(
    served: Served,
) -> None:
    project = served.project
    n = 3 * PER_DAY
    ts = served.ts[:n]
    scores = np.concatenate([served.scores[:PER_DAY], served.scores[-2 * PER_DAY :]])
    write_log(project, "shadow", {}, ts, scores, served.latency[: n // 2])
    found = build_monitor_report(project, "shadow", window="7d", now=NOW)
    assert found.drift is None and found.drifted_features == []
    assert any("Feature drift is not measured" in note for note in found.notes)
    assert found.prediction_reference == "first_window"
    assert "2026-03-02 00:00–2026-03-03 00:00" in found.prediction_reference_label
    expected = prediction_drift(
        scores[:PER_DAY], scores[PER_DAY:], thresholds=project.spec.drift, name="score"
    )
    assert found.prediction is not None
    assert found.prediction.to_dict() == expected.to_dict() and expected.drifted
    assert [[f.feature for f in w.report.features] for w in found.windows] == [["score"]] * 3
    assert [w.report.features[0].drifted for w in found.windows] == [False, True, True]
    page = _Page()
    page.feed(render_monitor_report(found))
    assert page.histograms == ["score"]


def test_a_baseline_without_scores_compares_them_with_the_first_sub_window(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modelyard.monitor.model_report as module

    full = training_baseline(served.project, "loans", 1)
    without = Baseline(tuple(c for c in full.columns if c.name != "score"), full.rows)
    monkeypatch.setattr(module, "training_baseline", lambda *_: without)
    found = build_monitor_report(served.project, "loans", window="7d", now=NOW)
    assert found.drift is not None
    assert [f.feature for f in found.drift.features] == COMPARED
    assert found.drifted_features == served.report.drifted_features
    assert found.prediction_reference == "first_window"
    thresholds = served.project.spec.drift
    first = served.scores[served.day(0)]
    expected = prediction_drift(first, served.scores[PER_DAY:], thresholds=thresholds, name="score")
    assert found.prediction is not None and found.prediction.to_dict() == expected.to_dict()
    for d, w in enumerate(found.windows):
        assert [f.feature for f in w.report.features] == [*COMPARED, "score"]
        assert w.report.features[:-1] == served.report.windows[d].report.features[:-1]
        day = prediction_drift(first, served.scores[served.day(d)], thresholds=thresholds)
        assert w.report.features[-1].statistics == day.statistics
        assert w.report.features[-1].drifted == (d >= EARLY_DAYS)


def test_every_version_served_is_listed_and_drift_reads_the_newest(served: Served) -> None:
    project, scores, latency = served.project, served.scores, served.latency
    day = PER_DAY
    write_log(project, "twin", {}, served.ts[:day], scores[:day], latency[: day // 2])
    later = np.concatenate([scores[day : 2 * day], scores[-day:]])  # v2: calm, then drifted
    write_log(
        project,
        "twin",
        {},
        served.ts[day : 3 * day],
        later,
        latency[day // 2 :][:day],
        version=2,
        first_request=day,
    )
    found = build_monitor_report(project, "twin", window="7d", now=NOW)
    assert [v.to_dict() for v in found.versions] == [
        {
            "version": 1,
            "rows": day,
            "requests": day // 2,
            "first": T0.isoformat(),
            "last": _iso(served.ts[day - 1]),
        },
        {
            "version": 2,
            "rows": 2 * day,
            "requests": day,
            "first": _iso(served.ts[day]),
            "last": _iso(served.ts[3 * day - 1]),
        },
    ]
    assert found.drift_version == 2
    assert any("the 1,200 rows of v1 are left out" in note for note in found.notes)
    expected = prediction_drift(
        later[:day], later[day:], thresholds=project.spec.drift, name="score"
    )
    assert found.prediction is not None and found.prediction.to_dict() == expected.to_dict()
    assert [w.start for w in found.windows] == [T0 + timedelta(days=1), T0 + timedelta(days=2)]
    assert found.health.requests == 3 * day // 2


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def test_an_empty_window_or_unknown_model_is_a_clear_error(served: Served) -> None:
    with pytest.raises(
        NotFoundError,
        match=r"No predictions of 'loans' were logged between "
        r"2026-01-25 00:00 and 2026-02-01 00:00 UTC.*widen --window",
    ):
        build_monitor_report(served.project, "loans", now=T0 - timedelta(days=29))
    with pytest.raises(NotFoundError, match="No predictions of 'lons'"):
        build_monitor_report(served.project, "lons", now=NOW)


@pytest.mark.parametrize(
    ("window", "step", "message"),
    [
        ("7x", None, "window or step must be a duration"),
        ("1d", "2d", r"step \(2d\) is longer than the window \(1d\)"),
    ],
)
def test_bad_durations_are_refused(
    served: Served, window: str, step: str | None, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        build_monitor_report(served.project, "loans", window=window, step=step, now=NOW)


def test_a_shorter_step_cuts_the_window_finer(served: Served) -> None:
    found = build_monitor_report(served.project, "loans", window="2d", step="12h", now=NOW)
    half = timedelta(hours=12)
    assert [w.start for w in found.windows] == [NOW - 4 * half + k * half for k in range(4)]
    assert [w.rows for w in found.windows] == [PER_DAY // 2] * 4
    assert [w.start for w in found.performance.windows] == [w.start for w in found.windows]


# ------------------------------------------------------------------ the command


def _cli() -> typer.Typer:
    cli = typer.Typer()

    @cli.callback()
    def main(ctx: typer.Context, spec: Annotated[Path, typer.Option("--spec")]) -> None:
        ctx.obj = {"spec": spec}

    cli.command("report")(report_command)
    return cli


def test_the_command_writes_both_files_and_prints_a_summary(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modelyard.monitor.model_report as module

    # the command reports up to the present; the log's week ends at NOW
    monkeypatch.setattr(module, "build_monitor_report", partial(build_monitor_report, now=NOW))
    spec = ["--spec", str(served.project.spec_path)]
    html, out = tmp_path / "r.html", tmp_path / "r.json"
    args = [*spec, "report", "loans", "--out", str(html), "--json", str(out)]
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 0, result.output
    line = " ".join(result.output.split())
    assert "loans, 2026-03-01 00:00 to 2026-03-08 00:00 UTC: v1 (7,200 rows)." in line
    assert "Drifted over the window:" in line and "interest_rate" in line
    assert "Drifted in the last sub-window (2026-03-07 00:00):" in line
    assert "Realised roc_auc:" in line and "label coverage" in line
    assert "1 open alert(s)." in line
    assert f"Wrote the HTML report to {html}" in line and f"Wrote the JSON to {out}" in line
    assert json.loads(out.read_text())["format"] == "modelyard.monitor-report/1"
    assert html.read_text().startswith("<!doctype html>")

    empty = CliRunner().invoke(_cli(), [*spec, "report", "nobody", "--out", str(html)])
    assert isinstance(empty.exception, NotFoundError)
    assert "No predictions of 'nobody'" in empty.exception.message
    nowhere = tmp_path / "missing" / "r.html"
    refused = CliRunner().invoke(_cli(), [*spec, "report", "loans", "--out", str(nowhere)])
    assert isinstance(refused.exception, InvalidInputError)
    assert f"the folder {nowhere.parent} does not exist" in refused.exception.message


# ------------------------------------------------------------------ in a browser

CHROMIUM = Path(os.environ.get("MODELYARD_CHROMIUM", "/usr/bin/chromium"))


@pytest.mark.slow
def test_the_page_renders_in_chromium_without_errors(served: Served, tmp_path: Path) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed")
    if not CHROMIUM.is_file():
        _missing(f"no Chromium at {CHROMIUM}")
    path = tmp_path / "monitor.html"
    path.write_text(served.html)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        problems: list[str] = []
        requests: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.as_uri(), wait_until="load")
        assert problems == []
        assert all(url.startswith(("file:", "data:")) for url in requests), requests
        plots = page.locator("svg.plot")
        assert plots.count() == len(COMPARED) + 1 + 2 + len(served.report.performance.metrics) + 1
        for i in range(plots.count()):
            box = plots.nth(i).bounding_box()
            assert box is not None and box["width"] > 200 and box["height"] > 60
        browser.close()


def _missing(reason: str) -> None:
    message = f"{reason}: the browser check needs playwright (dev extra) and Debian's chromium"
    if os.environ.get("MODELYARD_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}. MODELYARD_REQUIRE_SERVICES=1, so this is a failure.")
    pytest.skip(message)
