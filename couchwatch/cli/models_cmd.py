"""`couchwatch models list | show | rollback`: inspect and roll back per-entity model versions."""

from __future__ import annotations

import json

import click

from couchwatch.cli.common import couch_or_fail, fail, printable, settings_or_fail
from workers.couch.errors import CouchError
from workers.events import integer_entity
from workers.ids import Entity
from workers.store.models import ModelStore


def _store() -> ModelStore:
    settings = settings_or_fail()
    return ModelStore(
        couch_or_fail(settings),
        settings.db_name("models"),
        keep=settings.couchwatch_model_keep_versions,
    )


def _entity(store: ModelStore, text: str) -> Entity:
    """The entity id as stored: text, or an integer id when only that has a model."""
    number = integer_entity(text)
    if store.head(text) is None and number is not None and store.head(number):
        return number
    return text


@click.group()
def models() -> None:
    """Per-entity model versions (the newest COUCHWATCH_MODEL_KEEP_VERSIONS are kept)."""


@models.command("list")
@click.option("--entity", default=None, help="Only this entity.")
def list_models(entity: str | None) -> None:
    """One line per entity: active version, kept versions, last update."""
    store = _store()
    try:
        if entity is not None:
            head = store.head(_entity(store, entity))
            heads = [head] if head else []
        else:
            heads = list(store.iter_heads())
    except CouchError as exc:
        fail(str(exc))
    if not heads:
        fail(f"no model for entity {entity!r}" if entity is not None else "no models yet")
    click.echo(f"{'entity':<24} {'active':>6}  {'kept':<12} updated")
    for head in heads:
        kept = ",".join(str(v["version"]) for v in head.get("versions", []))
        click.echo(
            f"{printable(head['entity']):<24} {head.get('active_version')!s:>6}  "
            f"{kept:<12} {printable(head.get('updated_at', ''))}"
        )


@models.command()
@click.argument("entity")
@click.option("--version", type=int, default=None, help="Default: the active version.")
def show(entity: str, version: int | None) -> None:
    """Metadata of one model version: detectors, features, training window, thresholds."""
    store = _store()
    try:
        stored = store.load(_entity(store, entity), version)
    except CouchError as exc:
        fail(str(exc))
    if stored is None:
        fail(f"no model version {version or 'active'} for entity {entity!r}")
    meta = {**stored.meta, "attachment_bytes": len(stored.payload)}
    click.echo(json.dumps(meta, indent=2, sort_keys=True, default=str))


@models.command()
@click.argument("entity")
@click.option("--to", "to_version", type=int, default=None, help="Default: the previous one.")
def rollback(entity: str, to_version: int | None) -> None:
    """Make an older kept version active again."""
    store = _store()
    try:
        active = store.rollback(_entity(store, entity), to_version)
    except KeyError as exc:
        fail(str(exc.args[0]))
    except CouchError as exc:
        fail(str(exc))
    click.echo(f"{printable(entity)}: active version is now {active}")
