"""Serving throughput and latency: ``modelyard serve`` vs MLServer vs a bare ASGI app, one run.

    .venv/bin/python bench/serving.py [--duration 10] [--quick] [--logging on,off]
                                      [--json out.json] [--keep DIR]

Every server gets the same LightGBM booster (200 trees, 31 leaves, 30 float
features, generated data, imported with ``modelyard models import``) and the
same bytes: one OIP v2 request holding a single FP32 tensor [1, 30], posted to
``/v2/models/bench/infer``; every answer is checked against in-process
``Booster.predict`` (1e-6) before timing. Servers: ``modelyard serve``, from a
project whose spec leaves the prediction log on (``modelyard``, the default)
and, with ``--logging on,off`` (the default), from a twin project whose spec
turns it off (``modelyard-nolog``); the bare app (``bench/bare_asgi.py``:
parse, predict, answer — the physical limit); MLServer 1.7.1 +
mlserver-lightgbm from ``.venv-bench`` in its fastest settings found here,
without and with adaptive batching (``bench/README.md`` says what was tried).
In one run the script measures

1. the in-process limit on core 0: µs per row of ``Booster.predict``, of ONNX
   Runtime on the bundle's ONNX twin and of the bundle path, at batch 1 and
   1,024, and of the bare app's handler;
2. phase "pinned" (servers on core 0, ``wrk`` on core 1, one thread) and phase
   "unpinned" (2 workers where a server has them, ``wrk`` with 2 threads): at
   1, 16 and 64 connections a warm-up, then ``--duration`` seconds per server,
   servers interleaved (ours with the log on and off in the pinned phase; the
   first of ``--logging`` in the unpinned one); req/s, p50, p99 and the
   server's CPU per request;
3. overload: our server alone (the first of ``--logging``) under 256
   connections for 60 s, a Lua script counting statuses and 503s with
   ``Retry-After``, RSS sampled every second;

then prints a table per phase, the ratios against MLServer's best
configuration for each figure, against the bare app and of log on over log
off, and the acceptance checks. After every run of our server its prediction
log is checked (``bench/serving_log.py``): as many rows as requests answered,
minus the drops it counted, scores and inputs as sent; none with the log off.
Every process runs on loopback with ``OMP_NUM_THREADS=1`` in its own session,
stopped with its process group on exit, Ctrl-C and SIGTERM. Needs ``wrk`` and
``taskset``; installs MLServer into ``.venv-bench`` if missing (with uvloop
0.21.0: MLServer 1.7.1 breaks with uvloop >= 0.22).

The plumbing lives next to this script: ``harness.py`` (processes, wrk),
``serving_model.py`` (the booster, its projects, the in-process limit),
``serving_servers.py``, ``serving_log.py`` and ``serving_report.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from harness import Cell, Placement, Processes, RssSampler, measure, parse_wrk, write_lua, wrk
from serving_log import LogWatch
from serving_model import MODEL, N_FEATURES, build_model, in_process_limit, register, request_body
from serving_report import (
    CONCURRENCY,
    Overload,
    PhaseResult,
    cell_line,
    failures,
    figures,
    median_cells,
    print_in_process,
    print_overload,
    print_phase,
)
from serving_servers import (
    MLSERVER_CONFIGS,
    PINNED,
    UNPINNED,
    Server,
    Setup,
    Target,
    bare,
    ensure_mlserver,
    launch,
    mlserver,
    ours,
)

# ---------------------------------------------------------------------- phases


def run_phase(
    setup: Setup, where: Placement, args: argparse.Namespace, procs: Processes
) -> PhaseResult:
    print(f"\nphase {where.key}: {where.title}", flush=True)
    servers = our_servers(setup, where, args)
    servers += [bare(setup, where)] if "bare" in args.servers else []
    if "mlserver" in args.servers:
        servers += [mlserver(setup, where, config) for config in MLSERVER_CONFIGS[where.key]]
    watches = {s.name: watch(s, where.key) for s in servers if s.logging is not None}
    targets, failed = launch(procs, servers, setup, where.key)
    result = PhaseResult(where, {t.name: t.note for t in targets}, failed)
    for target in targets:
        if target.name in watches:
            watches[target.name].count(1, 0)  # launch's answer check
    lua = write_lua(setup.work, setup.body)
    for connections in CONCURRENCY:
        for round_ in range(args.rounds):  # interleaved, so a drift of the machine hits all alike
            for target in targets if round_ % 2 == 0 else targets[::-1]:
                cell = run_cell(target, lua, connections, args, where, watches.get(target.name))
                result.samples.append(cell)
                print(f"  {cell_line(cell)}", flush=True)
    result.cells = median_cells(result.samples)
    for target in targets:
        if target.name in watches:
            watches[target.name].scrape(target.base)
    procs.stop_all()  # our servers drain and write what their logs buffered
    result.logs = [watches[t.name].finish(setup.model) for t in targets if t.name in watches]
    return result


def our_servers(setup: Setup, where: Placement, args: argparse.Namespace) -> list[Server]:
    """Ours with each ``--logging`` setting in the pinned phase, with the first elsewhere."""
    if "modelyard" not in args.servers:
        return []
    settings = args.logging if where is PINNED else args.logging[:1]
    return [ours(setup, where, logging=on) for on in settings]


def watch(server: Server, tag: str) -> LogWatch:
    return LogWatch(f"{tag} {server.name}", server.cwd, bool(server.logging), server.workers)


def run_cell(
    target: Target,
    lua: Path,
    connections: int,
    args: argparse.Namespace,
    where: Placement,
    log: LogWatch | None,
) -> Cell:
    warm = parse_wrk(wrk(target.url, lua, connections, args.warmup, where), target.name)
    cell = measure(target.name, target.url, target.proc.pid, lua, connections, args.duration, where)
    if log is not None:
        for run in (warm, cell):
            log.count(run.responses - run.non_2xx, connections)
    return cell


# ---------------------------------------------------------------------- overload


def run_overload(setup: Setup, args: argparse.Namespace, procs: Processes) -> Overload | None:
    """Our server alone (as in the pinned phase) under many connections; RSS every second."""
    conns, seconds = args.overload_connections, args.overload_seconds
    server = ours(setup, PINNED, logging=args.logging[0])
    print(f"\noverload: {server.name}, {conns} connections, {seconds} s", flush=True)
    log = watch(server, "overload")
    targets, _ = launch(procs, [server], setup, "overload")
    if not targets:
        return None
    target = targets[0]
    log.count(1, 0)
    lua = write_lua(setup.work, setup.body, count_statuses=True)
    try:
        with RssSampler(target.proc.pid) as rss:
            report = wrk(target.url, lua, conns, seconds, PINNED)
        log.scrape(target.base)
    finally:
        procs.stop_all()
    cell = parse_wrk(report, target.name)
    statuses = {int(k.split()[1]): n for k, n in cell.extra.items() if k.startswith("status ")}
    log.count(statuses.get(200, 0), conns)
    retry_after = cell.extra.get("retry-after-503", 0)
    return Overload(cell, seconds, statuses, retry_after, rss.samples, log.finish(setup.model))


# ---------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per cell (default 10)")
    ap.add_argument("--warmup", type=int, default=1, help="warm-up seconds per cell (default 1)")
    ap.add_argument("--quick", action="store_true", help="2 s cells, 5 s overload: a smoke run")
    ap.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure every cell this many times, order alternating; the median counts",
    )
    ap.add_argument("--phases", default="pinned,unpinned", help="default: pinned,unpinned")
    ap.add_argument("--servers", default="modelyard,bare,mlserver", help="default: all three")
    ap.add_argument(
        "--logging",
        default="on,off",
        metavar="on,off",
        help="our server's prediction log: 'on,off' (default) runs ours with each, "
        "interleaved, in the pinned phase; the first setting serves the other runs",
    )
    ap.add_argument(
        "--mlserver-batch",
        default="16:0.0005",
        metavar="ROWS:SECONDS",
        help="MLServer's max_batch_size:max_batch_time when batching (default 16:0.0005)",
    )
    ap.add_argument("--overload", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--overload-seconds", type=int, default=60)
    ap.add_argument("--overload-connections", type=int, default=256)
    ap.add_argument("--json", type=Path, help="write every figure to this file")
    ap.add_argument("--keep", type=Path, help="work in this folder (logs, model) and keep it")
    args = ap.parse_args()
    if args.quick:
        args.duration, args.warmup, args.overload_seconds = 2, 1, 5
    args.servers = set(args.servers.split(","))
    rows, seconds = args.mlserver_batch.split(":")
    args.mlserver_batch = (int(rows), float(seconds))
    settings = [s.strip() for s in args.logging.split(",") if s.strip()]
    if not settings or not set(settings) <= {"on", "off"} or len(set(settings)) < len(settings):
        ap.error(f"--logging takes on, off, on,off or off,on; got {args.logging!r}")
    args.logging = [s == "on" for s in settings]
    return args


def main() -> int:
    args = parse_args()
    missing = [tool for tool in ("wrk", "taskset") if not shutil.which(tool)]
    if missing or (os.cpu_count() or 0) < 2:
        print(f"needs 2 cores, wrk and taskset (missing: {missing or 'cores'})", file=sys.stderr)
        return 2

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    work = args.keep or Path(tempfile.mkdtemp(prefix="modelyard-bench-serving-"))
    work.mkdir(parents=True, exist_ok=True)
    procs = Processes(work)
    try:
        return run(args, work, procs)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping servers", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path, procs: Processes) -> int:
    started, load_before = time.monotonic(), os.getloadavg()[1]
    model = build_model(work)
    projects = {on: work / ("project" if on else "project-nolog") for on in args.logging}
    for on, folder in projects.items():
        register(folder, model, logging=on)
    body = request_body(model.row)
    print(f"model: LightGBM binary, 200 trees, 31 leaves, {N_FEATURES} features, imported as")
    print(f"  {MODEL}@champion with `modelyard models import`; request: {len(body)} bytes")
    if "mlserver" in args.servers and (problem := ensure_mlserver()):
        print(f"MLServer not measured: {problem}")
        args.servers.discard("mlserver")
    setup = Setup(work, projects, model, body, args.mlserver_batch)
    spec = projects[args.logging[0]] / "modelyard.yaml"
    limits = in_process_limit(model, spec, body)
    print_in_process(limits)
    phases = {p.key: p for p in (PINNED, UNPINNED)}
    results = [run_phase(setup, phases[k], args, procs) for k in args.phases.split(",") if k]
    overload = run_overload(setup, args, procs) if args.overload else None

    print_in_process(limits)
    for result in results:
        print_phase(result, args)
    if overload:
        print_overload(overload)
    load = (load_before, os.getloadavg()[1])
    print(f"\ntotal {time.monotonic() - started:.0f} s; 5-minute load average {load[0]:.1f} before")
    print(f"the run, {load[1]:.1f} at its end (its own included; 2 cores: above ~1, expect noise)")
    if args.json:
        every = {**figures(limits, results, overload), "load_average_5min": load}
        args.json.write_text(json.dumps(every, indent=2))
    return 1 if failures(results, overload) or (args.overload and not overload) else 0


if __name__ == "__main__":
    sys.exit(main())
