"""The inference server's ASGI app: OIP v2, MLflow scoring and plain records, one process.

The app is a plain ASGI callable, not a web framework: routing is a dict
lookup on the exact path (built for the served model's name), the body is
read once, parsed with orjson, validated against the model's signature on its
own structure, queued for the adaptive batcher and answered with orjson bytes.
Framework routing, dependency injection and response models cost more per
request than a LightGBM prediction does; this path keeps the server's own
cost close to what a bare ASGI loop pays (see ``bench/serving.py``).

Every failure is a JSON body ``{"error": {type, message, details}}``: 4xx for
the client's mistakes (never echoing a value it sent), 503 with
``Retry-After`` when the server is at capacity, and a logged 500 for
anything else — a traceback never reaches the client.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from modelyard.errors import InvalidInputError, ModelyardError, NotFoundError, ServingError
from modelyard.serve import openapi
from modelyard.serve.batching import Batcher, Overloaded
from modelyard.serve.metrics import ServerMetrics
from modelyard.serve.model import ServedModel
from modelyard.serve.protocols import (
    Prediction,
    parse_mlflow,
    parse_v1,
    parse_v2,
    prediction,
    v1_predictions,
    v2_outputs,
)
from modelyard.serve.signature import Rows

if TYPE_CHECKING:
    from modelyard.monitor.feedback import FeedbackLog
    from modelyard.monitor.predlog import PredictionLog

log = logging.getLogger("modelyard.serve")

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
JSON = b"application/json"


@dataclass(frozen=True)
class ServeOptions:
    """How the server batches, bounds its work and reloads."""

    max_batch_rows: int = 1024
    max_wait_ms: float = 0.0
    max_queue_rows: int = 65_536
    max_in_flight: int = 2048
    max_body_bytes: int = 8 * 1024 * 1024
    watch_seconds: float = 0.0


@dataclass(slots=True)
class Scored:
    """One answered inference request, as prediction hooks (the prediction log) see it.

    Made for every request while hooks are set: slots and no ``frozen`` (whose
    ``__init__`` goes through ``object.__setattr__``) keep that to ~0.2 µs."""

    request_id: str | None
    model: ServedModel
    rows: Rows
    prediction: Prediction
    seconds: float


PredictionHook = Callable[[Scored], None]


class PayloadTooLarge(InvalidInputError):
    http_status = 413


class MethodNotAllowed(ModelyardError):
    http_status = 405


@dataclass
class Request:
    scope: MutableMapping[str, Any]
    receive: Receive
    params: dict[str, str]
    limit: int

    def header(self, name: bytes) -> str:
        for key, value in self.scope["headers"]:
            if key == name:
                return str(value.decode("latin-1"))
        return ""

    async def body(self) -> bytes:
        length = self.header(b"content-length")
        if length.isdigit() and int(length) > self.limit:
            raise self._too_large()
        message = await self.receive()
        body: bytes = message.get("body", b"")
        if not message.get("more_body"):
            if len(body) > self.limit:
                raise self._too_large()
            return body
        chunks, size = [body], len(body)
        while message.get("more_body"):
            message = await self.receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise self._too_large()
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"The request body is larger than this server accepts "
            f"({self.limit / 1024 / 1024:g} MiB); split it into smaller requests."
        )


Reply = tuple[int, bytes, bytes, Headers | None]
Handler = Callable[[Request], Awaitable[Reply]]


class Live:
    """What the app serves right now: the model and its batcher, swapped together.

    ``tapped``: the prediction log takes this model's tensor requests from the
    batcher, a batch at a time, rather than through ``record`` one by one."""

    def __init__(self, model: ServedModel, batcher: Batcher) -> None:
        self.model = model
        self.batcher = batcher
        self.tapped = batcher.tap is not None


class InferenceApp:
    """The ASGI callable: ``uvicorn.run(InferenceApp(model), ...)``."""

    def __init__(
        self,
        model: ServedModel,
        options: ServeOptions | None = None,
        *,
        reload: Callable[[], ServedModel] | None = None,
        hooks: Sequence[PredictionHook] = (),
        prediction_log: PredictionLog | None = None,
        feedback: FeedbackLog | None = None,
    ) -> None:
        self.options = options or ServeOptions()
        self.reload = reload
        self.prediction_log = prediction_log
        self.feedback = feedback
        self.hooks = list(hooks)
        self.metrics = ServerMetrics()
        self.started = time.time()
        self._id_prefix = f"{secrets.token_hex(8)}-"
        self._requests_made = 0
        self._reload_lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None
        self._install(model)
        fixed: dict[tuple[str, str], tuple[Handler, str | None]] = {
            ("GET", "/v2/health/live"): (self._live, None),
            ("GET", "/v2/health/ready"): (self._ready, None),
            ("GET", "/v2"): (self._server_metadata, None),
            ("GET", "/ping"): (self._ready, None),
            ("GET", "/health"): (self._ready, None),
            ("GET", "/metrics"): (self._metrics, None),
            ("GET", "/openapi.json"): (self._openapi, None),
            ("GET", "/docs"): (self._docs, None),
            ("POST", "/invocations"): (self._invocations, "mlflow"),
            ("POST", "/v2/repository/index"): (self._index, None),
            ("POST", "/v1/feedback"): (self._feedback, "feedback"),
        }
        self._fixed = fixed

    # -- model swapping -----------------------------------------------------

    def _install(self, model: ServedModel) -> None:
        o = self.options
        tap = None
        if self.prediction_log is not None:
            tap = self.prediction_log.batch_tap(model, model.bundle.task)
        batcher = Batcher(
            model.score or model.bundle.predict,
            max_batch_rows=o.max_batch_rows,
            max_wait=o.max_wait_ms / 1000,
            max_queue_rows=o.max_queue_rows,
            on_batch=self.metrics.batch,
            tap=tap,
        )
        self.live = Live(model, batcher)
        self.metrics.model = (model.name, model.version, model.runtime)
        self._openapi_body = orjson.dumps(openapi.document(model))
        name = model.name
        self._named: dict[tuple[str, str], tuple[Handler, dict[str, str], str | None]] = {
            ("POST", f"/v2/models/{name}/infer"): (self._infer, {"name": name}, "v2"),
            ("POST", f"/v1/models/{name}:predict"): (self._predict_v1, {"name": name}, "v1"),
            ("GET", f"/v2/models/{name}"): (self._model_metadata, {"name": name}, None),
            ("GET", f"/v2/models/{name}/ready"): (self._model_ready, {"name": name}, None),
        }

    async def reload_model(self) -> bool:
        """Re-resolve the served reference; swap in a new version. True if it changed."""
        if self.reload is None:
            raise ServingError(
                "This server was started with a model object, not a reference; it cannot reload."
            )
        async with self._reload_lock:
            fresh = await asyncio.to_thread(self.reload)
            current = self.live.model
            if (fresh.name, fresh.version, fresh.runtime) == (
                current.name,
                current.version,
                current.runtime,
            ):
                return False
            self._install(fresh)  # requests already queued finish on the old batcher
            self.metrics.reloads += 1
            log.warning("now serving %s (was %s)", fresh.ref, current.ref)
            return True

    # -- ASGI ----------------------------------------------------------------

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        key = (scope["method"], scope["path"])
        named = self._named.get(key)
        if named is not None:
            handler, params, protocol = named
        else:
            handler, params, protocol = self._route(*key)
        request = Request(scope, receive, params, self.options.max_body_bytes)
        metrics = self.metrics
        if protocol is not None:
            metrics.in_flight += 1
        try:
            if protocol is not None and metrics.in_flight > self.options.max_in_flight:
                raise Overloaded(f"The server is at capacity ({metrics.in_flight} requests).")
            status, body, content_type, headers = await handler(request)
        except ModelyardError as exc:
            status, body, content_type = exc.http_status, orjson.dumps(exc.to_dict()), JSON
            headers = _retry_after(exc)
            metrics.errors[type(exc).__name__] += 1
        except Exception:
            log.exception("unhandled error on %s %s", *key)
            status, body, content_type, headers = 500, INTERNAL_ERROR, JSON, None
            metrics.errors["InternalError"] += 1
        finally:
            if protocol is not None:
                metrics.in_flight -= 1
        out: Headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
        ]
        if headers:
            out += headers
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": body})
        if protocol is not None:
            metrics.request(protocol, status, time.perf_counter() - started)

    def _route(self, method: str, path: str) -> tuple[Handler, dict[str, str], str | None]:
        fixed = self._fixed.get((method, path))
        if fixed is not None:
            return fixed[0], {}, fixed[1]
        allowed = False
        for route_method, pattern, handler_name, protocol in TEMPLATES:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if route_method == method:
                return getattr(self, handler_name), match.groupdict(), protocol
            allowed = True
        if allowed or any(p == path for (_, p) in self._fixed):
            return self._not_allowed, {}, None
        return self._not_found, {}, None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.options.watch_seconds > 0 and self.reload is not None:
                    self._watcher = asyncio.create_task(self._watch())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._watcher is not None:
                    self._watcher.cancel()
                for log_ in (self.prediction_log, self.feedback):
                    if log_ is not None:  # write what is buffered before the process ends
                        await asyncio.to_thread(log_.close)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.options.watch_seconds)
            try:
                await self.reload_model()
            except Exception:  # a store hiccup must not stop serving the current version
                log.exception("checking for a new model version failed; still serving")

    # -- inference -------------------------------------------------------------

    async def _score(
        self, live: Live, rows: Rows, request_id: str | None
    ) -> tuple[Prediction, str | None]:
        """Score ``rows``; with the prediction log or hooks every request gets an id, made
        here when the client sent none, so that its labels can be attached later.

        A tensor request the model takes as is (``encode`` hands back its own
        matrix) is logged by the batcher's tap with its batch; any other goes
        to ``prediction_log.record``."""
        started = time.perf_counter()
        model = live.model
        X = model.signature.encode(rows)
        if rows.extra:
            self.metrics.extra_fields += len(rows.extra)
        logged = self.prediction_log
        if logged is not None or self.hooks:
            request_id = request_id or self._new_request_id()
        tapped = live.tapped and X is rows.matrix
        scores = await live.batcher.score(X, (request_id, started) if tapped else None)
        result = prediction(model.bundle, scores)
        if self.hooks or (logged is not None and not tapped):
            event = Scored(request_id, model, rows, result, time.perf_counter() - started)
            for hook in self.hooks:
                hook(event)
            if logged is not None and not tapped:
                logged.record(event)
        return result, request_id

    def _new_request_id(self) -> str:
        """A random per-process prefix and a counter: unique, and ten times cheaper than
        a uuid4 per request (which costs more than scoring an ONNX row)."""
        self._requests_made += 1
        return f"{self._id_prefix}{self._requests_made:x}"

    def _check(self, live: Live, request: Request) -> ServedModel:
        model = live.model
        name = request.params.get("name")
        if name is not None and name != model.name:
            raise NotFoundError(f"No model '{name}' here; this server serves '{model.name}'.")
        version = request.params.get("version")
        if version is not None and version != str(model.version):
            raise NotFoundError(
                f"Model '{model.name}' version {version} is not loaded; this server serves "
                f"version {model.version}."
            )
        return model

    async def _infer(self, request: Request) -> Reply:
        live = self.live
        model = self._check(live, request)
        json_length = request.header(b"inference-header-content-length")
        rows, request_id = parse_v2(
            await request.body(),
            model.signature,
            int(json_length) if json_length.isdigit() else None,
        )
        result, request_id = await self._score(live, rows, request_id)
        payload: dict[str, Any] = {
            "model_name": model.name,
            "model_version": str(model.version),
            "outputs": v2_outputs(result),
        }
        if request_id is not None:
            payload["id"] = request_id
        return 200, orjson.dumps(payload), JSON, None

    async def _invocations(self, request: Request) -> Reply:
        live = self.live
        content_type = request.header(b"content-type").lower()
        rows = parse_mlflow(await request.body(), content_type, live.model.signature)
        result, request_id = await self._score(live, rows, request.header(b"x-request-id") or None)
        body = orjson.dumps({"predictions": result.scores.tolist()})
        return 200, body, JSON, _request_id_header(request_id)

    async def _predict_v1(self, request: Request) -> Reply:
        live = self.live
        model = self._check(live, request)
        rows = parse_v1(await request.body(), model.signature)
        result, request_id = await self._score(live, rows, request.header(b"x-request-id") or None)
        payload: dict[str, Any] = {
            "model": model.name,
            "version": model.version,
            "predictions": v1_predictions(result),
        }
        if request_id is not None:
            payload["request_id"] = request_id
        return 200, orjson.dumps(payload), JSON, _request_id_header(request_id)

    # -- metadata, health, operations -------------------------------------------

    async def _live(self, request: Request) -> Reply:
        return 200, b'{"live":true}', JSON, None

    async def _ready(self, request: Request) -> Reply:
        model = self.live.model
        body = {
            "ready": True,
            "model": model.name,
            "version": model.version,
            "uptime_seconds": round(time.time() - self.started, 3),
        }
        return 200, orjson.dumps(body), JSON, None

    async def _server_metadata(self, request: Request) -> Reply:
        from modelyard import __version__

        body = {"name": "modelyard", "version": __version__, "extensions": ["model_repository"]}
        return 200, orjson.dumps(body), JSON, None

    async def _model_metadata(self, request: Request) -> Reply:
        return 200, orjson.dumps(openapi.metadata(self._check(self.live, request))), JSON, None

    async def _model_ready(self, request: Request) -> Reply:
        model = self._check(self.live, request)
        return 200, orjson.dumps({"name": model.name, "ready": True}), JSON, None

    async def _index(self, request: Request) -> Reply:
        model = self.live.model
        index = [{"name": model.name, "version": str(model.version), "state": "READY"}]
        return 200, orjson.dumps(index), JSON, None

    async def _load(self, request: Request) -> Reply:
        model = self._check(self.live, request)
        changed = await self.reload_model()
        now = self.live.model
        body = {
            "name": now.name,
            "version": now.version,
            "runtime": now.runtime,
            "previous_version": model.version,
            "reloaded": changed,
        }
        return 200, orjson.dumps(body), JSON, None

    async def _feedback(self, request: Request) -> Reply:
        from modelyard.monitor.feedback import parse_feedback

        if self.feedback is None:
            raise NotFoundError(
                "This server does not take feedback: its prediction log is off "
                "(monitoring.log.enabled: false). Use `modelyard feedback add FILE` instead."
            )
        accepted = self.feedback.add(parse_feedback(await request.body()))
        return 200, orjson.dumps({"accepted": accepted}), JSON, None

    async def _metrics(self, request: Request) -> Reply:
        logged = self.prediction_log.stats() if self.prediction_log is not None else None
        body = self.metrics.render(self.live.batcher.queued_rows, logged)
        return 200, body, b"text/plain; version=0.0.4; charset=utf-8", None

    async def _openapi(self, request: Request) -> Reply:
        return 200, self._openapi_body, JSON, None

    async def _docs(self, request: Request) -> Reply:
        return 200, openapi.swagger_html(self.live.model).encode(), b"text/html", None

    async def _not_found(self, request: Request) -> Reply:
        raise NotFoundError(
            f"Nothing at {request.scope['path']}; see /docs for this server's endpoints."
        )

    async def _not_allowed(self, request: Request) -> Reply:
        raise MethodNotAllowed(f"{request.scope['method']} is not allowed on this path.")


def _request_id_header(request_id: str | None) -> Headers | None:
    return [(b"x-request-id", request_id.encode("latin-1"))] if request_id else None


def _retry_after(exc: ModelyardError) -> Headers | None:
    seconds = getattr(exc, "retry_after_seconds", None)
    return [(b"retry-after", str(seconds).encode())] if seconds else None


INTERNAL_ERROR = orjson.dumps(
    {
        "error": {
            "type": "InternalError",
            "message": "The server failed to answer; the error is in its log.",
            "details": None,
        }
    }
)

_NAME = r"(?P<name>[^/:]+)"
_VERSION = r"(?P<version>[^/]+)"
TEMPLATES: tuple[tuple[str, re.Pattern[str], str, str | None], ...] = tuple(
    (method, re.compile(pattern), handler, protocol)
    for method, pattern, handler, protocol in (
        ("POST", rf"/v2/models/{_NAME}/infer", "_infer", "v2"),
        ("POST", rf"/v2/models/{_NAME}/versions/{_VERSION}/infer", "_infer", "v2"),
        ("POST", rf"/v1/models/{_NAME}:predict", "_predict_v1", "v1"),
        ("GET", rf"/v2/models/{_NAME}", "_model_metadata", None),
        ("GET", rf"/v2/models/{_NAME}/ready", "_model_ready", None),
        ("GET", rf"/v2/models/{_NAME}/versions/{_VERSION}", "_model_metadata", None),
        ("GET", rf"/v2/models/{_NAME}/versions/{_VERSION}/ready", "_model_ready", None),
        ("POST", rf"/v2/repository/models/{_NAME}/load", "_load", None),
    )
)


create_app = InferenceApp
"""``create_app(model, options, *, reload, hooks, prediction_log, feedback)``: the app."""
