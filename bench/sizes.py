"""How big each benchmark section runs: the committed figures use FULL, `make test` uses TINY."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    name: str
    compute_users: int  # demo users for compute throughput (events in memory)
    demo_users: int  # demo users for the fleet end-to-end and the store floor
    demo_days: int
    batch_size: int  # COUCHWATCH_BATCH_SIZE for the fleet passes
    scale_store: tuple[int, ...]  # entity counts that go through the store and the fleet
    scale_memory: tuple[int, ...]  # entity counts fed to the engine from memory
    memory_sample: int  # entities fitted + scored per in-memory point
    history_events: int  # events per entity at the scale points (small histories)
    fresh_events: int  # new events per entity scored at the scale points
    steady_new_events: int  # new events in one steady-state scoring pass
    steady_extra_history: int  # history events added for the second steady-state pass
    latency_interval_s: float  # beat scoring interval N
    latency_chunks: int  # event writes during the latency test
    retrain_users: int = 10  # users in the retrain-cost curve
    retrain_base_days: int = 8  # days of history at 1x (then 3x, 10x)
    profile: bool = True
    budget_s: float | None = None  # default --budget-s: skip scale points estimated to overrun


FULL = Sizes(
    name="full",
    compute_users=40,
    demo_users=40,
    demo_days=21,
    batch_size=5,
    scale_store=(1_000, 4_000),  # 10k through two workers alone takes > 10 min here
    scale_memory=(1_000, 10_000, 100_000),
    memory_sample=250,
    history_events=8,
    fresh_events=2,
    steady_new_events=1_000,
    steady_extra_history=200_000,
    latency_interval_s=10.0,
    latency_chunks=6,
    budget_s=1200.0,
)

TINY = Sizes(
    name="tiny",
    compute_users=6,
    demo_users=6,
    demo_days=8,
    batch_size=2,
    scale_store=(10, 30),
    scale_memory=(10, 30, 60),
    memory_sample=10,
    history_events=6,
    fresh_events=2,
    steady_new_events=40,
    steady_extra_history=300,
    latency_interval_s=2.0,
    latency_chunks=2,
    retrain_users=3,
    retrain_base_days=2,
    profile=False,
)

PRESETS = {s.name: s for s in (FULL, TINY)}
