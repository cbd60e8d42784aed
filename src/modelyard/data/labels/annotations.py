"""The annotation table: one row per item, one column per annotator.

A cell holds the label that annotator gave that item, or a missing value
(NaN / None) when they did not label it. Labels may be numbers or strings;
``1`` and ``1.0`` count as the same label. Every agreement statistic and the
majority vote start from the vote counts computed here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from modelyard.errors import DataError, InvalidInputError


@dataclass(frozen=True)
class Votes:
    """The table encoded: label codes per cell and vote counts per item.

    ``codes[i, a]`` is the index in ``labels`` of annotator ``a``'s label for
    item ``i`` (-1 when missing); ``counts[i, k]`` is how many annotators gave
    item ``i`` label ``k``.
    """

    items: pd.Index
    annotators: tuple[str, ...]
    labels: tuple[object, ...]
    codes: np.ndarray
    counts: np.ndarray

    @property
    def raters(self) -> np.ndarray:
        """How many annotators labelled each item."""
        out: np.ndarray = self.counts.sum(axis=1)
        return out


def check_table(table: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
    """The annotator columns of ``table``, validated: at least two, none empty."""
    if not isinstance(table, pd.DataFrame):
        raise InvalidInputError(
            "An annotation table must be a pandas DataFrame with one column per annotator; "
            f"got {type(table).__name__}."
        )
    if columns is not None:
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise DataError(
                f"Annotator columns {missing} are not in the table; it has {list(table.columns)}."
            )
        table = table[columns]
    if table.shape[1] < 2:
        raise DataError(
            f"Agreement needs at least two annotator columns; got {list(table.columns)}. "
            "Pass the table with one column per annotator."
        )
    if len(table) == 0:
        raise DataError("The annotation table has no rows (items); there is nothing to compare.")
    empty = [str(c) for c in table.columns if table[c].isna().all()]
    if empty:
        raise DataError(
            f"Annotator column(s) {empty} have no labels at all. "
            "Drop them, or check that the right columns were chosen."
        )
    return table


def count_votes(table: pd.DataFrame) -> Votes:
    """Encode a checked table into label codes and per-item vote counts."""
    flat = table.to_numpy(dtype=object).ravel()
    codes, uniques = _factorize(flat)
    labels = tuple(_plain(v) for v in uniques)
    codes = codes.reshape(table.shape)
    counts = np.zeros((len(table), len(labels)), dtype=np.int64)
    rows, cols = np.nonzero(codes >= 0)
    np.add.at(counts, (rows, codes[rows, cols]), 1)
    return Votes(table.index, tuple(str(c) for c in table.columns), labels, codes, counts)


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes in sorted label order when the labels can be sorted, else in order of appearance."""
    try:
        codes, uniques = pd.factorize(values, sort=True)
    except TypeError:
        codes, uniques = pd.factorize(values, sort=False)
    return np.asarray(codes, dtype=np.int64), np.asarray(uniques, dtype=object)


def _plain(value: object) -> object:
    """A label as a plain Python value: numpy scalars unwrapped, whole floats as ints.

    A column of integer labels with gaps is read as floats (``2.0``); giving
    back ``2`` keeps the labels as the annotators wrote them.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
