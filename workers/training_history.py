"""The history a training fits: the entity's stored summary brought up to date, or a full read.

A retrain reads only the UTC days that may have changed since the stored summary
(`workers/store/summaries.py`) was built: from the midnight of the earliest event the scoring
planner has counted for the entity since its last training (the registry's
`earliest_since_training`) on, late events included. The stored summary's other days are kept,
the days before the history horizon dropped, and the re-read days summarized anew; the fitted
model is the one a full read would give (`tests/unit/test_training_history.py`), except a
window's count of new endpoints where an endpoint's earlier use has left the horizon.

A full read (and a new summary) happens when there is no usable summary: none stored, another
format, built under other settings (entity field, window, a shorter history), older than
`COUCHWATCH_SUMMARY_REBUILD_DAYS` since its last full read (which also picks up anything a
summary cannot see, such as deleted events), of another model version than the registry's (a
summary write failed), summaries turned off, or a window that does not divide a day. Events
the scoring planner has not counted yet when a retrain runs join at the next one. Entities
with reviewed anomalies always read in full: their feedback names events
(`workers/training.py`).

The summary is stored in two parts split at the start of the current block of
:data:`OPEN_BLOCK_DAYS` UTC days (`workers/store/summaries.py`): the open part (this block's
days) is written by every retrain; the sealed part (the days before) is kept as stored, a stub,
when none of its days was re-read, and written again only when one was (a late event), when the
block rolls over (once every :data:`OPEN_BLOCK_DAYS` days) or after a full read. Days past the
history horizon may stay in the sealed part until then: the read drops them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from workers import detection
from workers.engine.errors import EngineError
from workers.events import canonical_timestamp, parse_timestamp
from workers.fleet import Fleet
from workers.ids import Entity
from workers.store import summaries
from workers.store.events import history_start, training_history
from workers.store.registry import EARLIEST_SINCE_TRAINING
from workers.store.summaries import AttachmentRef, StaleStub, StoredSummary

DAY_S = 86_400
OPEN_BLOCK_DAYS = 7  # the open part of a stored summary: the days of the current 7-day block
EVERY_DAY = 2**62  # `History.kept_before` when every stored day was kept (nothing re-read)


@dataclass(frozen=True)
class History:
    """A training's history: its summary, the events read for it, and how it was read."""

    summary: detection.HistorySummary
    events_read: int
    read: str  # "full" or "incremental"
    full_read_at: str
    why_full: str | None = None
    stored: StoredSummary | None = None  # the stored summary document, if any
    # the UTC day before which the stored summary's days were kept as stored (None: full read)
    kept_before: int | None = None

    @property
    def stored_rev(self) -> str | None:
        return self.stored.rev if self.stored is not None else None


def read_history(fleet: Fleet, entity: Entity, *, now: datetime, entry: Any) -> History:
    """The entity's history summary as of `now`, reading as little as the stored one allows.

    `entry` is its registry document as read before this training started (None if none)."""
    settings = fleet.settings
    start = history_start(now, settings.couchwatch_history_days)
    stored, old, why = _usable(fleet, entity, now, entry)
    if stored is not None and old is not None:
        full_at = str(stored.meta["full_read_at"])
        read_from = _read_from(entry, start)
        kept = old.since(_day(start))
        if read_from is None:  # nothing new was counted since the last training
            return History(kept, 0, "incremental", full_at, stored=stored, kept_before=EVERY_DAY)
        kept = kept.before(_day(read_from))
        events = training_history(fleet.couch, settings, entity, now=now, start=read_from)
        fresh = detection.summarize_events(
            str(entity),
            events,
            entity_field=settings.entity_field,
            window=settings.couchwatch_window,
            known_endpoints=kept.endpoint_counts(),
        )
        summary = detection.combined(kept, fresh)
        return History(
            summary,
            len(events),
            "incremental",
            full_at,
            stored=stored,
            kept_before=_day(read_from),
        )
    events = training_history(fleet.couch, settings, entity, now=now, start=start)
    summary = detection.summarize_events(
        str(entity), events, entity_field=settings.entity_field, window=settings.couchwatch_window
    )
    now_text = canonical_timestamp(now)
    return History(summary, len(events), "full", now_text, why_full=why, stored=stored)


