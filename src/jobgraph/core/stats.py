"""Per-sequence statistics and their merge (GUIDE §5).

Each sequence stores, besides its exact percentiles, a sparse fixed-width histogram (0.1 min bins) with the
exact count, sum and extremes of its samples. Histograms of different sequences add bin by bin, so MERGE
reads O(sequences) small JSON files and still answers percentiles within half a bin (0.05 min) of numpy's
percentile over the pooled samples, with the mean and max exact.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

PERCENTILES = (50, 75, 90, 95, 99)
BIN_WIDTH_MIN = 0.1


def describe(samples: np.ndarray) -> dict[str, float]:
    """Exact {p50, p75, p90, p95, p99, mean, max} of one sample set (numpy's default percentile)."""
    values = np.percentile(samples, PERCENTILES)
    out = {f"p{q}": float(v) for q, v in zip(PERCENTILES, values, strict=True)}
    out["mean"] = math.fsum(samples.tolist()) / samples.size
    out["max"] = float(samples.max())
    return out


def histogram(samples: np.ndarray, bin_width: float = BIN_WIDTH_MIN) -> dict[str, Any]:
    """Mergeable summary of one sample set."""
    bins, counts = np.unique(np.floor(samples / bin_width).astype(np.int64), return_counts=True)
    return {
        "bin_width": bin_width,
        "bins": bins.tolist(),
        "counts": counts.tolist(),
        "count": int(samples.size),
        "sum": math.fsum(samples.tolist()),
        "min": float(samples.min()),
        "max": float(samples.max()),
    }


def merge_histograms(histograms: Iterable[dict[str, Any]]) -> dict[str, Any]:
    parts = list(histograms)
    if not parts:
        raise ValueError("nothing to merge")
    widths = {p["bin_width"] for p in parts}
    if len(widths) != 1:
        raise ValueError(f"histograms have different bin widths {sorted(widths)}")
    bins = np.concatenate([np.asarray(p["bins"], dtype=np.int64) for p in parts])
    counts = np.concatenate([np.asarray(p["counts"], dtype=np.int64) for p in parts])
    merged_bins, inverse = np.unique(bins, return_inverse=True)
    merged_counts = np.zeros(merged_bins.size, dtype=np.int64)
    np.add.at(merged_counts, inverse, counts)
    return {
        "bin_width": widths.pop(),
        "bins": merged_bins.tolist(),
        "counts": merged_counts.tolist(),
        "count": int(sum(p["count"] for p in parts)),
        "sum": math.fsum(p["sum"] for p in parts),
        "min": min(p["min"] for p in parts),
        "max": max(p["max"] for p in parts),
    }


def describe_histogram(hist: dict[str, Any]) -> dict[str, float]:
    """{p50..p99, mean, max} from a histogram, emulating numpy's linear-interpolation percentile.

    The k-th smallest sample is taken as the midpoint of its bin (clamped to the exact min/max), so each
    percentile is within bin_width/2 of the exact value.
    """
    width = hist["bin_width"]
    bins = np.asarray(hist["bins"], dtype=np.float64)
    cumulative = np.cumsum(np.asarray(hist["counts"], dtype=np.int64))
    n = int(cumulative[-1])

    def kth(k: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(cumulative, k, side="right")
        clipped: np.ndarray = np.clip((bins[idx] + 0.5) * width, hist["min"], hist["max"])
        return clipped

    rank = (n - 1) * np.asarray(PERCENTILES, dtype=np.float64) / 100.0
    lo = np.floor(rank)
    low_values, high_values = kth(lo.astype(np.int64)), kth(np.ceil(rank).astype(np.int64))
    values = low_values + (rank - lo) * (high_values - low_values)
    out = {f"p{q}": float(v) for q, v in zip(PERCENTILES, values, strict=True)}
    out["mean"] = hist["sum"] / hist["count"]
    out["max"] = float(hist["max"])
    return out
