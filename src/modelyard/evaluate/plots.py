"""Plots for the evaluation report, drawn as small self-contained inline SVG.

No plotting library and nothing fetched: each function returns an SVG element
(``markupsafe.Markup``) with its colours in presentation attributes and every
piece of user text escaped, so it can be pasted into any page or file. Long
curves are thinned to ``MAX_POINTS`` vertices with ``thin`` before drawing.

    roc_plot          ROC curve and the chance diagonal
    pr_plot           precision-recall steps and the prevalence baseline
    calibration_plot  reliability line, diagonal, and the bin counts below
    cost_plot         cost over thresholds, chosen and cheapest thresholds marked
    slice_plot        one bar per slice with its confidence interval, overall line
    histogram_plot    a histogram from edges and counts (regression residuals)
    drift_plot        reference vs current shares per bin of one feature
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from markupsafe import Markup, escape

__all__ = [
    "MAX_POINTS",
    "calibration_plot",
    "cost_plot",
    "drift_plot",
    "histogram_plot",
    "pr_plot",
    "roc_plot",
    "slice_plot",
    "thin",
]

MAX_POINTS = 200
#: Calibration bins with fewer rows are drawn hollow: their observed frequency is noisy.
FEW_ROWS = 30
BLUE, ORANGE, RED, GREEN = "#1f5fbf", "#c2570c", "#b42318", "#1a7f37"
INK, MUTED, GRID = "#1f2328", "#59636e", "#e4e7eb"
FONT = 'font-family="inherit" font-size="12"'
_DASH = ' stroke-dasharray="4 3"'
_DIAGONAL = [(0.0, 0.0), (1.0, 1.0)]


def thin(x: Sequence[float], y: Sequence[float], limit: int, keep: Iterable[int] = ()) -> list[int]:
    """Indices of at most ``limit`` points spread evenly along the curve's length.

    Length is measured with both axes scaled to [0, 1], so flat and steep parts
    of a curve get points alike. The first and last points and ``keep`` stay.
    """
    n = len(x)
    kept = {i for i in keep if 0 <= i < n}
    if n <= limit:
        return list(range(n))
    xs, ys = _unit(np.asarray(x, dtype=float)), _unit(np.asarray(y, dtype=float))
    length = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(xs), np.diff(ys)))])
    spots = max(limit - len(kept) - 2, 0)
    targets = np.linspace(0.0, length[-1], spots + 2)[1:-1] if spots else np.array([])
    picked = np.searchsorted(length, targets).clip(0, n - 1)
    return sorted({0, n - 1, *kept, *picked.tolist()})


def _unit(values: np.ndarray) -> np.ndarray:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros_like(values)
    low, span = float(finite.min()), float(np.ptp(finite)) or 1.0
    return np.nan_to_num((values - low) / span)


# --------------------------------------------------------------------------- axes


@dataclass(frozen=True)
class _Axes:
    """A plot area: data ranges mapped onto a pixel box inside a ``width × height`` SVG."""

    x0: float
    x1: float
    y0: float
    y1: float
    width: int = 440
    height: int = 320
    left: int = 56
    right: int = 18
    top: int = 14
    bottom: int = 46

    def px(self, x: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return self.left + (x - self.x0) / span * (self.width - self.left - self.right)

    def py(self, y: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return self.height - self.bottom - (y - self.y0) / span * self.inner_height

    @property
    def inner_height(self) -> float:
        return self.height - self.top - self.bottom

    def frame(
        self, x_label: str, y_label: str, *, x_ticks: bool = True, y_ticks: bool = True
    ) -> list[str]:
        """Grid lines, tick labels, the axes box and the axis titles (empty ones left out)."""
        parts = []
        for t in ticks(self.x0, self.x1) if x_ticks else []:
            x = self.px(t)
            parts.append(_line(x, self.top, x, self.height - self.bottom, GRID))
            parts.append(_text(x, self.height - self.bottom + 16, tick_label(t), "middle"))
        for t in ticks(self.y0, self.y1) if y_ticks else []:
            y = self.py(t)
            parts.append(_line(self.left, y, self.width - self.right, y, GRID))
            parts.append(_text(self.left - 6, y + 4, tick_label(t), "end"))
        parts.append(
            f'<rect x="{self.left}" y="{self.top}" width="{self.width - self.left - self.right}" '
            f'height="{self.inner_height}" fill="none" stroke="{MUTED}" stroke-width="1"/>'
        )
        if x_label:
            middle = (self.left + self.width - self.right) / 2
            parts.append(_text(middle, self.height - 8, x_label, "middle", INK))
        if y_label:
            y_mid = self.top + self.inner_height / 2
            parts.append(
                f'<text x="14" y="{y_mid:.1f}" transform="rotate(-90 14 {y_mid:.1f})" '
                f'text-anchor="middle" fill="{INK}" {FONT}>{escape(y_label)}</text>'
            )
        return parts

    def polyline(
        self, x: Sequence[float], y: Sequence[float], colour: str, *, step: bool = False
    ) -> str:
        points = _step_points(x, y) if step else list(zip(x, y, strict=True))
        coords = " ".join(
            f"{self.px(a):.1f},{self.py(b):.1f}"
            for a, b in points
            if math.isfinite(a) and math.isfinite(b)
        )
        return (
            f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2" '
            'stroke-linejoin="round"/>'
        )


def _step_points(x: Sequence[float], y: Sequence[float]) -> list[tuple[float, float]]:
    """A staircase: hold each y until the next x (matplotlib's ``steps-post``)."""
    points = [(x[0], y[0])] if len(x) else []
    for i in range(1, len(x)):
        points += [(x[i], y[i - 1]), (x[i], y[i])]
    return points


def ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 × 10ⁿ) covering [low, high]."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low] if math.isfinite(low) else []
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(int((high - first) / step + 1e-9) + 1)]


