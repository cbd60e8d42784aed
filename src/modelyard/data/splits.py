"""Train / validation / test splits, recorded by row id so a run can rebuild them exactly.

Object model::

    make_split(frame, spec, method=None, fractions=(0.64, 0.16, 0.2), seed=42) -> Split
    Split                  train, validation, test: sorted row ids; method, params, seed
    ├── positions(frame)   SplitPositions(train, validation, test): row positions in a frame
    ├── describe()         the small summary a run keeps (no ids, with the sha256)
    ├── to_dict()          the whole split as compact JSON (see "Record" below)
    └── from_dict(data)    the same Split again, checked against its sha256

Row ids are the values of the spec's ``columns.id`` when the spec names one:
an integer id column stays integers, any other id column is compared as text
(``str(value)``). Without ``columns.id`` the ids are row positions 0..n-1
(``Split.id_column`` is None), which only fit the same rows in the same order.

Methods. ``method=None`` chooses ``grouped`` when the spec names
``columns.group``, else ``stratified`` for binary and multiclass tasks, else
``random``. ``time`` is used only when asked for: a time column alone does not
say the model will predict the future (``check_split`` warns when a split that
ignores time puts older rows after newer ones).

- ``random``      a seeded permutation, cut at the fractions.
- ``stratified``  each class shuffled and apportioned on its own, so every class
  share in every part is within one row of exact; the rounding remainders are
  steered so that the part sizes still add up to the overall targets.
- ``grouped``     groups (``columns.group``) in a seeded random order, each given
  whole to the part furthest below its row target: no group is on two sides,
  every part gets a group when there are at least three, and part sizes are met
  up to one group's size. A row without a group is a group of its own.
- ``time``        rows ordered by ``columns.time``: train the oldest, then
  validation, then test. A timestamp on a boundary goes wholly to the earlier
  part, so every validation row is strictly newer than every training row.

Record. ``to_dict()`` is JSON. Integer ids are sorted, delta-encoded, stored in
the smallest unsigned type that holds the deltas, zlib-compressed and base64'd
(a million row positions take a few hundred kilobytes); text ids are a sorted
JSON list, zlib-compressed and base64'd. ``sha256`` covers the decoded ids, so
``from_dict`` refuses a damaged record, and two runs used the same rows exactly
when their ``describe()["sha256"]`` agree.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import zlib
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, get_args

import numpy as np
import numpy.typing as npt
import pandas as pd

from modelyard.errors import DataError, InvalidInputError
from modelyard.spec import Spec

__all__ = [
    "CLASSIFICATION",
    "DEFAULT_FRACTIONS",
    "METHODS",
    "PARTS",
    "Split",
    "SplitPositions",
    "default_method",
    "make_split",
    "time_values",
]

Method = Literal["random", "stratified", "grouped", "time"]
METHODS: tuple[str, ...] = get_args(Method)
PARTS = ("train", "validation", "test")
DEFAULT_FRACTIONS = (0.64, 0.16, 0.2)
CLASSIFICATION = ("binary", "multiclass")
RECORD_FORMAT = 1

Ids = npt.NDArray[Any]
Positions = npt.NDArray[np.int64]


class SplitPositions(NamedTuple):
    """Row positions (``iloc``) of each part in one frame, ascending."""

    train: Positions
    validation: Positions
    test: Positions


@dataclass(frozen=True, eq=False)
class Split:
    """The row ids of each part, and how they were drawn.

    ``id_column`` is the column the ids come from, or None when they are row
    positions (then ``n_rows`` must be the number of rows split). ``id_kind`` is
    ``"int"`` when every id is an integer, else ``"str"`` (ids that are not all
    integers are kept as text). ``params`` holds what the method used (the
    target, group or time column, the time boundaries).
    """

    train: Ids
    validation: Ids
    test: Ids
    method: str
    seed: int
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
    id_column: str | None = None
    id_kind: Literal["int", "str"] = "int"
    n_rows: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.id_kind == "int" and not all(
            np.asarray(getattr(self, name)).dtype.kind in "iu" for name in PARTS
        ):
            object.__setattr__(self, "id_kind", "str")
        for name in PARTS:  # ids are kept sorted: one set of ids has one record and digest
            object.__setattr__(self, name, _sorted_ids(getattr(self, name), self.id_kind))

    def part(self, name: str) -> Ids:
        """The ids of part ``name`` (train, validation or test)."""
        if name not in PARTS:
            raise InvalidInputError(f"A split has parts {PARTS}; got {name!r}.")
        ids: Ids = getattr(self, name)
        return ids

    @property
    def sizes(self) -> dict[str, int]:
        return {name: len(self.part(name)) for name in PARTS}

    @property
    def digest(self) -> str:
        """sha256 of the ids of every part: equal digests mean the same rows in each part."""
        sha = hashlib.sha256(f"{self.id_column}|{self.id_kind}".encode())
        for name in PARTS:
            sha.update(f"|{name}:{len(self.part(name))}:".encode())
            sha.update(_canonical_bytes(self.part(name), self.id_kind))
        return sha.hexdigest()

    def positions(self, frame: pd.DataFrame) -> SplitPositions:
        """Where each part's rows are in ``frame``; rows the split does not name are in none."""
        if self.id_column is None:
            if len(frame) != self.n_rows:
                raise DataError(
                    f"This split holds row positions of {self.n_rows:,} rows, but the data "
                    f"has {len(frame):,}. Positions only fit the same rows in the same order; "
                    "set columns.id in the spec so splits are kept by id."
                )
            return SplitPositions(*(np.sort(self.part(p)).astype(np.int64) for p in PARTS))
        index = pd.Index(_frame_ids(frame, self.id_column, self.id_kind))
        if not index.is_unique:
            dupes = index[index.duplicated()].unique()[:5].tolist()
            raise DataError(
                f"Id column '{self.id_column}' has {int(index.duplicated().sum()):,} repeated "
                f"values (e.g. {dupes}), so rows cannot be found by id. Remove the duplicates."
            )
        return SplitPositions(*(self._locate(index, p) for p in PARTS))

    def _locate(self, index: pd.Index, name: str) -> Positions:
        ids = self.part(name)
        if self.id_kind == "int" and index.dtype.kind not in "iu":
            ids = ids.astype(str).astype(object)
        found = index.get_indexer(ids)
        missing = found < 0
        if missing.any():
            examples = ids[missing][:5].tolist()
            raise DataError(
                f"{int(missing.sum()):,} {name} ids of this split are not in column "
                f"'{self.id_column}' of the data (e.g. {examples}). Load the dataset "
                "version the split was made on."
            )
        return np.sort(found).astype(np.int64)

    def describe(self) -> dict[str, Any]:
        """A small JSON summary for a run record: no ids, but their sha256."""
        return {
            "method": self.method,
            "seed": self.seed,
            "fractions": list(self.fractions),
            "params": dict(self.params),
            "id_column": self.id_column,
            "rows": self.sizes,
            "sha256": self.digest,
        }

    def to_dict(self) -> dict[str, Any]:
        """The whole split as JSON; ``Split.from_dict`` rebuilds it exactly."""
        encode = _encode_ints if self.id_kind == "int" else _encode_strs
        return {
            "format": RECORD_FORMAT,
            **self.describe(),
            "id_kind": self.id_kind,
            "n_rows": self.n_rows,
            "ids": {name: encode(self.part(name)) for name in PARTS},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Split:
        """Rebuild a split written by ``to_dict``; raises ``DataError`` if it is damaged."""
        try:
            kind = data["id_kind"]
            decode = _decode_ints if kind == "int" else _decode_strs
            parts = [decode(data["ids"][name]) for name in PARTS]
            fractions = tuple(float(f) for f in data["fractions"])
            split = cls(
                train=parts[0],
                validation=parts[1],
                test=parts[2],
                method=str(data["method"]),
                seed=int(data["seed"]),
                fractions=(fractions[0], fractions[1], fractions[2]),
                id_column=data["id_column"],
                id_kind=kind,
                n_rows=int(data["n_rows"]),
                params=dict(data["params"]),
            )
        except (KeyError, TypeError, ValueError, IndexError, zlib.error) as exc:
            raise DataError(
                f"Cannot read this split record: {exc!r}. Was it written by Split.to_dict()?"
            ) from exc
        if split.digest != data.get("sha256"):
            raise DataError(
                "This split record does not match its sha256: the ids were changed or damaged."
            )
        return split

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Split):
            return NotImplemented
        return self.describe() == other.describe() and self.n_rows == other.n_rows

    __hash__ = None  # type: ignore[assignment]


