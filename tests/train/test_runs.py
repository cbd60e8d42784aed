"""Runs: what is logged is what is read back, written whole in one transaction, on every backend."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy import event, func, select

from modelyard.data.datasets import add_dataset
from modelyard.data.demo import DEMO_SPEC
from modelyard.errors import ConflictError, InvalidInputError, NotFoundError
from modelyard.project import Project
from modelyard.store import tables
from modelyard.train import runs
from modelyard.train.runs import (
    ArtifactRef,
    MetricPoint,
    Run,
    RunRecord,
    get_run,
    list_runs,
    metric_history,
    resolve_run_id,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store_project(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Project]:
    """The demo project on a fresh metadata database, once per backend."""
    monkeypatch.setenv("MODELYARD_DB_URL", db_url)
    monkeypatch.delenv("MODELYARD_ARTIFACTS", raising=False)
    (tmp_path / "modelyard.yaml").write_text(DEMO_SPEC)
    project = Project.open(tmp_path / "modelyard.yaml")
    yield project
    project.close()


def _metric_rows(project: Project, run_id: str) -> int:
    with project.db.read() as session:
        count = select(func.count()).where(tables.RunMetric.run_id == run_id)
        return int(session.scalar(count) or 0)


def test_everything_a_run_logs_is_read_back(store_project: Project) -> None:
    project = store_project
    version = add_dataset(project, "loans", pd.DataFrame({"age": [30, 40], "default": [0, 1]}))
    blob = project.artifacts.put_bytes(b"model bytes")
    with Run(project, name="search", kind="search", seed=3) as parent:
        pass
    with Run(project, name="lgbm", seed=7, parent_id=parent.id) as run:
        run.split = {"train": 64, "test": 20}
        run.log_params({"learning_rate": 0.05, "num_leaves": 31})
        run.log_metric("loss", 0.9, step=0, timestamp=T0)
        run.log_metric("loss", 0.5, step=1, timestamp=T0 + timedelta(seconds=1))
        run.log_metrics({"roc_auc": 0.81, "recall": 0.7}, step=1)
        run.log_batch(
            metrics=[("loss", 0.3, 2), ("roc_auc", 0.83, 2, T0)],
            params={"features": 12},
            tags={"note": "first try"},
        )
        run.set_tags({"owner": "ana"})
        run.log_artifact("model", blob)
        run.add_input(version.id, "train")

    record = get_run(project, run.id)
    assert isinstance(record, RunRecord)
    assert (record.name, record.kind, record.status, record.seed) == (
        "lgbm",
        "train",
        "finished",
        7,
    )
    assert record.params == {"features": "12", "learning_rate": "0.05", "num_leaves": "31"}
    assert record.metrics == {"loss": 0.3, "recall": 0.7, "roc_auc": 0.83}
    assert record.history["loss"][:2] == [
        MetricPoint(0, 0.9, T0),
        MetricPoint(1, 0.5, T0 + timedelta(seconds=1)),
    ]
    assert [p.step for p in record.history["roc_auc"]] == [1, 2]
    assert metric_history(project, run.id, "loss") == record.history["loss"]
    assert record.tags == {"note": "first try", "owner": "ana"}
    assert record.artifacts == (ArtifactRef("model", blob.digest, blob.size),)
    assert [(i.ref, i.role, i.dataset_version_id) for i in record.inputs] == [
        ("loans@1", "train", version.id)
    ]
    assert record.split == {"train": 64, "test": 20}
    assert record.spec_hash == project.spec_hash
    assert record.environment["packages"]["scikit-learn"]
    assert "git" in record.code_version
    assert record.wall_seconds is not None and record.wall_seconds >= 0
    assert record.cpu_seconds is not None and record.cpu_seconds >= 0
    assert record.ended_at is not None and record.ended_at >= record.started_at
    assert record.parent_id == parent.id
    assert get_run(project, parent.id).children == (run.id,)


def test_the_latest_value_is_the_highest_step_then_the_last_logged(store_project: Project) -> None:
    with Run(store_project, name="r") as run:
        run.log_metric("auc", 0.9, step=5, timestamp=T0)
        run.log_metric("auc", 0.7, step=2, timestamp=T0 + timedelta(hours=1))
        run.log_metric("auc", 0.8, step=5, timestamp=T0 + timedelta(minutes=1))
    assert get_run(store_project, run.id).metrics == {"auc": 0.8}
    (summary,) = list_runs(store_project)
    assert summary.metrics == {"auc": 0.8}


def test_ten_thousand_metrics_are_written_in_one_transaction(store_project: Project) -> None:
    """The rows appear all at once: just before the one commit, another connection sees none."""
    project = store_project
    run = Run(project, name="long")
    run.log_batch(metrics=[(f"m{i % 10}", i / 7, i // 10) for i in range(10_000)])
    commits: list[int | None] = []

    def on_commit(_connection: sa.Connection) -> None:
        if commits:  # the snapshot read below, which commits too
            commits.append(None)
            return
        commits.append(-1)
        commits[0] = _metric_rows(project, run.id)  # what others see just before the commit

    event.listen(sa.Engine, "commit", on_commit)
    try:
        run.finish()
    finally:
        event.remove(sa.Engine, "commit", on_commit)
    assert commits == [0, None]  # finish committed once, and nothing was visible before
    assert _metric_rows(project, run.id) == 10_000
    assert len(get_run(project, run.id).history["m3"]) == 1_000


def test_a_write_that_fails_leaves_nothing_behind(store_project: Project) -> None:
    run = Run(store_project, name="bad")
    run.log_batch(metrics=[("loss", 1.0, s) for s in range(100)], params={"a": 1})
    run.add_input("no-such-dataset-version", "train")
    with pytest.raises(ConflictError, match="nothing was saved"):
        run.finish()
    assert list_runs(store_project) == []
    assert _metric_rows(store_project, run.id) == 0


def test_a_failing_body_is_recorded_as_failed_and_ctrl_c_as_killed(project: Project) -> None:
    with pytest.raises(ZeroDivisionError), Run(project, name="boom") as failed:
        failed.log_metric("loss", 1.0)
        _ = 1 / 0
    with pytest.raises(KeyboardInterrupt), Run(project, name="stopped") as killed:
        raise KeyboardInterrupt
    record = get_run(project, failed.id)
    assert record.status == "failed"
    assert record.tags["error"] == "ZeroDivisionError: division by zero"
    assert record.metrics == {"loss": 1.0}
    assert get_run(project, killed.id).status == "killed"


def test_bad_values_are_refused_when_logged_not_at_finish(project: Project) -> None:
    run = Run(project, name="r")
    with pytest.raises(InvalidInputError, match="'loss' at step 3 is NaN"):
        run.log_metric("loss", float("nan"), step=3)
    with pytest.raises(InvalidInputError, match="without a time zone"):
        run.log_metric("loss", 1.0, timestamp=datetime(2024, 1, 1))
    with pytest.raises(InvalidInputError, match="number value and an integer step"):
        run.log_metric("loss", "high")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="integer step"):
        run.log_metric("loss", 1.0, step=1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="1 to 250 characters"):
        run.log_params({"x" * 251: 1})
    with pytest.raises(InvalidInputError, match="NaN"):
        run.log_batch(metrics=[("a", 1.0, 0), ("b", float("nan"), 0)], params={"p": 1})
    assert (run.metrics, run.params) == ([], {})  # a bad batch adds nothing
    run.log_metric("inf_is_fine", float("inf"))
    run.finish()
    assert get_run(project, run.id).metrics == {"inf_is_fine": float("inf")}


def test_a_recorded_run_cannot_change(project: Project) -> None:
    with Run(project, name="r") as run:
        run.finish()  # finishing inside the block is allowed; the exit does not write twice
    with pytest.raises(ConflictError, match="already recorded"):
        run.log_metric("late", 1.0)
    with pytest.raises(ConflictError, match="already recorded"):
        run.finish()
    with pytest.raises(InvalidInputError, match="not 'running'"):
        Run(project, name="r2").finish("running")


def test_runs_are_listed_newest_first_and_filtered(project: Project) -> None:
    with Run(project, name="search", kind="search") as search:
        pass
    trials = []
    for i in range(3):
        with Run(project, name=f"trial-{i}", kind="trial", parent_id=search.id) as trial:
            trial.log_metrics({"roc_auc": 0.7 + i / 100})
        trials.append(trial.id)
    with pytest.raises(RuntimeError), Run(project, name="broken", kind="trial"):
        raise RuntimeError("no data")

    assert [r.name for r in list_runs(project)][:2] == ["broken", "trial-2"]
    assert [r.id for r in list_runs(project, parent=search.id)] == trials[::-1]
    assert [r.name for r in list_runs(project, kind="search")] == ["search"]
    assert [r.name for r in list_runs(project, status="failed")] == ["broken"]
    assert len(list_runs(project, limit=2)) == 2
    assert list_runs(project, parent=search.id)[0].metrics == {"roc_auc": pytest.approx(0.72)}
    with pytest.raises(InvalidInputError, match="use one of running, finished"):
        list_runs(project, status="done")


def test_a_run_is_found_by_a_unique_id_prefix(project: Project) -> None:
    ids = ["01J0000000000000000000AAAA", "01J0000000000000000000AAAB", "01J00000000000000000000BBB"]
    for run_id in ids:
        Run(project, name=f"run-{run_id[-4:]}", id=run_id).finish()
    assert get_run(project, "01J00000000000000000000B").id == ids[2]
    assert resolve_run_id(project, ids[0]) == ids[0]
    with pytest.raises(InvalidInputError, match="ambiguous") as ambiguous:
        get_run(project, "01J0000000000000000000AAA")
    assert f"{ids[0]} (run-AAAA), {ids[1]} (run-AAAB)" in ambiguous.value.message
    assert ambiguous.value.details == ids[:2]
    with pytest.raises(NotFoundError, match="No run 'zzz'"):
        get_run(project, "zzz")
    with pytest.raises(NotFoundError, match="No run '01J%'"):
        get_run(project, "01J%")  # LIKE wildcards are taken literally


def test_an_unknown_metric_history_names_the_metrics_there_are(project: Project) -> None:
    with Run(project, name="r") as run:
        run.log_metrics({"roc_auc": 0.8, "f1": 0.5})
    with pytest.raises(NotFoundError, match="has no metric 'auc'; it has f1, roc_auc"):
        metric_history(project, run.id, "auc")


def test_code_version_is_looked_up_once_per_burst_of_runs(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []

    def fake_code_version(root: Path) -> dict[str, Any]:
        calls.append(root)
        return {"git": f"commit-{len(calls)}", "dirty": False}

    monkeypatch.setattr(runs, "code_version", fake_code_version)
    monkeypatch.setattr(runs, "_code_versions", {})
    first = [Run(project, name=f"r{i}") for i in range(5)]
    for run in first:
        run.finish()
    assert calls == [project.root]
    monkeypatch.setattr(runs, "CODE_VERSION_TTL_SECONDS", -1.0)  # the cache has expired
    later = Run(project, name="later")
    later.finish()
    assert get_run(project, first[-1].id).code_version == {"git": "commit-1", "dirty": False}
    assert get_run(project, later.id).code_version["git"] == "commit-2"


def test_bad_names_are_refused_before_any_work(project: Project) -> None:
    with pytest.raises(InvalidInputError, match="1 to 200 characters"):
        Run(project, name="")
    with pytest.raises(InvalidInputError, match="1 to 32 characters"):
        Run(project, name="r", kind="k" * 33)
