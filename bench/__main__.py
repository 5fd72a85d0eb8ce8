"""`python -m bench [--size full|tiny]`: run every section once, write JSON and the report."""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import compute, fleet_e2e, report, scale
from bench.sizes import PRESETS, Sizes
from bench.stack import services

ROOT = Path(__file__).resolve().parents[1]


def machine() -> dict[str, Any]:
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "load_avg_start": os.getloadavg(),
    }


def run_all(sizes: Sizes, workdir: Path, profile_dir: Path | None) -> dict[str, Any]:
    started = time.perf_counter()
    out: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "sizes": asdict(sizes),
        "machine": machine(),
    }
    out["compute"] = compute.run(sizes.compute_users, sizes.demo_days, profile_dir=profile_dir)
    with services(workdir) as svc:
        fleet = fleet_e2e.run(
            svc,
            sizes.demo_users,
            sizes.demo_days,
            batch_size=sizes.batch_size,
            interval_s=sizes.latency_interval_s,
            chunks=sizes.latency_chunks,
            profile_dir=profile_dir,
        )
        store_points = []
        for i, n in enumerate(sizes.scale_store):
            last = i == len(sizes.scale_store) - 1
            steady = (sizes.steady_new_events, sizes.steady_extra_history) if last else None
            store_points.append(
                scale.store_point(svc, n, sizes.history_events, sizes.fresh_events, steady=steady)
            )
    memory_points = [
        scale.memory_point(n, sizes.history_events, sizes.fresh_events, sizes.memory_sample)
        for n in sizes.scale_memory
    ]
    largest = store_points[-1]
    steady = largest.pop("steady")
    rss = [v for v in largest["worker_peak_rss_mb"].values() if v is not None]
    out["store_floor"] = fleet["e2e"]
    out["scale"] = {
        "store": store_points,
        "memory": memory_points,
        "store_ratios": scale.ratios(store_points),
        "memory_ratios": scale.ratios(memory_points),
        "planning": planning(store_points, steady),
        "target": "per-entity cost ratio <= 1.2",
    }
    out["steady_state"] = steady
    demo_o, scale_o = fleet["overhead"], largest.pop("overhead")
    out["task_overhead"] = {
        "demo": demo_o,
        "scale": {**scale_o, "entities": largest["entities"]},
        "overhead_share": max(demo_o["overhead_share"], scale_o["overhead_share"]),
        "target": "<= 10% of worker busy time",
        "met": demo_o["met"] and scale_o["met"],
    }
    out["memory"] = {
        "entities": largest["entities"],
        "worker_peak_rss_mb": largest["worker_peak_rss_mb"],
        "max_mb": max(rss) if rss else None,
        "target": "<= 400 MB per worker process",
        "met": bool(rss) and max(rss) <= 400,
        "demo_worker_peak_rss_mb": {
            k: v / 1024 / 1024 if v else None for k, v in fleet["rss_demo"].items()
        },
    }
    demo_sizes, small_sizes = fleet["model_size_demo"], largest["model_size"]
    out["storage"] = {
        "demo": demo_sizes,
        "small_histories": small_sizes,
        "target": "median <= 32 KiB",
        "met": max(demo_sizes["median_bytes"] or 0, small_sizes["median_bytes"] or 0) <= 32 * 1024,
    }
    out["latency"] = fleet["latency"]
    out["profiles"] = {
        k: v
        for k, v in {
            "compute": out["compute"].pop("profile", None),
            "fleet": fleet.get("profile"),
        }.items()
        if v
    }
    out["machine"]["load_avg_end"] = os.getloadavg()
    out["total_seconds"] = time.perf_counter() - started
    return out


def planning(store_points: list[dict[str, Any]], steady: dict[str, Any]) -> dict[str, Any]:
    rows = []
    for p in store_points:
        rows.append(
            {
                "history_events": 0,
                "new_events": p["plan_history_events"],
                "plan_s": p["plan_history_s"],
            }
        )
    for key in ("small", "large"):
        s = steady[key]
        rows.append(
            {
                "history_events": s["history_events"] - s["new_events"],
                "new_events": s["plan_events_in"],
                "plan_s": s["plan_s"],
            }
        )
    for r in rows:
        r["ms_per_new_event"] = r["plan_s"] / max(1, r["new_events"]) * 1000
    return {
        "passes": rows,
        "steady_plan_ratio": steady["large"]["plan_s"] / max(1e-9, steady["small"]["plan_s"]),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--size", choices=sorted(PRESETS), default="full")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--docs", type=Path, default=ROOT / "docs", help="where performance.md and its plots go"
    )
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--note", default="", help="a line for the report (e.g. machine shared)")
    args = parser.parse_args(argv)
    sizes = PRESETS[args.size]
    profile_dir = args.docs / "performance" if sizes.profile and not args.no_docs else None
    with tempfile.TemporaryDirectory(prefix="couchwatch-bench-") as tmp:
        results = run_all(sizes, Path(tmp), profile_dir)
    results["note"] = args.note
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"{datetime.now(UTC):%Y-%m-%d}.json"
    path.write_text(json.dumps(results, indent=2, default=float) + "\n", encoding="utf-8")
    print(f"results: {path}")
    if not args.no_docs:
        md = report.write(results, args.docs, json_path=path)
        print(f"report: {md}")
    print(report.summary(results))


if __name__ == "__main__":
    main()
