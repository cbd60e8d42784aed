"""Bad requests get clear 4xx answers, never a 5xx, and never an echo of what was sent.

schemathesis reads the server's own ``/openapi.json`` and fuzzes every
operation in-process, with requests the document allows (positive) and
requests it forbids (negative). The explicit tests below go through each kind
of bad input — malformed JSON, wrong types, missing inputs, NaN and infinities,
10 MB bodies, unknown models — on every protocol that can carry it, and check
the status, the error body ``{"error": {"type", "message", "details"}}`` and
that a distinctive value sent in the request never comes back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.testclient import TestClient

from modelyard.serve.app import create_app
from modelyard.serve.model import load_served

if TYPE_CHECKING:
    from httpx import Response
    from starlette.types import ASGIApp

    from conftest import DemoModel, NumericModel

SECRET = "SECRET-1234"
EXAMPLES = 25
#: Not ``positive_data_acceptance``: the document gives each request's shape, but not the
#: rules across fields (every input present, a tensor's shape matching its data), so a
#: request the document allows may still rightly be a 422.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def _client(spec: Path, ref: str) -> TestClient:
    """A client of the app ``modelyard serve`` runs, in this process (it can reload, too)."""
    app = create_app(load_served(spec, ref), reload=lambda: load_served(spec, ref))
    return TestClient(cast("ASGIApp", app), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def client(demo_model: DemoModel) -> TestClient:
    return _client(demo_model.spec_path, "loans@champion")


# ------------------------------------------------------------ schemathesis


def _fuzz(operation: Any, mode: GenerationMode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.call_and_validate(checks=CHECKS)

    run()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("model", ["loans", "numeric"])
def test_schemathesis_finds_no_server_error_and_answers_match_the_document(
    request: pytest.FixtureRequest, model: str, mode: GenerationMode
) -> None:
    # the demo model validates through its cleaning recipe; the numeric one column by column
    client: TestClient = request.getfixturevalue("client" if model == "loans" else "numeric_client")
    api = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    results = list(api.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    documented = client.get("/openapi.json").json()["paths"]
    assert len(operations) == sum(len(item) for item in documented.values()) > 10
    failures = []
    for operation in operations:
        try:
            _fuzz(operation, mode)
        except Unsatisfiable:
            # nothing in the operation can be made invalid (no body, a free-text name)
            assert mode == GenerationMode.NEGATIVE, operation.label
        except Exception as exc:  # every failing operation is reported, not just the first
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)


# ------------------------------------------------------------ the error contract


def _client_error(response: Response, status: int, error_type: str) -> dict[str, Any]:
    """Check the status and the error body's shape; return the error."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message", "details"}
    error: dict[str, Any] = body["error"]
    assert error["type"] == error_type, error
    assert isinstance(error["message"], str) and len(error["message"]) > 20
    details = error["details"]
    assert details is None or all(set(d) == {"row", "field", "error"} for d in details)
    assert SECRET not in response.text and "Traceback" not in response.text
    return error


def _fields(error: dict[str, Any]) -> set[str]:
    return {d["field"] for d in error["details"] or []}


#: Each JSON protocol: its path, and the body it makes of records (fields may be absent).
Body = Callable[["DemoModel", list[dict[str, Any]]], dict[str, Any]]
PROTOCOLS: dict[str, tuple[str, Body]] = {
    "v2": ("/v2/models/loans/infer", lambda m, rs: {"inputs": m.tensors(rs)}),
    "v1": ("/v1/models/loans:predict", lambda m, rs: {"records": rs}),
    "mlflow-records": ("/invocations", lambda m, rs: {"dataframe_records": rs}),
    "mlflow-split": (
        "/invocations",
        lambda m, rs: {
            "dataframe_split": {
                "columns": [n for n in m.inputs if n in rs[0]],
                "data": [[r[n] for n in m.inputs if n in r] for r in rs],
            }
        },
    ),
}


def _post(
    client: TestClient, demo_model: DemoModel, protocol: str, records: list[dict[str, Any]]
) -> Response:
    path, body = PROTOCOLS[protocol]
    response: Response = client.post(path, json=body(demo_model, records))
    return response


