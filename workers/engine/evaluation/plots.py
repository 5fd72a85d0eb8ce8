"""PNG plots per entity: activity, score and threshold over time, flagged rows, labeled spans.

Uses matplotlib's object API with the Agg canvas (no pyplot, no global backend switch).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from workers.engine.evaluation.labels import Labels, to_utc
from workers.engine.evaluation.metrics import SCORED_COLUMNS

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def _entity_times(
    events: Sequence[Mapping[str, Any]] | pd.DataFrame, entity_field: str, entity: str
) -> pd.Series:
    if isinstance(events, pd.DataFrame):
        mine = events[events[entity_field].astype(str) == entity]["timestamp"]
        return to_utc(mine)
    return to_utc(e["timestamp"] for e in events if str(e.get(entity_field)) == entity)


def plot_entity(
    path: str | Path,
    entity: str,
    scored: pd.DataFrame,
    labels: Labels,
    *,
    events: Sequence[Mapping[str, Any]] | pd.DataFrame | None = None,
    entity_field: str = "user_id",
    threshold: float | None = None,
    cutoff: Any = None,
    title: str | None = None,
) -> Path:
    """Write one PNG for ``entity`` and return its path.

    ``path`` is a file or an existing directory (then ``<dir>/<entity>.png``). The top panel shows
    events per hour (when ``events`` are given), the bottom one the score (higher = more unusual)
    with flagged rows marked, the threshold (``threshold``, else a ``threshold`` column of
    ``scored``), labeled spans shaded, and the train/score ``cutoff`` as a dashed line.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    target = Path(path)
    if target.is_dir():
        target = target / f"{_SAFE.sub('_', entity) or 'entity'}.png"
    rows = scored[scored["entity"].astype(str) == entity].copy()
    missing = [c for c in SCORED_COLUMNS if c not in scored.columns]
    if missing:
        raise ValueError(f"scored frame lacks column(s) {', '.join(missing)}")
    rows["t"] = to_utc(rows["window_start"]).dt.tz_localize(None).to_numpy()
    rows = rows.sort_values("t")
    fig = Figure(figsize=(11, 5 if events is not None else 3.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2 if events is not None else 1, 1, sharex=True, squeeze=False)[:, 0]
    if events is not None:
        times = _entity_times(events, entity_field, entity).dt.tz_localize(None)
        per_hour = pd.Series(1, index=pd.DatetimeIndex(times)).resample("1h").sum()
        axes[0].step(per_hour.index, per_hour.to_numpy(), where="post", color="0.35", lw=0.8)
        axes[0].set_ylabel("events / hour")
    ax = axes[-1]
    ax.plot(rows["t"], rows["score"], ".", ms=2.5, color="tab:blue", label="score")
    hits = rows[rows["flagged"].astype(bool)]
    ax.plot(hits["t"], hits["score"], "x", ms=6, color="tab:red", label="flagged")
    if threshold is not None:
        ax.axhline(threshold, color="tab:red", ls=":", lw=1, label="threshold")
    elif "threshold" in rows.columns and len(rows):
        ax.step(rows["t"], rows["threshold"], where="post", color="tab:red", ls=":", lw=1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("score")
    for n, incident in enumerate(labels.for_entity(entity)):
        start, end = incident.start.tz_localize(None), incident.end.tz_localize(None)
        end = max(end, start + pd.Timedelta(minutes=10))  # keep short spans visible
        for axis in axes:
            axis.axvspan(start, end, color="tab:orange", alpha=0.35, label=None if n else "label")
        ax.annotate(incident.kind, (start, 0.97), fontsize=7, color="tab:orange")
    if cutoff is not None:
        moment = to_utc([cutoff]).iloc[0].tz_localize(None)
        for axis in axes:
            axis.axvline(moment, color="0.4", ls="--", lw=0.8)
    ax.legend(loc="upper left", fontsize=7, ncols=4)
    axes[0].set_title(title or f"{entity_field} {entity}")
    fig.savefig(target, dpi=90)
    return target


def plot_entities(
    outdir: str | Path,
    scored: pd.DataFrame,
    labels: Labels,
    *,
    entities: Iterable[str] | None = None,
    events: Sequence[Mapping[str, Any]] | pd.DataFrame | None = None,
    entity_field: str = "user_id",
    cutoffs: Mapping[str, Any] | None = None,
    threshold: float | None = None,
) -> list[Path]:
    """Write :func:`plot_entity` PNGs into ``outdir`` (created) and return their paths.

    ``entities`` defaults to every labeled or flagged entity, sorted.
    """
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    if entities is None:
        flagged = scored.loc[scored["flagged"].astype(bool), "entity"].astype(str)
        entities = sorted(labels.entities() | set(flagged))
    return [
        plot_entity(
            out,
            entity,
            scored,
            labels,
            events=events,
            entity_field=entity_field,
            threshold=threshold,
            cutoff=(cutoffs or {}).get(entity),
        )
        for entity in entities
    ]
