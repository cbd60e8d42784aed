"""Prometheus metrics of one server process, cheap enough for the hot path.

Counters and histograms are plain Python numbers updated without locks (the
event loop is single-threaded) and rendered in the Prometheus text format on
``GET /metrics``; an observation costs a ``bisect`` and two additions, a
fraction of a microsecond, where a general-purpose client library takes its
locks on every call. With ``--workers N`` each worker reports its own series,
labelled with its ``pid``, the way a scrape of a pod sees one process.
"""

from __future__ import annotations

import os
import resource
import time
from bisect import bisect_left
from collections import Counter
from pathlib import Path

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Histogram:
    """Cumulative-bucket histogram in the Prometheus sense."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str, labels: str) -> list[str]:
        sep = "," if labels else ""
        out, running = [], 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            running += count
            out.append(f'{name}_bucket{{{labels}{sep}le="{bound:g}"}} {running}')
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.count}')
        out.append(f"{name}_sum{{{labels}}} {self.sum:.6f}")
        out.append(f"{name}_count{{{labels}}} {self.count}")
        return out


class ServerMetrics:
    """Everything ``/metrics`` reports for one worker process."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.started = time.time()
        self.requests: Counter[tuple[str, int]] = Counter()  # (protocol, status)
        self.latency: dict[str, Histogram] = {}
        self.errors: Counter[str] = Counter()
        self.rows = 0
        self.extra_fields = 0
        self.batches = Histogram(BATCH_BUCKETS)
        self.in_flight = 0
        self.model: tuple[str, int, str] = ("", 0, "")
        self.reloads = 0

    def request(self, protocol: str, status: int, seconds: float) -> None:
        self.requests[(protocol, status)] += 1
        histogram = self.latency.get(protocol)
        if histogram is None:
            histogram = self.latency[protocol] = Histogram(LATENCY_BUCKETS)
        histogram.observe(seconds)

    def batch(self, rows: int) -> None:
        self.rows += rows
        self.batches.observe(rows)

    def render(self, queued_rows: int, logged: dict[str, int] | None = None) -> bytes:
        pid = f'pid="{self.pid}"'
        name, version, runtime = self.model
        lines = [
            "# HELP modelyard_model_info The model version this process serves.",
            "# TYPE modelyard_model_info gauge",
            f'modelyard_model_info{{{pid},model="{name}",version="{version}",'
            f'runtime="{runtime}"}} 1',
            "# HELP modelyard_requests_total Requests answered, by protocol and status.",
            "# TYPE modelyard_requests_total counter",
        ]
        for (protocol, status), count in sorted(self.requests.items()):
            lines.append(
                f'modelyard_requests_total{{{pid},protocol="{protocol}",code="{status}"}} {count}'
            )
        lines += [
            "# HELP modelyard_request_duration_seconds Time from request to response.",
            "# TYPE modelyard_request_duration_seconds histogram",
        ]
        for protocol, histogram in sorted(self.latency.items()):
            lines += histogram.lines(
                "modelyard_request_duration_seconds", f'{pid},protocol="{protocol}"'
            )
        lines += [
            "# HELP modelyard_errors_total Failed requests by error type.",
            "# TYPE modelyard_errors_total counter",
            *(
                f'modelyard_errors_total{{{pid},type="{kind}"}} {count}'
                for kind, count in sorted(self.errors.items())
            ),
            "# HELP modelyard_rows_total Rows scored.",
            "# TYPE modelyard_rows_total counter",
            f"modelyard_rows_total{{{pid}}} {self.rows}",
            "# HELP modelyard_batch_rows Rows per predict call (adaptive batching).",
            "# TYPE modelyard_batch_rows histogram",
            *self.batches.lines("modelyard_batch_rows", pid),
            "# HELP modelyard_queue_rows Rows waiting for the model.",
            "# TYPE modelyard_queue_rows gauge",
            f"modelyard_queue_rows{{{pid}}} {queued_rows}",
            "# HELP modelyard_in_flight_requests Requests being answered.",
            "# TYPE modelyard_in_flight_requests gauge",
            f"modelyard_in_flight_requests{{{pid}}} {self.in_flight}",
            "# HELP modelyard_extra_fields_total Request fields the model does not know (ignored).",
            "# TYPE modelyard_extra_fields_total counter",
            f"modelyard_extra_fields_total{{{pid}}} {self.extra_fields}",
            "# HELP modelyard_model_reloads_total Model versions swapped in while serving.",
            "# TYPE modelyard_model_reloads_total counter",
            f"modelyard_model_reloads_total{{{pid}}} {self.reloads}",
            *_log_lines(pid, logged),
            *_process_lines(pid, self.started),
        ]
        return ("\n".join(lines) + "\n").encode()


def _log_lines(pid: str, logged: dict[str, int] | None) -> list[str]:
    if logged is None:
        return []
    return [
        "# HELP modelyard_prediction_log_rows_total Rows the prediction log wrote or dropped.",
        "# TYPE modelyard_prediction_log_rows_total counter",
        f'modelyard_prediction_log_rows_total{{{pid},state="written"}} {logged.get("written", 0)}',
        f'modelyard_prediction_log_rows_total{{{pid},state="dropped"}} {logged.get("dropped", 0)}',
    ]


def _process_lines(pid: str, started: float) -> list[str]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return [
        "# HELP process_cpu_seconds_total CPU time of this process.",
        "# TYPE process_cpu_seconds_total counter",
        f"process_cpu_seconds_total{{{pid}}} {usage.ru_utime + usage.ru_stime:.3f}",
        "# HELP process_resident_memory_bytes Resident memory of this process.",
        "# TYPE process_resident_memory_bytes gauge",
        f"process_resident_memory_bytes{{{pid}}} {_rss_bytes()}",
        "# HELP process_start_time_seconds When this process started serving.",
        "# TYPE process_start_time_seconds gauge",
        f"process_start_time_seconds{{{pid}}} {started:.3f}",
    ]


def _rss_bytes() -> int:
    try:
        with Path("/proc/self/statm").open() as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: the peak is the best available figure
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
