"""The wire formats: request bodies → ``Rows``, model scores → response bodies.

Three protocols, so existing clients work unchanged:

- Open Inference Protocol v2 (KServe, Triton, MLServer): one tensor per input
  (MLServer's pandas codec), or one 2-D numeric tensor ``[rows, inputs]``.
- MLflow scoring (``/invocations``): ``dataframe_split``, ``dataframe_records``,
  ``instances``, ``inputs``, or CSV with a header row.
- Plain records (``/v1/models/NAME:predict``): ``{"records": [{...}, ...]}``.

Outputs follow the task. Binary: ``probability`` (of the positive class) and
``label`` (0/1 at the model's decision threshold); multiclass:
``probabilities`` (rows × classes) and ``label`` (the class); regression:
``prediction``. MLflow's ``predictions`` carries the scores (probabilities for
classifiers, as MLflow's LightGBM flavour answers).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from modelyard.errors import InvalidInputError
from modelyard.serve.signature import NUMBER_TYPES, Rows, Signature
from modelyard.train.bundle import ModelBundle

NUMERIC_TYPES = frozenset(
    {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
    | {"FP16", "FP32", "FP64"}
)
OIP_TYPES = NUMERIC_TYPES | {"BYTES"}
MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"The request body is not valid JSON: {exc}.") from None


def _object(body: bytes) -> dict[str, Any]:
    parsed = loads(body)
    if not isinstance(parsed, dict):
        raise InvalidInputError("The request body must be a JSON object.")
    return parsed


# ---------------------------------------------------------------- requests


def parse_v2(
    body: bytes, signature: Signature, json_length: int | None = None
) -> tuple[Rows, str | None]:
    """An OIP v2 inference request → its rows and its ``id``.

    ``json_length`` (the ``Inference-Header-Content-Length`` header) marks the
    binary tensor extension that Triton's clients send by default: a JSON
    header of that many bytes, then each input's raw values in order.
    """
    binary = b""
    if json_length is not None:
        if not 0 < json_length <= len(body):
            raise InvalidInputError(
                "Inference-Header-Content-Length must be the length of the JSON part of the body."
            )
        body, binary = body[:json_length], body[json_length:]
    request = _object(body)
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInputError(
            "An inference request needs a non-empty 'inputs' array: one tensor per input, "
            "or one 2-D tensor [rows, inputs]."
        )
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInputError("'id' must be a string.")
    tensors = [_tensor(t, i) for i, t in enumerate(_with_binary_data(inputs, binary))]
    if len(tensors) == 1 and _is_matrix(tensors[0], signature):
        return Rows(n=len(matrix := _matrix(tensors[0])), matrix=matrix), request_id
    columns: dict[str, list[Any]] = {}
    for name, _, shape, data in tensors:
        columns[name] = _flat(name, shape, data)
    n = len(next(iter(columns.values())))
    return Rows(n=n, columns=columns, extra=signature.extra_fields(list(columns))), request_id


BINARY_DTYPES = {
    "BOOL": "?",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}


def _with_binary_data(inputs: list[Any], binary: bytes) -> list[Any]:
    """Inputs whose values came as binary (``parameters.binary_data_size``) get ``data``."""
    offset = 0
    out = []
    for tensor in inputs:
        params = tensor.get("parameters") if isinstance(tensor, dict) else None
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is None:
            out.append(tensor)
            continue
        name = tensor.get("name")
        if type(size) is not int or size < 0 or offset + size > len(binary):
            raise InvalidInputError(
                f"Input '{name}': binary_data_size does not match the binary part of the body.",
                details=[{"row": None, "field": name, "error": "bad binary_data_size"}],
            )
        chunk = binary[offset : offset + size]
        offset += size
        out.append(dict(tensor, data=_decode_binary(name, tensor.get("datatype"), chunk)))
    if offset != len(binary):
        raise InvalidInputError("The body holds binary data that no input claims.")
    return out


def _decode_binary(name: Any, datatype: Any, chunk: bytes) -> list[Any]:
    if datatype == "BYTES":  # each element: a 4-byte little-endian length, then its bytes
        values: list[Any] = []
        at = 0
        while at < len(chunk):
            length = int.from_bytes(chunk[at : at + 4], "little")
            raw = chunk[at + 4 : at + 4 + length]
            if at + 4 + length > len(chunk):
                raise InvalidInputError(f"Input '{name}': truncated BYTES element.")
            try:
                values.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise InvalidInputError(f"Input '{name}': BYTES elements must be UTF-8.") from None
            at += 4 + length
        return values
    dtype = BINARY_DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None or len(chunk) % np.dtype(dtype).itemsize:
        raise InvalidInputError(
            f"Input '{name}': binary data does not fit datatype {datatype!r}.",
            details=[{"row": None, "field": name, "error": "bad binary data"}],
        )
    decoded: list[Any] = np.frombuffer(chunk, dtype=dtype).tolist()
    return decoded


def _tensor(tensor: Any, index: int) -> tuple[str, str, list[int], list[Any]]:
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise InvalidInputError(f"inputs[{index}] must be an object with a string 'name'.")
    name, datatype, shape, data = (
        tensor["name"],
        tensor.get("datatype"),
        tensor.get("shape"),
        tensor.get("data"),
    )
    if datatype not in OIP_TYPES:
        raise InvalidInputError(
            f"inputs[{index}] ('{name}'): datatype must be one of {sorted(OIP_TYPES)}.",
            details=[{"row": None, "field": name, "error": "unknown datatype"}],
        )
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise InvalidInputError(
            f"inputs[{index}] ('{name}'): 'shape' must be an array of non-negative integers.",
            details=[{"row": None, "field": name, "error": "bad shape"}],
        )
    if not isinstance(data, list):
        raise InvalidInputError(
            f"inputs[{index}] ('{name}'): 'data' must be an array.",
            details=[{"row": None, "field": name, "error": "data must be an array"}],
        )
    return name, datatype, shape, data


def _is_matrix(tensor: tuple[str, str, list[int], list[Any]], signature: Signature) -> bool:
    name, datatype, shape, _ = tensor
    if len(shape) != 2 or datatype not in NUMERIC_TYPES:
        return False
    return signature.width > 1 or name not in signature.known


def _matrix(tensor: tuple[str, str, list[int], list[Any]]) -> np.ndarray:
    name, _, shape, data = tensor
    seen: set[type] = set()
    for row in data:
        if type(row) is list:
            seen.update(map(type, row))
        else:
            seen.add(type(row))
    if not seen <= NUMBER_TYPES:  # numpy would read true as 1 and "2" as 2
        raise InvalidInputError(
            f"Tensor '{name}' must hold numbers only (no booleans, strings or nulls).",
            details=[{"row": None, "field": name, "error": "expected numbers"}],
        )
    try:
        array = np.asarray(data, dtype=np.float64)
    except ValueError:
        raise InvalidInputError(
            f"Tensor '{name}' must be nested as its shape says (rows of equal length).",
            details=[{"row": None, "field": name, "error": "ragged data"}],
        ) from None
    if array.size != math.prod(shape):
        raise InvalidInputError(
            f"Tensor '{name}' has {array.size} values; its shape {shape} needs {math.prod(shape)}.",
            details=[{"row": None, "field": name, "error": "shape and data disagree"}],
        )
    return array.reshape(shape)


def _flat(name: str, shape: list[int], data: list[Any]) -> list[Any]:
    """A column tensor's values: ``[n]`` or ``[n, 1]``, data flat or nested."""
    if data and isinstance(data[0], list):
        data = [v for row in data for v in (row if isinstance(row, list) else [row])]
    if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1) or math.prod(shape) != len(data):
        raise InvalidInputError(
            f"Input '{name}' must be a column: shape [rows] or [rows, 1] matching its data; "
            f"got shape {shape} with {len(data)} values.",
            details=[{"row": None, "field": name, "error": "shape and data disagree"}],
        )
    return data