def save_history(
    fleet: Fleet, entity: Entity, history: History, *, now: datetime, version: int
) -> None:
    """Store the summary a training fitted, for the entity's next retrain: its open part, and
    its sealed part unless that is stored unchanged (see the module docstring)."""
    settings = fleet.settings
    if not settings.couchwatch_history_summaries:
        return
    split = open_block_start(now)
    summary, stored = history.summary, history.stored
    kept_sealed = (
        stored is not None
        and stored.sealed_before == split
        and history.kept_before is not None
        and history.kept_before >= split
    )

    def encoded(part: detection.HistorySummary) -> bytes:
        return detection.dump_summary(part, entity=str(entity), entity_field=settings.entity_field)

    parts: dict[str, bytes | AttachmentRef] = {
        summaries.SEALED: (
            stored.refs[summaries.SEALED]
            if kept_sealed and stored is not None
            else encoded(summary.before(split))
        ),
        summaries.OPEN: encoded(summary.since(split)),
    }
    meta = {
        "entity_field": settings.entity_field,
        "window": settings.couchwatch_window,
        "history_days": settings.couchwatch_history_days,
        "read_at": canonical_timestamp(now),
        "full_read_at": history.full_read_at,
        "model_version": version,
        "events": summary.n_events,
        "sealed_before": split,
        "sealed_kept": kept_sealed,
    }
    db = settings.db_name("models")
    try:
        summaries.save(
            fleet.couch, db, entity, parts, _sized(meta, parts, stored), rev=history.stored_rev
        )
    except StaleStub:  # the stored document changed since it was read: write every part
        parts[summaries.SEALED] = encoded(summary.before(split))
        meta["sealed_kept"] = False
        summaries.save(fleet.couch, db, entity, parts, _sized(meta, parts, stored))


def open_block_start(now: datetime) -> int:
    """The first UTC day (days since the epoch) of the current block of
    :data:`OPEN_BLOCK_DAYS` days: a stored summary's open part starts there."""
    today = _day(now)
    return today - today % OPEN_BLOCK_DAYS


def stored_summary(stored: StoredSummary) -> detection.HistorySummary:
    """The summary a stored document holds: its parts decoded and joined in day order
    (:class:`~workers.engine.errors.EngineError` when a part is unreadable)."""
    return detection.load_summary(*stored.parts.values())


def _sized(
    meta: dict[str, Any], parts: dict[str, bytes | AttachmentRef], stored: StoredSummary | None
) -> dict[str, Any]:
    """`meta` with `size_bytes`: the parts' bytes once written (a kept part's as read)."""
    kept = stored.parts if stored is not None else {}
    size = sum(len(p) if isinstance(p, bytes) else len(kept.get(n, b"")) for n, p in parts.items())
    return {**meta, "size_bytes": size}


def _usable(
    fleet: Fleet, entity: Entity, now: datetime, entry: Any
) -> tuple[summaries.StoredSummary | None, detection.HistorySummary | None, str]:
    """(the stored summary document or None, its summary when a retrain may build on it, why
    not otherwise).

    It must be the summary of the model the registry names: a training whose summary write
    failed cleared the registry's `earliest_since_training` all the same, and the older summary
    would miss the days that training read. An entity without a model has none to look up."""
    settings = fleet.settings
    if not settings.couchwatch_history_summaries:
        return None, None, "summaries off"
    if not detection.supports_window(settings.couchwatch_window):
        return None, None, f"window {settings.couchwatch_window} does not divide a day"
    if (entry or {}).get("model_version") is None:
        return None, None, "no model yet"
    stored = summaries.load(fleet.couch, settings.db_name("models"), entity)
    if stored is None:
        return None, None, "no summary"
    meta = stored.meta
    why = ""
    full_at = _moment(meta.get("full_read_at"))
    if meta.get("entity_field") != settings.entity_field or meta.get("window") != (
        settings.couchwatch_window
    ):
        why = "built under another entity field or window"
    elif meta.get("model_version") != (entry or {}).get("model_version"):
        why = "not the summary of the registry's model version"
    elif int(meta.get("history_days") or 0) < settings.couchwatch_history_days:
        why = "built for a shorter history"
    elif full_at is None or now - full_at >= timedelta(
        days=settings.couchwatch_summary_rebuild_days
    ):
        why = "due for a full read"
    if why:
        return stored, None, why
    try:
        summary = stored_summary(stored)
    except EngineError as exc:
        return stored, None, f"unreadable: {exc}"
    if summary.window != settings.couchwatch_window:
        return stored, None, "built under another window"
    return stored, summary, ""


def _read_from(entry: Any, start: datetime) -> datetime | None:
    """The midnight to read from: of the earliest event counted since the last training (not
    before the history start), or None when none was counted."""
    earliest = _moment((entry or {}).get(EARLIEST_SINCE_TRAINING))
    if earliest is None:
        return None
    midnight = earliest.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(midnight, start)


def _moment(value: Any) -> datetime | None:
    try:
        return parse_timestamp(value) if value else None
    except ValueError:
        return None


def _day(moment: datetime) -> int:
    return int(moment.timestamp()) // DAY_S
