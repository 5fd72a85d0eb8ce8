"""The benchmark at tiny sizes, so `make bench` cannot rot. No timing assertions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.__main__ import main

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
)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@pytest.mark.timeout(240)
def test_bench_tiny_writes_every_section(tmp_path: Path) -> None:
    main(["--size", "tiny", "--results", str(tmp_path / "results"), "--docs", str(tmp_path)])
    (path,) = (tmp_path / "results").glob("*.json")
    r = json.loads(path.read_text())
    assert all(name in r for name in SECTIONS)
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
    text = (tmp_path / "performance.md").read_text()
    assert "| measure | figure | target | verdict |" in text
    assert (tmp_path / "performance" / "scale.png").stat().st_size > 0
