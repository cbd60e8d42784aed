"""A recipe: cleaning steps fitted together on training rows and replayed together."""

from __future__ import annotations

import copy
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Self

import numpy as np
import pandas as pd

from modelyard.data.cleaning._step import (
    Counts,
    NotFittedStepError,
    Record,
    Step,
    check_frame,
    did_you_mean,
)
from modelyard.data.cleaning.categories import NormaliseCategories
from modelyard.data.cleaning.deduplicate import Deduplicate
from modelyard.data.cleaning.impute import Impute
from modelyard.data.cleaning.outliers import ClipOutliers, DropOutliers
from modelyard.data.cleaning.units import StandardiseUnits
from modelyard.errors import DataError, InvalidInputError

FORMAT = "modelyard.recipe/1"

STEPS: dict[str, type[Step]] = {
    cls.step_name: cls
    for cls in (
        Impute,
        Deduplicate,
        ClipOutliers,
        DropOutliers,
        StandardiseUnits,
        NormaliseCategories,
    )
}
"""Every step a recipe may name. Loading looks names up here and nowhere else."""

StepReport = dict[str, Any]


class Recipe:
    """Cleaning steps in order: fitted on training rows, replayed on frames and records.

    ``fit`` fits each step on the output of the previous one, with row filters
    applied, as training sees it. ``transform`` replays the fitted steps on a
    frame; ``filter_rows=False`` replays them as the server does (no row is
    dropped), and ``transform_record`` replays them on one JSON record in
    plain Python, with the same result value for value.
    """

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = list(steps)
        for i, step in enumerate(self.steps):
            if not isinstance(step, Step):
                raise InvalidInputError(
                    f"Recipe steps[{i}] is a {type(step).__name__}, not a cleaning step; "
                    f"use one of {[cls.__name__ for cls in STEPS.values()]}."
                )
        self._fit_report: list[StepReport] | None = None
        self._ready = self.is_fitted

    def __repr__(self) -> str:
        return f"Recipe({self.steps!r})"

    @property
    def is_fitted(self) -> bool:
        return all(step.__sklearn_is_fitted__() for step in self.steps)

    # -- frames -----------------------------------------------------------------

    def fit(self, frame: pd.DataFrame) -> Self:
        """Fit every step, in order, on the training rows in ``frame``."""
        self.fit_transform(frame)
        return self

    def fit_transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Fit on ``frame`` and return it cleaned (row filters applied)."""
        self._ready = False
        clean, self._fit_report = self._run(frame, fit=True, filter_rows=True)
        self._ready = True
        return clean

    def transform(self, frame: pd.DataFrame, *, filter_rows: bool = True) -> pd.DataFrame:
        """Replay the fitted steps; ``filter_rows=False`` keeps every row, as serving does."""
        return self.transform_with_report(frame, filter_rows=filter_rows)[0]

    def transform_with_report(
        self, frame: pd.DataFrame, *, filter_rows: bool = True
    ) -> tuple[pd.DataFrame, list[StepReport]]:
        """The replayed frame and, per step, what the replay changed."""
        self._check_fitted()
        return self._run(frame, fit=False, filter_rows=filter_rows)

    def report(self) -> list[StepReport]:
        """Per step, what fitting changed on the training rows.

        Each entry: ``{"index", "step", "rows_in", "rows_out", "rows_dropped",
        "changes": {event: {column: count}}}``.
        """
        self._check_fitted()
        if self._fit_report is None:
            raise NotFittedStepError(
                "This recipe was built from steps fitted one by one, so it has no fit "
                "report; fit the recipe as a whole to get one."
            )
        return self._fit_report

    def _run(
        self, frame: pd.DataFrame, *, fit: bool, filter_rows: bool
    ) -> tuple[pd.DataFrame, list[StepReport]]:
        check_frame(frame, "recipe")
        report = []
        current = frame
        for i, step in enumerate(self.steps):
            rows_in = len(current)
            with _naming(i):
                if fit:
                    step.fit(current)
                current, changes = step.transform_with_changes(current, filter_rows=filter_rows)
            report.append(
                {
                    "index": i,
                    "step": step.step_name,
                    "rows_in": rows_in,
                    "rows_out": len(current),
                    "rows_dropped": rows_in - len(current),
                    "changes": changes,
                }
            )
        return current, report

    # -- records (the serving path) ----------------------------------------------

    def transform_record(self, record: Record, counts: list[Counts] | None = None) -> Record:
        """Replay every step on one JSON record, as serving does; returns a new dict.

        Row filters never drop a request (see each step). With ``counts``
        (from ``new_counts``), each step counts what it changed there, keyed
        by ``(event, column)``.
        """
        if not self._ready:
            self._check_fitted()
            self._ready = True
        out = dict(record)
        if counts is None:
            for step in self.steps:
                step._replay(out, None)
        else:
            for step, step_counts in zip(self.steps, counts, strict=True):
                step._replay(out, step_counts)
        return out

    def transform_records(
        self, records: Sequence[Any], counts: list[Counts] | None = None
    ) -> list[Any]:
        """``transform_record`` over a request's records; non-objects pass through
        unchanged for the feature encoder to report."""
        return [self.transform_record(r, counts) if isinstance(r, dict) else r for r in records]

    def new_counts(self) -> list[Counts]:
        """One empty counter per step, for ``transform_record(..., counts=...)``."""
        return [Counter() for _ in self.steps]

    def inputs_for(self, features: Sequence[str]) -> list[str]:
        """The fields a request must carry for the recipe to produce ``features``.

        Columns a step creates (an imputation indicator) are not asked for;
        columns a step reads (a unit column) are.
        """
        needed = dict.fromkeys(features)
        for step in reversed(self.steps):
            sources = step.column_sources()
            earlier: dict[str, None] = {}
            for column in needed:
                earlier.update(dict.fromkeys(sources.get(column, [column])))
            needed = earlier
        return list(needed)

    def _check_fitted(self) -> None:
        unfitted = [i for i, s in enumerate(self.steps) if not s.__sklearn_is_fitted__()]
        if unfitted:
            i = unfitted[0]
            raise NotFittedStepError(
                f"The recipe is not fitted: steps[{i}] ('{self.steps[i].step_name}') has "
                "learned nothing yet. Call fit(frame) on the training rows, or load a "
                "fitted recipe with Recipe.from_dict."
            )

    # -- JSON -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: the format, each step's parameters and learned state, the fit report."""
        out: dict[str, Any] = {"format": FORMAT, "steps": [s.to_dict() for s in self.steps]}
        if self._fit_report is not None and self.is_fitted:
            out["fit_report"] = copy.deepcopy(self._fit_report)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        """Load what ``to_dict`` wrote. Plain data only: no code is imported or run."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
            raise InvalidInputError(
                f"Not a saved modelyard recipe: format {found!r}, expected {FORMAT!r}. "
                "Build recipes from config with Recipe.from_spec_like."
            )
        items = data.get("steps")
        if not isinstance(items, list):
            raise InvalidInputError("A saved recipe needs a 'steps' list.")
        steps = _collect(items, _saved_step)
        fitted = [s.__sklearn_is_fitted__() for s in steps]
        if any(fitted) and not all(fitted):
            raise InvalidInputError(
                f"A saved recipe has learned state for steps "
                f"{[i for i, f in enumerate(fitted) if f]} only; save it whole after fit."
            )
        recipe = cls(steps)
        report = data.get("fit_report")
        fit_report = copy.deepcopy(report) if isinstance(report, list) and all(fitted) else None
        recipe._fit_report = fit_report
        return recipe

    @classmethod
    def from_spec_like(cls, items: Sequence[Mapping[str, Any]]) -> Recipe:
        """An unfitted recipe from config, e.g. ``[{"step": "impute", "columns": ["income"]}]``.

        Every problem is collected; the error names the step's index, the bad
        key or value, and what is allowed.
        """
        if isinstance(items, str | bytes | Mapping) or not isinstance(items, Sequence):
            raise InvalidInputError(
                "A recipe is a list of steps, each a mapping like "
                "{'step': 'impute', 'columns': ['income'], 'strategy': 'median'}. "
                f"Got {type(items).__name__} instead."
            )
        return cls(_collect(items, _config_step))


def apply_recipe(
    frame: pd.DataFrame,
    recipe: Recipe,
    fit_rows: Sequence[int] | Sequence[bool] | np.ndarray | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Fit ``recipe`` on ``fit_rows`` of ``frame`` and return the whole frame cleaned.

    ``fit_rows`` are row positions or a boolean mask (the training split);
    ``None`` fits on every row. The fit rows are cleaned as training sees
    them (row filters drop rows); every other row is replayed exactly as the
    server would treat it (``filter_rows=False``): it stands for unseen data.
    Row order and index labels are kept. The report is plain JSON::

        {"rows_in", "rows_out", "fit_rows", "fit": [step reports], "replay": [step reports]}
    """
    check_frame(frame, "apply_recipe")
    if fit_rows is None:
        clean = recipe.fit_transform(frame)
        report = {"rows_in": len(frame), "rows_out": len(clean), "fit_rows": len(frame)}
        return clean, {**report, "fit": recipe.report(), "replay": []}
    mask = _row_mask(fit_rows, len(frame))
    work = frame.set_axis(pd.RangeIndex(len(frame)), axis=0)
    fitted = recipe.fit_transform(work[mask])
    rest, replay = recipe.transform_with_report(work[~mask], filter_rows=False)
    with warnings.catch_warnings():
        # pandas 2.x warns that all-NA columns will count when choosing the result
        # dtype; either choice is fine here (pandas 3 has the new behaviour).
        warnings.filterwarnings("ignore", "The behavior of DataFrame concatenation", FutureWarning)
        clean = pd.concat([fitted, rest]).sort_index(kind="stable")
    clean.index = frame.index[clean.index.to_numpy()]
    report = {"rows_in": len(frame), "rows_out": len(clean), "fit_rows": int(mask.sum())}
    return clean, {**report, "fit": recipe.report(), "replay": replay}


