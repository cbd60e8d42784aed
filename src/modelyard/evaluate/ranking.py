"""Ranking metrics per query, averaged over queries: precision@k, recall@k, NDCG@k.

Rows are grouped by a query id; within a query the rows are ranked by score
(highest first, ties broken by row order, as ``numpy.argsort`` stable on the
negated score). Relevance is the label (binary or graded, ≥ 0).

- precision@k: relevant rows (label > 0) among the top k, divided by k;
- recall@k: relevant rows among the top k, divided by all relevant rows of the
  query (queries without a relevant row are left out of the mean);
- NDCG@k: DCG of the top k with gain = relevance and discount 1/log2(rank + 1),
  divided by the ideal DCG (scikit-learn's ``ndcg_score`` definition, with
  ``ignore_ties=True``); queries whose ideal DCG is 0 are left out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def ranking_report(
    query: np.ndarray, relevance: np.ndarray, scores: np.ndarray, k: int = 10
) -> dict[str, float]:
    """precision@k, recall@k and NDCG@k averaged over queries."""
    if k < 1:
        raise ValueError(f"k must be a positive whole number; got {k}.")
    frame = pd.DataFrame({"q": query, "rel": relevance, "score": scores})
    precision, recall, ndcg = [], [], []
    for _, group in frame.groupby("q", sort=False):
        order = np.argsort(-group["score"].to_numpy(), kind="stable")
        ranked = group["rel"].to_numpy(dtype=float)[order]
        top = ranked[:k]
        hits = float(np.sum(top > 0))
        precision.append(hits / k)
        relevant = float(np.sum(ranked > 0))
        if relevant:
            recall.append(hits / relevant)
        ideal = _dcg(np.sort(ranked)[::-1][:k])
        if ideal > 0:
            ndcg.append(_dcg(top) / ideal)
    return {
        "precision_at_k": float(np.mean(precision)),
        "recall_at_k": float(np.mean(recall)) if recall else float("nan"),
        "ndcg_at_k": float(np.mean(ndcg)) if ndcg else float("nan"),
        "k": float(k),
    }


def _dcg(gains: np.ndarray) -> float:
    return float(np.sum(gains / np.log2(np.arange(2, len(gains) + 2))))
