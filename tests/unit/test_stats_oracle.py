"""The result statistics (core/stats) against numpy on the pooled samples, with GUIDE §5's metric names
and percentiles written out, and the mergeable histogram checked bin by bin."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobgraph.core import stats

# GUIDE §5: each metric object is {p50, p75, p90, p95, p99, mean, max}
KEYS = ["p50", "p75", "p90", "p95", "p99", "mean", "max"]
QUANTILES = {"p50": 50, "p75": 75, "p90": 90, "p95": 95, "p99": 99}

samples_strategy = st.lists(st.floats(-300, 2000, allow_nan=False, allow_infinity=False), min_size=1, max_size=300).map(
    np.array
)


@given(samples=samples_strategy)
@settings(max_examples=80, deadline=None)
def test_describe_is_numpys_default_percentile_and_exact_mean_and_max(samples):
    described = stats.describe(samples)
    assert list(described) == KEYS
    for key, q in QUANTILES.items():
        assert described[key] == float(np.percentile(samples, q))
    assert described["mean"] == math.fsum(samples.tolist()) / samples.size
    assert described["max"] == float(samples.max())


@given(parts=st.lists(samples_strategy, min_size=1, max_size=12))
@settings(max_examples=80, deadline=None)
def test_merged_histogram_answers_within_half_a_bin_of_numpy_on_the_pooled_samples(parts):
    merged = stats.describe_histogram(stats.merge_histograms(json.loads(json.dumps(stats.histogram(p))) for p in parts))
    pooled = np.concatenate(parts)
    assert list(merged) == KEYS
    for key, q in QUANTILES.items():
        exact = float(np.percentile(pooled, q))
        assert abs(merged[key] - exact) <= 0.05 + 1e-9  # half of a 0.1-minute bin
        assert abs(merged[key] - exact) <= max(0.5, 0.01 * abs(exact))  # GUIDE §5's tolerance
    assert merged["mean"] == pytest.approx(math.fsum(pooled.tolist()) / pooled.size, rel=1e-12, abs=1e-12)
    assert merged["max"] == float(pooled.max())


@given(parts=st.lists(samples_strategy, min_size=1, max_size=8))
@settings(max_examples=60, deadline=None)
def test_histogram_counts_are_numpys_bin_counts_and_merging_is_exact(parts):
    pooled = np.concatenate(parts)
    merged = stats.merge_histograms(stats.histogram(p) for p in parts)
    # bin k holds the samples in [0.1·k, 0.1·(k+1)): numpy's own count of floor(x / 0.1)
    keys, counts = np.unique(np.floor(pooled / 0.1).astype(np.int64), return_counts=True)
    assert merged["bin_width"] == 0.1
    assert merged["bins"] == keys.tolist()
    assert merged["counts"] == counts.tolist()
    assert all(type(c) is int for c in merged["counts"])  # whole counts in the JSON, not 2.0
    assert merged["count"] == pooled.size == sum(merged["counts"])
    assert merged["sum"] == pytest.approx(math.fsum(pooled.tolist()), rel=1e-12, abs=1e-9)
    assert merged["min"] == float(pooled.min()) and merged["max"] == float(pooled.max())
    # merging in any grouping gives the same histogram as one pass over the pooled samples
    assert stats.merge_histograms([merged]) == merged
    whole = stats.histogram(pooled)
    assert {k: whole[k] for k in ("bins", "counts", "count", "min", "max")} == {
        k: merged[k] for k in ("bins", "counts", "count", "min", "max")
    }


def test_a_histogram_by_hand():
    hist = stats.histogram(np.array([0.0, 0.05, 0.1, 0.25, -0.05, -0.15, 3.05]))
    # floor(x / 0.1): 0, 0, 1, 2, -1, -2, 30 (early arrivals fall in negative bins)
    assert hist["bins"] == [-2, -1, 0, 1, 2, 30]
    assert hist["counts"] == [1, 1, 2, 1, 1, 1]
    assert hist["count"] == 7 and hist["min"] == -0.15 and hist["max"] == 3.05
    assert hist["sum"] == pytest.approx(3.25)


def test_percentiles_from_a_histogram_by_hand():
    # ten samples 0.02, 0.12, …, 0.92, one per bin 0..9: the k-th smallest is taken as its bin's midpoint
    # 0.1·k + 0.05, clamped to the exact min 0.02 and max 0.92 (so the top one counts as 0.92, not 0.95)
    hist = stats.histogram(np.arange(10) / 10 + 0.02)
    described = stats.describe_histogram(hist)
    # numpy's linear rule: rank = (n − 1)·q/100 = 9·q/100, interpolating between neighbours
    assert described["p50"] == pytest.approx(0.45 + 0.5 * 0.1)  # rank 4.5 → 0.50
    assert described["p75"] == pytest.approx(0.65 + 0.75 * 0.1)  # rank 6.75 → 0.725
    assert described["p90"] == pytest.approx(0.85 + 0.1 * 0.07)  # rank 8.1 → 0.857
    assert described["p95"] == pytest.approx(0.85 + 0.55 * 0.07)  # rank 8.55 → 0.8885
    assert described["p99"] == pytest.approx(0.85 + 0.91 * 0.07)  # rank 8.91 → 0.9137
    assert described["mean"] == pytest.approx(0.47) and described["max"] == 0.92


def test_one_sample_and_all_equal_samples():
    # 7.26 sits above its bin's midpoint 7.25 (clamped up to the min), -2.0 below -1.95 (clamped down to the max)
    for samples in (np.array([7.3]), np.array([7.26]), np.full(50, -2.0)):
        described = stats.describe_histogram(stats.histogram(samples))
        for key in QUANTILES:
            assert described[key] == pytest.approx(float(samples[0]))  # clamped to min = max
        assert described["mean"] == pytest.approx(float(samples[0])) and described["max"] == float(samples[0])


def test_merge_keeps_the_width_and_refuses_mixed_or_no_parts():
    a = stats.histogram(np.arange(5.0), bin_width=0.5)
    assert stats.merge_histograms([a, a])["bin_width"] == 0.5
    assert stats.merge_histograms([a, a])["counts"] == [2, 2, 2, 2, 2]
    with pytest.raises(ValueError, match=r"different bin widths \[0.1, 0.5\]"):
        stats.merge_histograms([stats.histogram(np.arange(5.0)), a])
    with pytest.raises(ValueError, match=r"^nothing to merge$"):
        stats.merge_histograms(iter(()))


def test_histogram_bins_are_integers_in_the_json():
    """Bin indices are ints: a float index would write `2.0` into every percentiles file."""
    summary = stats.histogram(np.array([0.5, 2.7, 2.2, -0.5]), bin_width=1.0)
    assert json.dumps(summary["bins"]) == "[-1, 0, 2]"
    assert summary["counts"] == [1, 1, 2]
