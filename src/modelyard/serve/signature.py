"""A request's rows → the model's matrix, validated against the model's signature.

The signature is the bundle's inputs: their names, kinds (number or
category), whether they may be null, and the category vocabularies. Requests
arrive in three shapes — named columns (OIP v2 tensors, MLflow splits), records
(JSON objects) or one numeric matrix (a 2-D tensor) — and each is checked on
its own structure with numpy, never through pandas: a single-row request
must cost microseconds, not milliseconds.

Errors are field-level and never echo a value: a request may carry personal
data, and an error body ends up in logs. Fields the model does not know are
ignored and counted (``extra``).

A bundle with a cleaning recipe takes the records path (the recipe works on
records); a bundle without one is encoded column by column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelyard.data.encoding import FeatureField, describe_type, encode_value
from modelyard.errors import InvalidInputError
from modelyard.train.bundle import ModelBundle

MAX_DETAILS = 100


@dataclass
class Rows:
    """A parsed request: exactly one of ``columns``, ``records`` or ``matrix`` is set."""

    n: int
    columns: Mapping[str, Sequence[Any]] | None = None
    records: list[Any] | None = None
    matrix: np.ndarray | None = None
    extra: list[str] = field(default_factory=list)


class Signature:
    """What a model takes, and the one place that turns request rows into its matrix."""

    def __init__(self, bundle: ModelBundle) -> None:
        self.bundle = bundle
        self.names: list[str] = bundle.input_names
        self.known = frozenset(self.names)
        self.fields: tuple[FeatureField, ...] = bundle.encoder.fields
        self.direct = bundle.recipe is None
        self.numeric = self.direct and all(f.kind == "number" for f in self.fields)
        self.kinds = {f.name: f.kind for f in self.fields}

    @property
    def width(self) -> int:
        return len(self.names)

    def encode(self, rows: Rows) -> np.ndarray:
        """The model's float64 matrix for ``rows``; ``InvalidInputError`` lists bad fields."""
        if rows.n == 0:
            raise InvalidInputError("The request holds no rows to score.")
        if rows.matrix is not None:
            return self._matrix(rows.matrix)
        if rows.columns is not None:
            return self._columns(rows.columns, rows.n)
        assert rows.records is not None
        return self._records(rows.records)

    def extra_fields(self, names: Sequence[str]) -> list[str]:
        return [n for n in names if n not in self.known]

    # -- the three shapes ---------------------------------------------------

    def _matrix(self, matrix: np.ndarray) -> np.ndarray:
        if matrix.ndim != 2 or matrix.shape[1] != self.width:
            raise InvalidInputError(
                f"A single tensor must have shape [rows, {self.width}] (one column per "
                f"input, in the order of GET /v2/models/NAME); got {list(matrix.shape)}.",
            )
        if not self.numeric:
            categories = [f.name for f in self.fields if f.kind == "category"]
            if categories:
                raise InvalidInputError(
                    "A single numeric tensor cannot carry category inputs "
                    f"{categories[:10]}; send one named tensor per input.",
                )
            columns = {name: matrix[:, j].tolist() for j, name in enumerate(self.names)}
            return self._columns(columns, len(matrix))
        bad = ~np.isfinite(matrix)
        if bad.any():
            self._raise(
                [
                    {"row": int(r), "field": self.names[c], "error": "expected a finite number"}
                    for r, c in zip(*np.nonzero(bad), strict=True)
                ]
            )
        return matrix

    def _columns(self, columns: Mapping[str, Sequence[Any]], n: int) -> np.ndarray:
        missing = [name for name in self.names if name not in columns]
        if missing:
            raise InvalidInputError(
                f"Missing input(s) {missing[:20]}; the model needs {self.names[:50]}.",
                details=[{"row": None, "field": f, "error": "required"} for f in missing],
            )
        for name in self.names:
            if len(columns[name]) != n:
                raise InvalidInputError(
                    f"Input '{name}' has {len(columns[name])} values; the others have {n}.",
                    details=[{"row": None, "field": name, "error": "length differs"}],
                )
        if not self.direct:
            ordered = [columns[name] for name in self.names]
            records = [dict(zip(self.names, v, strict=True)) for v in zip(*ordered, strict=True)]
            return self._records(records)
        out = np.empty((n, len(self.fields)), dtype=np.float64)
        problems: list[dict[str, Any]] = []
        for j, f in enumerate(self.fields):
            out[:, j] = _encode_column(f, columns[f.name], problems)
        if problems:
            self._raise(problems)
        return out

    def _records(self, records: list[Any]) -> np.ndarray:
        for i, record in enumerate(records):
            if type(record) is not dict:
                raise InvalidInputError(
                    f"Row {i} must be an object of fields; got {describe_type(record)}.",
                    details=[{"row": i, "field": None, "error": "expected an object"}],
                )
        if not self.direct:
            self._check_raw(records)
            return self.bundle.encode_records(records)
        columns = {name: [r.get(name) for r in records] for name in self.names}
        return self._columns(columns, len(records))

    def _check_raw(self, records: list[dict[str, Any]]) -> None:
        """Types and finiteness of the values a cleaning recipe will see: a recipe may
        turn ``false`` into a category or clip an infinity into range, hiding the mistake.
        (Nulls are left to the recipe, which may impute them.)"""
        problems = [
            {"row": i, "field": f.name, "error": error}
            for i, record in enumerate(records)
            for f in self.fields
            if (value := record.get(f.name)) is not None
            and (error := encode_value(f, value)[1]) is not None
        ]
        if problems:
            self._raise(problems)

    @staticmethod
    def _raise(problems: list[dict[str, Any]]) -> None:
        first = problems[0]
        where = f"row {first['row']}, field '{first['field']}'"
        raise InvalidInputError(
            f"{len(problems)} invalid value(s) in the request; first at {where}: {first['error']}.",
            details=problems[:MAX_DETAILS],
        )

    # -- describing it ------------------------------------------------------

    def describe(self) -> list[dict[str, Any]]:
        """The inputs as OIP v2 tensor metadata (what ``GET /v2/models/NAME`` shows)."""
        kinds = self.kinds
        out = []
        for name in self.names:
            kind = kinds.get(name, "number")
            entry: dict[str, Any] = {
                "name": name,
                "datatype": "FP64" if kind == "number" else "BYTES",
                "shape": [-1],
            }
            field_ = next((f for f in self.fields if f.name == name), None)
            if field_ is not None:
                entry["parameters"] = {"nullable": field_.nullable}
                if field_.kind == "category":
                    entry["parameters"]["categories"] = list(field_.categories)
            out.append(entry)
        return out


NUMBER_TYPES = frozenset({int, float})


def _encode_column(f: FeatureField, values: Sequence[Any], problems: list[dict[str, Any]]) -> Any:
    """One input's values → float64 codes; appends a problem per bad value."""
    if f.kind == "number":
        # numpy would take True as 1 and "2" as 2: only plain numbers take the fast path
        if set(map(type, values)) <= NUMBER_TYPES:
            column = np.asarray(values, dtype=np.float64)
            if np.isfinite(column).all():
                return column
    elif all(type(v) is str for v in values):
        code = f.code
        return np.fromiter((code(v) for v in values), np.float64, len(values))
    return _slow_column(f, values, problems)


def _slow_column(f: FeatureField, values: Sequence[Any], problems: list[dict[str, Any]]) -> Any:
    """Value by value: nulls, mixed types, and the reasons for bad values."""
    out = np.empty(len(values), dtype=np.float64)
    for i, value in enumerate(values):
        out[i], error = encode_value(f, value)
        if error:
            problems.append({"row": i, "field": f.name, "error": error})
    return out
