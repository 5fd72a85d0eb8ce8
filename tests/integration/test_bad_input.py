"""Bad input on real processes (issue 7, "Bad input"; results in docs/reliability.md).

(a) Hypothesis-generated bad event documents written straight to CouchDB, as a producer would
    (bypassing `couchwatch ingest`), mixed with good events of several entities, planned and
    scored by two real workers: every bad document is quarantined with a reason, no task
    crashes, every good event is counted, and the good entities' anomalies are exactly what their
    models give on their good events alone.
(b) A fuzz corpus of real-world garbage lines (`tests/data/fuzz/ingest_garbage.tsv`) plus a 10 MB
    line through the `couchwatch ingest` CLI: each line stored or quarantined, counts add up.
(c) Entity ids that look like Mango operators or URL paths are data end to end.

Real PouchDB Server, real redis-server, real `celery worker` processes (never eager). Hypothesis
runs with `derandomize=True` and a fixed `max_examples` only to *generate* one batch; the
services see that batch once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.conftest import settings_env
from tests.integration.test_fleet_resilience import _new_window_events, _recent_demo, _services
from tests.support.fleet import WorkerFleet, worker_fleet
from tests.support.services import ROOT, CouchServer, RedisServer
from tests.support.waiting import wait_run
from workers import detection
from workers.couch.client import CouchClient
from workers.events import Rejection, validate_event
from workers.scoring import window_floor
from workers.settings import Settings
from workers.store.events import iter_entity_events
from workers.store.models import ModelStore
from workers.store.registry import registry_id

pytestmark = pytest.mark.integration

PLAN, SCORE, TRAIN = (
    "couchwatch.plan_scoring",
    "couchwatch.score_entities",
    "couchwatch.train_entities",
)
CORPUS = ROOT / "tests" / "data" / "fuzz" / "ingest_garbage.tsv"
NOW = datetime.now(UTC)


# --- helpers -------------------------------------------------------------------------------


def _plan_and_score(
    fleet: WorkerFleet, couch: CouchClient
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One planner pass (forced) and every scoring batch it enqueued, finished."""
    settings = fleet.settings
    plan = wait_run(couch, settings, fleet.app().send_task(PLAN, kwargs={"force": True}).id)
    assert plan["outcome"] == "succeeded", (plan["error"], plan["entity_errors"])
    return plan, [wait_run(couch, settings, t) for t in plan["details"]["task_ids"]]


