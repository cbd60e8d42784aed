"""Real clients, unchanged, against a real ``modelyard serve`` process.

Triton's own Python client (``tritonclient.http``) speaks the Open Inference
Protocol v2 to ``/v2``: it reads the model's metadata, then sends one named
tensor per input (numbers as FP64, categories as BYTES) — or, for an
all-numeric model, one 2-D tensor. MLflow-format requests go to
``/invocations`` over plain httpx in each of MLflow's four JSON layouts and as
CSV, built with pandas the way MLflow's own client builds them. Every answer
must equal what the registered model scores in this process, to 1e-6 (the
server may run the ONNX twin, which registration checked to that tolerance).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton

from modelyard.data.demo import NUMERIC_FEATURES

if TYPE_CHECKING:
    from conftest import DemoModel, NumericModel, ServerProcess, StartServer

ROWS = 40
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def servers(
    numeric_model: NumericModel, start_server: StartServer
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """``loans@champion`` and ``numeric@champion``, started side by side."""
    pair = (
        start_server("loans@champion").start(),
        start_server("numeric@champion", spec=numeric_model.spec_path).start(),
    )
    try:
        yield pair
    finally:
        for server in pair:
            server.close()


@pytest.fixture(scope="module")
def loans_server(servers: tuple[ServerProcess, ServerProcess]) -> ServerProcess:
    return servers[0].ready()


@pytest.fixture(scope="module")
def numeric_server(servers: tuple[ServerProcess, ServerProcess]) -> ServerProcess:
    return servers[1].ready()


@pytest.fixture
def triton_client(loans_server: ServerProcess) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(url=f"127.0.0.1:{loans_server.port}")
    yield client
    client.close()


def _named_tensors(
    metadata: dict[str, Any], records: list[dict[str, Any]], shape: str, binary: bool = False
) -> list[triton.InferInput]:
    """One tensor per input, typed as the server's metadata says (what a Triton user writes)."""
    inputs = []
    for spec in metadata["inputs"]:
        values = [r[spec["name"]] for r in records]
        dtype = np.object_ if spec["datatype"] == "BYTES" else np.float64
        array = np.array(values, dtype=dtype)
        if shape == "column":
            array = array.reshape(-1, 1)
        tensor = triton.InferInput(spec["name"], list(array.shape), spec["datatype"])
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return inputs


def test_tritonclient_sees_a_live_ready_server_and_the_models_signature(
    triton_client: triton.InferenceServerClient, demo_model: DemoModel
) -> None:
    assert triton_client.is_server_live() and triton_client.is_server_ready()
    assert triton_client.is_model_ready("loans")
    assert triton_client.get_server_metadata()["name"] == "modelyard"
    metadata = triton_client.get_model_metadata("loans")
    assert [i["name"] for i in metadata["inputs"]] == demo_model.inputs
    kinds = demo_model.rows[demo_model.inputs].dtypes
    assert {i["name"]: i["datatype"] for i in metadata["inputs"]} == {
        name: "FP64" if pd.api.types.is_numeric_dtype(kinds[name]) else "BYTES"
        for name in demo_model.inputs
    }
    assert [o["name"] for o in metadata["outputs"]] == ["probability", "label"]


@pytest.mark.parametrize("shape", ["flat", "column"])
@pytest.mark.parametrize("outputs", ["default", "json"])
@pytest.mark.parametrize("binary", [True, False], ids=["binary-inputs", "json-inputs"])
def test_tritonclient_named_tensors_score_like_the_model_in_process(
    triton_client: triton.InferenceServerClient,
    demo_model: DemoModel,
    shape: str,
    outputs: str,
    binary: bool,
) -> None:
    # tritonclient cannot put a missing value in JSON (NaN is not JSON): complete rows
    records = demo_model.records(ROWS, complete=True)
    metadata = triton_client.get_model_metadata("loans")
    inputs = _named_tensors(metadata, records, shape, binary)
    requested = None
    if outputs == "json":
        requested = [triton.InferRequestedOutput(n, binary_data=False) for n in ("probability",)]
    result = triton_client.infer("loans", inputs, outputs=requested, request_id="batch-7")

    expected = demo_model.expected(1, records)
    probability = result.as_numpy("probability")
    assert probability is not None and probability.shape == (ROWS,)
    np.testing.assert_allclose(probability, expected, rtol=0, atol=TOLERANCE)
    response = result.get_response()
    assert response["model_name"] == "loans" and response["model_version"] == "1"
    assert response["id"] == "batch-7"
    label = result.as_numpy("label")
    assert label is not None
    threshold = triton_client.get_model_metadata("loans")["parameters"]["threshold"]
    assert label.tolist() == (probability >= threshold).astype(int).tolist()


