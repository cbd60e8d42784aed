"""Process and load-generator plumbing for ``bench/serving.py``; nothing here knows the servers.

- ``Processes``: children started each in its own session, stopped with their
  process groups (workers a server forks included);
- ``group_stats`` and ``RssSampler``: RSS and CPU time of a process group, from ``/proc``;
- ``http_json``, ``http_text``, ``wait_ready``: plain ``urllib`` on loopback;
- ``Placement``: which cores a server and ``wrk`` run on, how many workers and threads;
- ``write_lua``, ``wrk``, ``measure``, ``parse_wrk``: one ``wrk`` run and its report.

``bench/`` is not a package: the serving scripts import this module by name,
which works because Python puts a script's own folder first on ``sys.path``
(and mypy, given the files, does the same).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

# ---------------------------------------------------------------------- processes


class Processes:
    """Processes started here, each in its own session; ``stop_all`` ends their groups."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, name: str, cmd: list[str], env: dict[str, str], cwd: Path
    ) -> subprocess.Popen[bytes]:
        with (self.logdir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
            )
        self.procs.append(proc)
        return proc

    def log_tail(self, name: str) -> str:
        path = self.logdir / f"{name}.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def stop_all(self) -> None:
        """SIGTERM every group (servers drain and flush), SIGKILL what is left after 5 s."""
        for proc in self.procs:
            _signal_group(proc, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
            _signal_group(proc, signal.SIGKILL)  # workers the leader left behind
        self.procs.clear()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)  # the session we created for it: the pgid is its pid


def group_stats(pgid: int) -> tuple[int, float]:
    """RSS (KiB) and CPU seconds (user + system) of the live processes in a process group."""
    rss_kib, ticks = 0, 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # state, ppid, pgrp, …
                continue
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we read it
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        rss_kib += int(found.group(1)) if found else 0
    return rss_kib, ticks / os.sysconf("SC_CLK_TCK")


class RssSampler:
    """The RSS (MiB) of a process group once a second, while the ``with`` block runs."""

    def __init__(self, pgid: int, every: float = 1.0) -> None:
        self.pgid = pgid
        self.every = every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(group_stats(self.pgid)[0] / 1024)
            self._stop.wait(self.every)


# ---------------------------------------------------------------------- HTTP


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_text(url: str, body: bytes | None = None, timeout: float = 5) -> str:
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return str(answer.read().decode())


def http_json(url: str, body: bytes | None = None, timeout: float = 5) -> Any:
    return json.loads(http_text(url, body, timeout))


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited during start-up (code {proc.returncode})")
        with (
            contextlib.suppress(urllib.error.URLError, ConnectionError, OSError),
            urllib.request.urlopen(url, timeout=1) as answer,
        ):
            if answer.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"not ready within {timeout:.0f} s")


# ---------------------------------------------------------------------- wrk


@dataclass(frozen=True)
class Placement:
    """Where servers and load generator run, and how many workers a server gets."""

    key: str
    title: str
    server_core: int | None
    wrk_core: int | None
    wrk_threads: int
    workers: int


def pin(core: int | None) -> list[str]:
    return ["taskset", "-c", str(core)] if core is not None else []


@dataclass
class Cell:
    """One wrk run against one server at one concurrency."""

    server: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: str
    cpu_ms_per_request: float = float("nan")
    responses: int = 0  # wrk's count of completed responses
    extra: dict[str, int] = field(default_factory=dict)  # what a counting Lua script printed


BODY_LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [=[{body}]=]
"""
# Counts responses by status, and 503s carrying Retry-After; done() sums over threads.
STATUS_LUA = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {}; retry_after_503 = 0 end
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  if status == 503 then
    for name, _ in pairs(headers) do
      if string.lower(name) == "retry-after" then retry_after_503 = retry_after_503 + 1 end
    end
  end
end
function done(summary, latency, requests)
  local total, retry = {}, 0
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("counts")) do total[status] = (total[status] or 0) + n end
    retry = retry + thread:get("retry_after_503")
  end
  for status, n in pairs(total) do io.write(string.format("status %d %d\n", status, n)) end
  io.write(string.format("retry-after-503 %d\n", retry))
end
"""


def write_lua(work: Path, body: bytes, count_statuses: bool = False) -> Path:
    """A wrk script posting ``body``; with ``count_statuses`` it also counts statuses."""
    path = work / ("overload.lua" if count_statuses else "request.lua")
    path.write_text(BODY_LUA.format(body=body.decode()) + (STATUS_LUA if count_statuses else ""))
    return path


def wrk(url: str, lua: Path, connections: int, seconds: int, where: Placement) -> str:
    """wrk's report (HTTP/1.1 keep-alive, latency percentiles)."""
    threads = min(where.wrk_threads, connections)
    options = f"-t{threads} -c{connections} -d{seconds}s --timeout 5s --latency -s {lua} {url}"
    cmd = [*pin(where.wrk_core), "wrk", *options.split()]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=seconds + 60)
    if done.returncode != 0 or done.stderr.strip() or "Requests/sec" not in done.stdout:
        raise RuntimeError(f"wrk failed: {done.stdout[-800:]}{done.stderr[-800:]}")
    return done.stdout


def measure(
    name: str, url: str, pgid: int, lua: Path, connections: int, seconds: int, where: Placement
) -> Cell:
    """One timed wrk run; the server's CPU per request comes from its process group."""
    cpu_before = group_stats(pgid)[1]
    cell = parse_wrk(wrk(url, lua, connections, seconds, where), name)
    requests = cell.rps * seconds
    if requests:
        cell.cpu_ms_per_request = (group_stats(pgid)[1] - cpu_before) * 1e3 / requests
    return cell


def parse_wrk(report: str, server: str) -> Cell:
    connections = re.search(r"(\d+) threads and (\d+) connections", report)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", report)
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", report, re.M))
    responses = re.search(r"^\s*(\d+) requests in ", report, re.M)
    if connections is None or rps is None or responses is None or set(latency) != {"50", "99"}:
        raise RuntimeError(f"cannot read wrk's report:\n{report}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", report)
    errors = re.search(r"Socket errors:\s*(.*)", report)
    extra = {f"status {s}": int(n) for s, n in re.findall(r"^status (\d+) (\d+)$", report, re.M)}
    if retry := re.search(r"^retry-after-503 (\d+)$", report, re.M):
        extra["retry-after-503"] = int(retry.group(1))
    return Cell(
        server,
        int(connections.group(2)),
        float(rps.group(1)),
        to_ms(latency["50"]),
        to_ms(latency["99"]),
        int(non_2xx.group(1)) if non_2xx else 0,
        errors.group(1).strip() if errors else "",
        responses=int(responses.group(1)),
        extra=extra,
    )


def to_ms(value: str) -> float:
    """wrk's duration ('812.00us', '1.20ms', '2.01s', '1.00m') in milliseconds."""
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", value)
    if found is None:
        raise RuntimeError(f"cannot read wrk's duration {value!r}")
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4, "h": 3.6e6}[found.group(2)]
    return float(found.group(1)) * scale
