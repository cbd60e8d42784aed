"""Hyper-parameter search: grid, random or TPE over a family's space, k-fold cross-validated.

    result = search(project, family, data, method="tpe", trials=40, metric=goal,
                    parent_run_id=parent.id)
    result.best_params      # family defaults overridden by the best sampled values
    result.trials           # one TrialResult per trial, each also a child run

Object model::

    search()  ──  an Optuna study (in memory, or shared in ``storage``)
      │            sampler: grid → GridSampler over each param's ``grid`` (Choice → its
      │            values; a param without grid values keeps its default),
      │            random → RandomSampler(seed), tpe → TPESampler(seed, multivariate)
      │            pruner: MedianPruner(n_startup_trials=5, n_warmup_steps=1)
      ├── the driver (this process): asks the study for a trial, sends its folds one at
      │   a time to an engine, reports the running mean after each fold and prunes a
      │   trial that falls below the median; tells the study the outcome
      ├── an engine (``modelyard.train.engines``): "local" runs folds here, "ray" as
      │   Ray tasks, one per CPU, several trials at once
      └── per trial a child run (kind "trial", parent ``parent_run_id``), written by
          the driver: params, ``fold_<metric>`` (the fold's score) and ``cv_<metric>``
          (the running mean, as the pruner saw it) at step = fold, so the last value of
          ``cv_<metric>`` is the trial's score; tags ``state``, ``study``, ``trial``
          and, for a failed trial, ``error``

A trial whose fit raises is recorded as failed and the search goes on. Pruning
works the same on both engines because folds are dispatched one by one.

Shared storage: with ``storage`` (a SQLAlchemy URL, e.g. ``postgresql+psycopg://…``)
the study ``study_name`` (default ``<project>-<family>-<method>``) is created or
loaded, so searches on several machines add trials to one study; each call runs
``trials`` trials of its own (a grid stops early once every point has been taken)
and its ``SearchResult`` covers those. A trial left running by a process that
was killed stays "RUNNING" in the shared study; an interrupted search marks its
own unfinished trials failed (their runs "killed").
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import optuna
import sqlalchemy as sa
from optuna.trial import TrialState

from modelyard.errors import StoreError, TrainingError
from modelyard.project import Project
from modelyard.spec import MetricGoal
from modelyard.store import tables
from modelyard.train.crossval import CVJob, check_metric, make_folds
from modelyard.train.engines import Engine, FoldOutcome, FoldTask, open_engine
from modelyard.train.families import Choice, CVData, Family, Float, Int, Param
from modelyard.train.runs import Run

__all__ = ["METHODS", "SearchResult", "TrialResult", "grid_space", "search"]

Method = Literal["grid", "random", "tpe"]
EngineName = Literal["local", "ray"]
TrialStateName = Literal["complete", "pruned", "failed"]
Progress = Callable[[int, int], None]

METHODS: tuple[Method, ...] = ("grid", "random", "tpe")
PRUNER_STARTUP_TRIALS = 5
PRUNER_WARMUP_FOLDS = 1
STORAGE_LOCK_KEY = 0x6D79_6F70_7475_6E61
"""PostgreSQL advisory lock serialising Optuna's table creation ("myoptuna")."""


@dataclass
class TrialResult:
    """One trial: its params, mean CV score (None unless complete) and its run.

    ``seconds`` is the compute time of its folds, wherever they ran."""

    number: int
    params: dict[str, Any]
    score: float | None
    state: TrialStateName
    error: str | None
    run_id: str
    fold_scores: list[float]
    seconds: float


@dataclass
class SearchResult:
    """The best complete trial of this search, and every trial it ran."""

    best_params: dict[str, Any]
    best_score: float
    trials: list[TrialResult]
    study_name: str


