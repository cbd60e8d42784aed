"""Every failure as ``{"error": {"type", "message", "details"}}``: 4xx for bad calls, 500 for bugs.

Known errors keep their ``http_status``; FastAPI's request validation becomes
a 422 listing each bad field; Starlette's own HTTP errors (unknown route,
wrong method) keep their status. Anything else is a bug: logged, and answered
with a JSON 500 that carries no traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from modelyard.errors import ModelyardError

log = logging.getLogger("modelyard.api")


class ErrorDetail(BaseModel):
    type: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in (
        (401, "No API token, or an unknown, revoked or expired one"),
        (403, "The token's user lacks the permission"),
        (404, "No such object"),
        (409, "The write conflicts with the current state"),
        (422, "The request is malformed"),
        (503, "The metadata store cannot be reached"),
    )
}
"""Documented on every route, so the OpenAPI spec describes each error a client can get."""


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ModelyardError, _known)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _bug)


def error_response(
    status: int, kind: str, message: str, details: Any = None, headers: Any = None
) -> JSONResponse:
    body = {"error": {"type": kind, "message": message, "details": details}}
    return JSONResponse(body, status_code=status, headers=headers)


async def _known(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ModelyardError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
    return JSONResponse(exc.to_dict(), status_code=exc.http_status, headers=headers)


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = [
        {
            "loc": [str(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        for error in exc.errors()
    ]
    listed = "; ".join(f"{'.'.join(f['loc'])}: {f['msg']}" for f in fields[:5])
    return error_response(
        422,
        "InvalidInputError",
        f"The request to {request.url.path} is not valid: {listed}. See /docs for its shape.",
        fields,
    )


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    kind = {404: "NotFoundError", 405: "MethodNotAllowedError"}.get(exc.status_code, "HTTPError")
    message = (
        f"No route {request.method} {request.url.path}; see /docs for the API."
        if exc.status_code in (404, 405)
        else str(exc.detail)
    )
    return error_response(exc.status_code, kind, message, headers=exc.headers)


async def _bug(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(
        500, "InternalError", "The server failed to answer; the error is in its log."
    )