def _row_mask(fit_rows: Any, n: int) -> np.ndarray:
    rows = np.asarray(fit_rows)
    if rows.dtype == bool:
        if rows.shape != (n,):
            raise DataError(
                f"fit_rows as a mask must have one entry per row ({n}); got shape {rows.shape}."
            )
        mask = rows.copy()
    elif rows.ndim == 1 and (rows.size == 0 or np.issubdtype(rows.dtype, np.integer)):
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            raise DataError(
                f"fit_rows holds positions outside the frame's {n} rows "
                f"(from {rows.min()} to {rows.max()}). Pass positions, not index labels."
            )
        mask = np.zeros(n, dtype=bool)
        mask[rows] = True
    else:
        raise DataError(
            f"fit_rows must be row positions (ints) or a boolean mask; got {rows.dtype}."
        )
    if not mask.any():
        raise DataError("fit_rows selects no rows; a recipe must be fitted on training rows.")
    return mask


# -- building steps from config and from saved JSON -------------------------------------


def _config_step(item: Any, index: int) -> Step:
    where = f"steps[{index}]"
    if not isinstance(item, Mapping):
        raise InvalidInputError(
            f"{where}: expected a mapping with a 'step' key and the step's parameters; "
            f"got {type(item).__name__}."
        )
    cls = _step_class(item.get("step"), where)
    with _naming(index):
        return cls.from_params({k: v for k, v in item.items() if k != "step"})