# --------------------------------------------------------------------------- making splits


def default_method(spec: Spec) -> Method:
    """``grouped`` with a group column, else ``stratified`` for classification, else ``random``."""
    if spec.columns.group is not None:
        return "grouped"
    return "stratified" if spec.task in CLASSIFICATION else "random"


def make_split(
    frame: pd.DataFrame,
    spec: Spec,
    method: str | None = None,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    seed: int = 42,
) -> Split:
    """Split ``frame``'s rows into train, validation and test; see the module docstring."""
    chosen = method if method is not None else default_method(spec)
    if chosen not in METHODS:
        raise InvalidInputError(
            f"Split method must be one of {', '.join(METHODS)}; got {chosen!r}."
        )
    _check_fractions(fractions)
    ids, id_kind = _row_ids(frame, spec.columns.id)
    counts = _apportion(len(frame), fractions)
    params: dict[str, Any] = {}
    if chosen == "random":
        parts = _cut(np.random.default_rng(seed).permutation(len(frame)), counts)
    elif chosen == "stratified":
        parts = _stratified(_class_codes(frame, spec), fractions, counts, seed)
        params["target"] = spec.target
    elif chosen == "grouped":
        column = _required_column(frame, spec.columns.group, "group", "grouped")
        parts = _grouped(frame[column], fractions, seed)
        params["group"] = column
    else:
        column = _required_column(frame, spec.columns.time, "time", "time")
        parts, params = _by_time(frame, column, counts)
    _check_not_empty(parts, chosen, len(frame))
    return Split(
        train=ids[parts[0]],
        validation=ids[parts[1]],
        test=ids[parts[2]],
        method=chosen,
        seed=seed,
        fractions=fractions,
        id_column=spec.columns.id,
        id_kind=id_kind,
        n_rows=len(frame),
        params=params,
    )