def tick_label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e6:
        return f"{value / 1e6:g}M"
    if abs(value) >= 1e4:
        return f"{value / 1e3:g}k"
    return f"{value:.4g}"


def _line(x1: float, y1: float, x2: float, y2: float, colour: str, extra: str = "") -> str:
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" '
        f'stroke-width="1"{extra}/>'
    )


def _text(x: float, y: float, text: str, anchor: str = "start", colour: str = MUTED) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{colour}" {FONT}>'
        f"{escape(text)}</text>"
    )


def _svg(width: int, height: int, title: str, parts: Iterable[str]) -> Markup:
    body = "".join(parts)
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
        f"<title>{escape(title)}</title>{body}</svg>"
    )


Entry = tuple[str, str, bool]  # label, colour, dashed


Line = Sequence[tuple[float, float]]


def _legend(axes: _Axes, entries: Sequence[Entry], lines: Iterable[Line]) -> list[str]:
    """A legend in the inner corner that hides the least of ``lines`` (data coordinates)."""
    width = 34 + 6.6 * max((len(label) for label, _, _ in entries), default=0)
    height = 18 * len(entries) + 6
    inner_left, inner_right = axes.left + 6, axes.width - axes.right - 6
    top, bottom = axes.top + 4, axes.height - axes.bottom - 4 - height
    corners = [(inner_right - width, top), (inner_right - width, bottom)]
    corners += [(inner_left, top), (inner_left, bottom)]
    pixels = [p for line in lines for p in _along(axes, line)]

    def hidden(corner: tuple[float, float]) -> int:
        x0, y0 = corner
        return sum(x0 <= px <= x0 + width and y0 <= py <= y0 + height for px, py in pixels)

    x0, y0 = min(corners, key=hidden)
    parts = [
        f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{width:.1f}" height="{height}" fill="#fff" '
        'fill-opacity="0.85" rx="3"/>'
    ]
    for i, (label, colour, dashed) in enumerate(entries):
        y = y0 + 16 + 18 * i
        dash = _DASH if dashed else ""
        parts.append(
            f'<line x1="{x0 + 6:.1f}" y1="{y - 4:.1f}" x2="{x0 + 28:.1f}" y2="{y - 4:.1f}" '
            f'stroke="{colour}" stroke-width="2"{dash}/>'
        )
        parts.append(_text(x0 + 34, y, label, "start", INK))
    return parts


def _along(axes: _Axes, line: Line) -> list[tuple[float, float]]:
    """Pixel points every few pixels along a polyline."""
    points = [(axes.px(x), axes.py(y)) for x, y in line if math.isfinite(x) and math.isfinite(y)]
    out = points[:1]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        steps = max(1, math.ceil(math.hypot(x1 - x0, y1 - y0) / 4))
        out += [
            (x0 + (x1 - x0) * k / steps, y0 + (y1 - y0) * k / steps) for k in range(1, steps + 1)
        ]
    return out


