"""``modelyard models import``: a model trained elsewhere, registered from the command line."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from skl2onnx import to_onnx
from sklearn.linear_model import Ridge
from typer.testing import CliRunner, Result

from modelyard.cli import app
from modelyard.data.demo import DEMO_SPEC
from modelyard.errors import ArtifactError, InvalidInputError
from modelyard.project import Project
from modelyard.registry.versions import list_models, resolve
from modelyard.train.bundle import load_bundle

runner = CliRunner()


@pytest.fixture
def spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("MODELYARD_DB_URL", "MODELYARD_ARTIFACTS", "MODELYARD_TOKEN", "MODELYARD_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # no real credentials
    path = tmp_path / "modelyard.yaml"
    path.write_text(DEMO_SPEC)
    return path


def _data(n: int = 800) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": rng.uniform(20_000, 90_000, n),
            "region": rng.choice(["east", "north", "south"], n),
        }
    )
    signal = (frame["age"] - 40) / 10 + (frame["region"] == "north") + rng.normal(size=n)
    return frame.assign(default=(signal > 0.5).astype(int))


def _run(spec: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(
        app, ["--spec", str(spec), *args], env={"MODELYARD_USER": "ana", **(env or {})}
    )


def test_import_prints_the_version_signature_and_onnx_twin(spec: Path, tmp_path: Path) -> None:
    frame = _data()
    features = frame[["age", "income", "region"]].astype({"region": "category"})
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_threads": 1},
        lgb.Dataset(features, frame["default"]),
        30,
    )
    booster.save_model(tmp_path / "model.txt")
    frame.to_csv(tmp_path / "sample.csv", index=False)
    done = _run(
        spec,
        "models", "import", "ext", str(tmp_path / "model.txt"), "--flavor", "lightgbm",
        "--signature", str(tmp_path / "sample.csv"), "--alias", "challenger",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "Imported model.txt as ext@1 (aliases: challenger): lightgbm, binary" in done.output
    assert "from sample.csv: 3 features (2 number, 1 category)" in done.output
    assert "ONNX twin: kept: max abs diff" in done.output
    project = Project.open(spec)
    try:
        version = resolve(project, "ext@challenger")
        bundle = load_bundle(project.artifacts, version.digest)
        np.testing.assert_allclose(
            bundle.score_frame(frame), booster.predict(features), rtol=0, atol=1e-12
        )
        assert bundle.manifest is not None
        assert f"{bundle.manifest['onnx']['max_abs_diff']:.2g}" in done.output
    finally:
        project.close()


def test_an_onnx_model_is_its_own_twin(spec: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(100, 2))
    model = Ridge().fit(X, X @ [1.0, 2.0])
    (tmp_path / "reg.onnx").write_bytes(
        to_onnx(model, X[:1].astype(np.float32)).SerializeToString()
    )
    done = _run(spec, "models", "import", "reg", str(tmp_path / "reg.onnx"), "--flavor", "onnx")
    assert done.exit_code == 0, done.output
    assert "as reg@1: onnx, regression" in done.output
    assert "the model: 2 features (2 number, 0 category)" in done.output
    assert "ONNX twin: none: the model is an ONNX graph already" in done.output


def test_refusals_register_nothing(spec: Path, tmp_path: Path) -> None:
    (tmp_path / "broken.txt").write_text("not a model")
    unknown = _run(spec, "models", "import", "ext", str(tmp_path / "broken.txt"), "--flavor", "pkl")
    assert isinstance(unknown.exception, InvalidInputError)
    assert "Unknown model flavor 'pkl'" in unknown.exception.message
    broken = _run(
        spec, "models", "import", "ext", str(tmp_path / "broken.txt"), "--flavor", "lightgbm"
    )
    assert isinstance(broken.exception, ArtifactError)
    remote = _run(
        spec, "models", "import", "ext", str(tmp_path / "broken.txt"), "--flavor", "lightgbm",
        env={"MODELYARD_URL": "http://models.example:8000"},
    )  # fmt: skip
    assert isinstance(remote.exception, InvalidInputError)
    assert "not through the server at http://models.example:8000" in remote.exception.message
    project = Project.open(spec)
    try:
        assert list_models(project) == []
    finally:
        project.close()
