"""System health of a deployment: throughput and latency from the log, the rest from /metrics.

    summary = health_summary(project, "loans", window="15m", metrics_url="http://host:8080")
    summary.requests_per_second, summary.latency_p99_ms     # the prediction log's last 15 min
    summary.error_rate, summary.errors_by_type              # the server's counters
    summary.cpu_seconds, summary.rss_bytes                  # summed over its worker processes
    summary.values()   # {"throughput_rps", "p99_latency_ms", "error_rate"} for alert rules

Throughput counts the log's rows and distinct request ids over the window
(scaled up by the spec's sampling rate, since a sampled log holds only a
share of the requests); latency percentiles are over requests, each counted
once. Errors, CPU time and memory come from the server's own Prometheus
series (``modelyard.serve.metrics``): counters since each worker started,
so ``error_rate`` is the share of 5xx answers since then (4xx answers, the
client's mistakes, are ``client_error_rate``). A server started with
``--workers N`` answers each scrape from one process, labelled with its
``pid``; ``health_summary`` scrapes a few times and keeps the latest
series of every pid it met.

Alert rules need the error rate over their window, not since start:
``windowed_error_rate`` keeps each scrape's counters (``ScrapeHistory``) and
subtracts the scrape taken one window earlier (``windowed_errors``).

The parser reads the Prometheus text format (what ``/metrics`` serves);
``prometheus_client`` is only a development dependency.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.compute as pc

from modelyard.errors import DataError, InvalidInputError, ServingError
from modelyard.files import write_json_atomically
from modelyard.monitor.log_files import model_folder, read_predictions
from modelyard.spec import parse_duration

if TYPE_CHECKING:
    from modelyard.project import Project

__all__ = [
    "CounterScrape",
    "HealthSummary",
    "Sample",
    "ScrapeHistory",
    "WindowedErrors",
    "WorkerHealth",
    "health_summary",
    "metrics_url",
    "parse_metrics",
    "scrape",
    "windowed_error_rate",
    "windowed_errors",
]

log = logging.getLogger("modelyard.monitor")

Sample = tuple[dict[str, str], float]
"""One sample of a series: its labels and its value."""

#: Scrapes per summary: each reaches one worker process, so several meet them all.
WORKER_SCRAPES = 8

_SAMPLE = re.compile(
    r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    r"(?:\{(?P<labels>.*)\})?"
    r"[ \t]+(?P<value>\S+)(?:[ \t]+-?\d+)?[ \t]*"
)
_LABEL = re.compile(r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"((?:[^"\\]|\\.)*)"[ \t]*(?:,|$)')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


# ---------------------------------------------------------------- the scrape


def parse_metrics(text: str) -> dict[str, list[Sample]]:
    """Prometheus text format → every sample, by sample name (``x_bucket``, ``x_sum``, …)."""
    found: dict[str, list[Sample]] = defaultdict(list)
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.fullmatch(line)
        labels = _labels(match.group("labels") or "") if match else None
        value = _value(match.group("value")) if match else None
        if match is None or labels is None or value is None:
            raise DataError(
                f"Line {number} of the metrics is not in the Prometheus text format; "
                "is the URL a modelyard server's /metrics?"
            )
        found[match.group("name")].append((labels, value))
    return dict(found)


def _labels(text: str) -> dict[str, str] | None:
    labels: dict[str, str] = {}
    position = 0
    while position < len(text):
        match = _LABEL.match(text, position)
        if match is None or match.end() == position:
            return None
        labels[match.group(1)] = re.sub(r"\\[\\\"n]", lambda m: _UNESCAPE[m.group()], match[2])
        position = match.end()
    return labels


def _value(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def metrics_url(url: str) -> str:
    """``http://host:port`` → ``http://host:port/metrics`` (a URL ending in /metrics is kept)."""
    if not url.startswith(("http://", "https://")):
        raise InvalidInputError(
            f"The server URL must start with http:// or https://, as in http://127.0.0.1:8080; "
            f"got {url!r}."
        )
    base = url.rstrip("/")
    return base if base.endswith("/metrics") else f"{base}/metrics"


