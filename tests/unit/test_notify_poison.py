"""One notification that cannot be built never stops the others (issue 13, item 2), and what a
person reads escapes the data: the subject and CLI lines escape control characters, Slack text
escapes `&`, `<`, `>`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from workers.couch.memory import MemoryCouchClient
from workers.couch.schema import ensure_schema
from workers.notify.channels import RecordingChannel
from workers.notify.errors import MessageError
from workers.notify.message import Message, render
from workers.notify.ratelimit import MemoryWindows
from workers.notify.service import notify_pending
from workers.notify.smtp import SmtpChannel, SmtpConfig, build_email
from workers.settings import Settings
from workers.store.notifications import new_notification, summarize
from workers.text import printable, slack_escape

pytestmark = pytest.mark.unit
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HINT = "couchwatch review {id} confirm|dismiss"
EVIL = "mallory\r\nBcc: all@example.com\x85<!channel> & <https://x.test|click>\u2028"


def anomaly(i: int, entity: Any = "alice", **summary: Any) -> dict[str, Any]:
    return {
        "_id": f"anomaly:{i}",
        "type": "anomaly",
        "entity": entity,
        "entity_field": "user_id",
        "detector": "login",
        "severity": "high",
        "score": 0.9,
        "confidence": 1.0,
        "window_start": f"2026-03-01T0{i}:00:00.000Z",
        "window_end": f"2026-03-01T0{i}:15:00.000Z",
        "reasons": [{"text": "country <b>KP</b> & never seen\r\nforged line"}],
        **summary,
    }


def test_printable_escapes_controls_separators_and_bidi_but_not_text() -> None:
    assert printable("a\r\nb\x85c\u2028d\u2029e\x1b[31m\x00\t") == (
        "a\\r\\nb\\x85c\\u2028d\\u2029e\\x1b[31m\\x00\\t"
    )
    assert printable("evil\u202etxt.exe") == "evil\\u202etxt.exe"
    assert printable("Zoë 用户 🙂 a\\nb") == "Zoë 用户 🙂 a\\nb"
    assert printable(42) == "42"


def test_slack_escape() -> None:
    assert (
        slack_escape("<!channel> & <https://x|y>") == "&lt;!channel&gt; &amp; &lt;https://x|y&gt;"
    )


def test_a_message_for_an_entity_with_crlf_builds_and_escapes_what_people_read() -> None:
    msg = render("notification:1", [summarize(anomaly(1, EVIL))], hint=HINT)
    mail = build_email(msg, sender="cw@test.local", recipients=("ops@test.local",))
    assert "\r" not in msg.subject and "\n" not in msg.subject and "\x85" not in msg.subject
    assert "mallory\\r\\nBcc: all@example.com\\x85" in str(mail["Subject"])
    assert mail["Bcc"] is None  # the CR/LF did not become a header
    text = msg.payload["text"]
    assert "<!channel>" not in text and "<https://" not in text and "<b>" not in text
    assert "&lt;!channel&gt; &amp; &lt;https://x.test|click&gt;" in text
    assert "country &lt;b&gt;KP&lt;/b&gt; &amp; never seen\\r\\nforged line" in text
    assert "\r" not in text and "\u2028" not in text
    assert msg.payload["entity"] == EVIL  # the JSON field keeps the data as it is


class Flaky(RecordingChannel):
    """Refuses messages for one entity the way a channel refuses an unbuildable message."""

    def send(self, message: Message) -> None:
        if message.payload["entity"] == "refused":
            raise MessageError(f"{self.target}: e-mail could not be built: ValueError: header")
        super().send(message)


def test_unbuildable_notifications_fail_with_their_reason_and_the_others_are_sent() -> None:
    cfg = Settings(
        _env_file=None,
        couchwatch_events_db="events",
        couchwatch_db_prefix="cw_",
        couchdb_user="u",
        couchdb_password="p",
        couchwatch_notify_max_attempts=5,
    )  # type: ignore[call-arg]
    couch = MemoryCouchClient()
    ensure_schema(couch, cfg)
    channel = Flaky("email", "smtp://127.0.0.1:25")
    docs = []
    specs = [("bob", {"score": "n/a"}), ("refused", {}), ("carol", {}), ("alice", {})]
    for i, (entity, summary) in enumerate(specs):
        doc = new_notification(
            anomaly(i, entity),
            channel="email",
            target=channel.target,
            mode="immediate",
            due_at=NOW - timedelta(minutes=10 - i),
            now=NOW - timedelta(hours=1),
        )
        doc["anomaly"].update(summary)
        docs.append(doc)
    assert not couch.bulk_docs(cfg.db_name("notifications"), docs).failed

    result = notify_pending(
        couch, cfg, channels=[channel], now=NOW, windows=MemoryWindows(limit=10, window_s=60)
    )

    after = {d["entity"]: d for d in couch.iter_all_docs(cfg.db_name("notifications"))}
    assert sorted(m.payload["entity"] for m in channel.sent) == ["alice", "carol"]
    assert (result.sent, result.failed_attempts, result.gave_up) == (2, 2, 2)
    for entity in ("bob", "refused"):
        assert after[entity]["status"] == "failed" and after[entity]["attempts"] == 1, entity
        assert after[entity]["next_attempt_at"] is None
    assert after["bob"]["last_error"] == (
        "message could not be built: ValueError: could not convert string to float: 'n/a'"
    )
    assert "e-mail could not be built" in after["refused"]["last_error"]
    assert after["alice"]["status"] == after["carol"]["status"] == "sent"


def test_the_smtp_channel_reports_an_unbuildable_mail_as_a_message_error() -> None:
    msg = render("notification:1", [summarize(anomaly(1))], hint=HINT)
    broken = Message(msg.delivery_id, "subject\r\nBcc: x@y", msg.text, msg.html, msg.payload)
    config = SmtpConfig(
        host="127.0.0.1",
        port=9,
        sender="cw@test.local",
        recipients=("ops@test.local",),
        password="pw-123",
    )
    channel = SmtpChannel(config)
    with pytest.raises(MessageError, match="e-mail could not be built: ValueError") as caught:
        channel.send(broken)  # never connects: port 9 is not listened on
    assert "pw-123" not in str(caught.value)