def _thinned(x: Sequence[float], y: Sequence[float]) -> tuple[list[float], list[float]]:
    keep = thin(x, y, MAX_POINTS)
    return [float(x[i]) for i in keep], [float(y[i]) for i in keep]


# --------------------------------------------------------------------------- classification curves


def roc_plot(fpr: Sequence[float], tpr: Sequence[float], auc: float | None) -> Markup:
    axes = _Axes(0.0, 1.0, 0.0, 1.0)
    x, y = _thinned(fpr, tpr)
    parts = axes.frame("false positive rate", "true positive rate")
    parts.append(_line(axes.px(0), axes.py(0), axes.px(1), axes.py(1), MUTED, _DASH))
    parts.append(axes.polyline(x, y, BLUE))
    label = "model" if auc is None else f"model, AUC {auc:.3f}"
    entries = [(label, BLUE, False), ("chance", MUTED, True)]
    parts += _legend(axes, entries, [list(zip(x, y, strict=True)), _DIAGONAL])
    return _svg(axes.width, axes.height, "ROC curve", parts)


def pr_plot(
    recall: Sequence[float],
    precision: Sequence[float],
    ap: float | None,
    prevalence: float | None = None,
) -> Markup:
    axes = _Axes(0.0, 1.0, 0.0, 1.0)
    order = np.argsort(np.asarray(recall, dtype=float), kind="stable")
    r = [float(recall[i]) for i in order]
    p = [float(precision[i]) for i in order]
    x, y = _thinned(r, p)
    parts = axes.frame("recall", "precision")
    entries = [("model" if ap is None else f"model, AP {ap:.3f}", BLUE, False)]
    if prevalence is not None:
        py = axes.py(prevalence)
        parts.append(_line(axes.px(0), py, axes.px(1), py, MUTED, _DASH))
        entries.append((f"prevalence {prevalence:.3f}", MUTED, True))
    parts.append(axes.polyline(x, y, BLUE, step=True))
    parts += _legend(axes, entries, [list(zip(x, y, strict=True))])
    return _svg(axes.width, axes.height, "Precision-recall curve", parts)


def calibration_plot(bins: Sequence[dict[str, Any]], ece: float | None) -> Markup:
    """Reliability line over the non-empty bins, the diagonal, and bin counts in a strip below."""
    axes = _Axes(0.0, 1.0, 0.0, 1.0, height=300, bottom=46)
    strip_top, strip_height, total = 312, 64, 384
    used = [b for b in bins if b.get("count") and b.get("mean_pred") is not None]
    parts = axes.frame("mean predicted probability", "observed frequency")
    parts.append(_line(axes.px(0), axes.py(0), axes.px(1), axes.py(1), MUTED, _DASH))
    parts.append(axes.polyline([b["mean_pred"] for b in used], [b["frac_pos"] for b in used], BLUE))
    parts += _bin_points(axes, used)
    label = "model" if ece is None else f"model, ECE {ece:.3f}"
    entries = [(label, BLUE, False), ("perfectly calibrated", MUTED, True)]
    drawn = [(b["mean_pred"], b["frac_pos"]) for b in used]
    parts += _legend(axes, entries, [drawn, _DIAGONAL])
    parts += _count_strip(axes, bins, strip_top, strip_height)
    return _svg(axes.width, total, "Calibration (reliability) diagram", parts)


def _bin_points(axes: _Axes, used: Sequence[dict[str, Any]]) -> list[str]:
    """A dot per bin, its area growing with the bin's rows; few-row bins are hollow."""
    most = max((int(b["count"]) for b in used), default=1)
    parts = []
    for b in used:
        count = int(b["count"])
        radius = 2.5 + 3.5 * math.sqrt(count / most)
        fill = BLUE if count >= FEW_ROWS else "#fff"
        tip = f"predicted {b['mean_pred']:.3f}, observed {b['frac_pos']:.3f} over {count:,} rows"
        parts.append(
            f'<circle cx="{axes.px(b["mean_pred"]):.1f}" cy="{axes.py(b["frac_pos"]):.1f}" '
            f'r="{radius:.1f}" fill="{fill}" stroke="{BLUE}" stroke-width="1.5">'
            f"<title>{escape(tip)}</title></circle>"
        )
    return parts


