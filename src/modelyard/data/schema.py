"""The schema of a data set: the one description used by validation, serving and drift.

    schema = dataset_version.schema              # inferred when the version was registered
    schema.column("age")                         # ColumnSchema(type="integer", min=18, max=90, ...)
    text = schema.to_yaml()                      # edit it, then Schema.from_yaml(text, "my.yaml")
    FeatureEncoder.from_schema(schema)           # the serving signature, via feature_fields()

Types: ``integer``, ``float``, ``boolean``, ``string`` (free text), ``category``
(a closed set of values, listed in ``categories``) and ``datetime``. Roles
come from the spec's ``columns`` section: ``feature``, ``target``, ``id``,
``time``, ``group``, ``sensitive``, ``pii`` and ``excluded``.

``SchemaBuilder`` infers a schema batch by batch with bounded memory:

- null counts and min / max are exact (NaN counts as null; bounds ignore NaN);
- a string column keeps its distinct values up to ``CATEGORY_LIMIT`` (1,000).
  It is a ``category`` if it has at most that many distinct values and they
  are few next to its rows (at most 20, or at most half the non-null rows);
  otherwise it is free-text ``string`` and its values are not kept;
- uniqueness is exact: each non-null value becomes a 64-bit key (integers are
  their own key, so they cannot collide; strings are hashed with pandas'
  SipHash) kept in one sorted array per column. A column stops being tracked
  at its first duplicate, and past ``UNIQUE_LIMIT`` (5,000,000) values it is
  recorded as not unique (unverified). Only integer and free-text columns with
  more than ``SMALL_CATEGORY`` (20) values are marked unique, since distinct
  floats, timestamps, booleans or a handful of rows are usually a
  coincidence, not a rule (edit the schema when it is one).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from modelyard.errors import DataError

if TYPE_CHECKING:
    from modelyard.data.encoding import FeatureField
    from modelyard.spec import Spec

ColumnType = Literal["integer", "float", "boolean", "string", "category", "datetime"]
Role = Literal["feature", "target", "id", "time", "group", "sensitive", "pii", "excluded"]
Bound = int | float | str | None

TYPES: tuple[str, ...] = get_args(ColumnType)
ROLES: tuple[str, ...] = get_args(Role)
CATEGORY_LIMIT = 1_000
SMALL_CATEGORY = 20
UNIQUE_LIMIT = 5_000_000

_FIELDS = ("name", "type", "role", "nullable", "unique", "min", "max", "categories")
_YAML_HEADER = """\
# A modelyard data-set schema. Edit it, then check data against it with
#   modelyard data validate NAME@V --schema THIS_FILE
# or store it as the version's schema with
#   modelyard data schema NAME@V --set THIS_FILE
# type: integer | float | boolean | string | category | datetime
# role: feature | target | id | time | group | sensitive | pii | excluded
# min / max: allowed range (null: not checked); datetimes as ISO 8601 text
# categories: the allowed values of a category column (null: any value)
"""


@dataclass(frozen=True)
class ColumnSchema:
    """One column: its type, role, and the constraints validation checks."""

    name: str
    type: ColumnType
    nullable: bool = True
    min: Bound = None
    max: Bound = None
    categories: tuple[str, ...] | None = None
    unique: bool = False
    role: Role = "feature"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "role": self.role,
            "nullable": self.nullable,
            "unique": self.unique,
            "min": _bound_out(self.min),
            "max": _bound_out(self.max),
            "categories": list(self.categories) if self.categories is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ColumnSchema:
        """Parse one column entry; ``where`` names it in error messages."""
        if not isinstance(data, dict):
            raise DataError(f"{where}: expected a mapping with name and type; got {data!r:.60}.")
        unknown = sorted(set(data) - set(_FIELDS) - {"dtype"})
        if unknown:
            raise DataError(f"{where}: unknown field(s) {unknown}; allowed: {', '.join(_FIELDS)}.")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise DataError(f"{where}: 'name' must be a non-empty string; got {name!r}.")
        where = f"{where} (column '{name}')"
        kind = cast(ColumnType, _one_of(where, "type", data.get("type", _legacy(data)), TYPES))
        role = cast(Role, _one_of(where, "role", data.get("role", "feature"), ROLES))
        categories = data.get("categories")
        if categories is not None:
            if not isinstance(categories, list):
                raise DataError(f"{where}: 'categories' must be a list or null.")
            categories = tuple(str(c) for c in categories)
        return cls(
            name=name,
            type=kind,
            nullable=_flag(where, "nullable", data.get("nullable", True)),
            min=_bound_in(where, "min", data.get("min"), kind),
            max=_bound_in(where, "max", data.get("max"), kind),
            categories=categories,
            unique=_flag(where, "unique", data.get("unique", False)),
            role=role,
        )


@dataclass(frozen=True)
class Schema:
    """The columns of a data set, in order, plus who last edited it (None: as inferred)."""

    columns: tuple[ColumnSchema, ...]
    edited_by: str | None = None
    edited_at: str | None = None

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def __contains__(self, name: object) -> bool:
        return any(c.name == name for c in self.columns)

    def column(self, name: str) -> ColumnSchema:
        for c in self.columns:
            if c.name == name:
                return c
        raise DataError(f"The schema has no column '{name}'; it has {self.names}.")

    def with_roles(self, roles: Mapping[str, Role]) -> Schema:
        """A copy whose columns take their role from ``roles`` (others keep theirs)."""
        columns = tuple(replace(c, role=roles.get(c.name, c.role)) for c in self.columns)
        return replace(self, columns=columns)

    def feature_fields(self, features: Sequence[str] | None = None) -> list[FeatureField]:
        """The model inputs this schema describes: ``features``, or every ``feature`` column."""
        names = list(features) if features is not None else self._role("feature")
        return [_feature_field(self.column(name)) for name in names]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"columns": [c.to_dict() for c in self.columns]}
        if self.edited_by or self.edited_at:
            out["edited"] = {"by": self.edited_by, "at": self.edited_at}
        return out

    @classmethod
    def from_dict(cls, data: Any, source: str = "schema") -> Schema:
        """Parse a schema mapping; errors name ``source`` and the column."""
        if not isinstance(data, dict) or not isinstance(data.get("columns"), list):
            raise DataError(
                f"{source}: a schema is a mapping with a 'columns' list; export one with "
                "`modelyard data schema NAME@V --export FILE` and edit that."
            )
        columns = tuple(
            ColumnSchema.from_dict(c, f"{source}: columns[{i}]")
            for i, c in enumerate(data["columns"])
        )
        seen: set[str] = set()
        for c in columns:
            if c.name in seen:
                raise DataError(f"{source}: column '{c.name}' is listed twice; list it once.")
            seen.add(c.name)
        edited = data.get("edited") or {}
        return cls(columns, edited.get("by"), edited.get("at"))

    def to_yaml(self) -> str:
        import yaml

        body = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=100)
        return _YAML_HEADER + body

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_yaml(cls, text: str, source: str = "schema") -> Schema:
        """Parse YAML (or JSON, which is YAML) text; errors name ``source`` and the line."""
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f", line {mark.line + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or exc
            raise DataError(
                f"{source}{line}: not valid YAML or JSON ({problem}). Fix the syntax."
            ) from exc
        return cls.from_dict(data, source)

    @classmethod
    def load(cls, path: str | Path) -> Schema:
        """Read a schema file written by ``save`` (``.json``, or YAML otherwise)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(
                f"Cannot read the schema file {path}: {exc}. Check the path; export a schema "
                "with `modelyard data schema NAME@V --export FILE`."
            ) from exc
        return cls.from_yaml(text, str(path))

    def save(self, path: str | Path) -> Path:
        """Write the schema as JSON if ``path`` ends in ``.json``, else as commented YAML."""
        path = Path(path)
        text = self.to_json() if path.suffix.lower() == ".json" else self.to_yaml()
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise DataError(f"Cannot write the schema to {path}: {exc}.") from exc
        return path

    def _role(self, role: str) -> list[str]:
        return [c.name for c in self.columns if c.role == role]


