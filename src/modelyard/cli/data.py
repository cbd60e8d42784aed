"""``modelyard data …``: datasets, versions, schemas, validation, diffs and lineage."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from modelyard.cli._common import console, num, open_project, sub_app, when

if TYPE_CHECKING:
    from rich.table import Table
    from rich.tree import Tree

    from modelyard.data.datasets import DatasetVersion, Lineage
    from modelyard.data.diff import DatasetDiff
    from modelyard.data.validation import ValidationReport

data_app = sub_app("Datasets and their versions: register, inspect, validate, compare.")

RefArgument = Annotated[str, typer.Argument(help="NAME (latest version) or NAME@V.")]
DelimiterOption = Annotated[
    str | None,
    typer.Option(help="CSV field separator (default: ',' or tab for .tsv), e.g. ';'."),
]
EncodingOption = Annotated[str, typer.Option(help="Text encoding of a CSV file, e.g. latin-1.")]


@data_app.command("add")
def data_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset name, e.g. loans.")],
    path: Annotated[Path, typer.Argument(help="A CSV (.csv, .tsv, .gz) or Parquet file.")],
    kind: Annotated[str, typer.Option(help="raw | clean | features")] = "raw",
    parent: Annotated[
        list[str] | None,
        typer.Option("--parent", help="A version this one was made from (NAME@V); repeatable."),
    ] = None,
    delimiter: DelimiterOption = None,
    encoding: EncodingOption = "utf-8",
    block_size: Annotated[
        int, typer.Option(min=1 << 16, help="Bytes of CSV parsed at a time (memory grows with it).")
    ] = 1 << 20,  # modelyard.data.ingest.DEFAULT_BLOCK_SIZE
) -> None:
    """Register a CSV or Parquet file as a version of dataset NAME (read in chunks)."""
    from modelyard.data.datasets import add_dataset
    from modelyard.store import utcnow

    project = open_project(ctx)
    started = utcnow()
    with _progress() as bars:
        progress = bars.task(f"reading {path.name}", in_bytes=True)
        version = add_dataset(
            project,
            name,
            path,
            kind=kind,
            parents=tuple(parent or ()),
            delimiter=delimiter,
            encoding=encoding,
            block_size=block_size,
            progress=progress,
        )
    fresh = version.created_at >= started
    state = "[green]✓[/] registered" if fresh else "[yellow]=[/] already registered as"
    console().print(
        f"{state} [bold]{_esc(version.ref)}[/] ({version.kind}): {version.n_rows:,} rows × "
        f"{version.n_columns} columns, content sha256 {version.content_hash[:12]}."
    )


@data_app.command("list")
def data_list(ctx: typer.Context) -> None:
    """List datasets and their versions."""
    from modelyard.data.datasets import list_datasets

    rows = [
        (
            v.ref,
            v.kind,
            f"{v.n_rows:,}",
            str(v.n_columns),
            ", ".join(v.parents) or "-",
            v.content_hash[:12],
            when(v.created_at),
        )
        for v in list_datasets(open_project(ctx))
    ]
    columns = ("version", "kind", "rows", "columns", "parents", "sha256", "created")
    console().print(_table("Datasets", columns, rows))


@data_app.command("show")
def data_show(ctx: typer.Context, ref: RefArgument) -> None:
    """Show a version: where it came from and its schema."""
    from modelyard.data.datasets import get_version

    version = get_version(open_project(ctx), ref)
    out = console()
    out.print(_headline(version))
    source = version.source or {}
    if source.get("file"):
        out.print(
            f"source: {_esc(str(source['file']))} ({source.get('format')}, "
            f"{source.get('bytes', 0):,} bytes, sha256 {str(source.get('sha256'))[:12]})"
        )
    if version.parents or version.transformation:
        out.print(
            f"made from: {', '.join(version.parents) or '-'}; transformation: "
            f"{_esc(_json(version.transformation))}"
        )
    schema = version.schema
    if schema.edited_by:
        out.print(f"schema edited by {_esc(schema.edited_by)} at {schema.edited_at}")
    rows = [
        (
            c.name,
            c.type,
            c.role,
            "yes" if c.nullable else "no",
            num(c.min),
            num(c.max),
            "-" if c.categories is None else str(len(c.categories)),
            "yes" if c.unique else "no",
        )
        for c in schema.columns
    ]
    columns = ("column", "type", "role", "nullable", "min", "max", "categories", "unique")
    out.print(_table(f"Schema of {version.ref}", columns, rows))


@data_app.command("lineage")
def data_lineage(ctx: typer.Context, ref: RefArgument) -> None:
    """Show where a version came from, what was made from it, and which runs and models used it."""
    from rich.tree import Tree

    from modelyard.data.datasets import lineage

    tree = lineage(open_project(ctx), ref)
    root = Tree(_headline(tree.version))
    if tree.parents:
        _grow(root.add("[bold]made from[/]"), tree.parents, "parents")
    if tree.children:
        _grow(root.add("[bold]used to make[/]"), tree.children, "children")
    _add_runs(root, tree)
    console().print(root)


@data_app.command("validate")
def data_validate(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="NAME@V, or a CSV / Parquet file to check.")],
    schema: Annotated[
        Path | None, typer.Option(help="Schema file (YAML/JSON) to check against.")
    ] = None,
    against: Annotated[
        str | None, typer.Option(help="Check against this version's schema (NAME@V).")
    ] = None,
    delimiter: DelimiterOption = None,
    encoding: EncodingOption = "utf-8",
) -> None:
    """Check data against a schema; exit code 1 when a check fails."""
    from modelyard.data.datasets import get_version
    from modelyard.data.schema import Schema
    from modelyard.data.validation import validate_dataset, validate_file
    from modelyard.errors import InvalidInputError

    project = open_project(ctx)
    if schema is not None and against is not None:
        raise InvalidInputError("Give --schema FILE or --against NAME@V, not both.")
    rules = Schema.load(schema) if schema else None
    if against is not None:
        rules = get_version(project, against).schema
    path = Path(target)
    if path.exists() or _looks_like_a_file(path):
        if rules is None:
            raise InvalidInputError(
                f"To check the file {path}, say against what: --schema FILE or --against NAME@V."
            )
        with _progress() as bars:
            report = validate_file(
                path,
                rules,
                delimiter=delimiter,
                encoding=encoding,
                folder=project.root / ".modelyard" / "tmp",
                read_progress=bars.task(f"reading {path.name}", in_bytes=True),
                check_progress=bars.task("checking rows", in_bytes=False),
            )
    else:
        with _progress() as bars:
            check = bars.task("checking rows", in_bytes=False)
            report = validate_dataset(project, target, rules, progress=check)
    _print_report(target, report)
    if not report.passed:
        raise typer.Exit(1)


@data_app.command("diff")
def data_diff(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(help="The reference version, NAME@V.")],
    b: Annotated[str, typer.Argument(help="The version to compare with it, NAME@V.")],
) -> None:
    """Show schema changes and distribution shifts from version A to version B."""
    from modelyard.data.diff import diff

    _print_diff(diff(open_project(ctx), a, b))


@data_app.command("clean")
def data_clean(
    ctx: typer.Context,
    ref: RefArgument,
    recipe_file: Annotated[
        Path | None,
        typer.Option("--recipe", help="A YAML list of cleaning steps (default: the spec's)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split whose train rows fit it.")] = 42,
) -> None:
    """Fit cleaning steps on the training rows and register the result as a clean version."""
    import yaml

    from modelyard.data.cleaning import Recipe
    from modelyard.data.cleaning.versions import clean_version
    from modelyard.errors import DataError

    project = open_project(ctx)
    steps = list(project.spec.cleaning)
    if recipe_file is not None:
        try:
            steps = yaml.safe_load(recipe_file.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise DataError(f"Cannot read the recipe {recipe_file}: {exc}") from None
    if not steps:
        raise DataError("No cleaning steps: add a `cleaning:` list to the spec or pass --recipe.")
    version = clean_version(project, ref, Recipe.from_spec_like(steps), seed=seed)
    report = version.transformation["report"] if version.transformation else {}
    console().print(
        f"[green]✓[/] {version.ref} (clean): {report.get('rows_in', 0):,} rows in, "
        f"{report.get('rows_out', 0):,} out; recipe fitted on {report.get('fit_rows', 0):,} "
        f"training rows. See `modelyard data lineage {version.ref}`."
    )


@data_app.command("schema")
def data_schema(
    ctx: typer.Context,
    ref: RefArgument,
    export: Annotated[
        Path | None, typer.Option(help="Write the schema to this file (.yaml or .json).")
    ] = None,
    set_file: Annotated[
        Path | None, typer.Option("--set", help="Store this edited schema file for the version.")
    ] = None,
) -> None:
    """Print, export or replace a version's schema (edit it, then validate with --schema)."""
    from modelyard.data.datasets import get_version, set_schema
    from modelyard.data.schema import Schema

    project = open_project(ctx)
    out = console()
    if set_file is not None:
        version = set_schema(project, ref, Schema.load(set_file))
        out.print(f"[green]✓[/] stored the schema from {_esc(str(set_file))} for {version.ref}.")
        return
    version = get_version(project, ref)
    if export is not None:
        version.schema.save(export)
        out.print(
            f"[green]✓[/] wrote the schema of {version.ref} to {_esc(str(export))}. Edit it, then "
            f"`modelyard data validate NAME@V --schema {_esc(str(export))}`."
        )
        return
    out.print(version.schema.to_yaml(), markup=False, highlight=False, end="")


