"""Entity models: the single-login case, windows with reasons, cold start, feedback."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from workers.engine.config import EngineConfig
from workers.engine.errors import InsufficientHistoryError
from workers.engine.features import events_frame, window_features
from workers.engine.feedback import Feedback
from workers.engine.model import MIN_CONFIDENCE, cold_start_model, fit_entity_model
from workers.engine.population import Population, build_population
from workers.engine.window_evidence import session_pvalues
from workers.store.anomalies import documents
from workers.store.anomalies import feedback as review_feedback

from ._synth import (
    FIREFOX_LINUX,
    HOME,
    IPHONE,
    KYIV,
    MOSCOW,
    START,
    history,
    iso,
    login,
    metric_stream,
)

pytestmark = pytest.mark.unit

LATER = START + timedelta(days=31, hours=16)


@pytest.fixture(scope="module")
def alice_history() -> list[dict]:
    return history("alice", days=30, seed=1)


@pytest.fixture(scope="module")
def population() -> Population:
    events = [e for i in range(6) for e in history(f"user{i}", days=20, seed=10 + i)]
    return build_population(events)


def test_us_chrome_user_logging_in_from_ukraine_on_firefox_is_flagged_from_one_event(
    alice_history: list[dict],
) -> None:
    model = fit_entity_model("alice", alice_history)
    attack = login("alice", LATER, 9999, place=KYIV, ua=FIREFOX_LINUX, ip="91.200.1.5")
    result = model.score([attack])
    assert len(result.logins) == 1 and bool(result.logins["flagged"].iloc[0])
    docs = [
        d
        for d in documents(result.findings(model_id="m1", model_version=1))
        if d["detector"] == "novelty"
    ]
    assert len(docs) == 1
    doc = docs[0]
    assert doc["event_ids"] == ["alice-login-9999"]
    assert doc["window_start"] == doc["window_end"] == iso(LATER)
    assert doc["score"] >= doc["threshold"] == pytest.approx(0.998)
    by_feature = {r["feature"]: r for r in doc["reasons"]}
    country = by_feature["country"]
    assert country["value"] == "UA" and 0 < country["p"] <= 0.05
    assert country["text"] == "country UA never seen in 66 logins of this user; usual US 100%"
    # region and city are left out when the country itself is new
    assert "region" not in by_feature and "city" not in by_feature
    assert all(r["p"] <= 0.05 for r in doc["reasons"])


def test_ordinary_login_and_ordinary_day_are_not_flagged(alice_history: list[dict]) -> None:
    model = fit_entity_model("alice", alice_history[: len(alice_history) * 3 // 4])
    result = model.score(alice_history[len(alice_history) * 3 // 4 :])
    assert len(result.windows) > 20 and len(result.logins) > 10
    assert not result.windows["flagged"].any()
    assert not result.logins["flagged"].any()
    assert result.windows["score"].between(0, 1).all()


def _burst(at: datetime, n: int) -> list[dict]:
    """``n`` requests of 320 kB each, 30 s apart, from alice's usual place."""
    return [
        {
            "_id": f"x{at:%d%H}-{i}",
            "user_id": "alice",
            "timestamp": iso(at + timedelta(seconds=30 * i)),
            "type": "request",
            "endpoint": "/api/orders",
            "status_code": 200,
            "bytes_sent": 8000.0 * 40,
            "latency_ms": 90.0,
            "ip_address": "73.15.20.9",
            **HOME,
        }
        for i in range(n)
    ]


def test_bulk_download_window_is_flagged_with_a_bytes_reason(alice_history: list[dict]) -> None:
    model = fit_entity_model("alice", alice_history)
    result = model.score(_burst(LATER, 8))
    assert result.windows["flagged"].all()
    docs = [
        d
        for d in documents(result.findings(model_id="m1", model_version=1))
        if d["detector"] != "novelty"
    ]
    texts = " | ".join(r["text"] for r in docs[0]["reasons"])
    assert docs[0]["reasons"][0]["feature"].startswith("bytes")
    assert "x this user's usual" in texts and "(from 89 active windows)" in texts
    assert all(0 < r["p"] <= 0.05 for r in docs[0]["reasons"])


def test_metric_only_service_stream_scores_and_flags_a_latency_regression() -> None:
    config = EngineConfig(detectors=("robust_zscore", "isolation_forest"))
    train = metric_stream("billing", hours=24 * 10, seed=2)
    model = fit_entity_model("billing", train, entity_field="service", config=config)
    assert set(model.features) == {"events", "latency_mean", "latency_p95"}
    test = metric_stream("billing", hours=24 * 12, seed=3, spike_at=24 * 11 * 12)[24 * 10 * 12 :]
    result = model.score(test)
    flagged = result.windows.loc[result.windows["flagged"], "window_start"]
    assert len(flagged) >= 1
    spike = START + timedelta(hours=24 * 11)
    assert all(spike <= t < spike + timedelta(minutes=45) for t in flagged)
    assert result.logins.empty
    docs = documents(result.findings(model_id="s", model_version=2))
    assert any("latency" in r["feature"] for r in docs[0]["reasons"])
    assert "this service's" in docs[0]["reasons"][0]["text"]


