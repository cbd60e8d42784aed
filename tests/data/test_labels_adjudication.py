"""Majority vote: ties listed, never broken silently."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelyard.data.labels import majority_vote
from modelyard.errors import DataError, InvalidInputError

nan = np.nan

TABLE = pd.DataFrame(
    {
        "ana": ["spam", "ham", "spam", "ham", None],
        "ben": ["spam", "spam", "ham", "ham", None],
        "cy": ["ham", None, None, "ham", None],
    },
    index=pd.Index(["m1", "m2", "m3", "m4", "m5"], name="message"),
)


def test_majority_wins_and_ties_stay_open_by_default() -> None:
    labels, ties = majority_vote(TABLE)
    assert labels["m1"] == "spam" and labels["m4"] == "ham"
    assert pd.isna(labels["m2"]) and pd.isna(labels["m3"])  # 1–1 ties
    assert pd.isna(labels["m5"])  # nobody labelled it: missing, but not a tie
    assert list(ties["item"]) == ["m2", "m3"]
    assert list(ties["labels"]) == [("ham", "spam"), ("ham", "spam")]
    assert list(ties["votes"]) == [1, 1]
    assert ties["chosen"].isna().all()
    assert list(labels.index) == list(TABLE.index)


def test_first_policy_takes_the_left_most_annotator_among_the_tied() -> None:
    labels, ties = majority_vote(TABLE, tie_break="first")
    assert labels["m2"] == "ham" and labels["m3"] == "spam"  # ana's labels
    assert list(ties["chosen"]) == ["ham", "spam"]  # still listed, with the decision


def test_authority_decides_ties_only_with_a_tied_label() -> None:
    table = pd.DataFrame({"a": [1, 1, 1], "b": [2, 2, 2], "boss": [2, None, 3], "d": [1, 2, 3]})
    # item 0: 1,2,2,1 → tie (1, 2), boss says 2; item 1: 1,2,2 → 2 wins outright;
    # item 2: 1,2,3,3 → 3 wins outright.
    labels, ties = majority_vote(table, tie_break="boss")
    assert labels.tolist() == [2, 2, 3]
    assert list(ties["chosen"]) == [2]

    # item 0: 1 vs 2, boss did not label it; item 1: 1,1,2,2 tie, boss's 3 is not tied.
    unresolved = pd.DataFrame(
        {"a": [1, 1], "b": [2, 1], "c": [None, 2], "d": [None, 2], "boss": [None, 3]}
    )
    labels, ties = majority_vote(unresolved, tie_break="boss")
    assert labels.isna().all() and len(ties) == 2 and ties["chosen"].isna().all()


def test_random_policy_is_reproducible_and_picks_a_tied_label() -> None:
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"a": rng.choice(["x", "y", "z"], 200), "b": rng.choice(["x", "y"], 200)})
    first = majority_vote(table, tie_break="random(7)")
    again = majority_vote(table, tie_break="random(7)")
    pd.testing.assert_series_equal(first.labels, again.labels)
    assert len(first.ties) > 50
    for tie in first.ties.itertuples():
        assert tie.chosen in tie.labels
        assert first.labels[tie.item] == tie.chosen
    other = majority_vote(table, tie_break="random(8)")
    assert not first.labels.equals(other.labels)


def test_labels_keep_their_type_even_with_open_ties() -> None:
    table = pd.DataFrame({"a": [1, 1, 0], "b": [1, 0, 0]})
    labels, _ = majority_vote(table)
    assert labels.tolist()[0] == 1 and isinstance(labels.tolist()[0], int)
    assert pd.isna(labels[1])
    labels, _ = majority_vote(table, tie_break="first")
    assert labels.dtype == np.int64 and labels.tolist() == [1, 1, 0]


def test_float_columns_with_gaps_give_back_integer_labels() -> None:
    table = pd.DataFrame({"a": [1.0, nan, 2.0], "b": [1.0, 2.0, 2.0], "c": [nan, 2.0, 1.0]})
    labels, ties = majority_vote(table)
    assert labels.tolist() == [1, 2, 2] and ties.empty


def test_bad_policies_and_tables_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="random\\(SEED\\)"):
        majority_vote(TABLE, tie_break="random")
    with pytest.raises(InvalidInputError, match="'dave'"):
        majority_vote(TABLE, tie_break="dave")
    with pytest.raises(DataError, match="at least two annotator columns"):
        majority_vote(TABLE[["ana"]])
    with pytest.raises(DataError, match="no labels at all"):
        majority_vote(TABLE.assign(ghost=None))
