"""Running the management API with uvicorn (uvloop + httptools); ``modelyard server``."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

ENV_SPEC = "MODELYARD_API_SPEC"


def app_from_env() -> FastAPI:
    """The uvicorn factory: opens the project named by ``MODELYARD_API_SPEC``."""
    from modelyard.api.app import create_management_app
    from modelyard.project import Project

    return create_management_app(Project.open(os.environ.get(ENV_SPEC) or None))


def run_api(
    spec_path: Path, *, host: str = "127.0.0.1", port: int = 8081, log_level: str = "info"
) -> None:
    """Serve the management API until interrupted (blocks)."""
    import uvicorn

    from modelyard.project import Project

    Project.open(spec_path).close()  # a bad spec fails here, with its own clear error
    os.environ[ENV_SPEC] = str(spec_path)
    uvicorn.run(
        "modelyard.api.server:app_from_env",
        factory=True,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level=log_level,
    )
