"""Grouped numpy reductions agree with pandas groupby on random data with NaNs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.engine import grouped
from workers.engine.features import events_frame, window_features, window_table

from ._synth import history

pytestmark = pytest.mark.unit

values = st.lists(
    st.tuples(
        st.integers(0, 5),
        st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)),
        st.integers(-1, 3),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(values)
def test_reductions_match_pandas_groupby(rows: list[tuple[int, float | None, int]]) -> None:
    rows = sorted(rows, key=lambda r: r[0])
    keys = np.array([r[0] for r in rows])
    x = np.array([np.nan if r[1] is None else r[1] for r in rows], dtype=float)
    codes = np.array([r[2] for r in rows])
    starts = grouped.group_starts(keys)
    g = pd.Series(x).groupby(keys)
    np.testing.assert_allclose(grouped.nansum(x, starts), g.sum(min_count=1).to_numpy())
    np.testing.assert_allclose(grouped.nanmean(x, starts), g.mean().to_numpy())
    np.testing.assert_allclose(grouped.nanmax(x, starts), g.max().to_numpy())
    np.testing.assert_allclose(
        grouped.nanquantile(x, starts, 0.95), g.quantile(0.95).to_numpy(), rtol=1e-9, atol=1e-6
    )
    labels = pd.Series(np.where(codes >= 0, codes, np.nan))
    np.testing.assert_array_equal(
        grouped.distinct_count(codes, starts), labels.groupby(keys).nunique().to_numpy()
    )
    first = grouped.first_occurrence(codes, keys)
    expected = (codes >= 0) & ~pd.DataFrame({"k": keys, "c": codes}).duplicated().to_numpy()
    np.testing.assert_array_equal(first, expected)


def test_window_table_by_entity_equals_each_entity_alone() -> None:
    events = history("a", days=5) + history("b", days=4, seed=3)
    frame = events_frame(events)
    pooled = window_table(frame, "15min", by_entity=True)
    assert sorted(set(pooled["entity"])) == ["a", "b"]
    for entity, own in pooled.groupby("entity"):
        alone = window_features(frame[frame["entity"] == entity].reset_index(drop=True))
        pd.testing.assert_frame_equal(
            own.drop(columns="entity").reset_index(drop=True), alone, check_dtype=False
        )
