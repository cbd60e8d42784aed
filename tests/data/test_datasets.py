"""Registering datasets: content identity, versions, lineage, atomicity, reading back."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from modelyard.data.datasets import (
    add_dataset,
    get_version,
    iter_batches,
    lineage,
    list_datasets,
    load_dataset,
    set_schema,
)
from modelyard.data.demo import DEMO_SPEC
from modelyard.data.schema import Schema
from modelyard.errors import DataError, InvalidInputError, NotFoundError
from modelyard.project import Project
from modelyard.registry.versions import register_model
from modelyard.store import tables
from modelyard.train.runs import Run


def _frame(rows: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "loan_id": [f"L{i:05d}" for i in range(rows)],
            "age": rng.integers(18, 80, rows),
            "income": rng.normal(50_000, 10_000, rows).round(2),
            "region": rng.choice(["north", "south"], rows),
            "default": rng.integers(0, 2, rows),
        }
    )


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    path = tmp_path / "loans.csv"
    _frame().to_csv(path, index=False)
    return path


@pytest.fixture
def any_project(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    """The demo project on each metadata backend (SQLite and PostgreSQL)."""
    monkeypatch.setenv("MODELYARD_DB_URL", db_url)
    monkeypatch.setenv("MODELYARD_ARTIFACTS", str(tmp_path / "artifacts"))
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "modelyard.yaml").write_text(DEMO_SPEC)
    opened = Project.open(folder / "modelyard.yaml")
    yield opened
    opened.close()


def test_the_same_file_twice_is_the_same_version_and_a_changed_byte_a_new_one(
    any_project: Project, csv: Path
) -> None:
    first = add_dataset(any_project, "loans", csv)
    again = add_dataset(any_project, "loans", csv)
    assert (first.version, again.id, again.content_hash) == (1, first.id, first.content_hash)
    csv.write_bytes(csv.read_bytes().replace(b"north", b"North", 1))
    changed = add_dataset(any_project, "loans", csv)
    assert changed.version == 2 and changed.content_hash != first.content_hash
    assert [v.ref for v in list_datasets(any_project)] == ["loans@1", "loans@2"]
    assert first.source is not None and first.source["file"] == str(csv)


def test_a_clean_version_equal_to_its_parent_is_its_own_version(
    any_project: Project, csv: Path
) -> None:
    raw = add_dataset(any_project, "loans", csv)
    _, frame = load_dataset(any_project, raw.ref)
    step = {"step": "dedupe", "removed": 0}
    clean = add_dataset(
        any_project, "loans", frame, kind="clean", parents=[raw.ref], transformation=step
    )
    assert clean.version == 2 and clean.kind == "clean" and clean.parents == ("loans@1",)
    assert clean.transformation == step
    assert (
        add_dataset(
            any_project, "loans", frame, kind="clean", parents=[raw.id], transformation=step
        ).id
        == clean.id
    ), "a parent given by id is the same lineage as by ref"


def test_versions_are_numbered_per_name(project: Project) -> None:
    a1 = add_dataset(project, "a", _frame(10))
    b1 = add_dataset(project, "b", _frame(10))
    a2 = add_dataset(project, "a", _frame(11))
    assert (a1.version, b1.version, a2.version) == (1, 1, 2)
    assert get_version(project, "a").id == a2.id
    assert get_version(project, "a@1").id == a1.id
    assert get_version(project, a1.id).ref == "a@1"


def test_schema_is_inferred_with_roles_from_the_spec(project: Project, csv: Path) -> None:
    version = add_dataset(project, "loans", csv)
    schema = version.schema
    assert schema.column("loan_id").role == "id" and schema.column("loan_id").unique
    assert schema.column("default").role == "target"
    assert schema.column("region").categories == ("north", "south")
    assert get_version(project, "loans@1").schema == schema


def test_rows_read_back_whole_and_in_bounded_batches(project: Project, csv: Path) -> None:
    version = add_dataset(project, "loans", csv, block_size=1024)
    _, frame = load_dataset(project, version.ref)
    pd.testing.assert_frame_equal(frame, pd.read_csv(csv), check_dtype=False)
    batches = list(iter_batches(project, version.ref, batch_rows=64, columns=["age"]))
    assert [b.num_rows for b in batches] == [64, 64, 64, 64, 44]
    assert pa.Table.from_batches(batches).column("age").to_pylist() == frame["age"].tolist()
    with pytest.raises(DataError, match=r"no column\(s\) \['nope'\]"):
        iter_batches(project, version.ref, columns=["nope"])


def test_lineage_links_parents_children_runs_and_models(project: Project, csv: Path) -> None:
    raw = add_dataset(project, "loans", csv)
    _, frame = load_dataset(project, raw.ref)
    clean = add_dataset(project, "loans", frame.dropna(), kind="clean", parents=[raw.ref])
    features = add_dataset(project, "feats", frame[["age"]], kind="features", parents=[clean.ref])
    with Run(project, name="lgbm") as run:
        run.add_input(features.id, "train")
    register_model(
        project,
        "loans-model",
        digest="0" * 64,
        flavor="lightgbm",
        run_id=run.id,
        signature={},
        metrics={},
        gates=[],
    )
    tree = lineage(project, clean.ref)
    assert [p.version.ref for p in tree.parents] == ["loans@1"]
    assert [c.version.ref for c in tree.children] == ["feats@1"]
    (use,) = tree.children[0].runs
    assert (use.run_id, use.role, use.models) == (run.id, "train", ("loans-model@1",))
    root = lineage(project, raw.ref)
    assert root.children[0].children[0].version.ref == "feats@1"
    assert root.parents == ()


def test_an_edited_schema_is_stored_with_who_and_when(project: Project, csv: Path) -> None:
    version = add_dataset(project, "loans", csv)
    text = version.schema.to_yaml().replace("max: 79", "max: 65", 1)
    edited = set_schema(project, version.ref, Schema.from_yaml(text), edited_by="ana")
    assert edited.schema.column("age").max == 65
    assert edited.schema.edited_by == "ana" and edited.schema.edited_at
    assert get_version(project, version.ref).schema == edited.schema
    assert edited.content_hash == version.content_hash, "the schema is metadata"
    fewer = Schema(version.schema.columns[1:])
    with pytest.raises(DataError, match=r"missing \['loan_id'\]"):
        set_schema(project, version.ref, fewer)


def test_bad_arguments_are_refused_before_any_work(project: Project, csv: Path) -> None:
    with pytest.raises(InvalidInputError, match="kind must be one of raw, clean, features"):
        add_dataset(project, "loans", csv, kind="gold")
    with pytest.raises(InvalidInputError, match="no '@'"):
        add_dataset(project, "loans@2", csv)
    with pytest.raises(InvalidInputError, match="JSON object"):
        add_dataset(project, "loans", csv, transformation={"f": object()})
    with pytest.raises(NotFoundError, match="No dataset version 'loans@9'"):
        add_dataset(project, "loans", csv, parents=["loans@9"])
    with pytest.raises(InvalidInputError, match="is a number"):
        get_version(project, "loans@latest")
    assert list_datasets(project) == []


def _nothing_visible(project: Project) -> None:
    with project.db.read() as session:
        assert session.scalars(sa.select(tables.DatasetVersion)).all() == []
        assert session.scalars(sa.select(tables.Dataset)).all() == []


def test_a_failed_registration_leaves_nothing(project: Project, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    rows = "".join(f"{i},{i}\n" for i in range(500))
    path.write_text(f"a,b\n{rows}1,2,3\n")
    with pytest.raises(DataError, match="line 502"):
        add_dataset(project, "loans", path, block_size=512)
    _nothing_visible(project)
    assert list(project.artifacts.iter_digests()) == []
    assert list((project.root / ".modelyard" / "tmp").iterdir()) == []


WORKER = """
import sys
from modelyard.data import datasets
from modelyard.project import Project

