"""CouchTransport / CouchClient against recorded Apache CouchDB 3 reply shapes.

A fake `requests` adapter is mounted on the client's session: it records every prepared request
(method, final URL, headers, JSON body, timeout) and answers from a script of canned replies, so
everything above the socket (auth, URL building and normalisation, retries, error mapping) is
the real code.
"""

from __future__ import annotations

import base64
import itertools
import json
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests
from requests.adapters import BaseAdapter

from workers.couch import transport as transport_module
from workers.couch.client import BulkRow, CouchClient, MissingCredentials
from workers.couch.errors import (
    BadRequest,
    Conflict,
    CouchError,
    CouchServerError,
    CouchUnavailable,
    DatabaseExists,
    FatalCouchError,
    NotFound,
    RetryableCouchError,
    Unauthorized,
)
from workers.couch.transport import BACKOFF_CAP_S, CouchTransport
from workers.settings import Settings, strip_userinfo

pytestmark = pytest.mark.unit

BASE = "http://couch.test:5984"
USER, PASSWORD = "admin", "s3cret-Pw"
DB = "events"

# --- recorded CouchDB 3.3 reply shapes ------------------------------------------------------

SEQ_1 = "7-g1AAAAFTeJzLYWBgYMlgTmFQSklKzi9KdUhJMtbLTMrPzcywMjDQy8nPS0nMS0_JLMvPTS0oSsxLTlUwSCo"
SEQ_12 = "12-g1AAAAFTeJzLYWBgYMlgTmFQSklKzi9KdUhJMtbLTMrPz8xJycxLSczJLEktKklMKy0uSS1WKMhJzcvPS"
SEQ_15 = "15-g1AAAAG3eJzLYWBgYMlgTmFQSklKzi9KdUhJMtbLTMrPz8xJyczJLEktKklMKy0uSS1WKMlJzcvPS"
BOOKMARK = "g1AAAABweJzLYWBgYMpgSmHgKy5JLCrJTq2MT8lPzkzJBYqbGBqYmIOkOGBSyBJZAIR8EYo"
NO_INDEX_WARNING = "No matching index found, create an index to optimize query time."


def rev(n: int, tag: str) -> str:
    return f"{n}-{(tag * 32)[:32]}"


# --- the fake adapter ----------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """One request as it left `requests` (after preparation, auth and URL normalisation)."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: Any
    timeout: Any

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.url).query).items()}

    @property
    def json(self) -> Any:
        return json.loads(self.body)


Reply = tuple[int, Any] | Exception
Handler = Callable[[Sent], Reply]


class FakeCouchAdapter(BaseAdapter):
    """Answers from a script of (status, JSON body) replies or exceptions, or from a handler."""

    def __init__(self, replies: Iterable[Reply] = (), handler: Handler | None = None) -> None:
        super().__init__()
        self.replies = list(replies)
        self.handler = handler
        self.sent: list[Sent] = []

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        sent = Sent(
            method=str(request.method),
            url=str(request.url),
            headers=dict(request.headers),
            body=request.body,
            timeout=timeout,
        )
        self.sent.append(sent)
        if self.handler is not None:
            reply = self.handler(sent)
        else:
            assert self.replies, f"unexpected request {sent.method} {sent.url}"
            reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        status, body = reply
        response = requests.Response()
        response.status_code = status
        response.reason = HTTPStatus(status).phrase
        if isinstance(body, bytes):
            response._content = body
            response.headers["Content-Type"] = "application/octet-stream"
        else:
            response._content = json.dumps(body).encode()
            response.headers["Content-Type"] = "application/json"
        response.url = str(request.url)
        response.request = request
        response.encoding = "utf-8"
        return response

    def close(self) -> None:
        pass


def make_client(
    replies: Iterable[Reply] = (),
    *,
    handler: Handler | None = None,
    retries: int = 4,
    sleeps: list[float] | None = None,
) -> tuple[CouchClient, FakeCouchAdapter]:
    adapter = FakeCouchAdapter(replies, handler)
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    transport = CouchTransport(
        BASE,
        auth=(USER, PASSWORD),
        retries=retries,
        timeout_s=12.5,
        sleep=(sleeps.append if sleeps is not None else _no_sleep),
        session=session,
    )
    return CouchClient(transport), adapter


def _no_sleep(_: float) -> None:
    raise AssertionError("no retry expected here")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --- _changes: opaque seqs ----------------------------------------------------------------


