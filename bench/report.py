"""docs/performance.md and its PNG plots, regenerated from one results JSON."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.profiling import in_the_way, top_lines

PLOTS = "performance"


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _met(ok: Any) -> str:
    return "**met**" if ok else "**MISSED**"


Row = tuple[str, str, str, str]


def _ok(r: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The section if it was measured (not missing, failed or skipped)."""
    sec = r.get(key)
    if not isinstance(sec, dict) or "error" in sec or "skipped" in sec:
        return None
    return sec


def _unmeasured(r: dict[str, Any], key: str, measure: str, target: str) -> Row:
    """The row of a section that has no figures: not run, failed, or skipped."""
    sec = r.get(key)
    if isinstance(sec, dict) and "error" in sec:
        return (measure, f"failed: {sec['error']}", target, "**FAILED**")
    if isinstance(sec, dict) and "skipped" in sec:
        return (measure, f"skipped: {sec['skipped']}", target, "skipped")
    return (measure, "not run", target, "not run")


def _one_row(
    r: dict[str, Any], key: str, measure: str, target: str, figure: Callable[[Any], str]
) -> list[Row]:
    """The row of a section with one verdict (its `met`), or why it has no figures."""
    sec = _ok(r, key)
    if sec is None:
        return [_unmeasured(r, key, measure, target)]
    return [(measure, figure(sec), target, _met(sec["met"]))]


def _compute_rows(r: dict[str, Any]) -> list[Row]:
    return _one_row(
        r,
        "compute",
        "Compute throughput vs seed per-user",
        ">= 20x, F1 >= seed",
        lambda c: (
            f"{_f(c['speedup_vs_seed_per_entity'])}x ({_f(c['events_per_s']['couchwatch'], 0)} "
            f"vs {_f(c['events_per_s']['seed_per_entity'], 0)} events/s); "
            f"F1 {_f(c['f1']['couchwatch'])} vs {_f(c['f1']['seed_per_entity'])}"
        ),
    )


def _fleet_figure(e: dict[str, Any]) -> str:
    return (
        f"{_f(e['ratio_to_floor'])}x ({_f(e['fleet_seconds'], 1)} s "
        f"vs {_f(e['floor_seconds'], 1)} s) on {e.get('server', 'PouchDB Server')}"
    )


def _fleet_rows(r: dict[str, Any]) -> list[Row]:
    rows = _one_row(r, "store_floor", "Fleet end-to-end vs store floor", "<= 1.25x", _fleet_figure)
    if "store_floor_couchdb3" in r:
        rows += _one_row(
            r,
            "store_floor_couchdb3",
            "Fleet end-to-end vs store floor (Apache CouchDB 3)",
            "<= 1.25x",
            _fleet_figure,
        )
    else:
        note = r.get("couchdb3") or "not measured"
        rows.append(("Fleet end-to-end vs store floor (Apache CouchDB 3)", note, "<= 1.25x", "n/a"))
    return rows


def _scale_rows(r: dict[str, Any]) -> list[Row]:
    target = "<= 1.2"
    s = _ok(r, "scale")
    if s is None:
        return [_unmeasured(r, "scale", "Per-entity cost (scale curve)", target)]
    out: list[Row] = []
    for kind in ("store", "memory"):
        for ratio in s[f"{kind}_ratios"]:
            out.append(
                (
                    f"Per-entity cost {ratio['to']:,}/{ratio['from']:,} ({kind})",
                    f"{_f(ratio['ratio'])}",
                    target,
                    _met(ratio["met"]),
                )
            )
    for p in s.get("not_measured", []):
        measure = f"Scale point {p['entities']:,} entities ({p['kind']})"
        if "error" in p:
            out.append((measure, f"failed: {p['error']}", target, "**FAILED**"))
        else:
            out.append((measure, f"skipped: {p['skipped']}", target, "skipped"))
    if not out:
        out.append(("Per-entity cost (scale curve)", "fewer than two points run", target, "n/a"))
    return out