def scrape(url: str, *, timeout: float = 5.0) -> dict[str, list[Sample]]:
    """Read a running server's ``/metrics`` (``url`` may be the server's base URL)."""
    import httpx

    target = metrics_url(url)
    try:
        response = httpx.get(target, timeout=timeout)
    except httpx.HTTPError as exc:
        raise ServingError(
            f"Cannot read {target}: {exc or type(exc).__name__}. Check that the server runs "
            "there (`modelyard serve`), or pass its address with --url."
        ) from None
    if response.status_code != 200:
        raise ServingError(
            f"{target} answered HTTP {response.status_code}; a modelyard server answers 200 "
            "there. Check the address."
        )
    return parse_metrics(response.text)


def scrape_workers(url: str, scrapes: int = WORKER_SCRAPES) -> dict[str, dict[str, list[Sample]]]:
    """Several scrapes, each on a new connection; the latest samples of each worker, by pid."""
    workers: dict[str, dict[str, list[Sample]]] = {}
    for _ in range(scrapes):
        for pid, samples in _by_pid(scrape(url)).items():
            workers[pid] = samples
    return workers


def _by_pid(samples: dict[str, list[Sample]]) -> dict[str, dict[str, list[Sample]]]:
    split: dict[str, dict[str, list[Sample]]] = defaultdict(lambda: defaultdict(list))
    for name, found in samples.items():
        for labels, value in found:
            split[labels.get("pid", "")][name].append((labels, value))
    return {pid: dict(series) for pid, series in split.items()}


# ---------------------------------------------------------------- the summary


@dataclass(frozen=True)
class WorkerHealth:
    """One server process, from its own series (counters since it started)."""

    pid: str
    requests: int
    server_errors: int
    client_errors: int
    errors_by_type: dict[str, int]
    cpu_seconds: float
    rss_bytes: int
    uptime_seconds: float | None
    model: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class HealthSummary:
    """Throughput and latency over a window of the log; errors, CPU and memory per worker."""

    model: str
    start: datetime
    end: datetime
    sample_rate: float
    rows: int
    requests: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    url: str | None = None
    workers: tuple[WorkerHealth, ...] = field(default=())

    @property
    def window_seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.sample_rate / self.window_seconds

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.sample_rate / self.window_seconds

    @property
    def requests_total(self) -> int:
        return sum(w.requests for w in self.workers)

    @property
    def error_rate(self) -> float | None:
        """5xx answers over all answers, since the workers started (None: nothing scraped)."""
        total = self.requests_total
        return sum(w.server_errors for w in self.workers) / total if total else None

    @property
    def client_error_rate(self) -> float | None:
        total = self.requests_total
        return sum(w.client_errors for w in self.workers) / total if total else None

    @property
    def errors_by_type(self) -> dict[str, int]:
        merged: dict[str, int] = defaultdict(int)
        for worker in self.workers:
            for kind, count in worker.errors_by_type.items():
                merged[kind] += count
        return dict(sorted(merged.items()))

    @property
    def cpu_seconds(self) -> float | None:
        return sum(w.cpu_seconds for w in self.workers) if self.workers else None

    @property
    def rss_bytes(self) -> int | None:
        return sum(w.rss_bytes for w in self.workers) if self.workers else None

    def values(self) -> dict[str, float | None]:
        """The system metrics alert rules name, by their catalogue names."""
        return {
            "throughput_rps": self.requests_per_second,
            "p99_latency_ms": self.latency_p99_ms,
            "error_rate": self.error_rate,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "window_seconds": self.window_seconds,
            "sample_rate": self.sample_rate,
            "rows": self.rows,
            "requests": self.requests,
            "rows_per_second": self.rows_per_second,
            "requests_per_second": self.requests_per_second,
            "latency_p50_ms": self.latency_p50_ms,
            "latency_p99_ms": self.latency_p99_ms,
            "url": self.url,
            "requests_total": self.requests_total,
            "error_rate": self.error_rate,
            "client_error_rate": self.client_error_rate,
            "errors_by_type": self.errors_by_type,
            "cpu_seconds": self.cpu_seconds,
            "rss_bytes": self.rss_bytes,
            "workers": [vars(w) for w in self.workers],
        }