def _count_strip(axes: _Axes, bins: Sequence[dict[str, Any]], top: int, height: int) -> list[str]:
    most = max((int(b.get("count") or 0) for b in bins), default=0) or 1
    base = top + height
    parts = [
        _text(axes.left - 6, top + 10, f"{most:,}", "end"),
        _text(axes.left - 6, base, "0", "end"),
    ]
    parts.append(_line(axes.left, base, axes.width - axes.right, base, MUTED))
    for b in bins:
        count = int(b.get("count") or 0)
        if not count:
            continue
        x0, x1 = axes.px(float(b["lo"])), axes.px(float(b["hi"]))
        h = count / most * (height - 4)
        tip = f"{float(b['lo']):.3g}–{float(b['hi']):.3g}: {count:,} rows"
        parts.append(
            f'<rect x="{x0 + 0.5:.1f}" y="{base - h:.1f}" width="{max(x1 - x0 - 1, 1):.1f}" '
            f'height="{h:.1f}" fill="{BLUE}" fill-opacity="0.35"><title>'
            f"{escape(tip)}</title></rect>"
        )
    parts.append(_text(axes.width - axes.right, top + 10, "rows per bin", "end"))
    return parts


def cost_plot(
    thresholds: Sequence[float],
    costs: Sequence[float],
    chosen: float | None,
    best: float | None,
    currency: str = "",
) -> Markup:
    pairs = sorted((t, c) for t, c in zip(thresholds, costs, strict=True) if 0 <= t <= 1)
    x, y = _thinned([p[0] for p in pairs], [p[1] for p in pairs]) if pairs else ([], [])
    high = max(y, default=1.0) or 1.0
    axes = _Axes(0.0, 1.0, 0.0, high * 1.05)
    parts = axes.frame("decision threshold", f"total cost{f' ({currency})' if currency else ''}")
    parts.append(axes.polyline(x, y, BLUE))
    entries = [("cost", BLUE, False)]
    for value, colour, name in ((best, GREEN, "cheapest"), (chosen, ORANGE, "chosen")):
        if value is None or not 0 <= value <= 1:
            continue
        px = axes.px(value)
        parts.append(_line(px, axes.top, px, axes.height - axes.bottom, colour, _DASH))
        entries.append((f"{name} {value:.3f}", colour, True))
    parts += _legend(axes, entries, [list(zip(x, y, strict=True))])
    return _svg(axes.width, axes.height, "Cost over decision thresholds", parts)


# --------------------------------------------------------------------------- bars


def slice_plot(slices: Sequence[dict[str, Any]], metric: str = "") -> Markup:
    """One horizontal bar per slice, whiskers for its interval, a dashed line at overall."""
    rows = [s for s in slices if s.get("value") is not None]
    values = [
        float(v)
        for s in rows
        for v in (s["value"], s.get("ci_low"), s.get("ci_high"), s.get("overall"))
        if v is not None
    ]
    low = min(0.0, *values) if values else 0.0
    high = max(values, default=1.0)
    high = 1.0 if high <= 1.0 and low >= 0 else high
    label_width, bar_h, gap = 200, 16, 10
    height = 14 + (bar_h + gap) * max(len(rows), 1) + 46
    axes = _Axes(low, high, 0.0, 1.0, width=680, height=height, left=label_width, right=52)
    parts = axes.frame(metric, "", y_ticks=False)
    bars, labels = [], []
    for i, piece in enumerate(rows):
        bar, label = _slice_bar(axes, piece, 14 + gap / 2 + i * (bar_h + gap), bar_h)
        bars += bar
        labels.append(label)
    return _svg(axes.width, height, f"Slices: {metric}", [*parts, *bars, *labels])


