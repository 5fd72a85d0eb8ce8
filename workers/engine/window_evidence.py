"""A window's evidence over time: sessions, the *what* and *when* families, hours of the day.

Plain functions on per-window p-values (:meth:`~workers.engine.model.EntityModel.score` calls
them): a session's accumulated evidence (Fisher over a run of unusual windows), the two
families a window's p-value combines (what happened, and when), and the time-of-day p-value of
each window's local hour, with one time fact per episode of unusual hours.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.stats import chi2

from .detectors.time_of_day import TimeOfDayProfile, day_types
from .results import combine_pvalues

NS_PER_HOUR = 3_600_000_000_000


SESSION_GAP_WINDOWS = 2
SESSION_MAX_WINDOWS = 8
SESSION_OWN_P = 0.1


def session_pvalues(p: np.ndarray, start_ns: np.ndarray, width_ns: int) -> np.ndarray:
    """Evidence that accumulates over a session: for each window, Fisher's combination of the
    p-values of the last 2..8 windows of its run of active windows (gaps of at most
    ``SESSION_GAP_WINDOWS``), the smallest over run lengths, Bonferroni-corrected; only for
    windows whose own p-value is at most ``SESSION_OWN_P`` (a quiet window after an unusual
    run is not unusual). A download that is merely unusual in each of nine windows in a row
    is very unusual as a whole."""
    n = len(p)
    out = np.ones(n)
    if n < 2:
        return out
    logs = -2.0 * np.log(np.clip(p, 1e-300, 1.0))
    breaks = np.r_[True, np.diff(start_ns) > SESSION_GAP_WINDOWS * width_ns]
    run_start = np.maximum.accumulate(np.where(breaks, np.arange(n), 0))
    tests = SESSION_MAX_WINDOWS - 1
    own_weak = p > SESSION_OWN_P  # a window must itself be somewhat unusual to take part
    for length in range(2, SESSION_MAX_WINDOWS + 1):
        ok = np.arange(n) - run_start + 1 >= length
        if not ok.any():
            break
        stat = np.convolve(logs, np.ones(length))[:n]
        pv = chi2.sf(stat, 2 * length) * tests
        out = np.where(ok, np.minimum(out, pv), out)
    out[own_weak] = 1.0
    return np.asarray(np.clip(out, 0.0, 1.0), dtype=float)


WHEN_DETECTORS = frozenset({"time_of_day"})
SEASONAL_REPLACES = frozenset({"robust_zscore", "session", "time_of_day"})
"""Where a seasonal baseline is fitted (metric streams), it scores the measures and the time."""


def one_family_level(level: float) -> float:
    """The p-value at which one family alone reaches the window ``level``: both families are
    tested (Bonferroni over the two in :func:`combine_families`)."""
    return level / 2.0


def combine_families(pvalues: Mapping[str, np.ndarray], how: str, n: int) -> np.ndarray:
    """A window's p-value from two families of evidence: *what* happened (the measures:
    z-scores, rates, session, seasonal, forests) and *when* (time of day). Each family
    combines its detectors by ``how``; the two families combine by ``how`` again, so a quiet
    window at an hour this entity is never active is not diluted by every measure detector."""
    what = {k: v for k, v in pvalues.items() if k not in WHEN_DETECTORS}
    if "session" in what and "robust_zscore" in what:  # one test: the session extends the z
        what["robust_zscore"] = np.minimum(what["robust_zscore"], what.pop("session"))
    when = {k: v for k, v in pvalues.items() if k in WHEN_DETECTORS}
    families = {
        name: combine_pvalues(family, how, n)
        for name, family in (("what", what), ("when", when))
        if family
    }
    return combine_pvalues(families, how, n)


EPISODE_NS = 12 * NS_PER_HOUR
"""How long one unusual-hours episode lasts: within it, only its first alert is a time fact."""


def time_pvalues(
    profile: TimeOfDayProfile, local_ns: np.ndarray, *, alert_p: float = 0.0
) -> np.ndarray:
    """p-value of each window's local hour; each new active hour joins the profile after.

    A new habit alerts once: after a window whose hour alone would alert (p <= ``alert_p``),
    the windows of the next ``EPISODE_NS`` (a night shift worked for the first time, hour after
    hour) carry no time evidence (p = 1); their hours still join the profile. Scoring reads
    ``COUCHWATCH_SCORE_CONTEXT_S`` (24 h) of context, so an episode spanning two scoring passes
    is judged the same way."""
    out = np.ones(len(local_ns))
    last_alert: int | None = None
    keys = local_ns // NS_PER_HOUR
    hours = (keys % 24).astype(int)
    days = day_types(keys)
    seen: set[int] = set()
    cache: dict[tuple[int, int], float] = {}
    for i, key in enumerate(keys.tolist()):
        cell = (int(days[i]), int(hours[i]))
        if cell not in cache:
            cache[cell] = float(profile.pvalues(np.array([cell[0]]), np.array([cell[1]]))[0])
        out[i] = cache[cell]
        if last_alert is not None and int(local_ns[i]) - last_alert < EPISODE_NS:
            out[i] = 1.0  # the same episode of unusual hours: already told
        elif out[i] <= alert_p:
            last_alert = int(local_ns[i])
        if key not in seen:
            seen.add(key)
            profile.observe(*cell)
            cache.clear()
    return out
