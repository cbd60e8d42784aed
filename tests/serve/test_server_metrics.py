"""/metrics: the Prometheus text format, checked with the reference parser."""

from prometheus_client.parser import text_string_to_metric_families

from modelyard.serve.metrics import LATENCY_BUCKETS, Histogram, ServerMetrics


def families(text: bytes) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    return {
        f.name: [(s.name, s.labels, s.value) for s in f.samples]
        for f in text_string_to_metric_families(text.decode())
    }


def test_histogram_buckets_are_cumulative() -> None:
    histogram = Histogram((1.0, 2.0, 5.0))
    for value in (0.5, 1.0, 1.5, 3.0, 9.0):
        histogram.observe(value)
    lines = histogram.lines("x", 'a="1"')
    assert lines[:4] == [
        'x_bucket{a="1",le="1"} 2',
        'x_bucket{a="1",le="2"} 3',
        'x_bucket{a="1",le="5"} 4',
        'x_bucket{a="1",le="+Inf"} 5',
    ]
    assert histogram.sum == 15.0 and histogram.count == 5


def test_render_parses_and_reports_what_happened() -> None:
    metrics = ServerMetrics()
    metrics.model = ("loans", 4, "onnx")
    metrics.request("v2", 200, 0.0004)
    metrics.request("v2", 200, 0.003)
    metrics.request("mlflow", 422, 0.0002)
    metrics.errors["InvalidInputError"] += 1
    metrics.batch(3)
    metrics.batch(1)
    parsed = families(metrics.render(queued_rows=7))
    info = parsed["modelyard_model_info"]
    assert info[0][1]["version"] == "4" and info[0][1]["runtime"] == "onnx"
    requests = {(s[1]["protocol"], s[1]["code"]): s[2] for s in parsed["modelyard_requests"]}
    assert requests == {("v2", "200"): 2.0, ("mlflow", "422"): 1.0}
    latency = [s for s in parsed["modelyard_request_duration_seconds"] if s[1]["protocol"] == "v2"]
    buckets = {s[1]["le"]: s[2] for s in latency if s[0].endswith("_bucket")}
    assert buckets[str(LATENCY_BUCKETS[0])] == 1.0 and buckets["+Inf"] == 2.0
    assert parsed["modelyard_rows"][0][2] == 4.0
    assert parsed["modelyard_queue_rows"][0][2] == 7.0
    batch_count = next(s for s in parsed["modelyard_batch_rows"] if s[0].endswith("_count"))
    assert batch_count[2] == 2.0
    assert parsed["process_resident_memory_bytes"][0][2] > 1e6
    assert parsed["modelyard_errors"][0][1]["type"] == "InvalidInputError"
