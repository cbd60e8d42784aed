"""Unit standardisation: convert a measured column to one unit, row by row."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from modelyard.data.cleaning._step import (
    Changes,
    Counts,
    Record,
    Step,
    check_real,
    count,
    float_column,
    is_missing,
    is_number,
    missing_mask,
    require_columns,
)
from modelyard.errors import DataError, InvalidInputError

MASS = {  # kilograms per unit (exact by the 1959 international pound)
    "mg": 1e-6,
    "g": 1e-3,
    "kg": 1.0,
    "t": 1000.0,
    "oz": 0.028349523125,
    "lb": 0.45359237,
    "lbs": 0.45359237,
}
LENGTH = {  # metres per unit (exact by the 1959 international yard)
    "mm": 1e-3,
    "cm": 1e-2,
    "m": 1.0,
    "km": 1000.0,
    "in": 0.0254,
    "ft": 0.3048,
    "yd": 0.9144,
    "mi": 1609.344,
}
BUILT_IN = {"mass": MASS, "length": LENGTH}


def unit_key(unit: Any) -> str:
    """How unit labels are matched: case-insensitive, surrounding spaces ignored."""
    return (unit if isinstance(unit, str) else str(unit)).strip().lower()


class StandardiseUnits(Step):
    """Convert ``column`` to ``to_unit``, reading each row's unit from ``unit_column``.

    ``factors`` maps each unit to its size in a common base unit
    (``{"g": 0.001, "kg": 1, "lb": 0.45359237}``); a value in unit ``u``
    becomes ``value · factors[u] / factors[to_unit]``. Without ``factors``,
    the built-in mass (kg) or length (m) table that knows ``to_unit`` is used;
    currencies and anything else need ``factors``. Unit labels match without
    regard to case or surrounding spaces.

    ``from_unit`` is the unit of every row when there is no ``unit_column``,
    or of the rows whose unit is missing when there is one. After the step the
    unit column says ``to_unit`` on every row.

    A value whose unit is unknown (or missing, with no ``from_unit``) is an
    error at fit, naming the units; at serving it becomes missing and is
    counted as ``unknown_unit``, so one odd request does not fail.
    """

    step_name = "standardise_units"
    state = ("factors_",)

    def __init__(
        self,
        column: str,
        to_unit: str,
        unit_column: str | None = None,
        from_unit: str | None = None,
        factors: Mapping[str, float] | None = None,
    ) -> None:
        self.column = column
        self.to_unit = to_unit
        self.unit_column = unit_column
        self.from_unit = from_unit
        self.factors = factors

    def check_params(self) -> None:
        where = self.step_name
        for name in ("column", "to_unit"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise InvalidInputError(
                    f"'{where}': {name} must be a non-empty string. "
                    f"Got {getattr(self, name)!r} instead."
                )
        for name in ("unit_column", "from_unit"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise InvalidInputError(
                    f"'{where}': {name} must be a string or null. "
                    f"Got {getattr(self, name)!r} instead."
                )
        if self.unit_column is None and self.from_unit is None:
            raise InvalidInputError(
                f"'{where}': say where each row's unit comes from: unit_column (a column "
                "of unit labels), from_unit (one unit for every row), or both."
            )
        if self.unit_column == self.column:
            raise InvalidInputError(
                f"'{where}': unit_column must differ from column ({self.column!r})."
            )
        self._factor_table()

    def _factor_table(self) -> dict[str, float]:
        """Multipliers to ``to_unit`` keyed by unit label, from the parameters."""
        where = self.step_name
        if self.factors is None:
            table = next((t for t in BUILT_IN.values() if unit_key(self.to_unit) in t), None)
            if table is None:
                raise InvalidInputError(
                    f"'{where}': to_unit {self.to_unit!r} is not a built-in unit "
                    f"(mass: {sorted(MASS)}; length: {sorted(LENGTH)}). Pass factors="
                    "{unit: size in a common base unit} for any other quantity."
                )
        else:
            table = self._user_table()
        for name in ("to_unit", "from_unit"):
            label = getattr(self, name)
            if label is not None and unit_key(label) not in table:
                raise InvalidInputError(
                    f"'{where}': {name} {label!r} is not among the known units "
                    f"{sorted(table)}. Add it to factors."
                )
        base = table[unit_key(self.to_unit)]
        return {unit: size / base for unit, size in table.items()}

    def _user_table(self) -> dict[str, float]:
        where = self.step_name
        if not isinstance(self.factors, Mapping) or not self.factors:
            raise InvalidInputError(
                f"'{where}': factors must be a non-empty mapping of unit label to its size "
                f"in a common base unit. Got {self.factors!r} instead."
            )
        table: dict[str, float] = {}
        for unit, given in self.factors.items():
            key = unit_key(unit)
            size = check_real(where, f"factors[{unit!r}]", given, low=0.0)
            if table.get(key, size) != size:
                raise InvalidInputError(
                    f"'{where}': factors name unit {key!r} twice with different sizes "
                    "(labels match without regard to case or spaces). Keep one."
                )
            table[key] = size
        return table

    def _learn(self, frame: pd.DataFrame) -> dict[str, Any]:
        factors = self._factor_table()
        self._use(factors)
        require_columns(frame, self._columns(), self.step_name)
        values = float_column(frame, self.column, self.step_name)
        per_row = self._row_factors(frame)
        unknown = ~np.isnan(values) & np.isnan(per_row)
        if unknown.any():
            self._unknown_units_error(frame, unknown, sorted(factors))
        return {"factors_": factors}

    def _unknown_units_error(self, frame: pd.DataFrame, rows: np.ndarray, known: list[str]) -> None:
        if self.unit_column is None:  # cannot happen: from_unit is checked to be known
            raise AssertionError("a unit is unknown although every row uses from_unit")
        labels = frame[self.unit_column][rows].astype(object)
        found = labels.where(labels.notna(), "<missing>").map(str).value_counts()
        listed = ", ".join(f"{u!r} ({n} rows)" for u, n in found.items())
        hint = "" if self.from_unit else "; set from_unit for rows without a unit"
        raise DataError(
            f"'{self.step_name}': column {self.unit_column!r} has units that are not "
            f"known: {listed}. Known units: {known}. Add them to factors, or clean the "
            f"unit column first{hint}.",
            details={"unknown_units": {str(k): int(v) for k, v in found.items()}},
        )

    def column_sources(self) -> dict[str, list[str]]:
        return {self.column: self._columns()}

    def _columns(self) -> list[str]:
        return [self.column] + ([self.unit_column] if self.unit_column else [])

    def _prepare(self) -> None:
        self._use(self.factors_)

    def _use(self, factors: dict[str, float]) -> None:
        self._table = factors
        self._default = factors[unit_key(self.from_unit)] if self.from_unit else None

    def _factor(self, unit: Any) -> float | None:
        if is_missing(unit):
            return self._default
        return self._table.get(unit_key(unit))

    def _row_factors(self, frame: pd.DataFrame) -> np.ndarray:
        if self.unit_column is None:
            return np.full(len(frame), self._default)
        series = frame[self.unit_column]
        missing = missing_mask(series)
        seen: dict[Any, float] = {}
        out = np.empty(len(frame))
        for i, (unit, absent) in enumerate(zip(series.to_numpy(object), missing, strict=True)):
            key = None if absent else unit_key(unit)
            if key not in seen:
                found = self._default if key is None else self._table.get(key)
                seen[key] = np.nan if found is None else found
            out[i] = seen[key]
        return out

    def _transform(self, frame: pd.DataFrame, filter_rows: bool) -> tuple[pd.DataFrame, Changes]:
        require_columns(frame, self._columns(), self.step_name)
        values = float_column(frame, self.column, self.step_name)
        factors = self._row_factors(frame)
        present = ~np.isnan(values)
        out = frame.copy(deep=False)
        out[self.column] = pd.Series(values * factors, index=frame.index)
        if self.unit_column:
            out[self.unit_column] = pd.Series(self.to_unit, index=frame.index, dtype=object)
        unknown = present & np.isnan(factors)
        converted = present & ~unknown & (factors != 1.0)
        changes = {
            "values_converted": {self.column: int(converted.sum())},
            "unknown_unit": {self.column: int(unknown.sum())},
        }
        return out, changes

    def _replay(self, record: Record, counts: Counts | None) -> None:
        unit = record.get(self.unit_column) if self.unit_column else None
        if self.unit_column:
            record[self.unit_column] = self.to_unit
        value: Any = record.get(self.column)
        if not is_number(value) or math.isnan(value):
            return
        factor = self._factor(unit)
        if factor is None:
            record[self.column] = None
            count(counts, "unknown_unit", self.column)
        else:
            record[self.column] = value * factor
            if factor != 1.0:
                count(counts, "values_converted", self.column)
