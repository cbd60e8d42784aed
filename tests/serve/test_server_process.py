"""``modelyard serve`` as an operator runs it: reloads, drains, workers and overload.

Each test drives a real server process over HTTP. A new version is swapped in
under continuous load without a failed request (on ``POST .../load`` and by
``--watch``); SIGTERM answers the requests already waiting in the batcher
before the process exits; two workers both answer and label their metrics
with their ``pid``; past ``--max-queue-rows`` a request is refused with 503 and
``Retry-After``, and nothing else fails.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest

from modelyard.monitor.feedback import read_feedback
from modelyard.monitor.log_files import read_predictions
from modelyard.registry.versions import resolve

if TYPE_CHECKING:
    from conftest import DemoModel, ServerProcess, StartServer

TOLERANCE = 1e-6
WAIT_SECONDS = 60
#: The servers this module runs, and their options: started side by side, stopped at the end.
SERVERS = {
    "plain": (),
    "watch": ("--watch", "0.5"),
    "drain": ("--max-wait-ms", "500"),
    "workers": ("--workers", "2"),
    "overload": ("--max-queue-rows", "4", "--max-wait-ms", "200"),
}


@pytest.fixture(scope="module")
def servers(start_server: StartServer) -> Iterator[dict[str, ServerProcess]]:
    started = {name: start_server("loans@champion", *o).start() for name, o in SERVERS.items()}
    try:
        for server in started.values():  # all load loans@champion before a test moves it
            server.ready()
        yield started
    finally:
        for server in started.values():
            server.close()


@pytest.fixture
def plain(servers: dict[str, ServerProcess]) -> ServerProcess:
    """The server with default options, shared by several tests."""
    return servers["plain"]


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds; fail (not hang) if it never does."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {WAIT_SECONDS} s waiting for {what}")
        time.sleep(0.01)


def _served_version(server: ServerProcess) -> int:
    return int(httpx.get(f"{server.url}/v2/models/loans", timeout=10).json()["versions"][0])


@dataclass
class Answer:
    sent_at: float
    status: int  # 0: the request failed below HTTP
    version: str | None
    scores: list[float] | None


class Traffic:
    """One client sending the same request back to back from a thread, recording each answer."""

    def __init__(self, url: str, body: dict[str, Any]) -> None:
        self.url, self.body = url, body
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=WAIT_SECONDS)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set():
                sent_at = time.monotonic()
                try:
                    response = client.post("/v2/models/loans/infer", json=self.body)
                except httpx.HTTPError:
                    self.answers.append(Answer(sent_at, 0, None, None))
                    continue
                answer = Answer(sent_at, response.status_code, None, None)
                if response.status_code == 200:
                    payload = response.json()
                    answer.version = payload["model_version"]
                    answer.scores = payload["outputs"][0]["data"]
                self.answers.append(answer)

    def count(self, after: float = 0.0) -> int:
        return sum(a.sent_at > after for a in self.answers)


def _check_scores(
    demo_model: DemoModel, records: list[dict[str, Any]], answers: list[Answer]
) -> None:
    """Every answer scores ``records`` as its version does in this process."""
    for version in {a.version for a in answers}:
        assert version is not None
        expected = demo_model.expected(int(version), records)
        for answer in (a for a in answers if a.version == version):
            assert answer.scores is not None
            np.testing.assert_allclose(answer.scores, expected, rtol=0, atol=TOLERANCE)


# ------------------------------------------------------------ swapping versions


def test_load_swaps_in_the_new_champion_under_load_without_a_failed_request(
    plain: ServerProcess, demo_model: DemoModel
) -> None:
    records = demo_model.records(5, complete=True)
    before = _served_version(plain)
    with Traffic(plain.url, {"inputs": demo_model.tensors(records)}) as traffic:
        _wait_for(lambda: traffic.count() >= 20, "answers from the current version")
        promoted = demo_model.promote_other()
        loaded = httpx.post(f"{plain.url}/v2/repository/models/loans/load", timeout=60)
        loaded_at = time.monotonic()
        _wait_for(lambda: traffic.count(after=loaded_at) >= 20, "answers after the reload")
    answers = traffic.answers

    assert loaded.status_code == 200, loaded.text
    reply = loaded.json()
    assert reply["name"] == "loans" and reply["reloaded"] is True
    assert (reply["previous_version"], reply["version"]) == (before, promoted.version)
    assert reply["runtime"] in ("native", "onnx")
    assert [a.status for a in answers] == [200] * len(answers)
    versions = [a.version for a in answers]
    switch = versions.index(str(promoted.version))
    assert versions == [str(before)] * switch + [str(promoted.version)] * (len(versions) - switch)
    assert all(a.version == str(promoted.version) for a in answers if a.sent_at > loaded_at)
    _check_scores(demo_model, records, answers)
    assert plain.metric("modelyard_model_info", version=str(promoted.version)) == 1


def test_load_without_a_new_version_keeps_serving_the_same_one(
    plain: ServerProcess,
) -> None:
    before = _served_version(plain)
    loaded = httpx.post(f"{plain.url}/v2/repository/models/loans/load", timeout=60)
    assert loaded.status_code == 200
    assert loaded.json()["reloaded"] is False and loaded.json()["version"] == before


def test_watch_picks_up_an_alias_move_by_itself(
    servers: dict[str, ServerProcess], demo_model: DemoModel
) -> None:
    records = demo_model.records(5, complete=True)
    with servers["watch"] as server:
        # another test may have moved the alias already: the watcher follows that first
        before = resolve(demo_model.project, "loans@champion").version
        _wait_for(lambda: _served_version(server) == before, "the watcher to catch up")
        reloads_before = server.metric("modelyard_model_reloads_total")
        with Traffic(server.url, {"inputs": demo_model.tensors(records)}) as traffic:
            _wait_for(lambda: traffic.count() >= 5, "answers from the current version")
            promoted = demo_model.promote_other()
            _wait_for(
                lambda: any(a.version == str(promoted.version) for a in traffic.answers),
                "the watcher to swap in the new champion",
            )
        reloads = server.metric("modelyard_model_reloads_total")
    answers = traffic.answers
    assert promoted.version != before
    assert [a.status for a in answers] == [200] * len(answers)
    assert {a.version for a in answers} == {str(before), str(promoted.version)}
    _check_scores(demo_model, records, answers)
    assert reloads - reloads_before == 1


# ------------------------------------------------------------ shutdown, workers, overload


@contextmanager
def _released_at_once(
    send: Callable[[Any], httpx.Response], items: list[Any]
) -> Iterator[list[Future[httpx.Response]]]:
    """Futures of ``send(item)`` for every item, from threads a barrier releases together."""
    barrier = threading.Barrier(len(items))

    def release_then_send(item: Any) -> httpx.Response:
        barrier.wait(timeout=WAIT_SECONDS)
        return send(item)

    with ThreadPoolExecutor(len(items)) as pool:
        yield [pool.submit(release_then_send, item) for item in items]


def test_sigterm_answers_the_requests_waiting_in_the_batcher_then_exits(
    servers: dict[str, ServerProcess], demo_model: DemoModel
) -> None:
    records = demo_model.records(6, complete=True)
    with servers["drain"] as server:
        version = _served_version(server)

        def send(record: dict[str, Any]) -> httpx.Response:
            url = f"{server.url}/v1/models/loans:predict"
            return httpx.post(url, json={"records": [record]}, timeout=60)

        with _released_at_once(send, records) as futures:
            # every request now waits for the batch deadline (500 ms after the first)
            _wait_for(
                lambda: server.metric("modelyard_queue_rows") == len(records),
                "all requests to be queued in the batcher",
            )
            server.terminate()
            responses = [f.result() for f in futures]
        code = server.wait()
        log = server.log()

    assert [r.status_code for r in responses] == [200] * len(records), [r.text for r in responses]
    scores = [r.json()["predictions"][0]["probability"] for r in responses]
    np.testing.assert_allclose(scores, demo_model.expected(version, records), atol=TOLERANCE)
    # uvicorn re-raises the signal it caught once it has shut down cleanly
    assert code == -signal.SIGTERM, log
    assert "Traceback" not in log and "ERROR" not in log, log
    # what was buffered in the prediction log reached disk before the process ended
    ids = [r.json()["request_id"] for r in responses]
    logged = read_predictions(demo_model.project, "loans").to_pylist()
    by_id = {row["request_id"]: row for row in logged if row["request_id"] in ids}
    assert sorted(by_id) == sorted(ids)
    np.testing.assert_allclose([by_id[i]["score"] for i in ids], scores, atol=1e-12)


def test_feedback_posted_to_the_server_is_stored_against_the_logged_request(
    plain: ServerProcess, demo_model: DemoModel
) -> None:
    records = demo_model.records(2, complete=True)
    answer = httpx.post(
        f"{plain.url}/v1/models/loans:predict", json={"records": records}, timeout=30
    ).json()
    request_id = answer["request_id"]
    feedback = [{"request_id": request_id, "row": i, "label": i % 2} for i in range(2)]
    response = httpx.post(f"{plain.url}/v1/feedback", json={"feedback": feedback}, timeout=30)
    assert response.json() == {"accepted": 2}
    bad = httpx.post(f"{plain.url}/v1/feedback", json={"feedback": [{"row": 0}]}, timeout=30)
    assert bad.status_code == 422 and "request_id" in bad.json()["error"]["message"]
    _wait_for(
        lambda: (
            {(r["request_id"], r["row"]) for r in _feedback_rows(demo_model)}
            >= {(request_id, 0), (request_id, 1)}
        ),
        "the feedback to be flushed to disk",
    )


def _feedback_rows(demo_model: DemoModel) -> list[dict[str, Any]]:
    return list(read_feedback(demo_model.project, "loans").to_pylist())


def _v1_answered(server: ServerProcess) -> dict[str, float]:
    """pid -> /v1 requests answered with 200, from whichever worker answers this scrape."""
    return {
        labels["pid"]: value
        for labels, value in server.samples("modelyard_requests_total")
        if labels["protocol"] == "v1" and labels["code"] == "200"
    }


def test_two_workers_both_answer_and_label_their_metrics_with_their_pid(
    servers: dict[str, ServerProcess], demo_model: DemoModel
) -> None:
    records = demo_model.records(3, complete=True)
    seen: dict[str, float] = {}
    final: dict[str, float] = {}
    sent = 0

    def score_then_scrape() -> bool:
        nonlocal sent
        for _ in range(8):  # a fresh connection each: the kernel spreads them over the workers
            url = f"{server.url}/v1/models/loans:predict"
            response = httpx.post(url, json={"records": records}, timeout=30)
            assert response.status_code == 200, response.text
            body = response.json()  # a worker may have started after an alias move: ask it
            expected = demo_model.expected(body["version"], records)
            got = [p["probability"] for p in body["predictions"]]
            np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)
            sent += 1
        seen.update(_v1_answered(server))
        return len(seen) == 2

    def scrape_both() -> bool:
        final.update(_v1_answered(server))
        return len(final) == 2

    with servers["workers"] as server:
        _wait_for(score_then_scrape, "both workers to answer")
        _wait_for(scrape_both, "a scrape of each worker after the last request")
        supervisor = server.process.pid if server.process else None
        code = server.stop()

    assert str(supervisor) not in final, "the workers answer, not the supervisor"
    assert all(count > 0 for count in final.values())
    assert sum(final.values()) == sent
    assert code == 0, "the supervisor exits cleanly on SIGTERM"


def test_past_the_queue_bound_requests_get_503_with_retry_after(
    servers: dict[str, ServerProcess], demo_model: DemoModel
) -> None:
    records = demo_model.records(16, complete=True)
    with servers["overload"] as server:
        version = _served_version(server)

        def send(record: dict[str, Any]) -> httpx.Response:
            url = f"{server.url}/v2/models/loans/infer"
            return httpx.post(url, json={"inputs": demo_model.tensors([record])}, timeout=60)

        with _released_at_once(send, records) as futures:
            responses = [f.result() for f in futures]
        counted = {
            code: server.metric("modelyard_requests_total", protocol="v2", code=code)
            for code in ("200", "503")
        }

    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 503}, [r.text for r in responses]
    assert statuses.count(200) >= 4, "the first four rows fit in the queue"
    assert statuses.count(503) >= 1, "sixteen rows at once cannot all fit in a queue of four"
    for record, response in zip(records, responses, strict=True):
        if response.status_code == 200:
            score = response.json()["outputs"][0]["data"]
            np.testing.assert_allclose(
                score, demo_model.expected(version, [record]), atol=TOLERANCE
            )
            continue
        assert int(response.headers["retry-after"]) >= 1
        assert response.headers["content-type"] == "application/json"
        error = response.json()["error"]
        assert error["type"] == "Overloaded" and "capacity" in error["message"]
    assert counted == {"200": statuses.count(200), "503": statuses.count(503)}


# ------------------------------------------------------------ large bodies on a real socket


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_10_mb_body_gets_413_over_a_real_socket_and_the_server_carries_on(
    plain: ServerProcess, framing: str
) -> None:
    record = b'{"age": 41, "income": 52000},'
    body = b'{"records": [' + record * (10 * 1024 * 1024 // len(record)) + b"{}]}"
    content: Any = body
    if framing == "chunked":
        content = (body[i : i + 65536] for i in range(0, len(body), 65536))
    with httpx.Client(base_url=plain.url, timeout=60) as client:
        response = client.post("/v1/models/loans:predict", content=content)
        assert response.status_code == 413
        assert response.json()["error"]["type"] == "PayloadTooLarge"
        assert "MiB" in response.json()["error"]["message"]
        assert client.get("/v2/health/ready").status_code == 200
