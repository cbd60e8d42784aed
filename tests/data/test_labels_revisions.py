"""Label revisions as dataset versions, and reading the history back."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from modelyard.data.datasets import add_dataset, get_version, load_dataset
from modelyard.data.labels import label_history, revise_labels
from modelyard.errors import ConflictError, DataError, InvalidInputError, NotFoundError
from modelyard.project import Project
from modelyard.store import tables


def _loans() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "loan_id": ["L1", "L2", "L3", "L4"],
            "income": [30_000.0, 52_000.0, 41_000.0, 18_000.0],
            "default": [0, 0, 1, 0],
        }
    )


def _changes(*rows: tuple[object, object, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["id", "new_label", "reason"])


def test_a_revision_is_a_new_version_linked_to_its_parent(project: Project) -> None:
    parent = add_dataset(project, "loans", _loans(), kind="clean")
    revised = revise_labels(
        project, "loans@1", _changes(("L2", 1, "chargeback confirmed")), author="ana"
    )
    assert (revised.name, revised.version, revised.kind) == ("loans", 2, "clean")
    _, frame = load_dataset(project, "loans@2")
    assert frame["default"].tolist() == [0, 1, 1, 0]
    assert frame["default"].dtype == "int64"
    pd.testing.assert_frame_equal(frame.drop(columns="default"), _loans().drop(columns="default"))
    with project.db.read() as session:
        row = session.get(tables.DatasetVersion, revised.id)
        assert row is not None
        record = row.transformation["label_revision"]
        lineage = session.scalars(
            select(tables.DatasetLineage.parent_version_id).where(
                tables.DatasetLineage.child_version_id == revised.id
            )
        ).all()
    assert lineage == [parent.id]
    assert record["column"] == "default" and record["author"] == "ana"
    assert record["source"] == "manual" and record["parent"] == "loans@1"
    assert record["changed"] == [{"id": "L2", "old": 0, "new": 1, "reason": "chargeback confirmed"}]


def test_history_lists_revisions_oldest_first(project: Project) -> None:
    add_dataset(project, "loans", _loans())
    revise_labels(project, "loans@1", _changes(("L2", 1, "audit")), author="ana")
    revise_labels(
        project,
        "loans@2",
        _changes(("L3", 0, "duplicate claim"), ("L4", 1, None)),
        author="ben",
        source="mislabel-review",
    )
    history = label_history(project, "loans")
    assert [h.version.ref for h in history] == ["loans@2", "loans@3"]
    assert [h.parent for h in history] == ["loans@1", "loans@2"]
    assert [(h.author, h.source) for h in history] == [
        ("ana", "manual"),
        ("ben", "mislabel-review"),
    ]
    last = history[1].changes
    assert [(c.id, c.old, c.new, c.reason) for c in last] == [
        ("L3", 1, 0, "duplicate claim"),
        ("L4", 0, 1, None),
    ]
    assert load_dataset(project, "loans")[1]["default"].tolist() == [0, 1, 0, 1]


def test_history_of_a_dataset_without_revisions_is_empty(project: Project) -> None:
    add_dataset(project, "loans", _loans())
    assert label_history(project, "loans") == []
    with pytest.raises(NotFoundError, match="No dataset 'nope'"):
        label_history(project, "nope")


def test_unchanged_labels_and_unknown_ids_are_errors(project: Project) -> None:
    add_dataset(project, "loans", _loans())
    with pytest.raises(DataError, match="already has") as same:
        revise_labels(project, "loans@1", _changes(("L1", 0, "x"), ("L2", 1, "y")), "ana")
    assert same.value.details == {"unchanged_ids": ["L1"]}
    with pytest.raises(DataError, match="not in 'loan_id'") as unknown:
        revise_labels(project, "loans@1", _changes(("L9", 1, "x")), "ana")
    assert unknown.value.details == {"unknown_ids": ["L9"]}
    assert get_version(project, "loans").version == 1  # nothing was written


@pytest.mark.parametrize(
    ("changes", "kwargs", "error", "message"),
    [
        (_changes(("L1", "yes", "x")), {}, DataError, "do not fit label column 'default'"),
        (_changes(("L1", 0.5, "x")), {}, DataError, "do not fit"),
        (_changes(("L1", 1, "a"), ("L1", 0, "b")), {}, InvalidInputError, "more than once"),
        (_changes(("L1", None, "x")), {}, InvalidInputError, "no new label"),
        (pd.DataFrame({"id": ["L1"], "label": [1]}), {}, InvalidInputError, "missing column"),
        (_changes(), {}, InvalidInputError, "nothing to revise"),
        (_changes(("L1", 1, "x")), {"source": "vibes"}, InvalidInputError, "source"),
        (_changes(("L1", 1, "x")), {"column": "grade"}, DataError, "'grade' is not in loans@1"),
    ],
)
def test_malformed_changes_are_refused(
    project: Project, changes: pd.DataFrame, kwargs: dict[str, str], error: type, message: str
) -> None:
    add_dataset(project, "loans", _loans())
    with pytest.raises(error, match=message):
        revise_labels(project, "loans@1", changes, "ana", **kwargs)


def test_an_author_is_required(project: Project) -> None:
    add_dataset(project, "loans", _loans())
    with pytest.raises(InvalidInputError, match="author"):
        revise_labels(project, "loans@1", _changes(("L1", 1, "x")), "  ")


def test_labels_from_a_csv_are_coerced_to_the_column_type(project: Project) -> None:
    frame = _loans().assign(grade=["a", "b", "b", "c"])
    add_dataset(project, "graded", frame)
    csv_like = _changes(("L1", "1", "typo"))  # strings, as read from a CSV
    revise_labels(project, "graded@1", csv_like, "ana")
    assert load_dataset(project, "graded")[1]["default"].tolist() == [1, 0, 1, 0]
    revise_labels(project, "graded@2", _changes(("L4", "b", "re-graded")), "ana", column="grade")
    assert load_dataset(project, "graded")[1]["grade"].tolist() == ["a", "b", "b", "b"]


def test_ids_are_matched_in_the_id_column_type(tmp_path: Path) -> None:
    (tmp_path / "modelyard.yaml").write_text(
        "name: typed\ntask: binary\ntarget: y\ncolumns:\n  id: k\n"
    )
    project = Project.open(tmp_path / "modelyard.yaml")
    try:
        add_dataset(project, "typed", pd.DataFrame({"k": [10, 20, 30], "y": [0, 0, 1]}))
        revise_labels(project, "typed@1", _changes(("20", 1, "text id from a CSV")), "ana")
        [revision] = label_history(project, "typed")
        assert revision.changes[0].id == 20  # recorded as stored in the data
        add_dataset(project, "coded", pd.DataFrame({"k": ["007", "7"], "y": [0, 1]}))
        revise_labels(project, "coded@1", _changes(("007", 1, "leading zeros kept")), "ana")
        assert load_dataset(project, "coded")[1]["y"].tolist() == [1, 1]
        with pytest.raises(DataError, match="not in 'k'"):
            revise_labels(project, "coded@2", _changes((8, 0, "x")), "ana")
    finally:
        project.close()


def test_undoing_a_change_is_a_revision_of_its_own(project: Project) -> None:
    add_dataset(project, "loans", _loans())
    revise_labels(project, "loans@1", _changes(("L2", 1, "audit")), "ana")
    undone = revise_labels(project, "loans@2", _changes(("L2", 0, "audit was wrong")), "ben")
    assert undone.version == 3
    pd.testing.assert_frame_equal(load_dataset(project, "loans@3")[1], _loans())
    assert [h.changes[0].reason for h in label_history(project, "loans")] == [
        "audit",
        "audit was wrong",
    ]


def test_repeating_the_same_revision_is_refused(project: Project) -> None:
    add_dataset(project, "loans", _loans())
    revise_labels(project, "loans@1", _changes(("L2", 1, "audit")), "ana")
    with pytest.raises(ConflictError, match="existing version loans@2"):
        revise_labels(project, "loans@1", _changes(("L2", 1, "audit")), "ana")


def test_without_an_id_column_rows_are_addressed_by_number(tmp_path: Path) -> None:
    (tmp_path / "modelyard.yaml").write_text("name: plain\ntask: binary\ntarget: y\n")
    project = Project.open(tmp_path / "modelyard.yaml")
    try:
        add_dataset(project, "plain", pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]}))
        revise_labels(project, "plain@1", _changes((2, 1, "checked")), "ana")
        assert load_dataset(project, "plain")[1]["y"].tolist() == [0, 1, 1]
        with pytest.raises(DataError, match="row numbers"):
            revise_labels(project, "plain@2", _changes((3, 1, "x")), "ana")
    finally:
        project.close()
