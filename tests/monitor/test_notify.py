"""Alert channels against real local receivers: a webhook, a Slack-style webhook, SMTP."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from modelyard.monitor.notify import (
    Delivery,
    MemorySender,
    Notification,
    NotificationError,
    escalate,
    send,
)
from modelyard.spec import Channel, Monitoring

ALERT = Notification(
    rule="p99-latency",
    model="loans",
    version=3,
    metric="p99_latency_ms",
    value=812.5,
    threshold=500.0,
    direction="above",
    severity="critical",
    state="firing",
    window="15m",
    started_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
    url="http://reports.example/loans.html",
)


class Receiver:
    """A tiny HTTP server in a thread that keeps every POST; answers from ``statuses`` first.

    ``GET`` answers ``metrics`` (a canned ``/metrics`` text).
    """

    def __init__(self) -> None:
        self.posts: list[tuple[str, Any]] = []
        self.statuses: list[int] = []
        self.delay = 0.0
        self.metrics = b""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(receiver.metrics)))
                self.end_headers()
                self.wfile.write(receiver.metrics)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(receiver.delay)
                receiver.posts.append((self.path, json.loads(body)))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def bodies(self, path: str | None = None) -> list[Any]:
        return [body for at, body in self.posts if path is None or at == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpSink:
    """A minimal SMTP server (HELO/EHLO, MAIL, RCPT, DATA, QUIT) that keeps each message."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.reply("220 sink ready")
                while line := self.rfile.readline():
                    command = line.decode().strip().upper()
                    if command.startswith("DATA"):
                        self.reply("354 end with <CRLF>.<CRLF>")
                        sink.messages.append(message_from_bytes(self.data()))
                        self.reply("250 queued")
                    elif command.startswith("QUIT"):
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("250 ok")

            def data(self) -> bytes:
                lines = []
                while (line := self.rfile.readline()) not in (b".\r\n", b""):
                    lines.append(line[1:] if line.startswith(b"..") else line)
                return b"".join(lines)

            def reply(self, text: str) -> None:
                self.wfile.write(text.encode() + b"\r\n")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    yield sink
    sink.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_webhook_posts_the_alert_as_json(receiver: Receiver) -> None:
    send(Channel(kind="webhook", url=receiver.url()), ALERT)
    assert receiver.bodies() == [
        {
            "rule": "p99-latency",
            "model": "loans",
            "version": 3,
            "metric": "p99_latency_ms",
            "value": 812.5,
            "threshold": 500.0,
            "direction": "above",
            "severity": "critical",
            "state": "firing",
            "window": "15m",
            "started_at": "2026-03-01T12:00:00+00:00",
            "url": "http://reports.example/loans.html",
        }
    ]


def test_slack_posts_only_a_text_field(receiver: Receiver) -> None:
    send(Channel(kind="slack", url=receiver.url()), ALERT)
    (body,) = receiver.bodies()
    assert list(body) == ["text"]
    text = body["text"]
    assert text.startswith("[critical] p99-latency on loans: firing")
    for part in ("loans v3", "p99_latency_ms = 812.5", "above 500", "15m", "2026-03-01 12:00:00"):
        assert part in text


def test_email_goes_out_over_smtp(smtp: SmtpSink) -> None:
    channel = Channel(
        kind="email",
        to=("oncall@example.com", "ml@example.com"),
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        sender="monitor@example.com",
    )
    resolved = Notification(**{**ALERT.__dict__, "state": "resolved", "value": 120.0})
    send(channel, resolved)
    (message,) = smtp.messages
    assert message["Subject"] == "[critical] p99-latency on loans: resolved"
    assert message["From"] == "monitor@example.com"
    assert message["To"] == "oncall@example.com, ml@example.com"
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes)
    assert b"p99_latency_ms = 120" in body and b"state: resolved" in body


def test_server_errors_are_retried_until_one_succeeds(receiver: Receiver) -> None:
    receiver.statuses = [500, 503]
    send(Channel(kind="webhook", url=receiver.url()), ALERT, backoff_seconds=0)
    assert len(receiver.posts) == 3


def test_a_client_error_is_not_retried_and_the_url_path_stays_secret(receiver: Receiver) -> None:
    receiver.statuses = [404]
    channel = Channel(kind="slack", url=receiver.url("/services/T000/B000/secret-token"))
    with pytest.raises(NotificationError, match=r"HTTP 404 \(after 1 attempt\)") as caught:
        send(channel, ALERT, backoff_seconds=0)
    assert len(receiver.posts) == 1
    assert "secret-token" not in caught.value.message


def test_an_unreachable_receiver_fails_after_every_attempt() -> None:
    channel = Channel(kind="webhook", url=f"http://127.0.0.1:{_closed_port()}/hook")
    with pytest.raises(NotificationError, match=r"ConnectError.*after 2 attempts"):
        send(channel, ALERT, attempts=2, backoff_seconds=0)


def test_a_slow_receiver_times_out(receiver: Receiver) -> None:
    receiver.delay = 0.5
    with pytest.raises(NotificationError, match="Timeout"):
        send(Channel(kind="webhook", url=receiver.url()), ALERT, attempts=1, timeout_seconds=0.05)


def test_an_unreachable_smtp_server_is_a_notification_error() -> None:
    channel = Channel(kind="email", to=("a@example.com",), smtp_port=_closed_port())
    with pytest.raises(NotificationError, match="Could not notify the email channel"):
        send(channel, ALERT, attempts=1)


def _monitoring(**channels: dict[str, Any]) -> Monitoring:
    return Monitoring.model_validate(
        {
            "channels": channels,
            "on_call": {"critical": list(channels), "warning": list(channels)[-1:]},
        }
    )


def test_escalation_reaches_the_channels_on_call_for_the_severity() -> None:
    monitoring = _monitoring(
        pager={"kind": "webhook", "url": "http://pager.example/hook"},
        mail={"kind": "email", "to": ["oncall@example.com"]},
        chat={"kind": "slack", "url": "http://chat.example/hook"},
    )
    sender = MemorySender()
    assert escalate(monitoring, ALERT, sender=sender) == [
        Delivery("pager", True),
        Delivery("mail", True),
        Delivery("chat", True),
    ]
    warning = Notification(**{**ALERT.__dict__, "severity": "warning"})
    assert escalate(monitoring, warning, sender=sender) == [Delivery("chat", True)]
    info = Notification(**{**ALERT.__dict__, "severity": "info"})
    assert escalate(monitoring, info, sender=sender) == []  # nobody on call for info
    assert [(c.kind, a.severity) for c, a in sender.sent] == [
        ("webhook", "critical"),
        ("email", "critical"),
        ("slack", "critical"),
        ("slack", "warning"),
    ]


def test_a_failing_channel_is_recorded_and_the_others_still_hear(receiver: Receiver) -> None:
    monitoring = _monitoring(
        dead={"kind": "webhook", "url": f"http://127.0.0.1:{_closed_port()}/hook"},
        live={"kind": "webhook", "url": receiver.url()},
    )
    dead, live = escalate(
        monitoring, ALERT, sender=lambda c, a: send(c, a, attempts=1, backoff_seconds=0)
    )
    assert (dead.channel, dead.ok, live) == ("dead", False, Delivery("live", True))
    assert dead.error is not None and "Could not notify the webhook channel" in dead.error
    assert receiver.bodies() == [ALERT.to_dict()]
