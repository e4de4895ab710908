"""Reading windows from files: ``.npy``, ``.npz`` and ``.csv``, one reader for the command line
(``tsviz analyze``, ``predict``, ``prune``) and the viewer (``tsviz view``, ``render``).

* ``.npy``: the windows ``(N, ...)`` in the model's layout, or ``(N, values)`` rows as a CSV has.
* ``.npz``: an array ``X`` (as a ``.npy``) and optionally ``y``, one target per window.
* ``.csv``: one window per row, flattened in the model's layout (see :func:`row_layout`).

Every refusal is a :class:`~tsviz_native.ArgumentError` or :class:`~tsviz_native.ShapeError`
whose message starts with the file's path and says what is wrong with it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np

from tsviz_native._native import ArgumentError, ShapeError
from tsviz_native.model import Model, _shape_text

#: What :func:`read_array` gives: one array, or the arrays of an ``.npz`` file by name.
ArrayData = Union[np.ndarray, dict[str, np.ndarray]]

SUFFIXES = (".npy", ".npz", ".csv")


def read_array(path: str | os.PathLike) -> ArrayData:
    """The array of a ``.npy`` or ``.csv`` file (a CSV is read as ``(rows, values)`` float64),
    or the arrays of an ``.npz`` file by name. Pickled objects are refused.

    Raises
    ------
    ArgumentError
        The file is missing, a folder, of another kind, or not readable as its suffix says;
        the message names the file.
    """
    p = Path(path)
    if p.is_dir():
        raise ArgumentError(f"{path}: is a folder; expected a .npy, .npz or .csv file")
    if not p.is_file():
        raise ArgumentError(f"{path}: no such file")
    if p.suffix not in SUFFIXES:
        raise ArgumentError(f"{path}: expected a .npy, .npz or .csv file")
    try:
        if p.suffix == ".npy":
            return np.load(p, allow_pickle=False)
        if p.suffix == ".npz":
            return dict(np.load(p, allow_pickle=False))
        return np.loadtxt(p, delimiter=",", ndmin=2, dtype=np.float64)
    except (ValueError, OSError) as e:
        raise ArgumentError(f"{path}: not a readable {p.suffix} file ({e})") from None


def row_layout(model: Model) -> str:
    """How one flattened window is laid out, in words (CSV rows, ``(N, values)`` arrays)."""
    shape = model.sample_shape
    if model.layout == "NT":
        return f"{'T' if shape[0] < 0 else shape[0]} time steps"
    c = shape[0] if model.layout == "NCT" else shape[1]
    t = shape[1] if model.layout == "NCT" else shape[0]
    steps = "T" if t < 0 else str(t)
    if model.layout == "NCT":
        how = (f"channel-major: the {steps} values of channel 0, then those of channel 1, ..."
               if c > 1 else "the time steps in order")
    else:
        how = (f"time-major (the model is channels-last): the {c} channel values of step 0, "
               "then those of step 1, ..." if c > 1 else "the time steps in order")
    total = "" if t < 0 else f" = {c * t} values"
    return f"{c} channel{'s' if c > 1 else ''} x {steps} steps{total}, {how}"


def windows(model: Model, data: ArrayData, path: str | os.PathLike) -> np.ndarray:
    """Windows in the model's layout, float32, from what :func:`read_array` read from ``path``.
    A 2-D array (a CSV file: one window per row) holds each window flattened in the model's
    layout; see :func:`row_layout`.

    Raises
    ------
    ArgumentError
        An ``.npz`` file without an array ``X``, or values that are not numbers.
    ShapeError
        The windows do not have the shape the model expects; the message gives both.
    """
    x = data["X"] if isinstance(data, dict) and "X" in data else data
    if isinstance(x, dict):
        raise ArgumentError(f"{path}: an .npz file needs an array named 'X'")
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise ArgumentError(f"{path}: the windows have dtype {x.dtype}; expected numbers")
    shape = model.sample_shape
    if x.ndim == 2 and len(shape) == 2:
        c = shape[0] if model.layout == "NCT" else shape[1]
        fixed = int(np.prod(shape)) if min(shape) > 0 else None
        if (fixed is not None and x.shape[1] != fixed) or x.shape[1] % c:
            raise ShapeError(
                f"{path}: a row has {x.shape[1]} values; each row must hold one window of "
                f"{row_layout(model)}")
        t = x.shape[1] // c
        x = x.reshape(len(x), c, t) if model.layout == "NCT" else x.reshape(len(x), t, c)
    if x.ndim != len(shape) + 1:
        raise ShapeError(f"{path}: windows of shape {_shape_text(x.shape[1:])}; the model expects "
                         f"{_shape_text(shape)} per window" + (" (T: any length)" if min(shape) < 0 else ""))
    return x.astype(np.float32)


def targets(data: ArrayData) -> np.ndarray | None:
    """The targets an ``.npz`` file carries beside its windows (its array ``y``, flattened), or
    None."""
    if isinstance(data, dict) and "y" in data:
        return np.asarray(data["y"]).reshape(-1)
    return None


def read_windows(model: Model, path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """The windows of a file in the model's layout, and the targets an ``.npz`` file gives
    with them (None without): :func:`read_array`, :func:`windows` and :func:`targets` in one.

    Examples
    --------
    >>> import tempfile, numpy as np, tsviz_native as tsv
    >>> from tsviz_native import io, models
    >>> model = tsv.load(models.path("forecaster"))
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     np.savetxt(folder + "/w.csv", np.zeros((3, 100)), delimiter=",")  # 3 windows of 2 x 50
    ...     X, y = io.read_windows(model, folder + "/w.csv")
    >>> X.shape, y
    ((3, 2, 50), None)
    """
    data = read_array(path)
    return windows(model, data, path), targets(data)
