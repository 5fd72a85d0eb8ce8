"""`couchwatch ingest`: read JSON Lines or CSV, validate every event, store the good ones with
`_bulk_docs` in batches and quarantine the rest with their reason. Nothing is dropped silently and
one bad line never stops the rest of the file.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from workers import event_store
from workers.couch.client import CouchClient
from workers.events import NUMERIC_FIELDS, Rejection, validate_event
from workers.settings import Settings
from workers.store.quarantine import quarantine_doc

MAX_LINE_BYTES = 256 * 1024
READ_CHUNK = 64 * 1024


@dataclass
class IngestReport:
    """Counts of one ingest run."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    # stored under a new id: their own id already held a different event (workers/event_store)
    conflicts: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        self.rejected += 1
        key = reason.split(":")[0][:80]
        self.reasons[key] = self.reasons.get(key, 0) + 1


@dataclass(frozen=True)
class Record:
    """One input line: its number, raw bytes, and either a parsed object or a rejection."""

    line: int
    raw: bytes
    value: Any


def iter_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes | None]]:
    """Yield (line number, bytes) per line; an over-long line yields None and is skipped whole."""
    number = 0
    while True:
        chunk = stream.readline(MAX_LINE_BYTES + 1)
        if not chunk:
            return
        number += 1
        if len(chunk) > MAX_LINE_BYTES and not chunk.endswith(b"\n"):
            while chunk and not chunk.endswith(b"\n"):
                chunk = stream.readline(READ_CHUNK)
            yield number, None
            continue
        yield number, chunk


def iter_texts(stream: IO[bytes]) -> Iterator[tuple[int, bytes, str | Rejection]]:
    """Yield (line number, raw bytes, decoded text or the Rejection); blank lines skipped."""
    for number, chunk in iter_lines(stream):
        if chunk is None:
            yield number, b"", Rejection(f"line longer than {MAX_LINE_BYTES} bytes")
        elif chunk.strip():
            yield number, chunk, _decode(chunk)


def read_jsonl(stream: IO[bytes]) -> Iterator[Record]:
    """Parse JSON Lines; each line becomes a Record with an object or a Rejection."""
    for number, chunk, text in iter_texts(stream):
        if isinstance(text, Rejection):
            yield Record(number, chunk, text)
            continue
        try:
            value = json.loads(text, parse_constant=_refuse_constant)
        except (ValueError, RecursionError) as exc:
            yield Record(number, chunk, Rejection(f"not valid JSON: {_short(exc)}"))
            continue
        yield Record(number, chunk, value)


def read_csv(stream: IO[bytes]) -> Iterator[Record]:
    """Parse CSV with a header row; numeric columns become numbers, empty cells are absent."""
    header: list[str] | None = None
    for number, chunk, text in iter_texts(stream):
        if isinstance(text, Rejection):
            yield Record(number, chunk, text)
            continue
        try:
            cells = next(csv.reader([text]))
        except (csv.Error, StopIteration) as exc:
            yield Record(number, chunk, Rejection(f"not valid CSV: {_short(exc)}"))
            continue
        if header is None:
            header = [c.strip() for c in cells]
            continue
        if len(cells) != len(header):
            reason = f"CSV row has {len(cells)} cells, header has {len(header)}"
            yield Record(number, chunk, Rejection(reason))
            continue
        row = {k: v for k, v in zip(header, cells, strict=True) if v != ""}
        yield Record(number, chunk, _csv_types(row))


def ingest_stream(
    client: CouchClient,
    settings: Settings,
    stream: IO[bytes],
    *,
    fmt: str,
    source: str,
    now: datetime | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> IngestReport:
    """Validate and store every record of `stream`; return the counts.

    Valid events go to the events database in `_bulk_docs` batches; a `409` is a duplicate only
    when the stored event has the same content, else the event is stored under a new id and
    counted in `conflicts` (`workers/event_store.py`). Invalid events, and rows the server
    refuses, go to `<prefix>quarantine` with their reason.
    `on_batch(n)` is called after each batch with the number of lines it covered.
    """
    now = now or datetime.now(UTC)
    reader = read_csv if fmt == "csv" else read_jsonl
    report = IngestReport()
    events: list[dict[str, Any]] = []
    quarantined: list[dict[str, Any]] = []
    lines = 0
    batch_size = settings.couchwatch_ingest_batch_size
    for record in reader(stream):
        lines += 1
        value = record.value
        if not isinstance(value, Rejection):
            value = validate_event(value, entity_field=settings.entity_field, now=now)
        if isinstance(value, Rejection):
            report.reject(value.reason)
            quarantined.append(quarantine_doc(record.line, record.raw, value.reason, source, now))
        else:
            events.append(value)
        if len(events) >= batch_size or len(quarantined) >= batch_size:
            _flush(client, settings, events, quarantined, report, source, now)
            events, quarantined = [], []
            if on_batch:
                on_batch(lines)
            lines = 0
    _flush(client, settings, events, quarantined, report, source, now)
    if on_batch:
        on_batch(lines)
    return report


def _flush(
    client: CouchClient,
    settings: Settings,
    events: list[dict[str, Any]],
    quarantined: list[dict[str, Any]],
    report: IngestReport,
    source: str,
    now: datetime,
) -> None:
    for event, written in zip(
        events, event_store.store(client, settings.events_db, events), strict=True
    ):
        if written.status == "stored":
            report.accepted += 1
        elif written.status == "duplicate":
            report.duplicates += 1
        elif written.status == "conflict":
            report.conflicts += 1
        else:  # refused by CouchDB, or `id_mismatch`: quarantined with the reason
            reason = str(written.reason)[:300]
            report.reject(reason)
            raw = json.dumps(event, ensure_ascii=False).encode()
            quarantined.append(quarantine_doc(0, raw, reason, source, now))
    if quarantined:
        qresult = client.bulk_docs(settings.db_name("quarantine"), quarantined)
        if qresult.failed:
            first = qresult.failed[0]
            raise RuntimeError(
                f"could not quarantine {len(qresult.failed)} rejected events "
                f"({first.error}: {first.reason}); nothing was dropped silently"
            )


def _decode(chunk: bytes) -> str | Rejection:
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection(f"not UTF-8 text (byte {exc.start})")
    if "\x00" in text:
        return Rejection("contains NUL bytes (binary data?)")
    return text.lstrip("\ufeff")


def _csv_types(row: dict[str, str]) -> dict[str, Any]:
    typed: dict[str, Any] = dict(row)
    for name in (*NUMERIC_FIELDS, "timestamp"):
        value = row.get(name)
        if value is None:
            continue
        try:
            number = float(value)
        except ValueError:
            continue
        typed[name] = int(number) if number.is_integer() and name != "timestamp" else number
    return typed


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
