"""What every command module shares: the console, the project, tables, number formats."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from modelyard.project import Project

SpecOption = Annotated[
    Path | None,
    typer.Option(
        "--spec", help="The project spec to use (default: modelyard.yaml in this folder)."
    ),
]


def sub_app(help_text: str) -> typer.Typer:
    """A command group (``modelyard data …``)."""
    return typer.Typer(help=help_text, no_args_is_help=True)


def console() -> Console:
    from rich.console import Console

    # Piped output gets a width that fits the tables instead of Rich's 80 columns.
    return Console() if sys.stdout.isatty() else Console(width=120)


def open_project(ctx: typer.Context) -> Project:
    """The project named by ``--spec``, or found in the current folder."""
    from modelyard.project import Project

    return Project.open(ctx.obj.get("spec") if ctx.obj else None)


def table(title: str, columns: tuple[str, ...], rows: Any) -> None:
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console().print(table)


def num(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"
