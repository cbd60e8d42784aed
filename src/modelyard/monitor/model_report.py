"""The monitoring report of one model: what its logged predictions over a window say.

    report = build_monitor_report(project, "loans", window="7d")      # step: one sub-window a day
    report.drifted_features          # drifted over the whole window, against the training data
    [w.report.drifted_features for w in report.windows]               # ... and per sub-window
    write_monitor_report(report, html="monitor.html", json_path="monitor.json")

Over ``[now − window, now)`` of the prediction log it gathers:

- **versions served**: rows, requests, first and last answer per model version;
- **data drift** of the newest version's rows against that version's training
  baseline (``measures.training_baseline``: bins fitted on its training data),
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
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from markupsafe import Markup, escape

from modelyard.errors import DataError, InvalidInputError, NotFoundError
from modelyard.evaluate import plots
from modelyard.files import write_json_atomically, write_text_atomically
from modelyard.monitor.baseline import fit_baseline
from modelyard.monitor.drift import DriftReport, FeatureDrift, detect_drift, prediction_drift
from modelyard.monitor.health import HealthSummary, health_summary
from modelyard.monitor.measures import SCORE, training_baseline
from modelyard.monitor.performance import RealisedPerformance, realised_metrics
from modelyard.monitor.predlog import predictions_root, read_predictions
from modelyard.monitor.report import drift_figure, template_environment
from modelyard.monitor.runner import AlertRecord, alert_history
from modelyard.monitor.windows import WindowDrift, drift_over_windows
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
PredictionReference = Literal["training", "first_window"]


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
    drift = _Drift(project, model, newest, rows, step_seconds).measure()
    notes = [*drift.notes, *_left_out_notes(project, logged, versions, newest)]
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


def render_monitor_report(report: MonitorReport) -> str:
    """The report as one self-contained HTML page (inline SVG, nothing fetched, text escaped)."""
    shown = [f for f in report.drift.features if f.role == "feature"] if report.drift else []
    if report.prediction is not None:
        shown.append(report.prediction)
    template = template_environment().get_template("monitor.html.j2")
    return template.render(
        report=report.to_dict(),
        histograms=[{**drift_figure(f), "drift": f.to_dict()} for f in shown],
        over_time=_over_time(report),
        trends=_trends(report),
    )


def write_monitor_report(
    report: MonitorReport,
    html: str | os.PathLike[str] | None = None,
    json_path: str | os.PathLike[str] | None = None,
) -> None:
    """Write the HTML page and/or the JSON twin; each file appears whole or not at all."""
    if json_path is not None:
        write_json_atomically(Path(json_path), report.to_dict())
    if html is not None:
        write_text_atomically(Path(html), render_monitor_report(report))


# ---------------------------------------------------------------------- drift


@dataclass(frozen=True)
class _DriftFound:
    overall: DriftReport | None
    prediction: FeatureDrift | None
    reference: PredictionReference
    reference_label: str
    windows: tuple[WindowDrift, ...]
    notes: tuple[str, ...]


class _Drift:
    """Drift of one version's logged rows against its training baseline; the scores against
    the first sub-window's when the baseline has none (or there is no baseline)."""

    def __init__(
        self, project: Project, model: str, version: int, rows: pa.Table, step_seconds: int
    ) -> None:
        self.project, self.model, self.version = project, model, version
        self.rows, self.step, self.step_ms = rows, f"{step_seconds}s", step_seconds * 1000
        self.thresholds = project.spec.drift
        self.ref = f"{model}@{version}"

    def measure(self) -> _DriftFound:
        try:
            baseline: Baseline | None = training_baseline(self.project, self.model, self.version)
        except (NotFoundError, DataError) as exc:
            baseline, notes = None, [f"Feature drift is not measured: {exc.message}"]
        else:
            notes = []
        features = self._features(baseline) if baseline is not None else []
        training = f"{self.ref} training data"
        if baseline is not None and SCORE in baseline.names:
            overall = self._detect(baseline, features, [SCORE])
            label = f"the scores of {self.ref} on its training data"
            windows = self._windows(baseline, features, [SCORE], training)
            return _DriftFound(overall, overall.feature(SCORE), "training", label, windows, ())
        first, later, label = self._split_first()
        scores = self._windows(fit_baseline(first, [SCORE]), [], [SCORE], "first sub-window")
        prediction = None
        if later.num_rows:
            prediction = prediction_drift(
                first.column(SCORE), later.column(SCORE), thresholds=self.thresholds, name=SCORE
            )
        else:
            notes.append("Prediction drift is not measured: every prediction is in one sub-window.")
        if baseline is None or not features:
            return _DriftFound(None, prediction, "first_window", label, scores, tuple(notes))
        overall = self._detect(baseline, features, [])
        windows = _merged(self._windows(baseline, features, [], training), scores)
        return _DriftFound(overall, prediction, "first_window", label, windows, tuple(notes))

    def _features(self, baseline: Baseline) -> list[str]:
        """The baseline's features the log holds, PII left out (the log keeps it hashed)."""
        pii, logged = set(self.project.spec.columns.pii), set(self.rows.column_names)
        return [c for c in baseline.names if c != SCORE and c in logged and c not in pii]

    def _detect(
        self, baseline: Baseline, features: list[str], predictions: list[str]
    ) -> DriftReport:
        return detect_drift(
            baseline,
            self.rows,
            features,
            predictions=predictions,
            thresholds=self.thresholds,
            reference_name=f"{self.ref} training data",
            current_name=f"{self.ref} predictions",
        )

    def _windows(
        self, baseline: Baseline, columns: list[str], predictions: list[str], name: str
    ) -> tuple[WindowDrift, ...]:
        found = drift_over_windows(
            baseline,
            self.rows,
            "ts",
            columns,
            window=self.step,
            predictions=predictions,
            thresholds=self.thresholds,
            reference_name=name,
        )
        return tuple(found)

    def _split_first(self) -> tuple[pa.Table, pa.Table, str]:
        """The rows of the first sub-window, the later rows, and how to name the first."""
        ms = pc.cast(self.rows.column("ts"), pa.int64())
        begin = pc.min(ms).as_py() // self.step_ms * self.step_ms
        early = pc.less(ms, begin + self.step_ms)
        span = f"{_moment(begin):%Y-%m-%d %H:%M}–{_moment(begin + self.step_ms):%Y-%m-%d %H:%M}"
        label = f"the scores of the first sub-window ({span} UTC)"
        return self.rows.filter(early), self.rows.filter(pc.invert(early)), label


