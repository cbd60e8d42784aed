"""The ``modelyard`` command line: thin — parse, call the Python API, print with Rich.

One module per command group (``cli/data.py`` holds ``modelyard data …``);
this module assembles them. Heavy libraries are imported inside the commands,
so ``modelyard --help`` answers at once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelyard.cli import data_checks, data_labels, evaluate, predict, serve, train
from modelyard.cli._common import SpecOption, console
from modelyard.cli.audit import audit_app
from modelyard.cli.data import data_app
from modelyard.cli.feedback import feedback_app
from modelyard.cli.models import models_app
from modelyard.cli.monitor import monitor_app
from modelyard.cli.runs import runs_app
from modelyard.cli.users import api_command, login_command, users_app
from modelyard.errors import ModelyardError

if TYPE_CHECKING:
    from rich.console import Console

    from modelyard.quickstart import QuickstartResult

app = typer.Typer(
    help="modelyard: from a data set to a governed, monitored model service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
spec_app = typer.Typer(help="Check the project spec (modelyard.yaml).", no_args_is_help=True)
app.add_typer(spec_app, name="spec")
app.add_typer(data_app, name="data")
app.add_typer(runs_app, name="runs")
app.add_typer(models_app, name="models")
app.add_typer(users_app, name="users")
app.add_typer(audit_app, name="audit")
app.add_typer(monitor_app, name="monitor")
app.add_typer(feedback_app, name="feedback")
# Modules that add their commands to a group above when imported.
COMMAND_MODULES = (data_checks, data_labels, train)


@app.callback()
def main_options(
    ctx: typer.Context,
    spec: SpecOption = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="A modelyard server to talk to instead of the local project "
            "(default: $MODELYARD_URL); used by `models` and `audit` commands, with your token.",
        ),
    ] = None,
) -> None:
    ctx.obj = {"spec": spec, "url": url}


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="Where to write modelyard.yaml.")] = Path(),
    name: Annotated[str | None, typer.Option(help="Project name (default: folder name).")] = None,
    task: Annotated[
        str, typer.Option(help="binary | multiclass | regression | ranking")
    ] = "binary",
    target: Annotated[str, typer.Option(help="The column to predict.")] = "target",
) -> None:
    """Write a commented modelyard.yaml to start a project."""
    from modelyard.spec import write_spec_template

    project_name = name or _slug(folder.resolve().name)
    path = write_spec_template(folder, project_name, task, target)
    console().print(f"Wrote [bold]{path}[/]. Edit it, then run `modelyard spec check`.")


@spec_app.command("check")
def spec_check(
    ctx: typer.Context,
    file: Annotated[
        Path | None, typer.Argument(help="Spec file (default: modelyard.yaml).")
    ] = None,
) -> None:
    """Validate a spec; exit non-zero listing every problem with its line."""
    from modelyard.spec import find_spec, load_spec, spec_hash

    path = find_spec(explicit=file or (ctx.obj or {}).get("spec"))
    spec = load_spec(path)
    console().print(
        f"[green]✓[/] {path}: project '{spec.name}', task {spec.task}, "
        f"target '{spec.target}' (spec hash {spec_hash(spec)[:12]})."
    )


@app.command()
def quickstart(
    folder: Annotated[Path, typer.Option("--dir", help="Folder for the demo project.")] = Path(
        "modelyard-demo"
    ),
    rows: Annotated[int, typer.Option(min=1_000, help="Rows of demo data.")] = 50_000,
    requests: Annotated[int, typer.Option(min=1, help="HTTP requests to send.")] = 1_000,
) -> None:
    """Run the whole lifecycle on generated loan data, end to end."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from modelyard.quickstart import run_quickstart

    out = console()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=out, transient=False) as progress:
        stages = progress.add_task("lifecycle", total=6)
        traffic = progress.add_task("requests", total=requests, visible=False)

        def on_stage(name: str, detail: str) -> None:
            if name != "done" and not detail.startswith("fitting"):
                progress.advance(stages)
            progress.update(stages, description=f"[bold]{name}[/] {detail}")
            progress.update(traffic, visible=name == "traffic")

        result = run_quickstart(
            folder.resolve(),
            rows=rows,
            requests=requests,
            on_stage=on_stage,
            on_request=lambda n: progress.update(traffic, completed=n),
        )
    _print_quickstart(out, result)


app.command("train")(train.train_command)
app.command("serve")(serve.serve_command)
app.command("evaluate")(evaluate.evaluate_command)
app.command("compare")(evaluate.compare_command)
app.command("predict")(predict.predict_command)
app.command("server")(api_command)
app.command("login")(login_command)
app.command("api", help="Alias of `modelyard server`.")(api_command)


def _print_quickstart(out: Console, result: QuickstartResult) -> None:
    from rich.table import Table

    table = Table(title="Candidates: held-out test rows (recent AUC: the drifted later period)")
    columns = (
        "model",
        "ROC-AUC",
        "recall",
        "ECE",
        "recent AUC",
        "threshold",
        "fit",
        "1-row predict",
        "gates",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "gates") else "right")
    for c in result.candidates:
        m = c["metrics"]
        failed = [g["name"] for g in c["gates"] if not g["passed"]]
        table.add_row(
            c["name"] + (" (baseline)" if c["baseline"] else ""),
            f"{m['roc_auc']:.3f}",
            f"{m['recall']:.3f}",
            f"{m['ece']:.3f}",
            f"{c['recent_roc_auc']:.3f}",
            f"{m['threshold']:.3f}",
            f"{m['fit_seconds']:.1f} s",
            f"{m['predict_p50_ms']:.3f} ms",
            "[green]pass[/]" if not failed else f"[red]fail: {', '.join(failed)}[/]",
        )
    out.print(table)
    lat = result.latency_ms
    slos = ", ".join(
        f"{g['name']} {g['value']:.3g} {'[green]ok[/]' if g['passed'] else '[red]breached[/]'}"
        for g in result.slo_gates
    )
    out.print(f"[bold]Champion:[/] {result.champion} (alias champion)")
    out.print(
        f"[bold]Served:[/] {result.requests:,} requests, {result.failed_requests} failed; "
        f"p50 {lat.get('p50', 0):.2f} ms, p99 {lat.get('p99', 0):.2f} ms (one client, "
        f"in sequence); answers match the model within {result.max_score_difference:.1e}"
    )
    out.print(f"[bold]SLOs from the spec:[/] {slos or 'none set'}")
    out.print(f"[bold]Project:[/]   {result.folder / 'modelyard.yaml'}")
    out.print(f"[bold]Metadata:[/]  {result.store}")
    out.print(f"[bold]Artifacts:[/] {result.artifacts}")
    out.print(f"Next: cd {result.folder} && modelyard runs list && modelyard models list")


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-")[:64] or "project"


def main() -> None:
    """Entry point: known errors become one red line and exit code 2, never a traceback."""
    try:
        app()
    except ModelyardError as exc:
        from rich.console import Console
        from rich.markup import escape

        Console(stderr=True).print(
            f"[red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True
        )
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
