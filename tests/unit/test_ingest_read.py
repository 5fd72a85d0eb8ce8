"""Reading JSON Lines / CSV byte streams, and `ingest_stream` against an in-memory CouchDB twin."""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from workers.couch.client import BulkResult, BulkRow, CouchClient
from workers.events import Rejection, validate_event
from workers.ingest import (
    MAX_LINE_BYTES,
    IngestReport,
    Record,
    ingest_stream,
    iter_lines,
    read_csv,
    read_jsonl,
)
from workers.settings import Settings

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TS = "2026-03-01T10:00:00Z"
GOOD = b'{"user_id": "alice", "timestamp": "2026-03-01T10:00:00Z"}\n'


def jsonl(data: bytes) -> list[Record]:
    return list(read_jsonl(io.BytesIO(data)))


def csv_records(data: bytes) -> list[Record]:
    return list(read_csv(io.BytesIO(data)))


def reason_of(record: Record) -> str:
    assert isinstance(record.value, Rejection), record.value
    assert record.value.reason and "\n" not in record.value.reason
    return record.value.reason


# --- iter_lines ----------------------------------------------------------------------------


def test_iter_lines_numbers_lines_and_keeps_the_last_one_without_newline() -> None:
    lines = list(iter_lines(io.BytesIO(b"a\n\nb\r\nc")))
    assert lines == [(1, b"a\n"), (2, b"\n"), (3, b"b\r\n"), (4, b"c")]


def test_iter_lines_skips_an_overlong_line_whole_and_goes_on() -> None:
    data = b"first\n" + b"x" * (3 * MAX_LINE_BYTES) + b"\nafter\n" + b"y" * (MAX_LINE_BYTES + 5)
    lines = list(iter_lines(io.BytesIO(data)))
    assert lines == [(1, b"first\n"), (2, None), (3, b"after\n"), (4, None)]


def test_iter_lines_limit_is_exact() -> None:
    at_limit = b"a" * MAX_LINE_BYTES + b"\n"
    over = b"b" * (MAX_LINE_BYTES + 1) + b"\n"
    lines = list(iter_lines(io.BytesIO(at_limit + over + b"end\n")))
    assert lines == [(1, at_limit), (2, None), (3, b"end\n")]


# --- read_jsonl ----------------------------------------------------------------------------


def test_malformed_json_gets_a_reason_and_the_next_line_still_parses() -> None:
    records = jsonl(b'{"user_id": "alice", "timestamp": \n' + GOOD + b"{'single': 'quotes'}\n")
    assert [r.line for r in records] == [1, 2, 3]
    assert reason_of(records[0]).startswith("not valid JSON")
    assert records[1].value == {"user_id": "alice", "timestamp": TS}
    assert reason_of(records[2]).startswith("not valid JSON")
    assert records[0].raw.startswith(b'{"user_id"')


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_json_constants_are_rejected(literal: bytes) -> None:
    (record,) = jsonl(b'{"user_id": "a", "bytes_sent": ' + literal + b"}\n")
    assert "not valid JSON" in reason_of(record)


def test_huge_line_is_rejected_and_the_next_line_still_parses() -> None:
    huge = b'{"user_id": "a", "pad": "' + b"x" * (MAX_LINE_BYTES + 10) + b'"}\n'
    records = jsonl(GOOD + huge + GOOD)
    assert [r.line for r in records] == [1, 2, 3]
    assert f"longer than {MAX_LINE_BYTES} bytes" in reason_of(records[1])
    assert records[0].value == records[2].value == json.loads(GOOD)


def test_non_utf8_bytes_are_rejected_with_the_offset() -> None:
    records = jsonl(b'{"user_id": "\xff\xfe"}\n' + GOOD)
    assert reason_of(records[0]) == "not UTF-8 text (byte 13)"
    assert records[0].raw == b'{"user_id": "\xff\xfe"}\n'
    assert isinstance(records[1].value, dict)


def test_nul_bytes_are_rejected_as_binary() -> None:
    records = jsonl(b'{"user_id": "a\x00"}\n\x00\x00\x00\n' + GOOD)
    assert "NUL" in reason_of(records[0])
    assert "NUL" in reason_of(records[1])
    assert isinstance(records[2].value, dict)


def test_binary_garbage_never_raises_and_never_stops_the_file() -> None:
    garbage = (
        bytes(range(256)) * 8 + b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(255, -1, -3))
    )
    records = jsonl(garbage + b"\n" + GOOD)
    assert records[-1].value == json.loads(GOOD)
    assert all(isinstance(r.value, Rejection) for r in records[:-1])
    assert all(reason_of(r) for r in records[:-1])


def test_deeply_nested_json_is_rejected_not_raised() -> None:
    (record,) = jsonl(b"[" * 100_000 + b"]" * 100_000 + b"\n")
    assert "not valid JSON" in reason_of(record)


