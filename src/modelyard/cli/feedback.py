"""``modelyard feedback …``: attach ground-truth labels to logged predictions.

    modelyard feedback add labels.csv --model loans [--id-column request_id] \\
        [--row-column row] [--label-column label]

The file (CSV or Parquet) is read in batches and stored as one feedback
segment; labels for request ids the prediction log does not hold are kept
too (they may be for requests not flushed yet) and counted as unmatched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelyard.cli._common import console, open_project, sub_app

feedback_app = sub_app("Attach ground-truth labels to logged predictions (delayed labels).")


@feedback_app.command("add")
def feedback_add(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A CSV or Parquet file of labels.")],
    model: Annotated[str, typer.Option("--model", help="The model whose predictions they label.")],
    id_column: Annotated[
        str, typer.Option("--id-column", help="The column holding the request id.")
    ] = "request_id",
    row_column: Annotated[
        str,
        typer.Option(
            "--row-column",
            help="The column holding the row within the request (absent: every label is row 0).",
        ),
    ] = "row",
    label_column: Annotated[
        str, typer.Option("--label-column", help="The column holding the true label.")
    ] = "label",
) -> None:
    """Store the labels in FILE for MODEL's logged predictions, matched by request id and row."""
    from rich.markup import escape

    from modelyard.monitor.feedback import add_feedback_file

    project = open_project(ctx)
    try:
        with console().status(f"reading {escape(str(file))}"):
            added = add_feedback_file(
                project,
                model,
                file,
                id_column=id_column,
                row_column=row_column,
                label_column=label_column,
            )
    finally:
        project.close()
    out = console()
    if added.rows == 0:
        out.print(f"{escape(str(file))} holds no labels; nothing was stored.")
        return
    out.print(
        f"[green]✓[/] Stored {added.rows:,} label(s) for '{escape(model)}': "
        f"{added.matched:,} match a logged prediction, {added.unmatched:,} do not (yet)."
    )
    if added.unmatched:
        out.print(
            "Unmatched labels are kept and count once their predictions are in the log; "
            "check --id-column and --row-column if you expected every one to match."
        )
