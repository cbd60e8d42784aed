from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from modelyard.data.demo import make_loans
from modelyard.data.encoding import FeatureEncoder
from modelyard.serve.app import ServedModel, create_app
from modelyard.train import flavors
from modelyard.train.bundle import ModelBundle
from modelyard.train.families import FAMILIES, TrainingData


@pytest.fixture(scope="module")
def served() -> tuple[ServedModel, list[dict[str, Any]]]:
    frame = make_loans(2_000, recent_share=0.0)
    features = ["age", "income", "credit_score", "purpose", "home_ownership"]
    encoder = FeatureEncoder.fit(frame, features)
    X, y = encoder.transform(frame), frame["default"].to_numpy()
    logistic = FAMILIES["logistic"]
    data = TrainingData(X, y, X, y, encoder, "binary")
    model = logistic.fit(data, logistic.defaults("binary", 42))
    bundle = ModelBundle.from_bytes(
        "sklearn", flavors.dump("sklearn", model), encoder, "binary", "default"
    )
    bundle.threshold = 0.2
    rows = frame[features].head(5).astype(object)
    return ServedModel("loans", 3, bundle), rows.where(rows.notna(), None).to_dict("records")


@pytest.fixture
def client(served: tuple[ServedModel, Any]) -> TestClient:
    return TestClient(create_app(served[0]), raise_server_exceptions=False)


def test_records_endpoint_scores_like_the_model(client: TestClient, served: Any) -> None:
    model, records = served
    body = client.post("/predict", json={"records": records}).json()
    expected = model.bundle.predict_proba(model.bundle.encode_records(records))
    got = np.array([p["probability"] for p in body["predictions"]])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert [p["label"] for p in body["predictions"]] == (expected >= 0.2).astype(int).tolist()
    assert body["version"] == 3


def test_open_inference_protocol_v2(client: TestClient, served: Any) -> None:
    model, records = served
    inputs = [
        {
            "name": name,
            "shape": [len(records)],
            "datatype": "BYTES" if isinstance(records[0][name], str) else "FP64",
            "data": [r[name] for r in records],
        }
        for name in model.bundle.encoder.names
    ]
    response = client.post("/v2/models/loans/infer", json={"id": "r1", "inputs": inputs})
    assert response.status_code == 200
    body = response.json()
    assert body["model_version"] == "3" and body["id"] == "r1"
    proba = body["outputs"][0]
    assert proba["name"] == "probability" and proba["shape"] == [5]
    same = client.post("/predict", json=records).json()["predictions"]
    assert proba["data"] == [p["probability"] for p in same]


def test_metadata_and_health(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json()["ready"] is True
    meta = client.get("/v2/models/loans").json()
    assert [i["name"] for i in meta["inputs"]][:2] == ["age", "income"]
    assert client.get("/v2/models/other").status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 422, "not valid JSON"),
        (b'{"records": 3}', 422, "array of records"),
        (b"[]", 422, "no records"),
        (
            b'[{"age": "old", "income": 1, "credit_score": 700, "purpose": "car", '
            b'"home_ownership": "OWN"}]',
            422,
            "field 'age'",
        ),
    ],
)
def test_bad_requests_get_a_clear_4xx(
    client: TestClient, body: bytes, status: int, fragment: str
) -> None:
    response = client.post("/predict", content=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert fragment in error["message"]
    assert error["type"] == "InvalidInputError"


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
