"""``modelyard data agreement | adjudicate | label-issues | revise-labels | label-history``.

Label quality commands, registered on the ``data`` group. An annotation table
(one column per annotator) is read from a CSV / Parquet PATH or from a
dataset version NAME@V.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from modelyard.cli._common import console, num, open_project, table, when
from modelyard.cli.data import data_app

if TYPE_CHECKING:
    import pandas as pd

SourceArgument = Annotated[
    str, typer.Argument(help="A CSV / Parquet file, or a dataset version NAME@V.")
]
ColumnsOption = Annotated[
    str | None,
    typer.Option(help="Annotator columns, comma-separated (default: all but the id column)."),
]
IdOption = Annotated[
    str | None,
    typer.Option("--id", help="The item id column (default for a dataset: the spec's id)."),
]


@data_app.command("agreement")
def data_agreement(
    ctx: typer.Context,
    source: SourceArgument,
    columns: ColumnsOption = None,
    id_column: IdOption = None,
) -> None:
    """Inter-annotator agreement: Cohen's and Fleiss' kappa, Krippendorff's alpha."""
    from modelyard.data.labels import summarize_agreement

    annotations = _annotations(ctx, source, columns, id_column)
    summary = summarize_agreement(annotations)
    out = console()
    names = summary.annotators
    out.print(f"{summary.items:,} items; annotators: {escape(', '.join(names))}")
    kappas = summary.pairwise_cohen
    rows = [(escape(a), *(num(float(kappas.loc[a, b])) for b in names)) for a in names]
    table("Cohen's kappa (pairwise, items both labelled)", ("", *map(escape, names)), rows)
    fleiss = (
        num(summary.fleiss_kappa)
        if summary.fleiss_kappa is not None
        else f"n/a — {summary.fleiss_note}"
    )
    out.print(f"[bold]Fleiss' kappa:[/] {fleiss}", highlight=False)
    out.print(f"[bold]Krippendorff's alpha (nominal):[/] {num(summary.krippendorff_alpha)}")
    rates = summary.disagreement
    rows = [
        (escape(str(r.Index)), str(r.compared), str(r.disagreed), num(float(r.rate)))
        for r in rates.itertuples()
    ]
    table("Disagreement with the others' majority", ("annotator", "items", "differs", "rate"), rows)


@data_app.command("adjudicate")
def data_adjudicate(
    ctx: typer.Context,
    source: SourceArgument,
    out: Annotated[Path, typer.Option(help="CSV file to write: item id and majority label.")],
    columns: ColumnsOption = None,
    id_column: IdOption = None,
    tie_break: Annotated[
        str | None,
        typer.Option(help="first | random(SEED) | an annotator column (default: leave ties open)."),
    ] = None,
) -> None:
    """Majority label per item; ties are listed and left empty unless --tie-break."""
    from modelyard.data.labels import majority_vote

    annotations = _annotations(ctx, source, columns, id_column)
    result = majority_vote(annotations, tie_break=tie_break)
    item = annotations.index.name or "item"
    result.labels.rename("label").rename_axis(item).to_csv(out)
    open_ties = int(result.ties["chosen"].isna().sum())
    console().print(
        f"[green]✓[/] Wrote {len(result.labels):,} labels to {out}: "
        f"{len(result.ties)} tie(s), {open_ties} left open."
    )
    if len(result.ties):
        rows = [
            (
                escape(str(t.item)),
                escape(", ".join(map(str, t.labels))),
                str(t.votes),
                escape(num(t.chosen)),
            )
            for t in result.ties.itertuples()
        ]
        table("Ties", (escape(item), "tied labels", "votes each", "chosen"), rows)


