"""Run the benchmark one step at a time; write the results JSON after every step.

Steps (each its own wall time, error and progress line):

- ``compute``: compute throughput vs the seed pipeline (events in memory, one process);
- ``fleet``: fleet end-to-end on the demo scenario, the store floor, task overhead, model sizes
  and alert latency (one stack on PouchDB Server with two real workers); ``fleet_couchdb3``, the
  same on an external Apache CouchDB 3 when ``COUCHDB_URL`` points at one;
- ``retrain``: the retrain-cost curve over 1x, 3x and 10x history (``bench/retrain.py``);
- ``store_<n>``: one scale point through the store and the fleet (the largest one also measures
  the steady state);
- ``memory_<n>``: one scale point fed to the engine from memory.

A step that raises is recorded as ``{"error": "<one line>"}`` and the others still run. With a
time budget, a scale point whose estimated cost (from the previous point of its kind) would
overrun the budget is skipped and recorded with its estimate.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import compute, fleet_e2e, retrain, scale
from bench.servers import ExternalCouch
from bench.sizes import Sizes
from bench.stack import Services, external_services, services

Result = dict[str, Any]
GROUPS = ("compute", "fleet", "retrain", "store", "memory")


@dataclass(frozen=True)
class Step:
    name: str
    kind: str  # one of GROUPS
    entities: int | None = None
    steady: bool = False  # the store point that also measures the steady state
    external: bool = False  # runs on the external Apache CouchDB 3, not the bench's own server

    @property
    def needs_services(self) -> bool:
        return self.kind in ("fleet", "retrain", "store") and not self.external


EXTERNAL_FLEET = "fleet_couchdb3"


def plan(sizes: Sizes, *, couchdb3: bool = False) -> list[Step]:
    """Every step of a full run, in the order they run (the fleet section a second time on an
    external Apache CouchDB 3 when there is one)."""
    steps = [Step("compute", "compute"), Step("fleet", "fleet")]
    if couchdb3:
        steps.append(Step(EXTERNAL_FLEET, "fleet", external=True))
    steps.append(Step("retrain", "retrain"))
    last = len(sizes.scale_store) - 1
    steps += [
        Step(f"store_{n}", "store", n, steady=i == last) for i, n in enumerate(sizes.scale_store)
    ]
    steps += [Step(f"memory_{n}", "memory", n) for n in sizes.scale_memory]
    return steps


def select(steps: list[Step], wanted: Iterable[str]) -> list[Step]:
    """The steps named in `wanted`: a step name, or a group (compute, fleet, store, memory)."""
    names = {s.name for s in steps}
    chosen: set[str] = set()
    for raw in wanted:
        name = raw.strip()
        if not name:
            continue
        if name in GROUPS:
            chosen |= {s.name for s in steps if s.kind == name}
        elif name in names:
            chosen.add(name)
        else:
            valid = ", ".join([*GROUPS, *(s.name for s in steps if s.entities is not None)])
            raise ValueError(f"unknown section {name!r} (valid: {valid})")
    return [s for s in steps if s.name in chosen]


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


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return line[:300]


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def write_json(path: Path, results: Result) -> None:
    """Write atomically, so a run stopped mid-write leaves the previous complete file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2, default=float) + "\n", encoding="utf-8")
    tmp.replace(path)


