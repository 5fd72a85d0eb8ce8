"""The benchmark at tiny sizes, so `make bench` cannot rot. No timing assertions."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import requests

from bench import retrain, scale, servers
from bench.__main__ import main
from tests.support.services import CouchServer

pytestmark = pytest.mark.integration

SECTIONS = (
    "compute",
    "store_floor",
    "scale",
    "steady_state",
    "task_overhead",
    "memory",
    "storage",
    "latency",
    "retrain",
)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@pytest.mark.timeout(240)
def test_bench_tiny_writes_every_section(tmp_path: Path) -> None:
    main(["--size", "tiny", "--results", str(tmp_path / "results"), "--docs", str(tmp_path)])
    (path,) = (tmp_path / "results").glob("*.json")
    r = json.loads(path.read_text())
    assert all(name in r for name in SECTIONS)
    assert r["complete"] is True and not r["failed"] and not r["skipped"]
    assert set(r["section_seconds"]) == set(r["section_status"])
    assert all(_number(s) for s in r["section_seconds"].values())
    c = r["compute"]
    assert all(
        _number(c["events_per_s"][k]) for k in ("couchwatch", "seed_per_entity", "seed_global")
    )
    assert all(_number(c["f1"][k]) for k in c["f1"])
    assert _number(r["store_floor"]["ratio_to_floor"]) and _number(
        r["store_floor"]["floor_seconds"]
    )
    assert r["scale"]["store"] and r["scale"]["memory"]
    assert all(_number(p["per_entity_ms"]) for p in r["scale"]["store"] + r["scale"]["memory"])
    assert all(
        _number(x["ratio"]) for x in r["scale"]["store_ratios"] + r["scale"]["memory_ratios"]
    )
    assert _number(r["steady_state"]["ratio"])
    assert _number(r["task_overhead"]["overhead_share"])
    assert _number(r["memory"]["max_mb"])
    assert _number(r["storage"]["demo"]["median_bytes"])
    assert _number(r["latency"]["p95_s"])
    points = r["retrain"]["points"]
    assert [p["days"] for p in points] == [2, 6, 20] and _number(r["retrain"]["ratio"])
    grows = [p["history_events_per_entity"] for p in points]
    assert grows == sorted(grows) and grows[-1] > 5 * grows[0]
    # a retrain reads the days with new events, not the history: the same few at every size
    for p in points:  # only an entity first seen in a new day reads in full (its first model)
        reads = p["retrain_history_reads"]
        assert reads["incremental"] >= p["entities"] * p["rounds"], p
        assert reads.get("full", 0) <= p["entities_with_new_days"] - p["entities"], p
    assert all(
        len(p["retrain_s_per_entity_rounds"]) == p["rounds"] == retrain.ROUNDS for p in points
    )
    # like with like: the new days are the same events at every history size
    assert len({p["new_events"] for p in points}) == 1, [p["new_events"] for p in points]
    read = [p["retrain_events_read_per_entity"] for p in points]
    assert max(read) < points[-1]["history_events_per_entity"] / 5
    assert all(p["one_entity"]["events"] > 0 and _number(p["one_entity"]["fit_s"]) for p in points)
    assert all(p["one_entity"]["summary_bytes"] > 0 for p in points)
    text = (tmp_path / "performance.md").read_text()
    assert "| measure | figure | target | verdict |" in text
    assert (tmp_path / "performance" / "scale.png").stat().st_size > 0


@pytest.mark.timeout(120)
def test_bench_subset_records_a_failed_section_and_keeps_going(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = scale.memory_point

    def memory_point(n: int, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if n == 30:
            raise RuntimeError("injected failure\nsecond line")
        return real(n, *args, **kwargs)

    monkeypatch.setattr(scale, "memory_point", memory_point)
    argv = ["--size", "tiny", "--sections", "memory", "--results", str(tmp_path / "results")]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--docs", str(tmp_path)])
    assert exit_.value.code == 1
    (path,) = (tmp_path / "results").glob("*.json")
    r = json.loads(path.read_text())
    assert r["complete"] is True
    assert r["failed"] == {"memory_30": "RuntimeError: injected failure"}
    assert r["section_status"]["memory_60"] == "ok" and r["section_status"]["fleet"] == "not run"
    assert [p["entities"] for p in r["scale"]["memory"]] == [10, 60]
    assert r["scale"]["not_measured"][0]["error"] == "RuntimeError: injected failure"
    assert "compute" not in r and "latency" not in r
    text = (tmp_path / "performance.md").read_text()
    assert "**FAILED**" in text and "memory_30" in text and "not run" in text


@pytest.mark.timeout(300)
def test_bench_runs_the_fleet_section_on_an_external_server_and_names_it(
    tmp_path: Path, couchdb: CouchServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session's PouchDB Server stands in for an external Apache CouchDB 3 (none runs
    here): the section runs on a server the bench did not start, with databases of its own
    that are gone afterwards, and the report names the server of each figure."""
    monkeypatch.setattr(servers, "is_couchdb3", lambda welcome: True)
    monkeypatch.setenv("COUCHDB_URL", couchdb.url)
    monkeypatch.setenv("COUCHDB_USER", couchdb.user)
    monkeypatch.setenv("COUCHDB_PASSWORD", couchdb.password)
    argv = ["--size", "tiny", "--sections", "fleet", "--results", str(tmp_path / "results")]
    main([*argv, "--docs", str(tmp_path)])
    (path,) = (tmp_path / "results").glob("*.json")
    r = json.loads(path.read_text())
    assert r["section_status"]["fleet"] == "ok" and r["section_status"]["fleet_couchdb3"] == "ok"
    assert r["store_floor"]["server"].startswith("PouchDB Server 4.")
    external = r["store_floor_couchdb3"]
    assert external["server"].startswith("PouchDB Server 4.")  # named by its welcome reply
    assert _number(external["ratio_to_floor"]) and external["events"] > 0
    assert couchdb.url in r["couchdb3"] and couchdb.password not in path.read_text()
    left = requests.get(
        f"{couchdb.url}/_all_dbs", auth=(couchdb.user, couchdb.password), timeout=10
    ).json()
    assert not [db for db in left if re.match(r"b[0-9a-f]{8}_", db)]  # the bench's own, deleted
    text = (tmp_path / "performance.md").read_text()
    assert "(Apache CouchDB 3)" in text and text.count("on PouchDB Server 4.") >= 2