@data_app.command("label-issues")
def data_label_issues(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Dataset version NAME or NAME@V.")],
    top: Annotated[int, typer.Option(min=1, help="How many rows to show.")] = 20,
    folds: Annotated[int, typer.Option(min=2, help="Cross-validation folds.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed for the folds and the model.")] = 0,
) -> None:
    """Rows whose label the data contradicts (confident learning), worst first."""
    from modelyard.data.datasets import load_dataset
    from modelyard.data.encoding import FeatureEncoder
    from modelyard.data.labels import find_label_issues

    project = open_project(ctx)
    version, frame = load_dataset(project, ref)
    target, id_column = project.spec.target, project.spec.columns.id
    labelled = frame[frame[target].notna()].reset_index(drop=True)
    features = project.spec.feature_columns(list(labelled.columns))
    X = FeatureEncoder.fit(labelled, features).transform(labelled)
    issues = find_label_issues(X, labelled[target], folds=folds, seed=seed)
    console().print(
        f"{version.ref}: {len(issues):,} of {len(labelled):,} labelled rows look mislabelled "
        f"({len(issues) / len(labelled):.1%}); {len(features)} features, {folds}-fold "
        f"out-of-fold probabilities."
    )
    has_id = id_column is not None and id_column in labelled.columns
    rows = [
        (
            escape(str(labelled[id_column].iloc[i.row])) if has_id else str(i.row),
            escape(str(i.given)),
            escape(str(i.suggested)),
            f"{i.self_confidence:.3f}",
            f"{i.margin:+.3f}",
        )
        for i in issues.head(top).itertuples()
    ]
    key = id_column if has_id and id_column else "row"
    table(f"Likely mislabelled ({target})", (key, "given", "suggested", "P(given)", "margin"), rows)


@data_app.command("revise-labels")
def data_revise_labels(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="Dataset version NAME@V to revise.")],
    changes: Annotated[Path, typer.Argument(help="CSV with columns id, new_label, reason.")],
    author: Annotated[str, typer.Option(help="Who is changing the labels.")],
    source: Annotated[str, typer.Option(help="adjudication | manual | mislabel-review")] = "manual",
) -> None:
    """Record label changes as a new version of the dataset."""
    import pandas as pd

    from modelyard.data.datasets import read_table
    from modelyard.data.labels import revise_labels
    from modelyard.errors import DataError

    # Ids read as text keep leading zeros ("007"); they are matched to the id column's type.
    if changes.suffix.lower() != ".csv" or not changes.exists():
        edits = read_table(changes)
    else:
        try:
            edits = pd.read_csv(changes, dtype={"id": str})
        except (ValueError, OSError) as exc:
            raise DataError(f"Cannot read {changes}: {exc}") from exc
    version = revise_labels(open_project(ctx), ref, edits, author, source=source)
    console().print(f"[green]✓[/] {version.ref}: {len(edits):,} label(s) changed from {ref}.")


@data_app.command("label-history")
def data_label_history(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Dataset name.")]
) -> None:
    """List the label revisions of a dataset, oldest first."""
    from modelyard.data.labels import label_history

    rows = [
        (
            r.version.ref,
            r.parent or "-",
            r.column,
            str(len(r.changes)),
            r.author,
            r.source,
            when(r.version.created_at),
        )
        for r in label_history(open_project(ctx), name)
    ]
    columns = ("version", "revises", "column", "changed", "author", "source", "created")
    table(f"Label revisions of {name}", columns, rows)


def _annotations(
    ctx: typer.Context, source: str, columns: str | None, id_column: str | None
) -> pd.DataFrame:
    """The annotator columns of ``source``, indexed by the item id when there is one."""
    from modelyard.data.labels.annotations import check_table

    frame, default_id = _read(ctx, source)
    id_column = id_column or (default_id if default_id in frame.columns else None)
    if id_column is not None:
        if id_column not in frame.columns:
            from modelyard.errors import DataError

            raise DataError(f"Id column '{id_column}' is not in {source}: {list(frame.columns)}.")
        frame = frame.set_index(id_column)
    chosen = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    return check_table(frame, chosen)


def _read(ctx: typer.Context, source: str) -> tuple[pd.DataFrame, str | None]:
    from modelyard.data.datasets import load_dataset, read_table

    path = Path(source)
    if path.exists():
        return read_table(path), None
    project = open_project(ctx)
    return load_dataset(project, source)[1], project.spec.columns.id
