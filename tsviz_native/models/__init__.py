"""Trained models shipped with the package, and the inputs they were trained and tested on.

Two ONNX models lie beside this file (how they were trained, and their measured results, are in
``MODELS.md``; each has a JSON file with its parameters and numbers):

* ``"forecaster"`` (``forecaster_b5m.onnx``): the TSViz paper's case study (Sec. 4), a CNN with
  three convolution, two max-pooling and one dense layer that forecasts the next value of the
  Internet traffic series B5M from a window of 50 steps with two channels (the scaled signal and
  its first difference). Input ``x`` ``(N, 2, 50)``, output ``y`` ``(N, 1)`` (scaled; undo with
  ``info("forecaster")["scaling"]``). The demo's default model.
* ``"fcn-gunpoint"`` (``fcn_gunpoint.onnx``): the FCN of Wang et al. (2017) trained on UCR
  GunPoint. Input ``x`` ``(N, 1, T)`` z-normalised series (trained with T = 150), output ``y``
  ``(N, 2)`` class probabilities.

The training script ``train.py`` in this folder is a development tool (it needs PyTorch) and is
never imported by the package. The windowing lives in ``windows.py`` (numpy only), shared by the
training script and :func:`forecaster_windows`, so both build exactly the same inputs.

Examples
--------
>>> from tsviz_native import models
>>> models.available()
('forecaster', 'fcn-gunpoint')
>>> models.path("forecaster").name
'forecaster_b5m.onnx'
>>> X, y, y_orig = models.forecaster_windows("test")
>>> X.shape, X.dtype, y.shape
((6630, 2, 50), dtype('float32'), (6630,))
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from tsviz_native._native import ArgumentError
from tsviz_native.models import windows as _windows

__all__ = ["available", "forecaster_windows", "gunpoint", "info", "path"]

_HERE = Path(__file__).resolve().parent
_FILES = {"forecaster": "forecaster_b5m.onnx", "fcn-gunpoint": "fcn_gunpoint.onnx"}
_FORECASTER_SPLITS = ("train", "validation", "test", "all")
_UCR_SPLITS = ("train", "test")


def _choose(name: object, choices: tuple[str, ...], what: str) -> str:
    if isinstance(name, str):
        key = name.strip().lower()
        if what == "split" and key == "val":
            key = "validation"
        for choice in choices:
            if choice == key:
                return choice
    raise ArgumentError(f"unknown {what} {name!r}; valid choices: {', '.join(choices)}")


def available() -> tuple[str, ...]:
    """Names of the shipped models."""
    return tuple(_FILES)


def path(name: str) -> Path:
    """Path of a shipped ONNX model: ``"forecaster"`` or ``"fcn-gunpoint"``.

    Raises :class:`tsviz_native.ArgumentError` (listing the names) for an unknown name.
    """
    return _HERE / _FILES[_choose(name, available(), "model")]


@cache
def _info_text(name: str) -> str:
    return path(name).with_suffix(".json").read_text(encoding="utf-8")


def info(name: str) -> dict:
    """The model's JSON record: preprocessing parameters, split, training details, metrics."""
    return json.loads(_info_text(_choose(name, available(), "model")))


def forecaster_windows(split: str = "test"):
    """The forecaster's windows, rebuilt exactly as in training.

    Parameters
    ----------
    split : {"train", "validation", "test", "all"}, default "test"
        Windows whose target lies in that part of B5M (``"train"`` is the part the network was
        fitted on, without the validation part; see ``info("forecaster")["split"]``).

    Returns
    -------
    X : numpy.ndarray
        float32 ``(N, 2, 50)``: scaled signal and its first difference (first element 0).
    y : numpy.ndarray
        float64 ``(N,)``: the scaled target (the value right after each window).
    y_original : numpy.ndarray
        float64 ``(N,)``: the same target on the original scale.
    """
    from tsviz_native import datasets

    split = _choose(split, _FORECASTER_SPLITS, "split")
    meta = info("forecaster")
    values = datasets.internet_traffic("B5M").values
    if len(values) != meta["split"]["n"]:
        raise RuntimeError("B5M length differs from the one the forecaster was trained on")
    first, stop = _windows.split_range(split, meta["split"])
    X, y, y_orig, _ = _windows.make_windows(values, meta["scaling"]["mean"],
                                            meta["scaling"]["std"], meta["window"], first, stop)
    return X, y, y_orig


def gunpoint(split: str = "test"):
    """UCR GunPoint as the FCN sees it: ``(X float32 (N, 1, 150) z-normalised per series, y)``
    with ``y`` int64 in ``{0, 1}`` (labels ``"1"``, ``"2"``)."""
    from tsviz_native import datasets

    split = _choose(split, _UCR_SPLITS, "split")
    X, y = datasets.ucr("GunPoint", split=split)
    return _windows.znormalise(X), y