def _slice_bar(axes: _Axes, piece: dict[str, Any], y: float, h: float) -> tuple[list[str], str]:
    """The bar, whiskers and overall tick of one slice, and its value label (drawn last)."""
    name = str(piece.get("name", ""))
    short = name if len(name) <= 28 else name[:27] + "…"
    colour = RED if piece.get("worse") else BLUE
    x0, x1 = axes.px(max(axes.x0, 0.0)), axes.px(float(piece["value"]))
    tip = f"{name}: {piece['value']:.3f} (n = {piece.get('size', '?')})"
    parts = [
        _text(axes.left - 8, y + h - 4, short, "end", INK),
        f'<rect x="{min(x0, x1):.1f}" y="{y:.1f}" width="{abs(x1 - x0):.1f}" height="{h}" '
        f'fill="{colour}" fill-opacity="0.75"><title>{escape(tip)}</title></rect>',
    ]
    lo, hi = piece.get("ci_low"), piece.get("ci_high")
    end = x1
    if lo is not None and hi is not None:
        mid = y + h / 2
        parts.append(_line(axes.px(lo), mid, axes.px(hi), mid, INK))
        parts += [_line(axes.px(v), mid - 5, axes.px(v), mid + 5, INK) for v in (lo, hi)]
        end = max(end, axes.px(hi))
    overall = piece.get("overall")
    if overall is not None:
        ox = axes.px(float(overall))
        parts.append(_line(ox, y - 4, ox, y + h + 4, INK, ' stroke-dasharray="3 2"'))
    label = _text(end + 6, y + h - 4, f"{piece['value']:.3f}", "start", INK).replace(
        "<text ", '<text stroke="#fff" stroke-width="3" paint-order="stroke" ', 1
    )
    return parts, label


def histogram_plot(edges: Sequence[float], counts: Sequence[int], x_label: str) -> Markup:
    if len(edges) < 2:
        edges = [0.0, 1.0]
        counts = [0]
    most = max(counts, default=0) or 1
    axes = _Axes(float(edges[0]), float(edges[-1]), 0.0, most * 1.05, width=640)
    parts = axes.frame(x_label, "rows")
    for lo, hi, count in zip(edges[:-1], edges[1:], counts, strict=True):
        if not count:
            continue
        x0, x1 = axes.px(lo), axes.px(hi)
        y = axes.py(count)
        parts.append(
            f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0 - 1, 1):.1f}" '
            f'height="{axes.py(0) - y:.1f}" fill="{BLUE}" fill-opacity="0.75">'
            f"<title>{escape(f'{lo:.4g} to {hi:.4g}: {count:,}')}</title></rect>"
        )
    if edges[0] < 0 < edges[-1]:
        zero = axes.px(0.0)
        parts.append(_line(zero, axes.top, zero, axes.py(0), INK, _DASH))
    return _svg(axes.width, axes.height, f"Histogram of {x_label}", parts)


def drift_plot(
    feature: str, labels: Sequence[str], reference: Sequence[float], current: Sequence[float]
) -> Markup:
    """Grouped bars: the share of rows per bin in the reference and in the current data."""
    if not len(labels) == len(reference) == len(current):
        raise ValueError(
            f"drift_plot of {feature!r} needs one reference and one current share per label; "
            f"got {len(labels)} labels, {len(reference)} and {len(current)} shares."
        )
    n = max(len(labels), 1)
    high = max([*reference, *current, 0.0]) or 1.0
    axes = _Axes(0.0, float(n), 0.0, high * 1.1, width=440, height=240, bottom=58)
    parts = axes.frame("", "share of rows", x_ticks=False)
    slot = (axes.px(1) - axes.px(0)) * 0.8
    for i, label in enumerate(labels):
        left = axes.px(i) + (axes.px(1) - axes.px(0)) * 0.1
        for k, (share, colour) in enumerate(((reference[i], MUTED), (current[i], ORANGE))):
            y = axes.py(share)
            parts.append(
                f'<rect x="{left + k * slot / 2:.1f}" y="{y:.1f}" width="{slot / 2:.1f}" '
                f'height="{axes.py(0) - y:.1f}" fill="{colour}" fill-opacity="0.8"/>'
            )
        short = label if len(label) <= 10 else label[:9] + "…"
        parts.append(_text(left + slot / 2, axes.py(0) + 14, short, "middle"))
    bars = [
        [(i + dx, 0.0), (i + dx, max(r, c))]
        for i, (r, c) in enumerate(zip(reference, current, strict=True))
        for dx in (0.15, 0.5, 0.85)
    ]
    parts += _legend(axes, [("reference", MUTED, False), ("current", ORANGE, False)], bars)
    return _svg(axes.width, axes.height, f"Drift of {feature}", parts)