def _merged(
    features: tuple[WindowDrift, ...], scores: tuple[WindowDrift, ...]
) -> tuple[WindowDrift, ...]:
    """Feature windows with the score column of the same sub-window added."""
    by_start = {w.start: w.report.features for w in scores}
    merged = []
    for w in features:
        r = w.report
        columns = (*r.features, *by_start.get(w.start, ()))
        report = DriftReport(r.reference, r.current, r.rows, columns, r.thresholds, r.skipped)
        merged.append(WindowDrift(w.start, w.end, report))
    return tuple(merged)


# ---------------------------------------------------------------------- the page


def _over_time(report: MonitorReport) -> dict[str, Any]:
    """Drift per column and sub-window: the deciding test's value and verdict, or None."""
    names: list[str] = []
    for w in report.windows:
        names += [f.feature for f in w.report.features if f.feature not in names]
    rows = []
    for name in names:
        cells = []
        for w in report.windows:
            found = next((f for f in w.report.features if f.feature == name), None)
            cells.append(None if found is None else found.to_dict())
        rows.append({"feature": name, "prediction": name == SCORE, "cells": cells})
    labels = [_when(w.start, report.step_seconds) for w in report.windows]
    return {"labels": labels, "rows": [w.rows for w in report.windows], "columns": rows}


def _trends(report: MonitorReport) -> list[Markup]:
    """Line plots: drift share and score PSI per sub-window; each realised metric and coverage."""
    labels = [_tick(w.start, report.step_seconds) for w in report.windows]
    plots = []
    if report.drift is not None:
        shares = [w.report.drift_share for w in report.windows]
        limit = ("data set limit", report.thresholds.dataset_share)
        plots.append(
            _trend_plot(
                "Share of features drifted",
                labels,
                [("drifted", shares)],
                limits=[limit],
                unit=True,
            )
        )
    psi = [_score_psi(w.report) for w in report.windows]
    if any(v is not None for v in psi):
        limits = [("warn", report.thresholds.psi_warn), ("alert", report.thresholds.psi)]
        plots.append(
            _trend_plot(
                "Prediction drift (PSI of the score)", labels, [("PSI", psi)], limits=limits
            )
        )
    found = report.performance
    times = [_tick(w.start, report.step_seconds) for w in found.windows]
    for metric in found.metrics:
        values = [w.metrics.get(metric) for w in found.windows]
        if any(v is not None for v in values):
            goal = [("goal", report.goals[metric])] if metric in report.goals else []
            plots.append(_trend_plot(f"Realised {metric}", times, [(metric, values)], limits=goal))
    if found.windows:
        coverage = [w.coverage for w in found.windows]
        plots.append(_trend_plot("Label coverage", times, [("labelled", coverage)], unit=True))
    return plots


