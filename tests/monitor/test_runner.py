"""``run_once`` end to end: a prediction log, the rules of the spec, a webhook, the history."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa
import typer
import yaml
from sklearn.metrics import recall_score, roc_auc_score
from test_notify import Receiver
from typer.testing import CliRunner

from modelyard.cli.monitor_run import alerts_command, evaluation_line, run_command
from modelyard.data.datasets import add_dataset
from modelyard.data.demo import DEMO_SPEC, make_loans
from modelyard.errors import DataError, InvalidInputError, ModelyardError, SpecError
from modelyard.monitor.alerts import Measured, RuleState, evaluate_rules, next_state
from modelyard.monitor.drift import compare
from modelyard.monitor.feedback import FeedbackLog, FeedbackRow
from modelyard.monitor.log_files import HEAD, OUTPUTS, predictions_root, read_predictions
from modelyard.monitor.measures import measure
from modelyard.monitor.notify import MemorySender
from modelyard.monitor.runner import (
    Evaluation,
    RunResult,
    alert_history,
    load_state,
    run_forever,
    run_once,
)
from modelyard.monitor.segment_writer import SegmentWriter
from modelyard.monitor.training_baseline import training_baseline
from modelyard.project import Project
from modelyard.registry.audit import events
from modelyard.registry.versions import register_candidate, resolve
from modelyard.serve.metrics import ServerMetrics
from modelyard.spec import AlertRule
from modelyard.store import tables
from modelyard.train.bundle import ModelBundle
from modelyard.train.trainer import train_candidates

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SLOW, FAST = 400.0, 40.0
RULE_NAME = "slow-answers"
RULE = {
    "name": RULE_NAME,
    "metric": "p99_latency_ms",
    "threshold": 200,
    "window": "10m",
    "min_samples": 20,
    "severity": "critical",
}


def open_project(folder: Path, monitoring: dict[str, Any]) -> Project:
    """The demo project with a ``monitoring`` section in its spec."""
    document = yaml.safe_load(DEMO_SPEC)
    document["monitoring"] = monitoring
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "modelyard.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return Project.open(folder / "modelyard.yaml")


def write_log(
    project: Project,
    moments: Sequence[datetime],
    latencies: Sequence[float],
    *,
    model: str = "loans",
    version: int = 1,
    inputs: dict[str, pa.Array] | None = None,
    scores: Sequence[float] | None = None,
) -> None:
    """One single-row request per moment, through the prediction log's own writer."""
    n = len(moments)
    columns = inputs or {}
    schema = pa.schema([*HEAD, *(pa.field(k, v.type) for k, v in columns.items()), *OUTPUTS])
    writer = SegmentWriter(
        predictions_root(project) / model, schema, time_column="ts", flush_rows=10**9
    )
    writer.append(
        {
            "request_id": [f"r{i}-{m.timestamp()}" for i, m in enumerate(moments)],
            "row": [0] * n,
            "ts": [int(m.timestamp() * 1000) for m in moments],
            "model": [model] * n,
            "version": [version] * n,
            "latency_ms": list(latencies),
            **{k: v.to_pylist() for k, v in columns.items()},
            "score": list(scores) if scores is not None else [0.5] * n,
            "label": ["1"] * n,
            "confidence": [0.5] * n,
        }
    )
    writer.close()


def traffic(*phases: tuple[int, int, float]) -> tuple[list[datetime], list[float]]:
    """Six requests a minute: each phase is (first minute after T0, minutes, latency)."""
    moments, latencies = [], []
    for start, minutes, latency in phases:
        for i in range(minutes * 6):
            moments.append(T0 + timedelta(minutes=start, seconds=10 * i))
            latencies.append(latency)
    return moments, latencies


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def hooked(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Project]:
    """A project whose one rule pages a webhook receiver, with a one-hour cool-down."""
    monkeypatch.delenv("MODELYARD_DB_URL", raising=False)
    monkeypatch.delenv("MODELYARD_PREDICTIONS", raising=False)
    project = open_project(
        tmp_path / "project",
        {
            "cooldown": "1h",
            "alerts": [RULE],
            "channels": {"pager": {"kind": "webhook", "url": receiver.url()}},
            "on_call": {"critical": ["pager"]},
        },
    )
    yield project
    project.close()


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _states(receiver: Receiver) -> list[str]:
    return [body["state"] for body in receiver.bodies()]


