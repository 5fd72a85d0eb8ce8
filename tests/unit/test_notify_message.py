"""Message content: who/what, when, score, severity, reasons, review; HTML escaped; no secrets."""

from __future__ import annotations

import json

import pytest
import requests

from workers.notify.errors import DeliveryError
from workers.notify.message import render
from workers.notify.signature import HEADER, verify_signature
from workers.notify.smtp import build_email
from workers.notify.webhook import WebhookChannel, encode
from workers.settings import Settings
from workers.store.notifications import summarize

pytestmark = pytest.mark.unit
HINT = "couchwatch review {id} confirm|dismiss"


def _anomaly(i: int = 1, entity: str = "alice") -> dict[str, object]:
    return {
        "_id": f"anomaly:{i}",
        "entity": entity,
        "entity_field": "user_id",
        "detector": "login",
        "severity": "high",
        "score": 0.934,
        "window_start": "2024-05-01T03:00:00.000Z",
        "window_end": "2024-05-01T03:15:00.000Z",
        "reasons": [
            {"text": "country UA never seen in 212 logins (usual: US 98%)"},
            {"text": "<script>alert(1)</script> user agent"},
        ],
    }


def test_single_message_content() -> None:
    msg = render("notification:abc", [summarize(_anomaly())], hint=HINT)
    assert "user_id alice" in msg.subject and "high" in msg.subject and "0.93" in msg.subject
    review = "couchwatch review anomaly:1 confirm|dismiss"
    for part in (
        "user_id alice",
        "2024-05-01T03:00:00.000Z",
        "0.93",
        "high",
        "country UA never seen in 212 logins",
        review,
    ):
        assert part in msg.text, part
    assert "&lt;script&gt;" in msg.html and "<script>" not in msg.html
    assert msg.payload["type"] == "couchwatch.anomaly" and msg.payload["id"] == "notification:abc"
    assert "alice" in msg.payload["text"] and "country UA" in msg.payload["text"]
    assert msg.payload["anomalies"][0]["review"] == "couchwatch review anomaly:1 confirm|dismiss"


def test_digest_message() -> None:
    msg = render("digest:x", [summarize(_anomaly(i)) for i in range(3)], hint=HINT)
    assert "digest: 3 anomalies" in msg.subject and msg.payload["type"] == "couchwatch.digest"
    assert all(f"anomaly:{i}" in msg.text for i in range(3))
    assert len(msg.payload["anomalies"]) == 3


def test_email_has_text_and_html_parts() -> None:
    msg = render("notification:abc", [summarize(_anomaly())], hint=HINT)
    mail = build_email(msg, sender="cw@example.org", recipients=("a@example.org", "b@x.org"))
    types = [p.get_content_type() for p in mail.walk()]
    assert types == ["multipart/alternative", "text/plain", "text/html"]
    assert mail["To"] == "a@example.org, b@x.org" and mail["X-Couchwatch-Delivery"]


class _Session:
    def __init__(self, status: int = 200, exc: Exception | None = None) -> None:
        self.status, self.exc, self.calls = status, exc, []  # type: ignore[var-annotated]

    def post(self, url: str, **kw: object) -> object:
        self.calls.append((url, kw))
        if self.exc:
            raise self.exc
        return type("R", (), {"status_code": self.status})()


def test_webhook_signs_exact_body() -> None:
    session = _Session()
    channel = WebhookChannel(
        "webhook:1",
        "https://hooks.example.org/T0/B0/tok",
        "sec",
        timeout_s=3,
        session=session,
        clock=lambda: 1000.0,
    )  # type: ignore[arg-type]
    msg = render("notification:abc", [summarize(_anomaly())], hint=HINT)
    channel.send(msg)
    _, kw = session.calls[0]
    assert kw["timeout"] == 3 and kw["allow_redirects"] is False
    body = kw["data"]
    assert body == encode(msg.payload) and json.loads(body)["text"]  # type: ignore[arg-type]
    assert verify_signature("sec", kw["headers"][HEADER], body, now=1001)  # type: ignore[index,arg-type]


@pytest.mark.parametrize(
    "session",
    [
        _Session(status=500),
        _Session(exc=requests.ConnectionError("Max retries exceeded with url: /T0/B0/tok (sec)")),
    ],
)
def test_webhook_errors_hide_url_and_secret(session: _Session) -> None:
    channel = WebhookChannel(
        "webhook:1", "https://hooks.example.org/T0/B0/tok", "sec", timeout_s=3, session=session
    )  # type: ignore[arg-type]
    with pytest.raises(DeliveryError) as info:
        channel.send(render("n", [summarize(_anomaly())], hint=HINT))
    text = str(info.value)
    assert text.startswith("https://hooks.example.org:") and "tok" not in text
    assert "sec)" not in text


def test_settings_mask_notification_secrets() -> None:
    urls = "https://hooks.example.org/T0/tok,http://h:1/x"
    s = Settings(
        _env_file=None,
        couchwatch_smtp_password="pw-123",  # type: ignore[arg-type]
        couchwatch_webhook_secret="whs-456",
        couchwatch_webhook_urls=urls,
    )
    shown = repr(s.masked()) + repr(s)
    assert "pw-123" not in shown and "whs-456" not in shown and "tok" not in shown
    assert s.couchwatch_webhook_urls == ["https://hooks.example.org/T0/tok", "http://h:1/x"]


def test_webhook_urls_need_a_secret() -> None:
    with pytest.raises(ValueError, match="WEBHOOK_SECRET"):
        Settings(_env_file=None, couchwatch_webhook_urls="http://h/x")  # type: ignore[arg-type]
