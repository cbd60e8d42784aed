"""``modelyard monitor run`` and ``modelyard monitor alerts``: evaluate alert rules, list alerts.

    modelyard monitor run loans --once                     # one evaluation of every rule
    modelyard monitor run loans --interval 60 --url http://server:8080   # until Ctrl-C
    modelyard monitor run loans --once --json run.json     # the evaluation as JSON too
    modelyard monitor alerts loans [--all]                 # open alerts, or the whole history

``run`` prints one line per rule and evaluation: the rule, the measured value
against the threshold, and what happened (firing, resolved, suppressed by the
cool-down, …) with the channels told. ``--url`` is the inference server whose
``/metrics`` give ``error_rate`` (over the window since an earlier run's
scrape; until the monitor has run for a window, the line says how much time
it covers); the other metrics come from the prediction log and the feedback.
Each run also deletes the log files past ``monitoring.log.retention`` and
says so when it did. The loop stops cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelyard.cli._common import console, num, open_project, when

if TYPE_CHECKING:
    from modelyard.errors import ModelyardError
    from modelyard.monitor.alerts import Transition
    from modelyard.monitor.runner import AlertRecord, Evaluation, RunResult

EVENTS = {
    "firing": "[bold red]FIRING[/]",
    "still_firing": "[red]firing[/]",
    "resolved": "[bold green]RESOLVED[/]",
    "suppressed": "[yellow]suppressed (cool-down)[/]",
    "still_suppressed": "[yellow]suppressed (cool-down)[/]",
    "cleared": "[green]ok (cleared)[/]",
    "ok": "[green]ok[/]",
    "not_judged": "[dim]not judged[/]",
}
#: The history's columns; names and states are never cut (the times wrap instead).
HISTORY_COLUMNS = (
    ("started", False),
    ("rule", True),
    ("metric", True),
    ("severity", True),
    ("state", True),
    ("value", True),
    ("alert when", False),
    ("resolved", False),
    ("notified", True),
)


def run_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="The model's registered name.")],
    once: Annotated[
        bool, typer.Option("--once", help="Evaluate once and exit (default: loop).")
    ] = False,
    interval: Annotated[
        int, typer.Option("--interval", min=1, help="Seconds between evaluations in a loop.")
    ] = 60,
    url: Annotated[
        str | None,
        typer.Option(
            "--url", help="The inference server to read error_rate from, http://host:port."
        ),
    ] = None,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Write each evaluation as JSON here (the latest one)."),
    ] = None,
) -> None:
    """Evaluate the spec's alert rules on MODEL and notify on-call (once, or in a loop)."""
    from modelyard.files import write_json_atomically
    from modelyard.monitor.runner import run_forever, run_once

    project = open_project(ctx)
    out = console()
    retention = project.spec.monitoring.log.retention

    def report(result: RunResult) -> None:
        print_result(result, retention)
        if json_out is not None:
            write_json_atomically(json_out, result.to_dict(), make_parents=True)

    try:
        if not project.spec.monitoring.alerts:
            out.print(f"No alert rules in {project.spec_path} (monitoring.alerts): nothing to do.")
            return
        if once:
            report(run_once(project, model, metrics_url=url))
            return
        out.print(f"Monitoring '{model}' every {interval} s; Ctrl-C stops.")
        runs = run_forever(
            project, model, interval, metrics_url=url, on_result=report, on_error=_warn
        )
        out.print(f"Stopped after {runs} evaluation{'s' if runs != 1 else ''}.")
    finally:
        project.close()


def alerts_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="The model's registered name.")],
    show_all: Annotated[
        bool, typer.Option("--all", help="Every alert, resolved ones too (default: open ones).")
    ] = False,
) -> None:
    """List MODEL's open alerts, or its whole alert history (newest first)."""
    from modelyard.monitor.runner import alert_history

    project = open_project(ctx)
    try:
        found = alert_history(project, model, include_closed=show_all)
    finally:
        project.close()
    if not found:
        which = "alerts" if show_all else "open alerts"
        console().print(f"No {which} for '{model}'.")
        return
    _history_table(f"Alerts of {model}" if show_all else f"Open alerts of {model}", found)


def print_result(result: RunResult, retention: str | None = None) -> None:
    """One line per rule: time, rule, value against threshold, samples, what happened;
    and one for the log files the retention removed, if any."""
    out = console()
    version = f" v{result.version}" if result.version is not None else ""
    for evaluation in result.evaluations:
        out.print(f"{when(result.at)}  {result.model}{version}  {evaluation_line(evaluation)}")
    if result.removed_files:
        files = f"{result.removed_files:,} log file{'s' if result.removed_files != 1 else ''}"
        past = f" older than the {retention} retention" if retention else " past the retention"
        out.print(f"{when(result.at)}  {result.model}  removed {files}{past}")


def evaluation_line(evaluation: Evaluation) -> str:
    from rich.markup import escape

    step = evaluation.transition
    rule, measured = step.rule, step.measured
    sign = ">" if rule.direction == "above" else "<"
    told = ", ".join(
        f"{d.channel} ✓" if d.ok else f"{d.channel} ✗ ({d.error})" for d in evaluation.deliveries
    )
    if step.notifies and not evaluation.deliveries:
        told = f"nobody on call for {rule.severity}"
    needs = f", needs {rule.min_samples:,}" if step.event == "not_judged" else ""
    line = (
        f"{escape(rule.name)}  {escape(rule.metric)}={num(measured.value)} "
        f"(alert {sign} {rule.threshold:g}, {rule.window}{_covered(step)}, "
        f"{measured.samples:,} samples{needs})  {EVENTS[step.event]}"
    )
    return f"{line} → {escape(told)}" if told else line


def _covered(step: Transition) -> str:
    """For a value measured between kept scrapes, the time they span when it is not about
    the window: a history still shorter than it, or runs further apart than it."""
    from modelyard.spec import parse_duration

    span, window = step.measured.span_seconds, parse_duration(step.rule.window)
    if span is None or window <= span < 2 * window:
        return ""
    if span == 0:
        return ", no earlier scrape yet"
    shown = _duration(max(1, round(span)))
    return f", {shown} of scrapes so far" if span < window else f", measured over {shown}"


def _warn(error: ModelyardError) -> None:
    from rich.markup import escape

    console().print(f"[yellow]warning:[/] this evaluation failed: {escape(error.message)}")


def _history_table(title: str, alerts: list[AlertRecord]) -> None:
    from rich.markup import escape
    from rich.table import Table

    shown = Table(title=escape(title))
    for name, no_wrap in HISTORY_COLUMNS:
        shown.add_column(name, no_wrap=no_wrap)
    for alert in alerts:
        shown.add_row(*(escape(cell) for cell in _history_row(alert)))
    console().print(shown)


def _history_row(alert: AlertRecord) -> tuple[str, ...]:
    sent = [n for n in alert.notifications if n.get("ok")]
    failed = len(alert.notifications) - len(sent)
    notified = ", ".join(f"{n['event']}→{n['channel']}" for n in sent) or "-"
    sign = ">" if alert.direction == "above" else "<"
    return (
        when(alert.started_at),
        alert.rule,
        alert.metric,
        alert.severity,
        alert.state,
        num(alert.value),
        f"{sign} {alert.threshold:g} over {_duration(alert.window_seconds)}",
        when(alert.resolved_at),
        notified + (f" ({failed} failed)" if failed else ""),
    )


def _duration(seconds: int) -> str:
    """Seconds as the spec writes them: 600 → 10m."""
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
