"""Naive NumPy references for the numba kernels of ``tsviz_native.analysis``: written for
clarity, straight from the definitions, with no shared code."""

from __future__ import annotations

import numpy as np


def minmax_rows(a: np.ndarray) -> np.ndarray:
    """docs/definitions.md: each row min-max scaled to [0, 1]; a constant row becomes zeros."""
    a = np.asarray(a, dtype=np.float64)
    lo = a.min(axis=1, keepdims=True)
    span = a.max(axis=1, keepdims=True) - lo
    out = np.zeros_like(a)
    varying = span[:, 0] > 0
    out[varying] = (a[varying] - lo[varying]) / span[varying]
    return out


def inertia(x: np.ndarray, labels: np.ndarray) -> float:
    """Sum of squared Euclidean distances of the rows to the mean of their cluster."""
    total = 0.0
    for c in np.unique(labels):
        members = x[labels == c]
        total += float(((members - members.mean(axis=0)) ** 2).sum())
    return total


def dtw(a: np.ndarray, b: np.ndarray) -> float:
    """Classic DTW: |a_i - b_j| cost, steps (1, 0), (0, 1), (1, 1), no window."""
    n, m = len(a), len(b)
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            acc[i, j] = abs(a[i - 1] - b[j - 1]) + min(acc[i - 1, j], acc[i, j - 1], acc[i - 1, j - 1])
    return float(acc[n, m])


def dtw_matrix(x: np.ndarray) -> np.ndarray:
    """All pairwise :func:`dtw` distances; the same recursion, run for every pair i < j at
    once (vectorised over the pairs only, so it stays fast enough for 150-step rows)."""
    x = np.asarray(x, dtype=np.float64)
    n, length = x.shape
    i, j = np.triu_indices(n, k=1)
    a, b = x[i].T, x[j].T  # (length, pairs)
    # Rows p of the accumulated-cost table acc[p, q], one column per pair; row 0 is the border.
    prev = np.full((length + 1, len(i)), np.inf)
    prev[0] = 0.0
    for p in range(1, length + 1):
        cur = np.full((length + 1, len(i)), np.inf)
        for q in range(1, length + 1):
            step = np.minimum(np.minimum(prev[q], cur[q - 1]), prev[q - 1])
            cur[q] = np.abs(a[p - 1] - b[q - 1]) + step
        prev = cur
    d = np.zeros((n, n))
    d[i, j] = prev[length]
    d[j, i] = prev[length]
    return d


def euclidean_matrix(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2))


def silhouette(d: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette (Rousseeuw): s = (b - a) / max(a, b), 0 for a filter alone in its
    cluster or when a == b == 0."""
    n = len(labels)
    clusters = np.unique(labels)
    s = np.zeros(n)
    for p in range(n):
        own = labels == labels[p]
        if own.sum() == 1:
            continue
        a = d[p, own].sum() / (own.sum() - 1)
        b = min(d[p, labels == c].mean() for c in clusters if c != labels[p])
        top = max(a, b)
        s[p] = 0.0 if top == 0 else (b - a) / top
    return float(s.mean())