def test_webhook_sees_one_alert_per_breach_one_recovery_and_nothing_in_the_cooldown(
    hooked: Project, receiver: Receiver
) -> None:
    # slow 12:00-12:30, fast 12:30-12:45, slow again 12:45-13:20
    write_log(hooked, *traffic((0, 30, SLOW), (30, 15, FAST), (45, 35, SLOW)))

    for minute in (10, 15, 20, 25, 30):  # a sustained breach
        run_once(hooked, "loans", now=_at(minute))
    assert _states(receiver) == ["firing"]
    (firing,) = receiver.bodies()
    assert firing["rule"] == "slow-answers" and firing["value"] == pytest.approx(SLOW)
    assert (firing["model"], firing["version"], firing["threshold"]) == ("loans", 1, 200.0)
    assert firing["started_at"] == _at(10).isoformat() and firing["window"] == "10m"

    for minute in (40, 45):  # back to normal
        run_once(hooked, "loans", now=_at(minute))
    assert _states(receiver) == ["firing", "resolved"]
    assert receiver.bodies()[1]["value"] == pytest.approx(FAST)

    for minute in (55, 60, 65):  # breached again, within an hour of 12:10
        result = run_once(hooked, "loans", now=_at(minute))
        assert [e.transition.event for e in result.evaluations] == [
            "suppressed" if minute == 55 else "still_suppressed"
        ]
    assert _states(receiver) == ["firing", "resolved"]

    result = run_once(hooked, "loans", now=_at(70))  # 13:10: the cool-down is over
    assert [e.transition.event for e in result.evaluations] == ["firing"]
    assert _states(receiver) == ["firing", "resolved", "firing"]
    assert receiver.bodies()[2]["started_at"] == _at(70).isoformat()

    history = alert_history(hooked, "loans", include_closed=True)
    assert [(a.state, a.started_at, a.resolved_at) for a in history] == [
        ("firing", _at(70), None),
        ("suppressed", _at(55), _at(70)),
        ("resolved", _at(10), _at(40)),
    ]
    assert [n["event"] for n in history[2].notifications] == ["firing", "resolved"]
    assert all(n["ok"] and n["channel"] == "pager" for n in history[2].notifications)
    assert history[1].notifications == []
    assert [a.id for a in alert_history(hooked, "loans")] == [history[0].id]  # the open one
    audit = events(hooked, object_type="alert")[::-1]  # oldest first
    assert [(e.action, e.object_id) for e in audit] == [
        ("alert.firing", history[2].id),
        ("alert.resolved", history[2].id),
        ("alert.firing", history[0].id),
    ]
    assert audit[0].payload["notified"] == ["pager"] and audit[0].payload["rule"] == RULE_NAME