def test_cold_start_entity_is_scored_against_the_population_with_low_confidence(
    population: Population,
) -> None:
    model = cold_start_model("newbie", population)
    assert model.cold_start and model.window_confidence < 1 and model.login_confidence < 1
    first = login("newbie", LATER, 1, place=KYIV, ua=FIREFOX_LINUX, ip="91.200.1.5")
    usual = login("newbie", LATER + timedelta(hours=1), 2)
    result = model.score([first, usual])
    flagged = result.logins.set_index("event_id")["flagged"]
    # a first login is new in every field, so nothing about it is a changed fact: no alert;
    # an hour later from another country is impossible travel, history or not
    assert not bool(flagged["newbie-login-1"])
    assert "travel" in result.logins["detail"].iloc[1].facts
    scores = result.logins.set_index("event_id")["score"]
    assert scores["newbie-login-2"] > scores["newbie-login-1"]
    assert (result.combined()["confidence"] < 1).all()
    assert len(result.windows) == 2  # scored, never left out


def test_confidence_grows_with_history(population: Population) -> None:
    events = history("grow", days=40, seed=5)
    short = fit_entity_model("grow", events[:60], population=population)
    longer = fit_entity_model("grow", events, population=population)
    assert short.window_confidence < longer.window_confidence
    assert short.login_confidence <= longer.login_confidence


def test_no_history_and_no_population_is_an_explicit_error() -> None:
    with pytest.raises(InsufficientHistoryError):
        fit_entity_model("ghost", [])


def test_dismissed_login_abroad_counts_tenfold_and_stops_alerting(
    alice_history: list[dict],
) -> None:
    trip = login("alice", LATER, 5000, place=KYIV, ua=FIREFOX_LINUX, ip="91.200.1.5")
    model = fit_entity_model("alice", alice_history)
    assert bool(model.score([trip]).logins["flagged"].iloc[0])
    feedback = Feedback(dismissed=frozenset({"alice-login-5000"}))
    relearned = fit_entity_model("alice", [*alice_history, trip], feedback=feedback)
    plain = fit_entity_model("alice", [*alice_history, trip])
    assert relearned.novelty is not None and relearned.novelty.counts["country"]["UA"] == 10
    again = login(
        "alice", LATER + timedelta(days=1), 5001, place=KYIV, ua=FIREFOX_LINUX, ip="91.200.1.5"
    )
    home = login("alice", LATER + timedelta(hours=12), 4999)
    scored = relearned.score([home, again]).logins
    assert not bool(scored["flagged"].iloc[1])
    plain_scored = plain.score([home, again]).logins

    def country_p(frame: pd.DataFrame) -> float:
        return next(x.p for x in frame["detail"].iloc[1].surprises if x.field == "country")

    assert country_p(scored) > country_p(plain_scored)  # UA counts ten times when dismissed
    # a different novelty still alerts
    other = login("alice", LATER + timedelta(days=1), 5002, place=MOSCOW, ua=IPHONE, ip="5.8.1.1")
    assert bool(relearned.score([other]).logins["flagged"].iloc[0])


def test_dismissed_window_raises_the_window_threshold_above_its_score(
    alice_history: list[dict],
) -> None:
    config = EngineConfig(dismissed_weight=1)  # the burst itself barely moves the profile
    burst = _burst(LATER, 8)
    feedback = Feedback(dismissed=frozenset(e["_id"] for e in burst))
    plain = fit_entity_model("alice", [*alice_history, *burst], config=config)
    relearned = fit_entity_model(
        "alice", [*alice_history, *burst], feedback=feedback, config=config
    )
    assert plain.thresholds == {"combined": pytest.approx(0.998), "novelty": pytest.approx(0.998)}
    assert relearned.thresholds["combined"] > plain.thresholds["combined"]
    again = _burst(LATER + timedelta(days=1), 8)
    assert bool(plain.score(again).windows["flagged"].all())
    assert not relearned.score(again).windows["flagged"].any()
    # with the default weight (10) the dismissed burst is learned as usual instead
    default = fit_entity_model("alice", [*alice_history, *burst], feedback=feedback)
    assert not default.score(again).windows["flagged"].any()


