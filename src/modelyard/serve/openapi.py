"""The inference server's self-description: OIP v2 model metadata and an OpenAPI document.

Both are built from the served model's signature, so ``/docs`` shows the
model's own inputs — names, kinds, category values — and a client generator
(or a fuzzer such as schemathesis) sees the exact request shapes the server
accepts and the answers it gives.
"""

from __future__ import annotations

from typing import Any

from modelyard.serve.model import ServedModel
from modelyard.serve.protocols import MLFLOW_KEYS, OIP_TYPES

ERROR_STATUSES = {
    "404": "No such model or version on this server.",
    "413": "The request body is too large.",
    "422": "The request does not match the model's signature (fields listed in details).",
    "503": "At capacity: retry after the Retry-After seconds.",
}


def metadata(model: ServedModel) -> dict[str, Any]:
    """OIP v2 model metadata (``GET /v2/models/NAME``)."""
    bundle = model.bundle
    return {
        "name": model.name,
        "versions": [str(model.version)],
        "platform": f"modelyard-{bundle.flavor}",
        "inputs": model.signature.describe(),
        "outputs": _outputs(bundle.task, bundle.classes),
        "parameters": {
            "task": bundle.task,
            "runtime": model.runtime,
            "threshold": bundle.threshold if bundle.task == "binary" else None,
            "target": bundle.target,
        },
    }


def _outputs(task: str, classes: tuple[str, ...] | None) -> list[dict[str, Any]]:
    if task == "binary":
        return [
            {"name": "probability", "datatype": "FP64", "shape": [-1]},
            {"name": "label", "datatype": "INT64", "shape": [-1]},
        ]
    if task == "multiclass":
        width = len(classes) if classes else -1
        return [
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, width]},
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
        ]
    return [{"name": "prediction", "datatype": "FP64", "shape": [-1]}]


def document(model: ServedModel) -> dict[str, Any]:
    """The OpenAPI 3.0 document of a server serving ``model``."""
    name = model.name
    json_body = _json_body
    paths: dict[str, Any] = {
        "/v2/health/live": {"get": _get("Liveness", "Health")},
        "/v2/health/ready": {"get": _get("Readiness", "Health")},
        "/health": {"get": _get("Readiness (MLflow)", "Health")},
        "/v2": {"get": _get("Server metadata (OIP v2)", "Open Inference Protocol")},
        "/v2/models/{name}": {"get": _get("Model metadata (OIP v2)", "Open Inference Protocol")},
        "/v2/models/{name}/ready": {"get": _get("Model readiness", "Open Inference Protocol")},
        "/v2/models/{name}/versions/{version}": {
            "get": _get("Model version metadata (OIP v2)", "Open Inference Protocol")
        },
        "/v2/models/{name}/versions/{version}/ready": {
            "get": _get("Model version readiness", "Open Inference Protocol")
        },
        "/v2/models/{name}/infer": {
            "post": _post(
                "Score rows (OIP v2): one tensor per input, or one 2-D tensor",
                "Open Inference Protocol",
                json_body("InferenceRequest"),
                "InferenceResponse",
            )
        },
        "/v2/models/{name}/versions/{version}/infer": {
            "post": _post(
                "Score rows with a given version (OIP v2)",
                "Open Inference Protocol",
                json_body("InferenceRequest"),
                "InferenceResponse",
            )
        },
        "/invocations": {
            "post": _post(
                "Score rows (MLflow scoring protocol, JSON or CSV)",
                "MLflow",
                {
                    "required": True,
                    "content": {
                        "application/json": {"schema": _ref("MlflowRequest")},
                        "text/csv": {"schema": {"type": "string"}},
                    },
                },
                "MlflowResponse",
            )
        },
        "/v1/models/{name}:predict": {
            "post": _post(
                "Score records",
                "Records",
                json_body("RecordsRequest"),
                "RecordsResponse",
            )
        },
        "/v1/feedback": {
            "post": _post(
                "Attach true labels to logged predictions, by request id",
                "Monitoring",
                json_body("FeedbackRequest"),
                "FeedbackResponse",
            )
        },
        "/v2/repository/models/{name}/load": {
            "post": {
                "summary": "Re-resolve the served alias and swap in its version",
                "tags": ["Operations"],
                "responses": {"200": _ok({"type": "object"}), **_errors()},
            }
        },
        "/v2/repository/index": {
            "post": {
                "summary": "The models this server holds",
                "tags": ["Operations"],
                "responses": {"200": _ok({"type": "array", "items": {"type": "object"}})},
            }
        },
        "/ping": {"get": _get("Health (MLflow)", "MLflow")},
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "tags": ["Operations"],
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
    for path, item in paths.items():
        if "{name}" in path:
            for operation in item.values():
                operation["parameters"] = _path_params(path, name)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": f"modelyard · {name} v{model.version}",
            "version": str(model.version),
            "description": f"Inference for model '{name}' version {model.version} "
            f"({model.bundle.task}, runtime {model.runtime}).",
        },
        "paths": paths,
        "components": {"schemas": _schemas(model)},
    }


