"""Runtimes: the ONNX twin serves only when it matched the native model to 1e-6."""

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from modelyard.data.encoding import FeatureEncoder, FeatureField
from modelyard.errors import ServingError
from modelyard.serve.model import ONNX_SERVE_TOLERANCE, select_runtime
from modelyard.store import ArtifactStore
from modelyard.train.bundle import ModelBundle, OnnxBlob, load_bundle
from modelyard.train.onnx import export_onnx


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[ArtifactStore, str, np.ndarray]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3_000, 6))
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
    booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(X, y), 50)
    encoder = FeatureEncoder([FeatureField(f"x{i}", "number") for i in range(6)])
    export = export_onnx("lightgbm", booster, encoder, "binary", X[:500])
    assert export is not None
    text = booster.model_to_string().encode()
    bundle = ModelBundle.from_bytes("lightgbm", text, encoder, "binary", "y")
    store = ArtifactStore(Path(tmp_path_factory.mktemp("blobs")))
    blob = bundle.save(store, text, OnnxBlob(export.data, export.max_abs_diff))
    return store, blob.digest, X[500:900]


def test_auto_serves_the_onnx_twin_that_matches(
    saved: tuple[ArtifactStore, str, np.ndarray],
) -> None:
    store, digest, X = saved
    bundle = load_bundle(store, digest)
    assert bundle.manifest is not None
    assert bundle.manifest["onnx"]["max_abs_diff"] <= ONNX_SERVE_TOLERANCE
    name, score = select_runtime(bundle, store, "auto")
    assert name == "onnx"
    np.testing.assert_allclose(score(X), bundle.predict(X), rtol=0, atol=1e-6)
    assert select_runtime(bundle, store, "native")[0] == "native"


def test_a_twin_outside_the_tolerance_serves_only_when_asked(
    saved: tuple[ArtifactStore, str, np.ndarray],
) -> None:
    store, digest, _ = saved
    bundle = load_bundle(store, digest)
    assert bundle.manifest is not None
    bundle.manifest["onnx"]["max_abs_diff"] = 5e-5
    assert select_runtime(bundle, store, "auto")[0] == "native"
    assert select_runtime(bundle, store, "onnx")[0] == "onnx"


def test_no_twin_and_unknown_runtime_are_clear_errors(
    saved: tuple[ArtifactStore, str, np.ndarray],
) -> None:
    store, digest, _ = saved
    bundle = load_bundle(store, digest)
    assert bundle.manifest is not None
    del bundle.manifest["onnx"]
    assert select_runtime(bundle, store, "auto")[0] == "native"
    with pytest.raises(ServingError, match="no ONNX twin"):
        select_runtime(bundle, store, "onnx")
    with pytest.raises(ServingError, match="Unknown runtime"):
        select_runtime(bundle, store, "gpu")
