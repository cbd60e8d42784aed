"""What a run of ``bench/serving.py`` found, and how it is printed and written as JSON.

Ratios compare our server with MLServer's best configuration *for each figure*
at each concurrency, and with the bare app; the logging comparison puts our
server with the prediction log on against the same server with it off, cell
by cell. ``acceptance`` turns both into the issues' pass/fail checks.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from harness import Cell, Placement
from serving_log import LogCheck, describe
from serving_servers import OURS, OURS_NOLOG

CONCURRENCY = (1, 16, 64)
LOADED_CONNECTIONS = 16  # the logging check is about a server under load
LOGGING_MIN_RATIO = 0.9  # issue 8: logging may cost at most 10 % of throughput


@dataclass
class PhaseResult:
    phase: Placement
    servers: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    cells: list[Cell] = field(default_factory=list)  # one per server and concurrency
    logs: list[LogCheck] = field(default_factory=list)
    samples: list[Cell] = field(default_factory=list)  # every measurement (--rounds)

    def get(self, server: str, connections: int) -> Cell | None:
        found = (c for c in self.cells if c.server == server and c.connections == connections)
        return next(found, None)

    def ours(self, connections: int) -> Cell | None:
        """Our server as users get it (log on), else the log-off run."""
        return self.get(OURS, connections) or self.get(OURS_NOLOG, connections)


def median_cells(samples: list[Cell]) -> list[Cell]:
    """Per server and concurrency, the measurement with the median req/s (the lower middle
    one of an even count), in the order they were first measured."""
    groups: dict[tuple[str, int], list[Cell]] = {}
    for cell in samples:
        groups.setdefault((cell.server, cell.connections), []).append(cell)
    return [sorted(g, key=lambda c: c.rps)[(len(g) - 1) // 2] for g in groups.values()]


@dataclass
class Overload:
    cell: Cell
    seconds: int
    statuses: dict[int, int]
    retry_after_503: int
    rss_mib: list[float]
    log: LogCheck | None = None

    @property
    def bad_5xx(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500 and s != 503)


@dataclass
class Ratios:
    """Ours against MLServer's best configuration for each figure, and against the bare app."""

    connections: int
    mlserver_best: dict[str, str]
    rps_vs_mlserver: float
    p50_mlserver_over_ours: float
    p99_mlserver_over_ours: float
    cpu_mlserver_over_ours: float
    rps_vs_bare: float


@dataclass
class LoggingRatios:
    """Our server with the prediction log on over the same server with it off, one cell."""

    connections: int
    rps: float  # > 1: faster with the log on
    p50: float  # > 1: slower with the log on
    p99: float
    cpu: float  # CPU per request


def ratios(result: PhaseResult) -> list[Ratios]:
    rows, nan = [], float("nan")
    for c in CONCURRENCY:
        ours_cell, bare_cell = result.ours(c), result.get("bare", c)
        peers = [x for x in result.cells if x.connections == c and x.server.startswith("mlserver")]
        if ours_cell is None:
            continue
        best = {
            "rps": max(peers, key=lambda x: x.rps, default=None),
            "p50": min(peers, key=lambda x: x.p50_ms, default=None),
            "p99": min(peers, key=lambda x: x.p99_ms, default=None),
            "cpu": min(peers, key=lambda x: x.cpu_ms_per_request, default=None),
        }
        rps, p50, p99, cpu = best["rps"], best["p50"], best["p99"], best["cpu"]
        rows.append(
            Ratios(
                c,
                {k: v.server for k, v in best.items() if v},
                ours_cell.rps / rps.rps if rps else nan,
                p50.p50_ms / ours_cell.p50_ms if p50 else nan,
                p99.p99_ms / ours_cell.p99_ms if p99 else nan,
                cpu.cpu_ms_per_request / ours_cell.cpu_ms_per_request if cpu else nan,
                ours_cell.rps / bare_cell.rps if bare_cell else nan,
            )
        )
    return rows


