"""``modelyard monitor run`` and ``modelyard monitor alerts``: evaluate alert rules, list alerts.

    modelyard monitor run loans --once                     # one evaluation of every rule
    modelyard monitor run loans --interval 60 --url http://server:8080   # until Ctrl-C
    modelyard monitor alerts loans [--all]                 # open alerts, or the whole history

``run`` prints one line per rule and evaluation: the rule, the measured value
against the threshold, and what happened (firing, resolved, suppressed by the
cool-down, …) with the channels told. ``--url`` is the inference server whose
``/metrics`` give ``error_rate``; the other metrics come from the prediction
log and the feedback. The loop stops cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from modelyard.cli._common import console, num, open_project, when

if TYPE_CHECKING:
    from modelyard.errors import ModelyardError
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
) -> None:
    """Evaluate the spec's alert rules on MODEL and notify on-call (once, or in a loop)."""
    from modelyard.monitor.runner import run_forever, run_once

    project = open_project(ctx)
    out = console()
    try:
        if not project.spec.monitoring.alerts:
            out.print(f"No alert rules in {project.spec_path} (monitoring.alerts): nothing to do.")
            return
        if once:
            print_result(run_once(project, model, metrics_url=url))
            return
        out.print(f"Monitoring '{model}' every {interval} s; Ctrl-C stops.")
        runs = run_forever(
            project, model, interval, metrics_url=url, on_result=print_result, on_error=_warn
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


def print_result(result: RunResult) -> None:
    """One line per rule: time, rule, value against threshold, samples, what happened."""
    out = console()
    version = f" v{result.version}" if result.version is not None else ""
    for evaluation in result.evaluations:
        out.print(f"{when(result.at)}  {result.model}{version}  {evaluation_line(evaluation)}")


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
        f"(alert {sign} {rule.threshold:g}, {rule.window}, {measured.samples:,} samples{needs})  "
        f"{EVENTS[step.event]}"
    )
    return f"{line} → {escape(told)}" if told else line


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