def test_state_survives_reopening_the_project(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELYARD_DB_URL", db_url)
    monitoring = {"cooldown": "1h", "alerts": [RULE], "channels": {}, "on_call": {}}
    folder = tmp_path / "project"
    first = open_project(folder, monitoring)
    write_log(first, *traffic((0, 30, SLOW), (30, 15, FAST)))
    try:
        assert [e.transition.event for e in run_once(first, "loans", now=_at(10)).evaluations] == [
            "firing"
        ]
    finally:
        first.close()

    second = Project.open(folder / "modelyard.yaml")
    try:
        state = load_state(second, "loans")
        assert state[RULE_NAME].status == "firing"
        assert state[RULE_NAME].last_fired_at == _at(10)
        result = run_once(second, "loans", now=_at(20))
        assert [e.transition.event for e in result.evaluations] == ["still_firing"]
        assert result.notified == []
        (open_alert,) = alert_history(second, "loans")
        assert (open_alert.last_evaluated_at, open_alert.started_at) == (_at(20), _at(10))
        resolved = run_once(second, "loans", now=_at(45))
        assert [e.transition.event for e in resolved.notified] == ["resolved"]
        assert alert_history(second, "loans") == []
    finally:
        second.close()


def test_the_stored_state_decides_as_the_engine_does_in_memory(hooked: Project) -> None:
    # fire, recover, breach in the cool-down, clear, then breach again after it
    phases = ((0, 10, SLOW), (10, 10, FAST), (20, 10, SLOW), (30, 10, FAST), (70, 10, SLOW))
    write_log(hooked, *traffic(*phases))
    sender = MemorySender()
    stored, in_memory = [], []
    state: dict[str, RuleState] = {}
    rules = hooked.spec.monitoring.alerts
    for minute in (10, 20, 30, 40, 50, 80, 85):
        result = run_once(hooked, "loans", now=_at(minute), sender=sender)
        (evaluation,) = result.evaluations
        stored.append(evaluation.transition.event)
        values = {RULE_NAME: evaluation.transition.measured}
        steps = evaluate_rules(rules, values, state, now=_at(minute), cooldown_seconds=3600)
        in_memory.append(steps[0].event)
        state = next_state(steps)
    assert stored == in_memory
    assert stored == [
        "firing",
        "resolved",
        "suppressed",
        "cleared",
        "not_judged",  # 12:40-12:50 had no traffic
        "firing",
        "still_firing",
    ]
    assert [a.state for _, a in sender.sent] == ["firing", "resolved", "firing"]
    history = alert_history(hooked, "loans", include_closed=True)
    assert [(a.state, a.started_at, a.resolved_at) for a in history] == [
        ("firing", _at(80), None),
        ("suppressed", _at(30), _at(40)),
        ("resolved", _at(10), _at(20)),
    ]


def test_too_few_requests_leave_everything_as_it_was(hooked: Project, receiver: Receiver) -> None:
    write_log(hooked, *traffic((0, 3, SLOW)))  # 18 requests; the rule wants 20
    result = run_once(hooked, "loans", now=_at(5))
    (evaluation,) = result.evaluations
    assert evaluation.transition.event == "not_judged"
    assert evaluation.transition.measured.samples == 18
    assert receiver.posts == [] and alert_history(hooked, "loans", include_closed=True) == []


def test_a_failed_delivery_is_recorded_and_the_run_completes(tmp_path: Path) -> None:
    monitoring = {
        "alerts": [RULE],
        "channels": {"pager": {"kind": "webhook", "url": "http://127.0.0.1:9/hook"}},
        "on_call": {"critical": ["pager"]},
    }
    project = open_project(tmp_path / "project", monitoring)
    try:
        write_log(project, *traffic((0, 10, SLOW)))
        result = run_once(
            project, "loans", now=_at(10), sender=MemorySender(failing=frozenset({"webhook"}))
        )
        (evaluation,) = result.notified
        assert [(d.channel, d.ok) for d in evaluation.deliveries] == [("pager", False)]
        (alert,) = alert_history(project, "loans")
        assert alert.notifications[0]["ok"] is False
        assert "set to fail" in alert.notifications[0]["error"]
        (audit,) = events(project, object_type="alert")
        assert audit.payload["failed"] == ["pager"] and audit.payload["notified"] == []
    finally:
        project.close()


def test_an_unknown_metric_is_a_spec_error_that_lists_what_is_allowed(tmp_path: Path) -> None:
    rules = [RULE, {**RULE, "name": "typo", "metric": "p99_latncy_ms"}]
    project = open_project(tmp_path / "project", {"alerts": rules})
    try:
        with pytest.raises(SpecError) as caught:
            run_once(project, "loans", now=_at(10))
        message = caught.value.message
        assert "monitoring.alerts[1].metric" in message and "'typo'" in message
        assert "Did you mean 'p99_latency_ms'?" in message
        for allowed in ("error_rate", "throughput_rps", "drift_share", "drift:<feature>", "recall"):
            assert allowed in message
        assert "rmse" not in message  # a regression metric, and this is a binary task
    finally:
        project.close()


def test_a_model_is_monitored_by_name(hooked: Project) -> None:
    with pytest.raises(InvalidInputError, match="by its name"):
        run_once(hooked, "loans@2", now=_at(10))


def test_a_spec_without_rules_evaluates_nothing(project: Project) -> None:
    result = run_once(project, "loans", now=_at(10))
    assert result == RunResult("loans", None, _at(10), ())


def test_run_forever_stops_cleanly_on_sigterm(hooked: Project, receiver: Receiver) -> None:
    before = signal.getsignal(signal.SIGTERM)
    results: list[RunResult] = []

    def on_result(result: RunResult) -> None:
        results.append(result)
        os.kill(os.getpid(), signal.SIGTERM)

    assert run_forever(hooked, "loans", 3600, on_result=on_result) == 1
    assert len(results) == 1 and signal.getsignal(signal.SIGTERM) is before


def test_run_forever_reports_later_errors_and_goes_on(hooked: Project) -> None:
    stop = threading.Event()
    seen: list[str] = []
    errors: list[ModelyardError] = []
    today = datetime.now(UTC).date().isoformat()  # within the rule's 10-minute window
    broken = predictions_root(hooked) / "loans" / f"date={today}" / "broken.parquet"

    def on_result(result: RunResult) -> None:
        seen.append("ok")
        if len(seen) == 1:  # the next run meets a damaged segment
            broken.parent.mkdir(parents=True)
            broken.write_bytes(b"not parquet")
        else:
            stop.set()

    def on_error(exc: ModelyardError) -> None:
        errors.append(exc)
        broken.unlink()

    runs = run_forever(hooked, "loans", 0.01, on_result=on_result, on_error=on_error, stop=stop)
    assert runs == 3 and seen == ["ok", "ok"]
    assert len(errors) == 1 and isinstance(errors[0], DataError)


def test_the_first_run_raises(hooked: Project) -> None:
    with pytest.raises(InvalidInputError):
        run_forever(hooked, "loans@1", 0.01)


def test_the_alerts_table_keeps_one_open_episode_per_rule(hooked: Project) -> None:
    write_log(hooked, *traffic((0, 30, SLOW)))
    for minute in range(10, 31, 5):
        run_once(hooked, "loans", now=_at(minute))
    with hooked.db.read() as session:
        rows = session.scalars(sa.select(tables.Alert)).all()
        assert [(r.state, r.resolved_at, r.last_evaluated_at) for r in rows] == [
            ("firing", None, _at(30))
        ]


# ------------------------------------------------------------------ measures


def _rules(*metrics: str, window: str = "10m") -> list[AlertRule]:
    return [
        AlertRule(name=f"rule-{i}", metric=m, threshold=0.0, window=window, min_samples=1)
        for i, m in enumerate(metrics)
    ]


def test_latency_and_throughput_match_numpy_over_the_window(tmp_path: Path) -> None:
    project = open_project(tmp_path / "project", {"log": {"sample_rate": 0.5}})
    try:
        rng = np.random.default_rng(3)
        offsets = np.sort(rng.uniform(0, 1_800, 2_000))  # seconds after T0
        latencies = rng.lognormal(3, 0.7, 2_000)
        write_log(project, [T0 + timedelta(seconds=float(o)) for o in offsets], latencies.tolist())
        now = _at(25)
        values = measure(project, "loans", _rules("p99_latency_ms", "throughput_rps"), now=now)
        inside = (offsets >= 900) & (offsets < 1_500)  # [now - 10m, now)
        latency_ms = latencies[inside].astype(np.float32)  # the log keeps float32
        assert values["rule-0"].samples == values["rule-1"].samples == int(inside.sum())
        assert values["rule-0"].value == pytest.approx(np.quantile(latency_ms, 0.99))
        assert values["rule-1"].value == pytest.approx(inside.sum() / 0.5 / 600)
        empty = measure(project, "loans", _rules("p99_latency_ms"), now=_at(120))
        assert empty["rule-0"] == Measured(None, 0)
    finally:
        project.close()


def served_metrics(pid: int, answered: int, failed: int) -> bytes:
    """One worker's /metrics after ``answered`` requests, ``failed`` of them 5xx, and two 422s."""
    served = ServerMetrics()
    served.pid = pid
    for status, count in ((200, answered - failed - 2), (500, failed), (422, 2)):
        for _ in range(count):
            served.request("json", status, 0.01)
    return served.render(queued_rows=0)


def test_error_rate_is_the_share_of_5xx_in_the_window(tmp_path: Path, receiver: Receiver) -> None:
    rules = [
        {"name": f"errors-{window}", "metric": "error_rate", "threshold": 0.06}
        | {"window": window, "min_samples": 100, "severity": "critical"}
        for window in ("10m", "5m")
    ]
    monitoring = {
        "alerts": rules,
        "channels": {"pager": {"kind": "webhook", "url": receiver.url()}},
        "on_call": {"critical": ["pager"]},
    }
    project = open_project(tmp_path / "project", monitoring)
    # minute → (pid, answered, 5xx) since the worker started; at 12:20 the server restarted
    counters = {0: (101, 100, 2), 5: (101, 300, 12), 10: (101, 500, 32), 15: (101, 600, 33)}
    counters |= {20: (202, 150, 0), 25: (202, 300, 3)}
    seen = {}
    try:
        for minute, (pid, answered, failed) in counters.items():
            receiver.metrics = served_metrics(pid, answered, failed)
            result = run_once(project, "loans", now=_at(minute), metrics_url=receiver.url("/"))
            seen[minute] = [(e.transition.measured, e.transition.event) for e in result.evaluations]
        with pytest.raises(InvalidInputError, match=r"error_rate.*--url"):
            run_once(project, "loans", now=_at(30))
    finally:
        project.close()
    # by hand: (5xx now − 5xx then) / (answered now − answered then), "then" being the
    # newest scrape at least a window old (the oldest one while the history is shorter)
    assert seen == {
        0: [(Measured(None, 0, 0.0), "not_judged")] * 2,  # no earlier scrape yet
        5: [(Measured(10 / 200, 200, 300.0), "ok")] * 2,
        10: [
            (Measured(30 / 400, 400, 600.0), "firing"),
            (Measured(20 / 200, 200, 300.0), "firing"),
        ],
        # since the start it would be 33/600 = 0.055, under the threshold
        15: [
            (Measured(21 / 300, 300, 600.0), "still_firing"),
            (Measured(1 / 100, 100, 300.0), "resolved"),
        ],
        # a new process: its counters are the answers since the restart
        20: [(Measured(0.0, 150, 600.0), "resolved"), (Measured(0.0, 150, 300.0), "ok")],
        25: [(Measured(3 / 300, 300, 600.0), "ok"), (Measured(3 / 150, 150, 300.0), "ok")],
    }
    assert [(b["rule"], b["state"]) for b in receiver.bodies()] == [
        ("errors-10m", "firing"),
        ("errors-5m", "firing"),
        ("errors-5m", "resolved"),
        ("errors-10m", "resolved"),
    ]
    kept = json.loads((project.root / ".modelyard/monitor/scrapes/loans.json").read_text())
    # the longest window is 10m: 12:15 starts it, older scrapes are gone
    assert [s["at"] for s in kept["scrapes"]] == [_at(m).isoformat() for m in (15, 20, 25)]
    assert kept["scrapes"][-1]["workers"] == {"202": [300, 3]}


def test_realised_recall_matches_scikit_learn_on_the_labelled_rows(tmp_path: Path) -> None:
    project = open_project(tmp_path / "project", {})
    try:
        rng = np.random.default_rng(5)
        n = 400
        moments = [T0 + timedelta(seconds=3 * i) for i in range(n)]  # 20 minutes
        scores = rng.uniform(0, 1, n)
        write_log(project, moments, [10.0] * n, scores=scores.tolist())
        truth = (rng.uniform(0, 1, n) < scores).astype(int)
        labelled = rng.uniform(0, 1, n) < 0.7
        feedback = FeedbackLog.for_project(project, "loans")
        feedback.add(
            [
                FeedbackRow(f"r{i}-{moments[i].timestamp()}", 0, str(truth[i]))
                for i in np.flatnonzero(labelled)
            ]
        )
        feedback.close()
        values = measure(project, "loans", _rules("recall", "roc_auc"), now=_at(15))
        inside = labelled & (np.arange(n) >= 100) & (np.arange(n) < 300)  # [12:05, 12:15)
        assert values["rule-0"].samples == int(inside.sum())
        expected = recall_score(truth[inside], (scores[inside] >= 0.5).astype(int))
        assert values["rule-0"].value == pytest.approx(expected)
        assert values["rule-1"].value == pytest.approx(roc_auc_score(truth[inside], scores[inside]))
    finally:
        project.close()


@dataclass
class Trained:
    project: Project
    bundle: ModelBundle
    reference: pd.DataFrame
    recent: pd.DataFrame


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    """``loans@1``: a logistic regression on demo data, with later (drifted) applications."""
    project = open_project(tmp_path_factory.mktemp("trained"), {})
    frame = make_loans(2_000, recent_share=0.3, seed=11)
    reference = frame[frame["period"] == "reference"].reset_index(drop=True)
    recent = frame[frame["period"] == "recent"].reset_index(drop=True)
    dataset = add_dataset(project, "loans", reference)
    (result,) = train_candidates(project, dataset, reference, families=["logistic"])
    register_candidate(project, "loans", result)
    assert result.bundle is not None
    yield Trained(project, result.bundle, reference, recent)
    project.close()


def _logged_inputs(trained: Trained, rows: pd.DataFrame) -> dict[str, pa.Array]:
    """The inputs as the log keeps them: numbers as float64, everything else as text."""
    kinds = {f.name: f.kind for f in trained.bundle.encoder.fields}
    out = {}
    for name in trained.bundle.input_names:
        if kinds.get(name) == "number":
            out[name] = pa.array(rows[name].astype("float64"), pa.float64())
        else:
            values = [None if pd.isna(v) else str(v) for v in rows[name]]
            out[name] = pa.array(values, pa.string())
    return out


def _psi(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI over the reference's deciles (open-ended outer bins), shares floored at 1e-4."""
    reference, current = reference[np.isfinite(reference)], current[np.isfinite(current)]
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, 11)[1:-1]))
    p = np.bincount(np.searchsorted(edges, reference), minlength=len(edges) + 1) / len(reference)
    q = np.bincount(np.searchsorted(edges, current), minlength=len(edges) + 1) / len(current)
    p, q = np.where(p > 0, p, 1e-4), np.where(q > 0, q, 1e-4)
    return float(np.sum((q - p) * np.log(q / p)))


