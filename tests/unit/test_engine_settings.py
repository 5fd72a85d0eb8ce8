"""The engine is built from settings: what an operator sets is what workers and evaluate run."""

from __future__ import annotations

import pytest

from workers.detection import engine_config
from workers.engine.errors import ConfigError
from workers.settings import Settings

pytestmark = pytest.mark.unit


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_defaults_give_the_documented_detectors() -> None:
    config = engine_config(_settings())
    assert config.detectors == ("robust_zscore", "time_of_day", "seasonal", "novelty")
    assert config.target_alert_rate == pytest.approx(0.002)


def test_detectors_and_thresholds_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COUCHWATCH_DETECTORS", "robust_zscore, isolation_forest, novelty")
    monkeypatch.setenv("COUCHWATCH_TARGET_ALERT_RATE", "0.0005")
    monkeypatch.setenv("COUCHWATCH_COMBINE", "fisher")
    config = engine_config(Settings(_env_file=None))  # type: ignore[call-arg]
    assert config.detectors == ("robust_zscore", "isolation_forest", "novelty")
    assert config.window_detectors == ("robust_zscore", "isolation_forest")
    assert (config.target_alert_rate, config.combine) == (0.0005, "fisher")


def test_an_unknown_detector_is_refused_with_one_line() -> None:
    with pytest.raises(ConfigError, match="unknown or no detectors") as err:
        engine_config(_settings(couchwatch_detectors=["robust_zscore", "magic"]))
    assert "\n" not in str(err.value)


def test_a_window_that_is_not_a_fixed_offset_is_refused() -> None:
    with pytest.raises(ConfigError, match="window"):
        engine_config(_settings(couchwatch_window="1M"))
