"""Inter-annotator agreement: Cohen's kappa, Fleiss' kappa, Krippendorff's alpha.

Every function takes an annotation table (rows = items, one column per
annotator, missing = not labelled; see ``annotations``). Labels are nominal:
only "same" or "different" matters.

- ``cohen_kappa`` compares two annotators on the items both labelled
  (scikit-learn's ``cohen_kappa_score`` on those items).
- ``fleiss_kappa`` (Fleiss, 1971) needs every item labelled by the same
  number of annotators — not necessarily the same people.
- ``krippendorff_alpha_nominal`` (Krippendorff, 2011) allows any pattern of
  missing labels; items labelled by fewer than two annotators are not pairable
  and are left out, as the method prescribes.

A statistic is ``nan`` when it is undefined because only one label was ever
used (no variation to agree on); a table that cannot be measured at all
raises ``DataError``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from modelyard.data.labels.annotations import check_table, count_votes
from modelyard.errors import DataError

NAN = float("nan")


def cohen_kappa(a: Any, b: Any) -> float:
    """Cohen's kappa of two annotators' labels for the same items, in the same order.

    Items either annotator left unlabelled are skipped. Equals
    ``sklearn.metrics.cohen_kappa_score`` on the items both labelled.
    """
    from sklearn.metrics import cohen_kappa_score

    left, right = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    if left.shape != right.shape or left.ndim != 1:
        raise DataError(
            "Cohen's kappa needs two equally long sequences of labels, one per item; "
            f"got shapes {left.shape} and {right.shape}."
        )
    both = ~pd.isna(left) & ~pd.isna(right)
    if not both.any():
        raise DataError(
            "The two annotators have no item in common, so their agreement cannot be measured."
        )
    codes, uniques = pd.factorize(np.concatenate([left[both], right[both]]))
    if len(uniques) < 2:
        return NAN
    n = int(both.sum())
    return float(cohen_kappa_score(codes[:n], codes[n:]))


def pairwise_cohen(table: pd.DataFrame) -> pd.DataFrame:
    """Cohen's kappa for every pair of annotators (1 on the diagonal).

    A pair that labelled no item in common gets ``nan``.
    """
    table = check_table(table)
    names = list(table.columns)
    out = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for first, second in combinations(names, 2):
        left, right = table[first], table[second]
        shared = left.notna() & right.notna()
        value = cohen_kappa(left, right) if shared.any() else NAN
        out.loc[first, second] = out.loc[second, first] = value
    return out


def fleiss_kappa(table: pd.DataFrame) -> float:
    """Fleiss' kappa: agreement of a fixed number of annotators per item.

    Every item must have the same number (at least two) of labels; who gave
    them may differ from item to item.
    """
    votes = count_votes(check_table(table))
    raters = votes.raters
    n = int(raters[0])
    if (raters != n).any():
        raise DataError(
            "Fleiss' kappa needs the same number of labels on every item; "
            f"this table has items with {_describe_counts(votes.items, raters)}. "
            "Use krippendorff_alpha_nominal, which allows missing labels."
        )
    if n < 2:
        raise DataError("Fleiss' kappa needs at least two labels per item; every item has one.")
    counts = votes.counts.astype(np.float64)
    agreement = ((counts**2).sum(axis=1) - n) / (n * (n - 1))
    p_bar = float(agreement.mean())
    shares = counts.sum(axis=0) / counts.sum()
    p_expected = float((shares**2).sum())
    if p_expected == 1.0:
        return NAN
    return (p_bar - p_expected) / (1.0 - p_expected)


def krippendorff_alpha_nominal(table: pd.DataFrame) -> float:
    """Krippendorff's alpha for nominal labels, allowing missing labels.

    Uses the coincidence matrix: a unit labelled ``m`` times contributes each
    ordered pair of its labels with weight ``1 / (m - 1)``. Then
    ``alpha = 1 - (n - 1) * D / (n² - Σ n_c²)``, where ``D`` is the total weight
    of pairs with different labels and ``n_c`` the pairable labels of class c.
    """
    votes = count_votes(check_table(table))
    m = votes.raters
    pairable = m >= 2
    if not pairable.any():
        raise DataError(
            "Krippendorff's alpha needs items labelled by at least two annotators; "
            "no item in this table is."
        )
    counts = votes.counts[pairable].astype(np.float64)
    m_u = m[pairable].astype(np.float64)
    disagreeing = float(((m_u**2 - (counts**2).sum(axis=1)) / (m_u - 1)).sum())
    per_label = counts.sum(axis=0)
    n = float(per_label.sum())
    expected = n**2 - float((per_label**2).sum())
    if expected == 0.0:
        return NAN
    return 1.0 - (n - 1.0) * disagreeing / expected


def disagreement_rates(table: pd.DataFrame) -> pd.DataFrame:
    """Per annotator, how often they differ from the majority of the other annotators.

    For each item an annotator labelled, the others' most frequent label is
    the reference; items where the others tie or nobody else labelled are not
    compared. Columns: ``compared`` (items), ``disagreed`` (items), ``rate``
    (``disagreed / compared``, ``nan`` when nothing was compared).
    """
    votes = count_votes(check_table(table))
    rows = []
    for a, name in enumerate(votes.annotators):
        own = votes.codes[:, a]
        others = votes.counts.copy()
        labelled = np.nonzero(own >= 0)[0]
        others[labelled, own[labelled]] -= 1
        top = others.max(axis=1)
        unique_top = (others == top[:, None]).sum(axis=1) == 1
        compared = (own >= 0) & (top > 0) & unique_top
        differs = compared & (others.argmax(axis=1) != own)
        n_compared, n_differs = int(compared.sum()), int(differs.sum())
        rate = n_differs / n_compared if n_compared else NAN
        rows.append((name, n_compared, n_differs, rate))
    frame = pd.DataFrame(rows, columns=["annotator", "compared", "disagreed", "rate"])
    return frame.set_index("annotator")


@dataclass(frozen=True)
class AgreementSummary:
    """Every agreement statistic for one table (what ``modelyard data agreement`` prints)."""

    annotators: tuple[str, ...]
    items: int
    pairwise_cohen: pd.DataFrame
    fleiss_kappa: float | None
    fleiss_note: str | None
    krippendorff_alpha: float
    disagreement: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        """Plain data (``nan`` as ``None``) for JSON reports."""
        return {
            "annotators": list(self.annotators),
            "items": self.items,
            "pairwise_cohen": _nan_to_none(self.pairwise_cohen.to_dict()),
            "fleiss_kappa": _nan_to_none(self.fleiss_kappa),
            "fleiss_note": self.fleiss_note,
            "krippendorff_alpha": _nan_to_none(self.krippendorff_alpha),
            "disagreement": _nan_to_none(self.disagreement.to_dict(orient="index")),
        }


def summarize_agreement(table: pd.DataFrame, columns: list[str] | None = None) -> AgreementSummary:
    """All of the above; Fleiss' kappa is ``None`` (with a note why) when it does not apply."""
    table = check_table(table, columns)
    fleiss: float | None
    try:
        fleiss, note = fleiss_kappa(table), None
    except DataError as exc:
        fleiss, note = None, exc.message
    return AgreementSummary(
        annotators=tuple(str(c) for c in table.columns),
        items=len(table),
        pairwise_cohen=pairwise_cohen(table),
        fleiss_kappa=fleiss,
        fleiss_note=note,
        krippendorff_alpha=krippendorff_alpha_nominal(table),
        disagreement=disagreement_rates(table),
    )


def _describe_counts(items: pd.Index, raters: np.ndarray) -> str:
    values, frequency = np.unique(raters, return_counts=True)
    parts = []
    for value, times in zip(values, frequency, strict=True):
        examples = [str(i) for i in items[raters == value][:3]]
        parts.append(f"{value} label(s) ({times} item(s), e.g. {', '.join(examples)})")
    return "; ".join(parts)


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, float | np.floating) and np.isnan(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value
