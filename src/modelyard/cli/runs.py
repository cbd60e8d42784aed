"""``modelyard runs …``: training runs."""

from __future__ import annotations

from typing import Annotated

import typer

from modelyard.cli._common import console, num, open_project, sub_app, table, when

runs_app = sub_app("Training runs.")


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
            when(r.started_at),
            f"{r.wall_seconds or 0:.1f}s",
            *(num(r.metrics.get(k)) for k in keys),
        )
        for r in list_runs(project, limit)
    ]
    table("Runs", ("id", "name", "kind", "status", "started", "wall", *keys), rows)


@runs_app.command("show")
def runs_show(ctx: typer.Context, run_id: str) -> None:
    """Show one run's parameters and metrics (an id prefix is enough)."""
    from modelyard.train.runs import get_run

    run = get_run(open_project(ctx), run_id)
    console().print(
        f"[bold]{run.name}[/] {run.id} · {run.kind} · {run.status} · spec {str(run.spec_hash)[:12]}"
    )
    table("Parameters", ("name", "value"), sorted(run.params.items()))
    table("Metrics", ("name", "value"), [(k, num(v)) for k, v in sorted(run.metrics.items())])
