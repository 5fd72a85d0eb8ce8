"""The API application: `create_app(settings)` wires the routers, auth, limits and errors.

uvicorn --factory couchwatch.api.app:app_from_env     # or: couchwatch api
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from couchwatch.api import (
    routes_anomalies,
    routes_entities,
    routes_events,
    routes_incidents,
    routes_jobs,
    routes_ops,
)
from couchwatch.api.docs_page import docs_router, swagger_ui_dir
from couchwatch.api.limits import BodyLimit
from couchwatch.api.metrics import ApiMetrics
from couchwatch.api.pages import router as review_page
from workers.couch.client import CouchClient
from workers.couch.errors import CouchError, RetryableCouchError
from workers.settings import Settings, get_settings
from workers.store.keys import KeyVerifier
from workers.store.runs import describe

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    """A FastAPI app serving the couchwatch API with `settings` (CouchDB, Redis, limits)."""
    app = FastAPI(
        title="couchwatch API",
        version="1",
        description="Events in, anomalies out, reviews back. Every route needs an API key "
        "(`X-API-Key`); see docs/api.md.",
        docs_url=None,  # FastAPI's pages load scripts from a CDN: see docs_page.py
        redoc_url=None,
    )
    if settings.couchwatch_api_docs:
        app.include_router(docs_router(swagger_ui_dir()))  # DocsUnavailable without the files
    couch = CouchClient.from_settings(settings)
    broker = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    app.state.settings = settings
    app.state.couch = couch
    app.state.broker = broker
    app.state.keys = KeyVerifier(couch, settings.db_name("apikeys"))
    app.state.metrics = ApiMetrics(settings, couch, broker)
    for module in (
        routes_events,
        routes_anomalies,
        routes_incidents,
        routes_jobs,
        routes_entities,
        routes_ops,
    ):
        app.include_router(module.router)
    app.include_router(review_page)  # the review page at `/` and its static assets
    app.add_middleware(BodyLimit, max_bytes=settings.couchwatch_api_max_body_bytes)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(CouchError, _couch_error)
    return app


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    """422 with the validation errors; a body that is not JSON at all is a 400."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse({"detail": "request body is not valid JSON"}, status_code=400)
    shown = [{"loc": e.get("loc"), "msg": e.get("msg"), "type": e.get("type")} for e in errors]
    return JSONResponse({"detail": shown}, status_code=422)


async def _couch_error(request: Request, exc: Exception) -> JSONResponse:
    """CouchDB down or overloaded → 503 (retry later); anything else from it → 502."""
    log.warning("CouchDB error on %s %s: %s", request.method, request.url.path, describe(exc))
    status = 503 if isinstance(exc, RetryableCouchError) else 502
    return JSONResponse({"detail": f"CouchDB: {describe(exc)}"}, status_code=status)


def app_from_env() -> Any:
    """The app for the process settings (for `uvicorn --factory`)."""
    return create_app(get_settings())