def _csv(demo_model: DemoModel, field: str, cell: str) -> bytes:
    record = demo_model.records(1, complete=True)[0]
    cells = [cell if n == field else str(record[n]) for n in demo_model.inputs]
    return (",".join(demo_model.inputs) + "\n" + ",".join(cells) + "\n").encode()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_good_request_scores_on_every_protocol(
    client: TestClient, demo_model: DemoModel, protocol: str
) -> None:
    """The baseline the bad requests below differ from by one thing."""
    response = _post(client, demo_model, protocol, demo_model.records(3, complete=True))
    assert response.status_code == 200, response.text


MALFORMED: dict[str, Callable[[bytes], bytes]] = {
    "truncated": lambda body: body[: len(body) // 2],
    "trailing comma": lambda body: body[:-1] + b",}",
    "single quotes": lambda body: body.replace(b'"', b"'"),
    "form encoded": lambda body: b"records=" + body,
    "empty": lambda body: b"",
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("damage", MALFORMED)
def test_malformed_json_is_a_422(
    client: TestClient, demo_model: DemoModel, protocol: str, damage: str
) -> None:
    path, body = PROTOCOLS[protocol]
    good = json.dumps(body(demo_model, demo_model.records(2, complete=True))).encode()
    response = client.post(path, content=MALFORMED[damage](good))
    error = _client_error(response, 422, "InvalidInputError")
    assert "not valid JSON" in error["message"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("income", SECRET, id="number-string"),
        pytest.param("income", {"amount": SECRET}, id="number-object"),
        pytest.param("age", True, id="number-boolean"),
        pytest.param("purpose", [SECRET], id="category-array"),
        pytest.param("home_ownership", {"kind": SECRET}, id="category-object"),
        pytest.param("region", False, id="category-boolean"),
    ],
)
def test_a_wrong_type_is_a_field_level_422_that_never_echoes_the_value(
    client: TestClient, demo_model: DemoModel, protocol: str, field: str, value: Any
) -> None:
    records = demo_model.records(3, complete=True)
    records[1][field] = value
    error = _client_error(_post(client, demo_model, protocol, records), 422, "InvalidInputError")
    assert error["details"] == [{"row": 1, "field": field, "error": error["details"][0]["error"]}]
    assert field in error["message"]


@pytest.mark.parametrize(
    "tensor",
    [
        {"datatype": SECRET},
        {"shape": SECRET},
        {"shape": [2, 2]},
        {"data": SECRET},
        {"name": {"n": SECRET}},
    ],
)
def test_a_malformed_oip_tensor_is_a_422(
    client: TestClient, demo_model: DemoModel, tensor: dict[str, Any]
) -> None:
    inputs = demo_model.tensors(demo_model.records(2, complete=True))
    inputs[1] |= tensor
    response = client.post("/v2/models/loans/infer", json={"inputs": inputs, "id": "r-1"})
    _client_error(response, 422, "InvalidInputError")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_missing_input_is_a_422_naming_it(
    client: TestClient, demo_model: DemoModel, protocol: str
) -> None:
    records = [
        {k: v for k, v in r.items() if k != "age"} for r in demo_model.records(2, complete=True)
    ]
    error = _client_error(_post(client, demo_model, protocol, records), 422, "InvalidInputError")
    assert "age" in _fields(error) and "age" in error["message"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_infinity_in_json_are_a_422(
    client: TestClient, demo_model: DemoModel, protocol: str, token: str
) -> None:
    path, body = PROTOCOLS[protocol]
    records = demo_model.records(2, complete=True)
    records[0]["income"] = 12345.678
    text = json.dumps(body(demo_model, records)).replace("12345.678", token)
    error = _client_error(client.post(path, content=text.encode()), 422, "InvalidInputError")
    assert "JSON" in error["message"]


@pytest.mark.parametrize("field", ["age", "credit_score", "income", "loan_amount"])
@pytest.mark.parametrize("cell", ["inf", "-inf", "Infinity", "1e999"])
def test_an_infinite_csv_number_is_a_422(
    client: TestClient, demo_model: DemoModel, field: str, cell: str
) -> None:
    response = client.post(
        "/invocations", content=_csv(demo_model, field, cell), headers={"content-type": "text/csv"}
    )
    error = _client_error(response, 422, "InvalidInputError")
    assert _fields(error) == {field}


def test_text_in_a_csv_number_column_is_a_422_that_never_echoes_it(
    client: TestClient, demo_model: DemoModel
) -> None:
    response = client.post(
        "/invocations",
        content=_csv(demo_model, "income", SECRET),
        headers={"content-type": "text/csv"},
    )
    error = _client_error(response, 422, "InvalidInputError")
    assert error["details"] == [
        {"row": 0, "field": "income", "error": error["details"][0]["error"]}
    ]


def test_a_csv_nan_is_missing_so_a_required_input_is_a_422(
    client: TestClient, demo_model: DemoModel
) -> None:
    headers = {"content-type": "text/csv"}
    optional = client.post(
        "/invocations", content=_csv(demo_model, "income", "nan"), headers=headers
    )
    assert optional.status_code == 200, optional.text  # income may be missing
    response = client.post("/invocations", content=_csv(demo_model, "age", "nan"), headers=headers)
    error = _client_error(response, 422, "InvalidInputError")
    assert _fields(error) == {"age"}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_10_mb_body_is_a_413(
    client: TestClient, demo_model: DemoModel, protocol: str, framing: str
) -> None:
    path, body = PROTOCOLS[protocol]
    record = demo_model.records(1, complete=True)
    size = {n: len(json.dumps(body(demo_model, record * n))) for n in (1000, 2000)}
    rows = 11 * 1024 * 1024 * 1000 // (size[2000] - size[1000])
    raw = json.dumps(body(demo_model, record * rows)).encode()
    assert len(raw) > 10 * 1024 * 1024
    content: Any = raw
    if framing == "chunked":
        step = 1 << 20
        content = (raw[i : i + step] for i in range(0, len(raw), step))
    error = _client_error(client.post(path, content=content), 413, "PayloadTooLarge")
    assert "MiB" in error["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v2/models/other/infer"),
        ("POST", "/v2/models/other/versions/1/infer"),
        ("POST", "/v2/models/loans/versions/99/infer"),
        ("POST", "/v1/models/other:predict"),
        ("GET", "/v2/models/other"),
        ("GET", "/v2/models/other/ready"),
        ("GET", "/v2/models/loans/versions/99"),
        ("POST", "/v2/repository/models/other/load"),
    ],
)
def test_an_unknown_model_or_version_is_a_404_naming_what_is_served(
    client: TestClient, demo_model: DemoModel, method: str, path: str
) -> None:
    body = {"inputs": demo_model.tensors(demo_model.records(1, complete=True))}
    response = client.request(method, path, json=body if method == "POST" else None)
    error = _client_error(response, 404, "NotFoundError")
    assert "'loans'" in error["message"]


