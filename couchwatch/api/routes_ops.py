"""`/healthz` (CouchDB, Redis, workers) and `/metrics` (Prometheus text).

Both require an API key (the issue: every request without a key is refused): `/healthz` any
valid key, `/metrics` the `read` scope. Point a probe or Prometheus at them with a read key.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from couchwatch.api.auth import AnyKey, Read
from workers.store.runs import describe

router = APIRouter(tags=["operations"])
PING_TIMEOUT_S = 1.0


def _check(probe: Any) -> dict[str, Any]:
    try:
        detail = probe()
    except Exception as exc:  # any failure of a dependency is a health answer, not a 500
        return {"ok": False, "error": describe(exc)}
    return {"ok": True, **(detail or {})}


@router.get("/healthz", responses={503: {"description": "A dependency is unreachable."}})
def healthz(request: Request, _: AnyKey) -> JSONResponse:
    """200 when CouchDB, Redis and at least one worker answer; 503 with details otherwise."""
    state = request.app.state

    def workers() -> dict[str, Any]:
        from scheduler.client import producer_app

        replies = producer_app().control.ping(timeout=PING_TIMEOUT_S) or []
        names = sorted(name for reply in replies for name in reply)
        if not names:
            raise RuntimeError(f"no worker answered a ping within {PING_TIMEOUT_S:g} s")
        return {"workers": names}

    checks = {
        "couchdb": _check(lambda: {"version": state.couch.server_info().get("version")}),
        "redis": _check(lambda: state.broker.ping() and None),
        "workers": _check(workers),
    }
    ok = all(c["ok"] for c in checks.values())
    return JSONResponse({"ok": ok, "checks": checks}, status_code=200 if ok else 503)


@router.get("/metrics", response_class=Response)
def metrics(request: Request, _: Read) -> Response:
    """Prometheus text: API events by outcome, anomalies by severity, notifications by
    status, queue lengths."""
    return Response(
        request.app.state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )
