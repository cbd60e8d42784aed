"""``modelyard evaluate`` (a version on a dataset version, against the spec's gates) and
``modelyard compare`` (champion vs challenger on the same rows).

``modelyard evaluate`` exits with code 1 when any gate fails, 0 when all pass
(2 on an error such as an unknown version), so a CI step can run it as a check::

    modelyard evaluate loans@3 --data loans-holdout@1 --report eval.html --json eval.json
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelyard.cli._common import console, open_project

if TYPE_CHECKING:
    from rich.console import Console

    from modelyard.evaluate.compare import Comparison

__all__ = ["compare_command", "evaluate_command"]


def evaluate_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="The model version: NAME@V, NAME@alias or NAME.")],
    data: Annotated[str, typer.Option("--data", help="The dataset version: NAME@V or NAME.")],
    report: Annotated[
        Path | None, typer.Option("--report", help="Write the HTML report (self-contained) here.")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the JSON twin of the report here.")
    ] = None,
    predictions: Annotated[
        Path | None,
        typer.Option(
            "--predictions",
            help="Write the row ids, labels, scores and y_pred as Parquet, to recompute the "
            "numbers.",
        ),
    ] = None,
    robustness: Annotated[
        bool, typer.Option("--robustness/--no-robustness", help="Perturb inputs (slower).")
    ] = True,
    boot: Annotated[
        int, typer.Option("--boot", min=10, help="Bootstrap resamples for slice intervals.")
    ] = 200,
    seed: Annotated[int, typer.Option(min=0, help="Seed of sampling and bootstrap.")] = 0,
) -> None:
    """Evaluate a model version on a dataset version against every gate of the spec.

    Prints the gates (pass/fail, measured value, threshold), stores the
    results and the JSON report with the version (promotion reads them) and
    exits 1 if any gate fails, 0 if all pass: use it as a CI check.
    """
    from modelyard.evaluate.report import write_report
    from modelyard.registry.evaluation import evaluate_version, report_bytes
    from modelyard.registry.versions import resolve

    project = open_project(ctx)
    out = console()
    with out.status("evaluating") as status:
        evaluation = evaluate_version(
            project,
            model,
            data,
            robustness=robustness,
            n_boot=boot,
            seed=seed,
            progress=lambda step: status.update(f"evaluating: {step}"),
            predictions=predictions,
        )
    if report is not None:
        write_report(evaluation, report, json_out)
    elif json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_bytes(report_bytes(evaluation))
    model_info, data_info = evaluation["model"], evaluation["data"]
    out.print(
        f"Evaluated [bold]{model_info['ref']}[/] on [bold]{data_info['ref']}[/] "
        f"({data_info['rows']:,} rows)"
    )
    gates = evaluation["gates"]
    _print_gates(out, gates)
    for skipped in evaluation.get("not_gated", []):
        out.print(f"Not gated here: {skipped['name']} ({skipped['reason']}).")
    stored = resolve(project, model_info["ref"])
    digest = next((g.get("report") for g in stored.gates if g.get("report")), None)
    if digest:
        out.print(f"Stored with {stored.ref}: gates, metrics and report sha256 {digest[:12]}")
    for label, path in (("HTML report", report), ("JSON report", json_out)):
        if path is not None:
            out.print(f"{label}: {path}")
    if predictions is not None:
        out.print(f"Predictions: {predictions}")
    failed = [g["name"] for g in gates if not g.get("passed")]
    if failed:
        out.print(f"[red]{len(failed)} of {len(gates)} gates failed:[/] {', '.join(failed)}")
        raise typer.Exit(1)
    out.print(f"[green]All {len(gates)} gates passed.[/]")


def compare_command(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(help="Champion: NAME@V, NAME@alias or NAME.")],
    b: Annotated[str, typer.Argument(help="Challenger, judged against the champion.")],
    data: Annotated[str, typer.Option("--data", help="The dataset version: NAME@V or NAME.")],
    boot: Annotated[int, typer.Option("--boot", min=100, help="Bootstrap resamples.")] = 1000,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the bootstrap.")] = 0,
) -> None:
    """Compare challenger B with champion A on the same rows: paired bootstrap per metric.

    The verdict says whether B is better, worse, or there is no evidence
    either way (the 95 % interval of B − A contains 0).
    """
    from modelyard.registry.evaluation import compare_versions

    project = open_project(ctx)
    out = console()
    with out.status("scoring both models and bootstrapping"):
        results = compare_versions(project, a, b, data, n_boot=boot, seed=seed)
    out.print(f"[bold]{b}[/] (b) against [bold]{a}[/] (a) on [bold]{data}[/]")
    _print_comparisons(out, results)


def _print_gates(out: Console, gates: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title="Gates")
    for column in ("gate", "kind", "result", "value", "threshold"):
        table.add_column(column, justify="right" if column in ("value", "threshold") else "left")
    for g in gates:
        sign = "≥" if g.get("direction") == "max" else "≤"
        table.add_row(
            g["name"],
            g.get("kind", ""),
            "[green]pass[/]" if g.get("passed") else "[red]FAIL[/]",
            _num(g.get("value")),
            f"{sign} {_num(g.get('threshold'))}",
        )
    out.print(table)


def _print_comparisons(out: Console, results: list[Comparison]) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="Champion vs challenger (diff = b − a, 95 % paired bootstrap interval)")
    for column in ("metric", "a", "b", "diff", "CI", "verdict", "McNemar p"):
        table.add_column(column, justify="left" if column in ("metric", "verdict") else "right")
    colour = {"better": "green", "worse": "red", "no evidence": "yellow"}
    for c in results:
        interval = escape(f"[{_num(c.ci_low)}, {_num(c.ci_high)}]")
        table.add_row(
            c.metric,
            _num(c.a),
            _num(c.b),
            _num(c.diff),
            interval,
            f"[{colour[c.verdict]}]{c.verdict}[/]",
            "-" if c.mcnemar is None else f"{c.mcnemar.p_value:.3g}",
        )
    out.print(table)


def _num(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