def _train_all(
    fleet: WorkerFleet, couch: CouchClient
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    settings = fleet.settings
    task = fleet.app().send_task("couchwatch.plan_training", kwargs={"force": True})
    plan = wait_run(couch, settings, task.id)
    assert plan["outcome"] == "succeeded", (plan["error"], plan["entity_errors"])
    return plan, [wait_run(couch, settings, t, 240) for t in plan["details"]["task_ids"]]


def _docs(couch: CouchClient, db: str, kind: str | None = None) -> list[dict[str, Any]]:
    return [d for d in couch.iter_all_docs(db) if kind is None or d.get("type") == kind]


def _write(couch: CouchClient, settings: Settings, docs: list[dict[str, Any]]) -> tuple[int, int]:
    """Write as a producer does (`_bulk_docs`); return (written, conflicts); nothing else fails."""
    result = couch.bulk_docs(settings.events_db, docs)
    assert not result.failed, result.failed[:3]
    return len(result.written), len(result.conflicts)


@pytest.fixture
def two_workers(
    couchdb: CouchServer, redis_service: RedisServer, tmp_path: Path
) -> Iterator[tuple[WorkerFleet, CouchClient]]:
    with (
        _services(couchdb, redis_service, 8, couchwatch_batch_size=2) as (cfg, couch),
        worker_fleet(cfg, settings_env(cfg), tmp_path / "logs") as fleet,
    ):
        yield fleet, couch


# --- (a) hypothesis-generated bad documents, written straight to CouchDB --------------------

FIELD_NUM = st.sampled_from(["bytes_sent", "latency_ms", "status_code"])
FIELD_STR = st.sampled_from(["type", "ip_address", "country", "city", "user_agent", "endpoint"])
NOT_NUMBER = st.one_of(
    st.text(max_size=8),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.sampled_from(["NaN", "inf", "-Infinity", "1e308"]),
)
NOT_TEXT = st.one_of(
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.lists(st.text(max_size=3), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
BAD_STAMPS = st.one_of(
    st.sampled_from(
        [
            "NaN",
            "nan",
            "Infinity",
            "-inf",
            "1e308",
            "",
            "yesterday",
            "2026-01-01T00:00:00",
            "2026-13-45T25:61:00Z",
            "0000-00-00T00:00:00Z",
        ]
    ),
    st.sampled_from([1e308, -1e308, 1.7976931348623157e308, 10**20, -(10**20)]),
    st.sampled_from(
        [
            "9999-12-31T23:59:59Z",
            "2200-01-01T00:00:00+00:00",
            253402300800,
            (NOW + timedelta(days=3)).isoformat(),
        ]
    ),  # far future
    st.sampled_from(
        [
            "1969-12-31T23:59:59Z",
            "0001-01-01T00:00:00Z",
            -1,
            -3_155_760_000,
            "1900-01-01T00:00:00+01:00",
        ]
    ),  # before 1970
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.none(),
    st.dictionaries(st.sampled_from(["$gt", "$date"]), st.just(0), min_size=1),
)


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = {"a": value} if level % 2 else [value]
    return value


def bad_documents(entities: list[str], stamps: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Event documents that `validate_event` must refuse, for good and bad-only entities."""
    entity = st.sampled_from(entities)
    stamp = st.sampled_from(stamps)

    def doc(**fields: Any) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries(fields)

    return st.one_of(
        doc(timestamp=stamp, type=st.just("login")),  # no entity
        doc(user_id=entity, type=st.just("login")),  # no timestamp
        doc(
            user_id=st.one_of(
                st.booleans(),
                st.just(""),
                st.lists(st.integers(), max_size=2),
                st.dictionaries(st.just("$ne"), st.none(), min_size=1),
            ),
            timestamp=stamp,
        ),
        doc(user_id=entity, timestamp=BAD_STAMPS),
        doc(user_id=entity, timestamp=BAD_STAMPS),
        doc(user_id=entity, timestamp=BAD_STAMPS),
        st.builds(
            lambda e, s, f, v: {"user_id": e, "timestamp": s, f: v},
            entity,
            stamp,
            FIELD_NUM,
            NOT_NUMBER,
        ),
        doc(
            user_id=entity,
            timestamp=stamp,
            status_code=st.one_of(
                st.integers(max_value=99), st.integers(min_value=600), st.just(200.5)
            ),
        ),
        doc(
            user_id=entity,
            timestamp=stamp,
            bytes_sent=st.one_of(st.integers(max_value=-1), st.just(-1e308)),
        ),
        st.builds(
            lambda e, s, f, v: {"user_id": e, "timestamp": s, f: v},
            entity,
            stamp,
            FIELD_STR,
            NOT_TEXT,
        ),
        # huge strings: one over-long field, or the whole event over 64 KB
        st.builds(
            lambda e, s, n: {"user_id": e, "timestamp": s, "user_agent": "A" * n},
            entity,
            stamp,
            st.integers(2049, 120_000),
        ),
        st.builds(
            lambda e, s, n: {"user_id": e, "timestamp": s, "blob": "x" * n},
            entity,
            stamp,
            st.integers(65_537, 300_000),
        ),
        st.builds(lambda n, s: {"user_id": "u" * n, "timestamp": s}, st.integers(257, 5000), stamp),
        # deeply nested JSON
        st.builds(
            lambda e, s, d: {"user_id": e, "timestamp": s, "payload": _nested(d)},
            entity,
            stamp,
            st.integers(9, 90),
        ),
        # text that is not valid Unicode (a lone surrogate survives JSON as an escape)
        st.builds(
            lambda e, s, c: {"user_id": e, "timestamp": s, "city": c},
            entity,
            stamp,
            st.sampled_from(["\ud800", "x\udfffy", "\udbff"]),
        ),
    )


def _generate(entities: list[str], stamps: list[str], n: int) -> list[dict[str, Any]]:
    """One deterministic batch of `n` bad documents (hypothesis generates, the services see it
    once). Each is checked against the pure validator here too."""
    batch: list[dict[str, Any]] = []

    @settings(
        max_examples=n,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(bad_documents(entities, stamps))
    def collect(doc: dict[str, Any]) -> None:
        assert isinstance(validate_event(doc, entity_field="user_id", now=NOW), Rejection), doc
        batch.append(doc)

    collect()
    assert len(batch) == n
    return batch


def test_generated_bad_documents_quarantined_good_scoring_unaffected(
    two_workers: tuple[WorkerFleet, CouchClient],
) -> None:
    fleet, couch = two_workers
    cfg = fleet.settings
    scenario = _recent_demo(users=4, days=5, seed=71)
    good_users = sorted({e["user_id"] for e in scenario.events})
    entities = [*good_users, "bad-only-1", "bad-only-2"]
    history_stamps = sorted({e["timestamp"] for e in scenario.events})[::50]
    new_good = [  # a burst from an unseen country for two entities: some anomalies to compare
        {**e, "country": "KP", "city": "Pyongyang", "ip_address": f"203.0.113.{i}"}
        if e["user_id"] in good_users[:2]
        else e
        for i, e in enumerate(_new_window_events(scenario, dict.fromkeys(good_users, 12)))
    ]
    new_stamps = sorted({e["timestamp"] for e in new_good})
    bad = _generate(entities, history_stamps, 40) + _generate(entities, new_stamps, 40)
    for i, doc in enumerate(bad):
        doc["_id"] = f"bad-{i:03d}"
    # duplicate ids: a bad document reusing a bad one's id, a good event's id reused with other
    # content (both refused by CouchDB with 409 and never counted twice)
    dup_bad = {**bad[1], "_id": bad[0]["_id"]}
    dup_good = [{**e, "bytes_sent": 1, "country": "ZZ"} for e in scenario.events[:3]]
    kinds = Counter(type(d.get("timestamp")).__name__ for d in bad)

    # pass 1: history with half the bad documents in between
    assert _write(couch, cfg, scenario.events) == (len(scenario.events), 0)
    assert _write(couch, cfg, bad[:40]) == (40, 0)
    assert _write(couch, cfg, [dup_bad, *dup_good]) == (0, 4)
    plan1, scores1 = _plan_and_score(fleet, couch)
    tplan, trains = _train_all(fleet, couch)
    # pass 2: new good events and the other half of the bad documents, same windows
    assert _write(couch, cfg, new_good) == (len(new_good), 0)
    assert _write(couch, cfg, bad[40:]) == (40, 0)
    plan2, scores2 = _plan_and_score(fleet, couch)

    # every bad document is quarantined, once, with a reason; every good event counted once
    good_total = len(scenario.events) + len(new_good)
    quarantined = _docs(couch, cfg.db_name("quarantine"))
    assert len(quarantined) == len(bad), (len(quarantined), len(bad))
    assert all(q["reason"] and q["type"] == "quarantined_event" for q in quarantined)
    assert {q["event_id"] for q in quarantined} == {d["_id"] for d in bad}
    assert plan1["details"]["quarantined"] + plan2["details"]["quarantined"] == len(bad)
    assert plan1["events_in"] + plan2["events_in"] == good_total
    registry = {d["entity"]: d for d in _docs(couch, cfg.db_name("models"), "entity")}
    assert sorted(registry) == good_users  # no bad-only entity registered
    per_user = Counter(e["user_id"] for e in [*scenario.events, *new_good])
    assert {u: registry[u]["events_seen"] for u in good_users} == dict(per_user)

    # no task crashed; no entity error anywhere
    runs = [plan1, plan2, tplan, *scores1, *scores2, *trains]
    assert all(
        r["outcome"] == "succeeded" and not r["entity_errors"] and not r["error"] for r in runs
    ), [
        (r["task"], r["outcome"], r["error"], r["entity_errors"])
        for r in runs
        if r["outcome"] != "succeeded"
    ]
    assert sorted(u for r in trains for u in r["entities"]) == good_users

    # the good entities' training read only good events, and their anomalies are exactly what
    # their models give on their good events alone
    trained_on = sum(r["events_in"] for r in trains)
    assert trained_on == len(scenario.events), (trained_on, len(scenario.events))
    assert sum(r["events_in"] for r in scores2) == len(new_good)
    good_ids = {e["_id"] for e in [*scenario.events, *new_good]}
    store = ModelStore(couch, cfg.db_name("models"))
    anomalies = _docs(couch, cfg.db_name("anomalies"), "anomaly")
    assert {a["entity"] for a in anomalies} <= set(good_users)
    for user in good_users:
        head = store.head(user)
        assert head is not None
        stored = store.load(user, int(head["active_version"]))
        assert stored is not None
        since = window_floor(
            min(e["timestamp"] for e in new_good if e["user_id"] == user), cfg.couchwatch_window
        )
        mine = [
            e
            for e in [*scenario.events, *new_good]
            if e["user_id"] == user and e["timestamp"] >= since
        ]
        expected = detection.score(
            detection.load_model(stored.payload),
            mine,
            model_id=stored.doc_id,
            version=stored.version,
        )
        got = [a for a in anomalies if a["entity"] == user]
        assert sorted(a["_id"] for a in got) == sorted(d["_id"] for d in expected), user
        assert all(set(a["event_ids"]) <= good_ids for a in got)
    reasons = Counter(q["reason"].split(" ")[0] for q in quarantined)
    print(
        f"\n[bad-docs] {len(bad)} generated bad documents ({dict(kinds)} timestamps) + 4 "
        f"duplicate ids among {good_total} good events of {len(good_users)} entities: "
        f"{len(quarantined)} quarantined, {len(anomalies)} anomalies as expected; "
        f"reasons by first word {dict(reasons.most_common(8))}"
    )


# --- (b) fuzz corpus through `couchwatch ingest` ----------------------------------------------


def _corpus() -> list[tuple[str, bytes]]:
    """(expected outcome, raw line) from the corpus file: `stored|quarantined<TAB>raw`."""
    rows = []
    for line in CORPUS.read_bytes().split(b"\n"):
        if line:
            kind, _, raw = line.partition(b"\t")
            rows.append((kind.decode(), raw))
    return rows


def _cli(
    cfg: Settings, *args: str, env: dict[str, str] | None = None, timeout_s: float = 300
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "couchwatch.cli.main", *args],
        env={**os.environ, **settings_env(cfg), **(env or {})},
        cwd=ROOT,
        capture_output=True,
        timeout=timeout_s,
        check=False,
    )


def test_fuzz_corpus_through_ingest_cli(
    settings: Settings, couch: CouchClient, tmp_path: Path
) -> None:
    corpus = _corpus()
    assert len(corpus) >= 30
    huge = b'{"user_id": "fz1", "timestamp": "2026-01-01T10:00:00Z", "x": "' + b"A" * (10 * 2**20)
    lines = [raw for _, raw in corpus] + [huge + b'"}', b"", b"   ", b"\r"]
    path = tmp_path / "garbage.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    started = time.monotonic()
    done = _cli(settings, "ingest", "--quiet", str(path))
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert b"Traceback" not in done.stderr
    head = done.stdout.decode().splitlines()[0]
    accepted, duplicates, rejected = (int(w.rstrip(",")) for w in head.split()[1:6:2])
    want_stored = sum(1 for kind, _ in corpus if kind == "stored")
    want_rejected = len(corpus) - want_stored + 1  # + the 10 MB line
    stored = _docs(couch, settings.events_db)
    quarantine = _docs(couch, settings.db_name("quarantine"))
    assert (accepted, duplicates, rejected) == (want_stored, 0, want_rejected), head
    assert accepted + duplicates + rejected == len(corpus) + 1  # blank lines are not events
    assert len(stored) == accepted and len(quarantine) == rejected
    assert all(q["reason"] and q["line"] > 0 for q in quarantine)
    by_line = {q["line"]: q for q in quarantine}
    for number, (kind, raw) in enumerate(corpus, start=1):
        assert (number in by_line) == (kind == "quarantined"), (number, raw[:60], kind)
    big = by_line[len(corpus) + 1]
    assert "longer than" in big["reason"] and big["raw"] == ""
    # CSV-injection text is stored verbatim as data (escaping is the spreadsheet's job)
    assert any(d["user_id"].startswith("=HYPERLINK") for d in stored)
    assert any(d.get("user_agent", "").startswith("=cmd|") for d in stored)
    # re-ingesting adds nothing
    again = _cli(settings, "ingest", "--quiet", str(path))
    assert again.stdout.decode().startswith(
        f"accepted 0, duplicates {want_stored}, rejected {want_rejected}"
    ), again.stdout
    assert len(_docs(couch, settings.db_name("quarantine"))) == rejected
    reasons = Counter(q["reason"].split(":")[0][:30] for q in quarantine)
    print(
        f"\n[fuzz] {len(corpus) + 1} garbage lines (+3 blank) in {elapsed:.1f}s: "
        f"{accepted} stored, {rejected} quarantined; {dict(reasons.most_common(6))}"
    )


# --- (c) entity ids that look like query syntax or paths -------------------------------------

TRICKY = ["$gt", "$regex", "../_all_docs", "%2F", "_design/x", "a/b", '{"$ne": null}']


def test_operator_and_path_like_entity_ids_are_data(
    two_workers: tuple[WorkerFleet, CouchClient], tmp_path: Path
) -> None:
    fleet, couch = two_workers
    cfg = fleet.settings
    scenario = _recent_demo(users=len(TRICKY) + 1, days=5, seed=83)
    names = sorted({e["user_id"] for e in scenario.events})
    rename = dict(zip(names, [*TRICKY, "plain"], strict=True))
    history = [{**e, "user_id": rename[e["user_id"]]} for e in scenario.events]
    source = tmp_path / "tricky.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in history))
    done = _cli(cfg, "ingest", "--quiet", str(source))
    assert done.returncode == 0 and done.stdout.decode().startswith(
        f"accepted {len(history)}, duplicates 0, rejected 0"
    ), (done.stdout, done.stderr)
    per_entity = Counter(e["user_id"] for e in history)
    # the history read is exactly the entity's own events (no operator, no path)
    for entity, n in per_entity.items():
        read = list(iter_entity_events(couch, cfg, entity))
        assert len(read) == n and {d["user_id"] for d in read} == {entity}, entity

    plan1, scores1 = _plan_and_score(fleet, couch)
    tplan, trains = _train_all(fleet, couch)
    # an incident burst for every entity: unseen country and IPs in one new window
    burst_src = _new_window_events(scenario, dict.fromkeys(names, 15))
    burst = [
        {
            **e,
            "user_id": rename[e["user_id"]],
            "_id": f"burst-{i}",
            "ip_address": f"203.0.113.{i % 250}",
            "country": "KP",
            "city": "Pyongyang",
        }
        for i, e in enumerate(burst_src)
    ]
    (tmp_path / "burst.jsonl").write_text("".join(json.dumps(e) + "\n" for e in burst))
    assert _cli(cfg, "ingest", "--quiet", str(tmp_path / "burst.jsonl")).returncode == 0
    plan2, scores2 = _plan_and_score(fleet, couch)

    runs = [plan1, plan2, tplan, *scores1, *trains, *scores2]
    assert all(r["outcome"] == "succeeded" and not r["entity_errors"] for r in runs), [
        (r["task"], r["outcome"], r["error"], r["entity_errors"]) for r in runs
    ]
    registry = {d["entity"]: d for d in _docs(couch, cfg.db_name("models"), "entity")}
    assert sorted(registry) == sorted(per_entity)
    store = ModelStore(couch, cfg.db_name("models"))
    for entity, n in per_entity.items():
        assert registry[entity]["_id"] == registry_id(entity)
        stored = store.load(entity)
        assert stored is not None and stored.meta["entity"] == entity, entity
        assert stored.meta["samples"]["events"] == n, entity  # trained on its own events only
    trained = {str(u): r["details"]["versions"] for r in trains for u in r["entities"]}
    assert sorted(trained) == sorted(per_entity)
    assert sum(r["events_in"] for r in trains) == len(history)  # each read only its own
    assert sum(r["events_in"] for r in scores2) == len(burst)

    anomalies = _docs(couch, cfg.db_name("anomalies"), "anomaly")
    burst_ids = {e["_id"]: e["user_id"] for e in burst}
    own = {e["_id"]: e["user_id"] for e in history} | burst_ids
    for a in anomalies:
        assert all(own.get(i) == a["entity"] for i in a["event_ids"]), a["_id"]
    flagged = Counter(a["entity"] for a in anomalies)
    assert flagged["$gt"] > 0, flagged
    listed = _cli(cfg, "anomalies", "--entity", "$gt", "--json", "--top", "1000")
    assert listed.returncode == 0, listed.stderr
    shown = json.loads(listed.stdout)
    assert shown and {a["entity"] for a in shown} == {"$gt"}
    assert len(shown) == flagged["$gt"]
    for entity in ("../_all_docs", "_design/x", '{"$ne": null}'):
        other = _cli(cfg, "anomalies", "--entity", entity, "--json", "--top", "1000")
        assert other.returncode == 0, other.stderr
        assert {a["entity"] for a in json.loads(other.stdout)} <= {entity}
        assert len(json.loads(other.stdout)) == flagged[entity]
    print(
        f"\n[tricky-ids] {len(TRICKY)} operator/path-like entity ids + 1 plain: trained "
        f"{len(trained)}, anomalies per entity {dict(flagged)}"
    )
