"""The management API's app factory: one FastAPI app per opened project."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from modelyard.api import audit, datasets, identity, models, runs
from modelyard.api.errors import ERROR_RESPONSES, install_error_handlers
from modelyard.project import Project


class ORJSONResponse(JSONResponse):
    """JSON via orjson: datetimes as ISO 8601, NaN and infinities as null."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def create_management_app(project: Project) -> FastAPI:
    """The management API for ``project``; every route needs a bearer token."""
    app = FastAPI(
        title=f"modelyard management API · {project.name}",
        version="1",
        default_response_class=ORJSONResponse,
        responses=ERROR_RESPONSES,
    )
    app.state.project = project
    install_error_handlers(app)
    for module in (identity, datasets, runs, models, audit):
        app.include_router(module.router)
    return app
