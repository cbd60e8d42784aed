"""``modelyard runs …``: list, show and compare training runs (an id prefix is enough)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelyard.cli._common import console, num, open_project, sub_app, table, when

if TYPE_CHECKING:
    from rich.table import Table

    from modelyard.train.runs import RunRecord

runs_app = sub_app("Training runs.")

BEST = "★"


@runs_app.command("list")
def runs_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="How many runs.")] = 50,
    kind: Annotated[
        str | None, typer.Option(help="Only runs of this kind (train, search…).")
    ] = None,
    status: Annotated[
        str | None, typer.Option(help="Only runs with this status (finished, failed, killed…).")
    ] = None,
    parent: Annotated[
        str | None, typer.Option(help="Only the child runs (trials) of this run.", metavar="RUN")
    ] = None,
) -> None:
    """List recent runs, newest first, with the spec's main metrics."""
    from modelyard.train.runs import list_runs, resolve_run_id

    project = open_project(ctx)
    parent_id = resolve_run_id(project, parent) if parent else None
    keys = [g.name for g in project.spec.metric_goals()][:3]
    rows = [
        (
            r.id,
            r.name,
            r.kind,
            _status(r.status),
            when(r.started_at),
            f"{r.wall_seconds or 0:.1f}s",
            *(num(r.metrics.get(k)) for k in keys),
        )
        for r in list_runs(project, limit, kind=kind, parent=parent_id, status=status)
    ]
    table("Runs", ("id", "name", "kind", "status", "started", "wall", *keys), rows)


@runs_app.command("show")
def runs_show(ctx: typer.Context, run_id: Annotated[str, typer.Argument(metavar="RUN")]) -> None:
    """Show everything a run recorded (an id prefix is enough)."""
    from modelyard.train.runs import get_run

    run = get_run(open_project(ctx), run_id)
    out = console()
    out.print(f"[bold]{run.name}[/] {run.id} · {run.kind} · {_status(run.status)}")
    table("Run", ("field", "value"), _facts(run))
    table("Parameters", ("name", "value"), sorted(run.params.items()))
    metrics = [
        (key, num(points[-1].value), str(points[-1].step), str(len(points)))
        for key, points in sorted(run.history.items())
    ]
    table("Metrics (latest value)", ("name", "value", "step", "points"), metrics)
    if run.tags:
        table("Tags", ("name", "value"), sorted(run.tags.items()))
    if run.artifacts:
        rows = [(a.name, a.digest[:12], _size(a.size)) for a in run.artifacts]
        table("Artifacts", ("name", "sha256", "size"), rows)
    if run.inputs:
        rows = [(i.ref, i.role, i.dataset_version_id) for i in run.inputs]
        table("Inputs", ("dataset", "role", "version id"), rows)
    packages = run.environment.get("packages", {})
    if packages:
        table("Environment", ("package", "version"), sorted(packages.items()))
    if run.children:
        out.print(f"Child runs ({len(run.children)}): `modelyard runs list --parent {run.id}`")


@runs_app.command("compare")
def runs_compare(
    ctx: typer.Context,
    run_ids: Annotated[
        list[str], typer.Argument(metavar="RUN", help="Two or more run ids (prefixes will do).")
    ],
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", "-m", help="Only this metric (repeat for several)."),
    ] = None,
) -> None:
    """Parameters and metrics of runs side by side; differing parameters highlighted,
    each metric's best run marked ★ (for metrics whose direction modelyard knows)."""
    from modelyard.errors import InvalidInputError
    from modelyard.train.runs import get_run

    if len(run_ids) < 2:
        raise InvalidInputError(
            f"`runs compare` needs at least two runs; got {len(run_ids)}. "
            "See `modelyard runs list` for ids."
        )
    project = open_project(ctx)
    runs = [get_run(project, run_id) for run_id in run_ids]
    keys = sorted({k for r in runs for k in r.metrics})
    if metric:
        unknown = [m for m in metric if m not in keys]
        if unknown:
            raise InvalidInputError(
                f"No compared run has metric(s) {unknown}; they have {', '.join(keys) or 'none'}."
            )
        keys = [k for k in keys if k in metric]
    out = console()
    out.print(_params_table(runs))
    out.print(_metrics_table(runs, keys))
    out.print(
        f"[yellow]yellow[/]: parameters that differ. {BEST}: the best value of a metric "
        "whose direction is known (higher or lower is better)."
    )


def _params_table(runs: list[RunRecord]) -> Table:
    grid = _grid("Parameters", "parameter", runs)
    for key in sorted({k for r in runs for k in r.params}):
        values = [r.params.get(key) for r in runs]
        differs = len(set(values)) > 1
        grid.add_row(key, *(v or "-" for v in values), style="yellow" if differs else None)
    return grid


def _metrics_table(runs: list[RunRecord], keys: list[str]) -> Table:
    from modelyard.spec import METRICS

    grid = _grid("Metrics (latest value)", "metric", runs)
    for key in keys:
        values = [r.metrics.get(key) for r in runs]
        info = METRICS.get(key)
        known = [v for v in values if v is not None]
        best = None
        if info is not None and known:
            best = max(known) if info.direction == "max" else min(known)
        grid.add_row(
            key if info is None else f"{key} ({'↑' if info.direction == 'max' else '↓'})",
            *(_cell(v, v is not None and v == best and len(known) > 1) for v in values),
        )
    return grid


def _grid(title: str, first: str, runs: list[RunRecord]) -> Table:
    from rich.table import Table

    grid = Table(title=title)
    grid.add_column(first)
    for run in runs:
        grid.add_column(f"{run.name}\n{run.id}", justify="right")
    return grid


def _cell(value: float | None, best: bool) -> str:
    return f"[bold green]{num(value)} {BEST}[/]" if best else num(value)


def _facts(run: RunRecord) -> list[tuple[str, str]]:
    code = run.code_version
    commit = code.get("git")
    version = (
        "not a git checkout"
        if not commit
        else commit[:12] + (" (dirty)" if code.get("dirty") else "")
    )
    facts = [
        ("parent", run.parent_id or "-"),
        ("children", str(len(run.children))),
        ("seed", num(run.seed)),
        ("started", when(run.started_at)),
        ("ended", when(run.ended_at)),
        ("wall time", _seconds(run.wall_seconds)),
        ("CPU time", _seconds(run.cpu_seconds)),
        ("spec", str(run.spec_hash)[:12]),
        ("code", version),
        ("python", str(run.environment.get("python", "-"))),
        ("platform", str(run.environment.get("platform", "-"))),
    ]
    if run.split:
        described = ", ".join(f"{k}={v}" for k, v in run.split.items() if k != "sha256")
        facts.append(("split", described[:200]))
    return facts


def _status(status: str) -> str:
    color = {"finished": "green", "failed": "red", "killed": "yellow"}.get(status)
    return f"[{color}]{status}[/]" if color else status


def _seconds(value: Any) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
