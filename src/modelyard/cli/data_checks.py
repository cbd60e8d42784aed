"""``modelyard data check NAME@V``: split a dataset version and check it for leakage.

Registers the ``check`` command on ``data_app``; ``modelyard.cli`` imports this
module so that the command exists. Exits 1 when any finding is an error, so the
command can gate CI.
"""

from __future__ import annotations

from typing import Annotated

import typer

from modelyard.cli._common import console, open_project, table
from modelyard.cli.data import data_app

SPLIT_HELP = "random | stratified | grouped | time (default: grouped with columns.group, "
SPLIT_HELP += "else stratified for classification, else random)"
OVERLAP_HELP = "Share of a part's rows that may repeat another part's (rows, near-copies, "
OVERLAP_HELP += "groups) as a warning; above it, an error. Default 0: any repeat is an error."
SEVERITY_STYLE = {"error": "[red]error[/]", "warning": "[yellow]warning[/]"}


@data_app.command("check")
def data_check(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME or NAME@V")],
    split: Annotated[str | None, typer.Option("--split", help=SPLIT_HELP)] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split.")] = 42,
    max_overlap: Annotated[float, typer.Option(min=0.0, max=1.0, help=OVERLAP_HELP)] = 0.0,
) -> None:
    """Split a dataset version and check it for leakage; exit 1 on any error."""
    from rich.markup import escape

    from modelyard.data.datasets import load_dataset
    from modelyard.data.leakage import LeakageOptions, check_split
    from modelyard.data.splits import make_split

    project = open_project(ctx)
    out = console()
    with out.status(f"Checking {ref} …"):
        version, frame = load_dataset(project, ref)
        made = make_split(frame, project.spec, method=split, seed=seed)
        options = LeakageOptions(overlap_error_share=max_overlap)
        report = check_split(frame, project.spec, made, options)
    sizes = " · ".join(f"{name} {count:,}" for name, count in made.sizes.items())
    out.print(f"{version.ref}: {len(frame):,} rows; {made.method} split (seed {seed}): {sizes}.")
    if report.findings:
        rows = [(f.check, SEVERITY_STYLE[f.severity], escape(f.message)) for f in report.findings]
        table("Leakage checks", ("check", "severity", "message"), rows)
    skipped = "; ".join(f"{name}: {escape(why)}" for name, why in report.skipped.items())
    out.print(f"Ran {', '.join(report.ran)}." + (f" Skipped {skipped}." if skipped else ""))
    if not report.passed:
        errors = len(report.errors)
        out.print(f"[red]✗[/] {errors} error{'s' * (errors > 1)}: this split leaks. Fix it first.")
        raise typer.Exit(1)
    warned = f" ({len(report.warnings)} warnings)" if report.warnings else ""
    out.print(f"[green]✓[/] No leakage errors{warned}.")
