"""Notification errors. A `DeliveryError` is retried with backoff; a `MessageError` (the
message cannot be built) fails the notification at once; nothing else is expected."""

from __future__ import annotations


class NotifyError(Exception):
    """Base class of notification failures."""


class DeliveryError(NotifyError):
    """A channel could not deliver (server down, timeout, refused, non-2xx). Retried later.

    The message names the channel's target (host only) and the cause, never credentials,
    webhook paths or secrets.
    """


class MessageError(NotifyError):
    """The message could not be built for a channel (a header the e-mail library refuses, ...).
    Sending it again cannot help: the notification is recorded `failed` at once, with why."""


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every non-empty secret (passwords, webhook URLs and paths) replaced by ***."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def describe(exc: BaseException, secrets: tuple[str, ...] = ()) -> str:
    """One scrubbed line: error class and first message line."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    return scrub(f"{type(exc).__name__}: {first}", secrets)[:300]
