"""HTTP transport to CouchDB: one `requests.Session`, a timeout on every call, basic auth,
retries with exponential backoff and jitter for idempotent calls, and CouchDB error JSON mapped
to the exception tree in `errors.py`.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import requests

from workers.couch.errors import (
    CouchError,
    CouchServerError,
    CouchUnavailable,
    RetryableCouchError,
    error_for_status,
)
from workers.settings import strip_userinfo

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_RETRIES = 4
BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 8.0


def doc_path(db: str, doc_id: str) -> str:
    """Return the URL path of a document; the id is data, so every `/`, `%`, `?` is escaped.

    `_design/` and `_local/` prefixes keep their slash, as CouchDB expects.
    """
    for prefix in ("_design/", "_local/"):
        if doc_id.startswith(prefix):
            return f"{db_path(db)}/{prefix}{path_segment(doc_id[len(prefix) :])}"
    return f"{db_path(db)}/{path_segment(doc_id)}"


def path_segment(value: str) -> str:
    """Return `value` escaped as one URL path segment.

    `.` and `..` are escaped too: left raw, `requests` resolves them as dot segments while
    preparing the URL and sends the request to another resource (`DELETE /db/.` would hit the
    database). Escaped, they survive preparation and reach CouchDB as the document id.
    """
    segment = quote(value, safe="")
    return segment.replace(".", "%2E") if segment in (".", "..") else segment


def db_path(db: str) -> str:
    """Return the URL path of a database (names with `/` are escaped as CouchDB requires)."""
    return "/" + quote(db, safe="")


def decode_json(body: bytes, what: str = "request", status: int = 200) -> Any:
    """Decode a CouchDB reply. Apache CouchDB 3 keeps integers of any size in documents (PouchDB
    Server turns them into null): an integer beyond Python's 4300-digit `int()` limit would make
    the whole reply undecodable and, in a `_changes` page, stall the planner on it forever. Such
    an integer decodes as an infinite float instead, which `validate_event` refuses (the event
    is quarantined, its neighbours are read). Shorter big integers decode as `int`."""
    try:
        return json.loads(body)
    except ValueError:
        pass
    try:
        return json.loads(body, parse_int=_lenient_int)
    except ValueError:
        raise CouchServerError(
            f"CouchDB answered {what} with a body that is not JSON", status=status
        ) from None


def _lenient_int(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:  # over the digit limit: a float() of it has no limit (it is ±inf)
        return float(text)


class CouchTransport:
    """Sends requests to one CouchDB server and returns decoded JSON (or bytes)."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: tuple[str, str] | None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = strip_userinfo(base_url).rstrip("/")
        self.timeout_s = timeout_s
        self.retries = retries
        self._sleep = sleep
        self.session = session or requests.Session()
        self.session.auth = auth
        self.session.headers.update({"Accept": "application/json"})

    def close(self) -> None:
        self.session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        raw: bool = False,
    ) -> Any:
        """Send one request; return the JSON body (or bytes when `raw`).

        Connection failures, timeouts, 5xx and 429 are retried with exponential backoff and
        jitter when the call is idempotent (GET/HEAD/PUT/DELETE by default; callers mark POSTs
        that are safe to repeat, such as `_find` or `_bulk_docs` with fixed ids). The last
        failure is raised as a `RetryableCouchError`; 4xx answers raise a `FatalCouchError`.
        """
        if idempotent is None:
            idempotent = method.upper() in ("GET", "HEAD", "PUT", "DELETE")
        attempts = 1 + (self.retries if idempotent else 0)
        for attempt in range(1, attempts + 1):
            try:
                return self._send(method, path, params, json, data, headers, raw)
            except RetryableCouchError as exc:
                if attempt >= attempts:
                    raise
                step = BACKOFF_BASE_S * 2 ** (attempt - 1)
                # jitter around the backoff step, capped after the jitter so no wait exceeds it
                delay = min(BACKOFF_CAP_S, step * (0.5 + random.random()))
                log.warning(
                    "couchdb %s %s failed (%s), retry %d/%d in %.2fs",
                    method,
                    path,
                    exc,
                    attempt,
                    attempts - 1,
                    delay,
                )
                self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        data: bytes | None,
        headers: Mapping[str, str] | None,
        raw: bool,
    ) -> Any:
        url = self.base_url + path
        try:
            response = self.session.request(
                method,
                url,
                params=params,
                json=json,
                data=data,
                headers=headers,
                timeout=self.timeout_s,
            )
        # a reply cut short (the server died mid-response) is the server unavailable too
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            raise CouchUnavailable(
                f"CouchDB at {self.base_url} unreachable on {method} {path}: {type(exc).__name__}"
            ) from None
        if response.status_code >= 400:
            raise self._error(method, path, response)
        if raw:
            return response.content
        if not response.content:
            return None
        return decode_json(response.content, f"{method} {path}", response.status_code)

    @staticmethod
    def _error(method: str, path: str, response: requests.Response) -> CouchError:
        error, reason = "unknown", response.reason or ""
        try:
            body = response.json()
            if isinstance(body, dict):
                error = str(body.get("error", error))
                reason = str(body.get("reason", reason))
        except ValueError:
            pass
        cls = error_for_status(response.status_code)
        return cls(
            f"CouchDB {response.status_code} {error} on {method} {path}: {reason}"[:500],
            status=response.status_code,
            error=error,
        )