def roles_from_spec(spec: Spec, columns: Sequence[str]) -> dict[str, Role]:
    """Each column's role as the spec's ``target`` and ``columns`` section assign it."""
    cols = spec.columns
    single: dict[str | None, Role] = {cols.id: "id", cols.time: "time", cols.group: "group"}
    features = set(spec.feature_columns(list(columns)))
    roles: dict[str, Role] = {}
    for name in columns:
        if name == spec.target:
            roles[name] = "target"
        elif name in single:
            roles[name] = single[name]
        elif name in cols.pii:
            roles[name] = "pii"
        elif name in cols.sensitive:
            roles[name] = "sensitive"
        else:
            roles[name] = "feature" if name in features else "excluded"
    return roles


# ---------------------------------------------------------------------- inference


class SchemaBuilder:
    """Infers a schema from record batches fed one at a time (bounded memory)."""

    def __init__(self) -> None:
        self._profiles: dict[str, _Profile] = {}

    def update(self, batch: pa.RecordBatch) -> None:
        for name, array in zip(batch.schema.names, batch.columns, strict=True):
            profile = self._profiles.get(name)
            if profile is None:
                profile = self._profiles[name] = _Profile(name, array.type)
            profile.update(array)

    def finish(self) -> Schema:
        return Schema(tuple(p.finish() for p in self._profiles.values()))


