"""The inference app in-process: every protocol scores like the model, bad input gets a 4xx."""

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from modelyard.data.demo import make_loans
from modelyard.data.encoding import FeatureEncoder, FeatureField
from modelyard.serve.app import ServeOptions, create_app
from modelyard.serve.model import ServedModel
from modelyard.train import flavors
from modelyard.train.bundle import ModelBundle
from modelyard.train.families import FAMILIES, TrainingData

FEATURES = ["age", "income", "credit_score", "purpose", "home_ownership"]


def _bundle(task: str, frame: Any, features: list[str], target: Any) -> ModelBundle:
    encoder = FeatureEncoder.fit(frame, features)
    X = encoder.transform(frame)
    family = FAMILIES["logistic" if task != "regression" else "linear"]
    data = TrainingData(X, target, X, target, encoder, task)
    model = family.fit(data, family.defaults(task, 42))
    return ModelBundle.from_bytes("sklearn", flavors.dump("sklearn", model), encoder, task, "y")


@pytest.fixture(scope="module")
def served() -> tuple[ServedModel, list[dict[str, Any]]]:
    frame = make_loans(2_000, recent_share=0.0)
    bundle = _bundle("binary", frame, FEATURES, frame["default"].to_numpy())
    bundle.threshold = 0.2
    rows = frame[FEATURES].head(5).astype(object)
    return ServedModel("loans", 3, bundle), rows.where(rows.notna(), None).to_dict("records")


@pytest.fixture
def client(served: tuple[ServedModel, Any]) -> TestClient:
    return TestClient(create_app(served[0]), raise_server_exceptions=False)


def _expected(model: ServedModel, records: list[dict[str, Any]]) -> np.ndarray:
    return model.bundle.predict_proba(model.bundle.encode_records(records))


def _columns(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "shape": [len(records), 1],
            "datatype": "BYTES" if isinstance(records[0][name], str) else "FP64",
            "data": [[r[name]] for r in records],
        }
        for name in FEATURES
    ]


def test_records_endpoint_scores_like_the_model(client: TestClient, served: Any) -> None:
    model, records = served
    response = client.post("/v1/models/loans:predict", json={"records": records})
    body = response.json()
    expected = _expected(model, records)
    got = np.array([p["probability"] for p in body["predictions"]])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert [p["label"] for p in body["predictions"]] == (expected >= 0.2).astype(int).tolist()
    assert body["version"] == 3


def test_open_inference_protocol_v2_columns(client: TestClient, served: Any) -> None:
    model, records = served
    response = client.post("/v2/models/loans/infer", json={"id": "r1", "inputs": _columns(records)})
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == "3" and body["id"] == "r1"
    proba, label = body["outputs"]
    assert proba["name"] == "probability" and proba["shape"] == [5]
    np.testing.assert_allclose(proba["data"], _expected(model, records), rtol=0, atol=1e-12)
    assert label["data"] == (np.array(proba["data"]) >= 0.2).astype(int).tolist()
    versioned = client.post("/v2/models/loans/versions/3/infer", json={"inputs": _columns(records)})
    assert versioned.json()["outputs"][0]["data"] == proba["data"]
    assert "id" not in versioned.json()


@pytest.mark.parametrize(
    "layout", ["dataframe_split", "dataframe_records", "instances", "inputs", "csv"]
)
def test_mlflow_invocations_every_layout(client: TestClient, served: Any, layout: str) -> None:
    model, records = served
    if layout == "dataframe_split":
        payload: Any = {"columns": FEATURES, "data": [[r[f] for f in FEATURES] for r in records]}
    elif layout == "inputs":
        payload = {f: [r[f] for r in records] for f in FEATURES}
    else:
        payload = records
    if layout == "csv":
        lines = [",".join(FEATURES)] + [
            ",".join("" if r[f] is None else str(r[f]) for f in FEATURES) for r in records
        ]
        response = client.post(
            "/invocations", content="\n".join(lines), headers={"content-type": "text/csv"}
        )
    else:
        response = client.post("/invocations", json={layout: payload})
    assert response.status_code == 200, response.text
    got = response.json()["predictions"]
    np.testing.assert_allclose(got, _expected(model, records), rtol=0, atol=1e-9)


