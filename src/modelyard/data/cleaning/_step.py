"""The base of every cleaning step, and the checks the steps share.

A step follows the scikit-learn contract: the constructor stores parameters
only, ``fit`` validates and learns, learned state ends in ``_`` and is plain
JSON data. Each step has two replays of the same fitted state: ``transform``
over a pandas frame (training, batch) and ``transform_record`` over one JSON
record in plain Python (the server's hot path). The two must agree exactly.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import NotFittedError

from modelyard.errors import DataError, InvalidInputError

Record = dict[str, Any]
Changes = dict[str, dict[str, int]]
"""What a transform changed: ``{event: {column: count}}``."""
Counts = Counter[tuple[str, str]]
"""What record replays changed, keyed by ``(event, column)``."""


class NotFittedStepError(DataError, NotFittedError):  # type: ignore[misc]
    """A cleaning step or recipe was used before it was fitted (or loaded fitted)."""


class Step(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """One recorded, replayable cleaning step.

    Subclasses set ``step_name`` (its name in recipes), ``state`` (the names
    of its learned attributes), ``row_filter`` (it drops rows in training
    transforms), and implement ``check_params``, ``_learn``, ``_transform``
    and ``_replay``.
    """

    step_name: ClassVar[str]
    state: ClassVar[tuple[str, ...]]
    row_filter: ClassVar[bool] = False

    # -- the scikit-learn contract ---------------------------------------------

    def fit(self, frame: pd.DataFrame, y: object = None) -> Self:
        """Learn this step's state from the training rows in ``frame``."""
        self.check_params()
        check_frame(frame, self.step_name)
        learned = self._learn(frame)
        for name in self.state:
            setattr(self, name, learned[name])
        self._prepare()
        return self

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The cleaned frame (row filters drop rows here; see ``row_filter``)."""
        return self.transform_with_changes(frame)[0]

    def transform_with_changes(
        self, frame: pd.DataFrame, *, filter_rows: bool = True
    ) -> tuple[pd.DataFrame, Changes]:
        """The cleaned frame and what changed, counted per event and column.

        With ``filter_rows=False`` a row filter treats the rows as the server
        would (it never drops a request), so the output has every input row.
        """
        self._check_fitted()
        check_frame(frame, self.step_name)
        return self._transform(frame, filter_rows)

    def transform_record(self, record: Record, counts: Counts | None = None) -> Record:
        """Replay the step on one JSON record, as the server does; returns a new dict.

        Plain Python only. Values the step cannot use (a string where it needs
        a number) pass through unchanged, for the feature encoder to report.
        """
        self._check_fitted()
        out = dict(record)
        self._replay(out, counts)
        return out

    def column_sources(self) -> dict[str, list[str]]:
        """The input columns each output column is computed from, where not itself.

        The server uses it to know which fields a request must carry.
        """
        return {}

    def __sklearn_is_fitted__(self) -> bool:
        return all(hasattr(self, name) for name in self.state)

    # -- JSON -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: the step's name, its parameters and, once fitted, its state."""
        out: dict[str, Any] = {"step": self.step_name, "params": _plain(self.get_params())}
        if self.__sklearn_is_fitted__():
            out["state"] = copy.deepcopy({name: getattr(self, name) for name in self.state})
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Load what ``to_dict`` wrote: plain data only, no code is imported or run."""
        if not isinstance(data, Mapping) or not set(data) <= {"step", "params", "state"}:
            raise InvalidInputError(
                f"'{cls.step_name}': a saved step is a mapping with keys 'step', 'params' "
                f"and, once fitted, 'state'. Got {data!r:.120}."
            )
        if data.get("step") != cls.step_name:
            raise InvalidInputError(
                f"'{cls.step_name}': the saved step is {data.get('step')!r}; load it with "
                "Recipe.from_dict, which picks the class by name."
            )
        params = data.get("params", {})
        if not isinstance(params, Mapping):
            raise InvalidInputError(
                f"'{cls.step_name}': 'params' must be a mapping; got {params!r:.80}."
            )
        step = cls.from_params(params)
        if "state" in data:
            step.load_state(data["state"])
        return step

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Self:
        """Build from a parameter mapping (a config or a saved recipe), checked."""
        signature = inspect.signature(cls.__init__).parameters
        allowed = sorted(k for k in signature if k != "self")
        unknown = [k for k in params if k not in allowed]
        if unknown:
            raise InvalidInputError(
                f"'{cls.step_name}': unknown key {unknown[0]!r}"
                f"{did_you_mean(str(unknown[0]), allowed)}; allowed keys are {allowed}."
            )
        required = [k for k in allowed if signature[k].default is inspect.Parameter.empty]
        absent = [k for k in required if k not in params]
        if absent:
            raise InvalidInputError(
                f"'{cls.step_name}': missing required key {absent[0]!r}; "
                f"allowed keys are {allowed}."
            )
        step = cls(**params)
        step.check_params()
        return step

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Set the learned state saved by ``to_dict`` (plain data; no code runs)."""
        if not isinstance(state, Mapping) or set(state) != set(self.state):
            raise InvalidInputError(
                f"'{self.step_name}': saved state has keys {_keys(state)}; a fitted "
                f"'{self.step_name}' step has {sorted(self.state)}. The file was not "
                "written by this version of modelyard, or was edited."
            )
        for name in self.state:
            setattr(self, name, copy.deepcopy(state[name]))
        self._prepare()

    # -- for subclasses ---------------------------------------------------------

    def check_params(self) -> None:
        """Validate the constructor's parameters; raise ``InvalidInputError``."""
        raise NotImplementedError

    def _learn(self, frame: pd.DataFrame) -> dict[str, Any]:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Build lookups for the record path from the learned state (optional)."""

    def _transform(self, frame: pd.DataFrame, filter_rows: bool) -> tuple[pd.DataFrame, Changes]:
        raise NotImplementedError

    def _replay(self, record: Record, counts: Counts | None) -> None:
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not self.__sklearn_is_fitted__():
            raise NotFittedStepError(
                f"The '{self.step_name}' step ({type(self).__name__}) is not fitted yet: "
                "call fit(frame) on the training rows, or load a fitted recipe, "
                "before transforming."
            )


# -- shared checks and conversions ------------------------------------------------


def is_missing(value: Any) -> bool:
    """Missing in a JSON record: null, an absent key, or a float NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def is_number(value: Any) -> bool:
    """An int or float, not a bool (JSON true/false are not numbers here)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_numeric_column(series: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series))


def check_frame(frame: Any, where: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise DataError(
            f"'{where}' works on a pandas DataFrame with named columns; got "
            f"{type(frame).__name__}. Wrap arrays as pd.DataFrame(X, columns=[...])."
        )


def require_columns(frame: pd.DataFrame, columns: Iterable[str], where: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        have = [str(c) for c in frame.columns]
        raise DataError(
            f"'{where}': column {missing[0]!r} is not in the data"
            f"{did_you_mean(missing[0], have)}; the data has {have[:30]}. "
            "Fix the step's columns or the data."
        )


def float_column(frame: pd.DataFrame, column: str, where: str) -> np.ndarray:
    """A copy of a numeric column as float64 with NaN for missing, or a clear error."""
    series = frame[column]
    if is_numeric_column(series):
        values: np.ndarray = series.to_numpy(np.float64, na_value=np.nan, copy=True)
        return values
    present = ~series.isna().to_numpy()
    objects = series.to_numpy(object)
    bad = next((v for v in objects[present] if not is_number(v)), None)
    if bad is not None or pd.api.types.is_bool_dtype(series):
        raise DataError(
            f"'{where}': column {column!r} must hold numbers; it has dtype "
            f"{series.dtype} (e.g. {bad!r}). Convert it first, or use a text step on it."
        )
    out = np.full(len(series), np.nan)
    out[present] = objects[present].astype(np.float64)
    return out


def missing_mask(series: pd.Series) -> np.ndarray:
    mask: np.ndarray = series.isna().to_numpy(bool)
    return mask


def column_list(value: Any, where: str, name: str = "columns") -> list[str]:
    """A ``str`` or a non-empty sequence of distinct ``str``, as a list."""
    if isinstance(value, str):
        return [value]
    if (
        isinstance(value, Sequence)
        and value
        and all(isinstance(c, str) for c in value)
        and len(set(value)) == len(value)
    ):
        return list(value)
    raise InvalidInputError(
        f"'{where}': {name} must be a column name or a non-empty list of distinct "
        f"column names. Got {value!r} instead."
    )


def check_choice(where: str, name: str, value: Any, allowed: Sequence[Any]) -> None:
    if not any(value is a or (type(value) is type(a) and value == a) for a in allowed):
        raise InvalidInputError(
            f"'{where}': {name} must be one of {list(allowed)}. Got {value!r} instead."
        )


def check_real(
    where: str, name: str, value: Any, *, low: float, high: float | None = None
) -> float:
    """A finite number in ``(low, high)`` (both ends open)."""
    ok = is_number(value) and np.isfinite(value) and value > low
    if ok and high is not None:
        ok = value < high
    if not ok:
        upper = "" if high is None else f" and below {high}"
        raise InvalidInputError(
            f"'{where}': {name} must be a number above {low}{upper}. Got {value!r} instead."
        )
    return float(value)


def check_bool(where: str, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidInputError(f"'{where}': {name} must be true or false. Got {value!r} instead.")


def new_changes(event: str, columns: Iterable[str]) -> Changes:
    return {event: dict.fromkeys(columns, 0)}


def count(counts: Counts | None, event: str, column: str) -> None:
    if counts is not None:
        counts[event, column] += 1


def _plain(value: Any) -> Any:
    """Parameters as JSON values (tuples become lists)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _keys(value: Any) -> list[str]:
    return sorted(str(k) for k in value) if isinstance(value, Mapping) else []


def did_you_mean(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
