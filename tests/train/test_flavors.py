import numpy as np
import pytest
import skops.io
from sklearn.linear_model import LogisticRegression
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


def test_a_model_referencing_foreign_code_is_refused() -> None:
    tampered = skops.io.dumps(
        Pipeline([("f", FunctionTransformer(print)), ("m", LogisticRegression())])
    )
    assert skops.io.get_untrusted_types(data=tampered) == ["builtins.print"]
    with pytest.raises(ArtifactError, match=r"builtins\.print"):
        flavors.load("sklearn", tampered)


def test_unknown_flavor_is_a_clear_error() -> None:
    with pytest.raises(ArtifactError, match="known: lightgbm, sklearn"):
        flavors.load("pickle", b"")