def parse_mlflow(body: bytes, content_type: str, signature: Signature) -> Rows:
    """An MLflow scoring request (JSON in one of four layouts, or CSV) → its rows."""
    if content_type.startswith(("text/csv", "application/csv")):
        return _csv(body, signature)
    request = _object(body)
    keys = [k for k in MLFLOW_KEYS if k in request]
    if len(keys) != 1:
        raise InvalidInputError(
            f"An MLflow scoring request holds exactly one of {list(MLFLOW_KEYS)}; "
            f"got {sorted(request)[:10]}."
        )
    key, payload = keys[0], request[keys[0]]
    if key == "dataframe_split":
        return _split(payload, signature)
    if key == "dataframe_records":
        return _records(payload, signature)
    if key == "inputs" and isinstance(payload, dict):
        columns = {k: v if isinstance(v, list) else [v] for k, v in payload.items()}
        n = len(next(iter(columns.values()), []))
        return Rows(n=n, columns=columns, extra=signature.extra_fields(list(columns)))
    return _instances(key, payload, signature)


def _split(payload: Any, signature: Signature) -> Rows:
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise InvalidInputError("'dataframe_split' needs 'columns' and 'data' (a list of rows).")
    names = payload.get("columns", signature.names)
    if not isinstance(names, list) or not all(isinstance(c, str) for c in names):
        raise InvalidInputError("'dataframe_split.columns' must be a list of column names.")
    return _positional(payload["data"], names, signature, "dataframe_split.data")


