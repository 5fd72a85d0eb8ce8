"""Webhook delivery: a signed JSON POST (requests, timeout always, no redirects)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import requests

from workers.notify.errors import DeliveryError, MessageError, describe
from workers.notify.message import Message
from workers.notify.signature import HEADER, sign
from workers.settings import url_origin


def encode(payload: dict[str, object]) -> bytes:
    """The exact body bytes that are signed and sent (compact, sorted keys, UTF-8)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class WebhookChannel:
    """POSTs messages to one URL; a non-2xx answer or no answer is a `DeliveryError`.

    The URL (which may carry a token in its path) and the secret never appear in errors.
    """

    def __init__(
        self,
        name: str,
        url: str,
        secret: str,
        *,
        timeout_s: float,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name, self.url, self._secret = name, url, secret
        self.target = url_origin(url)
        self.timeout_s = timeout_s
        self.session = session or requests.Session()
        self.clock = clock

    def __repr__(self) -> str:
        return f"WebhookChannel({self.name!r}, {self.target!r})"

    def send(self, message: Message) -> None:
        """POST `message.payload`, signed now; raise `DeliveryError` unless the answer is 2xx,
        `MessageError` when the payload cannot be encoded (text that is not valid Unicode)."""
        try:
            body = encode(message.payload)
        except (ValueError, TypeError) as exc:
            cause = describe(exc)
            raise MessageError(f"{self.target}: payload could not be encoded: {cause}") from None
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "couchwatch-notify",
            "X-Couchwatch-Delivery": message.delivery_id,
            HEADER: sign(self._secret, body, timestamp=int(self.clock())),
        }
        parts = urlsplit(self.url)
        secrets = (self.url, self._secret, parts.netloc, parts.path, parts.query)
        try:
            reply = self.session.post(
                self.url, data=body, headers=headers, timeout=self.timeout_s, allow_redirects=False
            )
        except requests.RequestException as exc:
            cause = describe(exc, tuple(s for s in secrets if len(s) > 1))
            raise DeliveryError(f"{self.target}: {cause}") from None
        if not 200 <= reply.status_code < 300:
            raise DeliveryError(f"{self.target}: HTTP {reply.status_code}")
