"""The monitoring report as one self-contained HTML page (``monitor.html.j2``).

The page shows ``MonitorReport.to_dict()`` and adds what only it needs: a histogram per
compared column (``monitor.report.drift_figure``), the drift-over-time table and the trend plots.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from modelyard.monitor.drift import DriftReport
from modelyard.monitor.report import drift_figure, template_environment
from modelyard.monitor.training_baseline import SCORE
from modelyard.monitor.trend_plot import trend_plot

if TYPE_CHECKING:
    from modelyard.monitor.model_report import MonitorReport


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
            trend_plot(
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
            trend_plot("Prediction drift (PSI of the score)", labels, [("PSI", psi)], limits=limits)
        )
    found = report.performance
    times = [_tick(w.start, report.step_seconds) for w in found.windows]
    for metric in found.metrics:
        values = [w.metrics.get(metric) for w in found.windows]
        if any(v is not None for v in values):
            goal = [("goal", report.goals[metric])] if metric in report.goals else []
            plots.append(trend_plot(f"Realised {metric}", times, [(metric, values)], limits=goal))
    if found.windows:
        coverage = [w.coverage for w in found.windows]
        plots.append(trend_plot("Label coverage", times, [("labelled", coverage)], unit=True))
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
