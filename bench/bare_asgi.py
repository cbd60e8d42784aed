"""The physical limit for ``bench/serving.py``: a bare ASGI app around ``Booster.predict``.

    BARE_ASGI_MODEL=model.txt OMP_NUM_THREADS=1 .venv/bin/python -m uvicorn bare_asgi:app \\
        --app-dir bench --loop uvloop --http httptools --lifespan off --no-access-log

A POST parses the Open Inference Protocol v2 body with orjson, builds the float
matrix from its single 2-D tensor, scores it on one thread and answers a v2
response; any GET answers ``{"ready": true}`` (the benchmark's readiness probe).
No routing, validation, metrics or logging: whatever a real server spends on
top of this app is its overhead, so the benchmark reports our throughput as a
share of this one.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import lightgbm as lgb
import numpy as np
import orjson

Message = dict[str, Any]
BOOSTER = lgb.Booster(model_file=os.environ["BARE_ASGI_MODEL"])
JSON = (b"content-type", b"application/json")
READY = b'{"ready":true}'


async def app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    payload = predict(body) if scope["method"] == "POST" else READY
    headers = [JSON, (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def predict(body: bytes) -> bytes:
    tensor = orjson.loads(body)["inputs"][0]
    X = np.array(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
    proba = np.asarray(BOOSTER.predict(X, num_threads=1))
    output = {"name": "predict", "shape": [len(proba)], "datatype": "FP64", "data": proba.tolist()}
    return orjson.dumps({"model_name": "bench", "outputs": [output]})
