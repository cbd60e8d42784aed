"""The ``modelyard`` command line: thin — parse, call the Python API, print with Rich.

Heavy libraries are imported inside the commands, so ``modelyard --help``
answers at once.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelyard.errors import ModelyardError

if TYPE_CHECKING:
    from rich.console import Console

    from modelyard.project import Project
    from modelyard.quickstart import QuickstartResult

app = typer.Typer(
    help="modelyard: from a data set to a governed, monitored model service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
spec_app = typer.Typer(help="Check the project spec (modelyard.yaml).", no_args_is_help=True)
data_app = typer.Typer(help="Datasets and their versions.", no_args_is_help=True)
runs_app = typer.Typer(help="Training runs.", no_args_is_help=True)
models_app = typer.Typer(help="Registered models and versions.", no_args_is_help=True)
app.add_typer(spec_app, name="spec")
app.add_typer(data_app, name="data")
app.add_typer(runs_app, name="runs")
app.add_typer(models_app, name="models")

SpecOption = Annotated[
    Path | None,
    typer.Option(
        "--spec", help="The project spec to use (default: modelyard.yaml in this folder)."
    ),
]


def console() -> Console:
    from rich.console import Console

    # Piped output gets a width that fits the tables instead of Rich's 80 columns.
    return Console() if sys.stdout.isatty() else Console(width=120)


def open_project(ctx: typer.Context) -> Project:
    from modelyard.project import Project

    return Project.open(ctx.obj.get("spec") if ctx.obj else None)


@app.callback()
def main_options(ctx: typer.Context, spec: SpecOption = None) -> None:
    ctx.obj = {"spec": spec}


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


@data_app.command("add")
def data_add(
    ctx: typer.Context,
    name: str,
    path: Path,
    kind: Annotated[str, typer.Option(help="raw | clean | features")] = "raw",
) -> None:
    """Register a CSV or Parquet file as a new version of dataset NAME."""
    from modelyard.data.datasets import add_dataset

    version = add_dataset(open_project(ctx), name, path, kind=kind)
    console().print(
        f"[green]✓[/] {version.ref}: {version.n_rows:,} rows × {version.n_columns} "
        f"columns (sha256 {version.content_hash[:12]})."
    )


@data_app.command("list")
def data_list(ctx: typer.Context) -> None:
    """List datasets and their versions."""
    from modelyard.data.datasets import list_datasets

    rows = [
        (v.ref, v.kind, f"{v.n_rows:,}", str(v.n_columns), v.content_hash[:12], _when(v.created_at))
        for v in list_datasets(open_project(ctx))
    ]
    _table("Datasets", ("version", "kind", "rows", "columns", "sha256", "created"), rows)


@runs_app.command("list")
def runs_list(
    ctx: typer.Context, limit: Annotated[int, typer.Option(min=1, help="How many runs.")] = 50
) -> None:
    """List recent runs with their main metrics."""
    from modelyard.train.runs import list_runs

    project = open_project(ctx)
    keys = [g.name for g in project.spec.metric_goals()][:3]
    rows = [
        (
            r.id,
            r.name,
            r.kind,
            r.status,
            _when(r.started_at),
            f"{r.wall_seconds or 0:.1f}s",
            *(_num(r.metrics.get(k)) for k in keys),
        )
        for r in list_runs(project, limit)
    ]
    _table("Runs", ("id", "name", "kind", "status", "started", "wall", *keys), rows)


@runs_app.command("show")
def runs_show(ctx: typer.Context, run_id: str) -> None:
    """Show one run's parameters and metrics (an id prefix is enough)."""
    from modelyard.train.runs import get_run

    run = get_run(open_project(ctx), run_id)
    console().print(
        f"[bold]{run.name}[/] {run.id} · {run.kind} · {run.status} · spec {str(run.spec_hash)[:12]}"
    )
    _table("Parameters", ("name", "value"), sorted(run.params.items()))
    _table("Metrics", ("name", "value"), [(k, _num(v)) for k, v in sorted(run.metrics.items())])


@models_app.command("list")
def models_list(ctx: typer.Context) -> None:
    """List registered model versions with aliases and stage."""
    from modelyard.registry.versions import list_models

    rows = [
        (m.ref, ", ".join(m.aliases), m.stage, m.flavor, m.run_id or "", _when(m.created_at))
        for m in list_models(open_project(ctx))
    ]
    _table("Models", ("version", "aliases", "stage", "flavor", "run", "created"), rows)


@models_app.command("show")
def models_show(
    ctx: typer.Context, ref: Annotated[str, typer.Argument(help="NAME, NAME@V or NAME@alias")]
) -> None:
    """Show one model version: metrics, gates, lineage to its run."""
    from modelyard.registry.versions import resolve

    m = resolve(open_project(ctx), ref)
    console().print(
        f"[bold]{m.ref}[/] aliases: {', '.join(m.aliases) or '-'} · stage {m.stage} "
        f"· run {m.run_id} · bundle sha256 {m.digest[:12]}"
    )
    _table("Metrics", ("name", "value"), [(k, _num(v)) for k, v in sorted(m.metrics.items())])
    _table(
        "Gates",
        ("gate", "value", "result"),
        [(g["name"], _num(g["value"]), "pass" if g["passed"] else "FAIL") for g in m.gates],
    )


@app.command()
def serve(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME@V or NAME@alias")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Serve a model version over HTTP (OIP v2 at /v2/models/NAME/infer, JSON at /predict)."""
    from modelyard.serve.server import run_server
    from modelyard.spec import find_spec

    spec = find_spec(explicit=(ctx.obj or {}).get("spec")).resolve()
    console().print(f"Serving {ref} on http://{host}:{port} (docs at /docs). Ctrl-C stops.")
    run_server(spec, ref, host=host, port=port, workers=workers)


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


def _table(title: str, columns: tuple[str, ...], rows: Any) -> None:
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console().print(table)


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


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