# ------------------------------------------------------------ the all-numeric model


@pytest.fixture(scope="module")
def numeric_client(numeric_model: NumericModel) -> TestClient:
    return _client(numeric_model.spec_path, "numeric@champion")


def _numeric_request(shape: str, records: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    names = list(records[0])
    if shape == "records":
        return "/v1/models/numeric:predict", {"records": records}
    if shape == "tensors":
        return "/v2/models/numeric/infer", {
            "inputs": [
                {
                    "name": n,
                    "datatype": "FP64",
                    "shape": [len(records)],
                    "data": [r[n] for r in records],
                }
                for n in names
            ]
        }
    matrix = [[r[n] for n in names] for r in records]
    tensor = {"name": "input", "datatype": "FP64", "shape": [len(records), len(names)]}
    return "/v2/models/numeric/infer", {"inputs": [tensor | {"data": matrix}]}


@pytest.mark.parametrize("shape", ["records", "tensors", "matrix"])
@pytest.mark.parametrize(
    "value",
    [SECRET, {"v": SECRET}, [1.5], True, None],
    ids=["string", "object", "array", "boolean", "null"],
)
def test_the_numeric_model_rejects_a_value_that_is_not_a_number(
    numeric_client: TestClient,
    numeric_model: NumericModel,
    demo_model: DemoModel,
    shape: str,
    value: Any,
) -> None:
    names = numeric_model.bundle.input_names
    records = [{n: r[n] for n in names} for r in demo_model.records(3, complete=True)]
    good_path, good_body = _numeric_request(shape, records)
    assert numeric_client.post(good_path, json=good_body).status_code == 200
    records[1]["age"] = value  # age may not be missing either
    path, body = _numeric_request(shape, records)
    error = _client_error(numeric_client.post(path, json=body), 422, "InvalidInputError")
    if shape != "matrix":  # a matrix is checked as a whole
        assert error["details"][0]["row"] == 1 and _fields(error) == {"age"}
