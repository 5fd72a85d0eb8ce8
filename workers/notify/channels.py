"""The configured channels: email when an SMTP host and recipients are set, one webhook channel
per URL (`webhook:<hash>`), and `RecordingChannel`, the in-memory twin for unit tests."""

from __future__ import annotations

from typing import Protocol

from workers.ids import short_hash
from workers.notify.errors import DeliveryError
from workers.notify.message import Message
from workers.notify.smtp import SmtpChannel, SmtpConfig
from workers.notify.webhook import WebhookChannel
from workers.settings import Settings


class Channel(Protocol):
    name: str
    target: str

    def send(self, message: Message) -> None:
        """Deliver once or raise `DeliveryError`."""
        ...


def webhook_channel_name(url: str) -> str:
    """Stable channel name of a webhook URL (the URL itself may be a secret)."""
    return f"webhook:{short_hash(url)[:12]}"


def channels_from_settings(settings: Settings) -> list[Channel]:
    """Every channel the settings configure (possibly none)."""
    out: list[Channel] = []
    if settings.couchwatch_smtp_host and settings.couchwatch_smtp_to:
        password = settings.couchwatch_smtp_password
        out.append(
            SmtpChannel(
                SmtpConfig(
                    host=settings.couchwatch_smtp_host,
                    port=settings.couchwatch_smtp_port,
                    sender=settings.couchwatch_smtp_from,
                    recipients=tuple(settings.couchwatch_smtp_to),
                    starttls=settings.couchwatch_smtp_starttls,
                    ssl=settings.couchwatch_smtp_ssl,
                    user=settings.couchwatch_smtp_user,
                    password=password.get_secret_value() if password else None,
                    timeout_s=settings.couchwatch_smtp_timeout_s,
                )
            )
        )
    secret = settings.couchwatch_webhook_secret
    for url in settings.couchwatch_webhook_urls:
        if secret is None:  # the settings refuse this combination; never send unsigned
            continue
        out.append(
            WebhookChannel(
                webhook_channel_name(url),
                url,
                secret.get_secret_value(),
                timeout_s=settings.couchwatch_webhook_timeout_s,
            )
        )
    return out


class RecordingChannel:
    """Keeps sent messages in a list; `down = True` makes every send fail like an outage."""

    def __init__(self, name: str = "memory", target: str = "memory://") -> None:
        self.name, self.target = name, target
        self.sent: list[Message] = []
        self.down = False

    def send(self, message: Message) -> None:
        if self.down:
            raise DeliveryError(f"{self.target}: connection refused")
        self.sent.append(message)