def test_changes_passes_couchdb3_seq_back_verbatim() -> None:
    page1 = {
        "results": [
            {
                "seq": SEQ_1,
                "id": "evt-1",
                "changes": [{"rev": rev(1, "a")}],
                "doc": {"_id": "evt-1", "_rev": rev(1, "a"), "user_id": "alice"},
            }
        ],
        "last_seq": SEQ_12,
        "pending": 3,
    }
    page2 = {"results": [], "last_seq": SEQ_15, "pending": 0}
    client, adapter = make_client([(200, page1), (200, page2)])

    first = client.changes(DB, limit=100)
    second = client.changes(DB, since=first.last_seq, limit=100)

    assert first.last_seq == SEQ_12
    assert first.pending == 3
    assert first.results[0]["doc"]["user_id"] == "alice"
    assert second.last_seq == SEQ_15 and second.pending == 0
    assert adapter.sent[0].path == "/events/_changes"
    assert adapter.sent[0].query == {"since": "0", "limit": "100", "include_docs": "true"}
    # the opaque string goes back exactly as it came, never parsed or truncated at the dash
    assert adapter.sent[1].query["since"] == SEQ_12


@pytest.mark.parametrize("pouch_seq", [0, 12, 10**12])
def test_changes_turns_pouchdb_integer_seq_into_a_string(pouch_seq: int) -> None:
    reply = {"results": [{"seq": pouch_seq, "id": "x", "changes": []}], "last_seq": pouch_seq}
    client, adapter = make_client([(200, reply), (200, {"results": [], "last_seq": pouch_seq})])

    page = client.changes(DB, since="0")
    assert page.last_seq == str(pouch_seq)
    assert isinstance(page.last_seq, str)
    assert page.pending is None
    client.changes(DB, since=page.last_seq)
    assert adapter.sent[1].query["since"] == str(pouch_seq)


def test_changes_without_last_seq_keeps_the_old_checkpoint() -> None:
    client, _ = make_client([(200, {"results": []})])
    assert client.changes(DB, since=SEQ_12).last_seq == SEQ_12


# --- _find ---------------------------------------------------------------------------------


def test_find_page_refuses_a_query_without_limit() -> None:
    client, adapter = make_client([])
    with pytest.raises(ValueError, match="limit"):
        client.find_page(DB, {"selector": {"user_id": "alice"}})
    assert adapter.sent == []


def test_find_page_returns_docs_and_bookmark_and_ignores_the_warning() -> None:
    docs = [{"_id": "e1", "_rev": rev(1, "b"), "user_id": "alice"}]
    reply = {"docs": docs, "bookmark": BOOKMARK, "warning": NO_INDEX_WARNING}
    client, adapter = make_client([(200, reply)])

    query = {"selector": {"user_id": "alice"}, "limit": 10}
    got, bookmark = client.find_page(DB, query)

    assert got == docs
    assert bookmark == BOOKMARK
    assert adapter.sent[0].method == "POST"
    assert adapter.sent[0].path == "/events/_find"
    assert adapter.sent[0].json == query


def doc_at(doc_id: str, ts: str) -> dict[str, Any]:
    return {"_id": doc_id, "_rev": rev(1, doc_id[-1]), "user_id": "alice", "timestamp": ts}


def find_reply(*docs: dict[str, Any]) -> tuple[int, Any]:
    return 200, {"docs": list(docs), "bookmark": BOOKMARK, "warning": NO_INDEX_WARNING}


T1, T2, T3 = "2026-03-01T10:00:00.000Z", "2026-03-01T11:00:00.000Z", "2026-03-01T12:00:00.000Z"


def test_iter_by_key_pages_on_the_last_key_and_drops_docs_already_yielded() -> None:
    a, b, c, d = doc_at("a", T1), doc_at("b", T2), doc_at("c", T2), doc_at("d", T3)
    client, adapter = make_client(
        [
            find_reply(a, b, c),  # full page: ask again from the last key
            find_reply(b, c, d),  # b and c come back at the boundary key: dropped
            find_reply(d),  # short page: done
        ]
    )
    got = list(
        client.iter_by_key(
            DB,
            selector={"user_id": "alice"},
            key_field="timestamp",
            sort_prefix=("user_id",),
            index=("couchwatch-entity-time", "couchwatch-entity-time"),
            page_size=3,
        )
    )

    assert [g["_id"] for g in got] == ["a", "b", "c", "d"]
    queries = [s.json for s in adapter.sent]
    assert len(queries) == 3
    assert queries[0]["selector"] == {"user_id": "alice", "timestamp": {"$gt": None}}
    assert queries[1]["selector"] == {"user_id": "alice", "timestamp": {"$gte": T2}}
    assert queries[2]["selector"] == {"user_id": "alice", "timestamp": {"$gte": T3}}
    for q in queries:
        assert q["limit"] == 3
        assert "skip" not in q and "bookmark" not in q
        assert q["sort"] == [{"user_id": "asc"}, {"timestamp": "asc"}]
        assert q["use_index"] == ["couchwatch-entity-time", "couchwatch-entity-time"]