def logging_ratios(result: PhaseResult) -> list[LoggingRatios]:
    rows = []
    for c in CONCURRENCY:
        on, off = result.get(OURS, c), result.get(OURS_NOLOG, c)
        if on is None or off is None:
            continue
        cpu = on.cpu_ms_per_request / off.cpu_ms_per_request
        rows.append(
            LoggingRatios(c, on.rps / off.rps, on.p50_ms / off.p50_ms, on.p99_ms / off.p99_ms, cpu)
        )
    return rows


def acceptance(rows: list[Ratios], logging: list[LoggingRatios]) -> dict[str, bool]:
    """The issues' acceptance criteria, for the servers this run measured."""
    by_c = {r.connections: r for r in rows}
    checks: dict[str, tuple[float, bool]] = {}  # label: (ratio, passed)
    if r64 := by_c.get(64):
        rps, p99 = r64.rps_vs_mlserver, r64.p99_mlserver_over_ours
        checks["64 conns: req/s >= 4x MLServer's best"] = (rps, rps >= 4)
        checks["64 conns: p99 below MLServer's best"] = (p99, p99 > 1)
    if r1 := by_c.get(1):
        p50 = r1.p50_mlserver_over_ours
        checks["1 conn: p50 <= half of MLServer's best"] = (p50, p50 >= 2)
    for r in rows:
        label = f"{r.connections} conns: req/s >= 75% of the bare app"
        checks[label] = (r.rps_vs_bare, r.rps_vs_bare >= 0.75)
    for lr in logging:  # "under load": one connection leaves the server idle between requests
        if lr.connections >= LOADED_CONNECTIONS:
            label = f"{lr.connections} conns: req/s with the log on >= 90% of log off"
            checks[label] = (lr.rps, lr.rps >= LOGGING_MIN_RATIO)
    return {label: passed for label, (ratio, passed) in checks.items() if not math.isnan(ratio)}


# ---------------------------------------------------------------------- printing


def cell_line(cell: Cell) -> str:
    errors = f"  non-2xx {cell.non_2xx}" if cell.non_2xx else ""
    errors += f"  socket errors: {cell.socket_errors}" if cell.socket_errors else ""
    return (
        f"{cell.server:<22}{cell.connections:>6}{cell.rps:>10,.0f}{cell.p50_ms:>9.2f}"
        f"{cell.p99_ms:>9.2f}{cell.cpu_ms_per_request:>12.3f}{errors}"
    )


def print_phase(result: PhaseResult, args: argparse.Namespace) -> None:
    phase = result.phase
    print(f"\n== phase {phase.key}: {phase.title}; wrk {phase.wrk_threads} thread(s), ", end="")
    rounds = f", the median of {args.rounds} rounds" if args.rounds > 1 else ""
    print(f"{args.duration} s per cell after a {args.warmup} s warm-up{rounds} ==")
    for name, note in result.servers.items():
        print(f"  {name}: {note}" if note else f"  {name}")
    for name, problem in result.failed.items():
        print(f"  {name}: NOT MEASURED, {problem.splitlines()[0]}")
    print(f"{'server':<22}{'conns':>6}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/req':>12}")
    for c in CONCURRENCY:
        for cell in (x for x in result.cells if x.connections == c):
            print(cell_line(cell))
    rows, logging = ratios(result), logging_ratios(result)
    peers = [r for r in rows if r.mlserver_best or not math.isnan(r.rps_vs_bare)]
    if peers:
        print("ratios, > 1 is better for us (MLServer: its best configuration for each figure):")
    for r in peers:
        print(
            f"  {r.connections:>2} conns: req/s x{r.rps_vs_mlserver:.2f}, p50 "
            f"x{r.p50_mlserver_over_ours:.2f}, p99 x{r.p99_mlserver_over_ours:.2f}, CPU/req "
            f"x{r.cpu_mlserver_over_ours:.2f}; "
            f"ours/bare {r.rps_vs_bare:.0%}"
        )
    for r in rows:
        best = ", ".join(f"{k} {v}" for k, v in r.mlserver_best.items())
        if best:
            print(f"  MLServer's best at {r.connections} conns: {best}")
    print_logging(result)
    for check in result.logs:
        print(f"  {describe(check)}")
    for label, passed in acceptance(rows, logging).items():
        print(f"  [{'pass' if passed else 'FAIL'}] {label}")


