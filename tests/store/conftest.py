"""Worker processes (``workers.py``) for the multi-process tests, and a starting gun."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

WORKERS = Path(__file__).with_name("workers.py")


class Worker:
    """One ``workers.py`` child, talked to over its stdin and stdout."""

    def __init__(self, *arguments: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(WORKERS), *arguments],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def expect(self, expected: str) -> None:
        """Block until the worker prints a line; fail with its stderr if it died instead."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if line != expected:
            self.kill()
            _, stderr = self.process.communicate()
            pytest.fail(f"worker printed {line!r} instead of {expected!r}; stderr:\n{stderr}")

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def finish(self, timeout: float = 60) -> None:
        _, stderr = self.process.communicate(timeout=timeout)
        assert self.process.returncode == 0, f"worker failed:\n{stderr}"

    def kill(self) -> int:
        """SIGKILL the worker and return its exit code."""
        self.process.kill()
        self.process.communicate()
        return self.process.returncode


@pytest.fixture
def spawn() -> Iterator[Callable[..., Worker]]:
    """``spawn(mode, *arguments)`` starts a worker; any still running at the end is killed."""
    started: list[Worker] = []

    def start(*arguments: str) -> Worker:
        started.append(Worker(*arguments))
        return started[-1]

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.kill()


@pytest.fixture
def race(spawn: Callable[..., Worker]) -> Callable[..., None]:
    """``race(arguments, arguments, ...)`` starts one worker per argument list, waits until
    all are ready, releases them at the same moment and waits for all to succeed."""

    def run(*argument_lists: list[str]) -> None:
        workers = [spawn(*arguments) for arguments in argument_lists]
        for worker in workers:
            worker.expect("ready")
        for worker in workers:
            worker.send("go")
        for worker in workers:
            worker.finish()

    return run
