"""Email over SMTP (smtplib): implicit TLS or STARTTLS when configured, a timeout on every step."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from workers.notify.errors import DeliveryError, MessageError, describe
from workers.notify.message import Message


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    starttls: bool = True
    ssl: bool = False
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout_s: float = 15.0


def build_email(message: Message, *, sender: str, recipients: tuple[str, ...]) -> EmailMessage:
    """The MIME message: plain text with an HTML alternative; Message-ID from the delivery id."""
    mail = EmailMessage()
    mail["Subject"] = message.subject
    mail["From"] = sender
    mail["To"] = ", ".join(recipients)
    mail["Date"] = formatdate(localtime=False, usegmt=True)
    domain = sender.rpartition("@")[2] or "couchwatch"
    mail["Message-ID"] = make_msgid(idstring=message.delivery_id.replace(":", "."), domain=domain)
    mail["X-Couchwatch-Delivery"] = message.delivery_id
    mail.set_content(message.text)
    mail.add_alternative(message.html, subtype="html")
    return mail


class SmtpChannel:
    """Sends messages to the configured recipients; any failure is a `DeliveryError`."""

    name = "email"

    def __init__(self, config: SmtpConfig) -> None:
        self.config = config
        self.target = f"smtp://{config.host}:{config.port}"

    def send(self, message: Message) -> None:
        """Deliver `message` once; raise `DeliveryError` (scrubbed) when it could not be sent,
        `MessageError` when it cannot be built as an e-mail."""
        c = self.config
        try:
            mail = build_email(message, sender=c.sender, recipients=c.recipients)
        except (ValueError, TypeError) as exc:  # e.g. a header with CR/LF: never sendable
            cause = describe(exc, (c.password or "",))
            raise MessageError(f"{self.target}: e-mail could not be built: {cause}") from None
        context = ssl.create_default_context()
        try:
            if c.ssl:
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    c.host, c.port, timeout=c.timeout_s, context=context
                )
            else:
                client = smtplib.SMTP(c.host, c.port, timeout=c.timeout_s)
            with client:
                if c.starttls and not c.ssl:
                    client.starttls(context=context)
                if c.user:
                    client.login(c.user, c.password or "")
                refused = client.send_message(mail, from_addr=c.sender, to_addrs=list(c.recipients))
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{self.target}: {describe(exc, (c.password or '',))}") from None
        if refused:
            raise DeliveryError(f"{self.target}: recipients refused: {sorted(refused)}")
