"""Windowing and normalisation for the shipped models (numpy only).

This module is the single implementation of how the shipped models' inputs are built. It is used
by :mod:`tsviz_native.models` (``forecaster_windows``, ``gunpoint``) and by the training script
``tsviz_native/models/train.py``, which loads this file by its path (so the training environment
does not need the compiled engine). It must import nothing but numpy.

Forecaster (Internet traffic B5M, the TSViz paper's case study):

* ``split_indices(n)``: chronological split of ``n`` values. ``test_start = floor(2 n / 3)``; the
  training part is ``[0, test_start)``; its last 20 % (``n_val = round(0.2 * test_start)``
  values) is the validation part, ``[val_start, test_start)`` with ``val_start = test_start -
  n_val``. For B5M (n = 19888): test_start = 13258, val_start = 10606.
* ``fit_scaler(values, test_start)``: standardisation with the mean and (population, ddof=0)
  standard deviation of the training part ``values[:test_start]`` only.
* ``make_windows(values, mean, std, window, first_target, stop_target)``: one window per target
  index ``t`` in ``[max(first_target, window), stop_target)``: channel 0 is the scaled signal
  ``s[t-window:t]``, channel 1 its first difference inside the window (``d[0] = 0``,
  ``d[k] = s[t-window+k] - s[t-window+k-1]``); the target is ``s[t]`` (scaled) and ``values[t]``
  (original). A window belongs to the split of its target; its inputs are always earlier values,
  which may lie in an earlier split (they are observed by then).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "TEST_FRACTION_START",
    "VAL_FRACTION",
    "WINDOW",
    "fit_scaler",
    "make_windows",
    "split_indices",
    "split_range",
    "znormalise",
]

WINDOW = 50
TEST_FRACTION_START = 2.0 / 3.0  # the first two thirds train (incl. validation), the rest test
VAL_FRACTION = 0.2               # the last 20 % of the training part validates


def split_indices(n: int, val_fraction: float = VAL_FRACTION) -> dict[str, int]:
    """Chronological split points of a series of ``n`` values.

    Returns ``{"n", "fit_end", "val_start", "train_end", "test_start"}``: the training part is
    ``[0, train_end)`` with ``train_end == test_start`` (scaling and Holt-Winters are fitted on
    it); inside it the network is fitted on windows with targets in ``[0, fit_end)`` and validated
    on targets in ``[val_start, train_end)`` (``fit_end == val_start``); the test windows have
    targets in ``[test_start, n)``.
    """
    n = int(n)
    test_start = (2 * n) // 3
    n_val = round(val_fraction * test_start)
    val_start = test_start - n_val
    return {"n": n, "fit_end": val_start, "val_start": val_start, "train_end": test_start,
            "test_start": test_start}


def split_range(split: str, idx: dict[str, int]) -> tuple[int, int]:
    """Target range ``[first, stop)`` of a split name: ``train`` (the fitting part, without the
    validation part), ``val``/``validation``, ``test``, or ``all``."""
    key = split.strip().lower()
    if key == "train":
        return 0, idx["val_start"]
    if key in ("val", "validation"):
        return idx["val_start"], idx["test_start"]
    if key == "test":
        return idx["test_start"], idx["n"]
    if key == "all":
        return 0, idx["n"]
    raise ValueError(f"unknown split {split!r}; valid choices: train, validation, test, all")


def fit_scaler(values: np.ndarray, test_start: int) -> tuple[float, float]:
    """Mean and population standard deviation of ``values[:test_start]`` (the training part)."""
    part = np.asarray(values, dtype=np.float64)[:test_start]
    return float(part.mean()), float(part.std())


def make_windows(values: np.ndarray, mean: float, std: float, window: int = WINDOW,
                 first_target: int = 0, stop_target: int | None = None):
    """Two-channel windows with next-value targets.

    Returns ``(X, y_scaled, y_original, targets)``: ``X`` float32 ``(N, 2, window)``,
    ``y_scaled`` and ``y_original`` float64 ``(N,)``, ``targets`` int64 ``(N,)`` (the index of each
    target value in ``values``). Computed in float64, cast to float32 at the end.
    """
    v = np.asarray(values, dtype=np.float64)
    n = v.shape[0]
    stop = n if stop_target is None else min(int(stop_target), n)
    first = max(int(first_target), int(window))
    targets = np.arange(first, stop, dtype=np.int64)
    s = (v - mean) / std
    if targets.size == 0:
        return (np.zeros((0, 2, window), np.float32), np.zeros(0), np.zeros(0), targets)
    cols = targets[:, None] - window + np.arange(window)[None, :]
    sig = s[cols]
    diff = np.zeros_like(sig)
    diff[:, 1:] = sig[:, 1:] - sig[:, :-1]
    X = np.stack([sig, diff], axis=1).astype(np.float32)
    return X, s[targets].copy(), v[targets].copy(), targets


def znormalise(X: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Z-normalise every series along the last axis (population sd), as in the UCR convention.
    Returns float32."""
    X = np.asarray(X, dtype=np.float64)
    mu = X.mean(axis=-1, keepdims=True)
    sd = X.std(axis=-1, keepdims=True)
    return ((X - mu) / np.maximum(sd, eps)).astype(np.float32)
