import functools
import os

import numpy as np
import pytest
import skops.io
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from modelyard.errors import ArtifactError
from modelyard.train import flavors


def test_sklearn_round_trip_predicts_identically() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 3)), rng.integers(0, 2, 200)
    model = LogisticRegression().fit(X, y)
    scorer = flavors.load("sklearn", flavors.dump("sklearn", model))
    np.testing.assert_array_equal(scorer.predict_proba(X), model.predict_proba(X)[:, 1])


def test_each_task_scores_by_its_convention() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(150, 3))
    three = LogisticRegression().fit(X, rng.integers(0, 3, 150))
    multiclass = flavors.load("sklearn", flavors.dump("sklearn", three), "multiclass")
    np.testing.assert_array_equal(multiclass.predict(X), three.predict_proba(X))
    ridge = Ridge().fit(X, rng.normal(size=150))
    regression = flavors.load("sklearn", flavors.dump("sklearn", ridge), "regression")
    np.testing.assert_array_equal(regression.predict(X), ridge.predict(X))
    with pytest.raises(ArtifactError, match="Cannot score task 'ranking'"):
        flavors.load("sklearn", b"", "ranking")


def test_histogram_boosting_loads_through_the_allow_list() -> None:
    rng = np.random.default_rng(2)
    X = np.column_stack([rng.normal(size=300), rng.integers(0, 4, 300)])
    model = HistGradientBoostingClassifier(max_iter=5, categorical_features=[1])
    model.fit(X, rng.integers(0, 2, 300))
    data = flavors.dump("sklearn", model)
    assert "functools.partial" in skops.io.get_untrusted_types(data=data)
    scorer = flavors.load("sklearn", data)
    np.testing.assert_array_equal(scorer.predict(X), model.predict_proba(X)[:, 1])


def test_a_model_referencing_foreign_code_is_refused() -> None:
    tampered = skops.io.dumps(
        Pipeline([("f", FunctionTransformer(print)), ("m", LogisticRegression())])
    )
    assert skops.io.get_untrusted_types(data=tampered) == ["builtins.print"]
    with pytest.raises(ArtifactError, match=r"builtins\.print"):
        flavors.load("sklearn", tampered)


def test_a_partial_does_not_smuggle_in_an_untrusted_function() -> None:
    tampered = skops.io.dumps(
        Pipeline(
            [
                ("f", FunctionTransformer(functools.partial(os.system, "true"))),
                ("m", LogisticRegression()),
            ]
        )
    )
    with pytest.raises(ArtifactError, match=r"system"):
        flavors.load("sklearn", tampered)


def test_unknown_flavor_is_a_clear_error() -> None:
    with pytest.raises(ArtifactError, match="known: lightgbm, sklearn"):
        flavors.load("pickle", b"")
    with pytest.raises(ArtifactError, match="known: lightgbm, sklearn"):
        flavors.dump("pickle", object())


def test_scikit_learn_models_score_on_one_thread() -> None:
    from threadpoolctl import threadpool_info

    seen: list[set[int]] = []

    class Probe:
        def predict_proba(self, X: np.ndarray) -> np.ndarray:
            seen.append({lib["num_threads"] for lib in threadpool_info()})
            return np.tile([0.25, 0.75], (len(X), 1))

    scores = flavors.SklearnScorer(Probe()).predict(np.zeros((3, 2)))
    assert scores.tolist() == [0.75, 0.75, 0.75]
    assert seen == [{1}]
