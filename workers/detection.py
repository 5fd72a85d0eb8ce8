"""The seam between the fleet and the detection engine: fit, score, serialize, population.

Everything the workers need from `workers.engine` goes through these few functions, so the
fleet code stays free of pandas/scikit-learn details.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from workers.engine.anomaly import merge_anomaly
from workers.engine.config import EngineConfig
from workers.engine.feedback import Feedback
from workers.engine.model import EntityModel, cold_start_model, fit_entity_model
from workers.engine.persistence import dump_model, load_model
from workers.engine.population import Population, build_population
from workers.ids import Entity

Doc = dict[str, Any]

__all__ = [
    "EntityModel",
    "Population",
    "dump_model",
    "fit",
    "load_model",
    "merge_anomaly",
    "model_meta",
    "population_from_doc",
    "population_to_doc",
    "score",
]


def fit(
    entity: Entity,
    events: Iterable[Mapping[str, Any]],
    *,
    entity_field: str,
    population: Population | None,
    reviewed: Iterable[Mapping[str, Any]],
    config: EngineConfig | None = None,
) -> EntityModel:
    """Fit the entity's model on its history, learning from reviewed anomalies."""
    events = list(events)
    if not events and population is not None:
        return cold_start_model(str(entity), population, entity_field=entity_field, config=config)
    return fit_entity_model(
        str(entity),
        events,
        entity_field=entity_field,
        config=config,
        population=population,
        feedback=Feedback.from_anomalies(reviewed),
    )


def score(
    model: EntityModel, events: Iterable[Mapping[str, Any]], *, model_id: str, version: int
) -> list[Doc]:
    """Anomaly documents (deterministic `_id`s) for the flagged windows and logins of `events`."""
    return model.score(events).to_anomalies(model_id=model_id, model_version=version)


def model_meta(model: EntityModel) -> Doc:
    """Metadata stored on the model document (what a person reads in `models show`)."""
    return {
        "entity_field": model.entity_field,
        "detectors": sorted(model.detectors),
        "novelty": model.novelty is not None,
        "features": list(model.features),
        "training_window": {"start": model.train_start, "end": model.train_end},
        "samples": {
            "events": model.n_train_events,
            "windows": model.n_train_windows,
            "logins": model.n_train_logins,
        },
        "thresholds": dict(model.thresholds),
        "cold_start": model.cold_start,
    }


POPULATION_ID = "population"


def population_to_doc(population: Population) -> Doc:
    return {"_id": POPULATION_ID, "type": "population", "profile": population.to_json()}


def population_from_doc(doc: Doc | None) -> Population | None:
    if not doc or "profile" not in doc:
        return None
    return Population.from_json(doc["profile"])


def make_population(events: Iterable[Mapping[str, Any]], *, entity_field: str) -> Population:
    return build_population(events, entity_field=entity_field)
