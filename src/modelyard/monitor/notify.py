"""Telling on-call about an alert: a JSON webhook, a Slack-compatible webhook, or e-mail.

    deliveries = escalate(spec.monitoring, notification)   # every channel on call for its severity
    send(channel, notification)                            # one channel; raises NotificationError

- **webhook**: ``POST`` of ``Notification.to_dict()`` as JSON (rule, model,
  version, metric, value, threshold, direction, severity, state, window,
  started_at, url);
- **slack**: ``POST`` of ``{"text": ...}``, which Slack, Mattermost and
  Rocket.Chat incoming webhooks accept;
- **email**: a plain-text message over SMTP, subject
  ``[severity] rule on model: firing|resolved``.

Each send has a timeout and a few attempts with exponential backoff (a
connection error, a timeout, HTTP 429 or 5xx is retried; another 4xx is
not). ``escalate`` never raises: a channel that fails is recorded as a
``Delivery`` with ``ok=False`` and the reason, and the other channels are
still tried, so one broken webhook cannot stop the monitor. Webhook URLs are
secrets (a Slack URL is its own credential), so errors name only the host.

The channel transport is a small protocol (``Sender``); ``MemorySender`` is
its in-memory twin for tests and dry runs.
"""

from __future__ import annotations

import smtplib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from functools import partial
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import httpx

from modelyard.errors import ModelyardError, NotificationError
from modelyard.spec import Channel, Monitoring, Severity

__all__ = [
    "ATTEMPTS",
    "BACKOFF_SECONDS",
    "TIMEOUT_SECONDS",
    "Delivery",
    "MemorySender",
    "Notification",
    "NotificationError",
    "Sender",
    "escalate",
    "send",
]

ATTEMPTS = 3
BACKOFF_SECONDS = 0.5
TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Notification:
    """What on-call is told when a rule fires or resolves."""

    rule: str
    model: str
    version: int | None
    metric: str
    value: float | None
    threshold: float
    direction: str
    severity: Severity
    state: Literal["firing", "resolved"]
    window: str
    started_at: datetime
    url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The webhook's JSON body."""
        return {
            "rule": self.rule,
            "model": self.model,
            "version": self.version,
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "direction": self.direction,
            "severity": self.severity,
            "state": self.state,
            "window": self.window,
            "started_at": self.started_at.isoformat(),
            "url": self.url,
        }

    @property
    def subject(self) -> str:
        return f"[{self.severity}] {self.rule} on {self.model}: {self.state}"

    @property
    def summary(self) -> str:
        """One line: which model, which metric, its value against the threshold."""
        version = f" v{self.version}" if self.version is not None else ""
        value = "no value" if self.value is None else f"{self.value:.4g}"
        return (
            f"{self.subject} — {self.model}{version}: {self.metric} = {value} "
            f"(alert when {self.direction} {self.threshold:g}, over {self.window}), "
            f"since {self.started_at:%Y-%m-%d %H:%M:%S} UTC"
        )

    def text(self) -> str:
        """The e-mail body."""
        lines = [self.summary, ""]
        lines += [f"{key}: {value}" for key, value in self.to_dict().items() if value is not None]
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Delivery:
    """Whether one channel got one notification, and why not."""

    channel: str
    ok: bool
    error: str | None = None


class Sender(Protocol):
    """Delivers a notification to one channel, or raises ``NotificationError``."""

    def __call__(self, channel: Channel, alert: Notification) -> None: ...


@dataclass
class MemorySender:
    """The in-memory twin of ``send``: keeps what was sent; ``failing`` kinds raise."""

    sent: list[tuple[Channel, Notification]] = field(default_factory=list)
    failing: frozenset[str] = frozenset()

    def __call__(self, channel: Channel, alert: Notification) -> None:
        if channel.kind in self.failing:
            raise NotificationError(f"The {channel.kind} channel is set to fail.")
        self.sent.append((channel, alert))


def escalate(
    monitoring: Monitoring, alert: Notification, *, sender: Sender | None = None
) -> list[Delivery]:
    """Send ``alert`` to every channel on call for its severity; never raises."""
    deliver = sender or send
    deliveries = []
    for name in monitoring.on_call.get(alert.severity, ()):
        try:
            deliver(monitoring.channels[name], alert)
            deliveries.append(Delivery(name, True))
        except ModelyardError as exc:
            deliveries.append(Delivery(name, False, exc.message))
    return deliveries


def send(
    channel: Channel,
    alert: Notification,
    *,
    attempts: int = ATTEMPTS,
    backoff_seconds: float = BACKOFF_SECONDS,
    timeout_seconds: float = TIMEOUT_SECONDS,
) -> None:
    """Deliver ``alert`` through ``channel``, retrying; raise ``NotificationError`` on failure."""
    deliver = _delivery(channel, alert, timeout_seconds)
    failure: _Failure | None = None
    tries = max(attempts, 1)
    for attempt in range(1, tries + 1):
        if attempt > 1:
            time.sleep(backoff_seconds * 2 ** (attempt - 2))
        try:
            deliver()
            return
        except _Failure as exc:
            failure = exc
            if not exc.retry:
                break
    assert failure is not None
    plural = "s" if attempt > 1 else ""
    raise NotificationError(
        f"Could not notify the {channel.kind} channel at {_where(channel)}: {failure.reason} "
        f"(after {attempt} attempt{plural}). Check the channel in the spec's "
        "monitoring.channels and that the receiver is up."
    )


class _Failure(Exception):
    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.reason, self.retry = reason, retry


def _delivery(channel: Channel, alert: Notification, timeout: float) -> Callable[[], None]:
    if channel.kind == "email":
        return partial(_email, channel, alert, timeout)
    body = alert.to_dict() if channel.kind == "webhook" else {"text": alert.summary}
    return partial(_post, str(channel.url), body, timeout)


def _post(url: str, body: dict[str, Any], timeout: float) -> None:
    try:
        response = httpx.post(url, json=body, timeout=timeout)
    except httpx.HTTPError as exc:
        raise _Failure(f"{type(exc).__name__}: {exc}", retry=True) from exc
    if response.status_code >= 300:
        retry = response.status_code == 429 or response.status_code >= 500
        raise _Failure(f"it answered HTTP {response.status_code}", retry=retry)


def _email(channel: Channel, alert: Notification, timeout: float) -> None:
    message = EmailMessage()
    message["Subject"] = alert.subject
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.to)
    message.set_content(alert.text())
    try:
        with smtplib.SMTP(channel.smtp_host, channel.smtp_port, timeout=timeout) as smtp:
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise _Failure(f"{type(exc).__name__}: {exc}", retry=True) from exc


def _where(channel: Channel) -> str:
    if channel.kind == "email":
        return f"{channel.smtp_host}:{channel.smtp_port}"
    parts = urlsplit(str(channel.url))
    return f"{parts.scheme}://{parts.netloc}/…" if parts.path.strip("/") else str(channel.url)
