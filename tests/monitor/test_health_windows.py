"""The error rate over a window: differences of kept counter scrapes, restarts, the history file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modelyard.errors import InvalidInputError
from modelyard.monitor.health import (
    CounterScrape,
    HealthSummary,
    ScrapeHistory,
    WindowedErrors,
    WorkerHealth,
    windowed_error_rate,
    windowed_errors,
)
from modelyard.project import Project

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
URL = "http://127.0.0.1:8080"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# Two workers; pid → (answered requests, 5xx answers), counters since each started.
HISTORY = [
    CounterScrape(at(0), {"101": (100, 2), "202": (50, 0)}),
    CounterScrape(at(5), {"101": (180, 4), "202": (90, 1)}),
    CounterScrape(at(10), {"101": (260, 9), "202": (120, 1)}),
]
NOW = CounterScrape(at(16), {"101": (400, 15), "202": (200, 3)})


@pytest.mark.parametrize(
    ("window_minutes", "expected"),
    [
        # 10m before 12:16 is 12:06: the newest scrape at or before it is 12:05
        (10, WindowedErrors(requests=220 + 110, server_errors=11 + 2, span_seconds=660.0)),
        # 6m: the scrape at exactly 12:10 is old enough
        (6, WindowedErrors(requests=140 + 80, server_errors=6 + 2, span_seconds=360.0)),
        # 1h: the history is shorter, so the oldest scrape, and the span says 16 minutes
        (60, WindowedErrors(requests=300 + 150, server_errors=13 + 3, span_seconds=960.0)),
    ],
)
def test_the_window_starts_at_the_newest_scrape_old_enough(
    window_minutes: int, expected: WindowedErrors
) -> None:
    found = windowed_errors(HISTORY, NOW, window_minutes * 60)
    assert found == expected
    assert found.error_rate == pytest.approx(expected.server_errors / expected.requests)


def test_a_restarted_or_new_worker_counts_from_zero() -> None:
    then = CounterScrape(at(0), {"101": (500, 20), "202": (300, 3), "404": (90, 9)})
    current = CounterScrape(
        at(10),
        {
            "101": (40, 4),  # restarted: its totals went down
            "202": (360, 3),  # ran on: 60 answers, no error since
            "303": (25, 5),  # started since
        },
    )  # 404 ended in between: what it answered since 12:00 is lost
    found = windowed_errors([then], current, 600)
    assert found == WindowedErrors(40 + 60 + 25, 4 + 0 + 5, 600.0)


def test_fewer_errors_than_before_is_a_restart_even_with_more_requests() -> None:
    then = CounterScrape(at(0), {"101": (500, 20)})
    found = windowed_errors([then], CounterScrape(at(10), {"101": (600, 10)}), 600)
    assert found == WindowedErrors(600, 10, 600.0)


def test_without_an_earlier_scrape_there_is_no_rate() -> None:
    found = windowed_errors([], NOW, 600)
    assert found == WindowedErrors(0, 0, 0.0) and found.error_rate is None
    same_time = windowed_errors([NOW], NOW, 600)  # the current scrape is not its own past
    assert same_time == WindowedErrors(0, 0, 0.0)


def test_no_requests_in_the_window_is_no_rate() -> None:
    idle = CounterScrape(at(20), NOW.workers)
    found = windowed_errors([NOW], idle, 240)
    assert found == WindowedErrors(0, 0, 240.0) and found.error_rate is None


# ---------------------------------------------------------------- the history file


def test_the_history_keeps_the_longest_window_and_the_scrape_it_starts_from(
    tmp_path: Path,
) -> None:
    history = ScrapeHistory(tmp_path / "scrapes" / "loans.json", URL)
    scrapes = [CounterScrape(at(m), {"101": (10 * m, m)}) for m in range(0, 31, 5)]
    history.save(scrapes, keep_seconds=600)
    # 10m before 12:30 is 12:20: that scrape starts a 10-minute window, older ones go
    assert history.load() == scrapes[4:]
    document = json.loads(history.path.read_text())
    assert document["url"] == f"{URL}/metrics"
    assert document["scrapes"][0] == {"at": at(20).isoformat(), "workers": {"101": [200, 20]}}


def test_a_scrape_replaces_the_one_taken_at_the_same_time(tmp_path: Path) -> None:
    history = ScrapeHistory(tmp_path / "loans.json", URL)
    first = CounterScrape(at(0), {"101": (1, 0)})
    again = CounterScrape(at(0), {"101": (2, 1)})
    history.save([first, again], keep_seconds=600)
    assert history.load() == [again]


def test_another_server_or_a_damaged_file_starts_a_new_history(tmp_path: Path) -> None:
    path = tmp_path / "loans.json"
    ScrapeHistory(path, URL).save(HISTORY, keep_seconds=3600)
    assert ScrapeHistory(path, f"{URL}/metrics/").load() == HISTORY  # the same address
    assert ScrapeHistory(path, "http://127.0.0.1:9090").load() == []
    path.write_text('{"url": "http://127.0.0.1:8080/metrics", "scrapes": [{"at": "noon"}]}')
    history = ScrapeHistory(path, URL)
    assert history.load() == []
    history.save([NOW], keep_seconds=600)
    assert history.load() == [NOW]


def _summary(end: datetime, workers: dict[str, tuple[int, int]]) -> HealthSummary:
    return HealthSummary(
        model="loans",
        start=end - timedelta(minutes=10),
        end=end,
        sample_rate=1.0,
        rows=0,
        requests=0,
        latency_p50_ms=None,
        latency_p99_ms=None,
        url=URL,
        workers=tuple(
            WorkerHealth(pid, n, e, 0, {}, 0.0, 0, None) for pid, (n, e) in workers.items()
        ),
    )


def test_each_measure_keeps_its_scrape_for_the_next(project: Project) -> None:
    counters = {0: (100, 2), 5: (300, 12), 10: (500, 32), 15: (600, 33)}
    found = {
        minute: windowed_error_rate(
            project, "loans", _summary(at(minute), {"101": totals}), 600, keep_seconds=600
        )
        for minute, totals in counters.items()
    }
    assert found[0] == WindowedErrors(0, 0, 0.0)
    assert found[5] == WindowedErrors(200, 10, 300.0)
    assert found[10] == WindowedErrors(400, 30, 600.0)
    assert found[15] == WindowedErrors(300, 21, 600.0)
    kept = ScrapeHistory.for_model(project, "loans", URL)
    assert kept.path == project.root / ".modelyard" / "monitor" / "scrapes" / "loans.json"
    assert [s.at for s in kept.load()] == [at(5), at(10), at(15)]


def test_a_summary_without_a_scrape_has_no_windowed_rate(project: Project) -> None:
    summary = HealthSummary("loans", T0, at(10), 1.0, 0, 0, None, None)
    with pytest.raises(InvalidInputError, match="metrics_url"):
        windowed_error_rate(project, "loans", summary, 600, keep_seconds=600)