class Runner:
    def __init__(
        self,
        sizes: Sizes,
        workdir: Path,
        *,
        json_path: Path,
        steps: list[Step],
        budget_s: float | None,
        profile_dir: Path | None,
        note: str = "",
        couchdb3: ExternalCouch | None = None,
        couchdb3_note: str = "",
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.sizes, self.workdir, self.json_path = sizes, workdir, json_path
        self.couchdb3, self.couchdb3_note = couchdb3, couchdb3_note
        self.all_steps, self.steps = plan(sizes, couchdb3=couchdb3 is not None), steps
        self.budget_s, self.profile_dir, self.note = budget_s, profile_dir, note
        self.clock = clock
        self.started = clock()
        self.date = datetime.now(UTC).isoformat(timespec="seconds")
        self.machine = machine()
        self.raw: dict[str, Result] = {}  # step name -> its result
        self.errors: dict[str, str] = {}  # step name -> one line
        self.skipped: dict[str, Result] = {}  # step name -> why, with the estimate
        self.seconds: dict[str, float] = {}
        self.estimates: dict[str, float] = {}
        self._services: ExitStack | None = None
        self._svc: Services | None = None
        self._services_error: str | None = None

    # -- services (PouchDB Server + redis), started for the first step that needs them ----------

    def svc(self) -> Services:
        if self._services_error is not None:
            raise RuntimeError(f"services did not start: {self._services_error}")
        if self._svc is None:
            stack = ExitStack()
            try:
                self._svc = stack.enter_context(services(self.workdir))
            except Exception as exc:
                stack.close()
                self._services_error = one_line(exc)
                raise
            self._services = stack
        return self._svc

    def close_services(self) -> None:
        stack, self._services, self._svc = self._services, None, None
        if stack is not None:
            try:
                stack.close()
            except Exception as exc:
                self.errors["services"] = f"teardown: {one_line(exc)}"
                progress(f"services teardown failed: {one_line(exc)}")

    # -- the steps ----------------------------------------------------------------------------

    def execute(self, step: Step) -> Result:
        z = self.sizes
        if step.kind == "compute":
            return compute.run(z.compute_users, z.demo_days, profile_dir=self.profile_dir)
        if step.external:
            if self.couchdb3 is None:
                raise RuntimeError(f"no Apache CouchDB 3: {self.couchdb3_note}")
            with external_services(self.couchdb3, self.workdir / step.name) as svc:
                return fleet_e2e.run(
                    svc,
                    z.demo_users,
                    z.demo_days,
                    batch_size=z.batch_size,
                    interval_s=z.latency_interval_s,
                    chunks=z.latency_chunks,
                )
        if step.kind == "fleet":
            return fleet_e2e.run(
                self.svc(),
                z.demo_users,
                z.demo_days,
                batch_size=z.batch_size,
                interval_s=z.latency_interval_s,
                chunks=z.latency_chunks,
                profile_dir=self.profile_dir,
            )
        if step.kind == "retrain":
            return retrain.run(self.svc(), z.retrain_users, z.retrain_base_days)
        assert step.entities is not None
        if step.kind == "store":
            steady = (z.steady_new_events, z.steady_extra_history) if step.steady else None
            return scale.store_point(
                self.svc(), step.entities, z.history_events, z.fresh_events, steady=steady
            )
        return scale.memory_point(step.entities, z.history_events, z.fresh_events, z.memory_sample)

    def estimate(self, step: Step) -> tuple[float, str] | None:
        """(seconds, basis) for a scale point, from the last measured point of its kind."""
        if step.entities is None:
            return None
        z = self.sizes
        prev = [
            s
            for s in self.all_steps
            if s.kind == step.kind
            and s.entities is not None
            and s.entities < step.entities
            and s.name in self.raw
        ]
        if not prev:
            return None
        basis = prev[-1]
        r, secs = self.raw[basis.name], self.seconds[basis.name]
        n0, n = basis.entities or 1, step.entities
        if step.kind == "memory":
            # population (and data generation) grow with entities; the fitted sample does not
            # (every timed round, its own and the previous point's, is a fixed cost)
            fixed0 = sum(r.get("sample_rounds_s", [r["sample_fit_score_s"]]))
            fixed0 += sum((r.get("interleaved") or {}).get("previous_rounds_s", []))
            per_round = float(r["sample_fit_score_s"]) / max(1, r["sampled_entities"])
            fixed = per_round * min(z.memory_sample, n) * 2 * scale.MEMORY_ROUNDS
            return fixed + max(0.0, secs - fixed0) / n0 * n, basis.name
        est = secs / n0 * n
        if step.steady:
            # storing the extra history at the previous point's load rate, and two small passes
            load_per_event = float(r["load_s"]) / max(1, r["plan_history_events"])
            score_per_event = float(r["score_phase_s"]) / max(1, r["plan_new_events"])
            est += load_per_event * z.steady_extra_history
            est += 2 * score_per_event * z.steady_new_events
        return est, basis.name

    def over_budget(self, step: Step) -> Result | None:
        if self.budget_s is None or step.entities is None:
            return None
        elapsed = self.clock() - self.started
        guess = self.estimate(step)
        if guess is None:
            if elapsed < self.budget_s:
                return None
            return {
                "skipped": "budget already spent",
                "elapsed_s": elapsed,
                "budget_s": self.budget_s,
                "estimate_s": None,
            }
        est, basis = guess
        self.estimates[step.name] = est
        if elapsed + est <= self.budget_s:
            return None
        return {
            "skipped": (
                f"estimated {est:.0f} s (from {basis}) after {elapsed:.0f} s "
                f"would exceed the {self.budget_s:g} s budget"
            ),
            "elapsed_s": elapsed,
            "estimate_s": est,
            "estimate_basis": basis,
            "budget_s": self.budget_s,
        }

    def run(self) -> Result:
        self.write(complete=False)
        try:
            for i, step in enumerate(self.steps):
                self.run_step(step)
                if not any(s.needs_services for s in self.steps[i + 1 :]):
                    self.close_services()
        except BaseException as exc:  # Ctrl-C / SIGTERM: keep what was measured
            self.close_services()
            self.write(complete=False, interrupted=one_line(exc) or "interrupted")
            raise
        self.close_services()
        return self.write(complete=True)

    def run_step(self, step: Step) -> None:
        skip = self.over_budget(step)
        if skip is not None:
            self.skipped[step.name] = skip
            self.write(complete=False)
            progress(f"{step.name}: skipped, {skip['skipped']}")
            return
        start = self.clock()
        try:
            self.raw[step.name] = self.execute(step)
            status = "ok"
        except Exception as exc:
            self.errors[step.name] = one_line(exc)
            status = f"FAILED ({self.errors[step.name]})"
            traceback.print_exc(file=sys.stderr)
        finally:
            self.seconds[step.name] = self.clock() - start
        self.write(complete=False)
        total = self.clock() - self.started
        progress(f"{step.name}: {status} in {self.seconds[step.name]:.1f} s (total {total:.1f} s)")

    def write(self, *, complete: bool, interrupted: str | None = None) -> Result:
        try:
            results = self.results(complete)
        except Exception as exc:  # a result of an unexpected shape must not lose the others
            traceback.print_exc(file=sys.stderr)
            self.errors.setdefault("results", one_line(exc))
            results = self.results(complete, derived=False)
        if interrupted:
            results["interrupted"] = interrupted
        write_json(self.json_path, results)
        return results

    # -- the results JSON ---------------------------------------------------------------------

    def status(self, name: str) -> str:
        if name in self.raw:
            return "ok"
        if name in self.errors:
            return "failed"
        if name in self.skipped:
            return "skipped"
        return "pending" if name in {s.name for s in self.steps} else "not run"

    def results(self, complete: bool, *, derived: bool = True) -> Result:
        m = dict(self.machine)
        if complete:
            m["load_avg_end"] = os.getloadavg()
        out: Result = {
            "date": self.date,
            "complete": complete,
            "sizes": asdict(self.sizes),
            "machine": m,
            "note": self.note,
            "budget_s": self.budget_s,
            "sections_run": [s.name for s in self.steps],
            "section_status": {s.name: self.status(s.name) for s in self.all_steps},
            "section_seconds": dict(self.seconds),
            "failed": dict(self.errors),
            "skipped": dict(self.skipped),
            "budget_estimates_s": dict(self.estimates),
            "total_seconds": self.clock() - self.started,
            "couchdb3": self.couchdb3_note,
        }
        if derived:
            out.update(derive(self.all_steps, self.raw, self.errors, self.skipped))
        else:
            out["raw"] = self.raw
        return out


def _problem(names: list[str], errors: dict[str, str], skipped: dict[str, Result]) -> Result | None:
    """{"error": ...} / {"skipped": ...} for a figure whose steps did not produce results."""
    failed = [f"{n}: {errors[n]}" for n in names if n in errors]
    if failed:
        return {"error": "; ".join(failed)}
    dropped = [f"{n}: {skipped[n]['skipped']}" for n in names if n in skipped]
    if dropped:
        return {"skipped": "; ".join(dropped)}
    return None


def derive(
    steps: list[Step], raw: dict[str, Result], errors: dict[str, str], skipped: dict[str, Result]
) -> Result:
    """The report's sections from the steps' results; a section whose steps did not run is left
    out, one whose steps failed or were skipped is ``{"error": ...}`` / ``{"skipped": ...}``."""
    out: Result = {}

    def put(key: str, names: list[str], value: Any) -> None:
        if value is not None:
            out[key] = value
            return
        problem = _problem(names, errors, skipped)
        if problem is not None:
            out[key] = problem

    comp = raw.get("compute")
    put("compute", ["compute"], _without(comp, "profile") if comp else None)
    fleet = raw.get("fleet")
    put("store_floor", ["fleet"], fleet["e2e"] if fleet else None)
    external = raw.get(EXTERNAL_FLEET)
    put("store_floor_couchdb3", [EXTERNAL_FLEET], external["e2e"] if external else None)
    put("retrain", ["retrain"], raw.get("retrain"))

    store_steps = [s for s in steps if s.kind == "store"]
    memory_steps = [s for s in steps if s.kind == "memory"]
    stores = [(s, raw[s.name]) for s in store_steps if s.name in raw]
    memories = [(s, raw[s.name]) for s in memory_steps if s.name in raw]
    steady_step = next((s for s in store_steps if s.steady), None)
    steady = (
        raw[steady_step.name].get("steady") if steady_step and steady_step.name in raw else None
    )
    scale_names = [s.name for s in store_steps + memory_steps]
    attempted = [n for n in scale_names if n in raw or n in errors or n in skipped]
    if attempted:
        store_points = [_without(r, "steady", "overhead") for _, r in stores]
        memory_points = [r for _, r in memories]
        out["scale"] = {
            "store": store_points,
            "memory": memory_points,
            "store_ratios": scale.ratios(store_points),
            "memory_ratios": scale.ratios(memory_points),
            "planning": planning(store_points, steady),
            "not_measured": [
                {
                    "section": s.name,
                    "kind": s.kind,
                    "entities": s.entities,
                    **({"error": errors[s.name]} if s.name in errors else skipped[s.name]),
                }
                for s in store_steps + memory_steps
                if s.name in errors or s.name in skipped
            ],
            "target": "per-entity cost ratio <= 1.2",
        }
    put("steady_state", [steady_step.name] if steady_step else [], steady)

    largest = stores[-1][1] if stores else None
    store_names = [s.name for s in store_steps]
    if fleet or largest:
        demo_o = fleet["overhead"] if fleet else None
        scale_o = {**largest["overhead"], "entities": largest["entities"]} if largest else None
        parts = [p for p in (demo_o, scale_o) if p]
        out["task_overhead"] = {
            "demo": demo_o,
            "scale": scale_o,
            "overhead_share": max(p["overhead_share"] for p in parts),
            "target": "<= 10% of worker busy time",
            "met": all(p["met"] for p in parts),
        }
    else:
        put("task_overhead", ["fleet", *store_names], None)

    if largest:
        rss = [v for v in largest["worker_peak_rss_mb"].values() if v is not None]
        out["memory"] = {
            "entities": largest["entities"],
            "worker_peak_rss_mb": largest["worker_peak_rss_mb"],
            "max_mb": max(rss) if rss else None,
            "target": "<= 400 MB per worker process",
            "met": bool(rss) and max(rss) <= 400,
            "demo_worker_peak_rss_mb": (
                {k: v / 1024 / 1024 if v else None for k, v in fleet["rss_demo"].items()}
                if fleet
                else None
            ),
        }
    else:
        put("memory", store_names, None)

    if fleet or largest:
        demo_sizes = fleet["model_size_demo"] if fleet else None
        small_sizes = largest["model_size"] if largest else None
        medians = [(p["median_bytes"] or 0) for p in (demo_sizes, small_sizes) if p]
        out["storage"] = {
            "demo": demo_sizes,
            "small_histories": small_sizes,
            "target": "median <= 32 KiB",
            "met": max(medians) <= 32 * 1024,
        }
    else:
        put("storage", ["fleet", *store_names], None)

    put("latency", ["fleet"], fleet["latency"] if fleet else None)
    profiles = {
        "compute": comp.get("profile") if comp else None,
        "fleet": fleet.get("profile") if fleet else None,
    }
    out["profiles"] = {k: v for k, v in profiles.items() if v}
    return out


def _without(d: Result, *keys: str) -> Result:
    return {k: v for k, v in d.items() if k not in keys}


def planning(store_points: list[Result], steady: Result | None) -> Result:
    rows = [
        {"history_events": 0, "new_events": p["plan_history_events"], "plan_s": p["plan_history_s"]}
        for p in store_points
    ]
    for s in (steady["small"], steady["large"]) if steady else ():
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
        "steady_plan_ratio": (
            steady["large"]["plan_s"] / max(1e-9, steady["small"]["plan_s"]) if steady else None
        ),
    }