def test_one_two_dimensional_tensor_for_an_all_numeric_model() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    encoder = FeatureEncoder([FeatureField(n, "number") for n in ("a", "b", "c")])
    frame = {"a": X[:, 0], "b": X[:, 1], "c": X[:, 2]}
    import pandas as pd

    bundle = _bundle("binary", pd.DataFrame(frame), ["a", "b", "c"], (X[:, 0] > 0).astype(int))
    bundle.encoder = encoder
    client = TestClient(create_app(ServedModel("m", 1, bundle)), raise_server_exceptions=False)
    tensor = {"name": "input-0", "shape": [2, 3], "datatype": "FP32", "data": X[:2].tolist()}
    body = client.post("/v2/models/m/infer", json={"inputs": [tensor]}).json()
    np.testing.assert_allclose(body["outputs"][0]["data"], bundle.predict(X[:2]), atol=1e-12)
    flat = dict(tensor, data=X[:2].ravel().tolist())
    assert client.post("/v2/models/m/infer", json={"inputs": [flat]}).json() == body
    wrong = dict(tensor, shape=[2, 2], data=X[:2, :2].tolist())
    response = client.post("/v2/models/m/infer", json={"inputs": [wrong]})
    assert response.status_code == 422 and "[rows, 3]" in response.json()["error"]["message"]


def test_multiclass_and_regression_outputs() -> None:
    frame = make_loans(1_500, recent_share=0.0)
    purpose = frame["purpose"].astype(str)
    classes = sorted(purpose.unique())
    codes = purpose.map({c: i for i, c in enumerate(classes)}).to_numpy()
    features = ["age", "income", "credit_score"]
    multi = _bundle("multiclass", frame, features, codes)
    multi.classes = tuple(classes)
    client = TestClient(create_app(ServedModel("p", 1, multi)))
    records = frame[features].head(3).to_dict("records")
    body = client.post("/v2/models/p/infer", json={"inputs": _numeric_columns(records)}).json()
    proba, label = body["outputs"]
    expected = multi.predict(multi.encode_records(records))
    assert proba["shape"] == [3, len(classes)]
    np.testing.assert_allclose(np.reshape(proba["data"], (3, -1)), expected, atol=1e-12)
    assert label["data"] == [classes[i] for i in expected.argmax(1)]
    v1 = client.post("/v1/models/p:predict", json={"records": records}).json()["predictions"]
    assert v1[0]["label"] == label["data"][0] and set(v1[0]["probabilities"]) == set(classes)

    regression = _bundle("regression", frame, features, frame["interest_rate"].to_numpy())
    client = TestClient(create_app(ServedModel("r", 1, regression)))
    body = client.post("/v2/models/r/infer", json={"inputs": _numeric_columns(records)}).json()
    assert [o["name"] for o in body["outputs"]] == ["prediction"]
    np.testing.assert_allclose(
        body["outputs"][0]["data"], regression.predict(regression.encode_records(records))
    )


def _numeric_columns(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"name": n, "shape": [len(records)], "datatype": "FP64", "data": [r[n] for r in records]}
        for n in records[0]
    ]