def _steady_rows(r: dict[str, Any]) -> list[Row]:
    return _one_row(
        r,
        "steady_state",
        "Steady state: scoring pass, history large/small",
        "1.0 +-20%",
        lambda st: (
            f"{_f(st['ratio'])} ({_f(st['large']['wall_s'])} s "
            f"at {_f(st['large']['history_events'])} "
            f"vs {_f(st['small']['wall_s'])} s at {_f(st['small']['history_events'])} events)"
        ),
    )


def _overhead_rows(r: dict[str, Any]) -> list[Row]:
    target = "<= 10%"
    o = _ok(r, "task_overhead")
    if o is None:
        return [_unmeasured(r, "task_overhead", "Task overhead share", target)]
    out: list[Row] = []
    d, sc = o.get("demo"), o.get("scale")
    if d:
        out.append(
            (
                f"Task overhead share (demo, batch {d['batch_size']})",
                f"{_f(d['overhead_share'] * 100, 1)}%",
                target,
                _met(d["met"]),
            )
        )
    else:
        out.append(("Task overhead share (demo)", "not run", target, "not run"))
    if sc:
        out.append(
            (
                f"Task overhead share ({sc['entities']:,} entities, batch {sc['batch_size']})",
                f"{_f(sc['overhead_share'] * 100, 1)}%",
                target,
                _met(sc["met"]),
            )
        )
    else:
        out.append(("Task overhead share (scale store point)", "not run", target, "not run"))
    return out


def _memory_rows(r: dict[str, Any]) -> list[Row]:
    target = "<= 400 MB"
    m = _ok(r, "memory")
    if m is None:
        return [_unmeasured(r, "memory", "Peak RSS per worker process", target)]
    return [
        (
            f"Peak RSS per worker process ({m['entities']:,} entities)",
            f"{_f(m['max_mb'], 0)} MB",
            target,
            _met(m["met"]),
        )
    ]


def _kib(value: Any) -> str:
    return _f(value / 1024 if value else None, 1)


def _storage_rows(r: dict[str, Any]) -> list[Row]:
    target = "median <= 32 KiB"
    g = _ok(r, "storage")
    if g is None:
        return [_unmeasured(r, "storage", "Stored model size median / p99", target)]
    label, sizes = (
        ("demo", g.get("demo")) if g.get("demo") else ("small histories", g.get("small_histories"))
    )
    if not sizes:
        return [("Stored model size median / p99", "not run", target, "not run")]
    return [
        (
            f"Stored model size median / p99 ({label})",
            f"{_kib(sizes['median_bytes'])} / {_kib(sizes['p99_bytes'])} KiB",
            target,
            _met(g["met"]),
        )
    ]


def _latency_rows(r: dict[str, Any]) -> list[Row]:
    lat = _ok(r, "latency")
    if lat is None:
        return [_unmeasured(r, "latency", "Alert latency p95", "<= N + 5 s")]
    return [
        (
            f"Alert latency p95 (scoring every {_f(lat['interval_s'], 0)} s)",
            f"{_f(lat['p95_s'])} s",
            f"<= {_f(lat['interval_s'] + 5, 0)} s",
            _met(lat["met"]),
        )
    ]


def _reads(reads: dict[str, int] | None) -> str:
    """How the retrains read their histories: "2 incremental" or "1 full, 1 incremental"."""
    if not reads:
        return "reads not recorded"
    return ", ".join(f"{n} {how}" for how, n in sorted(reads.items()))


def _retrain_rows(r: dict[str, Any]) -> list[Row]:
    def figure(t: dict[str, Any]) -> str:
        first, last = t["points"][0], t["points"][-1]
        return (
            f"{_f(t['ratio'])} ({_f(last['retrain_s_per_entity'], 3)} s at "
            f"{_f(last['history_events_per_entity'], 0)} events vs "
            f"{_f(first['retrain_s_per_entity'], 3)} s at "
            f"{_f(first['history_events_per_entity'], 0)} events per entity)"
        )

    return _one_row(r, "retrain", "Retrain cost 10x / 1x history (per entity)", "<= 1.2", figure)