def _check_fractions(fractions: tuple[float, ...]) -> None:
    ok = len(fractions) == 3 and all(isinstance(f, int | float) and 0 < f < 1 for f in fractions)
    if not ok or not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise InvalidInputError(
            "Split fractions must be three numbers above 0 (train, validation, test) that "
            f"add up to 1, such as {DEFAULT_FRACTIONS}; got {tuple(fractions)}."
        )


def _check_not_empty(parts: list[Positions], method: str, rows: int) -> None:
    for name, part in zip(PARTS, parts, strict=True):
        if len(part) == 0:
            raise DataError(
                f"The {method} split of {rows:,} rows left the {name} part empty: there are "
                "too few rows, groups or distinct times for these fractions. Add data, "
                "change the fractions, or choose another method."
            )


def _required_column(frame: pd.DataFrame, column: str | None, role: str, method: str) -> str:
    if column is None:
        raise InvalidInputError(
            f"A {method} split needs columns.{role} in the spec; it names none. "
            f"Set columns.{role}, or choose another --split method."
        )
    if column not in frame.columns:
        raise DataError(
            f"The {role} column '{column}' (columns.{role} in the spec) is not in the data; "
            f"columns are {list(frame.columns)}."
        )
    return column


def _row_ids(frame: pd.DataFrame, column: str | None) -> tuple[Ids, Literal["int", "str"]]:
    if column is None:
        return np.arange(len(frame), dtype=np.int64), "int"
    if column not in frame.columns:
        raise DataError(
            f"The id column '{column}' (columns.id in the spec) is not in the data; "
            f"columns are {list(frame.columns)}."
        )
    values = frame[column]
    if values.isna().any():
        raise DataError(
            f"Id column '{column}' has {int(values.isna().sum()):,} missing values; "
            "every row needs an id to be kept in a split. Fill or drop them."
        )
    kind: Literal["int", "str"] = "int" if _is_int(values) else "str"
    ids = _frame_ids(frame, column, kind)
    duplicated = pd.Index(ids).duplicated()
    if duplicated.any():
        raise DataError(
            f"Id column '{column}' has {int(duplicated.sum()):,} repeated values "
            f"(e.g. {ids[duplicated][:5].tolist()}); ids must be unique. Remove the duplicates."
        )
    return ids, kind


