"""Request authentication: an API key in `X-API-Key` (or `Authorization: Bearer`) with a scope.

No key or an unknown key → 401; a valid key without the scope → 403. Every route but the
OpenAPI schema and docs requires a key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from workers.store.keys import SCOPES, ApiKey

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key (`couchwatch apikey create`)."
)


def _presented(request: Request, header: str | None) -> str | None:
    if header:
        return header.strip()
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def require(scope: str) -> Callable[..., ApiKey]:
    """A dependency that returns the caller's key when it carries `scope` (or admin)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def check(
        request: Request, header: Annotated[str | None, Security(api_key_header)] = None
    ) -> ApiKey:
        presented = _presented(request, header)
        if not presented:
            raise HTTPException(
                401, "missing API key (X-API-Key header)", headers={"WWW-Authenticate": "ApiKey"}
            )
        key = request.app.state.keys.verify(presented)
        if key is None:
            raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "ApiKey"})
        if not key.allows(scope):
            raise HTTPException(403, f"this API key lacks the {scope!r} scope")
        return key

    return check


def any_key() -> Callable[..., ApiKey]:
    """A dependency accepting a valid key of any scope (for `/healthz`)."""
    checks = require("read")

    def check(
        request: Request, header: Annotated[str | None, Security(api_key_header)] = None
    ) -> ApiKey:
        try:
            return checks(request, header)
        except HTTPException as exc:
            if exc.status_code != 403:
                raise
        key: ApiKey = request.app.state.keys.verify(_presented(request, header) or "")
        return key

    return check


Ingest = Annotated[ApiKey, Depends(require("ingest"))]
Read = Annotated[ApiKey, Depends(require("read"))]
Review = Annotated[ApiKey, Depends(require("review"))]
Admin = Annotated[ApiKey, Depends(require("admin"))]
AnyKey = Annotated[ApiKey, Depends(any_key())]
