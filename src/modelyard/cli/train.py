"""``modelyard train`` (candidates and their leaderboard) and ``modelyard runs reproduce``."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import typer

from modelyard.cli._common import console, open_project
from modelyard.cli.runs import runs_app

if TYPE_CHECKING:
    from rich.console import Console

    from modelyard.project import Project
    from modelyard.spec import Spec
    from modelyard.train.leaderboard import LeaderboardRow
    from modelyard.train.reproduce import Reproduction
    from modelyard.train.trainer import SearchOptions

SEARCH_METHODS = ("grid", "random", "tpe")
#: The console width from which run ids fit in the leaderboard table.
WIDE_TABLE = 150
ENGINES = ("local", "ray")


def train_command(
    ctx: typer.Context,
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="Dataset NAME or NAME@V (default: the latest version of the dataset named "
            "like the project, or of the only dataset).",
        ),
    ] = None,
    family: Annotated[
        list[str] | None,
        typer.Option("--family", "-f", help="Train only this family; repeat for several."),
    ] = None,
    search: Annotated[
        str | None, typer.Option(help="Hyper-parameter search: grid | random | tpe.")
    ] = None,
    trials: Annotated[int | None, typer.Option(min=1, help="Search trials per family.")] = None,
    folds: Annotated[int | None, typer.Option(min=2, help="Cross-validation folds.")] = None,
    engine: Annotated[str | None, typer.Option(help="Search engine: local | ray.")] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            help="Database URL of a shared Optuna study (e.g. postgresql+psycopg://…/optuna), "
            "so searches on several machines add to one study."
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Seed (default: the spec's).")] = None,
) -> None:
    """Train every candidate family on one split and print the leaderboard."""
    from modelyard.data.datasets import load_dataset
    from modelyard.train.families import families_for
    from modelyard.train.leaderboard import build_leaderboard
    from modelyard.train.trainer import train_candidates

    project = open_project(ctx)
    options = _search_options(project.spec, search, trials, folds, engine, storage)
    chosen = families_for(project.spec.task, family or _spec_families(project.spec))
    dataset, frame = load_dataset(project, data or default_dataset(project))
    out = console()
    out.print(
        f"Training {len(chosen)} candidates on [bold]{dataset.ref}[/] ({dataset.n_rows:,} rows)"
        + (f", {options.method} search of {options.trials} trials each" if options else "")
    )
    with _CandidateProgress(out, len(chosen)) as progress:
        results = train_candidates(
            project,
            dataset,
            frame,
            families=[f.name for f in chosen],
            seed=seed,
            progress=progress.update,
            search=options,
        )
    print_leaderboard(out, project.spec, build_leaderboard(project.spec, results))


@runs_app.command("reproduce")
def runs_reproduce(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run to rebuild (an id prefix is enough).")],
) -> None:
    """Rebuild a run from its record and compare every metric; exit 1 unless all are identical."""
    from modelyard.train.reproduce import reproduce_run

    out = console()
    with out.status(f"Rebuilding run {run_id} from its record…"):
        result = reproduce_run(open_project(ctx), run_id)
    print_reproduction(out, result)
    if not result.identical:
        raise typer.Exit(1)


def default_dataset(project: Project) -> str:
    """The dataset named like the project, else the only dataset; its latest version."""
    from modelyard.data.datasets import list_datasets
    from modelyard.errors import InvalidInputError, NotFoundError

    names = sorted({v.name for v in list_datasets(project)})
    if project.name in names:
        return project.name
    if len(names) == 1:
        return names[0]
    if not names:
        raise NotFoundError(
            f"Project '{project.name}' has no datasets yet. Add one with `modelyard data add`."
        )
    raise InvalidInputError(
        f"No dataset is named '{project.name}' and there are several ({', '.join(names)}); "
        "choose one with --data NAME[@V]."
    )


def _spec_families(spec: Spec) -> list[str] | None:
    return list(spec.training.families) if spec.training.families else None


def _search_options(
    spec: Spec,
    method: str | None,
    trials: int | None,
    folds: int | None,
    engine: str | None,
    storage: str | None,
) -> SearchOptions | None:
    from modelyard.errors import InvalidInputError
    from modelyard.spec import SearchSettings
    from modelyard.train.trainer import SearchOptions

    for value, allowed, flag in (
        (method, SEARCH_METHODS, "--search"),
        (engine, ENGINES, "--engine"),
    ):
        if value is not None and value not in allowed:
            raise InvalidInputError(f"{flag} must be one of {', '.join(allowed)}; got {value!r}.")
    settings = spec.training.search
    if method is None and settings is None:
        if any(v is not None for v in (trials, folds, engine, storage)):
            raise InvalidInputError(
                "--trials, --folds, --engine and --storage configure a search: add --search METHOD "
                "(grid, random or tpe), or set training.search in the spec."
            )
        return None
    base = settings or SearchSettings()
    return SearchOptions(
        method or base.method,
        trials if trials is not None else base.trials,
        folds if folds is not None else base.folds,
        engine or base.engine,
        storage,
    )


class _CandidateProgress:
    """A Rich bar over the candidates, with one line per candidate as it ends."""

    STAGES: ClassVar[dict[str, str]] = {"search": "searching", "fit": "fitting"}

    def __init__(self, out: Console, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        self.progress = Progress(*columns, console=out, transient=True)
        self.task = self.progress.add_task("candidates", total=total)

    def __enter__(self) -> _CandidateProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, name: str, stage: str) -> None:
        verb, _, count = stage.partition(" ")  # "search 3/20": trial 3 of 20 ended
        if verb in self.STAGES:
            text = f"{self.STAGES[verb]} [bold]{name}[/] {count}"
            self.progress.update(self.task, description=text.rstrip())
            return
        mark = "[green]✓[/]" if stage == "done" else "[red]✗ failed[/]"
        self.progress.console.print(f"{mark} {name}")
        self.progress.advance(self.task)


# --------------------------------------------------------------------------- printing


def print_leaderboard(out: Console, spec: Spec, rows: list[LeaderboardRow]) -> None:
    """The leaderboard as a Rich table: quality against the spec, baseline margin, cost."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    goals = spec.metric_goals("model")
    primary = rows[0].primary if rows else None
    title = f"Leaderboard on the test rows, by {primary}"
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("#", justify="right", no_wrap=True, min_width=1)
    table.add_column("model", no_wrap=True)
    for goal in goals:  # the name above its threshold: "roc_auc" / "≥ 0.7"
        table.add_column(goal.label.replace(" ", "\n", 1), justify="right", no_wrap=True)
    table.add_column("vs baseline", justify="right", no_wrap=True)
    for header in ("fit", "p50 ms", "p99 ms", "rows/s", "size", "onnx"):
        table.add_column(header, justify="right", no_wrap=True)
    wide = out.width >= WIDE_TABLE
    if wide:
        table.add_column("run", no_wrap=True)
    for row in rows:
        name = row.name + ("*" if row.baseline else "")
        run = [row.run_id] if wide else []
        if row.status != "finished":
            failed = f"[red]failed: {escape((row.error or '')[:300])}[/]"
            table.add_row("-", name, failed, *[""] * (len(goals) + 6), *run)
            continue
        cells = (*(_metric_cell(row, g.name) for g in goals), _margin_cell(row))
        table.add_row(str(row.rank), name, *cells, *_cost_cells(row.costs), *run)
    out.print(table)
    out.print(
        f"* baseline. Spec thresholds: [green]✓[/] met, [red]✗[/] missed. 'vs baseline': "
        f"{primary} minus the best baseline's. p50 / p99: one record through cleaning, "
        "validation, encoding and the model, as a server pays it; rows/s at a batch of 1,024."
    )
    if not wide:
        out.print("Runs: " + ", ".join(f"{row.name} {row.run_id}" for row in rows))
    out.print("Rebuild a run and check its metrics: modelyard runs reproduce RUN")


