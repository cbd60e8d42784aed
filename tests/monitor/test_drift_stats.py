"""The drift statistics against scipy and against their textbook formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from scipy.spatial import distance

from modelyard.errors import InvalidInputError
from modelyard.monitor import stats

counts_pair = st.integers(2, 12).flatmap(
    lambda k: st.tuples(
        st.lists(st.integers(0, 500), min_size=k, max_size=k).filter(any),
        st.lists(st.integers(0, 500), min_size=k, max_size=k).filter(any),
    )
)
samples = st.lists(
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), min_size=1, max_size=60
)


def _hand_psi(expected: list[int], actual: list[int], eps: float = 1e-4) -> float:
    """PSI written out term by term: zero shares become eps on either side."""
    total_e, total_a = sum(expected), sum(actual)
    value = 0.0
    for e, a in zip(expected, actual, strict=True):
        p = e / total_e or eps
        q = a / total_a or eps
        value += (q - p) * math.log(q / p)
    return value


def test_psi_matches_the_formula_on_a_small_example() -> None:
    reference, current = [50, 30, 20, 0], [40, 30, 20, 10]
    # by hand: (0.4-0.5)ln(0.8) + 0 + 0 + (0.1-1e-4)ln(0.1/1e-4)
    by_hand = -0.1 * math.log(0.8) + (0.1 - 1e-4) * math.log(0.1 / 1e-4)
    assert stats.psi(np.array(reference), np.array(current)) == pytest.approx(by_hand, abs=1e-12)
    assert stats.psi(np.array(reference), np.array(current)) == pytest.approx(
        _hand_psi(reference, current), abs=1e-12
    )


@settings(max_examples=50, deadline=None)
@given(counts_pair)
def test_psi_equals_the_hand_formula_and_is_never_negative(
    pair: tuple[list[int], list[int]],
) -> None:
    reference, current = pair
    value = stats.psi(np.array(reference), np.array(current))
    assert value == pytest.approx(_hand_psi(reference, current), rel=1e-9, abs=1e-12)
    assert value >= -1e-12


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 1000), min_size=1, max_size=20).filter(any), st.integers(1, 7))
def test_identical_shares_have_zero_psi_js_and_chi_square(counts: list[int], factor: int) -> None:
    reference = np.array(counts)
    current = reference * factor  # same shares, another size
    assert stats.psi(reference, current) == pytest.approx(0.0, abs=1e-12)
    assert stats.jensen_shannon(reference, current) == pytest.approx(0.0, abs=1e-7)
    statistic, p_value = stats.chi_square(reference, current)
    assert statistic == pytest.approx(0.0, abs=1e-9)
    assert p_value == pytest.approx(1.0)


@settings(max_examples=50, deadline=None)
@given(counts_pair)
def test_jensen_shannon_matches_scipy_base_2(pair: tuple[list[int], list[int]]) -> None:
    reference, current = (np.array(c, dtype=float) for c in pair)
    expected = distance.jensenshannon(reference / reference.sum(), current / current.sum(), base=2)
    assert stats.jensen_shannon(reference, current) == pytest.approx(expected, abs=1e-9)
    assert 0.0 <= stats.jensen_shannon(reference, current) <= 1.0


def test_jensen_shannon_is_one_for_disjoint_bins() -> None:
    assert stats.jensen_shannon(np.array([5, 0]), np.array([0, 7])) == pytest.approx(1.0)


@settings(max_examples=50, deadline=None)
@given(counts_pair)
def test_chi_square_is_scipys_test_of_homogeneity(pair: tuple[list[int], list[int]]) -> None:
    reference, current = np.array(pair[0]), np.array(pair[1])
    table = np.vstack([reference, current])
    table = table[:, table.sum(axis=0) > 0]
    statistic, p_value = stats.chi_square(reference, current)
    if table.shape[1] < 2:
        assert (statistic, p_value) == (0.0, 1.0)
        return
    expected = sps.chi2_contingency(table, correction=False)
    assert statistic == pytest.approx(expected.statistic, rel=1e-9, abs=1e-9)
    assert p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)


def test_chi_square_on_two_bins_is_the_two_proportion_z_test() -> None:
    reference, current = np.array([700, 300]), np.array([640, 360])
    p1, p2 = 0.3, 0.36
    pooled = (300 + 360) / 2000
    z = (p2 - p1) / math.sqrt(pooled * (1 - pooled) * (1 / 1000 + 1 / 1000))
    statistic, p_value = stats.chi_square(reference, current)
    assert statistic == pytest.approx(z**2, rel=1e-12)
    assert p_value == pytest.approx(2 * sps.norm.sf(abs(z)), rel=1e-9)


@pytest.mark.filterwarnings("ignore:ks_2samp:RuntimeWarning")  # scipy's own, in the oracle
@settings(max_examples=50, deadline=None)
@given(samples, samples)
def test_wasserstein_and_ks_match_scipy(a: list[float], b: list[float]) -> None:
    reference, current = np.sort(a), np.sort(b)
    distance_, statistic = stats.sample_distances(reference, current)
    expected = sps.wasserstein_distance(a, b)
    assert distance_ == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert stats.wasserstein(reference, current) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert statistic == pytest.approx(sps.ks_2samp(a, b).statistic, abs=1e-12)


@pytest.mark.filterwarnings("ignore:ks_2samp:RuntimeWarning")  # scipy's own, in the oracle
@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(-5, 5), min_size=1, max_size=80),
    st.lists(st.integers(-5, 5), min_size=1, max_size=80),
)
def test_distinct_values_with_counts_give_the_same_distances(a: list[int], b: list[int]) -> None:
    """Heavy ties, stored as distinct values and counts, as the monitor keeps them."""
    values_a, counts_a = np.unique(np.array(a, dtype=float), return_counts=True)
    values_b, counts_b = np.unique(np.array(b, dtype=float), return_counts=True)
    distance_, statistic = stats.sample_distances(values_a, values_b, counts_a, counts_b)
    expected = sps.wasserstein_distance(a, b)
    assert distance_ == pytest.approx(expected, rel=1e-9, abs=1e-12)
    for counted in ((counts_a, counts_b), (None, counts_b)):
        reference = values_a if counted[0] is not None else np.sort(np.array(a, dtype=float))
        found = stats.wasserstein(reference, values_b, *counted)
        assert found == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert statistic == pytest.approx(sps.ks_2samp(a, b).statistic, abs=1e-12)


def test_identical_samples_have_zero_distance() -> None:
    values = np.sort(np.random.default_rng(0).normal(size=500).round(1))
    assert stats.sample_distances(values, values) == (0.0, 0.0)
    assert stats.wasserstein(values, values) == 0.0


def test_large_samples_of_unequal_size_match_scipy() -> None:
    rng = np.random.default_rng(2)
    a, b = np.sort(rng.lognormal(size=200_000)), np.sort(rng.lognormal(0.1, size=150_001))
    expected = sps.wasserstein_distance(a, b)
    assert stats.wasserstein(a, b) == pytest.approx(expected, rel=1e-9)
    assert stats.sample_distances(a, b)[0] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(("n", "m"), [(30, 45), (2_000, 3_000), (20_000, 15_000)])
def test_ks_p_value_matches_scipy_exact_and_asymptotic(n: int, m: int) -> None:
    rng = np.random.default_rng(n)
    a, b = np.sort(rng.normal(size=n)), np.sort(rng.normal(0.05, size=m))
    statistic, p_value = stats.ks(a, b)
    expected = sps.ks_2samp(a, b)
    assert statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-15)


def test_normalised_wasserstein_divides_by_the_reference_std() -> None:
    rng = np.random.default_rng(1)
    a, b = np.sort(rng.normal(5, 2, 400)), np.sort(rng.normal(6, 2, 300))
    expected = sps.wasserstein_distance(a, b) / np.std(a)
    assert stats.normalised_wasserstein(a, b, float(np.std(a))) == pytest.approx(
        expected, rel=1e-12
    )
    constant = np.full(10, 3.0)
    assert stats.normalised_wasserstein(constant, constant + 1, 0.0) == pytest.approx(
        1.0 / stats.STD_FLOOR
    )


def test_sample_distances_need_values_on_both_sides() -> None:
    with pytest.raises(InvalidInputError, match="non-empty"):
        stats.sample_distances(np.array([1.0]), np.array([]))
    with pytest.raises(InvalidInputError, match="non-empty"):
        stats.wasserstein(np.array([]), np.array([1.0]))
