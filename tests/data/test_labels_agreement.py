"""Agreement statistics, checked against published worked examples and scikit-learn."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from modelyard.data.labels import (
    cohen_kappa,
    disagreement_rates,
    fleiss_kappa,
    krippendorff_alpha_nominal,
    pairwise_cohen,
    summarize_agreement,
)
from modelyard.errors import DataError, InvalidInputError

nan = np.nan

# Fleiss (1971) / Wikipedia "Fleiss' kappa" worked example: 10 items, 14 raters,
# 5 categories; cell = how many raters put item i in category j.
FLEISS_COUNTS = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]

# Krippendorff, "Computing Krippendorff's Alpha-Reliability" (2011), nominal data,
# 4 observers x 12 units with missing values; published nominal alpha = 0.743.
KRIPPENDORFF_2011 = pd.DataFrame(
    {
        "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        "C": [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    }
)


def _table_from_counts(counts: list[list[int]]) -> pd.DataFrame:
    """One column per rater: item i gets category j+1 from counts[i][j] raters."""
    rows = [[j + 1 for j, n in enumerate(row) for _ in range(n)] for row in counts]
    return pd.DataFrame(rows, columns=[f"rater{r}" for r in range(len(rows[0]))])


# ---------------------------------------------------------------- Fleiss


def test_fleiss_matches_the_published_worked_example_exactly() -> None:
    # Derivation, n = 14 raters, N = 10 items, so n(n-1) = 182 and Nn = 140:
    #   Σ_i Σ_j n_ij² = 196 + 60 + 70 + 94 + 74 + 98 + 58 + 46 + 66 + 66 = 828
    #   P̄  = (828 - N·n) / (N·n(n-1)) = (828 - 140) / 1820 = 172/455   ≈ 0.378
    #   column totals 20, 28, 39, 21, 32 → p_j = total / 140
    #   P̄e = (20² + 28² + 39² + 21² + 32²) / 140² = 4170/19600 = 417/1960 ≈ 0.213
    #   κ  = (P̄ - P̄e) / (1 - P̄e) = (9632 - 5421) / (25480 - 5421) = 4211/20059 ≈ 0.20993
    squares = sum(n * n for row in FLEISS_COUNTS for n in row)
    assert squares == 828
    p_bar = Fraction(squares - 140, 1820)
    totals = [sum(col) for col in zip(*FLEISS_COUNTS, strict=True)]
    assert totals == [20, 28, 39, 21, 32]
    p_e = sum(Fraction(t, 140) ** 2 for t in totals)
    assert (p_bar, p_e) == (Fraction(172, 455), Fraction(417, 1960))
    exact = (p_bar - p_e) / (1 - p_e)
    assert exact == Fraction(4211, 20059)

    table = _table_from_counts(FLEISS_COUNTS)
    assert table.shape == (10, 14)
    assert fleiss_kappa(table) == pytest.approx(float(exact), abs=1e-9)
    assert round(fleiss_kappa(table), 3) == 0.210


def test_fleiss_only_counts_labels_so_different_raters_per_item_give_the_same_value() -> None:
    dense = pd.DataFrame({"x": ["a", "b", "a", "c", "b"], "y": ["a", "b", "b", "c", "a"]})
    scattered = pd.DataFrame(
        {
            "p": ["a", None, "a", "c", None],
            "q": [None, "b", None, "c", "b"],
            "r": ["a", "b", "b", None, "a"],
        }
    )
    assert fleiss_kappa(scattered) == pytest.approx(fleiss_kappa(dense), abs=1e-12)


def test_fleiss_refuses_items_with_different_numbers_of_labels() -> None:
    with pytest.raises(DataError, match="same number of labels") as caught:
        fleiss_kappa(KRIPPENDORFF_2011)
    assert "krippendorff_alpha_nominal" in caught.value.message


def test_fleiss_perfect_agreement_is_one_and_a_single_label_is_undefined() -> None:
    assert fleiss_kappa(pd.DataFrame({"a": [1, 2, 3], "b": [1, 2, 3]})) == 1.0
    assert np.isnan(fleiss_kappa(pd.DataFrame({"a": [1, 1], "b": [1, 1]})))


# ---------------------------------------------------------------- Krippendorff


def test_krippendorff_matches_the_published_nominal_example_exactly() -> None:
    # Unit 12 has one value (B: 3): not pairable, dropped. The other 11 units hold
    # n = 40 pairable values. Coincidences off the diagonal (ordered pairs of
    # different values in a unit, each weighted 1/(m_u - 1)):
    #   unit 2 {2,2,3,2}: 6 pairs / 3 = 2;  unit 6 {1,2,3,4}: 12 / 3 = 4;
    #   unit 8 {1,1,2,1}: 6 / 3 = 2          → Σ_{c≠k} o_ck = 8
    # Pairable values per label: n_1 = 9, n_2 = 13, n_3 = 10, n_4 = 5, n_5 = 3, so
    #   Σ_{c≠k} n_c n_k = 40² - (81 + 169 + 100 + 25 + 9) = 1600 - 384 = 1216
    #   α = 1 - (n - 1) Σ o_ck / Σ n_c n_k = 1 - 39·8/1216 = 904/1216 = 113/152 ≈ 0.743
    exact = 1 - Fraction(39 * 8, 1216)
    assert exact == Fraction(113, 152)
    alpha = krippendorff_alpha_nominal(KRIPPENDORFF_2011)
    assert alpha == pytest.approx(float(exact), abs=1e-9)
    assert round(alpha, 3) == 0.743


def test_krippendorff_on_a_small_example_computed_by_hand() -> None:
    # Units (3 coders, strings, missing labels):
    #   u1 {a, a}   u2 {a, b, b}   u3 {b, b, b}   u4 {c} (one value: dropped)   u5 {c, a}
    # n = 2 + 3 + 3 + 2 = 10 pairable values; n_a = 4, n_b = 5, n_c = 1.
    # Off-diagonal coincidences: u2: (a,b)×2 + (b,a)×2 = 4 pairs / (3-1) = 2;
    #   u5: (c,a) + (a,c) = 2 pairs / (2-1) = 2            → Σ o_ck = 4
    # Σ_{c≠k} n_c n_k = 10² - (16 + 25 + 1) = 58
    # α = 1 - 9·4/58 = 22/58 = 11/29 ≈ 0.3793
    table = pd.DataFrame(
        {
            "x": ["a", "a", "b", None, "c"],
            "y": ["a", "b", "b", "c", "a"],
            "z": [None, "b", "b", None, None],
        }
    )
    assert krippendorff_alpha_nominal(table) == pytest.approx(11 / 29, abs=1e-9)


def test_krippendorff_binary_two_coders() -> None:
    # Two coders, 10 units, no missing values (Krippendorff 2011, example A):
    # 4 disagreeing units → Σ o_ck = 8; n_0 = 14, n_1 = 6 → Σ n_c n_k = 2·14·6 = 168;
    # α = 1 - 19·8/168 = 2/21 ≈ 0.095
    table = pd.DataFrame({"A": [0, 1, 0, 0, 0, 0, 0, 0, 1, 0], "B": [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]})
    assert krippendorff_alpha_nominal(table) == pytest.approx(2 / 21, abs=1e-9)


def test_krippendorff_needs_pairable_items_and_variation() -> None:
    no_pairs = pd.DataFrame({"a": [1, nan], "b": [nan, 2]})
    with pytest.raises(DataError, match="at least two annotators"):
        krippendorff_alpha_nominal(no_pairs)
    assert np.isnan(krippendorff_alpha_nominal(pd.DataFrame({"a": [1, 1], "b": [1, 1]})))


# ---------------------------------------------------------------- Cohen


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cohen_equals_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.choice(["cat", "dog", "bird"], 200)
    b = np.where(rng.random(200) < 0.7, a, rng.choice(["cat", "dog", "bird"], 200))
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b), abs=1e-9)


def test_cohen_uses_only_items_both_annotators_labelled() -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(0, 4, 300).astype(float)
    b = np.where(rng.random(300) < 0.6, a, rng.integers(0, 4, 300)).astype(float)
    a[rng.random(300) < 0.2] = nan
    b[rng.random(300) < 0.2] = nan
    both = ~np.isnan(a) & ~np.isnan(b)
    expected = cohen_kappa_score(a[both], b[both])
    assert cohen_kappa(a, b) == pytest.approx(expected, abs=1e-9)
    assert cohen_kappa(pd.Series(a), pd.Series(b)) == pytest.approx(expected, abs=1e-9)


def test_cohen_errors_and_undefined_cases() -> None:
    with pytest.raises(DataError, match="no item in common"):
        cohen_kappa([1, nan], [nan, 2])
    with pytest.raises(DataError, match="equally long"):
        cohen_kappa([1, 2], [1, 2, 3])
    assert np.isnan(cohen_kappa(["x", "x"], ["x", "x"]))


def test_pairwise_cohen_is_a_symmetric_matrix_of_pair_kappas() -> None:
    matrix = pairwise_cohen(KRIPPENDORFF_2011)
    assert list(matrix.index) == list(matrix.columns) == ["A", "B", "C", "D"]
    assert np.allclose(matrix.to_numpy(), matrix.to_numpy().T)
    assert (np.diag(matrix.to_numpy()) == 1.0).all()
    a, c = KRIPPENDORFF_2011["A"], KRIPPENDORFF_2011["C"]
    both = a.notna() & c.notna()
    assert matrix.loc["A", "C"] == pytest.approx(cohen_kappa_score(a[both], c[both]), abs=1e-9)


def test_pairwise_cohen_leaves_pairs_without_shared_items_undefined() -> None:
    table = pd.DataFrame({"a": [1, 2, nan, nan], "b": [nan, nan, 1, 2], "c": [1, 2, 1, 2]})
    matrix = pairwise_cohen(table)
    assert np.isnan(matrix.loc["a", "b"])
    assert matrix.loc["a", "c"] == 1.0


# ---------------------------------------------------------------- disagreement


def test_disagreement_rates_compare_each_annotator_with_the_others_majority() -> None:
    table = pd.DataFrame(
        {
            "ann": ["x", "x", "y", "x", None],
            "bob": ["x", "x", "x", "y", "x"],
            "cat": ["x", "y", "x", "y", "y"],
        }
    )
    rates = disagreement_rates(table)
    # item:  0      1      2      3      4
    # ann:   others x,x (agree) | x,y tie | x,x (ann y: differs) | y,y (ann x: differs) | —
    assert rates.loc["ann"].to_dict() == {"compared": 3, "disagreed": 2, "rate": 2 / 3}
    # bob:   x,x (agree) | x,y tie | y,x tie | x,y tie | only cat: y (bob x: differs)
    assert rates.loc["bob"].to_dict() == {"compared": 2, "disagreed": 1, "rate": 0.5}
    # cat:   x,x (agree) | x,x (cat y: differs) | y,x tie | x,y tie | only bob: x (differs)
    assert rates.loc["cat"].to_dict() == {"compared": 3, "disagreed": 2, "rate": 2 / 3}


def test_disagreement_rate_is_undefined_when_nothing_can_be_compared() -> None:
    table = pd.DataFrame({"a": [1, nan], "b": [nan, 2], "c": [nan, 3]})
    rates = disagreement_rates(table)
    assert rates.loc["a", "compared"] == 0 and np.isnan(rates.loc["a", "rate"])


# ---------------------------------------------------------------- table checks


@pytest.mark.parametrize(
    "function",
    [pairwise_cohen, fleiss_kappa, krippendorff_alpha_nominal, disagreement_rates],
)
def test_every_statistic_refuses_a_single_annotator_and_an_empty_column(function) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match="at least two annotator columns"):
        function(pd.DataFrame({"only": [1, 2, 3]}))
    with pytest.raises(DataError, match=r"\['ghost'\] have no labels"):
        function(pd.DataFrame({"a": [1, 2], "b": [1, 1], "ghost": [nan, nan]}))
    with pytest.raises(DataError, match="no rows"):
        function(pd.DataFrame({"a": [], "b": []}))
    with pytest.raises(InvalidInputError, match="DataFrame"):
        function([[1, 2], [1, 2]])


def test_summary_reports_every_statistic_and_says_why_fleiss_is_missing() -> None:
    summary = summarize_agreement(KRIPPENDORFF_2011)
    assert summary.fleiss_kappa is None
    assert summary.fleiss_note is not None and "same number" in summary.fleiss_note
    assert summary.krippendorff_alpha == pytest.approx(113 / 152, abs=1e-12)
    assert summary.items == 12 and summary.annotators == ("A", "B", "C", "D")
    json.dumps(summary.to_dict(), allow_nan=False)

    chosen = summarize_agreement(_table_from_counts(FLEISS_COUNTS), ["rater0", "rater1"])
    assert chosen.annotators == ("rater0", "rater1")
    assert chosen.fleiss_kappa is not None
    with pytest.raises(DataError, match="not in the table"):
        summarize_agreement(KRIPPENDORFF_2011, ["A", "Z"])
