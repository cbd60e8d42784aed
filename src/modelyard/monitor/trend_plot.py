"""Line plots of one value per sub-window, as inline SVG (the monitoring report's trends).

    trend_plot("Label coverage", ["03-02", "03-03"], [("labelled", [0.4, None])], unit=True)

A None or non-finite value leaves a gap in the line; ``limits`` are dashed horizontal lines
(the first grey, the second red). Colours, font and ticks are ``evaluate.plots``'s.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

from modelyard.evaluate import plots

__all__ = ["trend_plot"]

_WIDTH, _HEIGHT, _LEFT, _RIGHT, _TOP, _BOTTOM = 440, 240, 56, 18, 28, 46
_LIMIT_COLOURS = (plots.MUTED, plots.RED)


def trend_plot(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    limits: Sequence[tuple[str, float]] = (),
    unit: bool = False,
) -> Markup:
    """One value per sub-window as a line with dots (a gap where it is None); dashed
    horizontal ``limits``. ``unit`` fixes the scale to [0, 1]."""
    values = [v for _, vs in series for v in vs if v is not None and math.isfinite(v)]
    low = 0.0 if unit else min([0.0, *values])
    high = 1.0 if unit else (max([*values, *(v for _, v in limits)], default=1.0) * 1.1 or 1.0)
    n = max(len(labels), 1)
    inner_w, inner_h = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM

    def px(i: int) -> float:
        return _LEFT + (i + 0.5) / n * inner_w

    def py(v: float) -> float:
        return _TOP + inner_h - (v - low) / ((high - low) or 1.0) * inner_h

    parts = [_text(_LEFT, 16, title, "start", plots.INK)]
    for t in plots.ticks(low, high):
        parts.append(_line(_LEFT, py(t), _WIDTH - _RIGHT, py(t), plots.GRID))
        parts.append(_text(_LEFT - 6, py(t) + 4, plots.tick_label(t), "end"))
    widest = 6.6 * max((len(label) for label in labels), default=1) + 12
    every = math.ceil(len(labels) / max(int(inner_w // widest), 1))
    for i, label in enumerate(labels):
        if i % every == 0:
            parts.append(_text(px(i), _TOP + inner_h + 16, label, "middle"))
    parts.append(
        f'<rect x="{_LEFT}" y="{_TOP}" width="{inner_w}" height="{inner_h}" fill="none" '
        f'stroke="{plots.MUTED}" stroke-width="1"/>'
    )
    for (name, value), colour in zip(limits, _LIMIT_COLOURS, strict=False):
        parts.append(_line(_LEFT, py(value), _WIDTH - _RIGHT, py(value), colour, dashed=True))
        parts.append(_text(_WIDTH - _RIGHT - 4, py(value) - 4, f"{name} {value:g}", "end"))
    for name, vs in series:
        parts += _series(name, vs, px, py)
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot trend" role="img" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}" width="{_WIDTH}" height="{_HEIGHT}">'
        f"<title>{escape(title)}</title>{''.join(parts)}</svg>"
    )


def _series(
    name: str,
    values: Sequence[float | None],
    px: Callable[[int], float],
    py: Callable[[float], float],
) -> list[str]:
    parts, run = [], []
    for i, v in enumerate([*values, None]):
        if v is not None and math.isfinite(v):
            run.append(f"{px(i):.1f},{py(v):.1f}")
            parts.append(
                f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="3" fill="{plots.BLUE}">'
                f"<title>{escape(f'{name}: {v:.4g}')}</title></circle>"
            )
            continue
        if len(run) > 1:
            parts.append(
                f'<polyline points="{" ".join(run)}" fill="none" stroke="{plots.BLUE}" '
                'stroke-width="2" stroke-linejoin="round"/>'
            )
        run = []
    return parts


def _line(x1: float, y1: float, x2: float, y2: float, colour: str, *, dashed: bool = False) -> str:
    dash = ' stroke-dasharray="4 3"' if dashed else ""
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" '
        f'stroke-width="1"{dash}/>'
    )


def _text(x: float, y: float, text: str, anchor: str, colour: str = plots.MUTED) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{colour}" '
        f"{plots.FONT}>{escape(text)}</text>"
    )