def test_drift_is_measured_against_the_training_baseline(trained: Trained) -> None:
    project, bundle, recent = trained.project, trained.bundle, trained.recent
    scores = bundle.score_frame(recent)
    moments = [T0 + timedelta(seconds=i) for i in range(len(recent))]
    write_log(
        project,
        moments,
        [5.0] * len(recent),
        inputs=_logged_inputs(trained, recent),
        scores=scores.tolist(),
    )
    rules = _rules("drift_share", "drift:income", "prediction_drift", window="1h")
    values = measure(project, "loans", rules, now=_at(30))
    assert {v.samples for v in values.values()} == {len(recent)}

    reference_scores = bundle.score_frame(trained.reference)
    assert values["rule-1"].value == pytest.approx(
        _psi(trained.reference["income"].to_numpy(float), recent["income"].to_numpy(float))
    )
    assert values["rule-2"].value == pytest.approx(_psi(reference_scores, scores))
    # the same comparison fitted on the fly from the training rows, not from the stored baseline
    features = [c for c in bundle.input_names if c not in project.spec.columns.pii]
    kinds = {f.name: f.kind for f in bundle.encoder.fields}
    reference = pa.Table.from_pandas(trained.reference[features], preserve_index=False)
    report = compare(
        reference.append_column("score", pa.array(reference_scores)),
        read_predictions(project, "loans", since=_at(-30), until=_at(30)),
        features,
        predictions=["score"],
        thresholds=project.spec.drift,
        categorical=[c for c in features if kinds.get(c) != "number"],
    )
    assert values["rule-0"].value == pytest.approx(report.drift_share)
    assert 0 < report.drift_share < 1 and "income" in report.drifted_features


