"""The monitoring report of one model: what its logged predictions over a window say.

    report = build_monitor_report(project, "loans", window="7d")      # step: one sub-window a day
    report.drifted_features          # drifted over the whole window, against the training data
    [w.report.drifted_features for w in report.windows]               # ... and per sub-window
    write_monitor_report(report, html="monitor.html", json_path="monitor.json")

Over ``[now − window, now)`` of the prediction log it gathers:

- **versions served**: rows, requests, first and last answer per model version;
- **data drift** of the newest version's rows against that version's training
  baseline (``training_baseline``: stored with the version at registration),
  per feature the deciding test, value, threshold, verdict, missing-rate
  change and the bin shares on both sides (the page's histograms). Rows of
  older versions are left out: each version has its own baseline;
- **prediction drift**: the logged ``score`` against the training data's
  scores; when the baseline has no scores, or there is no baseline (an
  unregistered or imported model), the later scores against those of the
  first sub-window, which the report says;
- **drift over time**: the same comparison per tumbling sub-window of
  ``step`` (default one day, at most the window), starting at multiples of the
  step from 1970-01-01 UTC, so daily ones start at midnight UTC and the first
  and last may be partial;
- **realised performance** per sub-window from the labels that arrived
  (``performance.realised_metrics``), with label coverage and time to label;
- **system health** from the log (``health.health_summary``: throughput,
  latency p50 / p99) and the **open alerts** (``runner.alert_history``).
  Performance and health cover the rows of every version.

PII columns (the spec's ``columns.pii``) are never compared nor shown: the log
holds them hashed or not at all. ``MonitorReport.to_dict()`` is the JSON twin
(format ``modelyard.monitor-report/1``) and holds every number the page shows.

The drift comparisons live in ``monitor.version_drift``, the page in
``monitor.model_report_page`` (its trend plots in ``monitor.trend_plot``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from modelyard.errors import DataError, InvalidInputError, NotFoundError
from modelyard.monitor.drift import DriftReport, FeatureDrift
from modelyard.monitor.health import HealthSummary, health_summary
from modelyard.monitor.log_files import predictions_root, read_predictions
from modelyard.monitor.model_report_page import render_monitor_report
from modelyard.monitor.performance import RealisedPerformance, realised_metrics
from modelyard.monitor.report import write_page_and_json
from modelyard.monitor.runner import AlertRecord, alert_history
from modelyard.monitor.training_baseline import training_baseline
from modelyard.monitor.version_drift import PredictionReference, VersionComparison
from modelyard.monitor.windows import WindowDrift
from modelyard.spec import DriftThresholds, parse_duration

if TYPE_CHECKING:
    from modelyard.monitor.baseline import Baseline
    from modelyard.project import Project

__all__ = [
    "DEFAULT_STEP",
    "FORMAT",
    "MonitorReport",
    "ServedVersion",
    "build_monitor_report",
    "render_monitor_report",
    "write_monitor_report",
]

FORMAT = "modelyard.monitor-report/1"
DEFAULT_STEP = "1d"


@dataclass(frozen=True)
class ServedVersion:
    """One model version's share of the window: rows, requests, first and last answer."""

    version: int
    rows: int
    requests: int
    first: datetime
    last: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "rows": self.rows,
            "requests": self.requests,
            "first": self.first.isoformat(),
            "last": self.last.isoformat(),
        }


@dataclass(frozen=True)
class MonitorReport:
    """Everything the monitoring report of ``model`` over ``[start, end)`` shows."""

    model: str
    start: datetime
    end: datetime
    step_seconds: int
    thresholds: DriftThresholds
    versions: tuple[ServedVersion, ...]
    drift_version: int
    drift: DriftReport | None
    prediction: FeatureDrift | None
    prediction_reference: PredictionReference
    prediction_reference_label: str
    windows: tuple[WindowDrift, ...]
    performance: RealisedPerformance
    health: HealthSummary
    alerts: tuple[AlertRecord, ...]
    goals: dict[str, float] = field(default_factory=dict)  # the spec's metric thresholds
    notes: tuple[str, ...] = ()

    @property
    def window_seconds(self) -> int:
        return int((self.end - self.start).total_seconds())

    @property
    def drifted_features(self) -> list[str]:
        """Features drifted over the whole window (empty when drift was not measured)."""
        return self.drift.drifted_features if self.drift is not None else []

    def to_dict(self) -> dict[str, Any]:
        """Every number, JSON-ready (times in ISO 8601, undefined values as null)."""
        return {
            "format": FORMAT,
            "model": self.model,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "window_seconds": self.window_seconds,
            "step_seconds": self.step_seconds,
            "versions": [v.to_dict() for v in self.versions],
            "drift": {
                "version": self.drift_version,
                "drifted_features": self.drifted_features,
                "report": self.drift.to_dict() if self.drift is not None else None,
            },
            "prediction_drift": {
                "reference": self.prediction_reference,
                "reference_label": self.prediction_reference_label,
                "result": self.prediction.to_dict() if self.prediction is not None else None,
            },
            "drift_over_time": [w.to_dict() for w in self.windows],
            "performance": self.performance.to_dict(),
            "performance_goals": dict(self.goals),
            "health": self.health.to_dict(),
            "alerts": [_alert_dict(a) for a in self.alerts],
            "notes": list(self.notes),
        }