def search(
    project: Project,
    family: Family,
    data: CVData,
    *,
    method: Method,
    trials: int,
    folds: int = 5,
    engine: EngineName = "local",
    seed: int = 42,
    parent_run_id: str | None = None,
    storage: str | None = None,
    metric: MetricGoal,
    progress: Progress | None = None,
    study_name: str | None = None,
) -> SearchResult:
    """Search ``family``'s space on ``data`` by ``folds``-fold CV, ``trials`` trials at most.

    Raises ``TrainingError`` before any work for a bad argument, and after the
    search if no trial completed (every trial is still recorded as a run).
    """
    _check_arguments(project, family, data, method, trials, metric, parent_run_id)
    if storage is not None:
        _check_storage(project, storage)
    job = CVJob(family.fit, family.flavor, data, make_folds(data, folds, seed), metric.name)
    name = study_name or f"{project.name}-{family.name}-{method}"
    sampler = _sampler(method, family.space, seed)
    planned = min(trials, sampler.size) if isinstance(sampler, _GridSampler) else trials
    with _opened_study(name, storage, sampler, metric) as study, open_engine(engine, job) as runner:
        driver = _Driver(project, family, job, study, runner, method, seed, parent_run_id)
        results = driver.run(planned, progress)
    return _result(results, name, metric, family)


# ---------------------------------------------------------------------- checks


def _check_arguments(
    project: Project,
    family: Family,
    data: CVData,
    method: str,
    trials: int,
    metric: MetricGoal,
    parent_run_id: str | None,
) -> None:
    if method not in METHODS:
        raise TrainingError(f"Unknown search method {method!r}; use one of {', '.join(METHODS)}.")
    if trials < 1:
        raise TrainingError(f"A search needs trials >= 1; got {trials}.")
    if data.task not in family.tasks:
        raise TrainingError(
            f"Family '{family.name}' does not train {data.task} tasks (it trains "
            f"{', '.join(sorted(family.tasks))}); pick another family."
        )
    check_metric(metric.name, data.task)
    if parent_run_id is not None:
        _check_parent(project, parent_run_id)


def _check_storage(project: Project, storage: str) -> None:
    """A study needs a database of its own: Optuna and modelyard both keep their schema
    revision in a table called ``alembic_version``."""
    try:
        url = sa.make_url(_with_driver(storage))
    except sa.exc.ArgumentError:
        raise TrainingError(
            "The study storage is not a database URL; use postgresql+psycopg://user:password@"
            "host:5432/dbname, or sqlite:///path/to/optuna.db."
        ) from None
    mine = project.db.url
    if _where(url) == _where(mine):
        raise TrainingError(
            f"The study storage {_safe(storage)} is the project's metadata database. Optuna "
            "keeps its own schema there, which would clash with modelyard's: give the "
            "studies a database of their own (for example CREATE DATABASE optuna)."
        )


def _where(url: sa.URL) -> tuple[Any, ...]:
    return (url.get_backend_name(), url.host, url.port, url.database)


def _check_parent(project: Project, run_id: str) -> None:
    """Trials point at their parent run, so it must be recorded before the first one."""
    with project.db.read() as session:
        found = session.scalar(
            sa.select(tables.Run.id).where(
                tables.Run.id == run_id, tables.Run.project_id == project.id
            )
        )
    if found is None:
        raise TrainingError(
            f"Parent run '{run_id}' is not recorded in project '{project.name}'; trial runs "
            "point at it, so finish (write) the parent run before searching, or pass "
            "parent_run_id=None."
        )


# ---------------------------------------------------------------------- the study


class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler for an ask-and-tell loop.

    Optuna's own calls ``study.stop()`` once the grid is used up, which only
    works inside ``study.optimize``; the driver asks ``taken`` instead."""

    def __init__(self, space: Mapping[str, Sequence[Any]], seed: int) -> None:
        super().__init__(space, seed=seed)
        self.space = dict(space)
        self.size = math.prod(len(values) for values in space.values())

    def after_trial(
        self,
        study: optuna.Study,
        trial: optuna.trial.FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        return None

    def exhausted(self, study: optuna.Study) -> bool:
        """Whether every grid point is taken by a trial (running or finished) of ``study``."""
        taken = {t.system_attrs.get("grid_id") for t in study.get_trials(deepcopy=False)}
        return len(taken & set(range(self.size))) >= self.size


def grid_space(space: Mapping[str, Param]) -> dict[str, list[Any]]:
    """The grid of a family's space: Choice values, and the ``grid`` of Float/Int params."""
    grid = {}
    for name, param in space.items():
        values = param.values if isinstance(param, Choice) else param.grid
        if values:
            grid[name] = list(values)
    return grid


def _sampler(method: str, space: Mapping[str, Param], seed: int) -> optuna.samplers.BaseSampler:
    if method == "grid":
        return _GridSampler(grid_space(space), seed)
    if method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():  # multivariate TPE is "experimental" in older Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)