def test_iter_by_key_stops_on_a_short_first_page_and_bounds_the_range() -> None:
    client, adapter = make_client([find_reply(doc_at("a", T1))])
    got = list(
        client.iter_by_key(
            DB,
            selector={"user_id": "alice"},
            key_field="timestamp",
            start=T1,
            end=T3,
            fields=["timestamp", "user_id"],
            page_size=5,
        )
    )
    assert [g["_id"] for g in got] == ["a"]
    assert len(adapter.sent) == 1
    query = adapter.sent[0].json
    assert query["selector"]["timestamp"] == {"$gte": T1, "$lt": T3}
    assert query["fields"] == ["_id", "timestamp", "user_id"]


def test_iter_by_key_widens_the_limit_when_a_page_is_all_one_key() -> None:
    a, b, c, d = doc_at("a", T1), doc_at("b", T1), doc_at("c", T1), doc_at("d", T2)
    client, adapter = make_client(
        [
            find_reply(a, b),  # full page, all at T1
            find_reply(a, b),  # same key again: nothing fresh -> widen instead of looping
            find_reply(a, b, c, d),
            find_reply(d),
        ]
    )
    got = list(client.iter_by_key(DB, selector={}, key_field="timestamp", page_size=2))

    assert [g["_id"] for g in got] == ["a", "b", "c", "d"]
    assert [s.json["limit"] for s in adapter.sent] == [2, 2, 4, 4]
    assert [s.json["selector"]["timestamp"] for s in adapter.sent] == [
        {"$gt": None},
        {"$gte": T1},
        {"$gte": T1},
        {"$gte": T2},
    ]


def mango_server(docs: list[dict[str, Any]], key: str) -> Handler:
    """A tiny `_find` that honours `$gt null`, `$gte`, `$lt`, `limit` and (key, _id) order."""

    def handle(sent: Sent) -> Reply:
        assert sent.path == "/events/_find"
        query = sent.json
        cond = query["selector"][key]
        hits = [
            d
            for d in docs
            if ("$gte" not in cond or d[key] >= cond["$gte"])
            and ("$lt" not in cond or d[key] < cond["$lt"])
        ]
        hits.sort(key=lambda d: (d[key], d["_id"]))
        return find_reply(*hits[: query["limit"]])

    return handle


@pytest.mark.parametrize("page_size", [1, 2, 3, 7, 50])
def test_iter_by_key_yields_every_doc_once_with_many_ties(page_size: int) -> None:
    stamps = [T1] * 9 + [T2] * 2 + [T3] * 5
    docs = [doc_at(f"e{i:02d}", ts) for i, ts in enumerate(stamps)]
    client, adapter = make_client(handler=mango_server(docs, "timestamp"))

    got = list(client.iter_by_key(DB, selector={}, key_field="timestamp", page_size=page_size))

    assert sorted(g["_id"] for g in got) == sorted(d["_id"] for d in docs)
    assert len(got) == len(docs)
    assert [g["timestamp"] for g in got] == sorted(stamps)
    assert len(adapter.sent) < 40  # terminates: widening, not an endless loop


# --- _bulk_docs and upserts ----------------------------------------------------------------

BULK_MIXED = [
    {"ok": True, "id": "evt-1", "rev": rev(1, "1")},
    {"id": "evt-2", "error": "conflict", "reason": "Document update conflict."},
    {"id": "evt-3", "error": "forbidden", "reason": "only admins may write events"},
    {"ok": True, "id": "evt-4", "rev": rev(1, "4")},
    {"id": "evt-5", "error": "conflict", "reason": "Document update conflict."},
]


def test_bulk_docs_splits_every_row_by_outcome() -> None:
    client, adapter = make_client([(201, BULK_MIXED)])
    docs = [{"_id": f"evt-{i}", "n": i} for i in range(1, 6)]

    result = client.bulk_docs(DB, docs)

    assert [r.id for r in result.written] == ["evt-1", "evt-4"]
    assert [r.id for r in result.conflicts] == ["evt-2", "evt-5"]
    assert result.failed == [
        BulkRow(id="evt-3", error="forbidden", reason="only admins may write events")
    ]
    assert len(result.rows) == 5
    assert adapter.sent[0].path == "/events/_bulk_docs"
    assert adapter.sent[0].json == {"docs": docs}


