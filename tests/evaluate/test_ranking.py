import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import ndcg_score

from modelyard.evaluate.ranking import ranking_report


def _queries(draw_sizes: list[int], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    query = np.repeat(np.arange(len(draw_sizes)), draw_sizes)
    relevance = rng.integers(0, 4, len(query))
    scores = rng.random(len(query))  # continuous: no ties
    return query, relevance, scores


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(2, 12), min_size=1, max_size=6), st.integers(0, 10_000), st.integers(1, 8)
)
def test_ndcg_matches_scikit_learn_per_query(sizes: list[int], seed: int, k: int) -> None:
    query, relevance, scores = _queries(sizes, seed)
    expected = [
        ndcg_score([relevance[query == q]], [scores[query == q]], k=k)
        for q in np.unique(query)
        if relevance[query == q].sum() > 0
    ]
    got = ranking_report(query, relevance, scores, k)["ndcg_at_k"]
    if expected:
        assert got == pytest.approx(np.mean(expected), abs=1e-9)
    else:
        assert np.isnan(got)


def test_precision_and_recall_at_k_by_hand() -> None:
    query = np.array([1, 1, 1, 1, 2, 2, 2])
    relevance = np.array([1, 0, 1, 0, 0, 0, 1])
    scores = np.array([0.9, 0.8, 0.1, 0.5, 0.3, 0.2, 0.1])
    report = ranking_report(query, relevance, scores, k=2)
    # query 1 top-2: rows 0 (rel) and 1 → 1 hit of 2 relevant; query 2 top-2: no hit of 1.
    assert report["precision_at_k"] == pytest.approx((1 / 2 + 0 / 2) / 2)
    assert report["recall_at_k"] == pytest.approx((1 / 2 + 0 / 1) / 2)
    with pytest.raises(ValueError, match="positive"):
        ranking_report(query, relevance, scores, k=0)