def in_the_way_of(r: dict[str, Any], missed: list[str]) -> list[str]:
    """For each missed target, what stands in the way, in words, from this run's figures and
    profiles: the time the target allows against the time taken, and where that time went."""
    out: list[str] = []
    profiles = r.get("profiles") or {}
    c = _ok(r, "compute")
    if c is not None and any(m.startswith("Compute") for m in missed):
        rate = c["events_per_s"]
        took = c["events"] / max(rate["couchwatch"], 1e-9)
        allows = c["events"] / max(rate["seed_per_entity"], 1e-9) / 20.0
        text = (
            f"**Compute**: {c['events']:,} events took {took:.2f} s; 20x the seed per-user "
            f"pipeline allows {allows:.2f} s."
        )
        if profiles.get("compute"):
            text += " " + in_the_way(profiles["compute"])
        out.append(text)
    e = _ok(r, "store_floor")
    if e is not None and any(m == "Fleet end-to-end vs store floor" for m in missed):
        text = (
            f"**Fleet**: {_f(e['fleet_seconds'], 1)} s where the floor read the same events in "
            f"{_f(e['floor_seconds'], 1)} s; 1.25x allows {_f(1.25 * e['floor_seconds'], 1)} s."
        )
        if profiles.get("fleet"):
            text += " " + in_the_way(profiles["fleet"], "The same work in one process")
        out.append(text)
    t = _ok(r, "retrain")
    if t is not None and any(m.startswith("Retrain") for m in missed):
        first, last = t["points"][0], t["points"][-1]

        def split(p: dict[str, Any]) -> str:
            one = p["one_entity"]
            return (
                f"{p['days']} days: {p['retrain_s_per_entity']:.3f} s per entity "
                f"(summary load {_f(one.get('summary_load_s'), 3)} s, fit {_f(one['fit_s'], 3)} s, "
                f"read {_f(p['retrain_events_read_per_entity'], 0)} events)"
            )

        out.append(
            f"**Retrain**: {split(first)}; {split(last)}. The rest of a retrain task is the "
            "new events' read, the model and summary writes and the registry (profile them "
            "with `python -m bench.retrain_profile`)."
        )
    return out


def rows(r: dict[str, Any]) -> list[Row]:
    """(measure, figure, target, verdict) for the summary table; a section that was not run,
    failed or was skipped gets a row that says so."""
    builders = (
        _compute_rows,
        _fleet_rows,
        _retrain_rows,
        _scale_rows,
        _steady_rows,
        _overhead_rows,
        _memory_rows,
        _storage_rows,
        _latency_rows,
    )
    return [row for build in builders for row in build(r)]


def failed_sections(r: dict[str, Any]) -> dict[str, str]:
    return dict(r.get("failed") or {})


