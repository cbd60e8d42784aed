"""Outliers: bounds learned on the training rows, then clipped to or filtered on."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from modelyard.data.cleaning._step import (
    Changes,
    Counts,
    Record,
    Step,
    check_choice,
    check_real,
    column_list,
    count,
    float_column,
    new_changes,
    require_columns,
)
from modelyard.errors import DataError, InvalidInputError

METHODS = ("iqr", "quantile", "zscore")
DEFAULT_FACTOR = {"iqr": 1.5, "zscore": 3.0}


class _Bounds(Step):
    """Learns ``bounds_ = {column: [low, high]}`` from the finite training values.

    * ``iqr``: ``[Q1 - factor·IQR, Q3 + factor·IQR]`` (factor 1.5 by default),
      quartiles by ``numpy.percentile`` with linear interpolation;
    * ``quantile``: ``numpy.quantile`` at ``quantiles`` (default 1 % and 99 %);
    * ``zscore``: ``mean ± factor·std`` (factor 3 by default), the population
      standard deviation (``ddof=0``).

    Missing values are never outliers: they stay missing.
    """

    state = ("bounds_",)

    def __init__(
        self,
        columns: str | list[str],
        method: str = "iqr",
        factor: float | None = None,
        quantiles: tuple[float, float] | list[float] = (0.01, 0.99),
    ) -> None:
        self.columns = columns
        self.method = method
        self.factor = factor
        self.quantiles = quantiles

    def check_params(self) -> None:
        column_list(self.columns, self.step_name)
        check_choice(self.step_name, "method", self.method, METHODS)
        if self.factor is not None:
            if self.method == "quantile":
                raise InvalidInputError(
                    f"'{self.step_name}': factor applies to methods 'iqr' and 'zscore'; "
                    "method 'quantile' uses quantiles=[low, high]. Remove factor."
                )
            check_real(self.step_name, "factor", self.factor, low=0.0)
        q = self.quantiles
        if not (
            isinstance(q, list | tuple)
            and len(q) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in q)
            and 0.0 <= q[0] < q[1] <= 1.0
        ):
            raise InvalidInputError(
                f"'{self.step_name}': quantiles must be [low, high] with "
                f"0 <= low < high <= 1. Got {q!r} instead."
            )

    def _learn(self, frame: pd.DataFrame) -> dict[str, Any]:
        columns = column_list(self.columns, self.step_name)
        require_columns(frame, columns, self.step_name)
        return {"bounds_": {c: self._bounds(frame, c) for c in columns}}

    def _bounds(self, frame: pd.DataFrame, column: str) -> list[float]:
        values = float_column(frame, column, self.step_name)
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            raise DataError(
                f"'{self.step_name}': column {column!r} has no finite values in the "
                f"{len(values)} training rows to learn bounds from. Impute it first "
                "or remove it from the step."
            )
        factor = self.factor if self.factor is not None else DEFAULT_FACTOR.get(self.method, 0.0)
        if self.method == "iqr":
            q1, q3 = np.percentile(finite, [25, 75])
            low, high = q1 - factor * (q3 - q1), q3 + factor * (q3 - q1)
        elif self.method == "quantile":
            low, high = np.quantile(finite, [self.quantiles[0], self.quantiles[1]])
        else:
            mean, std = np.mean(finite), np.std(finite)
            low, high = mean - factor * std, mean + factor * std
        return [float(low), float(high)]

    def _prepare(self) -> None:
        self._limits = [(c, lo, hi) for c, (lo, hi) in self.bounds_.items()]

    def _clip(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, Changes]:
        require_columns(frame, self.bounds_, self.step_name)
        out = frame.copy(deep=False)
        changes = new_changes("values_clipped", self.bounds_)
        for column, low, high in self._limits:
            values = float_column(frame, column, self.step_name)
            below, above = values < low, values > high
            values[below] = low
            values[above] = high
            out[column] = pd.Series(values, index=frame.index)
            changes["values_clipped"][column] = int(below.sum() + above.sum())
        return out, changes

    def _replay(self, record: Record, counts: Counts | None) -> None:
        for column, low, high in self._limits:
            value = record.get(column)
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            if value < low:
                record[column] = low
                count(counts, "values_clipped", column)
            elif value > high:
                record[column] = high
                count(counts, "values_clipped", column)


class ClipOutliers(_Bounds):
    """Clip values in ``columns`` to bounds learned on the training rows.

    The same bounds apply in training, batch scoring and serving.
    """

    step_name = "clip_outliers"
    __doc__ = (__doc__ or "") + "\n    " + (_Bounds.__doc__ or "")

    def _transform(self, frame: pd.DataFrame, filter_rows: bool) -> tuple[pd.DataFrame, Changes]:
        return self._clip(frame)


class DropOutliers(_Bounds):
    """Drop training rows with a value outside bounds learned on the training rows.

    A row filter for training data. A served request cannot be dropped — it
    must be answered — so at serving (``transform_record``, and
    ``transform_with_changes(..., filter_rows=False)``) the step clips the
    value to the same bounds instead: the model then never sees a value
    outside the range the training rows kept, which is also how the trees
    treat it (they are flat beyond their outermost split), while a linear
    model is spared an extrapolation it was never fitted for.
    """

    step_name = "drop_outliers"
    row_filter = True
    __doc__ = (__doc__ or "") + "\n    " + (_Bounds.__doc__ or "")

    def _transform(self, frame: pd.DataFrame, filter_rows: bool) -> tuple[pd.DataFrame, Changes]:
        if not filter_rows:
            return self._clip(frame)
        require_columns(frame, self.bounds_, self.step_name)
        changes = new_changes("rows_out_of_bounds", self.bounds_)
        outside = np.zeros(len(frame), dtype=bool)
        for column, low, high in self._limits:
            values = float_column(frame, column, self.step_name)
            hit = (values < low) | (values > high)
            changes["rows_out_of_bounds"][column] = int(hit.sum())
            outside |= hit
        return frame[~outside], changes
