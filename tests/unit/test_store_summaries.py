"""The history summary store against recorded Apache CouchDB 3 reply shapes: a document read with
`attachments=true` (two parts, or the earlier one-attachment layout), a write that keeps the sealed
part as a stub, and the 409 / 412 `missing_stub` refusals of such a write."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from tests.unit.test_couch_client import make_client, rev
from workers.couch.errors import BadRequest
from workers.store import summaries

pytestmark = pytest.mark.unit

DB = "cw_models"
DOC_ID = summaries.summary_id("alice")
SEALED_DIGEST = "md5-1B2M2Y8AsgTpgAmY7PhCfg=="
OPEN_DIGEST = "md5-XUFAKrxLKna5cZ2REBfFkg=="


def _att(data: bytes, digest: str, revpos: int) -> dict[str, Any]:
    """An attachment as CouchDB 3 answers `GET /db/doc?attachments=true`."""
    return {
        "content_type": "application/octet-stream",
        "revpos": revpos,
        "digest": digest,
        "data": base64.b64encode(data).decode(),
    }


def _doc(attachments: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "_id": DOC_ID,
        "_rev": rev(5, "s"),
        "type": "history_summary",
        "entity": "alice",
        "window": "15min",
        "sealed_before": 20524,
        **fields,
        "_attachments": attachments,
    }


def test_load_reads_both_parts_in_day_order_with_their_refs() -> None:
    reply = _doc(
        {
            summaries.OPEN: _att(b"open-bytes", OPEN_DIGEST, 5),
            summaries.SEALED: _att(b"sealed-bytes", SEALED_DIGEST, 3),
        }
    )
    client, adapter = make_client([(200, reply)])
    stored = summaries.load(client, DB, "alice")
    assert stored is not None
    assert list(stored.parts.items()) == [
        (summaries.SEALED, b"sealed-bytes"),
        (summaries.OPEN, b"open-bytes"),
    ]
    assert stored.refs[summaries.SEALED] == summaries.AttachmentRef(
        "application/octet-stream", SEALED_DIGEST, 3
    )
    assert stored.rev == rev(5, "s") and stored.sealed_before == 20524
    assert stored.size_bytes == len(b"sealed-bytes") + len(b"open-bytes")
    assert "_attachments" not in stored.meta and stored.meta["window"] == "15min"
    (sent,) = adapter.sent
    assert sent.path == f"/{DB}/{DOC_ID}" and sent.query == {"attachments": "true"}


def test_load_reads_the_earlier_one_attachment_layout() -> None:
    reply = _doc({summaries.LEGACY: _att(b"whole", SEALED_DIGEST, 2)})
    del reply["sealed_before"]
    client, _ = make_client([(200, reply)])
    stored = summaries.load(client, DB, "alice")
    assert stored is not None
    assert stored.parts == {summaries.LEGACY: b"whole"} and stored.sealed_before is None


def test_load_without_a_part_or_a_document_is_none() -> None:
    client, _ = make_client(
        [
            (200, _doc({summaries.OPEN: _att(b"open-bytes", OPEN_DIGEST, 5)})),
            (404, {"error": "not_found", "reason": "missing"}),
        ]
    )
    assert summaries.load(client, DB, "alice") is None
    assert summaries.load(client, DB, "alice") is None


def _kept_sealed() -> dict[str, Any]:
    return {
        summaries.SEALED: summaries.AttachmentRef("application/octet-stream", SEALED_DIGEST, 3),
        summaries.OPEN: b"new-open",
    }


def test_save_keeps_the_sealed_part_as_a_stub_of_the_revision_read() -> None:
    client, adapter = make_client([(201, {"ok": True, "id": DOC_ID, "rev": rev(6, "t")})])
    summaries.save(client, DB, "alice", _kept_sealed(), {"sealed_before": 20524}, rev=rev(5, "s"))
    (put,) = adapter.sent
    assert put.method == "PUT" and put.path == f"/{DB}/{DOC_ID}"
    body = put.json
    assert body["_rev"] == rev(5, "s") and body["sealed_before"] == 20524
    assert body["_attachments"] == {
        summaries.SEALED: {
            "stub": True,
            "content_type": "application/octet-stream",
            "digest": SEALED_DIGEST,
            "revpos": 3,
        },
        summaries.OPEN: {
            "content_type": "application/octet-stream",
            "data": base64.b64encode(b"new-open").decode(),
        },
    }


@pytest.mark.parametrize(
    "status,error,reason",
    [
        (409, "conflict", "Document update conflict."),
        (412, "missing_stub", "Invalid attachment stub in history-summary-alice for sealed.bin"),
    ],
)
def test_a_refused_stub_is_a_stale_stub(status: int, error: str, reason: str) -> None:
    client, adapter = make_client([(status, {"error": error, "reason": reason})])
    with pytest.raises(summaries.StaleStub):
        summaries.save(client, DB, "alice", _kept_sealed(), {}, rev=rev(5, "s"))
    assert len(adapter.sent) == 1  # never retried or merged: the caller writes every part


def test_other_refusals_of_a_stub_write_propagate() -> None:
    client, _ = make_client([(400, {"error": "bad_request", "reason": "Invalid rev format"})])
    with pytest.raises(BadRequest):
        summaries.save(client, DB, "alice", _kept_sealed(), {}, rev=rev(5, "s"))


def test_a_stub_needs_the_revision_it_came_from() -> None:
    client, adapter = make_client([])
    with pytest.raises(ValueError, match="revision"):
        summaries.save(client, DB, "alice", _kept_sealed(), {})
    assert adapter.sent == []


def test_save_of_every_part_upserts_and_drops_the_earlier_layout() -> None:
    client, adapter = make_client(
        [
            (409, {"error": "conflict", "reason": "Document update conflict."}),
            (200, _doc({summaries.LEGACY: {"stub": True, "digest": SEALED_DIGEST}})),
            (201, {"ok": True, "id": DOC_ID, "rev": rev(6, "t")}),
        ]
    )
    parts: dict[str, bytes | summaries.AttachmentRef] = {
        summaries.SEALED: b"s",
        summaries.OPEN: b"o",
    }
    summaries.save(client, DB, "alice", parts, {"sealed_before": 20531})
    put, get, again = adapter.sent
    assert (put.method, get.method, again.method) == ("PUT", "GET", "PUT")
    assert again.json["_rev"] == rev(5, "s")
    assert set(again.json["_attachments"]) == {summaries.SEALED, summaries.OPEN}
