"""Errors raised by the detection engine.

A flat hierarchy: every error is an :class:`EngineError`. The worker layer reacts by class:

- :class:`IncompatibleModelError` — a stored model was written by another format or library
  version; the caller retrains (not a crash, not a retry).
- :class:`UnsafeModelError` — a stored model is not a couchwatch envelope or holds types outside
  the allow-list; the caller must not retry loading it (fatal for that attachment, retrain).
- :class:`InsufficientHistoryError` — too little history to fit and no population to fall back on.
- :class:`ConfigError` — an :class:`~workers.engine.config.EngineConfig` failed ``validate()``.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class of every detection-engine error."""


class ConfigError(EngineError, ValueError):
    """An engine configuration value is out of range or unknown."""


class InsufficientHistoryError(EngineError):
    """An entity has too little history to fit and no population profile was given."""


class ModelLoadError(EngineError):
    """A serialized model could not be loaded."""


class UnsafeModelError(ModelLoadError):
    """A serialized model is not a plain-data envelope (e.g. a pickle) and was refused."""


class IncompatibleModelError(ModelLoadError):
    """A serialized model was written by another format or library version; retrain it."""