def _path_params(path: str, name: str) -> list[dict[str, Any]]:
    params = [
        {
            "name": "name",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "example": name},
        }
    ]
    if "{version}" in path:
        params.append(
            {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
        )
    return params


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema)}}}


def _ok(schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}


def _errors() -> dict[str, Any]:
    return {
        status: {
            "description": text,
            "content": {"application/json": {"schema": _ref("Error")}},
        }
        for status, text in ERROR_STATUSES.items()
    }


def _get(summary: str, tag: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "tags": [tag],
        "responses": {"200": _ok({"type": "object"}), "404": _errors()["404"]},
    }


def _post(summary: str, tag: str, body: dict[str, Any], response: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "tags": [tag],
        "requestBody": body,
        "responses": {"200": _ok(_ref(response)), **_errors()},
    }


def _schemas(model: ServedModel) -> dict[str, Any]:
    fields = {f.name: f for f in model.bundle.encoder.fields}
    record: dict[str, Any] = {"type": "object", "properties": {}, "additionalProperties": True}
    required = []
    for name in model.signature.names:
        f = fields.get(name)
        prop: dict[str, Any] = {"type": "number"}
        if f is not None and f.kind == "category":
            # not an enum: a value unseen in training is accepted and scored as missing
            prop = {"type": "string", "x-categories": list(f.categories)}
            if f.categories:
                prop["example"] = f.categories[0]
        if f is None or f.nullable:
            prop["nullable"] = True
        else:
            required.append(name)
        record["properties"][name] = prop
    if required:
        record["required"] = required
    tensor = {
        "type": "object",
        "required": ["name", "datatype", "shape", "data"],
        "properties": {
            "name": {"type": "string", "enum": model.signature.names},
            "datatype": {"type": "string", "enum": sorted(OIP_TYPES)},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
            "data": {"type": "array", "items": {}},
            "parameters": {"type": "object"},
        },
    }
    mlflow_variants = [
        {"type": "object", "required": [key], "properties": {key: {}}} for key in MLFLOW_KEYS
    ]
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["type", "message"],
                    "properties": {
                        "type": {"type": "string"},
                        "message": {"type": "string"},
                        "details": {"nullable": True},
                    },
                }
            },
        },
        "Record": record,
        "Tensor": tensor,
        "InferenceRequest": {
            "type": "object",
            "required": ["inputs"],
            "properties": {
                "id": {"type": "string"},
                "inputs": {"type": "array", "minItems": 1, "items": _ref("Tensor")},
                "parameters": {"type": "object"},
            },
        },
        "InferenceResponse": {
            "type": "object",
            "required": ["model_name", "model_version", "outputs"],
            "properties": {
                "model_name": {"type": "string"},
                "model_version": {"type": "string"},
                "id": {"type": "string"},
                "outputs": {"type": "array", "items": {"type": "object"}},
            },
        },
        "MlflowRequest": {"oneOf": mlflow_variants},
        "MlflowResponse": {
            "type": "object",
            "required": ["predictions"],
            "properties": {"predictions": {"type": "array"}},
        },
        "FeedbackRequest": {
            "type": "object",
            "required": ["feedback"],
            "properties": {
                "feedback": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["request_id", "label"],
                        "properties": {
                            "request_id": {"type": "string"},
                            "row": {"type": "integer", "minimum": 0},
                            "label": {},
                        },
                    },
                }
            },
        },
        "FeedbackResponse": {
            "type": "object",
            "required": ["accepted"],
            "properties": {"accepted": {"type": "integer"}},
        },
        "RecordsRequest": {
            "type": "object",
            "required": ["records"],
            "properties": {"records": {"type": "array", "items": _ref("Record")}},
        },
        "RecordsResponse": {
            "type": "object",
            "required": ["model", "version", "predictions"],
            "properties": {
                "model": {"type": "string"},
                "version": {"type": "integer"},
                "predictions": {"type": "array", "items": {"type": "object"}},
            },
        },
    }


def swagger_html(model: ServedModel) -> str:
    """The interactive docs page (Swagger UI reading ``/openapi.json``)."""
    from fastapi.openapi.docs import get_swagger_ui_html

    page = get_swagger_ui_html(
        openapi_url="/openapi.json", title=f"modelyard · {model.name} v{model.version}"
    )
    return bytes(page.body).decode()
