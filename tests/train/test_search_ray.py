"""The Ray engine: a 20-trial search on a local Ray instance (the R3.3 acceptance check)."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import pytest
from test_search import loans_data  # tests/train is on sys.path (rootdir "prepend" mode)

from modelyard.errors import TrainingError
from modelyard.project import Project
from modelyard.spec import MetricGoal
from modelyard.train.families import FAMILIES, Choice, Float
from modelyard.train.runs import Run, get_run, list_runs
from modelyard.train.search import search

LIGHTGBM = FAMILIES["lightgbm"]


def _small_lightgbm_defaults(task: str, seed: int) -> dict[str, Any]:
    return {**LIGHTGBM.defaults(task, seed), "num_boost_round": 60, "early_stopping_rounds": 10}


def test_a_20_trial_search_runs_on_a_local_ray_instance(project: Project) -> None:
    import ray  # the `ray` extra: part of the test environment, as PostgreSQL is

    assert not ray.is_initialized()
    parent = Run(project, name="search", kind="search")
    parent.finish()
    family = dataclasses.replace(
        LIGHTGBM,
        defaults=_small_lightgbm_defaults,
        space={  # num_leaves=1 makes LightGBM refuse the trial
            "num_leaves": Choice((1, 7, 15)),
            "learning_rate": Float(0.03, 0.3, log=True),
        },
    )
    seen: list[tuple[int, int]] = []
    result = search(
        project,
        family,
        loans_data(1_500),
        method="random",
        trials=20,
        folds=3,
        engine="ray",
        seed=3,
        metric=MetricGoal(name="roc_auc"),
        parent_run_id=parent.id,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert not ray.is_initialized()  # it started Ray, so it shut it down
    assert seen == [(n, 20) for n in range(1, 21)]
    assert sorted(t.number for t in result.trials) == list(range(20))
    broken = [t for t in result.trials if t.params["num_leaves"] == 1]
    assert broken and all(t.state == "failed" for t in broken)
    assert all("num_leaves" in (t.error or "") for t in broken)
    assert all(t.state in ("complete", "pruned") for t in result.trials if t not in broken)
    assert any(t.state == "complete" for t in result.trials)

    runs = {r.id: r for r in list_runs(project, 100, parent=parent.id)}
    assert len(runs) == 20
    assert set(runs) == {t.run_id for t in result.trials}
    for trial in result.trials:
        run = runs[trial.run_id]
        assert run.kind == "trial"
        assert run.status == ("failed" if trial.state == "failed" else "finished")
        assert run.params["num_threads"] == "1"  # one thread per Ray task
    best = max(t.score for t in result.trials if t.score is not None)
    assert result.best_score == best
    winner = get_run(project, next(t.run_id for t in result.trials if t.score == best))
    assert winner.metrics["cv_roc_auc"] == pytest.approx(best)
    assert [p.step for p in winner.history["fold_roc_auc"]] == [0, 1, 2]


def test_without_ray_installed_the_error_says_what_to_install(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(TrainingError, match=r"install modelyard\[ray\]"):
        search(
            project,
            FAMILIES["logistic"],
            loans_data(300),
            method="grid",
            trials=1,
            folds=2,
            engine="ray",
            metric=MetricGoal(name="roc_auc"),
        )
    assert list_runs(project, kind="trial") == []