def test_the_registered_baseline_leaves_pii_out(trained: Trained) -> None:
    project = trained.project
    blob = resolve(project, "loans@1").baseline_digest
    first = training_baseline(project, "loans", 1)
    assert blob is not None and json.loads(project.artifacts.get_bytes(blob)) == first.to_dict()
    assert "email" not in first.names and "score" in first.names


def test_a_feature_the_baseline_lacks_is_a_clear_error(trained: Trained) -> None:
    project = trained.project
    write_log(
        project,
        [T0 + timedelta(hours=5)],
        [1.0],
        inputs=_logged_inputs(trained, trained.recent.head(1)),
    )
    with pytest.raises(DataError, match=r"not 'salary'.*drop the rule"):
        measure(project, "loans", _rules("drift:salary"), now=T0 + timedelta(hours=5, minutes=1))


# ------------------------------------------------------------------ the commands


def _cli() -> typer.Typer:
    """``monitor run`` and ``monitor alerts`` under a ``--spec`` option, as the CLI wires them."""
    cli = typer.Typer()

    @cli.callback()
    def main(ctx: typer.Context, spec: Annotated[Path, typer.Option("--spec")]) -> None:
        ctx.obj = {"spec": spec}

    cli.command("run")(run_command)
    cli.command("alerts")(alerts_command)
    return cli