def infer_schema(batches: Iterable[pa.RecordBatch]) -> Schema:
    """The schema of ``batches``, inferred one batch at a time."""
    builder = SchemaBuilder()
    for batch in batches:
        builder.update(batch)
    return builder.finish()


def base_type(arrow_type: pa.DataType, column: str = "?") -> str:
    """The schema type family of an Arrow type: integer, float, boolean, string or datetime."""
    if pa.types.is_dictionary(arrow_type):
        return base_type(arrow_type.value_type, column)
    checks = (
        ("integer", pa.types.is_integer),
        ("float", lambda t: pa.types.is_floating(t) or pa.types.is_decimal(t)),
        ("boolean", pa.types.is_boolean),
        ("string", lambda t: _is_text(t) or pa.types.is_null(t)),
        ("datetime", lambda t: pa.types.is_timestamp(t) or pa.types.is_date(t)),
    )
    for name, check in checks:
        if check(arrow_type):
            return name
    raise DataError(
        f"Column '{column}' has Arrow type {arrow_type}, which a tabular data set cannot hold "
        "(use numbers, booleans, text or timestamps). Flatten or convert it, or drop the column."
    )


@dataclass
class _Profile:
    """What inference keeps about one column while batches stream past."""

    name: str
    arrow_type: pa.DataType
    rows: int = 0
    nulls: int = 0
    low: Any = None
    high: Any = None
    distinct: set[str] | None = field(default_factory=set)
    keys: KeySet | None = None

    def __post_init__(self) -> None:
        self.kind = base_type(self.arrow_type, self.name)
        if self.kind in ("integer", "string"):
            self.keys = KeySet(UNIQUE_LIMIT)

    def update(self, array: pa.Array) -> None:
        array = decoded(array)
        nulls = null_count(array)
        self.rows += len(array)
        self.nulls += nulls
        if self.kind in ("integer", "float", "datetime") and len(array) > nulls:
            self._bounds(array)
        if self.kind == "string" and self.distinct is not None:
            self.distinct.update(str(v) for v in pc.unique(array.drop_null()).to_pylist())
            if len(self.distinct) > CATEGORY_LIMIT:
                self.distinct = None
        if self.keys is not None:
            _, keys = value_keys(array)
            if self.keys.add(keys).any() or self.keys.overflowed:
                self.keys = None  # a duplicate (or too many values): not unique

    def _bounds(self, array: pa.Array) -> None:
        found = pc.min_max(array).as_py()
        if found["min"] is None or found["min"] != found["min"]:
            return  # nothing but NaN
        low, high = found["min"], found["max"]
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)

    def finish(self) -> ColumnSchema:
        kind: ColumnType = self.kind  # type: ignore[assignment]
        categories = None
        if kind == "string" and self.distinct is not None and self._few(len(self.distinct)):
            kind, categories = "category", tuple(sorted(self.distinct))
        low, high = self.low, self.high
        if kind == "datetime":
            low, high = _iso(low), _iso(high)
        elif kind == "float":
            low, high = _float(low), _float(high)
        unique = self.keys is not None and self.rows - self.nulls > SMALL_CATEGORY
        return ColumnSchema(
            self.name, kind, self.nulls > 0, low, high, categories, unique and kind != "category"
        )

    def _few(self, n_distinct: int) -> bool:
        present = self.rows - self.nulls
        return present > 0 and (n_distinct <= SMALL_CATEGORY or n_distinct * 2 <= present)


# ---------------------------------------------------------------------- value keys


class KeySet:
    """An exact set of 64-bit value keys in one sorted array; ``add`` reports repeats."""

    def __init__(self, limit: int = UNIQUE_LIMIT) -> None:
        self.limit = limit
        self.overflowed = False
        self._seen = np.empty(0, dtype=np.uint64)

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, keys: np.ndarray) -> np.ndarray:
        """Add ``keys``; True where a key was seen before (earlier in ``keys`` or before)."""
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        repeat = np.zeros(len(keys), dtype=bool)
        repeat[order[1:]] = ordered[1:] == ordered[:-1]
        slots = np.searchsorted(self._seen, keys)
        inside = slots < len(self._seen)
        repeat[inside] |= self._seen[slots[inside]] == keys[inside]
        fresh = np.unique(keys[~repeat])
        if not self.overflowed:
            self._seen = np.insert(self._seen, np.searchsorted(self._seen, fresh), fresh)
            if len(self._seen) > self.limit:
                self.overflowed, self._seen = True, np.empty(0, dtype=np.uint64)
        return repeat


