"""CouchDB errors as a small tree: retryable and fatal errors differ by class.

Messages carry the HTTP method, the path and CouchDB's own `error`/`reason`; never credentials.
"""

from __future__ import annotations


class CouchError(Exception):
    """Base class of every CouchDB failure."""

    def __init__(self, message: str, *, status: int | None = None, error: str | None = None):
        super().__init__(message)
        self.status = status
        self.error = error


class RetryableCouchError(CouchError):
    """The server could not be reached or failed transiently (connection, timeout, 5xx, 429)."""


class CouchUnavailable(RetryableCouchError):
    """No answer: connection refused, reset or timed out."""


class CouchServerError(RetryableCouchError):
    """The server answered 5xx or 429."""


class FatalCouchError(CouchError):
    """The request itself is wrong; repeating it gives the same answer."""


class Unauthorized(FatalCouchError):
    """401/403: missing or wrong credentials, or not allowed."""


class NotFound(FatalCouchError):
    """404: no such database, document or attachment."""


class Conflict(FatalCouchError):
    """409: the document exists with another revision."""


class DatabaseExists(FatalCouchError):
    """412 on database creation: the database is already there."""


class BadRequest(FatalCouchError):
    """400 and other 4xx: the server rejected the request as malformed."""


def error_for_status(status: int) -> type[CouchError]:
    """Return the exception class for an HTTP status answered by CouchDB."""
    if status in (401, 403):
        return Unauthorized
    if status == 404:
        return NotFound
    if status == 409:
        return Conflict
    if status == 412:
        return DatabaseExists
    if status == 429 or status >= 500:
        return CouchServerError
    return BadRequest
