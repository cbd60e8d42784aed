"""A Python client for the management API: what the CLI uses when ``MODELYARD_URL`` is set.

    client = ManagementClient("https://modelyard.example.com", "my_…")
    client.approve("loans", 3, comment="looks good")

Every call sends the bearer token. Answers come back as the registry's own
dataclasses (``ModelVersion``, ``Decision``, ``AuditEvent``,
``AuditVerification``), so code written against the local registry reads them
the same way. A JSON error body is raised again as the ``modelyard.errors``
class it names (``ConflictError``, ``PermissionDeniedError``, …); a server that
cannot be reached is a ``StoreError`` naming the URL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from modelyard import errors
from modelyard.errors import ModelyardError, StoreError
from modelyard.registry.audit import AuditEvent, AuditVerification
from modelyard.registry.promotion import Decision
from modelyard.registry.versions import ModelVersion

DEFAULT_TIMEOUT = 30.0
"""Seconds to wait for the server to connect or answer."""


class ManagementClient:
    """The management API at ``url``, called with the API token ``token``."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ManagementClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reads

    def me(self) -> dict[str, Any]:
        """The token's user: ``name``, ``role``, ``permissions`` and ``token``."""
        return self._call("GET", "/api/v1/me")

    def models(self) -> list[ModelVersion]:
        """Every version of every registered model, by name then version."""
        return [_model(m) for m in self._call("GET", "/api/v1/models")["models"]]

    def model_version(self, name: str, ref: int | str) -> ModelVersion:
        """One version of ``name`` by number (3) or alias (champion)."""
        return _model(self._call("GET", f"/api/v1/models/{_seg(name)}/versions/{_seg(ref)}"))

    def audit(self, limit: int = 100, *, object_id: str | None = None) -> list[AuditEvent]:
        """The newest ``limit`` audit events, optionally only those about ``object_id``."""
        params: dict[str, Any] = {"limit": limit}
        if object_id is not None:
            params["object"] = object_id
        return [_event(e) for e in self._call("GET", "/api/v1/audit", params=params)["events"]]

    def audit_verify(self) -> AuditVerification:
        """The server's check of the audit log's hash chain."""
        result = self._call("GET", "/api/v1/audit/verify")["result"]
        return AuditVerification(
            ok=bool(result["ok"]),
            events=int(result["events"]),
            first_bad_seq=result.get("first_bad_seq"),
            reason=result.get("reason"),
            head_hash=result.get("head_hash"),
        )

    # ------------------------------------------------------------------ writes

    def approve(self, name: str, version: int, comment: str | None = None) -> Decision:
        """Approve ``name@version`` as the token's user."""
        body = {"comment": comment} if comment is not None else {}
        return _decision(self._version_post(name, version, "approve", body)["result"])

    def reject(self, name: str, version: int, comment: str) -> Decision:
        """Reject ``name@version`` as the token's user; ``comment`` says why."""
        answer = self._version_post(name, version, "reject", {"comment": comment})
        return _decision(answer["result"])

    def promote(
        self,
        name: str,
        version: int,
        stage: str = "production",
        override_reason: str | None = None,
    ) -> ModelVersion:
        """Move ``name@version`` to staging or production (gates and approvals apply)."""
        body: dict[str, Any] = {"stage": stage}
        if override_reason is not None:
            body["override_reason"] = override_reason
        return _model(self._version_post(name, version, "promote", body))

    def rollback(self, name: str, reason: str) -> ModelVersion:
        """Put the previous production version of ``name`` back; returns it."""
        path = f"/api/v1/models/{_seg(name)}/rollback"
        return _model(self._call("POST", path, json={"reason": reason}))

    # ------------------------------------------------------------------ plumbing

    def _version_post(
        self, name: str, version: int, action: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        path = f"/api/v1/models/{_seg(name)}/versions/{_seg(version)}/{action}"
        return self._call("POST", path, json=body)

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise StoreError(
                f"Cannot reach the modelyard server at {self.url}: {exc or type(exc).__name__}; "
                "check MODELYARD_URL (or --url) and that `modelyard api` is running there."
            ) from exc
        if response.is_error:
            raise _error_from(response, self.url)
        try:
            body: dict[str, Any] = response.json()
        except ValueError as exc:
            raise ModelyardError(
                f"The server at {self.url} answered {method} {path} with something other than "
                f"JSON ({response.headers.get('content-type', 'no content type')}); "
                "check MODELYARD_URL points at a modelyard management API."
            ) from exc
        return body


def _error_from(response: httpx.Response, url: str) -> ModelyardError:
    """The ``modelyard.errors`` class named by the JSON error body, else a ModelyardError."""
    try:
        error = response.json()["error"]
        kind, message, details = str(error["type"]), str(error["message"]), error.get("details")
    except (ValueError, KeyError, TypeError):
        text = response.text.strip()[:200] or response.reason_phrase
        failure = ModelyardError(
            f"The server at {url} answered HTTP {response.status_code}: {text}. "
            "Check MODELYARD_URL points at a modelyard management API."
        )
        failure.http_status = response.status_code
        return failure
    cls = getattr(errors, kind, None)
    if not (isinstance(cls, type) and issubclass(cls, ModelyardError)):
        cls = ModelyardError
    try:
        raised = cls(message, details=details)
    except TypeError:  # SpecError takes issues, not details
        raised = cls(message)
    raised.details = details
    raised.http_status = response.status_code
    return raised


def _seg(value: int | str) -> str:
    return quote(str(value), safe="")


def _when(value: Any) -> datetime:
    return datetime.fromisoformat(str(value))


def _model(data: dict[str, Any]) -> ModelVersion:
    return ModelVersion(
        id=data["id"],
        name=data["name"],
        version=int(data["version"]),
        digest=data["digest"],
        flavor=data["flavor"],
        run_id=data.get("run_id"),
        stage=data["stage"],
        aliases=tuple(data.get("aliases") or ()),
        metrics=data.get("metrics") or {},
        gates=data.get("gates") or [],
        spec_hash=data.get("spec_hash"),
        created_at=_when(data["created_at"]),
        baseline_digest=data.get("baseline_digest"),
    )


def _decision(data: dict[str, Any]) -> Decision:
    return Decision(
        ref=data["ref"],
        user=data["user"],
        decision=data["decision"],
        comment=data.get("comment"),
        created_at=_when(data["created_at"]),
    )


def _event(data: dict[str, Any]) -> AuditEvent:
    return AuditEvent(
        seq=int(data["seq"]),
        ts=_when(data["ts"]),
        actor=data["actor"],
        action=data["action"],
        object_type=data["object_type"],
        object_id=data["object_id"],
        payload=data.get("payload") or {},
        prev_hash=data.get("prev_hash"),
        hash=data["hash"],
    )