def _records(payload: Any, signature: Signature) -> Rows:
    if not isinstance(payload, list):
        raise InvalidInputError("'dataframe_records' must be a list of objects.")
    first = payload[0] if payload and isinstance(payload[0], dict) else {}
    return Rows(n=len(payload), records=payload, extra=signature.extra_fields(list(first)))


def _instances(key: str, payload: Any, signature: Signature) -> Rows:
    if not isinstance(payload, list):
        raise InvalidInputError(f"'{key}' must be a list of rows, or an object of columns.")
    if payload and all(isinstance(r, dict) for r in payload):
        return _records(payload, signature)
    if payload and all(isinstance(r, list) for r in payload):
        return _positional(payload, signature.names, signature, key)
    if signature.width == 1:
        return Rows(n=len(payload), columns={signature.names[0]: payload})
    raise InvalidInputError(
        f"'{key}' must hold rows: objects of fields, or arrays of {signature.width} values "
        "in the order of GET /v2/models/NAME."
    )


def _positional(rows: list[Any], names: list[str], signature: Signature, where: str) -> Rows:
    width = len(names)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            raise InvalidInputError(
                f"{where}[{i}] must be an array of {width} values, one per column.",
                details=[{"row": i, "field": None, "error": f"expected {width} values"}],
            )
    transposed = [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in names]
    columns = dict(zip(names, transposed, strict=True))
    return Rows(n=len(rows), columns=columns, extra=signature.extra_fields(names))


def _csv(body: bytes, signature: Signature) -> Rows:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInputError("A CSV body must be UTF-8 text.") from None
    try:
        table = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise InvalidInputError(f"The CSV body cannot be read: {exc}.") from None
    if not table:
        raise InvalidInputError("A CSV body needs a header row naming the columns.")
    header, rows = table[0], [r for r in table[1:] if r]
    parsed = _positional(rows, header, signature, "csv row")
    assert parsed.columns is not None
    parsed.columns = {
        name: _numbers(list(values)) if signature.kinds.get(name) == "number" else values
        for name, values in parsed.columns.items()
    }
    return parsed


def _numbers(values: list[Any]) -> list[Any]:
    """CSV cells of a numeric column: '' and 'nan' are missing, text stays text (and is
    reported)."""
    out: list[Any] = []
    for value in values:
        if value == "" or value.lower() == "nan":
            out.append(None)
            continue
        try:
            out.append(float(value))
        except ValueError:
            out.append(value)
    return out


def parse_v1(body: bytes, signature: Signature) -> Rows:
    """``{"records": [...]}`` → its rows."""
    request = _object(body)
    records = request.get("records")
    if not isinstance(records, list):
        raise InvalidInputError('Send {"records": [{field: value, ...}, ...]}.')
    return _records(records, signature)


# ---------------------------------------------------------------- responses


@dataclass
class Prediction:
    """Scores for a request, with the labels they imply."""

    task: str
    scores: np.ndarray
    labels: list[Any] | None
    classes: list[str] | None


def prediction(bundle: ModelBundle, scores: np.ndarray) -> Prediction:
    labels = bundle.labels(scores)
    if bundle.task == "binary":
        assert labels is not None
        return Prediction("binary", scores, labels.tolist(), None)
    if bundle.task == "multiclass":
        assert labels is not None
        classes = list(bundle.classes or [str(i) for i in range(scores.shape[1])])
        return Prediction("multiclass", scores, labels.tolist(), classes)
    return Prediction("regression", scores, None, None)


def v2_outputs(p: Prediction) -> list[dict[str, Any]]:
    n = len(p.scores)
    if p.task == "binary":
        return [
            {"name": "probability", "datatype": "FP64", "shape": [n], "data": p.scores.tolist()},
            {"name": "label", "datatype": "INT64", "shape": [n], "data": p.labels},
        ]
    if p.task == "multiclass":
        return [
            {
                "name": "probabilities",
                "datatype": "FP64",
                "shape": list(p.scores.shape),
                "data": p.scores.ravel().tolist(),
                "parameters": {"classes": p.classes},
            },
            {"name": "label", "datatype": "BYTES", "shape": [n], "data": p.labels},
        ]
    return [{"name": "prediction", "datatype": "FP64", "shape": [n], "data": p.scores.tolist()}]


def v1_predictions(p: Prediction) -> list[dict[str, Any]]:
    if p.task == "binary":
        assert p.labels is not None
        return [
            {"probability": s, "label": lab}
            for s, lab in zip(p.scores.tolist(), p.labels, strict=True)
        ]
    if p.task == "multiclass":
        assert p.labels is not None and p.classes is not None
        classes = p.classes
        return [
            {"probabilities": dict(zip(classes, row, strict=True)), "label": lab}
            for row, lab in zip(p.scores.tolist(), p.labels, strict=True)
        ]
    return [{"prediction": s} for s in p.scores.tolist()]