def _is_int(values: pd.Series) -> bool:
    return pd.api.types.is_integer_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _frame_ids(frame: pd.DataFrame, column: str, kind: str) -> Ids:
    if column not in frame.columns:
        raise DataError(
            f"The split keeps rows by column '{column}', which is not in the data; "
            f"columns are {list(frame.columns)}."
        )
    values = frame[column]
    if kind == "int" and _is_int(values):
        ints: Ids = values.to_numpy(np.int64)
        return ints
    texts: Ids = values.astype(str).to_numpy(dtype=object)
    return texts


def _apportion(total: int, fractions: tuple[float, ...]) -> npt.NDArray[np.int64]:
    """Whole counts adding up to ``total``, by largest remainder (ties to the earlier part)."""
    exact = np.asarray(fractions, dtype=np.float64) * total
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - int(counts.sum())]] += 1
    return counts


def _cut(rows: npt.NDArray[np.integer[Any]], counts: npt.NDArray[np.int64]) -> list[Positions]:
    bounds = np.cumsum(counts)[:-1]
    return [part.astype(np.int64) for part in np.split(rows, bounds)]


def _class_codes(frame: pd.DataFrame, spec: Spec) -> npt.NDArray[np.intp]:
    if spec.task not in CLASSIFICATION:
        raise InvalidInputError(
            f"A stratified split needs a classification target; the spec says task "
            f"'{spec.task}'. Use --split random, grouped or time."
        )
    if spec.target not in frame.columns:
        raise DataError(
            f"Target column '{spec.target}' (from the spec) is not in the data; "
            f"columns are {list(frame.columns)}."
        )
    codes: npt.NDArray[np.intp] = pd.factorize(frame[spec.target], use_na_sentinel=False)[0]
    return codes


def _stratified(
    codes: npt.NDArray[np.intp],
    fractions: tuple[float, ...],
    targets: npt.NDArray[np.int64],
    seed: int,
) -> list[Positions]:
    """Each class apportioned on its own; remainders go where the part totals need them."""
    rng = np.random.default_rng(seed)
    sizes = np.bincount(codes)
    exact = sizes[:, None] * np.asarray(fractions, dtype=np.float64)[None, :]
    counts = np.floor(exact).astype(np.int64)
    need = targets - counts.sum(axis=0)
    for c in range(len(sizes)):
        extra = int(sizes[c] - counts[c].sum())
        # Most-needed part first (keeps totals right), then the larger remainder.
        order = sorted(range(3), key=lambda p: (-need[p], -(exact[c, p] - counts[c, p]), p))
        for p in order[:extra]:
            counts[c, p] += 1
            need[p] -= 1
    parts: list[list[Positions]] = [[], [], []]
    for c in range(len(sizes)):
        rows = rng.permutation(np.flatnonzero(codes == c))
        for p, chunk in enumerate(_cut(rows, counts[c])):
            parts[p].append(chunk)
    return [np.concatenate(p) if p else np.empty(0, np.int64) for p in parts]


def _grouped(groups: pd.Series, fractions: tuple[float, ...], seed: int) -> list[Positions]:
    """Whole groups, in random order, each to the part furthest below its row target.

    "Furthest below" is relative (1 - rows so far / target), so the first three
    groups go to three different parts.
    """
    codes, uniques = pd.factorize(groups)
    missing = codes < 0
    codes = codes.copy()
    codes[missing] = len(uniques) + np.arange(int(missing.sum()))  # a row without a group
    sizes = np.bincount(codes).tolist()
    goal = [f * len(groups) for f in fractions]
    filled = [0.0, 0.0, 0.0]
    part_of = np.empty(len(sizes), dtype=np.int64)
    for g in np.random.default_rng(seed).permutation(len(sizes)).tolist():
        p = max(range(3), key=lambda i: (1.0 - filled[i] / goal[i], -i))
        part_of[g] = p
        filled[p] += sizes[g]
    row_part = part_of[codes]
    return [np.flatnonzero(row_part == p).astype(np.int64) for p in range(3)]