# ---------------------------------------------------------------------- printing


class _Bars:
    """Rich progress bars, one per task; a task is a ``progress(done, total)`` callback."""

    def __init__(self, progress: Any) -> None:
        self._progress = progress

    def task(self, description: str, *, in_bytes: bool) -> Callable[[int, int], None]:
        task = self._progress.add_task(description, total=None, amount="", visible=False)

        def update(done: int, total: int) -> None:
            if in_bytes:
                amount = f"{done / 1e6:,.1f}/{total / 1e6:,.1f} MB"
            else:
                amount = f"{done:,}/{total:,} rows"
            self._progress.update(
                task, completed=done, total=total or None, amount=amount, visible=True
            )

        return update


@contextmanager
def _progress() -> Iterator[_Bars]:
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[amount]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console(), transient=False) as progress:
        yield _Bars(progress)


def _print_report(target: str, report: ValidationReport) -> None:
    out = console()
    size = f"{report.n_rows:,} rows × {report.n_columns} columns"
    if report.passed:
        out.print(f"[green]✓[/] {_esc(target)} passes its schema ({size}).")
    else:
        out.print(
            f"[red]✗[/] {_esc(target)} fails {len(report.errors)} check(s) ({size}); row "
            "numbers count data rows from 0 (CSV line = row + 2)."
        )
    if report.issues:
        rows = [
            (
                "[red]error[/]" if i.severity == "error" else "[yellow]warning[/]",
                _esc(i.column or "-"),
                i.check,
                f"{i.rows:,}",
                ", ".join(str(r) for r in i.examples) or "-",
                _esc(i.message),
            )
            for i in report.issues
        ]
        columns = ("severity", "column", "check", "rows", "first rows", "detail")
        out.print(_table("Validation", columns, rows, escape=False))