def health_summary(
    project: Project,
    model: str,
    *,
    window: str = "15m",
    metrics_url: str | None = None,
    now: datetime | None = None,
) -> HealthSummary:
    """Throughput and latency over the last ``window`` of the log, and, given the server's
    URL, its error rate, errors by type, CPU time and memory, per worker and summed."""
    try:
        seconds = parse_duration(window)
    except ValueError as exc:
        raise InvalidInputError(f"window {exc}.") from None
    end = _utc(now or datetime.now(UTC))
    start = end - timedelta(seconds=seconds)
    logged = read_predictions(
        project, model, since=start, until=end, columns=["request_id", "latency_ms"]
    )
    latency = _request_latency(logged)
    p50, p99 = (
        (float(q) for q in np.quantile(latency, [0.5, 0.99])) if len(latency) else (None, None)
    )
    workers = _workers(metrics_url) if metrics_url else ()
    return HealthSummary(
        model=model,
        start=start,
        end=end,
        sample_rate=project.spec.monitoring.log.sample_rate,
        rows=logged.num_rows,
        requests=len(latency),
        latency_p50_ms=p50,
        latency_p99_ms=p99,
        url=metrics_url,
        workers=workers,
    )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _request_latency(logged: Any) -> np.ndarray:
    """Milliseconds per request: every row of a request carries the request's latency
    (rows scored in batch carry none and are left out)."""
    if logged.num_rows == 0:
        return np.empty(0)
    per_request = logged.group_by("request_id").aggregate([("latency_ms", "max")])
    values = pc.cast(per_request.column("latency_ms_max"), "float64")
    found = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)
    return found[np.isfinite(found)]


def _workers(url: str) -> tuple[WorkerHealth, ...]:
    now = time.time()
    found = [_worker(pid, series, now) for pid, series in scrape_workers(url).items()]
    return tuple(sorted(found, key=lambda w: w.pid))


def _worker(pid: str, series: dict[str, list[Sample]], now: float) -> WorkerHealth:
    def total(name: str, keep: Any = lambda labels: True) -> float:
        return sum(v for labels, v in series.get(name, []) if keep(labels) and math.isfinite(v))

    def code(prefix: str) -> Any:
        return lambda labels: labels.get("code", "").startswith(prefix)

    errors = {
        labels.get("type", "?"): int(value)
        for labels, value in series.get("modelyard_errors_total", [])
    }
    started = series.get("process_start_time_seconds")
    info = series.get("modelyard_model_info", [({}, 0.0)])[0][0]
    return WorkerHealth(
        pid=pid,
        requests=int(total("modelyard_requests_total")),
        server_errors=int(total("modelyard_requests_total", code("5"))),
        client_errors=int(total("modelyard_requests_total", code("4"))),
        errors_by_type=errors,
        cpu_seconds=total("process_cpu_seconds_total"),
        rss_bytes=int(total("process_resident_memory_bytes")),
        uptime_seconds=now - started[0][1] if started else None,
        model=info.get("model"),
        version=info.get("version"),
    )


# ---------------------------------------------------------------- the error rate over a window


@dataclass(frozen=True)
class CounterScrape:
    """Each worker's counters at one moment: pid → (answered requests, 5xx answers)."""

    at: datetime
    workers: dict[str, tuple[int, int]]

    @classmethod
    def of(cls, summary: HealthSummary) -> CounterScrape:
        return cls(summary.end, {w.pid: (w.requests, w.server_errors) for w in summary.workers})


@dataclass(frozen=True)
class WindowedErrors:
    """The requests answered between two scrapes ``span_seconds`` apart, and the 5xx among them."""

    requests: int
    server_errors: int
    span_seconds: float

    @property
    def error_rate(self) -> float | None:
        return self.server_errors / self.requests if self.requests else None


