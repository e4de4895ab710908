"""Data-set statistics of filter importance and input saliency (the paper's observations,
measured over a whole data set instead of one window).

The engine explains one batch at a time; this module only accumulates partial sums, so memory
stays bounded whatever the number of windows, and partial sums from several processes (Dask
workers) combine exactly.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from concurrent.futures import Future, ThreadPoolExecutor
from types import MappingProxyType
from typing import Any

import numpy as np

from tsviz_native._native import ArgumentError

#: A filter's importance counts as negligible for a window when its raw importance is at most
#: this fraction of the largest raw importance in its layer for that window.
NEGLIGIBLE = 1e-3

#: A filter dead on at least this share of the windows is reported as dead on the data set.
DEAD_SHARE = 0.99


@dataclass(frozen=True)
class LayerStats:
    """Importance of each filter of one layer over a data set.

    Attributes
    ----------
    mean, std : (F,) mean and standard deviation of the min-max scaled importance.
    raw_mean : (F,) mean of the raw importance ``sum_i |d a^L / d z^l[f, i]|``.
    dead_share : (F,) share of windows on which the filter is dead (``Explanation.dead``: its
        activation is zero at every position). Dead on at least ``DEAD_SHARE`` (99%) of the
        windows counts as dead on the data set.
    negligible_share : (F,) share of windows where the filter's raw importance is negligible:
        at most ``NEGLIGIBLE`` (0.1%) times the layer's largest, for that window. A dead filter
        is always negligible; a live one can be too (its activations do not reach the target).
    """

    mean: np.ndarray
    std: np.ndarray
    raw_mean: np.ndarray
    dead_share: np.ndarray
    negligible_share: np.ndarray

    @property
    def n_dead(self) -> int:
        """Filters dead on at least ``DEAD_SHARE`` of the windows."""
        return int(np.sum(self.dead_share >= DEAD_SHARE))

    @property
    def n_negligible(self) -> int:
        """Filters of negligible importance on at least ``DEAD_SHARE`` of the windows."""
        return int(np.sum(self.negligible_share >= DEAD_SHARE))


@dataclass(frozen=True)
class DatasetStats:
    """Statistics of an explained data set (see :func:`analyze_dataset`).

    Attributes
    ----------
    n_windows : windows analysed.
    layers : layer name -> :class:`LayerStats`, topological order.
    channel_saliency_share : (C,) share of the output saliency mass ``|d a^L / d x|`` that
        falls on each input channel, over all windows.
    per_class : class index -> DatasetStats of the windows of that class (classifiers only;
        the class is the given label, or the predicted class).
    """

    n_windows: int
    layers: Mapping[str, LayerStats]
    channel_saliency_share: np.ndarray
    per_class: Mapping[int, DatasetStats] = field(default_factory=dict)

    def summary(self, channels: bool = True) -> str:
        """A readable table: per layer, the spread of importance and the dead filters;
        ``channels`` adds the saliency share per input channel."""
        lines = [f"{self.n_windows} windows"]
        if channels:
            share = ", ".join(f"channel {c}: {100 * s:.1f}%" for c, s in enumerate(self.channel_saliency_share))
            lines.append(f"saliency mass by input channel: {share}")
        for name, s in ((n, s) for n, s in self.layers.items() if len(s.mean) > 1):
            lines.append(
                f"  {name}: {len(s.mean)} filters, mean importance {float(np.mean(s.mean)):.3f}; "
                f"on >= {DEAD_SHARE:.0%} of windows {s.n_dead} dead (activation all zero), "
                f"{s.n_negligible} of negligible importance"
            )
        return "\n".join(lines)


class _Sums:
    """Partial sums over windows; ``merge`` combines those of disjoint parts."""

    def __init__(self, layers: dict[str, int], channels: int) -> None:
        self.n = 0
        self.sum = {k: np.zeros(f) for k, f in layers.items()}
        self.sumsq = {k: np.zeros(f) for k, f in layers.items()}
        self.raw = {k: np.zeros(f) for k, f in layers.items()}
        self.dead = {k: np.zeros(f) for k, f in layers.items()}
        self.negligible = {k: np.zeros(f) for k, f in layers.items()}
        self.channel_mass = np.zeros(channels)

    def add(self, ex: Any, rows: np.ndarray | None = None) -> None:
        pick = slice(None) if rows is None else rows
        n = ex.output[pick].shape[0]
        if n == 0:
            return
        self.n += n
        for name in self.sum:
            imp = ex.importance[name][pick].astype(np.float64)
            raw = ex.importance_raw[name][pick].astype(np.float64)
            self.sum[name] += imp.sum(axis=0)
            self.sumsq[name] += (imp * imp).sum(axis=0)
            self.raw[name] += raw.sum(axis=0)
            limit = NEGLIGIBLE * raw.max(axis=1, keepdims=True)
            self.negligible[name] += (raw <= limit).sum(axis=0)
            self.dead[name] += ex.dead[name][pick].sum(axis=0)
        self.channel_mass += ex.output_saliency[pick].astype(np.float64).sum(axis=(0, 2))

    def merge(self, other: _Sums) -> _Sums:
        self.n += other.n
        for name in self.sum:
            self.sum[name] += other.sum[name]
            self.sumsq[name] += other.sumsq[name]
            self.raw[name] += other.raw[name]
            self.dead[name] += other.dead[name]
            self.negligible[name] += other.negligible[name]
        self.channel_mass += other.channel_mass
        return self

    def result(self, per_class: Mapping[int, DatasetStats] | None = None) -> DatasetStats:
        n = max(self.n, 1)
        layers = {}
        for name in self.sum:
            mean = self.sum[name] / n
            var = np.maximum(self.sumsq[name] / n - mean * mean, 0.0)
            layers[name] = LayerStats(mean, np.sqrt(var), self.raw[name] / n, self.dead[name] / n,
                                      self.negligible[name] / n)
        total = self.channel_mass.sum()
        share = self.channel_mass / total if total > 0 else np.zeros_like(self.channel_mass)
        return DatasetStats(self.n, MappingProxyType(layers), share, MappingProxyType(dict(per_class or {})))


def _block_sums(model: Any, x: np.ndarray, labels: np.ndarray | None, target: Any, classes: int) -> dict[int, _Sums]:
    """Sums of one block of windows: key -1 for all windows, k >= 0 for class k."""
    ex = model.explain(x, target=target)
    layers = {name: ex.importance[name].shape[1] for name in ex.layer_names}
    out = {-1: _Sums(layers, ex.output_saliency.shape[1])}
    out[-1].add(ex)
    if classes > 1:
        cls = ex.output.argmax(axis=1) if labels is None else labels
        for k in range(classes):
            s = _Sums(layers, ex.output_saliency.shape[1])
            s.add(ex, np.flatnonzero(cls == k))
            out[k] = s
    return out


def _merge(a: dict[int, _Sums], b: dict[int, _Sums]) -> dict[int, _Sums]:
    for k, s in b.items():
        if k in a:
            a[k].merge(s)
        else:
            a[k] = s
    return a


def _finish(sums: dict[int, _Sums]) -> DatasetStats:
    per_class = {k: s.result() for k, s in sorted(sums.items()) if k >= 0}
    return sums[-1].result(per_class)


def analyze_dataset(
    model: Any,
    X: Any,
    batch_size: int = 1024,
    target: int | None = None,
    labels: Sequence[int] | np.ndarray | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> DatasetStats:
    """Explain every window of a data set and summarise per filter and per input channel.

    Parameters
    ----------
    model : tsviz_native.Model
    X : array_like or dask.array.Array
        Windows ``(N, ...)`` in the model's layout. A numpy array (or anything indexable
        along its first axis, e.g. a memory map) is streamed in batches; a Dask array is
        reduced by Dask, block by block on its workers, and the partial sums combined (the
        ``dask`` extra: ``pip install 'tsviz-native[dask]'``).
    batch_size : windows per engine call (numpy input); memory is bounded by one batch.
    target : the output unit explained (default: the predicted class, or unit 0).
    labels : (N,) class labels, for per-class statistics of a classifier (default: the
        predicted class).
    progress : draw a progress bar on stderr.
    workers : batches explained at once on threads (the engine releases the GIL); default
        the number of CPUs, at most 4. Memory is bounded by ``workers`` batches.

    Returns
    -------
    DatasetStats
    """
    if batch_size < 1:
        raise ArgumentError(f"batch_size must be >= 1, got {batch_size}")
    if target is not None and not isinstance(target, (int, np.integer)):
        raise ArgumentError(f"target must be None or one int, got {target!r}")
    n = len(X)
    if n == 0:
        raise ArgumentError("the data set has no windows")
    lab = None if labels is None else np.asarray(labels)
    if lab is not None and lab.shape != (n,):
        raise ArgumentError(f"labels has shape {lab.shape}; expected ({n},)")
    classes = model.n_outputs
    if _is_dask(X):
        return _analyze_dask(model, X, target, lab, classes)

    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    if workers < 1:
        raise ArgumentError(f"workers must be >= 1, got {workers}")

    def block(start: int) -> dict[int, _Sums]:
        stop = min(n, start + batch_size)
        x = np.asarray(X[start:stop])
        return _block_sums(model, x, None if lab is None else lab[start:stop], target, classes)

    sums: dict[int, _Sums] = {}
    bar = _progress(n, progress)
    starts = list(range(0, n, batch_size))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        # At most `workers` batches in flight, merged in order: the same sums as one thread.
        pending: list[tuple[int, Future]] = []
        for start in starts:
            pending.append((start, pool.submit(block, start)))
            if len(pending) >= workers:
                s0, fut = pending.pop(0)
                sums = _merge(sums, fut.result()) if sums else fut.result()
                bar.update(min(n, s0 + batch_size) - s0)
        for s0, fut in pending:
            sums = _merge(sums, fut.result()) if sums else fut.result()
            bar.update(min(n, s0 + batch_size) - s0)
    bar.close()
    return _finish(sums)


def _is_dask(X: Any) -> bool:
    mod = type(X).__module__
    return mod.startswith("dask.")


def _analyze_dask(model: Any, X: Any, target: Any, labels: np.ndarray | None, classes: int) -> DatasetStats:
    import dask
    import dask.array as da

    if X.ndim < 2:
        raise ArgumentError(f"a Dask array of windows needs shape (N, ...), got {X.shape}")
    X = X.rechunk({i: -1 for i in range(1, X.ndim)})
    lab = None if labels is None else da.from_array(labels, chunks=(X.chunks[0],))
    blocks = X.to_delayed().ravel()
    lab_blocks = [None] * len(blocks) if lab is None else lab.to_delayed().ravel()
    data = model.to_bytes()
    parts = [dask.delayed(_remote_block_sums)(data, b, lb, target, classes) for b, lb in zip(blocks, lab_blocks)]
    total = dask.delayed(_reduce_parts)(parts)
    return _finish(total.compute())


def _reduce_parts(parts: list[dict[int, _Sums]]) -> dict[int, _Sums]:
    out: dict[int, _Sums] = {}
    for p in parts:
        out = _merge(out, p) if out else p
    return out


_WORKER_MODELS: dict[int, Any] = {}


def _remote_block_sums(data: bytes, block: np.ndarray, labels: np.ndarray | None, target: Any, classes: int) -> dict[int, _Sums]:
    """Runs on a Dask worker: the model travels as its ONNX bytes, loaded once per process."""
    from tsviz_native.model import load

    key = hash(data)
    model = _WORKER_MODELS.get(key)
    if model is None:
        model = _WORKER_MODELS[key] = load(data)
    return _block_sums(model, np.asarray(block), labels, target, classes)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class _LineBar:
    """Progress where stderr is not a terminal (a log file, a pipe): one line when done,
    instead of a bar redrawn with carriage returns that would run into the next line."""

    def __init__(self, total: int, done_text: str = "explained {done} of {total} windows") -> None:
        import time

        self.total, self.done, self.start = total, 0, time.perf_counter()
        self.text, self.postfix = done_text, ""

    def update(self, n: int) -> None:
        self.done += n

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def close(self) -> None:
        import time

        print(self.text.format(done=self.done, total=self.total)
              + f" in {time.perf_counter() - self.start:.1f} s" + (f" ({self.postfix})" if self.postfix else ""),
              file=sys.stderr)


def _progress(total: int, enabled: bool, desc: str = "explaining", unit: str = "win",
              done_text: str = "explained {done} of {total} windows") -> Any:
    if not enabled:
        return _NoBar()
    if not sys.stderr.isatty():
        return _LineBar(total, done_text)
    from tqdm.auto import tqdm

    return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, leave=False)
