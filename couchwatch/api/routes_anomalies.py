"""Anomalies: list (filters, cursor pages), one by id, and the review write."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field

from couchwatch.api.auth import Read, Review
from couchwatch.api.deps import CouchDep, SettingsDep, parse_range
from workers.couch.client import CouchClient
from workers.review import UnknownAnomaly, review_anomaly
from workers.store.anomalies import MAX_NOTE_CHARS
from workers.store.pages import AnomalyFilter, BadCursor, anomaly_page

router = APIRouter(prefix="/v1/anomalies", tags=["anomalies"])
MAX_LIMIT = 200
AnomalyId = Annotated[str, Path(min_length=1, max_length=512)]


class AnomalyPage(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end.")


class ReviewIn(BaseModel):
    status: Literal["confirmed", "dismissed", "open"]
    note: str = Field(default="", max_length=MAX_NOTE_CHARS)


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """An anomaly document as the API shows it: `id` instead of CouchDB's `_id`/`_rev`."""
    shown = {k: v for k, v in doc.items() if not k.startswith("_")}
    return {"id": doc["_id"], **shown}


def list_page(
    couch: CouchClient,
    db: str,
    flt: AnomalyFilter,
    *,
    limit: int,
    cursor: str | None,
    key_field: str = "window_start",
    also: dict[str, Any] | None = None,
) -> AnomalyPage:
    """One page of `db` under `flt` after `cursor`, as the API shows it (a bad cursor is a 400)."""
    try:
        docs, nxt = anomaly_page(
            couch, db, flt, limit=limit, cursor=cursor, key_field=key_field, also=also
        )
    except BadCursor as exc:
        raise HTTPException(400, str(exc)) from None
    return AnomalyPage(items=[public(d) for d in docs], next_cursor=nxt)


@router.get("", response_model=AnomalyPage)
def list_anomalies(
    _: Read,
    couch: CouchDep,
    settings: SettingsDep,
    entity: Annotated[str | None, Query(max_length=256)] = None,
    severity: Literal["low", "medium", "high"] | None = None,
    status: Literal["open", "confirmed", "dismissed"] | None = None,
    since: Annotated[str | None, Query(description="Window start ≥ this (ISO 8601/epoch).")] = None,
    until: Annotated[str | None, Query(description="Window start < this.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> AnomalyPage:
    """Anomalies, newest window first, `limit` per page."""
    start, end = parse_range(since, until)
    flt = AnomalyFilter(entity=entity, severity=severity, status=status, since=start, until=end)
    return list_page(couch, settings.db_name("anomalies"), flt, limit=limit, cursor=cursor)


@router.get("/{anomaly_id}")
def get_anomaly(
    anomaly_id: AnomalyId, _: Read, couch: CouchDep, settings: SettingsDep
) -> dict[str, Any]:
    """One anomaly with all its reasons and its review."""
    doc = couch.get(settings.db_name("anomalies"), anomaly_id)
    if doc is None or doc.get("type") != "anomaly":
        raise HTTPException(404, "no such anomaly")
    return public(doc)


@router.post("/{anomaly_id}/review")
def post_review(
    anomaly_id: AnomalyId, body: ReviewIn, key: Review, couch: CouchDep, settings: SettingsDep
) -> dict[str, Any]:
    """Confirm, dismiss or reopen; returns the updated anomaly. Training learns from it."""
    try:
        doc = review_anomaly(
            couch,
            settings.db_name("anomalies"),
            anomaly_id,
            body.status,
            note=body.note,
            by=f"api:{key.name or key.key_id}",
            registry_db=settings.db_name("models"),
        )
    except UnknownAnomaly:
        raise HTTPException(404, "no such anomaly") from None
    return public(doc)
