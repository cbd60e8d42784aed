"""``modelyard monitor performance`` and ``modelyard monitor health``.

    modelyard monitor performance loans --window 1d --since 7d [--segment region] \\
        [--json out.json]
    modelyard monitor health loans --url http://127.0.0.1:8080 [--window 15m]

``performance`` prints realised metrics per window (predictions joined with
the labels that arrived), label coverage and the time-to-label percentiles;
``health`` prints throughput and latency from the prediction log and, with
``--url``, errors, CPU time and memory of the server's worker processes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelyard.cli._common import console, num, open_project

if TYPE_CHECKING:
    from modelyard.monitor.health import HealthSummary
    from modelyard.monitor.performance import LabelDelay, PerformanceWindow, RealisedPerformance


def performance_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="The model whose predictions were logged.")],
    window: Annotated[str, typer.Option(help="Window length: 1h, 1d, 7d, …")] = "1d",
    since: Annotated[
        str | None,
        typer.Option(help="Only predictions after this: a duration back (7d) or a time."),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Only predictions before this (a duration back or a time).")
    ] = None,
    segment: Annotated[
        str | None, typer.Option(help="A logged input column to break the metrics down by.")
    ] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", help="A metric to report (repeatable; default: the spec's)."),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write every number as JSON here.")
    ] = None,
) -> None:
    """Realised model metrics over time windows, from logged predictions and late labels."""
    import json

    from modelyard.monitor.performance import realised_metrics

    project = open_project(ctx)
    try:
        with console().status("joining predictions and labels"):
            found = realised_metrics(
                project,
                model,
                window=window,
                since=since,
                until=until,
                segment=segment,
                metrics=metric or None,
            )
    finally:
        project.close()
    _print_performance(found)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(found.to_dict(), indent=2))
        console().print(f"Wrote the JSON to {json_out}.")


def health_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="The model the server serves.")],
    url: Annotated[
        str | None,
        typer.Option(help="The server, as http://host:port, for errors, CPU and memory."),
    ] = None,
    window: Annotated[str, typer.Option(help="How far back the log is read: 15m, 1h, …")] = "15m",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write every number as JSON here.")
    ] = None,
) -> None:
    """Throughput, latency, error rate, CPU and memory of a deployment."""
    import json

    from modelyard.monitor.health import health_summary

    project = open_project(ctx)
    try:
        summary = health_summary(project, model, window=window, metrics_url=url)
    finally:
        project.close()
    _print_health(summary)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(summary.to_dict(), indent=2))
        console().print(f"Wrote the JSON to {json_out}.")


# ---------------------------------------------------------------- printing


def _print_performance(found: RealisedPerformance) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = console()
    title = f"Realised performance of {escape(found.model)} ({found.facts.task})"
    table = Table(title=title)
    for column in ("window", "predictions", "labelled", "coverage", *found.metrics, "label p90"):
        table.add_column(column, justify="left" if column == "window" else "right")
    for w in found.windows:
        table.add_row(_span(w), *_cells(w, found.metrics))
    if found.windows:
        table.add_row("[bold]all[/]", *_cells(found.overall, found.metrics))
    out.print(table)
    if found.segments:
        by = Table(title=f"By {escape(found.segment or '')} (whole range)")
        for column in ("value", "predictions", "labelled", "coverage", *found.metrics, "label p90"):
            by.add_column(column, justify="left" if column == "value" else "right")
        for s in found.segments:
            by.add_row(escape(s.value), *_cells(s.overall, found.metrics))
        out.print(by)
    delay = found.time_to_label
    out.print(f"Time to label: {_delay(delay)}.")
    for note in found.notes:
        out.print(escape(note))
    if not found.windows:
        out.print(f"No logged predictions of '{escape(found.model)}' in that range.")


def _span(w: PerformanceWindow) -> str:
    return w.start.strftime("%Y-%m-%d %H:%M")


def _cells(w: PerformanceWindow, names: tuple[str, ...]) -> list[str]:
    return [
        f"{w.predictions:,}",
        f"{w.labelled:,}",
        f"{w.coverage:.1%}",
        *(num(w.metrics.get(n)) for n in names),
        _seconds(w.time_to_label.p90),
    ]


def _delay(delay: LabelDelay) -> str:
    if not delay.count:
        return "no labels yet"
    return (
        f"p50 {_seconds(delay.p50)}, p90 {_seconds(delay.p90)}, max {_seconds(delay.max)} "
        f"over {delay.count:,} label(s)"
    )


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if abs(value) >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.1f} s"


def _print_health(summary: HealthSummary) -> None:
    from rich.markup import escape
    from rich.table import Table

    out = console()
    minutes = summary.window_seconds / 60
    out.print(
        f"[bold]{escape(summary.model)}[/], last {minutes:g} min of the log: "
        f"{summary.requests_per_second:.2f} requests/s, {summary.rows_per_second:.2f} rows/s; "
        f"latency p50 {num(summary.latency_p50_ms)} ms, p99 {num(summary.latency_p99_ms)} ms"
        + (f" (log sampled at {summary.sample_rate:g})" if summary.sample_rate < 1 else "")
    )
    if summary.url is None:
        out.print("Pass --url http://host:port for errors, CPU and memory from the server.")
        return
    table = Table(title=f"Workers at {escape(summary.url)} (counters since each started)")
    for column in ("pid", "version", "requests", "5xx", "4xx", "CPU s", "RSS MiB", "uptime"):
        table.add_column(column, justify="left" if column == "pid" else "right")
    for w in summary.workers:
        table.add_row(
            w.pid,
            w.version or "-",
            f"{w.requests:,}",
            f"{w.server_errors:,}",
            f"{w.client_errors:,}",
            f"{w.cpu_seconds:.1f}",
            f"{w.rss_bytes / 2**20:.0f}",
            _seconds(w.uptime_seconds),
        )
    out.print(table)
    rate = summary.error_rate
    errors = ", ".join(f"{escape(k)} {v:,}" for k, v in summary.errors_by_type.items())
    out.print(
        f"Error rate (5xx): {'-' if rate is None else f'{rate:.2%}'}; "
        f"errors by type: {errors or 'none'}."
    )
