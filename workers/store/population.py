"""The population profile: one `population` document in the models database.

Its `_id` (`population`) and shape (`profile`: the engine's `Population.to_json`, plus
`built_at`, `entities`, `events`) come from `workers.detection` (the seam to the engine); this
module reads and writes it. Cold start and smoothing read it; `plan_training` rebuilds it when
missing, stale or of an older engine format.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workers.couch.client import CouchClient

if TYPE_CHECKING:
    from workers.detection import Population

Doc = dict[str, Any]


def get(couch: CouchClient, db: str) -> Doc | None:
    """The stored population document, or None."""
    from workers import detection  # heavy (pandas); only planners and workers get here

    return couch.get(db, detection.POPULATION_ID)


def is_current(couch: CouchClient, db: str) -> bool:
    """Whether a population profile of this engine's format is stored."""
    from workers import detection

    return detection.population_is_current(get(couch, db))


def load(couch: CouchClient, db: str) -> Population | None:
    """The stored population profile, or None when missing or of an older format."""
    from workers import detection

    return detection.population_from_doc(get(couch, db))


def save(couch: CouchClient, db: str, population: Population, **meta: Any) -> str:
    """Store `population` with `meta` (`built_at`, `entities`, `events`); return the revision."""
    from workers import detection

    return couch.upsert(db, {**detection.population_to_doc(population), **meta})
