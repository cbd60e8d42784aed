"""``modelyard monitor report``: the monitoring report of a model as HTML and JSON.

    modelyard monitor report loans --window 7d [--step 1d] --out report.html [--json out.json]

Prints a short summary (versions served, drifted features over the window
and in the last sub-window, prediction drift, the realised metric's trend,
open alerts) and where the files are. No predictions logged in the window
is an error (exit 2), as every bad input is.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelyard.cli._common import console, num, open_project
from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    from modelyard.monitor.model_report import MonitorReport


def report_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="The model whose predictions were logged.")],
    out: Annotated[Path, typer.Option("--out", help="Write the HTML report here.")],
    window: Annotated[str, typer.Option(help="How far back the log is read: 1d, 7d, 2w, …")] = "7d",
    step: Annotated[
        str | None,
        typer.Option(help="Sub-window length for drift and metrics over time (default 1d)."),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write every number as JSON here.")
    ] = None,
) -> None:
    """Drift per feature (histograms, over time), realised performance, health and alerts."""
    from modelyard.monitor.model_report import build_monitor_report, write_monitor_report

    for path in (out, json_out):
        if path is not None and not path.parent.is_dir():
            raise InvalidInputError(
                f"Cannot write {path}: the folder {path.parent} does not exist. Create it, or "
                "write the report elsewhere."
            )
    project = open_project(ctx)
    try:
        with console().status(f"reading the prediction log of {model}"):
            found = build_monitor_report(project, model, window=window, step=step)
    finally:
        project.close()
    write_monitor_report(found, html=out, json_path=json_out)
    _print(found)
    for path, what in ((out, "HTML report"), (json_out, "JSON")):
        if path is not None:
            console().print(f"Wrote the {what} to {path}.")


def _print(found: MonitorReport) -> None:
    from rich.markup import escape

    out = console()
    versions = ", ".join(f"v{v.version} ({v.rows:,} rows)" for v in found.versions)
    out.print(
        f"[bold]{escape(found.model)}[/], {found.start:%Y-%m-%d %H:%M} to "
        f"{found.end:%Y-%m-%d %H:%M} UTC: {versions}."
    )
    out.print(_drift_line(found))
    if found.windows:
        last = found.windows[-1]
        drifted = last.report.drifted_features
        names = ", ".join(map(escape, drifted)) if drifted else "none"
        out.print(f"Drifted in the last sub-window ({last.start:%Y-%m-%d %H:%M}): {names}.")
    if found.prediction is not None:
        verdict = "[red]drifted[/]" if found.prediction.drifted else "[green]no drift[/]"
        psi = found.prediction.statistics.get("psi")
        out.print(
            f"Predictions: {verdict} (PSI {num(psi)}) against {found.prediction_reference_label}."
        )
    out.print(_metric_line(found))
    alerts = len(found.alerts)
    out.print(f"[red]{alerts} open alert(s).[/]" if alerts else "No open alerts.")
    for note in found.notes:
        out.print(escape(note))


def _drift_line(found: MonitorReport) -> str:
    from rich.markup import escape

    if found.drift is None:
        return "[yellow]Feature drift not measured[/] (no training baseline)."
    drifted = found.drift.drifted_features
    count = sum(f.role == "feature" for f in found.drift.features)
    if not drifted:
        return f"[green]No drift[/] in {count} features over the window."
    names = ", ".join(map(escape, drifted))
    return f"[red]Drifted[/] over the window: {len(drifted)} of {count} features ({names})."


def _metric_line(found: MonitorReport) -> str:
    """The first metric's value in the first and last sub-windows that have one."""
    performance = found.performance
    if not performance.metrics:
        return "No realised metric for this model."
    metric = performance.metrics[0]
    values = [
        (w.start, w.metrics[metric])
        for w in performance.windows
        if w.metrics.get(metric) is not None
    ]
    coverage = f"label coverage {performance.overall.coverage:.1%}"
    if not values:
        return f"Realised {metric}: no labelled sub-window yet ({coverage})."
    (first_at, first), (last_at, last) = values[0], values[-1]
    return (
        f"Realised {metric}: {num(first)} ({first_at:%m-%d}) → {num(last)} ({last_at:%m-%d}); "
        f"{coverage}."
    )
