"""The local stack's SMTP sink: an aiosmtpd server that keeps every message in a Maildir, so the
demo can show the notifications its incidents produced without sending real email."""

from __future__ import annotations

import mailbox
import sys
from dataclasses import dataclass
from email.header import decode_header, make_header
from pathlib import Path

from workers.settings import Settings

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def sink_wanted(settings: Settings) -> bool:
    """True when SMTP is configured to a local host: the stack then runs the sink itself."""
    return settings.couchwatch_smtp_host in LOCAL_HOSTS


def mail_dir(state: Path) -> Path:
    return state / "mail"


def sink_argv(settings: Settings, state: Path) -> list[str]:
    """aiosmtpd on the configured local port, storing messages in `<state>/mail` (Maildir)."""
    host = settings.couchwatch_smtp_host or "127.0.0.1"
    return [
        sys.executable,
        "-m",
        "aiosmtpd",
        "-n",
        "-l",
        f"{host}:{settings.couchwatch_smtp_port}",
        "-c",
        "aiosmtpd.handlers.Mailbox",
        str(mail_dir(state)),
    ]


@dataclass(frozen=True)
class ReceivedMail:
    to: str
    subject: str


def received(state: Path) -> list[ReceivedMail]:
    """Messages the sink has stored, oldest first (empty when it never ran)."""
    path = mail_dir(state)
    if not (path / "cur").exists() and not (path / "new").exists():
        return []
    box = mailbox.Maildir(str(path), create=False)
    mails = [
        ReceivedMail(
            str(msg.get("To", "")), str(make_header(decode_header(msg.get("Subject", ""))))
        )
        for msg in box
    ]
    return mails
