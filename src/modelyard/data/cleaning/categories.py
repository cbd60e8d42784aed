"""Category normalisation: one spelling per category, rare ones folded together."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
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
    check_real,
    column_list,
    count,
    is_missing,
    is_numeric_column,
    missing_mask,
    require_columns,
)
from modelyard.errors import DataError, InvalidInputError

CASES = ("lower", "upper", None)
EVENTS = ("values_normalised", "values_blanked", "values_folded", "values_unseen")
_SPACES = re.compile(r"\s+")

KEPT, FOLDED = "kept", "folded"
SCALARS = (str, int, float)
"""Values the step reads as categories (bools are ints); others pass through unchanged."""


class NormaliseCategories(Step):
    """Give each category one spelling, then fold rare and unseen ones into ``rare_label``.

    Each value is turned into text (``str(value)`` for a non-string), then
    ``strip`` removes surrounding whitespace, ``collapse_whitespace`` turns
    inner runs of whitespace into one space, and ``case`` lowers or uppers it
    (``None`` keeps it). With ``empty_as_missing`` a value left empty becomes
    missing. ``mapping`` then renames spellings (``{"NYC": "new york"}``);
    its keys and values are normalised the same way, so write them as you
    like. One mapping serves all ``columns``; use two steps for two mappings.

    Rare categories are learned on the training rows: a category is rare when
    it has fewer than ``rare_min_count`` rows, or less than ``rare_min_share``
    of the column's non-missing rows. Rare categories, and at serving any
    category the training rows never had, become ``rare_label``. Missing
    values stay missing.

    ``categories_`` lists each column's kept categories and ``rare_`` the
    folded ones.
    """

    step_name = "normalise_categories"
    state = ("categories_", "rare_")

    def __init__(
        self,
        columns: str | list[str],
        case: str | None = "lower",
        strip: bool = True,
        collapse_whitespace: bool = True,
        empty_as_missing: bool = True,
        rare_min_count: int | None = None,
        rare_min_share: float | None = None,
        rare_label: str = "__other__",
        mapping: Mapping[str, str] | None = None,
    ) -> None:
        self.columns = columns
        self.case = case
        self.strip = strip
        self.collapse_whitespace = collapse_whitespace
        self.empty_as_missing = empty_as_missing
        self.rare_min_count = rare_min_count
        self.rare_min_share = rare_min_share
        self.rare_label = rare_label
        self.mapping = mapping

    def check_params(self) -> None:
        where = self.step_name
        column_list(self.columns, where)
        check_choice(where, "case", self.case, CASES)
        for name in ("strip", "collapse_whitespace", "empty_as_missing"):
            check_bool(where, name, getattr(self, name))
        count_ok = self.rare_min_count is None or (
            isinstance(self.rare_min_count, int)
            and not isinstance(self.rare_min_count, bool)
            and self.rare_min_count >= 1
        )
        if not count_ok:
            raise InvalidInputError(
                f"'{where}': rare_min_count must be null or an int >= 1. "
                f"Got {self.rare_min_count!r} instead."
            )
        if self.rare_min_share is not None:
            check_real(where, "rare_min_share", self.rare_min_share, low=0.0, high=1.0)
        if not isinstance(self.rare_label, str) or not self.rare_label:
            raise InvalidInputError(
                f"'{where}': rare_label must be a non-empty string. "
                f"Got {self.rare_label!r} instead."
            )
        self._mapping = self._normalised_mapping()

    def _normalised_mapping(self) -> dict[str, str]:
        where = self.step_name
        if self.mapping is None:
            return {}
        if not isinstance(self.mapping, Mapping):
            raise InvalidInputError(
                f"'{where}': mapping must be a mapping of spelling to category. "
                f"Got {self.mapping!r} instead."
            )
        out: dict[str, str] = {}
        for key, value in self.mapping.items():
            source = self._spell(key) if isinstance(key, str) else None
            target = self._spell(value) if isinstance(value, str) else None
            if not source or not target:
                raise InvalidInputError(
                    f"'{where}': mapping entries must be non-empty strings, also after "
                    f"normalising. Got {key!r}: {value!r}."
                )
            if out.get(source, target) != target:
                raise InvalidInputError(
                    f"'{where}': mapping sends {source!r} to both {out[source]!r} and "
                    f"{target!r} once normalised. Keep one."
                )
            out[source] = target
        return out

    def _spell(self, text: str) -> str:
        """Whitespace and case rules only (no mapping, no folding)."""
        if self.collapse_whitespace:
            text = " ".join(text.split()) if self.strip else _SPACES.sub(" ", text)
        elif self.strip:
            text = text.strip()
        if self.case == "lower":
            return text.lower()
        if self.case == "upper":
            return text.upper()
        return text

    def _normalise(self, raw: str) -> str | None:
        text = self._spell(raw)
        if not text and self.empty_as_missing:
            return None
        return self._mapping.get(text, text)

    def _learn(self, frame: pd.DataFrame) -> dict[str, Any]:
        columns = column_list(self.columns, self.step_name)
        require_columns(frame, columns, self.step_name)
        categories: dict[str, list[str]] = {}
        rare: dict[str, list[str]] = {}
        for column in columns:
            series = frame[column]
            if is_numeric_column(series) and series.notna().any():
                raise DataError(
                    f"'{self.step_name}': column {column!r} holds numbers (dtype "
                    f"{series.dtype}); category normalisation works on text. Cast it "
                    "with .astype(str) first, or leave it out of this step."
                )
            present = series[~missing_mask(series)]
            spelled = (self._normalise(_text(v)) for v in present if isinstance(v, SCALARS))
            seen = Counter(c for c in spelled if c is not None)
            total = sum(seen.values())
            rare_here = {c for c, n in seen.items() if self._rare(n, total)}
            categories[column] = sorted(c for c in seen if c not in rare_here)
            rare[column] = sorted(rare_here)
        return {"categories_": categories, "rare_": rare}

    def _rare(self, n: int, total: int) -> bool:
        if self.rare_min_count is not None and n < self.rare_min_count:
            return True
        return self.rare_min_share is not None and n / total < self.rare_min_share

    def _prepare(self) -> None:
        self._mapping = self._normalised_mapping()
        self._lookups: dict[str, dict[str, tuple[str, str]]] = {}
        for column, kept in self.categories_.items():
            table = {c: (self.rare_label, FOLDED) for c in self.rare_[column]}
            table.update({c: (c, KEPT) for c in kept})
            self._lookups[column] = table

    def _resolve(self, column: str, value: Any) -> tuple[str | None, bool, str]:
        """The output for one present value, whether its spelling changed, and its fate."""
        raw = _text(value)
        text = self._normalise(raw)
        if text is None:
            return None, True, "values_blanked"
        found = self._lookups[column].get(text)
        if found is None:
            return self.rare_label, text != raw, "values_unseen"
        output, fate = found
        return output, text != raw, "values_folded" if fate == FOLDED else KEPT

    def _transform(self, frame: pd.DataFrame, filter_rows: bool) -> tuple[pd.DataFrame, Changes]:
        require_columns(frame, self.categories_, self.step_name)
        out = frame.copy(deep=False)
        changes: Changes = {event: dict.fromkeys(self.categories_, 0) for event in EVENTS}
        for column in self.categories_:
            series = frame[column]
            missing = missing_mask(series)
            values = series.to_numpy(object)
            result = np.full(len(series), None, dtype=object)
            memo: dict[str, tuple[str | None, bool, str]] = {}
            for i in np.flatnonzero(~missing):
                if not isinstance(values[i], SCALARS):
                    result[i] = values[i]
                    continue
                raw = _text(values[i])
                if raw not in memo:
                    memo[raw] = self._resolve(column, raw)
                output, changed, fate = memo[raw]
                result[i] = output
                if changed and fate != "values_blanked":
                    changes["values_normalised"][column] += 1
                if fate != KEPT:
                    changes[fate][column] += 1
            out[column] = pd.Series(result, index=frame.index, dtype=object)
        return out, changes

    def _replay(self, record: Record, counts: Counts | None) -> None:
        for column in self._lookups:
            value = record.get(column)
            if not isinstance(value, SCALARS) or is_missing(value):
                continue
            output, changed, fate = self._resolve(column, value)
            record[column] = output
            if counts is not None:
                if changed and fate != "values_blanked":
                    count(counts, "values_normalised", column)
                if fate != KEPT:
                    count(counts, fate, column)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)
