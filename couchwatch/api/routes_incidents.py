"""Incidents: list (filters, cursor pages), one with its anomalies, and the review write.

Same scopes as the anomaly routes: `read` to list and show, `review` to review. Reviewing an
incident writes the review on it and on each of its anomalies (docs/incidents.md).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query

from couchwatch.api.auth import Read, Review
from couchwatch.api.deps import CouchDep, SettingsDep, parse_range
from couchwatch.api.routes_anomalies import MAX_LIMIT, AnomalyPage, ReviewIn, list_page, public
from workers.incidents import UnknownIncident, get_incident, incident_anomalies, review_incident
from workers.store.pages import AnomalyFilter

router = APIRouter(prefix="/v1/incidents", tags=["incidents"])
IncidentId = Annotated[str, Path(min_length=1, max_length=512)]


@router.get("", response_model=AnomalyPage)
def list_incidents(
    _: Read,
    couch: CouchDep,
    settings: SettingsDep,
    entity: Annotated[str | None, Query(max_length=256)] = None,
    severity: Literal["low", "medium", "high"] | None = None,
    status: Literal["open", "confirmed", "dismissed"] | None = None,
    since: Annotated[
        str | None, Query(description="Incident start ≥ this (ISO 8601/epoch).")
    ] = None,
    until: Annotated[str | None, Query(description="Incident start < this.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> AnomalyPage:
    """Current incidents (superseded ones left out), newest start first, `limit` per page."""
    start, end = parse_range(since, until)
    flt = AnomalyFilter(entity=entity, severity=severity, status=status, since=start, until=end)
    return list_page(
        couch,
        settings.db_name("incidents"),
        flt,
        limit=limit,
        cursor=cursor,
        key_field="start",
        also={"superseded_by": None},
    )


@router.get("/{incident_id}")
def get_one(
    incident_id: IncidentId, _: Read, couch: CouchDep, settings: SettingsDep
) -> dict[str, Any]:
    """One incident (a superseded id answers with the incident it was folded into), with its
    anomalies (all their reasons and reviews), earliest first."""
    try:
        doc = get_incident(couch, settings, incident_id)
    except UnknownIncident:
        raise HTTPException(404, "no such incident") from None
    return {
        **public(doc),
        "anomalies": [public(a) for a in incident_anomalies(couch, settings, doc)],
    }


@router.post("/{incident_id}/review")
def post_review(
    incident_id: IncidentId, body: ReviewIn, key: Review, couch: CouchDep, settings: SettingsDep
) -> dict[str, Any]:
    """Confirm, dismiss or reopen the incident and all its anomalies; returns the incident."""
    try:
        doc = review_incident(
            couch,
            settings,
            incident_id,
            body.status,
            note=body.note,
            by=f"api:{key.name or key.key_id}",
        )
    except UnknownIncident:
        raise HTTPException(404, "no such incident") from None
    return public(doc)
