"""Evaluate detectors against labeled incidents, as ``couchwatch evaluate`` does.

- :mod:`.labels` — ``load_labels`` validates the labels document into :class:`Labels`.
- :mod:`.split` — ``split_train_test`` emulates production (per entity: train on the first 70%).
- :mod:`.metrics` — ``evaluate_scores`` turns a scored frame into an :class:`EvaluationReport`.
- :mod:`.report` — ``format_report`` / ``to_markdown`` tables; :mod:`.plots` — ``plot_entity``.
"""

from workers.engine.evaluation.labels import (
    LabeledIncident,
    Labels,
    LabelsError,
    load_labels,
    to_utc,
)
from workers.engine.evaluation.metrics import (
    SCORED_COLUMNS,
    EvaluationReport,
    evaluate_by,
    evaluate_scores,
)
from workers.engine.evaluation.plots import plot_entities, plot_entity
from workers.engine.evaluation.report import format_report, to_markdown
from workers.engine.evaluation.split import split_train_test, train_cutoffs

__all__ = [
    "SCORED_COLUMNS",
    "EvaluationReport",
    "LabeledIncident",
    "Labels",
    "LabelsError",
    "evaluate_by",
    "evaluate_scores",
    "format_report",
    "load_labels",
    "plot_entities",
    "plot_entity",
    "split_train_test",
    "to_markdown",
    "to_utc",
    "train_cutoffs",
]
