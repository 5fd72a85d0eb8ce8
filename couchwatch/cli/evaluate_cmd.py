"""`couchwatch demo-data | evaluate`: a labeled demo scenario, and quality against labels."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from couchwatch.cli.common import couch_or_fail, fail, printable, settings_or_fail
from workers.couch.errors import CouchError

if TYPE_CHECKING:
    from workers.engine.evaluation import Labels


@click.command("demo-data")
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--users",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Users (or services, with --entity-field service).",
)
@click.option("--days", type=click.IntRange(min=2), default=21, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--entity-field",
    default=None,
    help="Field holding the entity id (default: COUCHWATCH_ENTITY_FIELD).",
)
@click.option(
    "--scenario",
    "scenario_name",
    type=click.Choice(["demo", "sparse", "shifts", "travel", "devices", "services", "mixed"]),
    default="demo",
    show_default=True,
    help="A generator shaped unlike the demo (docs/scenarios.md); it sets its own entity field.",
)
def demo_data(
    outdir: Path, users: int, days: int, seed: int, entity_field: str | None, scenario_name: str
) -> None:
    """Write a seeded demo scenario: OUTDIR/events.jsonl and OUTDIR/labels.json."""
    from workers.engine.demo_data import DemoScenario, generate_demo, write_demo

    scenario: DemoScenario
    if scenario_name == "demo":
        field = entity_field or settings_or_fail().entity_field
        scenario = generate_demo(users=users, days=days, seed=seed, entity_field=field)
    else:
        from workers.engine.scenarios import generate_scenario

        scenario = generate_scenario(scenario_name, users=users, days=days, seed=seed)
    try:
        events_path, labels_path = write_demo(outdir, scenario)
    except OSError as exc:
        fail(f"cannot write {outdir}: {exc.strerror or exc}")
    n_incidents = sum(len(v) for k, v in scenario.labels.items() if k != "kinds")
    click.echo(f"wrote {len(scenario.events)} events to {events_path}")
    click.echo(f"wrote {n_incidents} labeled incidents to {labels_path}")
    click.echo(
        f"next: couchwatch ingest {events_path} && couchwatch evaluate --labels {labels_path}"
    )


def read_labels(path: Path) -> Labels:
    """Read and validate a labels file; one error line and exit 1 on any problem."""
    from workers.engine.evaluation import LabelsError, load_labels

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"cannot read labels {path}: {exc.strerror or exc}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail(f"labels {path} is not valid JSON: {exc}")
    try:
        labels = load_labels(document)
    except LabelsError as exc:
        fail(f"{path}: {exc}")
    if not len(labels):
        fail(f"{path}: labels: no labeled spans")
    return labels


def _check_train_until(value: str | None) -> None:
    if value is None:
        return
    from workers.engine.evaluation import to_utc

    try:
        to_utc([value], what="--train-until")
    except ValueError as exc:
        fail(str(exc))


def _with_entity(docs: Iterable[dict[str, Any]], entity_field: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get(entity_field) not in (None, "") and "timestamp" in d]


@click.command()
@click.option(
    "--labels",
    "labels_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Labels JSON: {entity: [[start, end], ...], kinds: {...}}.",
)
@click.option(
    "--train-until",
    default=None,
    help="One cutoff (ISO 8601) for every entity; default: 70% of each entity's span.",
)
@click.option(
    "--scores-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="CSV of every scored window or event (combined detector).",
)
@click.option(
    "--plot",
    "plot_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for one PNG per labeled or flagged entity.",
)
@click.option(
    "--false-alerts",
    "false_alerts_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="CSV of every false alert (entity, start, end, severity, detector, score, reason).",
)
def evaluate(
    labels_path: Path,
    train_until: str | None,
    scores_out: Path | None,
    plot_dir: Path | None,
    false_alerts_out: Path | None,
) -> None:
    """Run the events in CouchDB through the fleet's own planning, training and scoring (on
    in-memory twins, clock at the data); print quality against labels."""
    labels = read_labels(labels_path)  # before any CouchDB access
    _check_train_until(train_until)
    settings = settings_or_fail()
    couch = couch_or_fail(settings)
    field = settings.entity_field
    try:
        events = _with_entity(couch.iter_all_docs(settings.events_db), field)
    except CouchError as exc:
        fail(str(exc))
    if not events:
        fail(f"no events with {field!r} and 'timestamp' in {settings.events_db}")
    click.echo(
        f"{len(events)} events of {len({str(e[field]) for e in events})} entities "
        f"({field}) from {settings.events_db}; {len(labels)} labeled incidents"
    )

    from couchwatch.evaluate.run import COMBINED, combined_rows, run_evaluation
    from workers.engine.evaluation import format_report, plot_entities
    from workers.engine.evaluation.alerts import alert_reports, false_alerts, format_alerts

    try:
        run = run_evaluation(
            events, labels, entity_field=field, train_until=train_until, settings=settings
        )
    except ValueError as exc:
        fail(f"evaluation failed: {exc}")
    reports, scored, cutoffs = run.reports, run.scored, run.cutoffs
    click.echo(format_report(reports), nl=False)
    click.echo("\nalerts as an analyst meets them (the fleet's anomaly documents)")
    gap_s = settings.couchwatch_incident_gap_s
    click.echo(format_alerts(alert_reports(run.anomalies, labels, gap_s=gap_s)), nl=False)
    if run.entity_errors:
        click.echo(f"\n{len(run.entity_errors)} entities failed in the fleet:")
        for entity, error in sorted(run.entity_errors.items()):
            click.echo(f"  {printable(entity)}: {printable(error)}")
    missed = reports[COMBINED].missed
    if missed:
        click.echo(f"\nmissed by {COMBINED}:")
        for incident in missed:
            click.echo(
                printable(f"  {incident.entity} {incident.kind} {incident.start.isoformat()}")
            )
    rows = scored[scored["detector"] == COMBINED]
    if scores_out is not None:
        try:
            scores_out.parent.mkdir(parents=True, exist_ok=True)
            combined_rows(scored).to_csv(
                scores_out, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ"
            )
        except OSError as exc:
            fail(f"cannot write {scores_out}: {exc.strerror or exc}")
        click.echo(f"wrote {len(rows)} scored rows to {scores_out}")
    if false_alerts_out is not None:
        wrong = false_alerts(run.anomalies, labels)
        try:
            false_alerts_out.parent.mkdir(parents=True, exist_ok=True)
            wrong.to_csv(false_alerts_out, index=False)
        except OSError as exc:
            fail(f"cannot write {false_alerts_out}: {exc.strerror or exc}")
        click.echo(f"wrote {len(wrong)} false alerts to {false_alerts_out}")
    if plot_dir is not None:
        try:
            paths = plot_entities(
                plot_dir, rows, labels, events=events, entity_field=field, cutoffs=cutoffs
            )
        except OSError as exc:
            fail(f"cannot write plots to {plot_dir}: {exc.strerror or exc}")
        click.echo(f"wrote {len(paths)} plots to {plot_dir}")
