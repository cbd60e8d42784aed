"""The inference app: Open Inference Protocol v2 and a plain JSON records endpoint.

Requests are validated against the model's signature (its feature encoder) on
the request's own structure — no pandas on the hot path — and a bad request
gets a 422 whose body lists every bad field. Any other failure is answered with
a JSON 500 and logged; a traceback never reaches the client.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from modelyard.errors import InvalidInputError, ModelyardError, NotFoundError
from modelyard.train.bundle import ModelBundle

log = logging.getLogger("modelyard.serve")

OIP_TYPES = {
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
}


@dataclass
class ServedModel:
    """A loaded model version and the name it answers to."""

    name: str
    version: int
    bundle: ModelBundle


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def create_app(model: ServedModel) -> FastAPI:
    """An ASGI app serving ``model``."""
    app = FastAPI(
        title=f"modelyard · {model.name} v{model.version}", default_response_class=JSONResponse
    )
    started = time.time()

    @app.exception_handler(ModelyardError)
    async def known_error(request: Request, exc: ModelyardError) -> Response:
        return JSONResponse(exc.to_dict(), status_code=exc.http_status)

    @app.exception_handler(Exception)
    async def unknown_error(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        body = {
            "error": {
                "type": "InternalError",
                "message": "The server failed to answer; the error is in its log.",
                "details": None,
            }
        }
        return JSONResponse(body, status_code=500)

    @app.get("/v2/health/live")
    async def live() -> dict[str, Any]:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready() -> dict[str, Any]:
        return {"ready": True, "uptime_seconds": round(time.time() - started, 3)}

    @app.get("/v2/models/{name}")
    async def metadata(name: str) -> dict[str, Any]:
        _check_name(model, name)
        return _metadata(model)

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str) -> dict[str, Any]:
        _check_name(model, name)
        return {"name": model.name, "ready": True}

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request) -> Response:
        _check_name(model, name)
        body = _json_object(await request.body())
        records = oip_records(body, model.bundle.input_names)
        proba, labels = _predict(model.bundle, records)
        return JSONResponse(
            {
                "model_name": model.name,
                "model_version": str(model.version),
                "id": body.get("id"),
                "outputs": [
                    {
                        "name": "probability",
                        "shape": [len(proba)],
                        "datatype": "FP64",
                        "data": proba.tolist(),
                    },
                    {
                        "name": "label",
                        "shape": [len(labels)],
                        "datatype": "INT64",
                        "data": labels.tolist(),
                    },
                ],
            }
        )

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        body = orjson_loads(await request.body())
        records = body.get("records") if isinstance(body, dict) else body
        if not isinstance(records, list):
            raise InvalidInputError('Send a JSON array of records, or {"records": [...]}.')
        proba, labels = _predict(model.bundle, records)
        return JSONResponse(
            {
                "model": model.name,
                "version": model.version,
                "predictions": [
                    {"probability": p, "label": lab}
                    for p, lab in zip(proba.tolist(), labels.tolist(), strict=True)
                ],
            }
        )

    return app


def oip_records(body: dict[str, Any], features: list[str]) -> list[dict[str, Any]]:
    """Turn OIP v2 columnar inputs (one tensor per feature) into records."""
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInputError(
            "An inference request needs a non-empty 'inputs' array (one tensor per feature)."
        )
    columns: dict[str, list[Any]] = {}
    for i, tensor in enumerate(inputs):
        name, data = _tensor(tensor, i)
        columns[name] = data
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise InvalidInputError(f"All inputs must have the same length; got lengths {lengths}.")
    missing = [f for f in features if f not in columns]
    if missing:
        raise InvalidInputError(
            f"Missing inputs {missing}; the model needs {features}.",
            details=[{"field": f, "error": "required"} for f in missing],
        )
    rows = lengths.pop()
    return [{f: columns[f][r] for f in features} for r in range(rows)]


def _tensor(tensor: Any, index: int) -> tuple[str, list[Any]]:
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise InvalidInputError(f"inputs[{index}] must be an object with a 'name'.")
    name, data = tensor["name"], tensor.get("data")
    if tensor.get("datatype") not in OIP_TYPES:
        raise InvalidInputError(
            f"inputs[{index}] ('{name}'): datatype must be one of "
            f"{sorted(OIP_TYPES)}; got {tensor.get('datatype')!r}."
        )
    if not isinstance(data, list):
        raise InvalidInputError(f"inputs[{index}] ('{name}'): 'data' must be an array.")
    flat = data if not data or not isinstance(data[0], list) else [v for row in data for v in row]
    return name, flat


def _predict(bundle: ModelBundle, records: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    if not records:
        raise InvalidInputError("The request holds no records to score.")
    X = bundle.encode_records(records)
    proba = bundle.predict_proba(X)
    return proba, (proba >= bundle.threshold).astype(np.int64)


def _metadata(model: ServedModel) -> dict[str, Any]:
    kinds = {f.name: f.kind for f in model.bundle.encoder.fields}
    inputs = [
        {"name": n, "datatype": "FP64" if kinds.get(n) == "number" else "BYTES", "shape": [-1]}
        for n in model.bundle.input_names
    ]
    return {
        "name": model.name,
        "versions": [str(model.version)],
        "platform": model.bundle.flavor,
        "inputs": inputs,
        "outputs": [
            {"name": "probability", "datatype": "FP64", "shape": [-1]},
            {"name": "label", "datatype": "INT64", "shape": [-1]},
        ],
    }


def _check_name(model: ServedModel, name: str) -> None:
    if name != model.name:
        raise NotFoundError(f"No model '{name}' here; this server serves '{model.name}'.")


def orjson_loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError(f"The request body is not valid JSON: {exc}.") from None


def _json_object(body: bytes) -> dict[str, Any]:
    parsed = orjson_loads(body)
    if not isinstance(parsed, dict):
        raise InvalidInputError("The request body must be a JSON object.")
    return parsed
