"""One chunk of a batch run: validated, encoded and scored, the same way by both engines.

``ChunkScorer(bundle)(chunk, first_row)`` → ``ChunkResult`` (scores, rejects):

1. validate column by column, without a loop over rows: text or ±inf in a number field,
   or a null where the model allows none (checked after the cleaning recipe, as serving
   checks it), rejects the row. A reject records the input row number, the field and the
   reason — never the value, which may be sensitive;
2. replay the recipe and the encoder (``ModelBundle.encode_frame``'s two steps) and score
   the rows that pass with one ``predict`` call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from modelyard.errors import DataError, InvalidInputError
from modelyard.train.flavors import LightGBMScorer

if TYPE_CHECKING:
    from modelyard.train.bundle import ModelBundle

REJECT_SCHEMA = pa.schema([("row", pa.int64()), ("field", pa.string()), ("reason", pa.string())])
NOT_A_NUMBER = "expected a number, got text"
A_BOOLEAN = "expected a number, got a boolean"
NOT_FINITE = "expected a finite number"
REQUIRED = "required: this field may not be null"


@dataclass(frozen=True)
class ChunkResult:
    """A scored chunk: its output rows, and one reject line per bad field."""

    scores: pa.Table
    rejects: pa.Table
    inputs: pa.Table | None = None  # the scored rows' input columns (for the prediction log)
    raw: np.ndarray | None = None  # their scores as the model gave them

    @property
    def rows_rejected(self) -> int:
        return len(np.unique(self.rejects.column("row").to_numpy()))


class ChunkScorer:
    """Validates, encodes and scores one chunk of input rows (both engines call this)."""

    def __init__(
        self, bundle: ModelBundle, keep_columns: Sequence[str] = (), *, threads: int | None = None
    ) -> None:
        self.bundle = bundle
        self.keep_columns = tuple(dict.fromkeys(keep_columns))
        self.threads = threads
        fields = {f.name: f for f in bundle.encoder.fields}
        self.inputs = list(bundle.input_names)
        self.numbers = [n for n in self.inputs if n in fields and fields[n].kind == "number"]
        self.required = [f.name for f in bundle.encoder.fields if not f.nullable]
        self.columns = list(dict.fromkeys([*self.inputs, *self.keep_columns]))
        clash = set(self.keep_columns) & {"row", *score_names(bundle)}
        if clash:
            raise InvalidInputError(
                f"Cannot keep column(s) {sorted(clash)}: the output has columns of those "
                "names. Rename them in the input, or keep other columns."
            )

    def check_schema(self, schema: pa.Schema, where: str) -> None:
        """Fail before any work if the file lacks a column or holds one of the wrong kind."""
        missing = [c for c in self.inputs if c not in schema.names]
        if missing:
            raise DataError(
                f"{where} lacks the column(s) {missing} that the model needs "
                f"(it needs {self.inputs}). Add them, or score another file."
            )
        absent = [c for c in self.keep_columns if c not in schema.names]
        if absent:
            shown = ", ".join(schema.names[:20]) + (", …" if len(schema.names) > 20 else "")
            raise InvalidInputError(
                f"Cannot keep column(s) {absent}: {where} has no such column. Its columns: {shown}."
            )
        for name in self.numbers:
            kind = schema.field(name).type
            if not (_is_numeric(kind) or _is_text(kind) or pa.types.is_boolean(kind)):
                raise DataError(
                    f"Column '{name}' of {where} holds {kind} values; the model needs numbers. "
                    "Convert the column, or score another file."
                )

    def __call__(self, chunk: pa.Table, first_row: int) -> ChunkResult:
        """Score ``chunk``, whose first row is input row ``first_row``."""
        return self.score(self.prepare(chunk, first_row))

    def prepare(self, chunk: pa.Table, first_row: int) -> PreparedChunk:
        """Validate ``chunk`` and encode the rows that pass."""
        frame, problems = self._frame(chunk)
        if self.bundle.recipe is not None:
            frame = self.bundle.recipe.transform(frame, filter_rows=False)
        problems += self._nulls(frame, problems)
        bad = np.zeros(chunk.num_rows, dtype=bool)
        for _, _, mask in problems:
            bad |= mask
        ok = np.flatnonzero(~bad) if bad.any() else None
        X = self.bundle.encoder.transform(frame if ok is None else frame.iloc[ok])
        return PreparedChunk(chunk, first_row, X, ok, _rejects(problems, first_row))

    def score(self, prepared: PreparedChunk) -> ChunkResult:
        """Predict the rows that passed, and lay the output table out."""
        chunk, ok, first_row = prepared.chunk, prepared.ok, prepared.first_row
        rows = np.arange(first_row, first_row + chunk.num_rows, dtype=np.int64)
        columns: dict[str, Any] = {"row": rows if ok is None else rows[ok]}
        for name in self.keep_columns:
            kept = chunk.column(name)
            columns[name] = kept if ok is None else kept.take(pa.array(ok))
        raw = self._predict(prepared.X)
        columns |= self._score_columns(raw)
        inputs = chunk.select(self.inputs)
        if ok is not None:
            inputs = inputs.take(pa.array(ok))
        return ChunkResult(pa.table(columns), prepared.rejects, inputs, raw)

    def _frame(self, chunk: pa.Table) -> tuple[pd.DataFrame, list[Problem]]:
        columns: dict[str, Any] = {}
        problems: list[Problem] = []
        for name in self.inputs:
            column = chunk.column(name)
            if name in self.numbers:
                columns[name], found = _numbers(column)
                problems += [(name, reason, mask) for reason, mask in found]
            else:
                columns[name] = column.to_pandas()
        return pd.DataFrame(columns, copy=False), problems

    def _nulls(self, frame: pd.DataFrame, found: list[Problem]) -> list[Problem]:
        flagged = {name: mask for name, _, mask in found}
        problems: list[Problem] = []
        for name in self.required:
            mask = frame[name].isna().to_numpy()
            if name in flagged:  # its value was refused already; say so once
                mask = mask & ~flagged[name]
            if mask.any():
                problems.append((name, REQUIRED, mask))
        return problems

    def _predict(self, X: np.ndarray) -> np.ndarray:
        if len(X) == 0:  # models refuse empty input; one row gives the output's shape
            return self.bundle.predict(np.full((1, X.shape[1]), np.nan))[:0]
        scorer = self.bundle.scorer
        if isinstance(scorer, LightGBMScorer):  # all cores; the scorer itself uses one
            return np.asarray(scorer.booster.predict(X, num_threads=self.threads or 0))
        return self.bundle.predict(X)

    def _score_columns(self, scores: np.ndarray) -> dict[str, pa.Array]:
        bundle = self.bundle
        if bundle.task == "regression":
            return {"prediction": pa.array(scores, pa.float64())}
        if bundle.task == "binary":
            labels = (scores >= bundle.threshold).astype(np.int64)
            return {"probability": pa.array(scores, pa.float64()), "label": pa.array(labels)}
        classes = _class_names(bundle, scores.shape[1])
        out = {f"probability_{c}": pa.array(scores[:, i]) for i, c in enumerate(classes)}
        winners = np.asarray(classes, dtype=object)[scores.argmax(axis=1)]
        return out | {"label": pa.array(winners, pa.string())}


Problem = tuple[str, str, np.ndarray]  # (field, reason, mask over the chunk's rows)


@dataclass(frozen=True)
class PreparedChunk:
    """A validated, encoded chunk: the matrix of the rows that passed (``ok``; None: all)."""

    chunk: pa.Table
    first_row: int
    X: np.ndarray
    ok: np.ndarray | None
    rejects: pa.Table


def score_names(bundle: ModelBundle) -> list[str]:
    """The score columns of the output, in order."""
    if bundle.task == "regression":
        return ["prediction"]
    if bundle.task == "binary":
        return ["probability", "label"]
    classes = _class_names(bundle, len(bundle.classes or ()))
    return [*(f"probability_{c}" for c in classes), "label"]


def _class_names(bundle: ModelBundle, k: int) -> list[str]:
    return [str(c) for c in bundle.classes] if bundle.classes else [str(i) for i in range(k)]


def _numbers(column: pa.ChunkedArray) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """A number field as float64 (NaN for null), and which rows hold something else."""
    kind = column.type
    found: list[tuple[str, np.ndarray]] = []
    if pa.types.is_boolean(kind):
        found.append((A_BOOLEAN, column.is_valid().to_numpy(zero_copy_only=False)))
        return np.full(len(column), np.nan), found
    if _is_text(kind):
        values, text = _parse_numbers(column)
        if text.any():
            found.append((NOT_A_NUMBER, text))
    else:
        values = column.cast(pa.float64()).to_numpy()
    infinite = np.isinf(values)
    if infinite.any():
        found.append((NOT_FINITE, infinite))
    return values, found


def _parse_numbers(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    try:  # the usual case: every value parses, in Arrow's C++ parser
        return column.cast(pa.float64()).to_numpy(), np.zeros(len(column), dtype=bool)
    except pa.ArrowInvalid:
        pass
    strings = column.to_pandas().astype(object)
    values = pd.to_numeric(strings, errors="coerce").to_numpy(np.float64, na_value=np.nan)
    spelled_nan = pc.equal(pc.utf8_lower(pc.utf8_trim_whitespace(column)), "nan")
    named = spelled_nan.to_numpy(zero_copy_only=False)
    text = np.isnan(values) & strings.notna().to_numpy() & ~np.asarray(named, dtype=bool)
    return values, text


def _rejects(problems: list[Problem], first_row: int) -> pa.Table:
    if not problems:
        return REJECT_SCHEMA.empty_table()
    rows = [np.flatnonzero(mask) for _, _, mask in problems]
    order_of = np.concatenate([np.full(len(r), i) for i, r in enumerate(rows)])
    all_rows = np.concatenate(rows)
    order = np.lexsort((order_of, all_rows))  # by row, then in the order found
    names = np.asarray([p[0] for p in problems], dtype=object)[order_of[order]]
    reasons = np.asarray([p[1] for p in problems], dtype=object)[order_of[order]]
    return pa.table(
        [pa.array(all_rows[order] + first_row, pa.int64()), pa.array(names), pa.array(reasons)],
        schema=REJECT_SCHEMA,
    )


def _is_numeric(kind: pa.DataType) -> bool:
    return any(test(kind) for test in (pa.types.is_integer, pa.types.is_floating,
                                       pa.types.is_decimal, pa.types.is_null))  # fmt: skip


def _is_text(kind: pa.DataType) -> bool:
    return any(test(kind) for test in (pa.types.is_string, pa.types.is_large_string,
                                       pa.types.is_string_view))  # fmt: skip
