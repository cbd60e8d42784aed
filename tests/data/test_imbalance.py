"""Class weights and random over- / under-sampling."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.class_weight import compute_class_weight

from modelyard.data.imbalance import ImbalancePolicy, class_weights, resample, sample_weights
from modelyard.errors import DataError, InvalidInputError


def _data(seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    y = pd.Series(rng.choice(["ok", "fraud", "review"], 500, p=[0.8, 0.05, 0.15]), name="label")
    X = pd.DataFrame({"amount": rng.normal(size=500), "row": np.arange(500)}, index=y.index + 1000)
    y.index = X.index
    return X, y


@pytest.mark.parametrize("labels", [[0, 0, 0, 1, 2, 2], ["b", "a", "a", "a", "c", "c", "c", "c"]])
def test_balanced_weights_equal_scikit_learn(labels: list[object]) -> None:
    classes = np.unique(labels)
    expected = compute_class_weight("balanced", classes=classes, y=np.asarray(labels))
    weights = class_weights(labels)
    assert list(weights) == classes.tolist()
    assert np.allclose(list(weights.values()), expected, rtol=0, atol=1e-12)
    rows = sample_weights(labels)
    assert rows.tolist() == [weights[v] for v in labels]


def test_unknown_weight_scheme_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="balanced"):
        class_weights([0, 1], scheme="sqrt")


def test_oversampling_balances_by_copying_rows_of_the_smaller_classes() -> None:
    X, y = _data()
    before_x, before_y = X.copy(), y.copy()
    new_x, new_y, report = resample(X, y, ImbalancePolicy("oversample", seed=1))
    counts = new_y.value_counts()
    assert counts.nunique() == 1 and counts.iloc[0] == y.value_counts().max()
    assert set(X.index) <= set(new_x.index)  # every original row is kept
    assert (y.loc[new_x.index].to_numpy() == new_y.to_numpy()).all()  # copies keep their label
    assert (new_x["row"].to_numpy() == new_x.index.to_numpy() - 1000).all()
    assert new_x.index.is_monotonic_increasing  # original order, copies next to originals
    pd.testing.assert_frame_equal(X, before_x)  # inputs untouched
    pd.testing.assert_series_equal(y, before_y)
    assert report["before"]["counts"] == y.value_counts().to_dict()
    assert report["after"]["counts"] == counts.to_dict()
    assert report["after"]["rows"] == len(new_y)


def test_undersampling_keeps_a_subset_without_repeats() -> None:
    X, y = _data()
    new_x, new_y, report = resample(X, y, ImbalancePolicy("undersample", seed=3))
    smallest = y.value_counts().min()
    assert (new_y.value_counts() == smallest).all()
    assert new_x.index.is_unique and set(new_x.index) <= set(X.index)
    assert (y[y == "fraud"].index.isin(new_x.index)).all()  # the smallest class is kept whole
    assert report["after"]["shares"] == pytest.approx({c: 1 / 3 for c in ("ok", "fraud", "review")})


def test_target_ratio_sets_the_smallest_to_largest_ratio() -> None:
    X, y = _data()
    largest, smallest = y.value_counts().max(), y.value_counts().min()
    _, over, _ = resample(X, y, ImbalancePolicy("oversample", target_ratio=0.5))
    assert over.value_counts().min() == math.ceil(0.5 * largest)
    assert over.value_counts().max() == largest
    _, under, _ = resample(X, y, ImbalancePolicy("undersample", target_ratio=0.25))
    assert under.value_counts().max() == math.floor(smallest / 0.25)
    assert under.value_counts().min() == smallest


def test_the_seed_makes_resampling_reproducible() -> None:
    X, y = _data()
    first = resample(X, y, ImbalancePolicy("oversample", seed=5))[0]
    again = resample(X, y, ImbalancePolicy("oversample", seed=5))[0]
    other = resample(X, y, ImbalancePolicy("oversample", seed=6))[0]
    pd.testing.assert_frame_equal(first, again)
    assert not first.index.equals(other.index)


def test_numpy_inputs_work_the_same_way() -> None:
    X = np.arange(20, dtype=float).reshape(10, 2)
    y = np.array([0] * 8 + [1] * 2)
    new_x, new_y, _ = resample(X, y, ImbalancePolicy("oversample"))
    assert isinstance(new_x, np.ndarray) and new_x.shape == (16, 2)
    assert np.bincount(new_y).tolist() == [8, 8]
    assert (new_x[:, 0] // 2 < 8).sum() == 8  # rows of class 0 appear once each


def test_none_and_class_weight_leave_rows_alone_and_say_so() -> None:
    X, y = _data()
    same_x, same_y, report = resample(X, y, ImbalancePolicy())
    assert same_x is X and same_y is y and report["before"] == report["after"]
    _, _, weighted = resample(X, y, ImbalancePolicy("class_weight"))
    assert weighted["class_weights"] == {str(k): v for k, v in class_weights(y).items()}
    assert weighted["policy"] == {"method": "class_weight", "target_ratio": None, "seed": 0}
    json.dumps(weighted, allow_nan=False)


def test_report_is_plain_data_with_shares_summing_to_one() -> None:
    X, y = _data()
    _, _, report = resample(X, y, ImbalancePolicy("undersample", target_ratio=0.5, seed=2))
    text = json.loads(json.dumps(report))
    assert text == report
    for side in ("before", "after"):
        assert sum(report[side]["shares"].values()) == pytest.approx(1.0)


def test_policy_round_trips_and_refuses_bad_values() -> None:
    policy = ImbalancePolicy("oversample", target_ratio=0.5, seed=9)
    assert ImbalancePolicy.from_dict(policy.to_dict()) == policy
    with pytest.raises(InvalidInputError, match="must be one of"):
        ImbalancePolicy("smote")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"in \(0, 1\]"):
        ImbalancePolicy("oversample", target_ratio=2.0)
    with pytest.raises(InvalidInputError, match="would ignore it"):
        ImbalancePolicy("class_weight", target_ratio=0.5)


def test_bad_labels_are_refused() -> None:
    X, y = _data()
    with pytest.raises(DataError, match="one label per row"):
        resample(X, y.iloc[:-1], ImbalancePolicy("oversample"))
    with pytest.raises(DataError, match="no label"):
        resample(X, y.where(y != "fraud"), ImbalancePolicy("oversample"))
    with pytest.raises(DataError, match="non-empty"):
        class_weights([])