def _score_psi(report: DriftReport) -> float | None:
    for f in report.features:
        if f.role == "prediction":
            return f.statistics.get("psi")
    return None


def _when(moment: datetime, step_seconds: int) -> str:
    return f"{moment:%Y-%m-%d}" if step_seconds % 86_400 == 0 else f"{moment:%Y-%m-%d %H:%M}"


def _tick(moment: datetime, step_seconds: int) -> str:
    return f"{moment:%m-%d}" if step_seconds % 86_400 == 0 else f"{moment:%m-%d %H:%M}"


_WIDTH, _HEIGHT, _LEFT, _RIGHT, _TOP, _BOTTOM = 440, 240, 56, 18, 28, 46
_LIMIT_COLOURS = (plots.MUTED, plots.RED)


def _trend_plot(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    limits: Sequence[tuple[str, float]] = (),
    unit: bool = False,
) -> Markup:
    """One value per sub-window as a line with dots (a gap where it is None); dashed
    horizontal ``limits``. ``unit`` fixes the scale to [0, 1]."""
    values = [v for _, vs in series for v in vs if v is not None and math.isfinite(v)]
    low = 0.0 if unit else min([0.0, *values])
    high = 1.0 if unit else (max([*values, *(v for _, v in limits)], default=1.0) * 1.1 or 1.0)
    n = max(len(labels), 1)
    inner_w, inner_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM

    def px(i: int) -> float:
        return _LEFT + (i + 0.5) / n * inner_w

    def py(v: float) -> float:
        return _TOP + inner_h - (v - low) / ((high - low) or 1.0) * inner_h

    parts = [_text(_LEFT, 16, title, "start", plots.INK)]
    for t in plots.ticks(low, high):
        parts.append(_line(_LEFT, py(t), _WIDTH - _RIGHT, py(t), plots.GRID))
        parts.append(_text(_LEFT - 6, py(t) + 4, plots.tick_label(t), "end"))
    widest = 6.6 * max((len(label) for label in labels), default=1) + 12
    every = math.ceil(len(labels) / max(int(inner_w // widest), 1))
    for i, label in enumerate(labels):
        if i % every == 0:
            parts.append(_text(px(i), _TOP + inner_h + 16, label, "middle"))
    parts.append(
        f'<rect x="{_LEFT}" y="{_TOP}" width="{inner_w}" height="{inner_h}" fill="none" '
        f'stroke="{plots.MUTED}" stroke-width="1"/>'
    )
    for (name, value), colour in zip(limits, _LIMIT_COLOURS, strict=False):
        parts.append(_line(_LEFT, py(value), _WIDTH - _RIGHT, py(value), colour, dashed=True))
        parts.append(_text(_WIDTH - _RIGHT - 4, py(value) - 4, f"{name} {value:g}", "end"))
    for name, vs in series:
        parts += _series(name, vs, px, py)
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot trend" role="img" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}" width="{_WIDTH}" height="{_HEIGHT}">'
        f"<title>{escape(title)}</title>{''.join(parts)}</svg>"
    )


def _series(
    name: str,
    values: Sequence[float | None],
    px: Callable[[int], float],
    py: Callable[[float], float],
) -> list[str]:
    parts, run = [], []
    for i, v in enumerate([*values, None]):
        if v is not None and math.isfinite(v):
            run.append(f"{px(i):.1f},{py(v):.1f}")
            parts.append(
                f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="3" fill="{plots.BLUE}">'
                f"<title>{escape(f'{name}: {v:.4g}')}</title></circle>"
            )
            continue
        if len(run) > 1:
            parts.append(
                f'<polyline points="{" ".join(run)}" fill="none" stroke="{plots.BLUE}" '
                'stroke-width="2" stroke-linejoin="round"/>'
            )
        run = []
    return parts


def _line(x1: float, y1: float, x2: float, y2: float, colour: str, *, dashed: bool = False) -> str:
    dash = ' stroke-dasharray="4 3"' if dashed else ""
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" '
        f'stroke-width="1"{dash}/>'
    )


def _text(x: float, y: float, text: str, anchor: str, colour: str = plots.MUTED) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{colour}" '
        f"{plots.FONT}>{escape(text)}</text>"
    )


# ---------------------------------------------------------------------- helpers


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


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