def time_values(frame: pd.DataFrame, column: str) -> pd.Series:
    """Column ``column`` as orderable values: datetimes or numbers (text is parsed as dates)."""
    values = frame[column]
    if pd.api.types.is_datetime64_any_dtype(values) or (
        pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    ):
        return values
    try:
        return pd.to_datetime(values, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"Time column '{column}' holds {values.dtype} values that are not dates or "
            f"numbers ({exc}). Store ISO 8601 timestamps or numbers."
        ) from exc


def _by_time(
    frame: pd.DataFrame, column: str, counts: npt.NDArray[np.int64]
) -> tuple[list[Positions], dict[str, Any]]:
    """Oldest rows to train, then validation, then test; boundary ties to the earlier part."""
    times = time_values(frame, column)
    if times.isna().any():
        raise DataError(
            f"Time column '{column}' has {int(times.isna().sum()):,} missing values, so "
            "those rows cannot be ordered. Fill or drop them, or choose another split."
        )
    order = np.argsort(times.to_numpy(), kind="stable")
    ordered = times.iloc[order].reset_index(drop=True)
    bounds, planned = [0], 0
    for size in counts[:-1]:
        planned += int(size)
        end = min(max(planned, bounds[-1]), len(order))
        if end > 0:  # the whole block of rows sharing the boundary time stays on this side
            end = int(ordered.searchsorted(ordered.iloc[end - 1], side="right"))
        bounds.append(end)
    bounds.append(len(order))
    parts = [order[a:b].astype(np.int64) for a, b in itertools.pairwise(bounds)]
    params: dict[str, Any] = {"time": column}
    for name, end in zip(("train_until", "validation_until"), bounds[1:3], strict=True):
        params[name] = str(ordered.iloc[end - 1]) if end > 0 else None
    return parts, params


# --------------------------------------------------------------------------- the record


def _sorted_ids(ids: Any, kind: str) -> Ids:
    if kind == "int":
        return np.sort(np.asarray(ids, dtype=np.int64))
    texts = np.array([str(i) for i in ids], dtype=object)
    # Sorting fixed-width text is several times faster than sorting Python objects.
    ordered: Ids = texts[np.argsort(texts.astype(str), kind="stable")]
    return ordered


def _canonical_bytes(ids: Ids, kind: str) -> bytes:
    if kind == "int":
        return np.asarray(ids, dtype="<i8").tobytes()
    return json.dumps([str(i) for i in ids], ensure_ascii=False).encode()


def _encode_ints(ids: Ids) -> dict[str, Any]:
    values = np.asarray(ids, dtype=np.int64)  # sorted by Split
    deltas = np.diff(values)
    top = int(deltas.max()) if len(deltas) else 0
    dtype = next(t for t in ("<u1", "<u2", "<u4", "<u8") if top <= np.iinfo(np.dtype(t)).max)
    packed = zlib.compress(deltas.astype(dtype).tobytes(), 6)
    return {
        "count": len(values),
        "first": int(values[0]) if len(values) else None,
        "dtype": dtype,
        "deltas": base64.b64encode(packed).decode("ascii"),
    }


def _decode_ints(data: dict[str, Any]) -> Ids:
    count = int(data["count"])
    if count == 0:
        return np.empty(0, dtype=np.int64)
    raw = zlib.decompress(base64.b64decode(data["deltas"]))
    deltas = np.frombuffer(raw, dtype=np.dtype(data["dtype"])).astype(np.int64)
    if len(deltas) != count - 1:
        raise ValueError(f"expected {count - 1} deltas, found {len(deltas)}")
    return np.concatenate([[int(data["first"])], int(data["first"]) + np.cumsum(deltas)])


def _encode_strs(ids: Ids) -> dict[str, Any]:
    text = json.dumps([str(i) for i in ids], ensure_ascii=False)
    packed = zlib.compress(text.encode(), 6)
    return {"count": len(ids), "json": base64.b64encode(packed).decode("ascii")}


def _decode_strs(data: dict[str, Any]) -> Ids:
    values = json.loads(zlib.decompress(base64.b64decode(data["json"])))
    if not isinstance(values, list) or len(values) != int(data["count"]):
        raise ValueError("the id list does not match its count")
    return np.array([str(v) for v in values], dtype=object)
