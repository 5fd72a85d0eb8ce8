"""`/docs`: Swagger UI for the API, off by default (`COUCHWATCH_API_DOCS=true` turns it on).

FastAPI's own `/docs` and `/redoc` load their scripts from a CDN, unpinned, into the origin of
the review page, whose API key sits in `sessionStorage`: a CDN (or anyone between) could read
it. Both are disabled; `/openapi.json` stays (it holds no data). When enabled, Swagger UI's
files come from the `swagger-ui-bundle` package and are served from this origin under the review
page's CSP (no inline script: the page's start-up script is `static/docs.js`). Without the
package, or with a Swagger UI older than 5 (it cannot read OpenAPI 3.1: swagger-ui-bundle 1.1.0
ships 4.15.5), enabling is refused with one line.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, Response

from couchwatch.api.pages import SECURITY_HEADERS, STATIC_DIR

ASSETS = {  # the only files of the bundle served, and their types
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
}


class DocsUnavailable(RuntimeError):
    """`COUCHWATCH_API_DOCS=true` but Swagger UI's files are not installed locally."""


def swagger_ui_dir() -> Path:
    """The directory of Swagger UI's files (package `swagger-ui-bundle`), or DocsUnavailable."""
    missing = DocsUnavailable(
        "COUCHWATCH_API_DOCS=true needs Swagger UI served from this host, never a CDN: "
        "pip install swagger-ui-bundle, or leave /docs off (the schema is at /openapi.json)"
    )
    try:
        import swagger_ui_bundle
    except ImportError:
        raise missing from None
    path = Path(swagger_ui_bundle.swagger_ui_path)
    if not all((path / name).is_file() for name in ASSETS):
        raise missing
    version = re.fullmatch(r"swagger-ui-(\d+)\.[\d.]+", path.name)  # vendor/swagger-ui-X.Y.Z
    if version and int(version.group(1)) < 5:
        raise DocsUnavailable(
            f"COUCHWATCH_API_DOCS=true: swagger-ui-bundle ships {path.name}, which cannot show "
            "this API's OpenAPI 3.1 schema (Swagger UI 5 can); /docs stays off, the schema is "
            "at /openapi.json"
        )
    return path


def docs_router(assets: Path) -> APIRouter:
    """`/docs` and `/docs/assets/<file>` serving Swagger UI from `assets`."""
    router = APIRouter(include_in_schema=False)
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}

    @router.get("/docs")
    def docs() -> Response:
        return FileResponse(
            STATIC_DIR / "docs.html", media_type="text/html; charset=utf-8", headers=headers
        )

    @router.get("/docs/assets/{name}")
    def asset(name: str) -> Response:
        if name not in ASSETS:
            raise HTTPException(status_code=404, detail="not found")
        return FileResponse(assets / name, media_type=ASSETS[name], headers=headers)

    return router
