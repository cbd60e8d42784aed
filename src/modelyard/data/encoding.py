"""The feature encoder: one fitted object that turns rows into the model's matrix.

Training and serving call the same ``FeatureEncoder`` (no train/serve skew).
Numbers pass through as float64 with NaN for missing; categories become their
index in the vocabulary seen in training, and an unseen or missing category
becomes NaN, which every model family here treats as "missing".

The encoder is plain data (a list of ``FeatureField``), stored as JSON inside a
model bundle, so loading it never executes code. ``encode_records`` is the
serving path: plain Python over the request's own structure, no pandas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from modelyard.errors import DataError, InvalidInputError

if TYPE_CHECKING:
    from modelyard.data.schema import Schema

Kind = Literal["number", "category"]
NAN = float("nan")


@dataclass(frozen=True)
class FeatureField:
    """One model input: its name, kind, and for categories the vocabulary."""

    name: str
    kind: Kind
    nullable: bool = True
    categories: tuple[str, ...] = ()
    _codes: dict[str, float] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._codes.update({c: float(i) for i, c in enumerate(self.categories)})

    def code(self, value: str) -> float:
        return self._codes.get(value, NAN)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "nullable": self.nullable}
        if self.kind == "category":
            out["categories"] = list(self.categories)
        return out


class FeatureEncoder:
    """Encodes a frame (training) or JSON records (serving) into a float64 matrix."""

    def __init__(self, fields: list[FeatureField]) -> None:
        if not fields:
            raise DataError("A model needs at least one feature column; the encoder got none.")
        self.fields = tuple(fields)
        self.names = [f.name for f in fields]

    @classmethod
    def fit(cls, frame: pd.DataFrame, features: list[str]) -> FeatureEncoder:
        """Learn kinds and vocabularies from the training rows only."""
        missing = [c for c in features if c not in frame.columns]
        if missing:
            raise DataError(
                f"Feature columns {missing} are not in the data; it has {list(frame.columns)}."
            )
        return cls([_infer_field(frame[c]) for c in features])

    @classmethod
    def from_schema(cls, schema: Schema, features: Sequence[str] | None = None) -> FeatureEncoder:
        """The encoder a data set's schema implies: ``features``, or its feature columns."""
        return cls(schema.feature_fields(features))

    @property
    def categorical_indices(self) -> list[int]:
        return [i for i, f in enumerate(self.fields) if f.kind == "category"]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Encode a whole frame column by column (the batch and training path)."""
        out = np.empty((len(frame), len(self.fields)), dtype=np.float64)
        for j, f in enumerate(self.fields):
            if f.name not in frame.columns:
                raise DataError(f"Column '{f.name}' is missing from the data; the model needs it.")
            column = frame[f.name]
            if f.kind == "number":
                out[:, j] = pd.to_numeric(column, errors="coerce").to_numpy(
                    np.float64, na_value=NAN
                )
            else:
                codes = {c: i for i, c in enumerate(f.categories)}
                mapped = column.astype("object").map(lambda v, codes=codes: codes.get(str(v)))
                out[:, j] = mapped.to_numpy(np.float64, na_value=NAN)
        return out

    def encode_records(self, records: list[Any]) -> np.ndarray:
        """Validate JSON records against the fields and encode them (the serving path).

        Raises ``InvalidInputError`` whose details list every bad field as
        ``{"row", "field", "error"}``; nothing is predicted for a bad request.
        """
        out = np.empty((len(records), len(self.fields)), dtype=np.float64)
        problems: list[dict[str, Any]] = []
        for i, record in enumerate(records):
            if not isinstance(record, dict):
                problems.append(
                    {
                        "row": i,
                        "field": None,
                        "error": f"expected an object of fields, got {describe_type(record)}",
                    }
                )
                continue
            for j, f in enumerate(self.fields):
                value, error = encode_value(f, record.get(f.name))
                if error:
                    problems.append({"row": i, "field": f.name, "error": error})
                out[i, j] = value
        if problems:
            first = problems[0]
            where = f"row {first['row']}" + (
                f", field '{first['field']}'" if first["field"] else ""
            )
            raise InvalidInputError(
                f"{len(problems)} invalid value(s) in the request; first at {where}: "
                f"{first['error']}.",
                details=problems[:100],
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"fields": [f.to_dict() for f in self.fields]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureEncoder:
        return cls(
            [
                FeatureField(
                    name=d["name"],
                    kind=d["kind"],
                    nullable=d.get("nullable", True),
                    categories=tuple(d.get("categories", ())),
                )
                for d in data["fields"]
            ]
        )


def _infer_field(column: pd.Series) -> FeatureField:
    nullable = bool(column.isna().any())
    if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
        values = column.dropna().astype(str)
        categories = tuple(sorted(values.unique()))
        return FeatureField(str(column.name), "category", nullable, categories)
    return FeatureField(str(column.name), "number", nullable)


def encode_value(f: FeatureField, value: Any) -> tuple[float, str | None]:
    """One JSON value → its code, or NaN and why it is invalid (the serving path)."""
    if value is None:
        return NAN, None if f.nullable else "required: this field may not be null"
    if f.kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return NAN, f"expected a number, got {describe_type(value)}"
        number = float(value)
        if math.isinf(number):
            return NAN, "expected a finite number"
        return number, None
    if isinstance(value, str):
        return f.code(value), None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f.code(str(value)), None
    return NAN, f"expected a category (a string), got {describe_type(value)}"


def describe_type(value: Any) -> str:
    """What a JSON value is, in words — never the value itself (it may be personal data)."""
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