def _print_diff(result: DatasetDiff) -> None:
    out = console()
    out.print(
        f"[bold]{_esc(result.a)} → {_esc(result.b)}[/]: rows {result.rows[0]:,} → "
        f"{result.rows[1]:,}"
    )
    if result.schema_changes:
        changes = [(c.column, c.change, c.message) for c in result.schema_changes]
        out.print(_table("Schema changes", ("column", "change", "detail"), changes))
    else:
        out.print("Schema: no changes.")
    shifts = [
        (s.column, s.kind, f"{s.psi:.3f}", s.level, _shift_detail(s))
        for s in sorted(result.columns, key=lambda s: -s.psi)
    ]
    out.print(
        _table(
            "Distribution shifts (PSI, bins from A)",
            ("column", "kind", "PSI", "level", "detail"),
            shifts,
        )
    )


def _shift_detail(shift: Any) -> str:
    nulls = shift.null_share
    parts = [f"nulls {nulls[0]:.1%} → {nulls[1]:.1%}"] if nulls[0] != nulls[1] else []
    if shift.kind == "numeric":
        for key in ("mean", "std", "p50"):
            before, after = shift.stats[key]
            parts.append(f"{key} {num(before)} → {num(after)}")
    else:
        parts += [f"{v!r} {a:.1%} → {b:.1%}" for v, a, b in shift.shares[:3] if a != b]
    return "; ".join(parts) or "unchanged"


def _headline(version: DatasetVersion) -> str:
    return (
        f"[bold]{_esc(version.ref)}[/] · {version.kind} · {version.n_rows:,} rows × "
        f"{version.n_columns} columns · sha256 {version.content_hash[:12]} · "
        f"{when(version.created_at)} by {_esc(version.created_by or '-')}"
    )


def _grow(branch: Tree, nodes: Sequence[Lineage], direction: str) -> None:
    for node in nodes:
        label = _headline(node.version)
        if direction == "children" and node.version.transformation:
            label += f" · {_esc(_json(node.version.transformation))}"
        child = branch.add(label)
        _add_runs(child, node)
        _grow(child, getattr(node, direction), direction)


def _add_runs(branch: Tree, node: Lineage) -> None:
    for run in node.runs:
        models = f" → models {', '.join(run.models)}" if run.models else ""
        branch.add(
            f"run [bold]{_esc(run.name)}[/] {run.run_id} ({run.role}, {run.status}){_esc(models)}"
        )


def _table(title: str, columns: Sequence[str], rows: Any, *, escape: bool = True) -> Table:
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(_esc(str(cell)) if escape else str(cell) for cell in row))
    return table


def _json(value: Any) -> str:
    import json

    return "-" if value is None else json.dumps(value, ensure_ascii=False)


def _looks_like_a_file(path: Path) -> bool:
    suffixes = {".csv", ".tsv", ".txt", ".gz", ".parquet", ".pq"}
    return path.suffix.lower() in suffixes or len(path.parts) > 1


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(text)