def windowed_errors(
    history: Sequence[CounterScrape], current: CounterScrape, window_seconds: float
) -> WindowedErrors:
    """``current`` minus the newest earlier scrape taken at least ``window_seconds`` before it.

    While the history is shorter than the window, the oldest earlier scrape is
    used and ``span_seconds`` says how much time the difference covers (0: no
    earlier scrape, no rate yet). A worker whose counters went down (restarted)
    or that the earlier scrape did not meet (started since) counts all its
    answers; the answers of a worker that ended in between are lost.
    """
    earlier = sorted((s for s in history if s.at < current.at), key=lambda s: s.at)
    if not earlier:
        return WindowedErrors(0, 0, 0.0)
    cutoff = current.at - timedelta(seconds=window_seconds)
    old_enough = [s for s in earlier if s.at <= cutoff]
    then = old_enough[-1] if old_enough else earlier[0]
    requests = errors = 0
    for pid, (answered, failed) in current.workers.items():
        answered_then, failed_then = then.workers.get(pid, (0, 0))
        if answered < answered_then or failed < failed_then:  # a restart: counting from zero
            answered_then = failed_then = 0
        requests += answered - answered_then
        errors += failed - failed_then
    return WindowedErrors(requests, errors, (current.at - then.at).total_seconds())


class ScrapeHistory:
    """The counter scrapes of one model's server, kept between monitor runs in a JSON file.

    ``<project>/.modelyard/monitor/scrapes/<model>.json``, rewritten atomically
    on each save. It holds one server URL's scrapes: another URL starts afresh.
    """

    def __init__(self, path: Path, url: str) -> None:
        self.path, self.url = path, metrics_url(url)

    @classmethod
    def for_model(cls, project: Project, model: str, url: str) -> ScrapeHistory:
        from modelyard.project import STATE_FOLDER

        folder = model_folder(project.root / STATE_FOLDER / "monitor" / "scrapes", model)
        return cls(folder.parent / f"{folder.name}.json", url)

    def load(self) -> list[CounterScrape]:
        """The kept scrapes, oldest first; none when there is no file or it is another URL's."""
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
            if document["url"] != self.url:
                return []
            return [_scrape_from_json(item) for item in document["scrapes"]]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise DataError(
                f"Cannot read the scrape history {self.path}: {exc.strerror}. "
                "Check its permissions."
            ) from None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # a hand edit
            log.warning("Scrape history %s is damaged (%r); starting a new one.", self.path, exc)
            return []

    def save(self, scrapes: Sequence[CounterScrape], *, keep_seconds: float) -> None:
        """Keep the last ``keep_seconds`` of ``scrapes`` and the newest scrape before them
        (where a window that long starts); a scrape replaces one taken at the same time."""
        by_time = {s.at: s for s in scrapes}
        ordered = [by_time[at] for at in sorted(by_time)]
        if ordered:
            cutoff = ordered[-1].at - timedelta(seconds=keep_seconds)
            older = [s for s in ordered if s.at <= cutoff]
            ordered = [*older[-1:], *(s for s in ordered if s.at > cutoff)]
        document = {"url": self.url, "scrapes": [_scrape_to_json(s) for s in ordered]}
        write_json_atomically(self.path, document, make_parents=True)


def windowed_error_rate(
    project: Project,
    model: str,
    summary: HealthSummary,
    window_seconds: float,
    *,
    keep_seconds: float,
) -> WindowedErrors:
    """``summary``'s scrape against the one kept from ``window_seconds`` before; keeps it too.

    ``keep_seconds`` bounds the history: the longest window any rule reads.
    """
    if summary.url is None:
        raise InvalidInputError(
            "A windowed error rate compares scrapes of the server's /metrics: give "
            "health_summary its metrics_url."
        )
    history = ScrapeHistory.for_model(project, model, summary.url)
    current = CounterScrape.of(summary)
    kept = history.load()
    history.save([*kept, current], keep_seconds=max(keep_seconds, window_seconds))
    return windowed_errors(kept, current, window_seconds)


def _scrape_to_json(scrape: CounterScrape) -> dict[str, Any]:
    workers = {pid: list(counts) for pid, counts in scrape.workers.items()}
    return {"at": scrape.at.isoformat(), "workers": workers}


def _scrape_from_json(item: dict[str, Any]) -> CounterScrape:
    workers = {str(pid): (int(n), int(e)) for pid, (n, e) in item["workers"].items()}
    return CounterScrape(_utc(datetime.fromisoformat(item["at"])), workers)
