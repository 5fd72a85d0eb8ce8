"""Evaluation tables: one row per detector (and "combined", and the seed pipeline)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from workers.engine.evaluation.metrics import EvaluationReport

_HEADER = [
    "detector",
    "incidents",
    "recall",
    "precision",
    "F1",
    "ROC-AUC",
    "PR-AUC",
    "P@k",
    "flagged",
]


def _num(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


def _summary_rows(reports: Mapping[str, EvaluationReport]) -> list[list[str]]:
    return [
        [
            name,
            f"{r.n_detected}/{r.n_incidents}",
            _num(r.incident_recall),
            _num(r.alert_precision),
            _num(r.f1),
            _num(r.roc_auc),
            _num(r.pr_auc),
            f"{_num(r.precision_at_k)} (k={r.k})",
            str(r.n_flagged),
        ]
        for name, r in reports.items()
    ]


def _kind_rows(reports: Mapping[str, EvaluationReport]) -> list[list[str]]:
    kinds = sorted({kind for r in reports.values() for kind in r.incidents_by_kind})
    rows = []
    for kind in kinds:
        row = [kind]
        for r in reports.values():
            found, total = r.incidents_by_kind.get(kind, (0, 0))
            row.append(f"{found}/{total}" if total else "-")
        rows.append(row)
    return rows


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def format_report(reports: Mapping[str, EvaluationReport]) -> str:
    """A plain-text table of every report, then incident recall per kind (found/all)."""
    if not reports:
        return "(no reports)"
    text = _text_table(_HEADER, _summary_rows(reports))
    kind_rows = _kind_rows(reports)
    if kind_rows:
        text += "\n\nincidents found per kind\n"
        text += _text_table(["kind", *reports], kind_rows)
    return text + "\n"


def to_markdown(reports: Mapping[str, EvaluationReport]) -> str:
    """The same tables as :func:`format_report`, as GitHub-flavoured Markdown."""
    if not reports:
        return "_no reports_\n"
    text = _md_table(_HEADER, _summary_rows(reports))
    kind_rows = _kind_rows(reports)
    if kind_rows:
        text += "\n\nIncidents found per kind:\n\n" + _md_table(["kind", *reports], kind_rows)
    return text + "\n"
