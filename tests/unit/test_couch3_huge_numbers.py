"""Apache CouchDB 3 keeps integers of any size in a document (PouchDB Server turns one beyond a
double into null), so a producer writing straight to CouchDB 3 can store `bytes_sent: 1` followed
by 400 zeros. These recorded CouchDB 3.3 reply bodies (raw bytes: the digits as CouchDB sends
them) go through the real transport, client, planner and history readers (issue 13, item 3).

Before: `json` decodes the 400-digit integer, then `math.isfinite` / `float()` raise
OverflowError in `validate_event`, so a planner pass, a training read and the entity profile
crash; a 5,000-digit integer makes the whole `_changes` page undecodable (Python's 4300-digit
`int()` limit), so the planner would stop on that page forever.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from couchwatch.api.profile import recent_events, summarize
from scheduler.planning import CHECKPOINT, plan_scoring
from tests.unit.test_couch_client import SEQ_1, SEQ_12, Sent, make_client, rev
from workers.couch.transport import decode_json
from workers.detection import POPULATION_ID
from workers.engine.population import POPULATION_FORMAT
from workers.settings import Settings
from workers.store.events import iter_entity_events

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
T = "2026-03-01T10:00:00.000Z"
D400 = "1" + "0" * 400
D5000 = "1" + "0" * 5000


def settings() -> Settings:
    return Settings(
        _env_file=None,
        couchwatch_events_db="events",
        couchwatch_db_prefix="cw_",
        couchdb_user="u",
        couchdb_password="p",
    )  # type: ignore[call-arg]


def _doc(doc_id: str, extra: str) -> str:
    """A document as CouchDB 3 serialises it (`extra`: raw JSON members, digits verbatim)."""
    return (
        f'{{"_id":"{doc_id}","_rev":"{rev(1, doc_id[-1])}","user_id":"alice",'
        f'"timestamp":"{T}","type":"login"{extra}}}'
    )


DOCS = {
    "good-1": _doc("good-1", ',"bytes_sent":512,"status_code":200'),
    "big-bytes": _doc("big-bytes", f',"bytes_sent":{D400}'),
    "big-status": _doc("big-status", f',"status_code":{D400}'),
    "big-extra": _doc("big-extra", f',"meta":{{"n":[1,-{D400}]}}'),
    "huge-5000": _doc("huge-5000", f',"latency_ms":{D5000}'),
    "good-2": _doc("good-2", ',"bytes_sent":1024'),
}
BIG_STAMP = f'{{"_id":"big-stamp","_rev":"{rev(1, "s")}","user_id":"alice","timestamp":{D400}}}'


def changes_body(with_5000: bool = True) -> bytes:
    docs = [(k, v) for k, v in DOCS.items() if with_5000 or k != "huge-5000"]
    rows = [
        f'{{"seq":"{i}-{SEQ_1[2:]}","id":"{name}","changes":[{{"rev":"{rev(1, name[-1])}"}}],'
        f'"doc":{body}}}'
        for i, (name, body) in enumerate([*docs, ("big-stamp", BIG_STAMP)], start=1)
    ]
    return f'{{"results":[{",".join(rows)}],"last_seq":"{SEQ_12}","pending":0}}'.encode()


def find_body() -> bytes:
    return f'{{"docs":[{",".join(DOCS.values())}],"bookmark":"nil"}}'.encode()


def test_the_transport_decodes_a_reply_with_integers_of_any_size() -> None:
    page = decode_json(changes_body())
    docs = {r["id"]: r["doc"] for r in page["results"]}
    assert docs["big-bytes"]["bytes_sent"] == 10**400  # exact: Python ints have no size limit
    assert docs["big-stamp"]["timestamp"] == 10**400
    assert docs["huge-5000"]["latency_ms"] == float("inf")  # over int()'s limit: not exact
    assert docs["good-1"] == json.loads(DOCS["good-1"])
    with pytest.raises(ValueError):  # what the transport did before: the page was lost
        json.loads(changes_body())


class Server:
    """CouchDB 3 for one planner pass: `_changes` from the recording, writes recorded."""

    def __init__(self, with_5000: bool) -> None:
        self.written: dict[str, list[dict[str, Any]]] = {}
        self.with_5000 = with_5000

    def __call__(self, sent: Sent) -> tuple[int, Any]:
        path = sent.path
        if path.endswith(f"/_local/{CHECKPOINT}") and sent.method == "GET":
            return 404, {"error": "not_found", "reason": "missing"}
        if path.endswith(f"/{POPULATION_ID}"):  # a current profile: alice can be scored
            return 200, {"_id": POPULATION_ID, "profile": {"format": POPULATION_FORMAT}}
        if path.endswith(f"/_local/{CHECKPOINT}"):
            return 201, {"ok": True, "id": f"_local/{CHECKPOINT}", "rev": "0-1"}
        if path == "/events/_changes":
            since = sent.query["since"]
            if since == "0":
                return 200, changes_body(self.with_5000)
            return 200, {"results": [], "last_seq": SEQ_12, "pending": 0}
        if path.endswith("/_bulk_docs"):
            docs = json.loads(sent.body)["docs"]
            self.written.setdefault(path.split("/")[1], []).extend(docs)
            return 201, [{"ok": True, "id": d["_id"], "rev": "1-a"} for d in docs]
        raise AssertionError(f"unexpected {sent.method} {sent.url}")


@pytest.mark.parametrize("with_5000", [False, True], ids=["400-digit", "and-5000-digit"])
def test_the_planner_quarantines_huge_numbers_and_plans_the_neighbours(with_5000: bool) -> None:
    server = Server(with_5000)
    client, _ = make_client(handler=server)
    fleet = SimpleNamespace(settings=settings(), couch=client, now=lambda: NOW)
    enqueued: list[Any] = []

    result = plan_scoring(fleet, lambda name, args: enqueued.append(args) or "task-1")  # type: ignore[arg-type]

    assert result.events == 2 and result.entities == 1  # good-1, good-2
    assert result.quarantined == 4 + with_5000
    quarantine = {q["event_id"]: q["reason"] for q in server.written["cw_quarantine"]}
    assert set(quarantine) == {"big-bytes", "big-status", "big-extra", "big-stamp"} | (
        {"huge-5000"} if with_5000 else set()
    )
    assert "bytes_sent <401-digit number> is too large" in quarantine["big-bytes"]
    assert "status_code <401-digit number>" in quarantine["big-status"]
    assert "meta.n.1 <401-digit number>" in quarantine["big-extra"]
    assert "timestamp <401-digit number>" in quarantine["big-stamp"]
    if with_5000:
        assert "NaN or infinity" in quarantine["huge-5000"]  # decoded as inf
    assert enqueued == [[[["alice", T, None]]]]
    registry = server.written["cw_models"]
    assert [d["events_seen"] for d in registry] == [2]


def test_history_reads_and_the_profile_skip_huge_numbers() -> None:
    client, adapter = make_client(handler=lambda sent: (200, find_body()))
    cfg = settings()

    read = list(iter_entity_events(client, cfg, "alice", now=NOW))
    profile = summarize(recent_events(client, cfg, "alice"))

    assert [d["_id"] for d in read] == ["good-1", "good-2"]
    assert profile["events_read"] == 2 and profile["median_bytes_sent"] == 768.0
    assert all(s.path == "/events/_find" for s in adapter.sent)