def print_logging(result: PhaseResult) -> None:
    """Ours with the log on beside ours with it off, each concurrency; ratios are on / off."""
    rows = {r.connections: r for r in logging_ratios(result)}
    if not rows:
        return
    print("prediction log on / off (ours, same cells as above):")
    print(
        f"{'conns':>7}{'req/s on':>10}{'off':>8}{'on/off':>8}{'p50 on':>9}{'off':>7}"
        f"{'p99 on':>9}{'off':>7}{'CPU/req on':>12}{'off':>7}{'on/off':>8}"
    )
    for c, r in rows.items():
        on, off = result.get(OURS, c), result.get(OURS_NOLOG, c)
        assert on is not None and off is not None
        print(
            f"{c:>7}{on.rps:>10,.0f}{off.rps:>8,.0f}{r.rps:>8.3f}{on.p50_ms:>9.2f}"
            f"{off.p50_ms:>7.2f}{on.p99_ms:>9.2f}{off.p99_ms:>7.2f}"
            f"{on.cpu_ms_per_request:>12.3f}{off.cpu_ms_per_request:>7.3f}{r.cpu:>8.3f}"
        )


def print_in_process(limits: dict[str, dict[str, float]]) -> None:
    print("\nin-process limit, one thread, core 0 (median µs per row):")
    for name, by_batch in limits.items():
        figures = "  ".join(f"{k}: {v:7.2f}" for k, v in by_batch.items())
        print(f"  {name:<42}{figures}")


def print_overload(o: Overload) -> None:
    statuses = ", ".join(f"{s}: {n:,}" for s, n in sorted(o.statuses.items()))
    n503 = o.statuses.get(503, 0)
    print(
        f"\n== overload: {o.cell.server} pinned, {o.cell.connections} connections, {o.seconds} s =="
    )
    print(f"  {sum(o.statuses.values()):,} responses ({statuses})")
    print(f"  {o.cell.rps:,.0f} req/s, p50 {o.cell.p50_ms:.1f} ms, p99 {o.cell.p99_ms:.1f} ms")
    print(f"  socket errors: {o.cell.socket_errors or 'none'}")
    print(f"  [{'pass' if o.bad_5xx == 0 else 'FAIL'}] no 5xx but 503 ({o.bad_5xx} others)")
    mark = "pass" if o.retry_after_503 == n503 else "FAIL"
    print(f"  [{mark}] 503s with Retry-After: {o.retry_after_503:,} of {n503:,}")
    if o.log:
        print(f"  {describe(o.log)}")
    if rss := o.rss_mib:
        print(f"  RSS MiB: start {rss[0]:.0f}, max {max(rss):.0f}, end {rss[-1]:.0f}", end="")
        print(f" ({len(rss)} samples, one a second)")


def failures(results: list[PhaseResult], overload: Overload | None) -> bool:
    """A server that could not be measured, or a prediction log that lost or invented rows."""
    logs = [c for r in results for c in r.logs] + (
        [overload.log] if overload and overload.log else []
    )
    return any(r.failed for r in results) or not all(c.passed for c in logs)


def figures(
    limits: dict[str, dict[str, float]], results: list[PhaseResult], overload: Overload | None
) -> dict[str, Any]:
    phases = {}
    for r in results:
        rows, logging = ratios(r), logging_ratios(r)
        phases[r.phase.key] = {
            "setup": asdict(r.phase),
            "servers": r.servers,
            "failed": r.failed,
            "cells": [asdict(c) for c in r.cells],
            "samples": [asdict(c) for c in r.samples],
            "ratios": [asdict(x) for x in rows],
            "logging_on_over_off": [asdict(x) for x in logging],
            "prediction_log": [_log_figures(c) for c in r.logs],
            "acceptance": acceptance(rows, logging),
        }
    overload_figures = None
    if overload:
        overload_figures = {**asdict(overload), "bad_5xx": overload.bad_5xx}
        overload_figures["log"] = _log_figures(overload.log) if overload.log else None
    return {"in_process_us_per_row": limits, "phases": phases, "overload": overload_figures}


def _log_figures(check: LogCheck) -> dict[str, Any]:
    return {**asdict(check), "expected_rows": check.expected_rows, "passed": check.passed}
