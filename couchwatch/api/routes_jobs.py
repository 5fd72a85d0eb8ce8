"""Jobs through the light producer client (`scheduler/client.py`), like `couchwatch rescore`.

The producer client reads the process settings (`get_settings()`), as every producer does.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path
from pydantic import BaseModel, Field, StrictInt, StrictStr

from couchwatch.api.auth import Ingest, Read
from couchwatch.api.deps import CouchDep, SettingsDep
from scheduler import client

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
Time = str | int | float | None
EntityId = Annotated[StrictStr | StrictInt, Field(description="Entity id: text, or an integer id.")]


class RescoreIn(BaseModel):
    entity: EntityId
    since: Time = Field(default=None, description="Start (inclusive); default all history.")
    until: Time = Field(default=None, description="End (exclusive); default now.")


class TrainIn(BaseModel):
    entity: EntityId


class JobOut(BaseModel):
    job_id: str
    state: str
    run: dict[str, Any] | None = None


def _call(fn: Any, *args: Any) -> str:
    try:
        return str(fn(*args))
    except client.BadRequest as exc:
        raise HTTPException(400, str(exc)) from None
    except client.ProducerError as exc:
        raise HTTPException(503, str(exc)) from None


@router.post("/rescore", status_code=202, response_model=JobOut)
def rescore(body: RescoreIn, _: Ingest) -> JobOut:
    """Enqueue a rescore of the entity over [since, until); idempotent, keeps reviews."""
    return JobOut(
        job_id=_call(client.rescore, body.entity, body.since, body.until), state="PENDING"
    )


@router.post("/train", status_code=202, response_model=JobOut)
def train(body: TrainIn, _: Ingest) -> JobOut:
    """Enqueue (re)training of the entity."""
    return JobOut(job_id=_call(client.train, body.entity), state="PENDING")


@router.get("/{job_id}", response_model=JobOut)
def job(
    job_id: Annotated[str, Path(min_length=1, max_length=client.MAX_JOB_ID_CHARS)],
    _: Read,
    couch: CouchDep,
    settings: SettingsDep,
) -> JobOut:
    """The job's state (PENDING also means unknown or expired) and its run record, if any."""
    state = _call(client.job_status, job_id)
    run = couch.get(settings.db_name("runs"), f"run-{job_id}")
    shown = None if run is None else {k: v for k, v in run.items() if not k.startswith("_")}
    return JobOut(job_id=job_id, state=state, run=shown)
