"""The benchmark report says in words what stands in the way of a missed target."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.profiling import in_the_way, largest_parts
from bench.report import in_the_way_of

pytestmark = pytest.mark.unit

PROFILE = """
Profile at bench/profiling.py:15

3.700 profiled  bench/profiling.py:10
`- 3.700 engine_path  bench/compute.py:53
   |- 2.000 make_population  workers/detection.py:156
   |  |- 1.500 measure  workers/engine/held_out.py:105
   |  |  `- 1.500 held_out_pvalues  workers/engine/held_out.py:53
   |  `- 0.400 build_population  workers/engine/population.py:176
   |- 0.500 fit_entity_model  workers/engine/model.py:358
   `- 1.100 EntityModel.score  workers/engine/model.py:131
      `- 0.300 events_frame  workers/engine/features.py:207
"""


def test_largest_parts_reads_the_tree_under_the_measured_function(tmp_path: Path) -> None:
    path = tmp_path / "profile-compute.txt"
    path.write_text(PROFILE, encoding="utf-8")
    total, parts = largest_parts(path)
    assert total == 3.7
    assert [(p.name, p.seconds) for p in parts] == [
        ("make_population", 2.0),
        ("EntityModel.score", 1.1),
        ("fit_entity_model", 0.5),
    ]
    assert parts[0].inside == (("measure", 1.5), ("build_population", 0.4))
    text = in_the_way(path)
    assert text.startswith("Its profile (`profile-compute.txt`, 3.70 s) spends it in ")
    assert "make_population 2.00 s (54%) [measure 1.50 s, build_population 0.40 s]" in text


def test_a_missed_compute_target_gets_its_budget_and_profile_in_words(tmp_path: Path) -> None:
    path = tmp_path / "profile-compute.txt"
    path.write_text(PROFILE, encoding="utf-8")
    run = {
        "compute": {
            "events": 40_000,
            "events_per_s": {"couchwatch": 20_000.0, "seed_per_entity": 4_000.0},
        },
        "profiles": {"compute": str(path)},
    }
    (text,) = in_the_way_of(run, ["Compute throughput vs seed per-user"])
    assert text.startswith("**Compute**: 40,000 events took 2.00 s; 20x the seed per-user")
    assert "allows 0.50 s" in text and "make_population 2.00 s" in text
    assert in_the_way_of(run, []) == []
