"""Operator commands: `train`, `score`, `anomalies`, `review`, `runs`, `models`."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import click

from couchwatch.cli.common import couch_or_fail, fail, printable, settings_or_fail
from workers.couch.errors import CouchError
from workers.store import anomalies as anomaly_store
from workers.store.runs import recent_runs

PLANNER_WAIT_S = 600.0  # beat's pass holds the planner lock at most this long (its timeout)


def _app() -> Any:
    from scheduler.client import producer_app

    return producer_app()


def _wait_runs(task_ids: list[str], timeout_s: float) -> list[dict[str, Any]]:
    """Progress until every task id has a finished run record; exit 1 when any failed.
    Returns the run records."""
    settings = settings_or_fail()
    couch = couch_or_fail(settings)
    db = settings.db_name("runs")
    done: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    with click.progressbar(length=len(task_ids), label="jobs") as bar:
        while len(done) < len(task_ids) and time.monotonic() < deadline:
            waiting = [f"run-{t}" for t in task_ids if t not in done]
            for doc in couch.get_many(db, waiting).values():
                if doc.get("outcome") in ("succeeded", "partial", "failed"):
                    done[doc["task_id"]] = doc
                    bar.update(1)
            time.sleep(0.5)
    failed = [t for t, doc in done.items() if doc["outcome"] != "succeeded"]
    if len(done) < len(task_ids):
        fail(f"{len(task_ids) - len(done)} jobs still running after {timeout_s:.0f}s")
    if failed:
        fail(f"{len(failed)} of {len(task_ids)} jobs failed or partly failed: couchwatch runs")
    click.echo(f"{len(task_ids)} jobs finished")
    return list(done.values())


@click.command()
@click.option("--entity", "entities", multiple=True, help="Entity id (repeatable).")
@click.option(
    "--all", "all_", is_flag=True, help="Every entity that is due (or all, with --force)."
)
@click.option("--force", is_flag=True, help="With --all: retrain even fresh models.")
@click.option("--wait", is_flag=True, help="Wait for the jobs and exit non-zero if any failed.")
def train(entities: tuple[str, ...], all_: bool, force: bool, wait: bool) -> None:
    """Enqueue training for entities.

    `--all` first brings the entity registry up to date from the events database (the scoring
    planner's pass over `_changes`), so entities ingested since the last planning pass, or into
    a fresh deployment, are trained too."""
    if not entities and not all_:
        fail("name --entity ID (repeatable) or --all")
    from scheduler.planning import plan_training
    from workers.fleet import current

    fleet = current()
    if all_:
        _update_registry(fleet)
    known = known_entities(fleet, entities)
    result = plan_training(fleet, _send, entities=known or None, force=force)
    click.echo(f"enqueued {result.batches} training batches for {result.entities} entities")
    if result.score_task_ids:
        click.echo(
            f"enqueued scoring of {result.waiting_events} waiting events of "
            f"{result.waiting_entities} trained entities"
        )
    if wait and (result.task_ids or result.score_task_ids):
        runs = _wait_runs(result.task_ids + result.score_task_ids, timeout_s=3600)
        _after_training(runs)


def _update_registry(fleet: Any) -> None:
    """The scoring planner's pass (under its lock): new events into the registry. Entities with
    a model (or a population to compare them with) get their new events scored, as beat's next
    pass would; the others' events wait for their first model (`workers/unscored.py`)."""
    plan = _plan_scoring(fleet)
    waiting = (
        f"; {plan.deferred_events} events of {plan.deferred_entities} entities wait for "
        "their first model"
        if plan.deferred_entities
        else ""
    )
    click.echo(
        f"registry: {plan.events} new events of {plan.entities} entities "
        f"({plan.batches} scoring batches enqueued{waiting})"
    )


def _plan_scoring(fleet: Any) -> Any:
    """One scoring-planner pass from the CLI, recorded like beat's (`couchwatch runs`)."""
    from scheduler.planning import plan_scoring_locked
    from workers.store.runs import Run, save_run

    run = Run(task="couchwatch.plan_scoring", task_id=f"cli-{uuid.uuid4().hex}")
    try:
        plan = plan_scoring_locked(fleet, _send, wait_s=PLANNER_WAIT_S)
    except CouchError as exc:
        fail(str(exc))
    if plan is None:
        fail(f"the scoring planner held its lock for over {PLANNER_WAIT_S:.0f}s; try again")
    plan.record_scoring(run)
    run.finish()
    save_run(fleet.couch, fleet.settings.db_name("runs"), run, attempt=1, worker="cli")
    return plan


def _after_training(runs: list[dict[str, Any]]) -> None:
    """What became of the events that waited for these models; wait for their scoring."""
    kept = sum(int(r.get("details", {}).get("kept_as_history_events", 0)) for r in runs)
    held = sum(len(r.get("details", {}).get("kept_as_history", {})) for r in runs)
    if kept:
        click.echo(
            f"first models: {kept} events of {held} entities kept as history (trained "
            "on, not scored; COUCHWATCH_SCORE_FIRST_HISTORY=true scores them)"
        )
    ids = [t for r in runs for t in r.get("details", {}).get("unscored_task_ids", [])]
    if ids:
        events = sum(int(r["details"].get("unscored_enqueued_events", 0)) for r in runs)
        click.echo(f"scoring {events} events that waited for these models ...")
        _wait_runs(ids, timeout_s=3600)


@click.command()
@click.option("--entity", "entities", multiple=True, help="Entity id (repeatable).")
@click.option("--all", "all_", is_flag=True, help="Every entity with new events.")
@click.option("--wait", is_flag=True, help="Wait for the jobs and exit non-zero if any failed.")
def score(entities: tuple[str, ...], all_: bool, wait: bool) -> None:
    """Enqueue scoring: new events of all entities, or whole histories of named ones."""
    if not entities and not all_:
        fail("name --entity ID (repeatable) or --all")
    from scheduler.planning import batches
    from workers.fleet import current

    fleet = current()
    if entities:
        items = [[e, None, None] for e in known_entities(fleet, entities)]
        ids = [
            _send("couchwatch.score_entities", [b])
            for b in batches(items, fleet.settings.couchwatch_batch_size)
        ]
    else:
        ids = _plan_scoring(fleet).task_ids
    click.echo(f"enqueued {len(ids)} scoring batches")
    if wait and ids:
        _wait_runs(ids, timeout_s=3600)


def known_entities(fleet: Any, names: tuple[str, ...]) -> list[Any]:
    """The registry's entity ids for `names` (text, or integer ids); exit on unknown ones."""
    from workers.events import integer_entity
    from workers.store.registry import registry_id

    if not names:
        return []
    db = fleet.settings.db_name("models")
    candidates = {registry_id(n): n for n in names}
    numbers = {n: integer_entity(n) for n in names}
    candidates.update({registry_id(i): n for n, i in numbers.items() if i is not None})
    try:
        found = fleet.couch.get_many(db, list(candidates))
    except CouchError as exc:
        fail(str(exc))
    resolved = {candidates[k]: doc["entity"] for k, doc in found.items()}
    unknown = [n for n in names if n not in resolved]
    if unknown:
        fail(f"unknown entity ids (never seen by the planner): {', '.join(unknown[:10])}")
    return [resolved[n] for n in names]


def _send(name: str, args: list[Any]) -> str:
    return str(_app().send_task(name, args=args).id)


@click.command()
@click.option("--entity", default=None)
@click.option("--severity", type=click.Choice(["low", "medium", "high"]), default=None)
@click.option("--since", default=None, help="ISO 8601; anomalies whose window starts after.")
@click.option("--top", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def anomalies(
    entity: str | None, severity: str | None, since: str | None, top: int, as_json: bool
) -> None:
    """List anomalies, highest score first."""
    settings = settings_or_fail()
    couch = couch_or_fail(settings)
    selector: dict[str, Any] = {"type": "anomaly"}
    if entity is not None:
        selector["entity"] = entity
    if severity:
        selector["severity"] = severity
    if since:
        from scheduler.client import BadRequest, parse_time

        try:
            selector["window_start"] = {"$gte": parse_time(since, "--since")}
        except BadRequest as exc:
            fail(str(exc))
    try:
        db = settings.db_name("anomalies")
        if entity is not None:  # index-backed: only this entity's anomalies are read
            docs = list(anomaly_store.iter_of_entity(couch, db, entity))
        else:
            docs = list(couch.iter_all_docs(db))
    except CouchError as exc:
        fail(str(exc))
    docs = [d for d in docs if _matches(d, selector)]
    docs.sort(key=lambda d: d.get("score", 0), reverse=True)
    docs = docs[:top]
    if as_json:
        click.echo(json.dumps(docs, indent=2, default=str))
        return
    for d in docs:
        first = (d.get("reasons") or [{}])[0].get("text", "")
        click.echo(
            f"{d['score']:.2f} {printable(d['severity']):<6} {printable(d['entity']):<14} "
            f"{printable(d['window_start'])[:16]} {printable(d['detector']):<9} "
            f"{printable(first)}"
        )
        click.echo(
            printable(f"      id {d['_id']}   review: {(d.get('review') or {}).get('status')}")
        )


def _matches(doc: dict[str, Any], selector: dict[str, Any]) -> bool:
    for key, want in selector.items():
        value = doc.get(key)
        if isinstance(want, dict):
            if value is None or value < want["$gte"]:
                return False
        elif value != want:
            return False
    return True


@click.command()
@click.argument("anomaly_id", metavar="ID")
@click.argument("decision", type=click.Choice(["confirm", "dismiss"]))
@click.option("--note", default="")
@click.option("--by", default="cli")
def review(anomaly_id: str, decision: str, note: str, by: str) -> None:
    """Confirm (malicious) or dismiss (benign) an anomaly or an incident (all its anomalies);
    training learns from it."""
    from workers.incidents import UnknownIncident, is_incident_id, review_incident
    from workers.review import UnknownAnomaly, review_anomaly

    settings = settings_or_fail()
    couch = couch_or_fail(settings)
    status = "confirmed" if decision == "confirm" else "dismissed"
    try:
        if is_incident_id(anomaly_id):
            doc = review_incident(couch, settings, anomaly_id, status, note=note, by=by)
            click.echo(
                printable(f"{doc['_id']}: {status} ({len(doc.get('anomaly_ids') or [])} anomalies)")
            )
            return
        review_anomaly(
            couch,
            settings.db_name("anomalies"),
            anomaly_id,
            status,
            note=note,
            by=by,
            registry_db=settings.db_name("models"),
        )
    except (UnknownAnomaly, UnknownIncident):
        fail(f"no anomaly or incident {anomaly_id!r}")
    except CouchError as exc:
        fail(str(exc))
    click.echo(f"{printable(anomaly_id)}: {status}")


@click.command()
@click.option("--last", type=int, default=20, show_default=True)
def runs(last: int) -> None:
    """Show the most recent task runs."""
    settings = settings_or_fail()
    couch = couch_or_fail(settings)
    for r in recent_runs(couch, settings.db_name("runs"), last=last):
        err = f"  {printable(r['error'])}" if r.get("error") else ""
        bad = f"  {len(r['entity_errors'])} entity errors" if r.get("entity_errors") else ""
        click.echo(
            f"{r['finished_at'][:19]} {r['task'].split('.')[-1]:<15} {r['outcome']:<9} "
            f"entities {r['entity_count']:>4} in {r['events_in']:>6} out {r['docs_out']:>4}"
            f" {r['duration_s']:>7.2f}s {r.get('worker', '')}{err}{bad}"
        )