def test_metadata_health_and_docs(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json()["ready"] is True
    assert client.get("/ping").status_code == 200
    meta = client.get("/v2/models/loans").json()
    assert [i["name"] for i in meta["inputs"]] == FEATURES
    purpose = next(i for i in meta["inputs"] if i["name"] == "purpose")
    assert purpose["datatype"] == "BYTES" and "car" in purpose["parameters"]["categories"]
    assert meta["parameters"]["threshold"] == 0.2 and meta["versions"] == ["3"]
    assert client.get("/v2/models/loans/ready").json() == {"name": "loans", "ready": True}
    assert client.get("/v2/models/other").status_code == 404
    document = client.get("/openapi.json").json()
    assert "/v2/models/{name}/infer" in document["paths"]
    record = document["components"]["schemas"]["Record"]["properties"]
    assert record["age"]["type"] == "number" and "car" in record["purpose"]["x-categories"]
    assert "swagger" in client.get("/docs").text.lower()


def test_extra_fields_are_ignored_and_counted(client: TestClient, served: Any) -> None:
    model, records = served
    noisy = [dict(r, note="x", source="web") for r in records]
    response = client.post("/v1/models/loans:predict", json={"records": noisy})
    got = [p["probability"] for p in response.json()["predictions"]]
    np.testing.assert_allclose(got, _expected(model, records), atol=1e-12)
    assert 'modelyard_extra_fields_total{pid="' in client.get("/metrics").text
    assert _metric(client, "modelyard_extra_fields_total") == 2


def _metric(client: TestClient, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


BAD = "SECRET-7731"


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/v1/models/loans:predict", b"{not json", 422, "not valid JSON"),
        ("/v1/models/loans:predict", b'{"records": 3}', 422, '"records"'),
        ("/v1/models/loans:predict", b'{"records": []}', 422, "no rows"),
        ("/v1/models/loans:predict", b"[1, 2]", 422, "JSON object"),
        (
            "/v1/models/loans:predict",
            b'{"records": [{"age": "SECRET-7731", "income": 1, "credit_score": 700}]}',
            422,
            "field 'age'",
        ),
        ("/v1/models/loans:predict", b'{"records": [{"age": 1e999}]}', 422, "infinity"),
        ("/v1/models/loans:predict", b'{"records": [[1, 2]]}', 422, "object of fields"),
        ("/v1/models/nope:predict", b'{"records": [{}]}', 404, "No model 'nope'"),
        ("/v2/models/nope/infer", b'{"inputs": []}', 404, "No model 'nope'"),
        ("/v2/models/loans/versions/9/infer", b'{"inputs": []}', 404, "version 9"),
        ("/v2/models/loans/infer", b'{"inputs": []}', 422, "non-empty 'inputs'"),
        ("/invocations", b'{"rows": []}', 422, "exactly one of"),
        ("/invocations", b'{"instances": [[1, 2]]}', 422, "array of 5 values"),
    ],
)
def test_bad_requests_get_a_clear_4xx(
    client: TestClient, path: str, body: bytes, status: int, fragment: str
) -> None:
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert fragment in error["message"]
    assert set(error) == {"type", "message", "details"}
    assert BAD not in response.text


def test_field_errors_are_itemised_for_oip(client: TestClient) -> None:
    response = client.post(
        "/v2/models/loans/infer",
        json={"inputs": [{"name": "age", "shape": [1], "datatype": "FP64", "data": [30]}]},
    )
    assert response.status_code == 422
    missing = {d["field"] for d in response.json()["error"]["details"]}
    assert missing == {"income", "credit_score", "purpose", "home_ownership"}
    bad_type = client.post(
        "/v2/models/loans/infer",
        json={"inputs": [{"name": "age", "shape": [1], "datatype": "FLOAT", "data": [30]}]},
    )
    assert "datatype must be one of" in bad_type.json()["error"]["message"]


def test_wrong_method_large_body_and_unknown_path(served: Any) -> None:
    small = TestClient(create_app(served[0], ServeOptions(max_body_bytes=1024)))
    assert small.get("/invocations").status_code == 405
    assert small.get("/nowhere").status_code == 404
    response = small.post("/invocations", content=b"x" * 4096)
    assert response.status_code == 413 and "MiB" in response.json()["error"]["message"]


def test_prediction_hooks_see_every_answer_and_every_answer_gets_an_id(served: Any) -> None:
    model, records = served
    seen: list[Any] = []
    client = TestClient(create_app(model, hooks=[seen.append]))
    client.post("/v2/models/loans/infer", json={"id": "abc", "inputs": _columns(records)})
    v1 = client.post("/v1/models/loans:predict", json={"records": records[:2]})
    mlflow = client.post(
        "/invocations", json={"dataframe_records": records[:1]}, headers={"x-request-id": "r-9"}
    )
    made = v1.json()["request_id"]
    assert len(made) > 16 and v1.headers["x-request-id"] == made
    assert mlflow.headers["x-request-id"] == "r-9"
    assert [e.request_id for e in seen] == ["abc", made, "r-9"]
    assert [e.rows.n for e in seen] == [5, 2, 1] and seen[0].model.version == 3
    np.testing.assert_allclose(seen[0].prediction.scores, _expected(model, records))


def test_without_hooks_no_id_is_made(client: TestClient, served: Any) -> None:
    response = client.post("/v1/models/loans:predict", json={"records": served[1][:1]})
    assert "request_id" not in response.json() and "x-request-id" not in response.headers