project = Project.open(sys.argv[1])
where = sys.argv[3]

def pause(label):
    print(label, flush=True)
    sys.stdin.readline()  # blocks until the test kills this process

progress = None
if where == "reading":
    progress = lambda done, total: pause("reading")
elif where == "stored":
    put = project.artifacts.put_file
    def put_file(path):
        blob = put(path)
        pause("stored")
        return blob
    project.artifacts.put_file = put_file
else:  # inside the write transaction, after the row is flushed, before the commit
    infos = datasets._infos
    def in_transaction(session, rows):
        pause("in-transaction")
        return infos(session, rows)
    datasets._infos = in_transaction
datasets.add_dataset(project, "loans", sys.argv[2], block_size=4096, progress=progress)
print("finished", flush=True)
"""


@pytest.mark.parametrize("where", ["reading", "stored", "in-transaction"])
def test_a_killed_registration_leaves_nothing_visible(
    project: Project, csv: Path, tmp_path: Path, where: str
) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    child = subprocess.Popen(
        [sys.executable, str(script), str(project.spec_path), str(csv), where],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    child.kill()
    _, errors = child.communicate()
    assert line == where, errors

    _nothing_visible(project)
    assert list_datasets(project) == []
    version = add_dataset(project, "loans", csv)
    assert version.ref == "loans@1", "the killed attempt must not use up a version number"