def test_the_commands_print_each_evaluation_and_the_history(
    hooked: Project, receiver: Receiver
) -> None:
    now = datetime.now(UTC)
    moments = [now - timedelta(seconds=5 * i) for i in range(1, 60)]
    write_log(hooked, moments, [SLOW] * len(moments))
    runner = CliRunner()
    spec = ["--spec", str(hooked.spec_path)]

    result = runner.invoke(_cli(), [*spec, "run", "loans", "--once"])
    assert result.exit_code == 0, result.output
    line = " ".join(result.output.split())
    assert "loans v1 slow-answers p99_latency_ms=400 (alert > 200, 10m, 59 samples)" in line
    assert "samples) FIRING → pager ✓" in line
    assert _states(receiver) == ["firing"]

    again = runner.invoke(_cli(), [*spec, "run", "loans", "--once"])
    assert "firing" in again.output and "FIRING" not in again.output  # no second page
    assert _states(receiver) == ["firing"]

    listed = runner.invoke(_cli(), [*spec, "alerts", "loans"])
    assert listed.exit_code == 0, listed.output
    assert "Open alerts of loans" in listed.output
    for cell in ("slow-answers", "p99_latency_ms", "critical", "firing", "10m", "firing→pager"):
        assert cell in listed.output, listed.output