@contextmanager
def _opened_study(
    name: str, storage: str | None, sampler: optuna.samplers.BaseSampler, metric: MetricGoal
) -> Iterator[optuna.Study]:
    """The study ``name``, created or loaded; its storage's connections closed afterwards."""
    direction: Literal["maximize", "minimize"] = (
        "maximize" if metric.direction == "max" else "minimize"
    )
    pruner = optuna.pruners.MedianPruner(
        n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=PRUNER_WARMUP_FOLDS
    )
    with _storage_errors(storage):
        rdb = _open_storage(storage) if storage else None
    try:
        with _storage_errors(storage):
            study = optuna.create_study(
                storage=rdb,
                sampler=sampler,
                pruner=pruner,
                study_name=name,
                direction=direction,
                load_if_exists=True,
            )
        if study.direction.name.lower() != direction:
            raise TrainingError(
                f"Study '{name}' in {_safe(storage)} was created to "
                f"{study.direction.name.lower()}, but {metric.name} is to {direction}; "
                "pass another study_name."
            )
        yield study
    finally:
        if rdb is not None:
            rdb.remove_session()
            rdb.engine.dispose()


def _open_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage; on PostgreSQL its tables are created under a lock, so
    processes opening a new database at once do not race to create them."""
    url = _with_driver(url)
    if sa.make_url(url).get_backend_name() != "postgresql":
        return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": STORAGE_LOCK_KEY})
            try:
                return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
            finally:
                connection.execute(
                    sa.text("SELECT pg_advisory_unlock(:k)"), {"k": STORAGE_LOCK_KEY}
                )
    finally:
        engine.dispose()


def _with_driver(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (the ``postgres`` extra), not psycopg2."""
    for bare in ("postgresql://", "postgres://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url.removeprefix(bare)
    return url


@contextmanager
def _storage_errors(url: str | None) -> Iterator[None]:
    try:
        yield
    except (sa.exc.SQLAlchemyError, ImportError) as exc:
        raise StoreError(
            f"Cannot open the search study storage {_safe(url)}: "
            f"{str(exc).strip().splitlines()[0]}. Check the URL, that the database server "
            "runs and that the user may create tables; or search without storage.",
            details={"storage": _safe(url)},
        ) from exc


def _safe(url: str | None) -> str:
    if url is None:
        return "memory"
    try:
        return sa.make_url(_with_driver(url)).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "the given URL"


# ---------------------------------------------------------------------- the driver


@dataclass
class _Flying:
    """A trial whose folds are still being computed."""

    trial: optuna.Trial
    params: dict[str, Any]
    run: Run
    scores: list[float] = field(default_factory=list)
    seconds: float = 0.0


class _Driver:
    """Asks the study for trials, feeds their folds to the engine, records the outcomes."""

    def __init__(
        self,
        project: Project,
        family: Family,
        job: CVJob,
        study: optuna.Study,
        engine: Engine,
        method: str,
        seed: int,
        parent_run_id: str | None,
    ) -> None:
        self.project, self.family, self.job = project, family, job
        self.study, self.engine = study, engine
        self.method, self.seed, self.parent_run_id = method, seed, parent_run_id
        self.planned = 0
        self.started = 0
        self.flying: dict[int, _Flying] = {}
        self.done: list[TrialResult] = []

    def run(self, planned: int, progress: Progress | None) -> list[TrialResult]:
        """Run up to ``planned`` trials; the results in trial-number order."""
        self.planned = planned
        try:
            while True:
                while self._may_start():
                    self._start()
                if not self.flying:
                    break
                if self._collect(self.engine.next_done()) and progress:
                    progress(len(self.done), self.planned)
        except BaseException as exc:
            self._abandon(exc)
            raise
        return sorted(self.done, key=lambda t: t.number)

    def _may_start(self) -> bool:
        if self.started >= self.planned or len(self.flying) >= self.engine.slots:
            return False
        sampler = self.study.sampler
        return not (isinstance(sampler, _GridSampler) and sampler.exhausted(self.study))

    def _start(self) -> None:
        trial = self.study.ask()
        self.started += 1
        family = self.family
        try:
            params = {**family.defaults(self.job.data.task, self.seed), **self._suggest(trial)}
            if self.engine.threads_per_task and "num_threads" in params:
                params["num_threads"] = self.engine.threads_per_task
            run = Run(
                self.project,
                name=f"{family.name}-trial-{trial.number}",
                kind="trial",
                parent_id=self.parent_run_id,
                seed=self.seed,
            )
            run.log_params(params)
            run.set_tags(
                {"study": self.study.study_name, "trial": trial.number, "method": self.method}
            )
        except BaseException:
            self.study.tell(trial, state=TrialState.FAIL)
            raise
        trial.set_user_attr("run_id", run.id)
        self.flying[trial.number] = _Flying(trial, params, run)
        self.engine.submit(FoldTask(trial.number, 0, params))

    def _suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        space = self.family.space
        if self.method == "grid":
            return {
                name: trial.suggest_categorical(name, values)
                for name, values in grid_space(space).items()
            }
        return {name: _suggest(trial, name, param) for name, param in space.items()}

    def _collect(self, outcome: FoldOutcome) -> bool:
        """Take in one fold; True when it ended its trial."""
        flying = self.flying[outcome.key]
        flying.seconds += outcome.seconds
        if outcome.score is None:
            self._end(flying, "failed", outcome.error or "unknown error")
            return True
        flying.scores.append(outcome.score)
        mean = float(np.mean(flying.scores))
        name = self.job.metric
        flying.run.log_metrics({f"fold_{name}": outcome.score, f"cv_{name}": mean}, outcome.fold)
        flying.trial.report(mean, outcome.fold)
        if len(flying.scores) == len(self.job.folds):
            self._end(flying, "complete")
        elif flying.trial.should_prune():
            self._end(flying, "pruned")
        else:
            self.engine.submit(FoldTask(outcome.key, outcome.fold + 1, flying.params))
            return False
        return True

    def _end(self, flying: _Flying, state: TrialStateName, error: str | None = None) -> None:
        number = flying.trial.number
        del self.flying[number]
        score = float(np.mean(flying.scores)) if state == "complete" else None
        if state == "complete":
            self.study.tell(flying.trial, score)
        else:
            told = TrialState.PRUNED if state == "pruned" else TrialState.FAIL
            self.study.tell(flying.trial, state=told)
        run = flying.run
        run.set_tags({"state": state, **({"error": error} if error else {})})
        run.finish("failed" if state == "failed" else "finished")
        self.done.append(
            TrialResult(
                number,
                flying.params,
                score,
                state,
                error,
                run.id,
                list(flying.scores),
                flying.seconds,
            )
        )

    def _abandon(self, exc: BaseException) -> None:
        """Interrupted: the study and the runs learn that the trials in flight stopped."""
        reason = f"search stopped: {type(exc).__name__}: {exc}"[:2000]
        for flying in list(self.flying.values()):
            try:
                self.study.tell(flying.trial, state=TrialState.FAIL)
                flying.run.set_tags({"state": "failed", "error": reason})
                flying.run.finish("killed")
            except Exception:  # best effort: the original error is what matters
                continue
        self.flying.clear()


def _suggest(trial: optuna.Trial, name: str, param: Param) -> Any:
    if isinstance(param, Float):
        return trial.suggest_float(name, param.low, param.high, log=param.log)
    if isinstance(param, Int):
        return trial.suggest_int(name, param.low, param.high, log=param.log)
    return trial.suggest_categorical(name, list(param.values))


# ---------------------------------------------------------------------- the result


def _result(
    results: list[TrialResult], study_name: str, metric: MetricGoal, family: Family
) -> SearchResult:
    if not results:
        raise TrainingError(
            f"Study '{study_name}' had no grid point left to try: earlier searches sharing its "
            "storage covered the whole grid. Pass another study_name to search again.",
            details={"study": study_name},
        )
    complete = [t for t in results if t.state == "complete" and t.score is not None]
    if not complete:
        failed = [t for t in results if t.state == "failed"]
        first = f" The first error: {failed[0].error}" if failed else ""
        raise TrainingError(
            f"No trial of the {family.name} search (study '{study_name}') completed: "
            f"{len(results)} ran, {len(failed)} failed.{first} Every trial is recorded as a "
            "run; fix the family's space, or check the data.",
            details={"study": study_name, "runs": [t.run_id for t in results]},
        )
    sign = 1.0 if metric.direction == "max" else -1.0
    best = max(complete, key=lambda t: (sign * (t.score or 0.0), -t.number))
    assert best.score is not None
    return SearchResult(dict(best.params), best.score, results, study_name)
