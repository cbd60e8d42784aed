"""The drift statistics, vectorised with numpy and scipy (no loop over rows).

Binned statistics take two count vectors over the same bins (reference first);
sample statistics take two samples sorted ascending, without missing values::

    psi(ref_counts, cur_counts)               population stability index, >= 0
    jensen_shannon(ref_counts, cur_counts)    Jensen-Shannon distance, base 2, in [0, 1]
    chi_square(ref_counts, cur_counts)        (statistic, p-value): test of homogeneity
    wasserstein(ref_sorted, cur_sorted)       Wasserstein-1 (earth mover's) distance
    ks(ref_sorted, cur_sorted)                (statistic, p-value): two-sample Kolmogorov-Smirnov
    sample_distances(ref_sorted, cur_sorted)  Wasserstein-1 and the KS statistic in one pass

Definitions, so that a number can be checked by hand:

- **PSI** = Σ (q − p) · ln(q / p), where p and q are each bin's share of the
  reference and current rows, and an empty bin counts as a share of
  ``EPSILON`` (1e-4) on either side. Shares are not renormalised after that.
- **Jensen-Shannon** is the distance (the square root of the divergence) with
  base-2 logarithms, as ``scipy.spatial.distance.jensenshannon(p, q, base=2)``;
  0 for equal shares, 1 for shares with no bin in common. Evidently reports the
  natural-log distance, which is this value times √ln 2 (about 0.833).
- **Chi-square** is Pearson's test of homogeneity on the 2 × k table of counts
  (bins empty on both sides left out), without Yates' correction: equal to
  ``scipy.stats.chi2_contingency(table, correction=False)``. With two bins it
  is the two-proportion z-test (the statistic is z²). p is 1 when fewer than
  two bins hold rows.
- **Wasserstein-1** is ∫ |F(x) − G(x)| dx over the two empirical CDFs, equal to
  ``scipy.stats.wasserstein_distance``. The monitor divides it by the
  reference's standard deviation (``normalised_wasserstein``).
- **KS** is the largest gap between the two empirical CDFs and its two-sided
  p-value as ``scipy.stats.ks_2samp`` computes it: exact when neither sample
  exceeds ``KS_EXACT_LIMIT`` (10,000) values, else from the asymptotic
  distribution ``scipy.stats.kstwo`` at n·m / (n + m) rows.

``sample_distances`` gives Wasserstein and KS in one pass: the current sample
is placed into the sorted reference with one binary search per value, which
gives both CDFs at every point of the merged sample. ``wasserstein`` alone
integrates the quantile functions instead, whose steps line up by arithmetic
on the ranks, with no merged sample: the monitor uses it when KS is not wanted.
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.spatial import distance

from modelyard.errors import InvalidInputError

__all__ = [
    "EPSILON",
    "KS_EXACT_LIMIT",
    "STD_FLOOR",
    "chi_square",
    "finite_or_none",
    "jensen_shannon",
    "ks",
    "ks_pvalue",
    "normalised_wasserstein",
    "psi",
    "sample_distances",
    "wasserstein",
]

EPSILON = 1e-4
KS_EXACT_LIMIT = 10_000
#: The smallest standard deviation Wasserstein is divided by (a constant reference column).
STD_FLOOR = 1e-3


def finite_or_none(value: float | None) -> float | None:
    """A number as a plain float, or None when it is missing or not finite (JSON has no NaN)."""
    return None if value is None or not np.isfinite(value) else float(value)


def psi(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Population stability index of two count vectors over the same bins."""
    p = _shares(reference_counts, EPSILON)
    q = _shares(current_counts, EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2) between the shares of two count vectors."""
    p = _shares(reference_counts, 0.0)
    q = _shares(current_counts, 0.0)
    if not p.any() or not q.any():
        return 0.0 if p.any() == q.any() else 1.0
    value = float(distance.jensenshannon(p, q, base=2.0))
    return min(value, 1.0) if np.isfinite(value) else 0.0  # rounding can make 0 a tiny -0 -> NaN


def chi_square(reference_counts: np.ndarray, current_counts: np.ndarray) -> tuple[float, float]:
    """Pearson's chi-square test that both count vectors come from one distribution."""
    table = np.vstack([reference_counts, current_counts]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    found = stats.chi2_contingency(table, correction=False)
    return float(found.statistic), float(found.pvalue)


def sample_distances(
    reference_sorted: np.ndarray,
    current_sorted: np.ndarray,
    reference_counts: np.ndarray | None = None,
    current_counts: np.ndarray | None = None,
) -> tuple[float, float]:
    """(Wasserstein-1 distance, KS statistic) of two sorted samples, in one pass.

    ``*_counts`` give the rows holding each value when a sample is stored as
    its distinct values (None: one row each).
    """
    n, m = len(reference_sorted), len(current_sorted)
    if n == 0 or m == 0:
        raise InvalidInputError("sample_distances needs two non-empty samples.")
    # Where each current value lands among the reference values (after equal ones).
    slots = np.searchsorted(reference_sorted, current_sorted, side="right")
    slots += np.arange(m)
    is_current = np.zeros(n + m, dtype=bool)
    is_current[slots] = True
    merged = np.empty(n + m, dtype=np.float64)
    merged[slots] = current_sorted
    merged[~is_current] = reference_sorted
    if reference_counts is None and current_counts is None:
        current_seen = np.cumsum(is_current[:-1], dtype=np.int64)
        reference_seen = np.arange(1, n + m, dtype=np.int64) - current_seen
        rows_reference, rows_current = n, m
    else:
        weights = np.zeros(n + m, dtype=np.int64)
        weights[slots] = 1 if current_counts is None else current_counts
        rows_current = int(weights.sum())
        current_seen = np.cumsum(weights[:-1])
        weights[slots] = 0
        weights[~is_current] = 1 if reference_counts is None else reference_counts
        rows_reference = int(weights.sum())
        reference_seen = np.cumsum(weights[:-1])
    # |F - G| at each point, times rows_reference * rows_current: exact integers.
    gaps = np.abs(reference_seen * rows_current - current_seen * rows_reference)
    widths = np.diff(merged)
    # Inside a run of equal values the counts are partial; only a run's last
    # point (a positive width follows it) is a point of both step functions.
    steps = gaps[widths > 0]
    scale = float(rows_reference) * float(rows_current)
    distance = float(np.dot(gaps.astype(np.float64), widths)) / scale
    return distance, float(steps.max()) / scale if steps.size else 0.0


def wasserstein(
    reference_sorted: np.ndarray,
    current_sorted: np.ndarray,
    reference_counts: np.ndarray | None = None,
    current_counts: np.ndarray | None = None,
) -> float:
    """Wasserstein-1 distance between two sorted samples, as ∫ |F⁻¹(t) − G⁻¹(t)| dt.

    Each quantile function is a staircase whose steps end at its cumulative
    ranks. On one integer scale (reference rank × current rows, and the other
    way round) every step of one side finds the steps of the other it spans
    by arithmetic (or a search over the distinct values when counts are
    given), so no merged sample is built: cheaper than ``sample_distances``
    when KS is not wanted.
    """
    n, m = len(reference_sorted), len(current_sorted)
    if n == 0 or m == 0:
        raise InvalidInputError("wasserstein needs two non-empty samples.")
    ends_r = _ends(n, reference_counts)
    ends_c = _ends(m, current_counts)
    rows_r, rows_c = int(ends_r[-1]), int(ends_c[-1])
    keys_r, keys_c = ends_r * rows_c, ends_c * rows_r  # 0 first: where the first step starts
    # Steps of the other side ended by the end of each step (ties: current first).
    if reference_counts is None and current_counts is None:
        current_done = keys_r[1:] // rows_r
        reference_done = (keys_c[1:] - 1) // rows_c
    else:
        current_done = np.searchsorted(keys_c[1:], keys_r[1:], side="right")
        reference_done = np.searchsorted(keys_r[1:], keys_c[1:], side="left")
    total = _steps(keys_r, keys_c, current_done, reference_sorted, current_sorted)
    total += _steps(keys_c, keys_r, reference_done, current_sorted, reference_sorted)
    return total / (float(rows_r) * float(rows_c))


def _ends(size: int, counts: np.ndarray | None) -> np.ndarray:
    """0, then the cumulative rank at the end of each distinct value."""
    found = np.arange(size + 1, dtype=np.int64)
    if counts is not None:
        found[1:] = np.cumsum(counts)
    return found


def _steps(
    keys: np.ndarray,
    other_keys: np.ndarray,
    done: np.ndarray,
    values: np.ndarray,
    other: np.ndarray,
) -> float:
    """Σ over the steps of one side: |its value − the other side's value| × the part of the step
    not already counted (it starts where the later of the two previous steps ended)."""
    starts = np.maximum(keys[:-1], other_keys[done])
    gaps = np.abs(values - other[np.minimum(done, len(other) - 1)])
    return float(np.dot(gaps, (keys[1:] - starts).astype(np.float64)))


def normalised_wasserstein(
    reference_sorted: np.ndarray, current_sorted: np.ndarray, reference_std: float
) -> float:
    """Wasserstein-1 distance in units of the reference's standard deviation (≥ ``STD_FLOOR``)."""
    return wasserstein(reference_sorted, current_sorted) / max(reference_std, STD_FLOOR)


def ks(reference_sorted: np.ndarray, current_sorted: np.ndarray) -> tuple[float, float]:
    """Two-sample KS statistic and two-sided p-value of two sorted samples."""
    statistic = sample_distances(reference_sorted, current_sorted)[1]
    n, m = len(reference_sorted), len(current_sorted)
    return statistic, ks_pvalue(statistic, n, m, (reference_sorted, current_sorted))


def ks_pvalue(
    statistic: float, n: int, m: int, samples: tuple[np.ndarray, np.ndarray] | None = None
) -> float:
    """The two-sided p-value of a KS ``statistic`` of samples of ``n`` and ``m`` values.

    Exact, as ``scipy.stats.ks_2samp`` computes it, when neither size exceeds
    ``KS_EXACT_LIMIT`` and the two ``samples`` are given; else asymptotic.
    """
    if samples is not None and max(n, m) <= KS_EXACT_LIMIT:
        return float(stats.ks_2samp(*samples).pvalue)
    rows = np.round(max(n, m) * min(n, m) / (n + m))
    return float(np.clip(stats.kstwo.sf(statistic, rows), 0.0, 1.0))


def _shares(counts: np.ndarray, floor: float) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    shares = counts / total if total > 0 else np.zeros_like(counts)
    return np.where(shares > 0, shares, floor) if floor else shares