def test_tritonclient_can_ask_for_the_served_version(
    triton_client: triton.InferenceServerClient, demo_model: DemoModel
) -> None:
    records = demo_model.records(5, complete=True)
    inputs = _named_tensors(triton_client.get_model_metadata("loans"), records, "flat")
    result = triton_client.infer("loans", inputs, model_version="1")
    probability = result.as_numpy("probability")
    np.testing.assert_allclose(probability, demo_model.expected(1, records), atol=TOLERANCE)
    with pytest.raises(triton.InferenceServerException) as raised:
        triton_client.infer("loans", inputs, model_version="9")
    assert raised.value.status() == "404"
    assert "serves version 1" in str(raised.value.message())


# ------------------------------------------------------------ an all-numeric model


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_tritonclient_single_2d_tensor_scores_an_all_numeric_model(
    numeric_server: ServerProcess,
    numeric_model: NumericModel,
    demo_model: DemoModel,
    datatype: str,
) -> None:
    bundle = numeric_model.bundle
    names = bundle.input_names
    assert names == list(NUMERIC_FEATURES)
    frame = demo_model.rows[names].dropna().head(ROWS)
    X = frame.to_numpy(dtype=np.float32 if datatype == "FP32" else np.float64)
    tensor = triton.InferInput("input", list(X.shape), datatype)
    tensor.set_data_from_numpy(X)  # tritonclient's default: the binary tensor extension
    client = triton.InferenceServerClient(url=f"127.0.0.1:{numeric_server.port}")
    try:
        result = client.infer("numeric", [tensor])
    finally:
        client.close()

    # the oracle scores the values the client actually sent, through the records path
    sent = [dict(zip(names, row, strict=True)) for row in X.astype(np.float64).tolist()]
    expected = bundle.predict_proba(bundle.encode_records(sent))
    np.testing.assert_allclose(result.as_numpy("probability"), expected, rtol=0, atol=TOLERANCE)


# ------------------------------------------------------------ MLflow's scoring protocol


def _mlflow_body(layout: str, demo_model: DemoModel) -> tuple[bytes, str]:
    """An /invocations body in ``layout``, with missing values, as MLflow's client makes it."""
    frame = demo_model.rows[demo_model.inputs].head(ROWS)
    if layout == "csv":
        return frame.to_csv(index=False).encode(), "text/csv"
    if layout == "dataframe_split":
        payload: Any = json.loads(frame.to_json(orient="split"))
    elif layout in ("dataframe_records", "instances"):
        payload = json.loads(frame.to_json(orient="records"))
    else:  # "inputs": one list per column
        records = demo_model.records(ROWS)
        payload = {c: [r[c] for r in records] for c in demo_model.inputs}
    return json.dumps({layout: payload}).encode(), "application/json"


@pytest.mark.parametrize(
    "layout", ["dataframe_split", "dataframe_records", "instances", "inputs", "csv"]
)
def test_mlflow_requests_score_like_the_model_in_process(
    loans_server: ServerProcess, demo_model: DemoModel, layout: str
) -> None:
    records = demo_model.records(ROWS)
    assert any(v is None for r in records for v in r.values()), "the rows must include a gap"
    body, content_type = _mlflow_body(layout, demo_model)
    response = httpx.post(
        f"{loans_server.url}/invocations",
        content=body,
        headers={"content-type": content_type},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    np.testing.assert_allclose(predictions, demo_model.expected(1, records), rtol=0, atol=TOLERANCE)


def test_mlflow_request_with_every_raw_column_ignores_the_ones_the_model_lacks(
    loans_server: ServerProcess, demo_model: DemoModel
) -> None:
    frame = demo_model.rows.head(ROWS)  # ids, timestamps, PII, the target, ...
    before = loans_server.metric("modelyard_extra_fields_total")
    response = httpx.post(
        f"{loans_server.url}/invocations",
        content=json.dumps(
            {"dataframe_split": json.loads(frame.to_json(orient="split", date_format="iso"))}
        ),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    expected = demo_model.expected(1, demo_model.records(ROWS))
    np.testing.assert_allclose(response.json()["predictions"], expected, atol=TOLERANCE)
    extra = set(frame.columns) - set(demo_model.inputs)
    assert loans_server.metric("modelyard_extra_fields_total") - before == len(extra)