def test_blank_lines_are_skipped_but_counted() -> None:
    records = jsonl(b"\n   \n\t\r\n" + GOOD + b"\n")
    assert len(records) == 1
    assert records[0].line == 4


def test_a_utf8_bom_is_ignored() -> None:
    (record,) = jsonl(b"\xef\xbb\xbf" + GOOD)
    assert record.value == json.loads(GOOD)


def test_non_object_json_parses_and_is_left_to_validation() -> None:
    records = jsonl(b'[1, 2]\n"text"\n42\nnull\n')
    assert [r.value for r in records] == [[1, 2], "text", 42, None]


# --- read_csv ------------------------------------------------------------------------------

CSV_HEADER = b"user_id,timestamp,type,bytes_sent,latency_ms,status_code,city\n"


def test_csv_numeric_columns_are_typed_and_empty_cells_absent() -> None:
    records = csv_records(
        b"\xef\xbb\xbf"
        + CSV_HEADER
        + b'007,2026-03-01T10:00:00Z,login,1200,12.5,200,"Berlin, DE"\n'
        + b"bob,1772359200,request,,0.0,404.0,\n"
    )
    assert [r.line for r in records] == [2, 3]
    assert records[0].value == {
        "user_id": "007",
        "timestamp": TS,
        "type": "login",
        "bytes_sent": 1200,
        "latency_ms": 12.5,
        "status_code": 200,
        "city": "Berlin, DE",
    }
    second = records[1].value
    assert second == {
        "user_id": "bob",
        "timestamp": 1772359200.0,
        "type": "request",
        "latency_ms": 0,
        "status_code": 404,
    }
    assert type(second["status_code"]) is int
    doc = validate_event(second, entity_field="user_id", now=NOW)
    assert isinstance(doc, dict) and doc["timestamp"] == "2026-03-01T10:00:00.000Z"


def test_csv_non_numeric_cell_stays_text_for_validation_to_reject() -> None:
    (record,) = csv_records(CSV_HEADER + b"a,2026-03-01T10:00:00Z,login,lots,1,200,x\n")
    assert isinstance(record.value, dict)
    assert record.value["bytes_sent"] == "lots"
    out = validate_event(record.value, entity_field="user_id", now=NOW)
    assert isinstance(out, Rejection) and "bytes_sent must be a number" in out.reason


def test_csv_row_with_wrong_cell_count_is_rejected_and_the_rest_goes_on() -> None:
    records = csv_records(
        CSV_HEADER
        + b"a,2026-03-01T10:00:00Z\n"
        + b"a,2026-03-01T10:00:00Z,login,1,2,200,x,extra\n"
        + b"a,2026-03-01T10:00:00Z,login,1,2,200,x\n"
    )
    assert reason_of(records[0]) == "CSV row has 2 cells, header has 7"
    assert reason_of(records[1]) == "CSV row has 8 cells, header has 7"
    assert isinstance(records[2].value, dict)
    assert [r.line for r in records] == [2, 3, 4]


def test_csv_bad_bytes_and_huge_rows_are_rejected() -> None:
    records = csv_records(
        CSV_HEADER
        + b"a,\xff,login,1,2,200,x\n"
        + b"a,"
        + b"z" * (MAX_LINE_BYTES + 1)
        + b"\n"
        + b"a,2026-03-01T10:00:00Z,login,1,2,200,x\n"
    )
    assert "not UTF-8" in reason_of(records[0])
    assert "longer than" in reason_of(records[1])
    assert isinstance(records[2].value, dict)


# --- ingest_stream against an in-memory CouchDB ----------------------------------------------


