"""Entity models: the single-login case, windows with reasons, cold start, feedback."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from workers.engine.config import EngineConfig
from workers.engine.errors import InsufficientHistoryError
from workers.engine.feedback import Feedback
from workers.engine.model import cold_start_model, fit_entity_model
from workers.engine.population import Population, build_population

from ._synth import (
    FIREFOX_LINUX,
    HOME,
    IPHONE,
    KYIV,
    START,
    history,
    iso,
    login,
    metric_stream,
)  # fmt: skip

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
    docs = [d for d in result.to_anomalies(model_id="m1", model_version=1)
            if d["detector"] == "novelty"]  # fmt: skip
    assert len(docs) == 1
    doc = docs[0]
    assert doc["event_ids"] == ["alice-login-9999"]
    assert doc["window_start"] == doc["window_end"] == iso(LATER)
    by_feature = {r["feature"]: r for r in doc["reasons"]}
    assert "country" in by_feature and "browser" in by_feature
    assert by_feature["country"]["value"] == "UA"
    assert "never seen in" in by_feature["country"]["text"]
    assert "usual: US 100%" in by_feature["country"]["text"]
    assert by_feature["browser"]["value"] == "Firefox"
    assert doc["severity"] in ("medium", "high") and doc["score"] >= doc["threshold"]


def test_ordinary_login_and_ordinary_day_are_not_flagged(alice_history: list[dict]) -> None:
    model = fit_entity_model("alice", alice_history[: len(alice_history) * 3 // 4])
    result = model.score(alice_history[len(alice_history) * 3 // 4 :])
    assert len(result.windows) > 20 and len(result.logins) > 10
    assert not result.windows["flagged"].any()
    assert not result.logins["flagged"].any()
    assert result.windows["score"].between(0, 1).all()


def test_bulk_download_window_is_flagged_with_a_bytes_reason(alice_history: list[dict]) -> None:
    model = fit_entity_model("alice", alice_history)
    burst = [
        {"_id": f"x{i}", "user_id": "alice", "timestamp": iso(LATER + timedelta(seconds=30 * i)),
         "type": "request", "endpoint": "/api/orders", "status_code": 200,
         "bytes_sent": 8000.0 * 40, "latency_ms": 90.0, "ip_address": "73.15.20.9", **HOME}
        for i in range(8)
    ]  # fmt: skip
    result = model.score(burst)
    assert result.windows["flagged"].all()
    docs = [d for d in result.to_anomalies(model_id="m1", model_version=1)
            if d["detector"] != "novelty"]  # fmt: skip
    texts = " | ".join(r["text"] for r in docs[0]["reasons"])
    assert docs[0]["reasons"][0]["feature"].startswith("bytes")
    assert "x this user's median" in texts


def test_metric_only_service_stream_scores_and_flags_a_latency_regression() -> None:
    config = EngineConfig(detectors=("robust_zscore", "isolation_forest"))
    train = metric_stream("billing", hours=24 * 10, seed=2)
    model = fit_entity_model("billing", train, entity_field="service", config=config)
    assert set(model.features) <= {"events", "latency_mean", "latency_p95", "hour_sin",
                                   "hour_cos", "hour_rarity", "weekday"}  # fmt: skip
    test = metric_stream("billing", hours=24 * 12, seed=3, spike_at=24 * 11 * 12)[24 * 10 * 12 :]
    result = model.score(test)
    flagged = result.windows.loc[result.windows["flagged"], "window_start"]
    assert len(flagged) >= 1
    spike = START + timedelta(hours=24 * 11)
    assert all(spike <= t < spike + timedelta(minutes=45) for t in flagged)
    assert result.logins.empty
    docs = result.to_anomalies(model_id="s", model_version=2)
    assert any("latency" in r["feature"] for r in docs[0]["reasons"])
    assert "this service's" in docs[0]["reasons"][0]["text"]


def test_cold_start_entity_is_scored_against_the_population_with_low_confidence(
    population: Population,
) -> None:
    model = cold_start_model("newbie", population)
    assert model.cold_start and model.window_confidence < 1 and model.login_confidence < 1
    attack = login("newbie", LATER, 1, place=KYIV, ua=FIREFOX_LINUX, ip="91.200.1.5")
    usual = login("newbie", LATER + timedelta(hours=1), 2)
    result = model.score([attack, usual])
    scores = result.logins.set_index("event_id")["score"]
    assert scores["newbie-login-1"] > scores["newbie-login-2"]
    assert bool(result.logins.set_index("event_id")["flagged"]["newbie-login-1"])
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


def test_dismissed_new_phone_stops_alerting_again(alice_history: list[dict]) -> None:
    phone_login = login("alice", LATER, 5000, ua=IPHONE)
    model = fit_entity_model("alice", alice_history)
    assert bool(model.score([phone_login]).logins["flagged"].iloc[0])
    feedback = Feedback(dismissed=frozenset({"alice-login-5000"}))
    relearned = fit_entity_model("alice", [*alice_history, phone_login], feedback=feedback)
    again = login("alice", LATER + timedelta(days=1), 5001, ua=IPHONE)
    assert not bool(relearned.score([again]).logins["flagged"].iloc[0])
    # a different novelty still alerts
    attack = login("alice", LATER + timedelta(days=1), 5002, place=KYIV, ua=FIREFOX_LINUX)
    assert bool(relearned.score([attack]).logins["flagged"].iloc[0])


def test_confirmed_attack_events_are_left_out_of_training(alice_history: list[dict]) -> None:
    attacks = [
        login("alice", LATER + timedelta(minutes=i), 7000 + i, place=KYIV, ua=FIREFOX_LINUX)
        for i in range(30)
    ]
    feedback = Feedback.from_anomalies(
        [{"event_ids": [a["_id"] for a in attacks], "review": {"status": "confirmed"}}]
    )
    learned = fit_entity_model("alice", [*alice_history, *attacks])
    excluded = fit_entity_model("alice", [*alice_history, *attacks], feedback=feedback)
    assert excluded.n_train_events == len(alice_history)
    assert excluded.novelty is not None and "UA" not in excluded.novelty.counts_["country"]
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
