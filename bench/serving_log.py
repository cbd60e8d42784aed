"""Did the prediction log keep every answered row? The check after each run of our server.

``LogWatch`` follows one run of ``modelyard serve`` from one project:

1. before the server starts, it lists the segments already in the project's
   log folder (``<project>/.modelyard/predictions/bench/date=…/*.parquet``);
2. after the last request, once nothing is in flight, ``scrape`` reads ``/metrics``: the
   requests it answered with 200 and, where the server reports them, the
   log's counted drops (with several workers a scrape sees one of them, so
   the answered count comes from the clients instead: every completed
   response wrk and the answer check saw, plus at most one in-flight request
   per connection at the end of each wrk run);
3. after the server stopped (SIGTERM: it drains and writes what it buffered),
   ``finish`` counts the rows of the new segments with pyarrow and compares
   their scores and inputs with in-process ``Booster.predict`` and the sent row.

With the log on, the rows must equal the answered requests minus the counted
drops; with it off, no segment may appear.
"""

from __future__ import annotations

import math
import re
import time
import urllib.error
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq
from harness import http_text
from serving_model import MODEL, N_FEATURES, Model
from serving_servers import TOLERANCE

METRIC_LINE = re.compile(r"^([A-Za-z_:][\w:]*)(?:\{([^}]*)\})?\s+(\S+)$", re.M)


@dataclass
class LogCheck:
    """What one run of our server left in its prediction log, against what it answered."""

    label: str
    logging: bool
    segments: int
    rows: int
    answered: int | None  # 200s the server counted (one worker), else None
    client_answers: int  # completed responses the clients saw
    in_flight_slack: int  # answers the server may have sent after wrk stopped counting
    dropped: int | None  # the log's counted drops, None when /metrics does not report them
    score_error: float  # max |logged score - Booster.predict|, nan without rows
    input_error: float  # max |logged input - sent value| over the first and last feature

    @property
    def expected_rows(self) -> tuple[int, int]:
        """The fewest and the most rows the log may hold."""
        if not self.logging:
            return 0, 0
        dropped = self.dropped or 0
        if self.answered is not None:
            return self.answered - dropped, self.answered - dropped
        return self.client_answers - dropped, self.client_answers + self.in_flight_slack

    @property
    def passed(self) -> bool:
        low, high = self.expected_rows
        values_ok = self.rows == 0 or (
            self.score_error <= TOLERANCE and self.input_error <= TOLERANCE
        )
        return low <= self.rows <= high and values_ok


@dataclass
class LogWatch:
    """One run of our server: the log folder before it, its counters after it."""

    label: str
    project: Path
    logging: bool
    workers: int
    before: set[Path] = field(default_factory=set)
    answered: int | None = None
    dropped: int | None = None
    client_answers: int = 0
    in_flight_slack: int = 0

    def __post_init__(self) -> None:
        self.before = set(segment_files(self.project))

    def count(self, responses: int, connections: int) -> None:
        """Add one client run: completed responses, and connections that may have one more."""
        self.client_answers += responses
        self.in_flight_slack += connections

    def scrape(self, base: str, settle_seconds: float = 10.0) -> None:
        """Read the server's counters from ``/metrics`` once nothing is in flight.

        A client that stops leaves requests the server has read but not yet
        answered (up to one per connection); they are answered, counted and
        logged after wrk exits, so read until two reads agree and none is pending.
        """
        deadline, last = time.monotonic() + settle_seconds, None
        while True:
            try:
                counters = read_metrics(http_text(f"{base}/metrics"))
            except (urllib.error.URLError, OSError) as exc:
                print(f"  {self.label}: /metrics unreadable ({exc}); counting client answers")
                return
            if (counters == last and counters.pending == 0) or time.monotonic() > deadline:
                break
            last = counters
            time.sleep(0.2)
        if self.workers == 1:
            self.answered, self.dropped = counters.answered, counters.dropped

    def finish(self, model: Model) -> LogCheck:
        """Count the rows of the segments written since the watch began (server stopped)."""
        files = sorted(set(segment_files(self.project)) - self.before)
        rows = sum(pq.read_metadata(f).num_rows for f in files)
        score_error = input_error = math.nan
        if rows:
            first, last = "f00", f"f{N_FEATURES - 1:02d}"
            table = ds.dataset([str(f) for f in files], format="parquet").to_table(
                columns=["score", first, last]
            )
            score_error = _max_abs(table.column("score").to_pylist(), model.expected)
            input_error = max(
                _max_abs(table.column(first).to_pylist(), model.row[0]),
                _max_abs(table.column(last).to_pylist(), model.row[-1]),
            )
        return LogCheck(
            self.label,
            self.logging,
            len(files),
            rows,
            self.answered,
            self.client_answers,
            self.in_flight_slack,
            self.dropped,
            score_error,
            input_error,
        )


def log_folder(project: Path) -> Path:
    from modelyard.project import STATE_FOLDER

    return project / STATE_FOLDER / "predictions" / MODEL


def segment_files(project: Path) -> list[Path]:
    """The finished segments (temporary files start with a dot and end in .tmp)."""
    return sorted(log_folder(project).glob("date=*/*.parquet"))


@dataclass(frozen=True)
class Counters:
    """What one ``/metrics`` read says: 200s, requests and rows pending, the log's drops."""

    answered: int
    pending: int
    dropped: int | None  # None: the server does not report the log's drops


def read_metrics(text: str) -> Counters:
    """Requests answered with 200, requests in flight plus rows queued, the log's drops.

    Drops are read from any ``modelyard_*`` series about the log whose name or
    labels say "drop" (``modelyard_prediction_log_rows_total{state="dropped"}``,
    ``modelyard_prediction_log_dropped_total``, …).
    """
    answered, pending, dropped, reported = 0, 0, 0, False
    for name, labels, value in METRIC_LINE.findall(text):
        if name == "modelyard_requests_total" and 'code="200"' in labels:
            answered += int(float(value))
        elif name in ("modelyard_in_flight_requests", "modelyard_queue_rows"):
            pending += int(float(value))
        elif name.startswith("modelyard_") and "log" in name and "drop" in name + labels:
            dropped += int(float(value))
            reported = True
    return Counters(answered, pending, dropped if reported else None)


def _max_abs(values: list[float | None], expected: float) -> float:
    """Largest distance from ``expected``; a missing value counts as infinitely far."""
    return max((math.inf if v is None else abs(v - expected) for v in values), default=0.0)


def describe(check: LogCheck) -> str:
    """One line: what the log holds, what it should hold, and the drops."""
    low, high = check.expected_rows
    expected = f"{low:,}" if low == high else f"{low:,}-{high:,}"
    if check.answered is not None:
        source = f"{check.answered:,} answered (/metrics)"
    else:
        source = f"{check.client_answers:,} answers seen by the clients"
    drops = "not reported" if check.dropped is None else f"{check.dropped:,}"
    mark = "pass" if check.passed else "FAIL"
    if not check.logging:
        return f"[{mark}] {check.label}, log off: {check.segments} segments, {check.rows:,} rows"
    values = (
        f"; score - Booster.predict max {check.score_error:.1e}, inputs {check.input_error:.1e}"
        if check.rows
        else ""
    )
    return (
        f"[{mark}] {check.label}, log on: {check.rows:,} rows in {check.segments} segments; "
        f"{source}, drops {drops}: expected {expected}{values}"
    )