def _metric_cell(row: LeaderboardRow, name: str) -> str:
    value = row.metrics.get(name)
    if value is None:
        return "-"
    text = f"{value:.4f}"
    if name not in row.gates:
        return text
    return f"[green]{text} ✓[/]" if row.gates[name] else f"[red]{text} ✗[/]"


def _margin_cell(row: LeaderboardRow) -> str:
    if row.margin is None:
        return "-"
    text = f"{row.margin:+.4f}"
    return f"[red]{text} loses[/]" if row.loses_to_baseline else text


def _cost_cells(costs: dict[str, float]) -> list[str]:
    def get(key: str, fmt: str) -> str:
        value = costs.get(key)
        return "-" if value is None or math.isnan(value) else fmt.format(value)

    return [
        get("fit_seconds", "{:.1f} s"),
        get("predict_p50_ms", "{:.2f}"),
        get("predict_p99_ms", "{:.2f}"),
        get("rows_per_second", "{:,.0f}"),
        _bytes(costs.get("model_bytes")),
        _bytes(costs.get("onnx_bytes")),
    ]


def _bytes(value: Any) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "kB", "MB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if size >= 10 or unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def print_reproduction(out: Console, result: Reproduction) -> None:
    """Every metric as recorded and reproduced; differences are never hidden."""
    from rich.table import Table

    table = Table(title=f"Reproduction of run {result.run_id} ({result.name})")
    for header in ("metric", "recorded", "reproduced", "difference", "identical?"):
        table.add_column(header, justify="left" if header == "metric" else "right")
    for c in result.comparisons:
        table.add_row(
            c.name,
            _exact(c.recorded),
            _exact(c.reproduced),
            "" if c.identical or c.difference is None else f"{c.difference:+.3g}",
            "[green]yes[/]" if c.identical else "[red]NO[/]",
        )
    out.print(table)
    for note in result.notes:
        out.print(f"[yellow]note:[/] {note}")
    if result.identical:
        out.print(
            f"[green]✓[/] every metric reproduced exactly (recorded as run {result.new_run_id})."
        )
    else:
        out.print(
            f"[red]✗[/] {len(result.differences)} of {len(result.comparisons)} metrics differ "
            f"(recorded as run {result.new_run_id})."
        )


def _exact(value: float | None) -> str:
    return "-" if value is None else repr(value)