class MemoryCouch:
    """The `bulk_docs` of a CouchDB: conflicts for ids already stored, `forbidden` on demand."""

    def __init__(self, refuse: Callable[[str, dict[str, Any]], str | None] | None = None) -> None:
        self.dbs: dict[str, dict[str, dict[str, Any]]] = {}
        self.refuse = refuse
        self.writes: Counter[tuple[str, str]] = Counter()
        self.batches: list[tuple[str, int]] = []

    def bulk_docs(self, db: str, docs: Sequence[dict[str, Any]]) -> BulkResult:
        if not docs:
            return BulkResult()
        self.batches.append((db, len(docs)))
        store = self.dbs.setdefault(db, {})
        rows = []
        for doc in docs:
            doc_id = doc["_id"]
            refusal = self.refuse(db, doc) if self.refuse else None
            if refusal:
                rows.append(BulkRow(id=doc_id, error="forbidden", reason=refusal))
            elif doc_id in store:
                rows.append(
                    BulkRow(id=doc_id, error="conflict", reason="Document update conflict.")
                )
            else:
                store[doc_id] = json.loads(json.dumps(doc, allow_nan=False))
                self.writes[(db, doc_id)] += 1
                rows.append(BulkRow(id=doc_id, rev=f"1-{len(store):032x}"))
        return BulkResult(rows)

    def docs(self, db: str) -> dict[str, dict[str, Any]]:
        return self.dbs.get(db, {})

    def get_many(self, db: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """What `_all_docs?keys=` answers: the stored documents among `ids` (an id conflict is
        settled by comparing the stored content, `workers/event_store.py`)."""
        store = self.dbs.get(db, {})
        return {i: dict(store[i]) for i in ids if i in store}


def make_settings(**values: Any) -> Settings:
    base: dict[str, Any] = {
        "couchwatch_events_db": "events",
        "couchwatch_db_prefix": "cw_",
        "couchwatch_entity_field": "user_id",
        "couchwatch_ingest_batch_size": 16,
    }
    return Settings(_env_file=None, **{**base, **values})  # type: ignore[call-arg]


QUARANTINE = "cw_quarantine"


def run(
    couch: MemoryCouch,
    data: bytes,
    *,
    fmt: str = "jsonl",
    now: datetime = NOW,
    settings: Settings | None = None,
    batches: list[int] | None = None,
) -> IngestReport:
    return ingest_stream(
        cast(CouchClient, couch),
        settings or make_settings(),
        io.BytesIO(data),
        fmt=fmt,
        source="events.jsonl",
        now=now,
        on_batch=batches.append if batches is not None else None,
    )


BROKEN_LINES = [
    b'{"user_id": "u1", "timestamp": ',  # malformed JSON
    b'{"user_id": "u1", "timestamp": "2026-02-01T10:00:00Z", "bytes_sent": NaN}',
    b'{"timestamp": "2026-02-01T10:00:00Z"}',  # no entity
    b'{"user_id": true, "timestamp": "2026-02-01T10:00:00Z"}',
    b'{"user_id": "u1", "timestamp": "2026-02-01T10:00:00"}',  # naive
    b'{"user_id": "u1", "timestamp": "1960-02-01T10:00:00Z"}',
    b'{"user_id": "u1", "timestamp": "2099-02-01T10:00:00Z"}',
    b'{"user_id": "u1", "timestamp": 1770000000, "bytes_sent": -5}',
    b'{"user_id": "u1", "timestamp": 1770000000, "status_code": 999}',
    b'{"user_id": "\xc3\x28", "timestamp": 1770000000}',  # invalid UTF-8
    b"\x00\x01\x02\x03binary\x00",
    b'["user_id", "u1"]',
    b'{"user_id": "u1", "timestamp": 1770000000, "_id": "_design/x"}',
    b'{"user_id": "u1", "timestamp": "0001-01-01T00:00:00+01:00"}',
    b'{"user_id": "u1", "pad": "' + b"p" * (MAX_LINE_BYTES + 1) + b'"}',  # huge
    b'{"user_id": "u2", "pad": "' + b"q" * (MAX_LINE_BYTES + 1) + b'"}',  # another huge one
]


def mixed_file(n_lines: int = 300) -> tuple[bytes, dict[int, dict[str, Any]], set[int]]:
    """Every 10th line broken; returns (bytes, good events by line, broken line numbers)."""
    lines: list[bytes] = []
    good: dict[int, dict[str, Any]] = {}
    broken: set[int] = set()
    base = datetime(2026, 2, 1, tzinfo=UTC)
    for number in range(1, n_lines + 1):
        if number % 10 == 0:
            lines.append(BROKEN_LINES[(number // 10 - 1) % len(BROKEN_LINES)])
            broken.add(number)
            continue
        ev: dict[str, Any] = {
            "user_id": f"u{number % 7}" if number % 3 else number % 7,
            "timestamp": (base + timedelta(minutes=number)).isoformat(),
            "type": "login",
            "bytes_sent": number,
        }
        if number % 11 == 0:
            ev["_id"] = f"producer-{number}"
        good[number] = ev
        lines.append(json.dumps(ev).encode())
    return b"\n".join(lines) + b"\n", good, broken


def expected_id(ev: dict[str, Any]) -> str:
    doc = validate_event(ev, entity_field="user_id", now=NOW)
    assert isinstance(doc, dict)
    return str(doc["_id"])


def test_ten_percent_broken_lines_store_every_good_event_once_and_quarantine_the_rest() -> None:
    data, good, broken = mixed_file()
    couch = MemoryCouch()
    batches: list[int] = []

    report = run(couch, data, batches=batches)

    assert (report.accepted, report.duplicates, report.rejected) == (len(good), 0, len(broken))
    assert sum(report.reasons.values()) == len(broken)
    events = couch.docs("events")
    assert set(events) == {expected_id(ev) for ev in good.values()}
    assert all(n == 1 for (db, _), n in couch.writes.items() if db == "events")
    assert all(ev["timestamp"].endswith("Z") for ev in events.values())

    quarantined = couch.docs(QUARANTINE)
    assert sorted(q["line"] for q in quarantined.values()) == sorted(broken)
    for q in quarantined.values():
        assert q["reason"] and "\n" not in q["reason"]
        assert q["source"] == "events.jsonl"
        assert q["type"] == "quarantined_event"
    by_line = {q["line"]: q for q in quarantined.values()}
    assert "not valid JSON" in by_line[10]["reason"]
    assert by_line[10]["raw"] == BROKEN_LINES[0].decode()
    assert "out of range" in by_line[140]["reason"]
    assert "longer than" in by_line[150]["reason"] and "longer than" in by_line[160]["reason"]
    assert sum(batches) == len(good) + len(broken)
    assert all(size <= 16 for _, size in couch.batches)


def test_a_second_run_stores_nothing_new() -> None:
    data, good, broken = mixed_file()
    couch = MemoryCouch()
    run(couch, data)
    events_before = dict(couch.docs("events"))
    quarantine_before = dict(couch.docs(QUARANTINE))

    again = run(couch, data, now=NOW + timedelta(hours=3))

    assert again.accepted == 0
    assert again.duplicates == len(good)
    assert again.rejected == len(broken)
    assert couch.docs("events") == events_before
    assert couch.docs(QUARANTINE) == quarantine_before
    assert max(couch.writes.values()) == 1


def test_duplicate_lines_in_one_file_are_stored_once() -> None:
    couch = MemoryCouch()
    report = run(couch, GOOD * 5)
    assert (report.accepted, report.duplicates, report.rejected) == (1, 4, 0)
    assert len(couch.docs("events")) == 1


def test_rows_the_server_refuses_end_in_quarantine_not_lost() -> None:
    def refuse(db: str, doc: dict[str, Any]) -> str | None:
        if db == "events" and doc.get("user_id") == "u3":
            return "validate_doc_update: u3 is read-only"
        return None

    data, good, broken = mixed_file(120)
    couch = MemoryCouch(refuse)
    report = run(couch, data)

    refused = {expected_id(ev) for ev in good.values() if ev["user_id"] == "u3"}
    assert refused
    assert report.accepted == len(good) - len(refused)
    assert report.rejected == len(broken) + len(refused)
    assert report.accepted + report.duplicates + report.rejected == len(good) + len(broken)
    assert not refused & set(couch.docs("events"))

    quarantined = list(couch.docs(QUARANTINE).values())
    server_refused = [q for q in quarantined if q["reason"].startswith("refused by CouchDB")]
    assert len(server_refused) == len(refused)
    for q in server_refused:
        assert "forbidden" in q["reason"] and "u3 is read-only" in q["reason"]
        assert json.loads(q["raw"])["_id"] in refused
    assert len(quarantined) == len(broken) + len(refused)


def test_a_quarantine_that_cannot_be_written_stops_loudly() -> None:
    def refuse(db: str, doc: dict[str, Any]) -> str | None:
        return "quarantine is read-only" if db == QUARANTINE else None

    couch = MemoryCouch(refuse)
    with pytest.raises(RuntimeError, match="could not quarantine 1 rejected"):
        run(couch, b"not json\n" + GOOD)


def test_csv_ingest_types_columns_and_quarantines_bad_rows() -> None:
    data = (
        CSV_HEADER
        + b"alice,2026-03-01T10:00:00Z,login,1200,12.5,200,Berlin\n"
        + b"bob,2026-03-01T10:05:00+01:00,request,-1,3,200,Paris\n"
        + b"carol,1772359200,request,10\n"
    )
    couch = MemoryCouch()
    report = run(couch, data, fmt="csv")

    assert (report.accepted, report.rejected) == (1, 2)
    (stored,) = couch.docs("events").values()
    assert stored["bytes_sent"] == 1200 and stored["status_code"] == 200
    reasons = sorted(q["reason"] for q in couch.docs(QUARANTINE).values())
    assert reasons == ["CSV row has 4 cells, header has 7", "bytes_sent -1 is negative"]


def test_service_as_entity_field_through_ingest() -> None:
    couch = MemoryCouch()
    data = (
        b'{"service": "billing", "timestamp": 1772359200}\n'
        b'{"user_id": "alice", "timestamp": 1772359200}\n'
    )
    report = run(couch, data, settings=make_settings(couchwatch_entity_field="service"))
    assert (report.accepted, report.rejected) == (1, 1)
    (q,) = couch.docs(QUARANTINE).values()
    assert q["reason"] == "missing entity field 'service'"
