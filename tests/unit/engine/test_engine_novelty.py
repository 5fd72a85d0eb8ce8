"""Login novelty: Chinese-restaurant predictive per field, independent facts, alerts once."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from workers.engine.context import ua_os_version
from workers.engine.detectors.novelty import FACT_P, FieldPrior, NoveltyProfile
from workers.engine.model import EntityModel, _fact_severity, fit_entity_model
from workers.engine.population import Population, build_population
from workers.engine.reasons import _login_reason
from workers.store.anomalies import documents

from ._synth import FIREFOX_LINUX, IPHONE, KYIV, START, history, login

pytestmark = pytest.mark.unit

LATER = START + timedelta(days=31, hours=16)
WORLD = ("US", "GB", "FR", "DE", "JP", "BR")


def _logins(countries: list[str], *, start: pd.Timestamp | None = None) -> pd.DataFrame:
    """Login context rows one day apart (no fast country switches)."""
    t0 = start or pd.Timestamp("2026-03-02T09:00:00Z")
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(len(countries))],
            "timestamp": [t0 + pd.Timedelta(days=i) for i in range(len(countries))],
            "country": countries,
        }
    )


def _profile(countries: list[str], **kwargs: object) -> NoveltyProfile:
    return NoveltyProfile(weights={"country": 1.0}, **kwargs).fit(  # type: ignore[arg-type]
        _logins(countries), priors={}
    )


@pytest.fixture(scope="module")
def population() -> Population:
    events = [e for i in range(6) for e in history(f"user{i}", days=20, seed=10 + i)]
    return build_population(events)


@pytest.fixture(scope="module")
def alice(population: Population) -> EntityModel:
    return fit_entity_model("alice", history("alice", days=30, seed=1), population=population)


def test_field_p_values_follow_the_predictive_of_new_and_changed_values() -> None:
    home = _profile(["US"] * 30)
    same = home._field("country", "US")
    new = home._field("country", "UA")
    assert same.p == same.raw_p == 1.0  # the same as the last login: nothing changed
    # a never-seen value: the larger of the Chinese-restaurant new-value mass and the rate of
    # changes to new values; the first change of a field that never changed is a fact
    assert new.raw_p == pytest.approx(FACT_P) and new.p == pytest.approx(2 / 32)
    assert new.count == 0 and new.mode == "US"
    # six countries used, a change every login: a seventh country is far more expected
    traveller = _profile([WORLD[i % 6] for i in range(30)])
    assert traveller._field("country", "UA").raw_p > 3 * FACT_P
    # a population prior lowers a rare value's p: UA is rarer than CA among the others
    prior = FieldPrior({"US": 0.8, "CA": 0.15, "UA": 0.01}, 0.001)
    ranked = NoveltyProfile(weights={"country": 1.0}).fit(
        _logins(["US"] * 30), priors={"country": prior}
    )
    assert ranked._field("country", "UA").p < ranked._field("country", "CA").p <= 2 / 32


def test_weights_soften_a_field_and_groups_multiply() -> None:
    rows = _logins(["US"] * 30).assign(browser="Chrome", city="San Jose")
    profile = NoveltyProfile(weights={"country": 1.0, "city": 0.25, "browser": 0.5}).fit(
        rows, priors={}
    )
    city = profile._field("city", "Fresno")
    country = profile._field("country", "UA")
    browser = profile._field("browser", "Firefox")
    assert city.p == pytest.approx(country.p**0.25)  # a new city alone is a weak fact
    assert browser.p == pytest.approx(country.p**0.5)
    both = profile.novelty({"country": "UA", "browser": "Firefox"})
    assert set(both.facts) == {"place", "device"}
    assert both.p == pytest.approx(country.p * browser.p)  # product over independent groups
    # a new place on a familiar device is what a trip looks like: ten times less surprising
    trip = profile.novelty({"country": "UA", "browser": "Chrome"})
    assert trip.facts == ("place",) and trip.p == pytest.approx(min(10 * country.p, 1.0))


def test_a_login_without_a_changed_fact_is_never_an_alert() -> None:
    traveller = NoveltyProfile(weights={"country": 1.0}).fit(
        _logins([WORLD[i % 6] for i in range(30)]), priors={}
    )
    again = traveller.novelty({"country": "UA"})
    assert again.facts == () and again.p >= FACT_P


def test_score_sequence_adds_each_login_after_scoring_it() -> None:
    profile = _profile(["US"] * 9)
    later = _logins(["UA", "UA", "US"], start=pd.Timestamp("2026-04-01T09:00:00Z"))
    first, second, third = profile.copy().score_sequence(later)
    assert first is not None and second is not None and third is not None
    assert first.facts == ("place",)
    assert second.p == 1.0 and second.facts == ()  # UA again: the same as the last login
    assert third.facts == ()  # back home to a country seen nine times
    assert profile.n_logins == 9  # scoring a copy never changes the stored profile
    context_only = profile.copy()
    out = context_only.score_sequence(later, emit=[False, True, True])
    assert out[0] is None and out[1] is not None and out[1].p == pytest.approx(second.p)
    assert context_only.counts["country"]["UA"] == 2


def test_profile_round_trips_through_plain_state() -> None:
    profile = _profile([WORLD[i % 3] for i in range(12)])
    back = NoveltyProfile.from_state(profile.to_state())
    assert back == profile
    assert back.novelty({"country": "UA"}) == profile.novelty({"country": "UA"})


def test_new_phone_at_home_is_one_fact_at_most_and_never_above_low(alice: EntityModel) -> None:
    result = alice.score([login("alice", LATER, 5000, ua=IPHONE)])
    detail = result.logins["detail"].iloc[0]
    assert set(detail.facts) <= {"device"}
    assert result.logins["severity"].iloc[0] in (None, "low")
    assert result.logins["score"].iloc[0] < result.logins["threshold"].iloc[0]


def test_fact_count_caps_the_severity() -> None:
    assert _fact_severity("high", ("device",)) == "low"
    assert _fact_severity("high", ("device", "place")) == "medium"
    assert _fact_severity("high", ("device", "network", "place")) == "high"
    assert _fact_severity("low", ("device", "network", "place")) == "high"  # facts decide
    assert _fact_severity(None, ("place",)) is None


def test_takeover_from_abroad_on_a_new_browser_and_network_is_three_facts_and_high(
    alice: EntityModel,
) -> None:
    attack = login("alice", LATER, 9999, place=KYIV, ua=FIREFOX_LINUX, ip="91.200.1.5")
    result = alice.score([attack])
    assert bool(result.logins["flagged"].iloc[0])
    assert set(result.logins["detail"].iloc[0].facts) == {"place", "network", "device"}
    assert result.logins["severity"].iloc[0] == "high"


def test_second_login_from_the_same_new_device_in_one_call_is_not_flagged(
    alice: EntityModel,
) -> None:
    attack = [
        login(
            "alice",
            LATER + timedelta(hours=3 * i),
            9000 + i,
            place=KYIV,
            ua=FIREFOX_LINUX,
            ip="91.200.1.5",
        )
        for i in range(3)
    ]
    scored = alice.score(attack).logins
    assert scored["flagged"].tolist() == [True, False, False]
    assert scored["score"].iloc[1] < scored["score"].iloc[0]
    # each call starts again from the stored model: the same login alone alerts again
    assert bool(alice.score(attack[1:2]).logins["flagged"].iloc[0])


def test_frequent_travellers_new_country_is_far_less_surprising(
    alice: EntityModel, population: Population
) -> None:
    tom_events = [dict(e) for e in history("tom", days=30, seed=2)]
    n = 0
    for e in tom_events:
        n += e["type"] == "login"
        e["country"] = WORLD[n % len(WORLD)]
        e["region"] = e["city"] = f"{e['country']} capital"  # a trip changes the city too
    tom = fit_entity_model("tom", tom_events, population=population)

    def country(model: EntityModel, user: str) -> tuple[float, tuple[str, ...]]:
        detail = model.score([login(user, LATER, 99, place=KYIV)]).logins["detail"].iloc[0]
        p = next(s.p for s in detail.surprises if s.field == "country")
        return p, detail.facts

    p_tom, facts_tom = country(tom, "tom")
    p_alice, facts_alice = country(alice, "alice")
    assert p_tom > 3 * p_alice
    assert "place" in facts_alice and "place" not in facts_tom


def test_impossible_travel_is_its_own_fact_with_a_reason(alice: EntityModel) -> None:
    home = login("alice", LATER, 1)
    away = login("alice", LATER + timedelta(minutes=30), 2, place=KYIV, ip="91.200.1.5")
    result = alice.score([home, away])
    detail = result.logins["detail"].iloc[1]
    assert detail.travel is not None and detail.travel["minutes"] == 30
    assert set(detail.facts) == {"place", "network", "travel"}  # 91.200.1.5 is a new network too
    assert result.logins["flagged"].tolist() == [False, True]
    assert result.logins["severity"].iloc[1] == "high"  # three facts
    doc = next(
        d
        for d in documents(result.findings(model_id="m", model_version=1))
        if d["detector"] == "novelty"
    )
    travel = next(r for r in doc["reasons"] if r["feature"] == "travel")
    assert travel["value"] == "US->UA"
    assert travel["text"].startswith("login from UA 30 min after a login from US;")
    assert "happened never in" in travel["text"]
    # the same change a day apart is no travel fact
    next_day = login("alice", LATER + timedelta(days=1), 3, place=KYIV, ip="91.200.1.5")
    slow = alice.score([home, next_day])
    assert slow.logins["detail"].iloc[1].travel is None


def test_coming_home_after_an_alerted_login_abroad_is_no_impossible_trip(
    alice: EntityModel,
) -> None:
    home = login("alice", LATER, 1)
    # a takeover from abroad three hours later (no fast switch): an alert on its own facts
    attack = login(
        "alice", LATER + timedelta(hours=3), 2, place=KYIV, ua=FIREFOX_LINUX, ip="91.2.1.5"
    )
    back = login("alice", LATER + timedelta(hours=3, minutes=40), 3)  # alice, at home again
    result = alice.score([home, attack, back])
    assert result.logins["flagged"].tolist() == [False, True, False]
    assert result.logins["detail"].iloc[2].travel is None
    # the same when the attack is context scored before (the fleet scores in batches)
    later = alice.score([home, attack, back], score_from=back["timestamp"])
    assert len(later.logins) == 1 and later.logins["detail"].iloc[0].travel is None
    # without knowing it alerted, the return is a change of country within 2 h, as before
    profile = alice.novelty
    assert profile is not None
    rows = result.logins[["timestamp", *profile.weights]]
    plain = profile.copy().score_sequence(rows)
    assert plain[2] is not None and plain[2].travel is not None
    assert plain[2].travel["from"] == "UA" and plain[2].travel["minutes"] == 40
    # a state stored before trip_from existed loads without it
    state = {k: v for k, v in profile.to_state().items() if k != "trip_from"}
    assert NoveltyProfile.from_state(state) == profile


CHROME_WIN7 = (
    "Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/109.0.0.0 Safari/537.36"
)


def test_another_os_version_on_the_travellers_own_browser_is_a_device_fact(
    population: Population,
) -> None:
    """Someone who logs in from many countries: a new country alone is no fact, but the same
    browser on another major version of the OS (someone else's machine) is one."""
    assert ua_os_version(CHROME_WIN7) == "Windows 7" and ua_os_version("curl/8.0") is None
    events = [dict(e) for e in history("tom", days=30, seed=2)]
    n = 0
    for e in events:
        n += e["type"] == "login"
        e["country"] = WORLD[n % len(WORLD)]
        e["region"] = e["city"] = f"{e['country']} capital"
    tom = fit_entity_model("tom", events, population=population)
    own = tom.score([login("tom", LATER, 98, place=KYIV)]).logins
    assert own["detail"].iloc[0].facts == ("network",)  # yet another country, usual machine
    other = tom.score([login("tom", LATER, 99, place=KYIV, ua=CHROME_WIN7)]).logins
    detail = other["detail"].iloc[0]
    assert set(detail.facts) == {"device", "network"}
    assert detail.p < own["detail"].iloc[0].p / 5
    version = next(s for s in detail.surprises if s.field == "os_version")
    assert version.value == "Windows 7" and version.count == 0 and version.mode == "Windows 10"
    reason = _login_reason(version, "user")
    assert reason["text"].startswith("OS version Windows 7 never seen in 66 logins of this user")