def value_keys(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The positions of ``array``'s non-null values, and a 64-bit key for each value."""
    array = decoded(array)
    present = ~missing_mask(array)
    positions = np.flatnonzero(present)
    values = array.filter(pa.array(present))
    kind = base_type(array.type)
    if kind == "string":
        objects = np.asarray(values.to_numpy(zero_copy_only=False), dtype=object)
        keys = pd.util.hash_array(objects, categorize=False)
    elif kind == "datetime":
        keys = _as_int64(values).view(np.uint64)
    elif kind == "float":
        keys = (values.to_numpy(zero_copy_only=False).astype(np.float64) + 0.0).view(np.uint64)
    else:
        keys = values.to_numpy(zero_copy_only=False).astype(np.int64).view(np.uint64)
    return positions, np.ascontiguousarray(keys, dtype=np.uint64)


def decoded(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``array`` as one plain array: chunks combined, dictionaries decoded."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    return array


def missing_mask(array: pa.Array) -> np.ndarray:
    """True where a value is null (or NaN, which counts as missing everywhere here)."""
    mask = np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_floating(array.type):
        mask |= np.asarray(pc.is_nan(array).fill_null(False).to_numpy(zero_copy_only=False))
    return mask


def null_count(array: pa.Array) -> int:
    if pa.types.is_floating(array.type):
        return int(missing_mask(array).sum())
    return int(array.null_count)


def _as_int64(values: pa.Array) -> np.ndarray:
    if pa.types.is_date(values.type):
        values = values.cast(pa.timestamp("s"))
    return np.asarray(values.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def _is_text(arrow_type: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or pa.types.is_string_view(arrow_type)
    )


# ---------------------------------------------------------------------- helpers


def _feature_field(column: ColumnSchema) -> FeatureField:
    from modelyard.data.encoding import FeatureField

    if column.type in ("integer", "float"):
        return FeatureField(column.name, "number", column.nullable)
    if column.type == "boolean":
        return FeatureField(column.name, "category", column.nullable, ("False", "True"))
    if column.type == "category" and column.categories is not None:
        return FeatureField(
            column.name, "category", column.nullable, tuple(sorted(column.categories))
        )
    raise DataError(
        f"Column '{column.name}' is {column.type} without a list of categories, so it cannot be "
        "a model input. Exclude it (columns.exclude in modelyard.yaml), or edit the schema to "
        "type category with its categories."
    )


def _iso(value: Any) -> str | None:
    return None if value is None else pd.Timestamp(value).isoformat()


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _bound_out(value: Bound) -> Bound:
    """JSON has no infinity: write it as the strings 'inf' and '-inf'."""
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _bound_in(where: str, key: str, value: Any, kind: str) -> Bound:
    if value is None:
        return None
    if kind == "datetime":
        try:
            return str(pd.Timestamp(value).isoformat())
        except (ValueError, TypeError) as exc:
            raise DataError(
                f"{where}: '{key}' must be an ISO 8601 date or time; got {value!r}."
            ) from exc
    if kind in ("integer", "float"):
        if value in ("inf", "-inf"):
            return float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DataError(f"{where}: '{key}' must be a number or null; got {value!r}.")
        return float(value) if isinstance(value, float) else int(value)
    raise DataError(f"{where}: '{key}' applies to number and datetime columns, not {kind}.")


def _flag(where: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise DataError(f"{where}: '{key}' must be true or false; got {value!r}.")
    return value


def _one_of(where: str, key: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise DataError(f"{where}: '{key}' must be one of {', '.join(allowed)}; got {value!r}.")
    return str(value)


def _legacy(data: dict[str, Any]) -> str | None:
    """Schemas stored before types existed kept the pandas dtype name."""
    dtype = data.get("dtype")
    if not isinstance(dtype, str):
        return None
    for prefix, kind in (("int", "integer"), ("uint", "integer"), ("float", "float")):
        if dtype.startswith(prefix):
            return kind
    return {"bool": "boolean", "category": "category"}.get(
        dtype, "datetime" if dtype.startswith("datetime") else "string"
    )