def test_the_alerts_command_says_when_there_are_none(hooked: Project) -> None:
    result = CliRunner().invoke(_cli(), ["--spec", str(hooked.spec_path), "alerts", "loans"])
    assert result.exit_code == 0 and "No open alerts for 'loans'." in result.output
    every = CliRunner().invoke(
        _cli(), ["--spec", str(hooked.spec_path), "alerts", "loans", "--all"]
    )
    assert "No alerts for 'loans'." in every.output


def test_the_command_says_how_much_of_the_window_the_scrapes_cover(
    tmp_path: Path, receiver: Receiver
) -> None:
    rule = {"name": "errors", "metric": "error_rate", "threshold": 0.5, "min_samples": 10}
    project = open_project(tmp_path / "project", {"alerts": [{**rule, "window": "10m"}]})
    project.close()
    command = [
        "--spec",
        str(project.spec_path),
        "run",
        "loans",
        "--once",
        "--url",
        receiver.url("/"),
    ]
    runner = CliRunner()

    receiver.metrics = served_metrics(101, 100, 5)
    first = runner.invoke(_cli(), command)
    assert first.exit_code == 0, first.output
    assert "(alert > 0.5, 10m, no earlier scrape yet, 0 samples, needs 10)" in first.output

    receiver.metrics = served_metrics(101, 140, 9)
    second = " ".join(runner.invoke(_cli(), command).output.split())
    assert re.search(r"errors error_rate=0\.1 \(alert > 0\.5, 10m, \d+s of scrapes so far,", second)
    assert "40 samples) ok" in second


@pytest.mark.parametrize(
    ("span_seconds", "shown"),
    [
        (None, "(alert > 0.05, 15m, 40 samples)"),  # read from the window itself
        (0.0, "(alert > 0.05, 15m, no earlier scrape yet, 40 samples)"),
        (300.0, "(alert > 0.05, 15m, 5m of scrapes so far, 40 samples)"),
        (960.0, "(alert > 0.05, 15m, 40 samples)"),  # one run interval past the window
        (7200.0, "(alert > 0.05, 15m, measured over 2h, 40 samples)"),  # runs an hour apart
    ],
)
def test_an_evaluation_line_says_when_the_scrapes_do_not_span_the_window(
    span_seconds: float | None, shown: str
) -> None:
    rule = AlertRule(
        name="errors", metric="error_rate", threshold=0.05, window="15m", min_samples=10
    )
    measured = {"errors": Measured(0.1, 40, span_seconds)}
    step = evaluate_rules([rule], measured, {}, now=T0, cooldown_seconds=0)
    line = evaluation_line(Evaluation(step[0]))
    assert f"errors  error_rate=0.1 {shown}" in line
