"""The drift report as one self-contained HTML page and its JSON twin.

    write_drift_report(report, html="drift.html", json_path="drift.json")
    page = render_drift_report(report)

The JSON is ``DriftReport.to_dict()`` (format ``modelyard.drift/1``): per
column the deciding test, value, threshold and verdict, the missing rates,
every statistic, and the bin shares on both sides. The page shows the
verdict, a table of every column, and per column a bar chart of its bin
shares, reference against current, drawn as inline SVG by
``modelyard.evaluate.plots`` (nothing is fetched; user text is escaped).
Columns with more than ``MAX_BARS`` bins show the bins that moved most and
one "other" bar. Non-finite numbers are written as ``null``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, Protocol, TypeVar

from jinja2 import Environment

from modelyard.evaluate.plots import drift_plot
from modelyard.files import write_json_atomically, write_text_atomically
from modelyard.monitor.drift import DriftReport, FeatureDrift
from modelyard.pages import page_environment

__all__ = ["MAX_BARS", "render_drift_report", "write_drift_report"]

MAX_BARS = 16


class _Report(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


_ReportT = TypeVar("_ReportT", bound=_Report)


def render_drift_report(report: DriftReport) -> str:
    """The report as one HTML page."""
    template = template_environment().get_template("drift.html.j2")
    return template.render(
        report=report.to_dict(), figures=[drift_figure(f) for f in report.features]
    )


def write_drift_report(
    report: DriftReport,
    html: str | os.PathLike[str] | None = None,
    json_path: str | os.PathLike[str] | None = None,
) -> None:
    """Write the HTML page and/or the JSON twin; each file appears whole or not at all."""
    write_page_and_json(report, render_drift_report, html, json_path)


def write_page_and_json(
    report: _ReportT,
    render: Callable[[_ReportT], str],
    html: str | os.PathLike[str] | None,
    json_path: str | os.PathLike[str] | None,
) -> None:
    """``render(report)`` to ``html`` and ``report.to_dict()`` to ``json_path`` (each when
    given), each file whole or not at all: the writer of both monitor reports."""
    if json_path is not None:
        write_json_atomically(Path(json_path), report.to_dict())
    if html is not None:
        write_text_atomically(Path(html), render(report))


def drift_figure(feature: FeatureDrift) -> dict[str, Any]:
    labels, reference, current = _bars(feature)
    return {
        "feature": feature.feature,
        "plot": drift_plot(feature.feature, labels, reference, current),
    }


def _bars(feature: FeatureDrift) -> tuple[list[str], list[float], list[float]]:
    """The bins to draw: all of them, or the ``MAX_BARS - 1`` that moved most and "other"."""
    labels = list(feature.bins)
    reference, current = list(feature.shares[0]), list(feature.shares[1])
    if len(labels) <= MAX_BARS:
        return labels, reference, current
    moved = sorted(range(len(labels)), key=lambda i: -abs(current[i] - reference[i]))
    shown = sorted(moved[: MAX_BARS - 1])
    rest = moved[MAX_BARS - 1 :]
    return (
        [labels[i] for i in shown] + [f"{len(rest)} other"],
        [reference[i] for i in shown] + [sum(reference[i] for i in rest)],
        [current[i] for i in shown] + [sum(current[i] for i in rest)],
    )


@cache
def template_environment() -> Environment:
    """The one environment of the monitor's pages (this drift report and the monitoring
    report): ``monitor/templates``, autoescaped, strict, with the ``num`` and ``pct``
    filters. Both pages share the stylesheet ``_style.css.j2``."""
    return page_environment("modelyard.monitor", {"num": _number, "pct": _percent})


def _number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 1e4 or (value != 0 and abs(value) < 1e-3):
        return f"{value:.3g}"
    return f"{value:.4f}".rstrip("0").rstrip(".") if value else "0"


def _percent(value: Any) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"
