"""The flavors models are imported in: XGBoost JSON and ONNX graphs, and refusals of
bytes that are not what their flavor says."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import onnx
import pytest
import xgboost as xgb
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from skl2onnx.common.data_types import DoubleTensorType
from sklearn.linear_model import LogisticRegression, Ridge

from modelyard.data.encoding import FeatureEncoder, FeatureField
from modelyard.errors import ArtifactError
from modelyard.train import flavors
from modelyard.train.onnx import OnnxScorer, export_onnx, graph_input, parity_rows


def _xy(n: int = 400, k: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, k))
    X[::9, 1] = np.nan  # XGBoost learns a default direction for missing values
    return X, rng.normal(size=n) + np.nan_to_num(X[:, 1]) + X[:, 0]


def _xgboost(objective: str, y: np.ndarray, X: np.ndarray, **params: Any) -> xgb.Booster:
    params = {"objective": objective, "max_depth": 3, "nthread": 1, **params}
    return xgb.train(params, xgb.DMatrix(X, y), num_boost_round=15)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_xgboost_round_trip_scores_as_xgboost_does(task: str) -> None:
    X, signal = _xy()
    booster = {
        "binary": lambda: _xgboost("binary:logistic", (signal > 0).astype(int), X),
        "multiclass": lambda: _xgboost(
            "multi:softprob", np.digitize(signal, [-1.0, 1.0]), X, num_class=3
        ),
        "regression": lambda: _xgboost("reg:squarederror", signal, X),
    }[task]()
    scorer = flavors.load("xgboost", flavors.dump("xgboost", booster), task)
    expected = booster.predict(xgb.DMatrix(X))
    assert scorer.predict(X).shape == ((len(X), 3) if task == "multiclass" else (len(X),))
    np.testing.assert_allclose(scorer.predict(X), expected, rtol=0, atol=1e-12)
    assert np.array_equal(scorer.predict_proba(X[:1]), scorer.predict(X)[:1])


def test_xgboost_loads_from_its_json_file(tmp_path: Any) -> None:
    X, signal = _xy()
    booster = _xgboost("binary:logistic", (signal > 0).astype(int), X)
    booster.save_model(tmp_path / "model.json")
    data = (tmp_path / "model.json").read_bytes()
    assert data.startswith(b"{")
    loaded = flavors.load_model("xgboost", data)
    assert isinstance(loaded, xgb.Booster)
    np.testing.assert_array_equal(
        flavors.load("xgboost", data).predict(X), booster.predict(xgb.DMatrix(X))
    )


def test_xgboost_exports_to_onnx_with_parity() -> None:
    X, signal = _xy()
    booster = _xgboost("binary:logistic", (signal > 0).astype(int), X)
    encoder = FeatureEncoder([FeatureField(f"f{i}", "number") for i in range(X.shape[1])])
    export = export_onnx("xgboost", booster, encoder, "binary", X)
    assert export is not None
    rows = parity_rows(X)
    got = OnnxScorer(export.data, "binary").predict(rows)
    expected = booster.predict(xgb.DMatrix(rows))
    assert export.max_abs_diff == pytest.approx(np.max(np.abs(got - expected)), abs=1e-12)
    assert export.max_abs_diff <= 1e-6


def test_xgboost_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xgboost", None)  # as if not installed
    with pytest.raises(ArtifactError, match=r"pip install 'modelyard\[xgboost\]'"):
        flavors.load("xgboost", b"{}", "binary")


@pytest.mark.parametrize(
    ("flavor", "data", "message"),
    [
        ("lightgbm", b"tree\nversion=v4\nnot a model", "not a LightGBM text model"),
        ("lightgbm", b"\xff\xfe\x00binary", "not a LightGBM text model"),
        ("xgboost", b"{not json", "not an XGBoost model"),
        ("sklearn", b"PK\x03\x04 truncated zip", "not a skops file"),
        ("onnx", b"not a graph", "ONNX Runtime cannot load"),
    ],
)
def test_bytes_that_are_not_the_flavor_are_refused(flavor: str, data: bytes, message: str) -> None:
    with pytest.raises(ArtifactError, match=message):
        flavors.load(flavor, data, "binary")


def _onnx_bytes(model: Any, X: np.ndarray, **options: Any) -> bytes:
    return bytes(to_onnx(model, X[:1], options=options or None).SerializeToString())


def test_an_onnx_graph_is_its_own_flavor_whatever_its_names_and_precision() -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 3))
    ridge = Ridge().fit(X, X @ [1.0, -2.0, 0.5] + rng.normal(size=200))
    graph = onnx.load_from_string(
        to_onnx(
            ridge, initial_types=[("features", DoubleTensorType([None, 3]))]
        ).SerializeToString()
    )
    data = flavors.dump("onnx", graph)
    scorer = flavors.load("onnx", data, "regression")
    assert graph_input(flavors.load_model("onnx", data)) == ("features", np.float64)
    np.testing.assert_allclose(scorer.predict(X), ridge.predict(X), rtol=0, atol=1e-9)


def test_onnx_classifiers_score_their_probability_tensor() -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 3)).astype(np.float32)
    three = LogisticRegression().fit(X, rng.integers(0, 3, 300))
    two = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    multiclass = OnnxScorer(_onnx_bytes(three, X, zipmap=False), "multiclass")
    binary = OnnxScorer(_onnx_bytes(two, X, zipmap=False), "binary")
    np.testing.assert_allclose(multiclass.predict(X), three.predict_proba(X), atol=1e-5)
    np.testing.assert_allclose(binary.predict(X), two.predict_proba(X)[:, 1], atol=1e-5)
    with pytest.raises(ArtifactError, match="score it as a multiclass model"):
        OnnxScorer(_onnx_bytes(three, X, zipmap=False), "binary").predict(X)


def test_a_zipmap_classifier_is_refused_with_how_to_export_it() -> None:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(100, 2)).astype(np.float32)
    model = LogisticRegression().fit(X, rng.integers(0, 2, 100))
    with pytest.raises(ArtifactError, match=r"ZipMap.*'zipmap': False"):
        OnnxScorer(_onnx_bytes(model, X), "binary")


def test_a_graph_with_two_inputs_is_refused() -> None:
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 1])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [None, 1])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "add", [a, b], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])
    with pytest.raises(ArtifactError, match=r"takes .*'a tensor\(float\)"):
        OnnxScorer(model.SerializeToString(), "regression")


def test_load_model_gives_each_flavors_own_object() -> None:
    rng = np.random.default_rng(6)
    X = rng.normal(size=(60, 2))
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    loaded = flavors.load_model("sklearn", flavors.dump("sklearn", model))
    assert isinstance(loaded, LogisticRegression)
    np.testing.assert_array_equal(loaded.coef_, model.coef_)
    with pytest.raises(ArtifactError, match="known: lightgbm, sklearn, xgboost, onnx"):
        flavors.load_model("pickle", b"")
    with pytest.raises(ArtifactError, match=r"scored from its bytes: flavors\.load\('onnx'"):
        flavors.scorer("onnx", b"", "binary")