def test_bulk_docs_with_nothing_to_write_sends_nothing() -> None:
    client, adapter = make_client([])
    assert client.bulk_docs(DB, []).rows == []
    assert adapter.sent == []


def merge_counts(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Keep a human review status, take the newer count."""
    return {**new, "status": old.get("status", new.get("status"))}


def test_bulk_upsert_merges_conflicted_rows_via_all_docs_keys() -> None:
    b_old = {"_id": "b", "_rev": rev(3, "b"), "count": 1, "status": "confirmed"}
    c_old = {"_id": "c", "_rev": rev(2, "c"), "count": 5, "status": "new"}
    all_docs = {
        "total_rows": 2,
        "offset": None,
        "rows": [
            {"id": "b", "key": "b", "value": {"rev": b_old["_rev"]}, "doc": b_old},
            {"id": "c", "key": "c", "value": {"rev": c_old["_rev"]}, "doc": c_old},
            {"key": "gone", "error": "not_found"},
        ],
    }
    client, adapter = make_client(
        [
            (
                201,
                [
                    {"ok": True, "id": "a", "rev": rev(1, "a")},
                    {"id": "b", "error": "conflict", "reason": "Document update conflict."},
                    {"id": "c", "error": "conflict", "reason": "Document update conflict."},
                    {"id": "d", "error": "forbidden", "reason": "read-only"},
                    {"id": "gone", "error": "conflict", "reason": "Document update conflict."},
                ],
            ),
            (200, all_docs),
            (
                201,
                [
                    {"ok": True, "id": "b", "rev": rev(4, "b")},
                    {"ok": True, "id": "gone", "rev": rev(1, "g")},
                ],
            ),
        ]
    )
    docs = [
        {"_id": "a", "count": 1, "status": "new"},
        {"_id": "b", "count": 2, "status": "new"},
        {"_id": "c", "count": 5, "status": "new"},  # merge gives what is stored: no write
        {"_id": "d", "count": 1, "status": "new"},
        {"_id": "gone", "count": 7, "status": "new"},
    ]

    result = client.bulk_upsert(DB, docs, merge=merge_counts)

    keys_req = adapter.sent[1]
    assert keys_req.method == "POST" and keys_req.path == "/events/_all_docs"
    assert keys_req.query == {"include_docs": "true"}
    assert keys_req.json == {"keys": ["b", "c", "gone"]}
    rewrite = adapter.sent[2].json["docs"]
    assert rewrite == [
        {"_id": "b", "_rev": rev(3, "b"), "count": 2, "status": "confirmed"},
        {"_id": "gone", "count": 7, "status": "new"},
    ]
    assert len(adapter.sent) == 3
    by_id = {r.id: r for r in result.rows}
    assert by_id["a"].rev == rev(1, "a")
    assert by_id["b"].rev == rev(4, "b")
    assert by_id["c"].ok and by_id["c"].rev == rev(2, "c")
    assert by_id["gone"].ok
    assert [r.id for r in result.failed] == ["d"]
    assert result.conflicts == []


def test_upsert_merges_on_409_and_writes_with_the_current_rev() -> None:
    stored = {"_id": "anom-1", "_rev": rev(2, "x"), "score": 0.4, "status": "dismissed"}
    client, adapter = make_client(
        [
            (409, {"error": "conflict", "reason": "Document update conflict."}),
            (200, stored),
            (201, {"ok": True, "id": "anom-1", "rev": rev(3, "y")}),
        ]
    )
    new_rev = client.upsert(DB, {"_id": "anom-1", "score": 0.9, "status": "new"}, merge_counts)

    assert new_rev == rev(3, "y")
    assert [(s.method, s.path) for s in adapter.sent] == [
        ("PUT", "/events/anom-1"),
        ("GET", "/events/anom-1"),
        ("PUT", "/events/anom-1"),
    ]
    assert adapter.sent[2].json == {
        "_id": "anom-1",
        "_rev": rev(2, "x"),
        "score": 0.9,
        "status": "dismissed",
    }


def test_upsert_of_identical_content_treats_409_as_already_there() -> None:
    stored = {"_id": "anom-1", "_rev": rev(2, "x"), "score": 0.9}
    client, adapter = make_client(
        [(409, {"error": "conflict", "reason": "Document update conflict."}), (200, stored)]
    )
    assert client.upsert(DB, {"_id": "anom-1", "score": 0.9}) == rev(2, "x")
    assert len(adapter.sent) == 2  # no second write


def test_upsert_gives_up_with_conflict_after_bounded_attempts() -> None:
    conflict = (409, {"error": "conflict", "reason": "Document update conflict."})

    def handle(sent: Sent) -> Reply:
        if sent.method == "PUT":
            return conflict
        return 200, {"_id": "k", "_rev": rev(len(sent.url), "z"), "v": len(sent.url)}

    client, adapter = make_client(handler=handle)
    with pytest.raises(Conflict):
        client.upsert(DB, {"_id": "k", "v": -1})
    assert 1 < sum(s.method == "PUT" for s in adapter.sent) <= 10


# --- error mapping, retries, backoff -------------------------------------------------------

ERRORS = [
    (400, {"error": "bad_request", "reason": "invalid UTF-8 JSON"}, BadRequest),
    (401, {"error": "unauthorized", "reason": "Name or password is incorrect."}, Unauthorized),
    (403, {"error": "forbidden", "reason": "You are not a db or server admin."}, Unauthorized),
    (404, {"error": "not_found", "reason": "Database does not exist."}, NotFound),
    (409, {"error": "conflict", "reason": "Document update conflict."}, Conflict),
    (
        412,
        {
            "error": "file_exists",
            "reason": "The database could not be created, the file already exists.",
        },
        DatabaseExists,
    ),
    (429, {"error": "too_many_requests", "reason": "slow down"}, CouchServerError),
    (
        500,
        {"error": "unknown_error", "reason": "function_clause", "ref": 1871530547},
        CouchServerError,
    ),
    (503, {"error": "service_unavailable", "reason": "Service unavailable"}, CouchServerError),
]


@pytest.mark.parametrize(("status", "body", "cls"), ERRORS)
def test_error_json_maps_to_the_exception_tree(
    status: int, body: dict[str, Any], cls: type[CouchError]
) -> None:
    client, _ = make_client([(status, body)], retries=0)
    with pytest.raises(cls) as caught:
        client.db_info(DB)
    exc = caught.value
    assert type(exc) is cls
    assert exc.status == status
    assert exc.error == body["error"]
    assert body["reason"] in str(exc) and "GET /events" in str(exc)
    retryable = status >= 500 or status == 429
    assert isinstance(exc, RetryableCouchError) is retryable
    assert isinstance(exc, FatalCouchError) is not retryable


def test_error_without_json_body_still_maps_by_status() -> None:
    client, _ = make_client([(502, b"<html>Bad Gateway</html>")], retries=0)
    with pytest.raises(CouchServerError, match="502"):
        client.server_info()


def test_connection_refused_is_couch_unavailable() -> None:
    refused = requests.ConnectionError(
        "HTTPConnectionPool(host='couch.test', port=5984): Max retries exceeded with url: "
        "/events (Caused by NewConnectionError('[Errno 111] Connection refused'))"
    )
    client, adapter = make_client([refused], retries=0)
    with pytest.raises(CouchUnavailable) as caught:
        client.db_info(DB)
    assert isinstance(caught.value, RetryableCouchError)
    assert "couch.test:5984" in str(caught.value)
    assert len(adapter.sent) == 1


def test_a_reply_cut_short_is_couch_unavailable_and_retried() -> None:
    """The server died mid-response (test_faults' CouchDB outage met it in a `_all_docs`)."""
    cut = requests.exceptions.ChunkedEncodingError("Response ended prematurely")
    client, adapter = make_client([cut, (200, {"db_name": DB})], sleeps=[])
    assert client.db_info(DB) == {"db_name": DB}
    assert len(adapter.sent) == 2
    client, _ = make_client([cut], retries=0)
    with pytest.raises(CouchUnavailable, match="ChunkedEncodingError"):
        client.db_info(DB)


def test_timeout_is_couch_unavailable_and_every_call_carries_the_timeout() -> None:
    client, adapter = make_client(
        [requests.ReadTimeout("read timed out"), (200, {"db_name": DB})], sleeps=[]
    )
    assert client.db_info(DB) == {"db_name": DB}
    assert [s.timeout for s in adapter.sent] == [12.5, 12.5]


@pytest.fixture
def fixed_jitter(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    def set_to(value: float) -> None:
        monkeypatch.setattr(transport_module.random, "random", lambda: value)

    set_to(0.5)
    return set_to


def test_idempotent_get_retries_5xx_and_connection_errors_with_growing_delays(
    fixed_jitter: Callable[[float], None],
) -> None:
    sleeps: list[float] = []
    unavailable = (503, {"error": "service_unavailable", "reason": "Service unavailable"})
    client, adapter = make_client(
        [unavailable, requests.ConnectionError("refused"), unavailable, (200, {"db_name": DB})],
        sleeps=sleeps,
    )
    assert client.db_info(DB) == {"db_name": DB}
    assert len(adapter.sent) == 4
    assert len(sleeps) == 3
    assert all(later > earlier for earlier, later in itertools.pairwise(sleeps))
    assert sleeps[0] > 0


@pytest.mark.parametrize("jitter", [0.0, 0.5, 0.999])
def test_backoff_is_capped_and_gives_up_after_the_retry_budget(
    fixed_jitter: Callable[[float], None], jitter: float
) -> None:
    fixed_jitter(jitter)
    sleeps: list[float] = []
    failure = (500, {"error": "unknown_error", "reason": "function_clause"})
    client, adapter = make_client([failure] * 12, retries=11, sleeps=sleeps)

    with pytest.raises(CouchServerError):
        client.get(DB, "evt-1")

    assert len(adapter.sent) == 12
    assert len(sleeps) == 11
    assert all(later >= earlier for earlier, later in itertools.pairwise(sleeps))
    assert max(sleeps) <= BACKOFF_CAP_S
    assert sleeps[-1] == sleeps[-2]  # reached the cap and stayed there


def test_non_idempotent_post_is_not_retried() -> None:
    client, adapter = make_client(
        [(503, {"error": "service_unavailable", "reason": "Service unavailable"})]
    )
    with pytest.raises(CouchServerError):
        client.transport.request("POST", "/events", json={"user_id": "alice"})
    assert len(adapter.sent) == 1  # _no_sleep would have failed the test on a retry


def test_idempotent_post_find_is_retried() -> None:
    sleeps: list[float] = []
    client, adapter = make_client(
        [(500, {"error": "unknown_error", "reason": "x"}), find_reply()], sleeps=sleeps
    )
    assert client.find_page(DB, {"selector": {}, "limit": 1}) == ([], BOOKMARK)
    assert len(adapter.sent) == 2 and len(sleeps) == 1


@pytest.mark.parametrize("status", [400, 401, 404, 409])
def test_fatal_errors_are_not_retried(status: int) -> None:
    client, adapter = make_client([(status, {"error": "e", "reason": "r"})])
    with pytest.raises(FatalCouchError):
        client.put(DB, {"_id": "x"})
    assert len(adapter.sent) == 1


# --- paths and ids -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "doc_id",
    [
        "$gt",
        "../_all_docs",
        "a/b",
        "%2F",
        "..",
        ".",
        "a?rev=1#frag",
        "white space+plus",
        "ünïcødé/ß",
        "evt-0123456789abcdef",
    ],
)
def test_doc_ids_are_one_escaped_path_segment(doc_id: str) -> None:
    client, adapter = make_client([(200, {"_id": doc_id, "_rev": rev(1, "a")})])
    assert client.get(DB, doc_id) == {"_id": doc_id, "_rev": rev(1, "a")}

    parts = urlsplit(adapter.sent[0].url)
    assert parts.query == "" and parts.fragment == ""
    db, segment = parts.path.split("/")[1:]  # exactly /events/<one segment>
    assert db == "events"
    assert unquote(segment) == doc_id
    if doc_id not in (".", ".."):
        assert "/" not in segment and segment not in (".", "..")


@pytest.mark.parametrize("doc_id", [".", ".."])
def test_dot_ids_are_not_resolved_away_from_the_document(doc_id: str) -> None:
    """`requests` resolves raw dot segments: `DELETE /events/.` must not become `/events/`."""
    client, adapter = make_client([(200, {"ok": True, "id": doc_id, "rev": rev(2, "a")})])
    client.delete(DB, doc_id, rev(1, "a"))
    assert urlsplit(adapter.sent[0].url).path == f"/events/{doc_id}"


@pytest.mark.parametrize(
    ("doc_id", "prefix", "rest"),
    [
        ("_design/x", "_design/", "x"),
        ("_design/couchwatch-entity-time", "_design/", "couchwatch-entity-time"),
        ("_local/ingest/ckpt", "_local/", "ingest/ckpt"),
        ("_design/..", "_design/", ".."),
    ],
)
def test_design_and_local_ids_keep_their_slash(doc_id: str, prefix: str, rest: str) -> None:
    client, adapter = make_client([(200, {"_id": doc_id, "_rev": rev(1, "d")})])
    client.get(DB, doc_id)

    path = urlsplit(adapter.sent[0].url).path
    assert path.startswith(f"/events/{prefix}")
    segment = path[len(f"/events/{prefix}") :]
    assert "/" not in segment
    assert unquote(segment) == rest


def test_database_names_with_slash_are_escaped() -> None:
    client, adapter = make_client([(200, {"db_name": "team/events"})])
    client.db_info("team/events")
    assert urlsplit(adapter.sent[0].url).path == "/team%2Fevents"


def test_attachment_names_are_escaped_and_bytes_travel_raw() -> None:
    payload = b"\x80\x04\x95model-bytes\x00\xff"
    client, adapter = make_client(
        [(201, {"ok": True, "id": "m/1", "rev": rev(2, "m")}), (200, payload)]
    )
    new_rev = client.put_attachment(
        DB, "m/1", rev(1, "m"), "model/../v1.joblib", payload, "application/octet-stream"
    )
    assert new_rev == rev(2, "m")
    assert client.get_attachment(DB, "m/1", "model/../v1.joblib") == payload

    put, get = adapter.sent
    assert put.method == "PUT" and put.body == payload
    assert put.headers["Content-Type"] == "application/octet-stream"
    assert put.query == {"rev": rev(1, "m")}
    assert put.path == "/events/m%2F1/model%2F..%2Fv1.joblib"
    assert get.path == put.path


# --- databases, documents, _local, _all_docs -----------------------------------------------


def test_ensure_db_treats_412_as_already_there_and_delete_db_ignores_404() -> None:
    client, adapter = make_client(
        [
            (201, {"ok": True}),
            (412, {"error": "file_exists", "reason": "The database could not be created."}),
            (404, {"error": "not_found", "reason": "Database does not exist."}),
        ]
    )
    assert client.ensure_db(DB) is True
    assert client.ensure_db(DB) is False
    client.delete_db("nope")
    assert [(s.method, s.path) for s in adapter.sent] == [
        ("PUT", "/events"),
        ("PUT", "/events"),
        ("DELETE", "/nope"),
    ]


def test_get_returns_none_for_a_missing_doc() -> None:
    client, _ = make_client([(404, {"error": "not_found", "reason": "missing"})])
    assert client.get(DB, "nope") is None


def test_put_local_checkpoint_replaces_the_current_revision() -> None:
    client, adapter = make_client(
        [
            (200, {"_id": "_local/scoring", "_rev": "0-3", "seq": SEQ_12}),
            (201, {"ok": True, "id": "_local/scoring", "rev": "0-4"}),
        ]
    )
    client.put_local(DB, "scoring", {"seq": SEQ_15})
    get, put = adapter.sent
    assert get.path == put.path == "/events/_local/scoring"
    assert put.json == {"seq": SEQ_15, "_id": "_local/scoring", "_rev": "0-3"}


def test_iter_all_docs_pages_with_a_json_startkey_and_skips_design_docs() -> None:
    def row(doc_id: str) -> dict[str, Any]:
        doc = {"_id": doc_id, "_rev": rev(1, "r")}
        return {"id": doc_id, "key": doc_id, "value": {"rev": doc["_rev"]}, "doc": doc}

    client, adapter = make_client(
        [
            (200, {"total_rows": 4, "offset": 0, "rows": [row("_design/x"), row("a"), row("b")]}),
            (200, {"total_rows": 4, "offset": 2, "rows": [row("b"), row("c")]}),
        ]
    )
    got = [d["_id"] for d in client.iter_all_docs(DB, page_size=2)]

    assert got == ["a", "b", "c"]
    assert adapter.sent[0].query == {"limit": "3", "include_docs": "true"}
    assert adapter.sent[1].query == {"limit": "3", "include_docs": "true", "startkey": '"b"'}


# --- auth and secrets ----------------------------------------------------------------------


def test_every_request_carries_basic_auth() -> None:
    client, adapter = make_client(
        [
            (200, {"couchdb": "Welcome", "version": "3.3.3"}),
            (200, {"ok": True, "userCtx": {"name": USER, "roles": ["_admin"]}}),
            (201, {"ok": True}),
            (201, [{"ok": True, "id": "e", "rev": rev(1, "e")}]),
            find_reply(),
            (200, {"results": [], "last_seq": SEQ_1}),
            (404, {"error": "not_found", "reason": "missing"}),
        ]
    )
    client.server_info()
    assert client.session_user() == USER
    client.ensure_db(DB)
    client.bulk_docs(DB, [{"_id": "e"}])
    client.find_page(DB, {"selector": {}, "limit": 1})
    client.changes(DB)
    client.get(DB, "nope")

    assert len(adapter.sent) == 7
    for sent in adapter.sent:
        assert sent.headers["Authorization"] == basic(USER, PASSWORD)
        assert PASSWORD not in sent.url and USER not in urlsplit(sent.url).netloc
        assert sent.timeout == 12.5


def bare_settings(monkeypatch: pytest.MonkeyPatch, **values: Any) -> Settings:
    for name in ("COUCHDB_URL", "COUCHDB_USER", "COUCHDB_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_a_client_without_credentials_refuses_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MissingCredentials):
        CouchClient(CouchTransport(BASE, auth=None, session=requests.Session()))
    settings = bare_settings(monkeypatch, couchdb_url=BASE)
    assert settings.couchdb_credentials() is None
    with pytest.raises(MissingCredentials) as caught:
        CouchClient.from_settings(settings)
    assert isinstance(caught.value, Unauthorized)
    # a user without a password is no credential either
    with pytest.raises(MissingCredentials):
        CouchClient.from_settings(bare_settings(monkeypatch, couchdb_url="http://admin@h:5984"))


URL_PASSWORD = "p@ss:w0rd/x"
URL_WITH_CREDS = "http://admin:p%40ss%3Aw0rd%2Fx@couch.test:5984"


def test_credentials_in_couchdb_url_are_used_as_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = bare_settings(monkeypatch, couchdb_url=URL_WITH_CREDS)
    assert settings.couchdb_credentials() == ("admin", URL_PASSWORD)
    assert settings.couchdb_base_url() == BASE

    client = CouchClient.from_settings(settings)
    adapter = FakeCouchAdapter([(200, {"couchdb": "Welcome"})])
    client.transport.session.mount("http://", adapter)
    client.server_info()

    assert client.transport.base_url == BASE
    assert adapter.sent[0].url == BASE + "/"
    assert adapter.sent[0].headers["Authorization"] == basic("admin", URL_PASSWORD)


def test_explicit_user_and_password_win_over_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = bare_settings(
        monkeypatch, couchdb_url=URL_WITH_CREDS, couchdb_user="svc", couchdb_password="other"
    )
    assert settings.couchdb_credentials() == ("svc", "other")


@pytest.mark.parametrize(
    "failure",
    [
        (401, {"error": "unauthorized", "reason": "Name or password is incorrect."}),
        (404, {"error": "not_found", "reason": "Database does not exist."}),
        requests.ConnectionError("[Errno 111] Connection refused"),
    ],
)
def test_url_credentials_never_appear_in_exceptions(
    monkeypatch: pytest.MonkeyPatch, failure: Reply
) -> None:
    settings = bare_settings(monkeypatch, couchdb_url=URL_WITH_CREDS, couchdb_retries=0)
    client = CouchClient.from_settings(settings)
    client.transport.session.mount("http://", FakeCouchAdapter([failure]))

    with pytest.raises(CouchError) as caught:
        client.db_info(DB)
    text = "".join(traceback.format_exception(caught.value)) + repr(caught.value.args)
    for secret in (URL_PASSWORD, "p%40ss", "w0rd"):
        assert secret not in text


def test_masked_settings_hide_every_password(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = bare_settings(
        monkeypatch,
        couchdb_url=URL_WITH_CREDS,
        couchdb_password="db-secret",
        redis_url="redis://:redis-secret@127.0.0.1:6379/0",
        flower_password="flower-secret",
    )
    shown = settings.masked()
    text = json.dumps(shown, default=str)
    for secret in ("p%40ss", "w0rd", "db-secret", "redis-secret", "flower-secret"):
        assert secret not in text
    assert shown["COUCHDB_URL"] == "http://admin:***@couch.test:5984"
    assert shown["COUCHDB_PASSWORD"] == "***"
    assert shown["REDIS_URL"] == "redis://:***@127.0.0.1:6379/0"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://admin:pw@couch.test:5984", "http://couch.test:5984"),
        ("https://admin:pw@couch.test/prefix/", "https://couch.test/prefix/"),
        ("http://admin:pw@[::1]:5984", "http://[::1]:5984"),
        ("http://admin@couch.test", "http://couch.test"),
        ("http://couch.test:5984", "http://couch.test:5984"),
    ],
)
def test_strip_userinfo(url: str, expected: str) -> None:
    assert strip_userinfo(url) == expected
