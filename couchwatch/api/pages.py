"""The review web page: an analyst's queue of open anomalies, served by the API at ``/``.

Plain HTML, one small ES module and one stylesheet from ``couchwatch/api/static/`` (package data):
no CDN, no build step. The page itself is public; everything it shows comes from the ``/v1``
endpoints with the API key the analyst types in (kept in ``sessionStorage``).
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, Response

STATIC_DIR = Path(__file__).parent / "static"
_ASSET = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(js|css|svg|png|ico)$")
_TYPES = {
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
    "png": "image/png",
    "ico": "image/x-icon",
}
# Everything is same-origin; the chart is SVG built with DOM calls, so no inline script/style.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
def review_page() -> Response:
    """The review page."""
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )


@router.get("/static/{name}")
def static_asset(name: str) -> Response:
    """One file of ``couchwatch/api/static`` (flat directory, names checked: no traversal)."""
    match = _ASSET.match(name)
    path = STATIC_DIR / name
    if match is None or not path.is_file():
        raise HTTPException(status_code=404, detail="not found")
    return FileResponse(
        path,
        media_type=_TYPES[match.group(1)],
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )
