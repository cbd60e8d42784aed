"""Adaptive batching: queued requests merge into one call, an idle server never waits."""

import asyncio

import numpy as np
import pytest

from modelyard.serve.batching import Batcher, Overloaded


class Model:
    """Doubles its input and records the size of every call."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, X: np.ndarray) -> np.ndarray:
        self.calls.append(len(X))
        return X[:, 0] * 2


def rows(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64).reshape(-1, 1)


def test_requests_queued_together_are_scored_in_one_call_and_split_back() -> None:
    model = Model()

    async def main() -> list[np.ndarray]:
        batcher = Batcher(model)
        return await asyncio.gather(
            batcher.score(rows(1)), batcher.score(rows(2, 3)), batcher.score(rows(4, 5, 6))
        )

    answers = asyncio.run(main())
    assert model.calls == [6]
    assert [a.tolist() for a in answers] == [[2], [4, 6], [8, 10, 12]]


def test_an_idle_server_scores_at_once() -> None:
    model = Model()

    async def main() -> None:
        batcher = Batcher(model, max_wait=0)
        await batcher.score(rows(1))
        await batcher.score(rows(2))

    asyncio.run(main())
    assert model.calls == [1, 1]  # one at a time: nothing waited for company


def test_max_wait_deadline_is_fixed_by_the_first_request() -> None:
    model = Model()

    async def main() -> tuple[list[np.ndarray], float, float]:
        batcher = Batcher(model, max_wait=0.2)
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = asyncio.ensure_future(batcher.score(rows(1)))
        await asyncio.sleep(0.1)
        second = asyncio.ensure_future(batcher.score(rows(2)))
        done = await asyncio.gather(first, second)
        return done, started, loop.time()

    done, started, ended = asyncio.run(main())
    assert model.calls == [2]  # the second joined the first's batch
    assert [d.tolist() for d in done] == [[2], [4]]
    assert ended - started < 0.29  # not 0.1 + 0.2: the second did not restart the clock


def test_a_full_batch_goes_at_once_and_the_rest_follows() -> None:
    model = Model()

    async def main() -> list[np.ndarray]:
        batcher = Batcher(model, max_batch_rows=4, max_wait=10)
        return await asyncio.gather(*(batcher.score(rows(i, i)) for i in range(5)))

    answers = asyncio.run(main())
    assert model.calls == [4, 4, 2]
    assert [a.tolist() for a in answers] == [[2 * i, 2 * i] for i in range(5)]


def test_a_request_larger_than_a_batch_is_scored_alone() -> None:
    model = Model()

    async def main() -> list[np.ndarray]:
        batcher = Batcher(model, max_batch_rows=2)
        return await asyncio.gather(batcher.score(rows(1, 2, 3)), batcher.score(rows(4)))

    answers = asyncio.run(main())
    assert model.calls == [3, 1]
    assert answers[0].tolist() == [2, 4, 6]


def test_the_queue_is_bounded() -> None:
    model = Model()

    async def main() -> list[object]:
        batcher = Batcher(model, max_wait=0.05, max_queue_rows=3)
        tasks = [batcher.score(rows(1, 1)), batcher.score(rows(2, 2)), batcher.score(rows(3))]
        return await asyncio.gather(*tasks, return_exceptions=True)

    first, second, third = asyncio.run(main())
    assert isinstance(second, Overloaded) and second.http_status == 503
    assert second.retry_after_seconds >= 1
    assert first.tolist() == [2, 2] and third.tolist() == [6]  # type: ignore[union-attr]


def test_a_failing_model_fails_every_request_of_its_batch_and_recovers() -> None:
    calls = 0

    def flaky(X: np.ndarray) -> np.ndarray:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return X[:, 0]

    batcher = Batcher(flaky)

    async def main() -> tuple[list[object], np.ndarray]:
        failed = await asyncio.gather(
            batcher.score(rows(1)), batcher.score(rows(2)), return_exceptions=True
        )
        return failed, await batcher.score(rows(3))

    failed, recovered = asyncio.run(main())
    assert all(isinstance(f, RuntimeError) for f in failed)
    assert recovered.tolist() == [3] and batcher.queued_rows == 0


@pytest.mark.parametrize("sizes", [[1] * 50, [3, 7, 1, 64, 2], [100, 1, 1]])
def test_row_offsets_hold_for_any_mix(sizes: list[int]) -> None:
    model = Model()
    rng = np.random.default_rng(len(sizes))

    async def main() -> tuple[list[np.ndarray], list[np.ndarray]]:
        batcher = Batcher(model, max_batch_rows=64)
        inputs = [rng.normal(size=(n, 1)) for n in sizes]
        return inputs, await asyncio.gather(*(batcher.score(x) for x in inputs))

    inputs, answers = asyncio.run(main())
    for x, answer in zip(inputs, answers, strict=True):
        np.testing.assert_array_equal(answer, x[:, 0] * 2)
    assert sum(model.calls) == sum(sizes)


def test_the_tap_sees_each_batch_whole_with_every_request_and_its_tag() -> None:
    model, seen = Model(), []

    def tap(X: np.ndarray, scores: np.ndarray, requests: list[tuple[int, object]]) -> None:
        seen.append((X[:, 0].tolist(), scores.tolist(), requests))

    async def main() -> None:
        batcher = Batcher(model, tap=tap)
        await asyncio.gather(batcher.score(rows(1), "a"), batcher.score(rows(2, 3)))
        await batcher.score(rows(4), "c")

    asyncio.run(main())
    assert seen == [
        ([1, 2, 3], [2, 4, 6], [(1, "a"), (2, None)]),
        ([4], [8], [(1, "c")]),
    ]


def test_a_failing_tap_leaves_the_answers_alone() -> None:
    def tap(X: np.ndarray, scores: np.ndarray, requests: list[tuple[int, object]]) -> None:
        raise RuntimeError("the tap broke")

    async def main() -> list[np.ndarray]:
        batcher = Batcher(Model(), tap=tap)
        return await asyncio.gather(batcher.score(rows(1), "a"), batcher.score(rows(2), "b"))

    assert [a.tolist() for a in asyncio.run(main())] == [[2], [4]]