def _saved_step(item: Any, index: int) -> Step:
    where = f"steps[{index}]"
    if not isinstance(item, Mapping):
        raise InvalidInputError(f"{where}: a saved step is a mapping; got {item!r:.80}.")
    cls = _step_class(item.get("step"), where)
    with _naming(index):
        return cls.from_dict(item)


def _step_class(name: Any, where: str) -> type[Step]:
    allowed = list(STEPS)
    if name is None:
        raise InvalidInputError(f"{where}: no 'step' key; say which step, one of {allowed}.")
    cls = STEPS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise InvalidInputError(
            f"{where}: unknown step {name!r}{did_you_mean(str(name), allowed)}; "
            f"allowed steps are {allowed}."
        )
    return cls


def _collect(items: Sequence[Any], build: Callable[[Any, int], Step]) -> list[Step]:
    """Build every step, then raise one error listing every problem."""
    steps: list[Step] = []
    problems: list[str] = []
    for index, item in enumerate(items):
        try:
            steps.append(build(item, index))
        except InvalidInputError as exc:
            problems.append(exc.message)
    if problems:
        more = f" (and {len(problems) - 1} more; see details)" if len(problems) > 1 else ""
        raise InvalidInputError(f"Invalid recipe: {problems[0]}{more}", details=problems)
    return steps


@contextmanager
def _naming(index: int) -> Iterator[None]:
    """Prefix a step's error with its place in the recipe."""
    try:
        yield
    except (DataError, InvalidInputError) as exc:
        if exc.message.startswith("steps["):
            raise
        raise type(exc)(f"steps[{index}] {exc.message}", details=exc.details) from exc
