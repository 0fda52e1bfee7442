"""Merged percentiles against numpy over the pooled samples (GUIDE §5 accuracy)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobgraph.core import stats


def tolerance(exact: float) -> float:
    return max(0.5, 0.01 * abs(exact))


@given(
    seed=st.integers(0, 2**32 - 1),
    parts=st.integers(1, 30),
    size=st.integers(1, 400),
)
@settings(max_examples=60, deadline=None)
def test_merged_histograms_match_numpy_on_pooled_samples(seed, parts, size):
    rng = np.random.default_rng(seed)
    # delay-like data: a point mass at 0, an exponential tail and some negative (early) values
    samples = [
        np.where(rng.random(size) < 0.4, rng.exponential(25.0, size), 0.0) + rng.normal(0, 3, size)
        for _ in range(parts)
    ]
    # the summaries travel as JSON between the AGGREGATION and MERGE jobs
    summaries = [json.loads(json.dumps(stats.histogram(s))) for s in samples]
    merged = stats.describe_histogram(stats.merge_histograms(summaries))
    pooled = np.concatenate(samples)
    for q in stats.PERCENTILES:
        exact = float(np.percentile(pooled, q))
        assert merged[f"p{q}"] == pytest.approx(exact, abs=tolerance(exact))
        assert abs(merged[f"p{q}"] - exact) <= stats.BIN_WIDTH_MIN / 2 + 1e-9
    assert merged["mean"] == pytest.approx(float(pooled.mean()), rel=1e-12, abs=1e-12)
    assert merged["max"] == float(pooled.max())


def test_describe_is_numpy_exact():
    samples = np.random.default_rng(1).exponential(10, 999)
    described = stats.describe(samples)
    assert described["p90"] == float(np.percentile(samples, 90))
    assert described["mean"] == pytest.approx(samples.mean(), rel=1e-14)
    assert described["max"] == samples.max()


def test_merge_rejects_mixed_bin_widths():
    a = stats.histogram(np.arange(5.0), bin_width=0.1)
    b = stats.histogram(np.arange(5.0), bin_width=0.5)
    with pytest.raises(ValueError, match="different bin widths"):
        stats.merge_histograms([a, b])
    with pytest.raises(ValueError, match="nothing to merge"):
        stats.merge_histograms([])
