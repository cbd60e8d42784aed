"""``modelyard monitor …``: drift between data set versions, and model monitoring.

    modelyard monitor drift --reference loans@1 --current loans@2 --json drift.json \\
        --report drift.html [--fail-on-drift]

``monitor drift`` exits 0 whether or not drift is found, unless
``--fail-on-drift`` is given: then it exits 1 when a column drifted, for CI
checks. Bad input (an unknown version or column) exits 2, as every command does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelyard.cli._common import console, open_project, sub_app
from modelyard.cli.monitor_log import log_command
from modelyard.cli.monitor_performance import health_command, performance_command
from modelyard.cli.monitor_report import report_command
from modelyard.cli.monitor_run import alerts_command, run_command
from modelyard.errors import InvalidInputError

if TYPE_CHECKING:
    from modelyard.monitor.drift import DriftReport

monitor_app = sub_app("Monitor models: drift, realised performance, alerts.")


@monitor_app.command("drift")
def monitor_drift(
    ctx: typer.Context,
    reference: Annotated[
        str, typer.Option("--reference", help="The baseline data set version, NAME@V.")
    ],
    current: Annotated[
        str, typer.Option("--current", help="The data set version to check, NAME@V.")
    ],
    columns: Annotated[
        list[str] | None,
        typer.Option(
            "--columns",
            help="Columns to compare, comma-separated or repeated (default: the reference's "
            "feature columns of a number, boolean or category type).",
        ),
    ] = None,
    tests: Annotated[
        list[str] | None,
        typer.Option(
            "--test",
            help="COLUMN=TEST to pick a column's test: ks, chi2, wasserstein, jensenshannon "
            "or psi (repeatable; default: by column type and sample size).",
        ),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the report as JSON here.")
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the HTML report (self-contained) here.")
    ] = None,
    fail_on_drift: Annotated[
        bool,
        typer.Option(
            "--fail-on-drift", help="Exit with code 1 when any column drifted (for CI checks)."
        ),
    ] = False,
) -> None:
    """Compare two data set versions column by column, with the spec's drift thresholds.

    Prints each column's test, value, threshold, verdict and missing-rate
    change. Exits 0 whether or not drift is found, unless --fail-on-drift is
    given (then 1 when a column drifted); bad input exits 2.
    """
    from modelyard.monitor.drift import compare_versions
    from modelyard.monitor.report import write_drift_report

    project = open_project(ctx)
    chosen = _columns(columns)
    picked = _tests(tests or [])
    out = console()
    with out.status("comparing") as status:
        found = compare_versions(
            project,
            reference,
            current,
            chosen,
            tests=picked,
            progress=lambda name: status.update(f"compared {name}"),
        )
    write_drift_report(found, html=report, json_path=json_out)
    _print(found)
    for path, what in ((json_out, "JSON"), (report, "HTML report")):
        if path is not None:
            out.print(f"Wrote the {what} to {path}.")
    if fail_on_drift and any(f.drifted for f in found.features):
        raise typer.Exit(1)


def _columns(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _tests(values: list[str]) -> dict[str, str]:
    picked = {}
    for value in values:
        column, sep, test = value.partition("=")
        if not sep or not column.strip() or not test.strip():
            raise InvalidInputError(
                f"--test takes COLUMN=TEST, as in --test income=psi; got {value!r}."
            )
        picked[column.strip()] = test.strip()
    return picked


def _print(found: DriftReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"Drift of {escape(found.current)} against {escape(found.reference)}")
    for name in ("feature", "test", "value", "threshold", "drifted", "missing-rate change"):
        table.add_column(name, justify="right" if name in ("value", "threshold") else "left")
    for f in found.features:
        verdict = "[red]values[/]" if f.distribution_drifted else "[green]no[/]"
        if f.missing_drifted:
            verdict = "[red]values + missing[/]" if f.distribution_drifted else "[red]missing[/]"
        name = escape(f.feature) + (" (prediction)" if f.role == "prediction" else "")
        change = f"{round(100 * f.missing_change, 1) + 0.0:+.1f} pts"  # no "-0.0"
        missing = f"{f.missing_reference:.1%} → {f.missing_current:.1%} ({change})"
        table.add_row(name, f.test or "-", _number(f.value), _number(f.threshold), verdict, missing)
    out = console()
    out.print(table)
    drifted = found.drifted_features
    share = f"{len(drifted)} of {sum(f.role == 'feature' for f in found.features)} features"
    if found.dataset_drifted:
        out.print(f"[red]Data set drifted:[/] {share} ({', '.join(map(escape, drifted))}).")
    elif drifted:
        out.print(f"[yellow]Some drift:[/] {share} ({', '.join(map(escape, drifted))}).")
    else:
        out.print(f"[green]No drift[/] in {share.split(' of ')[1]}.")
    for column, reason in found.skipped:
        out.print(f"Not compared: {escape(column)} ({escape(reason)}).")


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return (
        f"{value:.3g}"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e4)
        else f"{value:.4f}"
    )


monitor_app.command("performance")(performance_command)
monitor_app.command("health")(health_command)
monitor_app.command("run")(run_command)
monitor_app.command("alerts")(alerts_command)
monitor_app.command("report")(report_command)
monitor_app.command("log")(log_command)
