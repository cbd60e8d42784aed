"""Likely mislabelled rows by confident learning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.naive_bayes import GaussianNB
from sklearn.svm import LinearSVC

from modelyard.data.labels import (
    confident_joint,
    find_label_issues,
    label_issues_from_probabilities,
)
from modelyard.data.labels.mislabels import ISSUE_COLUMNS, default_model
from modelyard.errors import DataError, InvalidInputError


def _noisy_blobs(seed: int, rows: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three well-separated classes; 5% of the labels flipped to another class at random."""
    X, y = make_blobs(n_samples=rows, centers=3, n_features=4, cluster_std=1.0, random_state=seed)
    rng = np.random.default_rng(seed)
    flipped = rng.choice(rows, rows // 20, replace=False)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, 3, len(flipped))) % 3
    return X, noisy, flipped


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flipped_labels_are_found_with_good_precision_and_recall(seed: int) -> None:
    X, noisy, flipped = _noisy_blobs(seed)
    issues = find_label_issues(X, noisy, seed=seed)
    found, truth = set(issues["row"]), set(flipped.tolist())
    precision = len(found & truth) / len(found)
    recall = len(found & truth) / len(truth)
    assert precision >= 0.7, (precision, recall)
    assert recall >= 0.6, (precision, recall)


def test_issues_name_the_labels_and_come_worst_first() -> None:
    X, noisy, _ = _noisy_blobs(0)
    names = np.array(["red", "green", "blue"])[noisy]
    issues = find_label_issues(pd.DataFrame(X, columns=list("abcd")), names, seed=0)
    assert list(issues.columns) == ISSUE_COLUMNS
    assert issues["self_confidence"].is_monotonic_increasing
    assert set(issues["given"]) <= {"red", "green", "blue"}
    assert (issues["given"] != issues["suggested"]).all()
    assert (issues["given"].to_numpy() == names[issues["row"].to_numpy()]).all()
    assert (issues["margin"] < 0).all()  # the given label is not the most probable one


def test_confident_joint_by_hand() -> None:
    probs = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.1, 0.9], [0.4, 0.6]])
    labels = np.array([0, 0, 0, 1, 1])
    # t_0 = mean(0.9, 0.7, 0.2) = 0.6 and t_1 = mean(0.9, 0.6) = 0.75, so
    # row 0: 0.9 ≥ t_0 → 0;  row 1: 0.7 ≥ t_0 → 0;  row 2: 0.8 ≥ t_1 → 1 (an issue);
    # row 3: 0.9 ≥ t_1 → 1;  row 4: 0.4 < t_0 and 0.6 < t_1 → not counted.
    joint, confident = confident_joint(probs, labels)
    assert confident.tolist() == [0, 0, 1, 1, -1]
    assert joint.tolist() == [[2, 1], [0, 1]]
    issues = label_issues_from_probabilities(probs, labels, classes=["no", "yes"])
    assert issues.to_dict("records") == [
        {
            "row": 2,
            "given": "no",
            "suggested": "yes",
            "self_confidence": 0.2,
            "margin": pytest.approx(-0.6),
        }
    ]


def test_confident_class_is_the_most_probable_among_those_above_threshold() -> None:
    probs = np.array(
        [
            [0.3, 0.0, 0.7],  # a, labelled 0
            [0.1, 0.9, 0.0],  # b, labelled 0
            [0.0, 0.0, 1.0],  # c, labelled 2
            [0.0, 0.1, 0.9],  # d, labelled 2
            [0.0, 1.0, 0.0],  # e, labelled 1
            [0.6, 0.4, 0.0],  # f, labelled 1
            [0.25, 0.75, 0.0],  # g, labelled 1
        ]
    )
    labels = np.array([0, 0, 2, 2, 1, 1, 1])
    # t_0 = mean(.3, .1) = .2;  t_1 = mean(1, .4, .75) ≈ .717;  t_2 = mean(1, .9) = .95
    # a: only p_0 = .3 clears its threshold (p_2 = .7 is larger but < .95) → 0
    # b: p_1 = .9 → 1 (issue);  d: nothing clears → not counted;  f: p_0 = .6 → 0 (issue)
    # g: p_0 = .25 and p_1 = .75 both clear → the larger, 1
    joint, confident = confident_joint(probs, labels)
    assert confident.tolist() == [0, 1, 2, -1, 1, 0, 1]
    assert joint.tolist() == [[1, 1, 0], [1, 2, 0], [0, 0, 1]]
    issues = label_issues_from_probabilities(probs, labels)
    assert issues["row"].tolist() == [1, 5]  # b (self-confidence .1) before f (.4)
    assert issues["suggested"].tolist() == [1, 0]


def test_a_custom_model_is_cloned_and_used() -> None:
    X, noisy, flipped = _noisy_blobs(1, rows=600)
    model = GaussianNB()
    issues = find_label_issues(X, noisy, model=model, folds=3, seed=1)
    assert len(set(issues["row"]) & set(flipped.tolist())) >= len(flipped) // 2
    assert not hasattr(model, "classes_")  # the caller's object was not fitted


def test_the_default_model_depends_on_the_size_of_the_data() -> None:
    assert type(default_model(499)).__name__ == "Pipeline"
    assert isinstance(default_model(500), HistGradientBoostingClassifier)


def test_bad_inputs_are_refused_with_what_to_do() -> None:
    X, noisy, _ = _noisy_blobs(0)
    with pytest.raises(DataError, match="no label"):
        find_label_issues(X, np.where(np.arange(400) == 5, None, noisy))
    with pytest.raises(DataError, match="at least two classes"):
        find_label_issues(X, np.zeros(400))
    with pytest.raises(DataError, match="Use fewer folds"):
        find_label_issues(X, np.r_[np.zeros(397), np.ones(3)])
    with pytest.raises(DataError, match="one label per row"):
        find_label_issues(X, noisy[:-1])
    with pytest.raises(DataError, match="Encode them first"):
        find_label_issues(pd.DataFrame({"a": X[:, 0], "b": ["x"] * 400}), noisy)
    with pytest.raises(InvalidInputError, match="predict_proba"):
        find_label_issues(X, noisy, model=LinearSVC())
    with pytest.raises(DataError, match="no labelled row"):
        confident_joint(np.full((2, 3), 1 / 3), np.array([0, 1]))
