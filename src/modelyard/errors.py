"""Errors raised by modelyard.

Every message says what was wrong, where, and what to do next. Errors from
dependencies (SQLAlchemy, pydantic, fsspec, LightGBM, ...) are mapped to these
classes at the boundary, so callers only ever catch ``ModelyardError``.

    ModelyardError
    ├── SpecError            modelyard.yaml is missing, unreadable or invalid
    ├── StoreError           the metadata database cannot be opened or written
    │   └── MigrationError   the database schema cannot be brought up to date
    ├── ArtifactError        a blob is missing, unreadable, or fails its sha256 check
    ├── NotFoundError        a named object (dataset, run, model, alias, ...) does not exist
    ├── ConflictError        the write would break a uniqueness or state rule
    ├── AuthenticationError  no API token, or one that is unknown, revoked or expired (HTTP 401)
    ├── PermissionDeniedError  the user's role lacks the permission (HTTP 403)
    ├── DataError            a data set cannot be read or does not match what is expected
    │   └── NotFittedStepError   (data.cleaning) a cleaning step used before fit
    ├── TrainingError        a candidate model could not be fitted
    ├── ServingError         the inference server cannot load or serve a model
    └── InvalidInputError    a request or an argument is malformed (HTTP 422)

The HTTP layers map these to 4xx responses with the body
``{"error": {"type": ..., "message": ..., "details": ...}}``.
"""

from __future__ import annotations

from typing import Any


class ModelyardError(Exception):
    """Base class of every error modelyard raises on purpose."""

    http_status = 400

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The JSON body the HTTP layers return for this error."""
        return {
            "error": {
                "type": type(self).__name__,
                "message": self.message,
                "details": self.details,
            }
        }


class SpecError(ModelyardError):
    """The project spec is missing, unreadable or invalid.

    ``issues`` holds one entry per problem, each naming the file, the line,
    the field and what is allowed.
    """

    http_status = 422

    def __init__(self, message: str, *, issues: list[Any] | None = None) -> None:
        super().__init__(message, details=[str(i) for i in issues or []])
        self.issues = list(issues or [])


class StoreError(ModelyardError):
    """The metadata database cannot be opened, read or written."""

    http_status = 503


class MigrationError(StoreError):
    """The database schema cannot be brought up to date."""


class ArtifactError(ModelyardError):
    """A blob is missing, unreadable, or its content does not match its sha256."""

    http_status = 500


class NotFoundError(ModelyardError):
    """A named object does not exist."""

    http_status = 404


class ConflictError(ModelyardError):
    """The write would break a uniqueness or state rule."""

    http_status = 409


class AuthenticationError(ModelyardError):
    """No API token was given, or it is unknown, revoked, expired or its user is disabled."""

    http_status = 401


class PermissionDeniedError(ModelyardError):
    """The user is known, but their role does not grant the permission asked for."""

    http_status = 403


class DataError(ModelyardError):
    """A data set cannot be read, or does not match what is expected."""

    http_status = 422


class TrainingError(ModelyardError):
    """A candidate model could not be fitted."""


class ServingError(ModelyardError):
    """The inference server cannot load or serve a model."""

    http_status = 503


class InvalidInputError(ModelyardError):
    """A request or an argument is malformed."""

    http_status = 422


class NotificationError(ModelyardError):
    """An alert channel could not be reached, or refused the notification."""

    http_status = 502