def summary(r: dict[str, Any]) -> str:
    lines = [f"{m}: {fig}  [target {t}: {v.strip('*')}]" for m, fig, t, v in rows(r)]
    failed = failed_sections(r)
    if failed:
        lines.append("FAILED sections: " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
    for name, why in (r.get("skipped") or {}).items():
        lines.append(f"skipped section {name}: {why['skipped']}")
    return "\n".join(lines)


def plots(r: dict[str, Any], out: Path) -> list[str]:
    """The PNG plots of the sections that were measured; their file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    names = []
    c = _ok(r, "compute")
    if c is not None:
        fig, ax = plt.subplots(figsize=(6, 3.2))
        labels = ["couchwatch", "seed_per_entity", "seed_global"]
        values = [c["events_per_s"][k] for k in labels]
        bars = ax.bar(labels, values, color=["#2a7", "#c63", "#888"])
        for bar, k in zip(bars, labels, strict=True):
            ax.annotate(
                f"F1 {c['f1'][k]:.2f}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_ylabel("events/s (one process)")
        ax.set_title(f"Compute throughput, {c['events']:,} demo events")
        fig.tight_layout()
        fig.savefig(out / "compute.png", dpi=110)
        names.append("compute.png")
        plt.close(fig)

    s = _ok(r, "scale")
    if s is not None and (s["store"] or s["memory"]):
        fig, ax = plt.subplots(figsize=(6, 3.2))
        for kind, style in (("store", "o-"), ("memory", "s--")):
            pts = s[kind]
            if not pts:
                continue
            ax.plot(
                [p["entities"] for p in pts],
                [p["per_entity_ms"] for p in pts],
                style,
                label=f"{kind} ({'fleet, PouchDB' if kind == 'store' else 'engine only'})",
            )
        ax.set_xscale("log")
        ax.set_xlabel("entities")
        ax.set_ylabel("ms per entity")
        ax.set_ylim(bottom=0)
        ax.legend()
        ax.set_title("Scale curve (small histories)")
        fig.tight_layout()
        fig.savefig(out / "scale.png", dpi=110)
        names.append("scale.png")
        plt.close(fig)

    e = _ok(r, "store_floor")
    if e is not None:
        fig, ax = plt.subplots(figsize=(6, 2.6))
        ax.barh(
            ["store floor", "fleet: train phase", "fleet: score phase"],
            [e["floor_seconds"], e["fleet_train_phase_s"], e["fleet_score_phase_s"]],
            color=["#888", "#2a7", "#4a9"],
        )
        ax.set_xlabel("seconds")
        ax.set_title(
            f"Fleet end-to-end vs store floor ({e['entities']} entities, {e['events']:,} events)"
        )
        fig.tight_layout()
        fig.savefig(out / "fleet.png", dpi=110)
        names.append("fleet.png")
        plt.close(fig)
    return names


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _walls(side: dict[str, Any]) -> str:
    return ", ".join(f"{w:.2f}" for w in side.get("walls_s", [side["wall_s"]]))


def _load(values: Any) -> str:
    return ", ".join(f"{x:.2f}" for x in values) if values else "n/a"


def _how(r: dict[str, Any]) -> list[str]:
    """How each measured figure is measured (only for the sections that have figures)."""
    z = r["sizes"]
    out = []
    c, e, s = _ok(r, "compute"), _ok(r, "store_floor"), _ok(r, "scale")
    st, g, lat = _ok(r, "steady_state"), _ok(r, "storage"), _ok(r, "latency")
    mem, t = _ok(r, "memory"), _ok(r, "retrain")
    if c:
        out.append(
            f"- **Compute**: {c['entities']} demo users x {c['days']} days ({c['events']:,} "
            "events) in memory, one process; the production-like split of `evaluate_events` (fit "
            "on each user's first 70%, score the rest). couchwatch = `bench/compute.py::"
            "engine_path`, the engine calls the fleet makes (the population profile with its "
            "held-out alert level, then per user fit + score); the seed = "
            "`score_seed_per_entity` / `score_seed_global` on the same split. events/s = all "
            "events / wall time. F1 from `evaluate_events` (combined detector) with the demo "
            "labels. The same split through the whole fleet on the CouchDB/Redis twins "
            "(`score_entities`, what `couchwatch evaluate` runs: ingest, validation on every "
            "read, planners, model store): "
            f"{_f(c['events_per_s'].get('couchwatch_fleet_on_twins'), 0)} events/s."
        )
    if e:
        out.append(
            f"- **Store floor**: {e['floor_readers']} reader processes call `iter_entity_events` "
            "for the same (entity, start) ranges the fleet reads (training history, then the new "
            f"events scored) on the same server ({e.get('server', 'PouchDB Server')}, started by "
            f"the bench): {e['floor_events_read']:,} events read. "
            "**Fleet**: two real `celery worker` processes (concurrency 1, batch size "
            f"{e['batch_size']}); plan_scoring (registry) + plan_training + training, then the "
            "next 20% of events arrives (store time not counted) and one plan_scoring + scoring "
            "pass; wall time from sending each planner to the last run record. "
            "**On Apache CouchDB 3**: when `COUCHDB_URL` (with `COUCHDB_USER`/`COUCHDB_PASSWORD`) "
            "answers as Apache CouchDB 3, the same section runs a second time on it, with "
            "databases of its own that are deleted after; this run: "
            f"{r.get('couchdb3') or 'not measured'}."
        )
    if t:
        curve = "; ".join(
            f"{p['days']} days ({_f(p['history_events_per_entity'], 0)} events): "
            f"{_f(p['retrain_s_per_entity'], 3)} s, read "
            f"{_f(p['retrain_events_read_per_entity'], 0)} events "
            f"({_reads(p.get('retrain_history_reads'))}); one entity in process: a full read "
            f"{_f(p['one_entity']['read_s'], 3)} s, its summary "
            f"({_f(p['one_entity'].get('summary_bytes', 0) / 1024, 0)} KiB) loaded in "
            f"{_f(p['one_entity'].get('summary_load_s'), 3)} s, fit "
            f"{_f(p['one_entity']['fit_s'], 3)} s"
            for p in t["points"]
        )
        out.append(
            f"- **Retrain cost**: {t['points'][0]['entities']} demo users with 1x, 3x and 10x "
            "days of history, through the store and two real workers: a first training, then "
            f"{t['points'][0].get('rounds', 3)} times one more day of events (the same days' "
            "events at every size) and a forced retrain; the median round's retrain tasks' "
            f"body time per entity (run records) and the events each read. Per entity: {curve}. "
            "A retrain reads the days with new events and the entity's stored history summary, "
            'and fits the summary (`workers/training_history.py`, docs/operations.md "Retraining").'
        )
    if s:
        store_sizes = ", ".join(f"{p['entities']:,}" for p in s["store"]) or "no"
        memory_sizes = ", ".join(f"{p['entities']:,}" for p in s["memory"]) or "no"
        out.append(
            f"- **Scale curve**: small histories ({z['history_events']} events + "
            f"{z['fresh_events']} new per entity, cloned from demo users). Through the store "
            f"and the fleet (plan + train + score): {store_sizes} entities. Fed to the engine "
            f"from memory: {memory_sizes} entities (population over every entity, then fit + "
            f"score of the first {z['memory_sample']} entities (the same mix of cloned demo "
            "users at every point) in 3 rounds; per-entity cost = population time / entities + "
            "the fastest round's fit+score time / sample; the "
            "generated events are moved out of the cyclic GC's reach with `gc.freeze()`, as a "
            "worker never holds the fleet's events)."
        )
        for p in s.get("not_measured", []):
            why = f"failed ({p['error']})" if "error" in p else f"skipped ({p['skipped']})"
            out.append(f"  - {p['entities']:,} entities ({p['kind']}): {why}.")
        passes = s["planning"]["passes"]
        if passes:
            out.append(
                "- **Planning**: plan_scoring duration (its run record) per new event: "
                + "; ".join(
                    f"{p['new_events']:,} new events over {p['history_events']:,} history: "
                    f"{p['ms_per_new_event']:.3f} ms/event"
                    for p in passes
                )
                + "."
            )
    if st:
        out.append(
            f"- **Steady state**: after the largest store point ({z['scale_store'][-1]:,} "
            f"entities), {st.get('repeats', 1)} scoring passes, each over "
            f"{st['small']['new_events']:,} new events of other entities; then "
            f"{z['steady_extra_history']:,} older events are added (checkpoint moved past them, "
            f"index warmed) and {st.get('repeats', 1)} more passes. The median pass of each side "
            f"is compared (walls: small {_walls(st['small'])} s, large {_walls(st['large'])} s). "
            "1M events of history through PouchDB Server did not fit the 15-minute "
            "budget on this machine (loading and indexing run at ~5k docs/s), so the comparison "
            f"is {st['small']['history_events']:,} vs {st['large']['history_events']:,} events."
        )
    if _ok(r, "task_overhead"):
        out.append(
            "- **Task overhead**: run records of the timed training and scoring tasks (demo "
            "fleet run, and the largest store point at the default batch size): per phase and "
            "worker, busy span (first task start to last task end) vs the summed task body "
            "durations; the rest is broker, serialization, acks and run-record writes."
        )
    if mem:
        out.append(
            "- **Memory**: VmHWM of every process of each worker (main + pool child) after the "
            f"{mem['entities']:,}-entity store point."
        )
    if g:
        small = (g.get("small_histories") or {}).get("median_bytes")
        out.append(
            "- **Model size**: `size_bytes` of every stored model version (demo users; "
            f"small-history entities: median {_kib(small)} KiB)."
        )
    if lat:
        out.append(
            f"- **Alert latency**: beat schedules plan_scoring every {lat['interval_s']:g} s; the "
            f"last 10% of the demo events ({lat['events']:,}) is written in {lat['writes']} "
            "chunks; each new anomaly document's latency is its first appearance on the "
            "anomalies `_changes` feed minus the write time of the latest of its events written "
            f"before. {lat['anomalies']} anomaly documents: p50 {_f(lat['p50_s'])} s, "
            f"p95 {_f(lat['p95_s'])} s, max {_f(lat['max_s'])} s."
        )
    return out


def _sections(r: dict[str, Any]) -> list[str]:
    """One row per benchmark step: status and wall time."""
    status = r.get("section_status") or {}
    seconds = r.get("section_seconds") or {}
    failed, skipped = r.get("failed") or {}, r.get("skipped") or {}
    lines = ["| section | status | seconds |", "|---|---|---|"]
    for name, state in status.items():
        detail = state
        if name in failed:
            detail = f"**FAILED**: {failed[name]}"
        elif name in skipped:
            detail = f"skipped: {skipped[name]['skipped']}"
        lines.append(f"| {name} | {_cell(detail)} | {_f(seconds.get(name), 1)} |")
    return lines


def write(r: dict[str, Any], docs: Path, *, json_path: Path) -> Path:
    images = plots(r, docs / PLOTS)
    m = r["machine"]
    budget = r.get("budget_s")
    lines = [
        "# Performance",
        "",
        "Generated by `make bench` (`python -m bench`); do not edit by hand. Raw figures: "
        f"`bench/results/{json_path.name}`.",
        "",
        f"Machine: {m['cores']} cores, {m['memory_gb']} GB RAM, {m['cpu']}, Python {m['python']}; "
        f"load average at start {_load(m.get('load_avg_start'))}, "
        f"at end {_load(m.get('load_avg_end'))}. "
        f"Run {r['date']}, sizes `{r['sizes']['name']}`, "
        f"whole run {r['total_seconds'] / 60:.1f} min"
        + (f" (time budget {budget:.0f} s)." if budget else "."),
    ]
    if r.get("note"):
        lines += ["", f"> {r['note']}"]
    failed = failed_sections(r)
    if not r.get("complete", True):
        lines += ["", "**This run did not complete**; the figures below are partial."]
    if failed:
        lines += [
            "",
            "**Sections that failed**: "
            + "; ".join(f"`{k}` ({v})" for k, v in failed.items())
            + ". Their figures are missing below.",
        ]
    lines += ["", "| measure | figure | target | verdict |", "|---|---|---|---|"]
    lines += [f"| {_cell(a)} | {_cell(b)} | {t} | {v} |" for a, b, t, v in rows(r)]
    lines += ["", *(f"![{n}]({PLOTS}/{n})" for n in images)]
    lines += ["", "## How each figure is measured", "", *_how(r)]
    lines += ["", "## Sections", "", *_sections(r)]
    missed = [a for a, _, _, v in rows(r) if "MISSED" in v]
    not_measured = [a for a, _, _, v in rows(r) if "MISSED" not in v and "met" not in v]
    lines += ["", "## Targets missed", ""]
    if not missed:
        lines.append("None.")
    else:
        lines.append("Missed in this run: " + "; ".join(missed) + ".")
        lines += [f"- {text}" for text in in_the_way_of(r, missed)]
    if not_measured:
        lines += ["", "Not measured in this run: " + "; ".join(not_measured) + "."]
    for name, path in (r.get("profiles") or {}).items():
        lines += [
            "",
            f"### Profile: {name} (pyinstrument, `{Path(path).name}`)",
            "",
            "```",
            top_lines(path, 45),
            "```",
        ]
    path = docs / "performance.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
