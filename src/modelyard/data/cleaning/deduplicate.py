"""De-duplication: drop repeated rows from the training data."""

from __future__ import annotations

from typing import Any

import pandas as pd

from modelyard.data.cleaning._step import (
    Changes,
    Counts,
    Record,
    Step,
    check_choice,
    column_list,
    require_columns,
)

KEEP = ("first", "last", False)


class Deduplicate(Step):
    """Drop rows that repeat an earlier row on ``subset`` (all columns by default).

    A row filter for training data only. At serving it does nothing, by
    definition: every request is one row that must be answered, and a
    duplicate request is a legitimate request (a retry, or a second customer
    who looks the same). ``transform_record`` returns the record unchanged,
    and ``transform_with_changes(..., filter_rows=False)`` keeps every row.

    ``subset=None`` is resolved at fit to the columns the training frame had,
    so the replay compares the same columns. Missing values count as equal,
    as in ``DataFrame.drop_duplicates``; ``keep`` picks which copy survives
    (``False`` drops every copy).
    """

    step_name = "deduplicate"
    state = ("subset_",)
    row_filter = True

    def __init__(self, subset: str | list[str] | None = None, keep: str | bool = "first") -> None:
        self.subset = subset
        self.keep = keep

    def check_params(self) -> None:
        if self.subset is not None:
            column_list(self.subset, self.step_name, "subset")
        check_choice(self.step_name, "keep", self.keep, KEEP)

    def _learn(self, frame: pd.DataFrame) -> dict[str, Any]:
        if self.subset is None:
            return {"subset_": [str(c) for c in frame.columns]}
        subset = column_list(self.subset, self.step_name, "subset")
        require_columns(frame, subset, self.step_name)
        return {"subset_": subset}

    def _transform(self, frame: pd.DataFrame, filter_rows: bool) -> tuple[pd.DataFrame, Changes]:
        if not filter_rows:
            return frame.copy(deep=False), {}
        require_columns(frame, self.subset_, self.step_name)
        kept = frame.drop_duplicates(subset=self.subset_, keep=self.keep)
        return kept, {}

    def _replay(self, record: Record, counts: Counts | None) -> None:
        """Nothing to do: a served request is never a duplicate to drop."""
