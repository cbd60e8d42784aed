"""System health: the /metrics parser against Prometheus' own, summaries from canned servers
and from the real inference app on a socket, throughput and latency from the prediction log."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import cycle
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import uvicorn
import yaml
from prometheus_client.parser import text_string_to_metric_families

from modelyard.data.datasets import add_dataset
from modelyard.data.demo import DEMO_SPEC, make_loans
from modelyard.errors import DataError, InvalidInputError, ServingError
from modelyard.monitor.health import health_summary, metrics_url, parse_metrics, scrape
from modelyard.monitor.log_files import HEAD, OUTPUTS, model_folder, predictions_root
from modelyard.monitor.segment_writer import SegmentWriter
from modelyard.project import Project
from modelyard.registry.versions import register_candidate
from modelyard.serve.app import create_app
from modelyard.serve.metrics import ServerMetrics
from modelyard.serve.model import load_served
from modelyard.serve.server import free_port
from modelyard.train.trainer import train_candidates

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def worker_metrics(pid: int, answers: dict[tuple[str, int], int], errors: dict[str, int]) -> bytes:
    """What one worker's /metrics says after ``answers`` (protocol, status → count)."""
    metrics = ServerMetrics()
    metrics.pid = pid
    metrics.model = ("loans", 3, "native")
    for (protocol, status), count in answers.items():
        for i in range(count):
            metrics.request(protocol, status, 0.001 * (i + 1))
    metrics.errors.update(errors)
    metrics.batch(5)
    return metrics.render(queued_rows=0)


WORKER_A = worker_metrics(
    101,
    {("v1", 200): 30, ("v1", 422): 3, ("v2", 503): 2, ("v2", 500): 1},
    {"InvalidInputError": 3, "Overloaded": 2, "InternalError": 1},
)
WORKER_B = worker_metrics(202, {("v1", 200): 10, ("v1", 500): 1}, {"InternalError": 1})


def prometheus_samples(text: bytes) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    ]


# ---------------------------------------------------------------- the parser


def test_the_parser_reads_what_prometheus_reads() -> None:
    text = WORKER_A + b'odd{path="a \\"quoted\\" \\\\ back\\nslash",le="+Inf"} NaN 1714564800000\n'
    expected = prometheus_samples(text)
    parsed = parse_metrics(text.decode())
    found = [(name, labels, value) for name, samples in parsed.items() for labels, value in samples]
    assert len(found) == len(expected) > 40
    for (name, labels, value), (want_name, want_labels, want_value) in zip(
        sorted(found, key=repr), sorted(expected, key=repr), strict=True
    ):
        assert (name, labels) == (want_name, want_labels)
        assert value == want_value or (np.isnan(value) and np.isnan(want_value))
    assert parsed["odd"][0][0]["path"] == 'a "quoted" \\ back\nslash'


@pytest.mark.parametrize("line", ["modelyard_rows_total{pid=101} 5", "rows five", 'x{a="1"} one'])
def test_text_that_is_not_the_prometheus_format_is_refused_by_line(line: str) -> None:
    with pytest.raises(DataError, match="Line 2 of the metrics"):
        parse_metrics(f"# HELP x y\n{line}\n")


def test_metrics_urls() -> None:
    assert metrics_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080/metrics"
    assert metrics_url("http://h:1/metrics/") == "http://h:1/metrics"
    with pytest.raises(InvalidInputError, match="must start with http"):
        metrics_url("127.0.0.1:8080")


def test_an_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(ServingError, match="Check that the server runs there"):
        scrape(f"http://127.0.0.1:{free_port()}", timeout=2)


# ---------------------------------------------------------------- canned servers


@pytest.fixture
def two_workers() -> Iterator[str]:
    """A /metrics endpoint answered by worker A and worker B in turn, like `--workers 2`."""
    bodies = cycle([WORKER_A, WORKER_B])
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                body = next(bodies)
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def write_log(project: Project, frame: pd.DataFrame) -> None:
    schema = pa.schema([*HEAD, *OUTPUTS])
    writer = SegmentWriter(
        model_folder(predictions_root(project), "loans"),
        schema,
        time_column="ts",
        flush_rows=10**9,
        flush_seconds=3600,
    )
    full = frame.assign(model="loans", version=3, score=0.5, label="1", confidence=0.5)
    writer.append({name: full[name].tolist() for name in schema.names})
    writer.close()


def traffic(seed: int = 0) -> pd.DataFrame:
    """Requests of one to three rows over the last 30 minutes before NOW, each with its latency."""
    rng = np.random.default_rng(seed)
    requests = 500
    end = int(NOW.timestamp() * 1000)
    ts = end - rng.integers(1, 30 * 60_000, requests)
    size = rng.integers(1, 4, requests)
    latency = rng.lognormal(1.0, 0.5, requests).astype(np.float32)
    index = np.repeat(np.arange(requests), size)
    return pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in index],
            "row": np.concatenate([np.arange(k) for k in size]),
            "ts": ts[index],
            "latency_ms": latency[index],
        }
    )


