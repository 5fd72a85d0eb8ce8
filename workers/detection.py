"""The seam between the fleet and the detection engine: fit, score, serialize, population.

Everything the workers need from `workers.engine` goes through these few functions, so the
fleet code stays free of pandas/scikit-learn details.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from workers.engine.config import EngineConfig
from workers.engine.held_out import measure
from workers.engine.model import EntityModel, cold_start_model, fit_entity_model, fit_summary
from workers.engine.persistence import dump_model, dump_summary, load_model, load_summary
from workers.engine.population import POPULATION_FORMAT, Population, build_population
from workers.engine.results import ScoreResult
from workers.engine.summary import HistorySummary, combined, summarize_events, supports_window
from workers.ids import Entity
from workers.settings import Settings
from workers.store.anomalies import documents, feedback, merge_anomaly

Doc = dict[str, Any]

__all__ = [
    "EntityModel",
    "HistorySummary",
    "Population",
    "combined",
    "dump_model",
    "dump_summary",
    "engine_config",
    "fit",
    "fit_summary",
    "load_model",
    "load_summary",
    "merge_anomaly",
    "model_meta",
    "population_from_doc",
    "population_is_current",
    "population_to_doc",
    "score",
    "summarize_events",
    "supports_window",
]


def engine_config(settings: Settings) -> EngineConfig:
    """The detection engine's configuration from the settings, validated (ConfigError if bad).

    The fleet and ``couchwatch evaluate`` both build their engine here, so both run the same
    detectors with the same thresholds.
    """
    return EngineConfig(
        detectors=tuple(settings.couchwatch_detectors),
        combine=settings.couchwatch_combine,
        target_alert_rate=settings.couchwatch_target_alert_rate,
        window=settings.couchwatch_window,
        min_train_windows=settings.couchwatch_min_train_windows,
        prior_windows=settings.couchwatch_prior_windows,
        time_prior_strength=settings.couchwatch_time_prior_strength,
    ).validate()


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
        feedback=feedback(reviewed),
    )


def score(
    model: EntityModel,
    events: Iterable[Mapping[str, Any]],
    *,
    model_id: str,
    version: int,
    score_from: str | None = None,
) -> list[Doc]:
    """Anomaly documents (deterministic `_id`s) for the flagged windows and logins of `events`.

    Events before `score_from` are context: they update the entity's time-of-day and novelty
    profiles (a new device seen an hour ago is not new again) but are not scored.
    """
    return anomalies(score_result(model, events, score_from=score_from), model_id, version)


def score_result(
    model: EntityModel, events: Iterable[Mapping[str, Any]], *, score_from: str | None = None
) -> ScoreResult:
    """Every scored window and login of `events` (not only the flagged ones), as the model
    scores them; `score` turns it into anomaly documents."""
    return model.score(events, score_from=score_from)


def anomalies(result: ScoreResult, model_id: str, version: int) -> list[Doc]:
    """Anomaly documents (deterministic `_id`s) for the flagged rows of a score result."""
    return documents(result.findings(model_id=model_id, model_version=version))


def model_meta(model: EntityModel) -> Doc:
    """Metadata stored on the model document (what a person reads in `models show`)."""
    return {
        "entity_field": model.entity_field,
        "detectors": list(model.window_detectors),
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


def population_is_current(doc: Doc | None) -> bool:
    """Whether a stored population document has this engine's format (else it is rebuilt)."""
    return doc is not None and doc.get("profile", {}).get("format") == POPULATION_FORMAT


def population_from_doc(doc: Doc | None) -> Population | None:
    """The stored population, or None when missing or of an older format (the next planning
    pass rebuilds it)."""
    if doc is None or not population_is_current(doc):
        return None
    return Population.from_json(doc["profile"])


def make_population(
    events: Iterable[Mapping[str, Any]], *, entity_field: str, config: EngineConfig | None = None
) -> Population:
    """The population profile of these entities' events, with the window alert level measured
    out of sample on them (:mod:`workers.engine.held_out`)."""
    config = config or EngineConfig()
    rows = list(events)
    population = build_population(rows, entity_field=entity_field, config=config)
    held_out = measure(rows, population, entity_field=entity_field, config=config)
    factor = held_out.level / config.target_alert_rate
    return dataclasses.replace(population, window_level_factor=factor)
