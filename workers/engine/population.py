"""Population profile: what is normal across many entities.

Built from many entities' events, it holds (1) per login-context field the population's value
frequencies (top values plus one rate for anything else), used to smooth each entity's novelty
profile, and (2) pooled window-feature medians / robust scales with a calibrator of the pooled
robust z-scores, used to score cold-start entities. Round-trips through plain JSON
(:meth:`Population.to_json` / :meth:`Population.from_json`) so the worker layer can keep it as a
CouchDB document.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .calibration import TailCalibrator
from .config import EngineConfig
from .context import CONTEXT_FIELDS
from .detectors.novelty import FieldPrior, NoveltyProfile
from .detectors.robust_zscore import RobustZScore, robust_profile
from .features import (
    TWO_SIDED_FEATURES,
    WINDOW_FEATURES,
    events_frame,
    hour_rarity,
    login_context,
    min_scales,
    relative_min_scales,
    window_table,
)

POPULATION_FORMAT = 1
TOP_VALUES = 25
MAX_NOVELTY_SAMPLE = 5000


@dataclass(frozen=True)
class Population:
    """Population frequencies and pooled window statistics (plain data).

    Attributes:
        priors: per context field, population value frequencies.
        features: window features with data in the population, model order.
        center / scale / fill: pooled robust median, scale and NaN fill per feature.
        hour_counts: pooled active windows per UTC hour (24).
        window_state: a :class:`RobustZScore` fitted on pooled windows, as JSON data.
        novelty_calibrator: calibrates novelty raw scores of a login with no entity history.
        n_entities / n_logins / n_windows: sizes the profile was built from.
    """

    priors: dict[str, FieldPrior]
    features: tuple[str, ...]
    center: dict[str, float]
    scale: dict[str, float]
    fill: dict[str, float]
    hour_counts: list[float]
    window_state: dict[str, Any]
    novelty_calibrator: TailCalibrator
    n_entities: int
    n_logins: int
    n_windows: int

    def window_detector(self) -> RobustZScore:
        """Return a fitted :class:`RobustZScore` scoring windows against the population."""
        return RobustZScore.from_state(_arrays(self.window_state))

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-serializable dict (lists and numbers only)."""

        def cal(c: TailCalibrator) -> dict[str, Any]:
            return {"knots_x": c.knots_x.tolist(), "knots_y": c.knots_y.tolist(),
                    "tail_scale": c.tail_scale}  # fmt: skip

        return {
            "format": POPULATION_FORMAT,
            "priors": {f: p.to_state() for f, p in self.priors.items()},
            "features": list(self.features),
            "center": self.center,
            "scale": self.scale,
            "fill": self.fill,
            "hour_counts": list(self.hour_counts),
            "window_state": _lists(self.window_state),
            "novelty_calibrator": cal(self.novelty_calibrator),
            "n_entities": self.n_entities,
            "n_logins": self.n_logins,
            "n_windows": self.n_windows,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Population:
        """Rebuild from :meth:`to_json` output (extra keys such as ``_id``/``_rev`` ignored)."""
        if data.get("format") != POPULATION_FORMAT:
            raise ValueError(f"unsupported population format {data.get('format')!r}")
        return cls(
            priors={f: FieldPrior.from_state(p) for f, p in data["priors"].items()},
            features=tuple(data["features"]),
            center={k: float(v) for k, v in data["center"].items()},
            scale={k: float(v) for k, v in data["scale"].items()},
            fill={k: float(v) for k, v in data["fill"].items()},
            hour_counts=[float(v) for v in data["hour_counts"]],
            window_state=dict(data["window_state"]),
            novelty_calibrator=TailCalibrator.from_state(data["novelty_calibrator"]),
            n_entities=int(data["n_entities"]),
            n_logins=int(data["n_logins"]),
            n_windows=int(data["n_windows"]),
        )


def field_prior(values: pd.Series, top: int = TOP_VALUES) -> FieldPrior:
    """Add-one smoothed frequencies of ``values``: the ``top`` most common plus an unseen rate."""
    counts = values.dropna().value_counts()
    denom = float(counts.sum() + len(counts) + 1)
    head = counts.head(top)
    return FieldPrior({str(k): (float(c) + 1.0) / denom for k, c in head.items()}, 1.0 / denom)


def build_population(
    events: Iterable[Mapping[str, Any]],
    *,
    entity_field: str = "user_id",
    config: EngineConfig | None = None,
) -> Population:
    """Build a :class:`Population` from many entities' events (pure; no I/O)."""
    config = config or EngineConfig()
    frame = events_frame(events, entity_field)
    context = login_context(frame)
    priors = {f: field_prior(context[f]) for f in CONTEXT_FIELDS}
    pooled = window_table(frame, config.window, by_entity=True, event_ids=False)
    hours = pd.DatetimeIndex(pooled["window_start"]).hour.to_numpy(dtype=int)
    hour_counts = np.bincount(hours, minlength=24).astype(float).tolist()
    if len(pooled):
        pooled["hour_rarity"] = hour_rarity(pooled["window_start"], hour_counts)
    features = tuple(f for f in WINDOW_FEATURES if f in pooled.columns and pooled[f].notna().any())
    center: dict[str, float] = {}
    scale: dict[str, float] = {}
    for f in features:
        col = pooled[f].dropna().to_numpy(dtype=float)[:, None]
        med, sc = robust_profile(
            col, None, np.asarray(min_scales((f,))), np.asarray(relative_min_scales((f,)))
        )
        center[f], scale[f] = float(med[0]), float(sc[0])
    fill = dict(center)
    window_state: dict[str, Any] = {}
    if features and len(pooled):
        X = pooled[list(features)].astype(float).fillna(value=fill).to_numpy()
        det = RobustZScore(
            two_sided=tuple(i for i, f in enumerate(features) if f in TWO_SIDED_FEATURES),
            center=tuple(center[f] for f in features),
            scale=tuple(scale[f] for f in features),
        ).fit(X)
        window_state = _lists(det.to_state())
    sample = context.sample(n=min(len(context), MAX_NOVELTY_SAMPLE), random_state=0)
    blank = NoveltyProfile(weights=config.novelty_weights, prior_strength=config.novelty_prior)
    blank.fit(sample.iloc[:0], priors=priors, min_logins=0)
    novelty_cal = TailCalibrator.fit(blank.raw_score_samples(sample), scale_floor=1.0)
    return Population(
        priors=priors,
        features=features,
        center=center,
        scale=scale,
        fill=fill,
        hour_counts=hour_counts,
        window_state=window_state,
        novelty_calibrator=novelty_cal,
        n_entities=int(pooled["entity"].nunique()),
        n_logins=len(context),
        n_windows=len(pooled),
    )


def _lists(value: Any) -> Any:
    """Numpy arrays → lists, recursively (JSON-ready)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_lists(v) for v in value]
    return value


def _arrays(state: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`_lists` for a window-detector state: fitted lists → arrays."""
    out = dict(state)
    out["fitted"] = {k: np.asarray(v, dtype=float) for k, v in state["fitted"].items()}
    out["calibrator"] = {
        k: np.asarray(v, dtype=float) if isinstance(v, list) else v
        for k, v in state["calibrator"].items()
    }
    return out