def test_a_summary_from_the_log_and_two_workers(project: Project, two_workers: str) -> None:
    frame = traffic()
    write_log(project, frame)
    summary = health_summary(project, "loans", window="15m", metrics_url=two_workers, now=NOW)
    recent = frame[frame["ts"] >= (NOW - timedelta(minutes=15)).timestamp() * 1000]
    per_request = recent.drop_duplicates("request_id")["latency_ms"].to_numpy(np.float64)
    assert (summary.rows, summary.requests) == (len(recent), len(per_request))
    assert summary.requests_per_second == pytest.approx(len(per_request) / 900)
    assert summary.rows_per_second == pytest.approx(len(recent) / 900)
    assert summary.latency_p50_ms == pytest.approx(np.quantile(per_request, 0.5))
    assert summary.latency_p99_ms == pytest.approx(np.quantile(per_request, 0.99))

    assert [w.pid for w in summary.workers] == ["101", "202"]
    assert [w.requests for w in summary.workers] == [36, 11]
    assert summary.error_rate == pytest.approx(4 / 47)  # 503, 500, 500 and 500
    assert summary.client_error_rate == pytest.approx(3 / 47)
    assert summary.errors_by_type == {"InternalError": 2, "InvalidInputError": 3, "Overloaded": 2}
    expected = {
        name: sum(v for text in (WORKER_A, WORKER_B) for n, _, v in prometheus_samples(text)
                  if n == name)
        for name in ("process_cpu_seconds_total", "process_resident_memory_bytes")
    }  # fmt: skip
    assert summary.cpu_seconds == pytest.approx(expected["process_cpu_seconds_total"])
    assert summary.rss_bytes == expected["process_resident_memory_bytes"] > 0
    assert summary.workers[0].model == "loans" and summary.workers[0].version == "3"
    assert summary.values() == {
        "throughput_rps": summary.requests_per_second,
        "p99_latency_ms": summary.latency_p99_ms,
        "error_rate": summary.error_rate,
    }
    assert summary.to_dict()["workers"][1]["errors_by_type"] == {"InternalError": 1}


def test_a_sampled_log_is_scaled_up_to_the_traffic(tmp_path: Path) -> None:
    document = yaml.safe_load(DEMO_SPEC)
    document["monitoring"] = {"log": {"sample_rate": 0.25}}
    (tmp_path / "modelyard.yaml").write_text(yaml.safe_dump(document))
    project = Project.open(tmp_path / "modelyard.yaml")
    try:
        frame = traffic(seed=1)
        write_log(project, frame)
        summary = health_summary(project, "loans", window="1h", now=NOW)
    finally:
        project.close()
    assert summary.requests == frame["request_id"].nunique()
    assert summary.requests_per_second == pytest.approx(summary.requests / 0.25 / 3600)
    assert (summary.workers, summary.error_rate, summary.cpu_seconds) == ((), None, None)


def test_without_traffic_there_is_no_latency(project: Project) -> None:
    summary = health_summary(project, "loans", now=NOW)
    assert (summary.rows, summary.requests, summary.latency_p99_ms) == (0, 0, None)
    assert summary.requests_per_second == 0.0


# ---------------------------------------------------------------- a real server


@pytest.fixture
def served(project: Project) -> Iterator[tuple[str, dict[str, object]]]:
    """The inference app on a real socket (uvicorn, in a thread), and a record to send it."""
    frame = make_loans(1_000, seed=8)
    dataset = add_dataset(project, "loans", frame)
    (result,) = train_candidates(project, dataset, frame, families=["majority"])
    register_candidate(project, "loans", result, aliases=("champion",))
    assert result.bundle is not None
    record = json.loads(frame[result.bundle.input_names].head(1).to_json(orient="records"))[0]
    port = free_port()
    app = create_app(load_served(project.spec_path, "loans@champion"))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the inference app did not start"
    yield f"http://127.0.0.1:{port}", record
    server.should_exit = True
    thread.join(timeout=30)


def test_a_real_servers_errors_cpu_and_memory(
    project: Project, served: tuple[str, dict[str, object]]
) -> None:
    url, record = served
    predict = f"{url}/v1/models/loans:predict"
    for _ in range(4):
        assert httpx.post(predict, json={"records": [record]}, timeout=10).status_code == 200
    for _ in range(2):
        assert httpx.post(predict, content=b"{", timeout=10).status_code == 422
    summary = health_summary(project, "loans", metrics_url=url)
    (worker,) = summary.workers
    assert worker.pid == str(os.getpid())  # the app runs in this process
    assert (worker.requests, worker.client_errors, worker.server_errors) == (6, 2, 0)
    assert summary.error_rate == 0.0
    assert summary.client_error_rate == pytest.approx(2 / 6)
    assert summary.errors_by_type == {"InvalidInputError": 2}
    assert (worker.model, worker.version) == ("loans", "1")
    assert worker.cpu_seconds > 0 and worker.rss_bytes > 20 * 2**20
    assert worker.uptime_seconds is not None and 0 <= worker.uptime_seconds < 600