def test_confirmed_attack_events_are_left_out_of_training(alice_history: list[dict]) -> None:
    attacks = [
        login("alice", LATER + timedelta(minutes=i), 7000 + i, place=KYIV, ua=FIREFOX_LINUX)
        for i in range(30)
    ]
    feedback = review_feedback(
        [{"event_ids": [a["_id"] for a in attacks], "review": {"status": "confirmed"}}]
    )
    learned = fit_entity_model("alice", [*alice_history, *attacks])
    excluded = fit_entity_model("alice", [*alice_history, *attacks], feedback=feedback)
    assert excluded.n_train_events == len(alice_history)
    assert excluded.novelty is not None and "UA" not in excluded.novelty.counts["country"]
    probe = login("alice", LATER + timedelta(days=2), 8000, place=KYIV, ua=FIREFOX_LINUX)
    s_excluded = excluded.score([probe]).logins["score"].iloc[0]
    s_learned = learned.score([probe]).logins["score"].iloc[0]
    assert s_excluded > s_learned
    assert bool(excluded.score([probe]).logins["flagged"].iloc[0])


def test_fit_and_score_are_deterministic(alice_history: list[dict]) -> None:
    config = EngineConfig(detectors=("robust_zscore", "isolation_forest", "novelty"))
    a = fit_entity_model("alice", alice_history, config=config).score(alice_history[-50:])
    b = fit_entity_model("alice", alice_history, config=config).score(alice_history[-50:])
    np.testing.assert_array_equal(a.windows["score"], b.windows["score"])
    np.testing.assert_array_equal(a.logins["score"], b.logins["score"])


def test_sparse_entity_with_five_windows_is_scored_without_a_flood_of_flags(
    population: Population,
) -> None:
    events = history("sam", days=30, seed=3)
    windows = window_features(events_frame(events), "15min")
    cut = iso(windows["window_end"].iloc[4].to_pydatetime())
    train = [e for e in events if e["timestamp"] < cut]
    model = fit_entity_model("sam", train, population=population)
    assert model.n_train_windows == 5 and model.cold_start
    assert MIN_CONFIDENCE <= model.window_confidence < 1 and model.login_confidence < 1
    assert model.zscore is not None and model.time is not None and model.novelty is not None
    result = model.score([e for e in events if e["timestamp"] >= cut])
    ordinary = result.windows.iloc[:50]
    assert len(ordinary) == 50 and ordinary["score"].between(0, 1).all()
    assert int(ordinary["flagged"].sum()) <= 1
    assert int(result.logins["flagged"].sum()) <= 1
    # the same sparse entity still sees an obvious bulk download
    burst = [{**e, "user_id": "sam"} for e in _burst(LATER, 8)]
    assert model.score(burst).windows["flagged"].all()


def test_score_from_uses_earlier_events_as_context_only(alice_history: list[dict]) -> None:
    model = fit_entity_model("alice", alice_history)
    first = login("alice", LATER, 1, place=KYIV, ua=FIREFOX_LINUX, ip="91.200.1.5")
    probe = login(
        "alice", LATER + timedelta(hours=3), 2, place=KYIV, ua=FIREFOX_LINUX, ip="91.200.1.5"
    )
    with_context = model.score([first, probe], score_from=LATER + timedelta(hours=1))
    alone = model.score([probe])
    assert with_context.logins["event_id"].tolist() == ["alice-login-2"]
    assert len(with_context.windows) == 1
    assert with_context.windows["event_ids"].iloc[0] == ["alice-login-2"]
    # the context login updated novelty: the probe is a second sighting, no longer an alert
    assert bool(alone.logins["flagged"].iloc[0])
    assert not bool(with_context.logins["flagged"].iloc[0])
    assert with_context.logins["score"].iloc[0] < alone.logins["score"].iloc[0]
    assert model.score([first, probe]).logins["flagged"].tolist() == [True, False]
    # score_from accepts ISO text too; the stored model is never changed
    same = model.score([first, probe], score_from=iso(LATER + timedelta(hours=1)))
    np.testing.assert_array_equal(same.logins["score"], with_context.logins["score"])
    assert bool(model.score([probe]).logins["flagged"].iloc[0])


def test_session_evidence_combines_consecutive_unusual_windows() -> None:
    width = 900 * 10**9
    starts = np.arange(6, dtype=np.int64) * width
    p = np.array([0.5, 0.01, 0.01, 0.01, 0.01, 0.5])
    out = session_pvalues(p, starts, width)
    assert out[0] == 1.0 and out[5] == 1.0  # a quiet window is never part of the evidence
    assert out[1] > 0.01  # one unusual window (with a quiet one before) is weak evidence
    assert out[4] < 1e-4  # four windows at p=0.01 in a row are very unusual together
    assert np.all(np.diff(out[1:5]) < 0)  # evidence grows along the run
    weak = session_pvalues(np.full(6, 0.2), starts, width)
    assert np.all(weak == 1.0)  # windows above SESSION_OWN_P take no part
    apart = session_pvalues(p, starts * 10, width)  # 2.5 h gaps: no session
    assert np.all(apart == 1.0)
