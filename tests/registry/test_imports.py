"""Importing models trained elsewhere: each flavor end to end, the signature from the
model or from data, the ONNX twin, and every refusal leaving nothing registered."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import skops.io
import xgboost as xgb
from skl2onnx import to_onnx
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.tree import DecisionTreeRegressor

from modelyard.data.datasets import add_dataset
from modelyard.errors import ArtifactError, DataError, InvalidInputError, NotFoundError
from modelyard.project import Project
from modelyard.registry.audit import events
from modelyard.registry.imports import SAMPLE_ROWS, import_model
from modelyard.registry.model_facts import model_facts
from modelyard.registry.versions import list_models
from modelyard.train import flavors
from modelyard.train.bundle import ModelBundle, load_bundle
from modelyard.train.onnx import OnnxScorer, parity_rows

NUMBERS = ["age", "income", "debt"]
FEATURES = [*NUMBERS, "region"]
REGIONS = ["south", "east", "north"]  # deliberately not sorted: the model's order must win


def _loans(n: int = 1_500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "loan_id": np.arange(n),  # the demo spec's id column: never a feature
            "age": rng.normal(40, 10, n),
            "income": rng.uniform(20_000, 90_000, n),
            "debt": rng.exponential(1.0, n),
            "region": rng.choice(REGIONS, n),
        }
    )
    frame.loc[::13, "age"] = np.nan
    signal = (
        (frame["age"].fillna(40) - 40) / 10
        + (frame["income"] - 55_000) / 20_000
        + (frame["region"] == "north")
        + rng.normal(size=n)
    )
    frame["default"] = (signal > 0.5).astype(int)
    frame["grade"] = np.array(["high", "low", "mid"])[np.digitize(signal, [0.0, 1.0])]
    return frame


def _with_categories(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[FEATURES].assign(region=pd.Categorical(frame["region"], categories=REGIONS))


def _lightgbm(frame: pd.DataFrame, path: Path, **params: Any) -> lgb.Booster:
    params = {"objective": "binary", "verbose": -1, "num_leaves": 15, "num_threads": 1, **params}
    booster = lgb.train(params, lgb.Dataset(_with_categories(frame), frame["default"]), 40)
    booster.save_model(path)
    return booster


def _nothing_registered(project: Project) -> bool:
    return list_models(project) == []


# ---------------------------------------------------------------------- LightGBM


def test_lightgbm_alone_gives_its_signature_and_an_onnx_twin(
    project: Project, tmp_path: Path
) -> None:
    frame = _loans()
    booster = _lightgbm(frame, tmp_path / "model.txt")
    imported = import_model(
        project,
        "ext",
        tmp_path / "model.txt",
        flavor="lightgbm",
        created_by="ana",
        aliases=("challenger",),
    )
    version = imported.version
    assert (version.ref, version.flavor, version.run_id, version.aliases) == (
        "ext@1",
        "lightgbm",
        None,
        ("challenger",),
    )
    assert version.metrics["model_bytes"] == (tmp_path / "model.txt").stat().st_size
    assert imported.task == "binary" and imported.signature_source == "the model"
    assert [f.to_dict() for f in imported.encoder.fields] == [
        {"name": "age", "kind": "number", "nullable": True},
        {"name": "income", "kind": "number", "nullable": True},
        {"name": "debt", "kind": "number", "nullable": True},
        {"name": "region", "kind": "category", "nullable": True, "categories": REGIONS},
    ]
    bundle = load_bundle(project.artifacts, version.digest)
    expected = booster.predict(_with_categories(frame))
    np.testing.assert_allclose(bundle.score_frame(frame), expected, rtol=0, atol=1e-12)
    assert bundle.manifest is not None
    assert bundle.manifest["imported_from"] == {
        "path": "model.txt",
        "sha256": hashlib.sha256((tmp_path / "model.txt").read_bytes()).hexdigest(),
        "flavor": "lightgbm",
        "signature": "the model",
    }
    twin = bundle.manifest["onnx"]
    assert twin["max_abs_diff"] == imported.onnx_max_abs_diff
    assert 0 < twin["max_abs_diff"] <= 1e-6
    onnx_scores = OnnxScorer(project.artifacts.get_bytes(twin["digest"])).predict(
        bundle.encode_frame(frame)
    )
    np.testing.assert_allclose(onnx_scores, expected, rtol=0, atol=1e-5)
    (event,) = [e for e in events(project, object_id="ext") if e.action == "model.register"]
    assert event.actor == "ana"


def test_signature_data_sets_nullability_and_the_twin_is_checked_on_its_rows(
    project: Project, tmp_path: Path
) -> None:
    frame = _loans()
    booster = _lightgbm(frame, tmp_path / "model.txt")
    frame.to_csv(tmp_path / "sample.csv", index=False)
    imported = import_model(
        project, "ext", tmp_path / "model.txt", flavor="lightgbm", signature=tmp_path / "sample.csv"
    )
    assert imported.signature_source == "sample.csv"
    assert [f.nullable for f in imported.encoder.fields] == [True, False, False, False]
    assert imported.encoder.fields[3].categories == tuple(REGIONS)  # the model's, not sorted
    assert imported.rows_checked == len(frame) <= SAMPLE_ROWS
    bundle = load_bundle(project.artifacts, imported.version.digest)
    assert bundle.manifest is not None
    # The stored figure is the difference over the data's own rows and their NaN probes.
    rows = parity_rows(bundle.encode_frame(frame))
    twin = OnnxScorer(project.artifacts.get_bytes(bundle.manifest["onnx"]["digest"]))
    measured = float(np.max(np.abs(twin.predict(rows) - booster.predict(rows))))
    assert bundle.manifest["onnx"]["max_abs_diff"] == pytest.approx(measured, rel=1e-12)


def test_an_unnamed_model_takes_the_datas_feature_columns_in_order(
    project: Project, tmp_path: Path
) -> None:
    frame = _loans()
    booster = lgb.train(
        {"objective": "regression", "verbose": -1, "num_threads": 1},
        lgb.Dataset(frame[NUMBERS].to_numpy(), frame["income"] / 1_000),
        20,
    )
    booster.save_model(tmp_path / "bare.txt")
    data = frame[["loan_id", *NUMBERS, "default"]]  # id and target are left out by role
    data.to_parquet(tmp_path / "sample.parquet")
    imported = import_model(
        project,
        "bare",
        tmp_path / "bare.txt",
        flavor="lightgbm",
        signature=tmp_path / "sample.parquet",
    )
    assert imported.encoder.names == NUMBERS
    assert imported.task == "regression"
    bundle = load_bundle(project.artifacts, imported.version.digest)
    expected = booster.predict(frame[NUMBERS].to_numpy())
    np.testing.assert_allclose(bundle.score_frame(data), expected, rtol=0, atol=1e-12)
    alone = import_model(project, "bare", tmp_path / "bare.txt", flavor="lightgbm")
    assert alone.encoder.names == ["f0", "f1", "f2"]
    data.assign(extra=1.0).to_csv(tmp_path / "wide.csv", index=False)
    with pytest.raises(DataError, match=r"takes 3 features, but .* has 4 feature columns"):
        import_model(
            project,
            "bare",
            tmp_path / "bare.txt",
            flavor="lightgbm",
            signature=tmp_path / "wide.csv",
        )


def test_multiclass_lightgbm_and_its_twin_imported_as_onnx(
    project: Project, tmp_path: Path
) -> None:
    frame = _loans()
    labels = frame["grade"].map({"high": 0, "low": 1, "mid": 2})
    booster = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1, "num_threads": 1},
        lgb.Dataset(frame[NUMBERS], labels),
        20,
    )
    booster.save_model(tmp_path / "model.txt")
    imported = import_model(project, "grades", tmp_path / "model.txt", flavor="lightgbm")
    bundle = load_bundle(project.artifacts, imported.version.digest)
    assert imported.task == "multiclass" and bundle.classes == ("0", "1", "2")
    expected = booster.predict(frame[NUMBERS])
    np.testing.assert_allclose(bundle.score_frame(frame), expected, rtol=0, atol=1e-12)
    assert bundle.manifest is not None
    twin = project.artifacts.get_bytes(bundle.manifest["onnx"]["digest"])
    (tmp_path / "twin.onnx").write_bytes(twin)
    graph = import_model(project, "graph", tmp_path / "twin.onnx", flavor="onnx")
    assert graph.task == "multiclass" and graph.encoder.names == ["f0", "f1", "f2"]
    scored = load_bundle(project.artifacts, graph.version.digest).predict(frame[NUMBERS].to_numpy())
    np.testing.assert_allclose(scored, expected, rtol=0, atol=1e-6)


def test_lightgbm_facts_hold_the_training_ranges(tmp_path: Path) -> None:
    frame = _loans()
    _lightgbm(frame, tmp_path / "model.txt")
    data = (tmp_path / "model.txt").read_bytes()
    facts = model_facts("lightgbm", flavors.load_model("lightgbm", data), data)
    for i, column in enumerate(NUMBERS):
        low, high = facts.ranges[i]
        assert low == pytest.approx(frame[column].min(), rel=1e-12)
        assert high == pytest.approx(frame[column].max(), rel=1e-12)
    assert facts.categorical == {3: tuple(REGIONS)}
    assert facts.kinds_known and facts.names == tuple(FEATURES)


# ---------------------------------------------------------------------- XGBoost


@pytest.mark.parametrize(
    ("objective", "task", "classes"),
    [
        ("binary:logistic", "binary", None),
        ("multi:softprob", "multiclass", ("0", "1", "2")),
        ("reg:squarederror", "regression", None),
    ],
)
def test_xgboost_json_models_import_with_their_task(
    project: Project, tmp_path: Path, objective: str, task: str, classes: Any
) -> None:
    frame = _loans()
    labels = {
        "binary": frame["default"],
        "multiclass": frame["grade"].map({"high": 0, "low": 1, "mid": 2}),
        "regression": frame["income"] / 1_000,
    }[task]
    params = {"objective": objective, "max_depth": 3, "nthread": 1}
    if task == "multiclass":
        params["num_class"] = 3
    booster = xgb.train(params, xgb.DMatrix(frame[NUMBERS], labels), 20)
    booster.save_model(tmp_path / "model.json")
    imported = import_model(project, "xgb", tmp_path / "model.json", flavor="xgboost")
    assert imported.task == task and imported.encoder.names == NUMBERS
    bundle = load_bundle(project.artifacts, imported.version.digest)
    assert bundle.classes == classes
    expected = booster.predict(xgb.DMatrix(frame[NUMBERS]))
    np.testing.assert_allclose(bundle.score_frame(frame), expected, rtol=0, atol=1e-12)
    assert bundle.manifest is not None and bundle.manifest["onnx"]["max_abs_diff"] <= 1e-4
    assert imported.version.metrics["onnx_bytes"] == bundle.manifest["onnx"]["size"]


def test_xgboost_categories_stored_in_the_model_become_the_vocabulary(
    project: Project, tmp_path: Path
) -> None:
    frame = _loans()
    X = _with_categories(frame)
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
        xgb.DMatrix(X, frame["default"], enable_categorical=True),
        20,
    )
    booster.save_model(tmp_path / "model.json")
    imported = import_model(project, "xgb", tmp_path / "model.json", flavor="xgboost")
    assert imported.encoder.fields[3].categories == tuple(REGIONS)
    bundle = load_bundle(project.artifacts, imported.version.digest)
    expected = booster.predict(xgb.DMatrix(X, enable_categorical=True))
    np.testing.assert_allclose(bundle.score_frame(frame), expected, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------- scikit-learn


def test_sklearn_multiclass_with_a_registered_data_set_signature(
    project: Project, tmp_path: Path
) -> None:
    frame = _loans()
    model = Pipeline(
        [("impute", SimpleImputer()), ("scale", StandardScaler()), ("model", LogisticRegression())]
    )
    model.fit(frame[NUMBERS], frame["grade"])
    skops.io.dump(model, tmp_path / "model.skops")
    add_dataset(project, "applications", frame)
    imported = import_model(
        project, "grades", tmp_path / "model.skops", flavor="sklearn", signature="applications@1"
    )
    assert imported.signature_source == "applications@1"
    assert imported.task == "multiclass" and imported.encoder.names == NUMBERS
    bundle = load_bundle(project.artifacts, imported.version.digest)
    assert bundle.classes == ("high", "low", "mid")
    expected = model.predict_proba(frame[NUMBERS])
    np.testing.assert_allclose(bundle.score_frame(frame), expected, rtol=0, atol=1e-12)
    assert bundle.manifest is not None
    assert bundle.manifest["imported_from"]["signature"] == "applications@1"


def test_sklearn_regressors_alone_and_missing_values(project: Project, tmp_path: Path) -> None:
    frame = _loans()
    X, y = frame[NUMBERS].to_numpy(), frame["income"].to_numpy() / 1_000
    tree = DecisionTreeRegressor(max_depth=5).fit(X, y)  # routes missing values itself
    linear = LinearRegression().fit(np.nan_to_num(X), y)
    for name, model in (("tree", tree), ("linear", linear)):
        skops.io.dump(model, tmp_path / f"{name}.skops")
    tolerant = import_model(project, "tree", tmp_path / "tree.skops", flavor="sklearn")
    strict = import_model(project, "linear", tmp_path / "linear.skops", flavor="sklearn")
    assert tolerant.encoder.names == ["f0", "f1", "f2"] and tolerant.task == "regression"
    # LinearRegression cannot score a missing value: serving must refuse nulls for it.
    assert [f.nullable for f in tolerant.encoder.fields] == [True, True, True]
    assert [f.nullable for f in strict.encoder.fields] == [False, False, False]
    bundle = load_bundle(project.artifacts, tolerant.version.digest)
    np.testing.assert_allclose(bundle.predict(X), tree.predict(X), rtol=0, atol=1e-12)


# ---------------------------------------------------------------------- ONNX


def test_onnx_graphs_import_as_classifier_or_regressor(project: Project, tmp_path: Path) -> None:
    frame = _loans()
    X = frame[NUMBERS].fillna(40).to_numpy()
    scaled = (X - X.mean(axis=0)) / X.std(axis=0)
    classifier = LogisticRegression().fit(scaled, frame["default"])
    regressor = Ridge().fit(scaled, frame["income"] / 1_000)
    options = {id(classifier): {"zipmap": False}}
    graph = to_onnx(classifier, scaled[:1].astype(np.float32), options=options)
    (tmp_path / "clf.onnx").write_bytes(graph.SerializeToString())
    (tmp_path / "reg.onnx").write_bytes(
        to_onnx(regressor, scaled[:1].astype(np.float32)).SerializeToString()
    )
    clf = import_model(project, "clf", tmp_path / "clf.onnx", flavor="onnx")
    reg = import_model(project, "reg", tmp_path / "reg.onnx", flavor="onnx")
    assert (clf.task, reg.task) == ("binary", "regression")
    assert clf.encoder.names == ["f0", "f1", "f2"]
    assert clf.onnx_max_abs_diff is None and "ONNX graph already" in clf.onnx_note
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    (own,) = session.run(["probabilities"], {"X": scaled.astype(np.float32)})
    bundle = load_bundle(project.artifacts, clf.version.digest)
    np.testing.assert_allclose(bundle.predict(scaled), own[:, 1], rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        bundle.predict(scaled), classifier.predict_proba(scaled)[:, 1], rtol=0, atol=1e-5
    )
    regression = load_bundle(project.artifacts, reg.version.digest).predict(scaled)
    np.testing.assert_allclose(regression, regressor.predict(scaled), rtol=0, atol=1e-3)
    assert bundle.manifest is not None and "onnx" not in bundle.manifest


def test_an_unnamed_onnx_graph_takes_names_from_data(project: Project, tmp_path: Path) -> None:
    frame = _loans()
    X = frame[NUMBERS].fillna(40).to_numpy()
    regressor = Ridge().fit(X, frame["income"] / 1_000)
    (tmp_path / "reg.onnx").write_bytes(to_onnx(regressor, X[:1]).SerializeToString())
    frame.assign(age=frame["age"].fillna(40))[["loan_id", *NUMBERS]].to_csv(
        tmp_path / "sample.csv", index=False
    )
    imported = import_model(
        project, "reg", tmp_path / "reg.onnx", flavor="onnx", signature=tmp_path / "sample.csv"
    )
    assert imported.encoder.names == NUMBERS
    bundle = load_bundle(project.artifacts, imported.version.digest)
    np.testing.assert_allclose(bundle.predict(X), regressor.predict(X), rtol=0, atol=1e-9)


# ---------------------------------------------------------------------- refusals


def _untrusted_skops(path: Path) -> None:
    model = Pipeline([("f", FunctionTransformer(print)), ("m", LogisticRegression())])
    skops.io.dump(model, path)  # loading would reference builtins.print


def _zipmap_onnx(path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2)).astype(np.float32)
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    path.write_bytes(to_onnx(model, X[:1]).SerializeToString())


def _xgboost_with(objective: str, path: Path, **params: Any) -> None:
    frame = _loans(300)
    labels = frame["grade"].map({"high": 0, "low": 1, "mid": 2}) if "multi" in objective else None
    target = labels if labels is not None else frame["default"]
    booster = xgb.train(
        {"objective": objective, "nthread": 1, **params}, xgb.DMatrix(frame[NUMBERS], target), 5
    )
    booster.save_model(path)


@pytest.mark.parametrize(
    ("make", "flavor", "kwargs", "error", "message"),
    [
        (None, "pickle", {}, InvalidInputError, "Unknown model flavor 'pickle'"),
        (None, "lightgbm", {}, NotFoundError, "No model file at"),
        ("corrupt", "lightgbm", {}, ArtifactError, "not a LightGBM text model"),
        ("corrupt", "xgboost", {}, ArtifactError, "not an XGBoost model"),
        ("corrupt", "onnx", {}, ArtifactError, "ONNX Runtime cannot load"),
        ("untrusted", "sklearn", {}, ArtifactError, r"builtins\.print"),
        ("zipmap", "onnx", {}, ArtifactError, "ZipMap"),
        ("softmax", "xgboost", {}, InvalidInputError, "save it with objective multi:softprob"),
        ("logitraw", "xgboost", {"task": "binary"}, ArtifactError, "not probabilities"),
        ("lightgbm", "lightgbm", {"task": "regression"}, InvalidInputError, "is a binary model"),
        ("lightgbm", "lightgbm", {"task": "ranking"}, InvalidInputError, "Task 'ranking'"),
        ("lightgbm", "lightgbm", {"threshold": 1.5}, InvalidInputError, "threshold"),
        ("lightgbm", "lightgbm", {"aliases": ("Champ ion",)}, InvalidInputError, "Alias"),
    ],
)
def test_refusals_are_clear_and_register_nothing(
    project: Project,
    tmp_path: Path,
    make: str | None,
    flavor: str,
    kwargs: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    path = tmp_path / ("model.json" if flavor == "xgboost" else "model.bin")
    if make == "corrupt":
        path.write_bytes(b"\x00\x01 this is not a model \xff")
    elif make == "untrusted":
        _untrusted_skops(path)
    elif make == "zipmap":
        _zipmap_onnx(path)
    elif make == "softmax":
        _xgboost_with("multi:softmax", path, num_class=3)
    elif make == "logitraw":
        _xgboost_with("binary:logitraw", path)
    elif make == "lightgbm":
        _lightgbm(_loans(300), path)
    with pytest.raises(error, match=message):
        import_model(project, "ext", path, flavor=flavor, **kwargs)
    assert _nothing_registered(project)


def test_signature_data_that_does_not_fit_the_model_is_refused(
    project: Project, tmp_path: Path
) -> None:
    frame = _loans(400)
    _lightgbm(frame, tmp_path / "model.txt")
    cases = {
        "lacks.csv": (frame.drop(columns=["debt", "region"]), r"lacks 2 .*\['debt', 'region'\]"),
        "text.csv": (frame.assign(income="high"), "holds text .* takes feature 'income' as a num"),
        "spelling.csv": (frame.assign(region="NORTH"), "None of the values of column 'region'"),
        "empty.csv": (frame.iloc[:0], "no rows"),
    }
    for file, (data, message) in cases.items():
        data.to_csv(tmp_path / file, index=False)
        with pytest.raises(DataError, match=message):
            import_model(
                project, "ext", tmp_path / "model.txt", flavor="lightgbm", signature=tmp_path / file
            )
    with pytest.raises(NotFoundError, match="No signature data file"):
        import_model(
            project, "ext", tmp_path / "model.txt", flavor="lightgbm", signature="absent.csv"
        )
    with pytest.raises(NotFoundError, match="No dataset version 'absent@1'"):
        import_model(
            project, "ext", tmp_path / "model.txt", flavor="lightgbm", signature="absent@1"
        )
    assert _nothing_registered(project)


def test_a_model_that_cannot_score_the_signature_data_is_refused(
    project: Project, tmp_path: Path
) -> None:
    frame = _loans(400)  # 'age' has missing values
    model = LogisticRegression().fit(frame[NUMBERS].fillna(40), frame["default"])
    skops.io.dump(model, tmp_path / "model.skops")
    frame.to_csv(tmp_path / "sample.csv", index=False)
    with pytest.raises(ArtifactError, match=r"cannot score 400 rows of sample\.csv .*NaN"):
        import_model(
            project,
            "ext",
            tmp_path / "model.skops",
            flavor="sklearn",
            signature=tmp_path / "sample.csv",
        )
    # The same model as an ONNX graph does not fail on a missing value: it answers NaN.
    options = {id(model): {"zipmap": False}}
    graph = to_onnx(model, frame[NUMBERS].to_numpy()[:1].astype(np.float32), options=options)
    (tmp_path / "model.onnx").write_bytes(graph.SerializeToString())
    frame[["loan_id", *NUMBERS, "default"]].to_csv(tmp_path / "numbers.csv", index=False)
    with pytest.raises(ArtifactError, match=r"include \d+ non-finite values \(first at row 0\)"):
        import_model(
            project,
            "ext",
            tmp_path / "model.onnx",
            flavor="onnx",
            signature=tmp_path / "numbers.csv",
        )
    assert _nothing_registered(project)


def test_only_imported_bundles_record_provenance(project: Project, tmp_path: Path) -> None:
    frame = _loans(300)
    booster = _lightgbm(frame, tmp_path / "model.txt")
    imported = import_model(project, "ext", tmp_path / "model.txt", flavor="lightgbm")
    encoder = imported.encoder
    trained = ModelBundle.from_bytes(
        "lightgbm", flavors.dump("lightgbm", booster), encoder, "binary", "default"
    )
    trained.save(project.artifacts, flavors.dump("lightgbm", booster))
    assert trained.manifest is not None and "imported_from" not in trained.manifest
