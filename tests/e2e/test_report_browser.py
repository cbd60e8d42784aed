"""The HTML report renders in headless Chromium without console errors, and a screenshot of
it shows the plots.

Needs Playwright's Python package (the ``dev`` extra) and Debian's Chromium at
``/usr/bin/chromium`` (``apt-get install -y chromium``); Playwright's own
browser download is not used. Without them the test is skipped, or fails when
``MODELYARD_REQUIRE_SERVICES=1`` (as in CI). Set ``MODELYARD_REPORT_SCREENSHOT``
to a path to keep the full-page screenshot.
"""

from __future__ import annotations

import os
import shutil
import struct
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelyard.data.demo import DEMO_SPEC, make_loans
from modelyard.data.encoding import FeatureEncoder
from modelyard.evaluate.fairness import fairness_report
from modelyard.evaluate.report import build_evaluation, write_report
from modelyard.evaluate.robustness import robustness_report
from modelyard.evaluate.slices import named_slices, worst_slices
from modelyard.spec import parse_spec
from modelyard.train import flavors
from modelyard.train.bundle import ModelBundle
from modelyard.train.families import FAMILIES, TrainingData

CHROMIUM = Path(os.environ.get("MODELYARD_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FEATURES = ["age", "income", "credit_score", "debt_to_income", "purpose", "home_ownership"]
SLICES = """\
slices:
  - name: under 25
    where: age < 25
  - name: renters
    where: home_ownership == 'RENT'
    goal: {name: recall, threshold: 0.5}
"""

pytestmark = pytest.mark.slow


def _missing(reason: str) -> None:
    message = f"{reason}: the browser test needs playwright (dev extra) and Debian's chromium"
    if os.environ.get("MODELYARD_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}. MODELYARD_REQUIRE_SERVICES=1, so this is a failure.")
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed")
    if not CHROMIUM.is_file():
        _missing(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame = make_loans(4_000, recent_share=0.0)
    train, test = frame.iloc[:2_500], frame.iloc[2_500:].reset_index(drop=True)
    encoder = FeatureEncoder.fit(train, FEATURES)
    X, y = encoder.transform(train), train["default"].to_numpy()
    logistic = FAMILIES["logistic"]
    model = logistic.fit(
        TrainingData(X, y, X, y, encoder, "binary"), logistic.defaults("binary", 0)
    )
    bundle = ModelBundle.from_bytes(
        "sklearn", flavors.dump("sklearn", model), encoder, "binary", "default"
    )
    bundle.threshold = 0.2
    scores, labels = bundle.score_frame(test), test["default"].to_numpy()
    decided = (scores >= bundle.threshold).astype(int)
    spec = parse_spec(DEMO_SPEC + SLICES)
    slices = named_slices(test, spec, labels, scores, decided, "roc_auc", n_boot=100)
    slices += worst_slices(test, FEATURES, labels, scores, decided, "recall", top=4, n_boot=100)
    fairness = fairness_report(test, ["gender"], labels, decided, scores=scores, metric="roc_auc")
    drift = [
        {"feature": "purpose", "labels": ["debt", "card", "home", "car", "other"],
         "reference": [0.4, 0.2, 0.15, 0.1, 0.15], "current": [0.3, 0.2, 0.1, 0.1, 0.3],
         "statistics": {"psi": 0.27}, "drifted": True},
    ]  # fmt: skip
    evaluation = build_evaluation(
        spec,
        model={"name": "loans", "version": 3, "flavor": "sklearn", "digest": "0" * 64},
        data={"ref": "loans@1 (test split)"},
        y=labels,
        scores=scores,
        threshold=0.2,
        slices=slices,
        robustness=robustness_report(bundle, test, labels, metric="roc_auc", reference=train),
        fairness=fairness,
        drift=drift,
    )
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_report(evaluation, path, path.with_suffix(".json"))
    return path


def test_the_report_renders_without_errors_and_shows_its_plots(
    browser: Any, report: Path, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    problems: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(report.as_uri(), wait_until="load")
    assert problems == []
    assert all(url.startswith(("file:", "data:")) for url in requests), requests

    plots = page.locator("svg.plot")
    assert plots.count() == 7  # ROC, PR, calibration, cost, slices (roc_auc, recall), drift
    for i in range(plots.count()):
        plot = plots.nth(i)
        box = plot.bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 60
        pixels = _pixels(plot.screenshot(path=str(tmp_path / f"plot{i}.png")))
        # axes, grid and text are grey; only the drawn data is in colour
        coloured = sum(n for (r, g, b), n in pixels.items() if max(r, g, b) - min(r, g, b) > 60)
        assert coloured > 300, f"plot {i} shows no data ({coloured} coloured pixels)"

    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    width, height = _size(shot.read_bytes())
    assert width == 1200 and height > 3_000
    assert shot.stat().st_size > 100_000
    if keep := os.environ.get("MODELYARD_REPORT_SCREENSHOT"):
        shutil.copyfile(shot, keep)
    page.close()


# --------------------------------------------------------------------------- PNG, by hand


def _chunks(png: bytes) -> Iterator[tuple[bytes, bytes]]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    at = 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        yield png[at + 4 : at + 8], png[at + 8 : at + 8 + length]
        at += 12 + length


def _size(png: bytes) -> tuple[int, int]:
    kind, header = next(_chunks(png))
    assert kind == b"IHDR"
    width, height = struct.unpack(">II", header[:8])
    return int(width), int(height)


def _pixels(png: bytes) -> Counter[tuple[int, int, int]]:
    """How many pixels of each RGB colour an 8-bit RGB(A), non-interlaced PNG holds."""
    chunks = list(_chunks(png))
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    step = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(data for kind, data in chunks if kind == b"IDAT"))
    stride = width * step
    previous = bytearray(stride)
    found: Counter[tuple[int, int, int]] = Counter()
    for row in range(height):
        start = row * (stride + 1)
        line = _unfilter(raw[start], bytearray(raw[start + 1 : start + 1 + stride]), previous, step)
        found.update(zip(line[0::step], line[1::step], line[2::step], strict=True))
        previous = line
    return found


def _unfilter(kind: int, line: bytearray, up: bytearray, step: int) -> bytearray:
    for i in range(len(line)):
        left = line[i - step] if i >= step else 0
        corner = up[i - step] if i >= step else 0
        if kind == 1:
            line[i] = (line[i] + left) & 0xFF
        elif kind == 2:
            line[i] = (line[i] + up[i]) & 0xFF
        elif kind == 3:
            line[i] = (line[i] + (left + up[i]) // 2) & 0xFF
        elif kind == 4:
            p = left + up[i] - corner
            pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - corner)
            near = left if pa <= pb and pa <= pc else up[i] if pb <= pc else corner
            line[i] = (line[i] + near) & 0xFF
    return line