def build_monitor_report(
    project: Project,
    model: str,
    *,
    window: str = "7d",
    step: str | None = None,
    now: datetime | None = None,
) -> MonitorReport:
    """The monitoring report of ``model`` over the last ``window`` (see the module docstring)."""
    if not model or "@" in model:
        raise InvalidInputError(
            f"Report on a model by its name (e.g. 'loans'), not {model!r}: the versions "
            "are the ones the prediction log shows."
        )
    seconds, step_seconds = _durations(window, step)
    end = _utc(now or datetime.now(UTC))
    start = end - timedelta(seconds=seconds)
    logged = read_predictions(project, model, since=start, until=end)
    if logged.num_rows == 0:
        raise NotFoundError(
            f"No predictions of '{model}' were logged between {start:%Y-%m-%d %H:%M} and "
            f"{end:%Y-%m-%d %H:%M} UTC (log: {predictions_root(project) / model}). Check the "
            "model's name and that its server logs predictions (monitoring.log.enabled in "
            "the spec), or widen --window."
        )
    versions = _versions(logged)
    if not versions:
        raise DataError(
            f"The prediction log of '{model}' has rows without a model version; it was not "
            "written by a modelyard server. Move those segments away."
        )
    newest = versions[-1].version
    rows = logged.filter(pc.equal(logged.column("version"), newest))
    baseline, missing = _baseline(project, model, newest)
    drift = VersionComparison(project, model, newest, rows, step_seconds, baseline).measure()
    notes = [*missing, *drift.notes, *_left_out_notes(project, logged, versions, newest)]
    return MonitorReport(
        model=model,
        start=start,
        end=end,
        step_seconds=step_seconds,
        thresholds=project.spec.drift,
        versions=versions,
        drift_version=newest,
        drift=drift.overall,
        prediction=drift.prediction,
        prediction_reference=drift.reference,
        prediction_reference_label=drift.reference_label,
        windows=drift.windows,
        performance=realised_metrics(
            project, model, window=f"{step_seconds}s", since=start, until=end
        ),
        health=health_summary(project, model, window=f"{seconds}s", now=end),
        alerts=tuple(alert_history(project, model)),
        goals={g.name: float(g.threshold) for g in project.spec.metrics if g.threshold is not None},
        notes=tuple(notes),
    )


def write_monitor_report(
    report: MonitorReport,
    html: str | os.PathLike[str] | None = None,
    json_path: str | os.PathLike[str] | None = None,
) -> None:
    """Write the HTML page and/or the JSON twin; each file appears whole or not at all."""
    write_page_and_json(report, render_monitor_report, html, json_path)


# ---------------------------------------------------------------------- helpers


def _baseline(project: Project, model: str, version: int) -> tuple[Baseline | None, list[str]]:
    """The version's training baseline, or None and a note that says why there is none."""
    try:
        return training_baseline(project, model, version), []
    except (NotFoundError, DataError) as exc:
        return None, [f"Feature drift is not measured: {exc.message}"]


def _durations(window: str, step: str | None) -> tuple[int, int]:
    try:
        seconds = parse_duration(window)
        step_seconds = parse_duration(step) if step else min(parse_duration(DEFAULT_STEP), seconds)
    except ValueError as exc:
        raise InvalidInputError(f"The report's window or step {exc}.") from None
    if step_seconds > seconds:
        raise InvalidInputError(
            f"The step ({step}) is longer than the window ({window}); use a step at most as "
            "long as the window, such as --window 7d --step 1d."
        )
    return seconds, step_seconds


def _versions(logged: pa.Table) -> tuple[ServedVersion, ...]:
    grouped = logged.group_by("version").aggregate(
        [("ts", "count"), ("request_id", "count_distinct"), ("ts", "min"), ("ts", "max")]
    )
    found = [
        ServedVersion(
            int(g["version"]),
            g["ts_count"],
            g["request_id_count_distinct"],
            g["ts_min"],
            g["ts_max"],
        )
        for g in grouped.to_pylist()
        if g["version"] is not None
    ]
    return tuple(sorted(found, key=lambda v: v.version))


def _left_out_notes(
    project: Project, logged: pa.Table, versions: tuple[ServedVersion, ...], newest: int
) -> list[str]:
    notes = []
    older = [v for v in versions if v.version != newest]
    if older:
        rows = sum(v.rows for v in older)
        which = ", ".join(f"v{v.version}" for v in older)
        notes.append(
            f"Drift compares the rows of v{newest} only; the {rows:,} rows of {which} are left "
            "out (each version has its own training baseline)."
        )
    pii = [c for c in project.spec.columns.pii if c in logged.column_names]
    if pii:
        notes.append(f"PII columns are left out: {', '.join(pii)}.")
    return notes


def _alert_dict(alert: AlertRecord) -> dict[str, Any]:
    return {
        "id": alert.id,
        "rule": alert.rule,
        "metric": alert.metric,
        "severity": alert.severity,
        "state": alert.state,
        "version": alert.version,
        "value": alert.value,
        "threshold": alert.threshold,
        "direction": alert.direction,
        "window_seconds": alert.window_seconds,
        "started_at": alert.started_at.isoformat(),
        "last_evaluated_at": alert.last_evaluated_at.isoformat(),
    }


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
