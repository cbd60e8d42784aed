"""``modelyard serve``: the inference server for a registered model version."""

from __future__ import annotations

from typing import Annotated

import typer

from modelyard.cli._common import console


def serve_command(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME, NAME@V or NAME@alias")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes (one core each; one thread each).")
    ] = 1,
    runtime: Annotated[
        str,
        typer.Option(
            help="auto: the ONNX twin when it matched the native model to 1e-6 at "
            "registration, else native; native; onnx."
        ),
    ] = "auto",
    max_wait_ms: Annotated[
        float,
        typer.Option(
            min=0,
            help="Let a batch fill for up to this long (heavy models). 0: score what is "
            "queued at once, never wait.",
        ),
    ] = 0.0,
    max_batch_rows: Annotated[int, typer.Option(min=1, help="Rows per predict call.")] = 1024,
    max_queue_rows: Annotated[
        int, typer.Option(min=1, help="Queued rows beyond which requests get 503.")
    ] = 65_536,
    max_body_mb: Annotated[float, typer.Option(min=0.001, help="Largest request body.")] = 8.0,
    watch: Annotated[
        float,
        typer.Option(
            min=0,
            help="Re-resolve the alias every this many seconds and swap in a new version "
            "(0: only on POST /v2/repository/models/NAME/load).",
        ),
    ] = 0.0,
) -> None:
    """Serve a model version over HTTP: OIP v2, MLflow /invocations, /v1 records, /metrics."""
    from modelyard.serve.app import ServeOptions
    from modelyard.serve.server import run_server
    from modelyard.spec import find_spec

    spec = find_spec(explicit=(ctx.obj or {}).get("spec")).resolve()
    options = ServeOptions(
        max_batch_rows=max_batch_rows,
        max_wait_ms=max_wait_ms,
        max_queue_rows=max_queue_rows,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        watch_seconds=watch,
    )
    console().print(f"Serving {ref} on http://{host}:{port} (docs at /docs). Ctrl-C stops.")
    run_server(spec, ref, host=host, port=port, workers=workers, runtime=runtime, options=options)
