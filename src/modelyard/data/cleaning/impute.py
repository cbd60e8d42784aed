"""Imputation: fill missing values with a value learned from the training rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from modelyard.data.cleaning._step import (
    Changes,
    Counts,
    Record,
    Step,
    check_bool,
    check_choice,
    column_list,
    count,
    float_column,
    is_missing,
    is_numeric_column,
    missing_mask,
    new_changes,
    require_columns,
)
from modelyard.errors import DataError, InvalidInputError

STRATEGIES = ("median", "mean", "most_frequent", "constant")
INDICATOR_SUFFIX = "__missing"


class Impute(Step):
    """Fill missing values in ``columns`` with a statistic of the training rows.

    ``median`` and ``mean`` need numeric columns and are taken over the finite
    values; ``most_frequent`` works on any column (ties go to the smallest
    value, as in scikit-learn's ``SimpleImputer``); ``constant`` fills
    ``fill_value`` (a number for numeric columns, a string otherwise).

    With ``add_indicator`` each column gets a companion ``<column>__missing``
    holding 1.0 where the value was missing and 0.0 elsewhere, so a model can
    still tell an imputed value from an observed one. Numeric columns come out
    as float64.
    """

    step_name = "impute"
    state = ("statistics_", "kinds_")

    def __init__(
        self,
        columns: str | list[str],
        strategy: str = "median",
        fill_value: str | float | None = None,
        add_indicator: bool = False,
    ) -> None:
        self.columns = columns
        self.strategy = strategy
        self.fill_value = fill_value
        self.add_indicator = add_indicator

    def check_params(self) -> None:
        column_list(self.columns, self.step_name)
        check_choice(self.step_name, "strategy", self.strategy, STRATEGIES)
        check_bool(self.step_name, "add_indicator", self.add_indicator)
        fill = self.fill_value
        if self.strategy == "constant" and fill is None:
            raise InvalidInputError(
                "'impute': strategy 'constant' needs a fill_value (a number for numeric "
                "columns, a string for text columns). Got None instead."
            )
        if fill is not None and (
            isinstance(fill, bool)
            or not isinstance(fill, str | int | float)
            or (isinstance(fill, float) and not np.isfinite(fill))
        ):
            raise InvalidInputError(
                f"'impute': fill_value must be a finite number or a string. Got {fill!r} instead."
            )

    @property
    def indicator_columns(self) -> list[str]:
        """The columns this step adds (empty unless ``add_indicator``)."""
        if not self.add_indicator:
            return []
        return [c + INDICATOR_SUFFIX for c in column_list(self.columns, self.step_name)]

    def column_sources(self) -> dict[str, list[str]]:
        return (
            {c + INDICATOR_SUFFIX: [c] for c in column_list(self.columns, self.step_name)}
            if self.add_indicator
            else {}
        )

    def _learn(self, frame: pd.DataFrame) -> dict[str, Any]:
        columns = column_list(self.columns, self.step_name)
        require_columns(frame, columns, self.step_name)
        taken = [c for c in self.indicator_columns if c in frame.columns]
        if taken:
            raise DataError(
                f"'impute': add_indicator would write column {taken[0]!r}, which the data "
                "already has. Rename that column or set add_indicator=False."
            )
        statistics: dict[str, Any] = {}
        kinds: dict[str, str] = {}
        for column in columns:
            if is_numeric_column(frame[column]):
                kinds[column] = "number"
                statistics[column] = self._number_statistic(frame, column)
            else:
                kinds[column] = "category"
                statistics[column] = self._category_statistic(frame[column])
        return {"statistics_": statistics, "kinds_": kinds}

    def _number_statistic(self, frame: pd.DataFrame, column: str) -> float:
        if self.strategy == "constant":
            if not isinstance(self.fill_value, int | float):
                raise DataError(
                    f"'impute': column {column!r} is numeric, so fill_value must be a "
                    f"number. Got {self.fill_value!r} instead."
                )
            return float(self.fill_value)
        values = float_column(frame, column, self.step_name)
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            raise DataError(
                f"'impute': column {column!r} has no finite values in the {len(values)} "
                f"training rows to take the {self.strategy} of. Use strategy='constant' "
                "with a fill_value, or drop the column."
            )
        if self.strategy == "median":
            return float(np.median(finite))
        if self.strategy == "mean":
            return float(np.mean(finite))
        uniques, counts = np.unique(finite, return_counts=True)
        return float(uniques[int(np.argmax(counts))])

    def _category_statistic(self, series: pd.Series) -> Any:
        if self.strategy in ("median", "mean"):
            raise DataError(
                f"'impute': column {series.name!r} holds text (dtype {series.dtype}); "
                f"strategy {self.strategy!r} needs numbers. Use strategy='most_frequent' "
                "or 'constant'."
            )
        if self.strategy == "constant":
            if not isinstance(self.fill_value, str):
                raise DataError(
                    f"'impute': column {series.name!r} holds text, so fill_value must be a "
                    f"string. Got {self.fill_value!r} instead."
                )
            return self.fill_value
        counts = series.dropna().value_counts(sort=False)
        if counts.empty:
            raise DataError(
                f"'impute': column {series.name!r} has no values in the {len(series)} "
                "training rows to take the most frequent of. Use strategy='constant'."
            )
        top = counts[counts == counts.max()].index
        value = min(top, key=lambda v: (str(type(v)), str(v)))
        return value.item() if isinstance(value, np.generic) else value

    def _prepare(self) -> None:
        self._fills = [
            (c, v, c + INDICATOR_SUFFIX if self.add_indicator else None)
            for c, v in self.statistics_.items()
        ]

    def _transform(self, frame: pd.DataFrame, filter_rows: bool) -> tuple[pd.DataFrame, Changes]:
        require_columns(frame, self.statistics_, self.step_name)
        out = frame.copy(deep=False)
        changes = new_changes("values_imputed", self.statistics_)
        for column, value in self.statistics_.items():
            if self.kinds_[column] == "number":
                numbers = float_column(frame, column, self.step_name)
                missing = np.isnan(numbers)
                numbers[missing] = value
                out[column] = pd.Series(numbers, index=frame.index)
            else:
                missing = missing_mask(frame[column])
                objects = frame[column].to_numpy(object, copy=True)
                objects[missing] = value
                out[column] = pd.Series(objects, index=frame.index, dtype=object)
            if self.add_indicator:
                out[column + INDICATOR_SUFFIX] = missing.astype(np.float64)
            changes["values_imputed"][column] = int(missing.sum())
        return out, changes

    def _replay(self, record: Record, counts: Counts | None) -> None:
        for column, value, indicator in self._fills:
            current = record.get(column)
            missing = is_missing(current)
            if missing:
                record[column] = value
                count(counts, "values_imputed", column)
            if indicator is not None:
                record[indicator] = 1.0 if missing else 0.0
