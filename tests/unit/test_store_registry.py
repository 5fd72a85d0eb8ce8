"""The entity registry document (workers/store/registry.py): one merge per kind of update."""

from __future__ import annotations

import pytest

from workers.couch.memory import MemoryCouchClient
from workers.store import registry

pytestmark = pytest.mark.unit
DB = "cw_models"
T1, T2, T3 = "2026-03-10T09:00:00.000Z", "2026-03-10T10:00:00.000Z", "2026-03-10T11:00:00.000Z"


def _client() -> MemoryCouchClient:
    client = MemoryCouchClient()
    client.ensure_db(DB)
    return client


def test_the_latest_batch_start_is_read_under_its_old_name_and_written_under_the_new() -> None:
    client = _client()
    deployed = {  # a registry entry written before the rename
        **registry.base("alice"),
        "first_seen": T1,
        "last_event_at": T2,
        "last_seen": T2,
        "events_seen": 5,
        "events_since_training": 5,
        "counted_spans": ["s0"],
    }
    client.put(DB, deployed)
    assert registry.latest_batch_start(deployed) == T2
    # a batch that starts earlier than the stored one keeps the stored (later) start
    registry.record_seen(client, DB, {"alice": 1}, {"alice": T1}, seen_at=T3, span="s1")
    doc = client.get(DB, registry.registry_id("alice"))
    assert doc is not None
    assert doc["latest_batch_start"] == T2 and "last_event_at" not in doc
    assert doc["events_seen"] == 6 and doc["first_seen"] == T1
    registry.record_seen(client, DB, {"alice": 2}, {"alice": T3}, seen_at=T3, span="s2")
    doc = client.get(DB, registry.registry_id("alice"))
    assert doc is not None and registry.latest_batch_start(doc) == T3


def test_merge_seen_counts_a_range_once_and_defers_only_without_a_model() -> None:
    new = {
        **registry.base("bob"),
        "first_seen": T2,
        "latest_batch_start": T2,
        "last_seen": T3,
        "events_seen": 3,
    }
    old = {**registry.base("bob"), "first_seen": T1, "events_seen": 1, "counted_spans": ["s1"]}
    assert registry.merge_seen(old, new, span="s1", defer=True) == old
    merged = registry.merge_seen(old, new, span="s2", defer=True)
    assert merged["events_seen"] == 4 and merged["events_since_training"] == 3
    assert registry.waiting_of(merged) == (T2, 3)
    modeled = registry.merge_seen({**old, "model_version": 2}, new, span="s2", defer=True)
    assert registry.waiting_of(modeled) is None


def test_a_first_model_keeps_the_waiting_events_as_history_a_later_one_scores_them() -> None:
    waiting = registry.add_waiting(registry.base("carol"), T1, 7)
    new = registry.trained_doc("carol", 1, T3)
    first, to_score = registry.merge_trained(waiting, new, keep_first_history=True)
    assert to_score is None and first["history_kept"] == 7
    assert registry.waiting_of(first) is None and first["model_version"] == 1
    later, to_score = registry.merge_trained(
        {**waiting, "model_version": 1}, new, keep_first_history=True
    )
    assert to_score == (T1, 7) and registry.waiting_of(later) == (T1, 7)
    scored, to_score = registry.merge_trained(waiting, new, keep_first_history=False)
    assert to_score == (T1, 7) and "history_kept" not in scored


def test_a_failed_training_and_a_retrain_request_keep_the_other_fields() -> None:
    client = _client()
    registry.record_train_failure(client, DB, "dave", "never registered")  # nothing to count on
    assert client.get(DB, registry.registry_id("dave")) is None
    registry.record_seen(client, DB, {"dave": 2}, {"dave": T1}, seen_at=T1, span="s1")
    for _ in range(2):
        registry.record_train_failure(client, DB, "dave", "ValueError: poison")
    registry.request_retrain(client, DB, "dave", "ModelLoadError: format 1")
    doc = client.get(DB, registry.registry_id("dave"))
    assert doc is not None and doc["train_failures"] == 2 and doc["events_seen"] == 2
    assert doc["needs_retrain"] is True and doc["retrain_reason"] == "ModelLoadError: format 1"
    registry.record_trained(client, DB, {"dave": 3}, trained_at=T2, keep_first_history=True)
    doc = client.get(DB, registry.registry_id("dave"))
    assert doc is not None and doc["train_failures"] == 0 and doc["needs_retrain"] is False
    assert doc["events_seen"] == 2 and doc["events_since_training"] == 0


def test_awaiting_a_model_counts_a_redelivery_once_and_a_whole_history_read_replaces() -> None:
    client = _client()
    stamps = [T1, T2]
    for _ in range(2):
        registry.record_awaiting_model(
            client, DB, "erin", stamps, span="task-1", start=None, until=None
        )
    doc = client.get(DB, registry.registry_id("erin"))
    assert registry.waiting_of(doc) == (T1, 2)
    registry.record_awaiting_model(client, DB, "erin", [T3], span="task-2", start=T3, until=None)
    doc = client.get(DB, registry.registry_id("erin"))
    assert registry.waiting_of(doc) == (T1, 3)
    registry.record_awaiting_model(
        client, DB, "erin", [T1, T2, T3], span="task-3", start=None, until=None
    )
    doc = client.get(DB, registry.registry_id("erin"))
    assert registry.waiting_of(doc) == (T1, 3)
    registry.clear_waiting(client, DB, {"erin": (T1, 2)})  # not what is waiting now: kept
    assert registry.waiting_of(client.get(DB, registry.registry_id("erin"))) == (T1, 3)
    registry.clear_waiting(client, DB, {"erin": (T1, 3)})
    assert registry.waiting_of(client.get(DB, registry.registry_id("erin"))) is None


def test_the_earliest_event_since_training_is_kept_until_a_training_has_read_it() -> None:
    client = _client()
    registry.record_seen(client, DB, {"erin": 2}, {"erin": T2}, seen_at=T2, span="s1")
    registry.record_seen(client, DB, {"erin": 1}, {"erin": T1}, seen_at=T3, span="s2")  # late
    registry.record_seen(client, DB, {"erin": 1}, {"erin": T3}, seen_at=T3, span="s3")
    doc = client.get(DB, registry.registry_id("erin"))
    assert doc is not None and doc[registry.EARLIEST_SINCE_TRAINING] == T1
    new = registry.trained_doc("erin", 1, T3)
    # events counted while the training ran (4 now, 3 when it read): the next retrain reads them
    kept, _ = registry.merge_trained(doc, new, keep_first_history=True, read_events_seen=3)
    assert kept[registry.EARLIEST_SINCE_TRAINING] == T1
    cleared, _ = registry.merge_trained(doc, new, keep_first_history=True, read_events_seen=4)
    assert registry.EARLIEST_SINCE_TRAINING not in cleared
    registry.record_trained(
        client,
        DB,
        {"erin": 1},
        trained_at=T3,
        keep_first_history=True,
        read_events_seen={"erin": 4},
    )
    doc = client.get(DB, registry.registry_id("erin"))
    assert doc is not None and registry.EARLIEST_SINCE_TRAINING not in doc
    registry.record_seen(client, DB, {"erin": 1}, {"erin": T2}, seen_at=T3, span="s4")
    doc = client.get(DB, registry.registry_id("erin"))
    assert doc is not None and doc[registry.EARLIEST_SINCE_TRAINING] == T2
