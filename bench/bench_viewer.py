"""Viewer frame time and sample-switch latency under software GL (OSMesa/llvmpipe, or EGL).

    python3 bench/bench_viewer.py [--size 1400x850] [--repeats 15]

Rows:
* ``paper net, level N``: the shipped forecaster (the paper's network, 16/32/32/1 filters) on a
  B5M test window; frame = ``canvas.render()`` of the level (draw into an FBO + readback).
* ``FCN, level N``: ``tests/models/fcn_op17.onnx`` (128/256/128/2 filters, 517 plots at level 2)
  on GunPoint test series of 150 points.
* ``1000 plots x 200 points``: the viewer's own geometry path (one batched Line, Mesh bars, Text)
  with 1000 synthetic plots, the issue's budget of 33 ms per frame.
* sample switch = explain the new sample + build the geometry + upload + render one frame: what the
  user waits for after pressing an arrow key (in the window the explain runs in the worker thread,
  so the GUI keeps drawing meanwhile). Budget: 100 ms on the paper's network.
* switch + full analysis: the same switch, plus the saliency of every filter of every layer of
  the new window before the frame is drawn (the speed issue's goal for the FCN: 30 ms). The
  two kinds of switch take turns, each to a window of its own.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm: shaders compiled, buffers allocated
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def fcn_scene():
    """The FCN rows' model and windows: ``tests/models/fcn_op17.onnx``, GunPoint test series."""
    import tsviz_native as tsv

    return (tsv.load(ROOT / "tests" / "models" / "fcn_op17.onnx"),
            tsv.datasets.ucr("GunPoint").X_test.astype(np.float32))


def one_switch(v, sample: int, full: bool = False) -> tuple[float, float]:
    """ms of one sample switch, uncached: (explain + build + upload, the whole switch with
    the render). ``full``: the switch also computes a full analysis of the new window (the
    saliency of every filter of every layer, from the explanation the viewer just made)
    before the render, as a viewer that shows any filter's saliency at once would."""
    v._frames.clear()
    t = time.perf_counter()
    v.state.set(sample=int(sample))
    if full:
        ex = v._frame.ex
        for name in ex.layer_names:
            ex.saliency(name)
    t1 = time.perf_counter()
    v.canvas.render()
    return 1000 * (t1 - t), 1000 * (time.perf_counter() - t)


def _switch_ms(v, samples, repeats: int) -> tuple[float, float, float]:
    """Median ms of a sample switch (explain + build + upload + render), of explain + build +
    upload alone, and of the switch with a full analysis of the new window: ``2 * repeats``
    windows, the two kinds of switch in turn (each to a window other than the one shown)."""
    plain, full = [], []
    for a, b in zip(samples[:2 * repeats:2], samples[1:2 * repeats:2]):
        plain.append(one_switch(v, a))
        full.append(one_switch(v, b, full=True))
    return (statistics.median(t for _, t in plain), statistics.median(e for e, _ in plain),
            statistics.median(t for _, t in full))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1400x850")
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))

    import tsviz_native as tsv
    from tsviz_native import models
    from tsviz_native.viewer import backend

    name = backend.use(headless=True)
    from vispy import gloo

    from tsviz_native.viewer import geometry, palette
    from tsviz_native.viewer.app import Viewer

    rows = []
    model = tsv.load(models.path("forecaster"))
    X, y, _ = models.forecaster_windows("test")
    v = Viewer(model, X, y, sample=100, size=size, show=False, threaded=False)
    info = gloo.gl.glGetParameter(gloo.gl.GL_RENDERER)
    for level in (1, 2, 3, 4):
        v.state.set(level=level)
        n = len(v.geometry.plots)
        frame = _median_ms(v.canvas.render, args.repeats)
        sw, ex, full = _switch_ms(v, np.arange(200, 200 + 20 * args.repeats, 10), args.repeats)
        rows.append((f"paper net, level {level}", n, frame, sw, ex, full))
    v.close()

    fcn, Xg = fcn_scene()
    v = Viewer(fcn, Xg, None, sample=0, size=size, show=False, threaded=False)
    for level in (2, 3):
        v.state.set(level=level, layer=v.info.layer_names[1])
        n = len(v.geometry.plots)
        frame = _median_ms(v.canvas.render, args.repeats)
        sw, ex, full = _switch_ms(v, np.arange(1, 1 + 2 * args.repeats), args.repeats)
        rows.append((f"FCN, level {level}", n, frame, sw, ex, full))

    # 1000 plots of 200 points through the viewer's geometry path (level-3 style grid)
    b = geometry.Builder()
    rng = np.random.default_rng(0)
    for k in range(1000):
        r, c = divmod(k, 40)
        b.frame(c * 1.1, r * 1.1, 1.0, 1.0)
        b.plot(np.cumsum(rng.normal(size=200)), c * 1.1, r * 1.1, 1.0, 0.8, 0.0, palette.FILTER_COLOR,
               "filter", "t", "t", k)
        b.quad(c * 1.1, r * 1.1 + 0.85, c * 1.1 + 0.5, r * 1.1 + 0.95, 0.0, palette.bar_color(k / 999))
        b.label(str(k), c * 1.1 + 0.75, r * 1.1 + 0.9, detail=True)
    g = b.geometry(3, False, {}, {}, None, [])
    v.state.set(level=3)
    v.upload(g)
    v._set_camera(reset=True)
    frame = _median_ms(v.canvas.render, args.repeats)
    rows.append(("1000 plots x 200 points", 1000, frame, float("nan"), float("nan"), float("nan")))
    v.close()

    import os

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"backend {name}, {info}, canvas {size[0]}x{size[1]}, median of {args.repeats}, "
          f"{os.cpu_count()} CPUs, load average {load:.1f}")
    print("| scene | plots | frame ms | sample switch ms | of which explain+build+upload ms "
          "| switch + full analysis ms |")
    print("|---|---|---|---|---|---|")
    for label, n, frame, sw, ex, full in rows:
        fmt = lambda x: "-" if x != x else f"{x:.1f}"
        print(f"| {label} | {n} | {frame:.1f} | {fmt(sw)} | {fmt(ex)} | {fmt(full)} |")


if __name__ == "__main__":
    sys.exit(main())
