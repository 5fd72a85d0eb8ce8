"""Test-only fault: with ``COUCHWATCH_TEST_POISON_ENTITY`` set, fitting that entity's model
raises, in every process started with this directory on ``PYTHONPATH`` (a worker's model fit
failing for one entity, as a poison history once made it fail)."""

import os

_ENTITY = os.environ.get("COUCHWATCH_TEST_POISON_ENTITY")
if _ENTITY:
    import workers.engine.model as _model

    # every fit goes through fit_summary (fit_entity_model summarizes, then calls it)
    _fit = _model.fit_summary

    def _poisoned(entity, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(entity) == _ENTITY:
            raise ValueError(f"{entity!r}: injected fault, this model cannot be fitted")
        return _fit(entity, *args, **kwargs)

    _model.fit_summary = _poisoned
