"""Geometry of the four levels, as plain numpy arrays (no vispy, no GL).

:func:`build` turns one explained sample (a :class:`Frame`) and the :class:`ViewerState` into a
:class:`Geometry`: every plot of the level in one line array with a ``connect`` array, every bar,
box and strip in one triangle mesh, every highlighted point in one marker array, every label in one
list of strings. The vispy layer (:mod:`tsviz_native.viewer.app`) only uploads these arrays, into
one visual each, and picks clicks from :attr:`Geometry.plots` without asking GL.

Coordinates are ``(x, y, depth)``: ``y`` up; ``depth`` grows away from the viewer (level 2 stacks
filters in depth). Levels 1 and 2 are 3-D, levels 3 and 4 are flat (depth 0).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .state import ViewerState

# Colours (RGBA, 0..1): distinct and known, so that tests find them by colour.
BACKGROUND = (0.07, 0.07, 0.09, 1.0)
INPUT_COLOR = (0.30, 0.80, 1.00, 1.0)
FILTER_COLOR = (0.85, 0.88, 0.92, 1.0)
SELECTED_COLOR = (1.00, 1.00, 1.00, 1.0)
OUTPUT_COLOR = (0.40, 1.00, 0.50, 1.0)
OUTPUT_DIM_COLOR = (0.16, 0.42, 0.22, 1.0)  # the output units that are not explained
TRUTH_COLOR = (1.00, 0.55, 0.85, 1.0)
FRAME_COLOR = (0.28, 0.28, 0.33, 1.0)
TEXT_COLOR = (0.92, 0.92, 0.92, 1.0)
SALIENCY_COLOR = (0.85, 0.20, 0.95, 1.0)
HIGHLIGHT_CORE = (1.00, 0.95, 0.20, 1.0)
HIGHLIGHT_GLOW = (1.00, 0.75, 0.10, 0.35)
KIND_COLORS = {
    "conv": (0.25, 0.50, 0.95, 1.0),
    "pool": (0.20, 0.78, 0.40, 1.0),
    "dense": (0.95, 0.60, 0.15, 1.0),
}
KIND_NAMES = {"conv": "convolution", "pool": "pooling", "dense": "dense"}
# Cluster colours: distinct hues, none of them red (red means importance).
CLUSTER_PALETTE = (
    (0.12, 0.47, 0.71), (1.00, 0.50, 0.05), (0.17, 0.63, 0.17), (0.58, 0.40, 0.74),
    (0.55, 0.34, 0.29), (0.89, 0.47, 0.76), (0.74, 0.74, 0.13), (0.09, 0.75, 0.81),
    (0.00, 0.55, 0.45), (0.68, 0.78, 0.91), (0.60, 0.87, 0.54), (1.00, 0.73, 0.47),
)


def bar_color(importance: np.ndarray | float) -> np.ndarray:
    """The red bar of a filter: its red grows with importance (0..1); green and blue stay low."""
    imp = np.clip(np.asarray(importance, dtype=np.float64), 0.0, 1.0)
    out = np.empty(imp.shape + (4,), dtype=np.float32)
    out[..., 0] = 0.22 + 0.78 * imp
    out[..., 1] = 0.03
    out[..., 2] = 0.03
    out[..., 3] = 1.0
    return out


def cluster_color(label: int) -> tuple[float, float, float, float]:
    """A distinct, non-red colour per cluster number."""
    if label < len(CLUSTER_PALETTE):
        r, g, b = CLUSTER_PALETTE[label]
    else:  # golden-ratio hues, kept away from red
        h = (0.1 + label * 0.618034) % 1.0 * 0.8 + 0.1
        r, g, b = _hsv(h, 0.65, 0.9)
    return (r, g, b, 1.0)


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]


# ----------------------------------------------------------------------------- model and sample
@dataclass(frozen=True)
class Block:
    """One layer of the level-1 overview: a row of the model's summary."""

    kind: str  # conv, pool, dense
    op: str
    tensor: str


_ROW = re.compile(r"^\s*(\d+)\s+(\S+)\s+(\S+)\s+\(([^)]*)\)")


@dataclass(frozen=True)
class ModelInfo:
    """What the viewer shows of a model, read from its public API once."""

    name: str
    input_name: str
    output_name: str
    layers: tuple[Any, ...]  # tsviz_native.Layer
    blocks: tuple[Block, ...]
    overview: tuple[str, ...]
    layout: str
    n_outputs: int
    scaling: dict[str, float] | None = None  # the model record's {mean, std}: y * std + mean

    @classmethod
    def from_model(cls, model: Any, scaling: dict[str, float] | None = None) -> ModelInfo:
        summary = model.summary()
        blocks, overview = [], []
        for line in summary.splitlines():
            if line.startswith(("model", "input", "output", "layers")):
                overview.append(" ".join(line.split()))
            m = _ROW.match(line)
            if m:
                op, tensor = m.group(2), m.group(3)
                kind = ("conv" if op.startswith("Conv") else "pool" if "Pool" in op
                        else "dense" if op in ("Dense", "Gemm", "MatMul") else None)
                if kind:
                    blocks.append(Block(kind, op, tensor))
        if not blocks:  # a summary this parser does not know: the filter layers alone
            blocks = [Block("dense" if l.op == "dense" else "conv", l.onnx_op, l.name)
                      for l in model.layers]
        name = str(model.source).replace("\\", "/").rsplit("/", 1)[-1]
        return cls(name, model.input_name, model.output_name, tuple(model.layers),
                   tuple(blocks), tuple(overview), model.layout, int(model.n_outputs), scaling)

    @property
    def layer_names(self) -> tuple[str, ...]:
        return tuple(l.name for l in self.layers)

    def label(self, tensor: str) -> str:
        """A layer's display label (``"conv 2 · k=5 · 32 filters"``); the output is ``"output"``."""
        for layer in self.layers:
            if layer.name == tensor:
                return layer.label
        return "output" if tensor == self.output_name else tensor

    @property
    def forecasts_input(self) -> bool:
        """A forecaster whose model record gives the scaling: its output is the next value of
        input channel 0, on the same (scaled) axis, so it is drawn right after that channel."""
        return self.n_outputs == 1 and self.scaling is not None

    def original(self, value: float) -> float:
        """An output (or channel-0) value on the original scale, ``y * std + mean``."""
        sc = self.scaling or {"mean": 0.0, "std": 1.0}
        return float(value) * sc["std"] + sc["mean"]

    def channels_first(self, x: np.ndarray) -> np.ndarray:
        """One sample in the model's layout as ``(C, T)``."""
        x = np.asarray(x, dtype=np.float32)
        if self.layout == "NTC":
            return x.T
        if self.layout == "NT":
            return x[np.newaxis]
        return x


@dataclass
class Frame:
    """One explained sample: what the worker computes and the GUI swaps in."""

    sample: int
    x: np.ndarray  # (C, T) channels-first
    ex: Any  # tsviz_native.Explanation of this one sample
    truth: Any = None
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # tensor -> (C, L)
    clusters: dict[str, np.ndarray] = field(default_factory=dict)  # layer -> labels (F,)
    _saliency: dict[tuple[str, int], np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def compute(cls, model: Any, info: ModelInfo, X: np.ndarray, sample: int, truth: Any = None,
                cluster_layers: tuple[str, ...] = ()) -> Frame:
        ex = model.explain(X[sample : sample + 1])
        shapes = {k: v.shape for k, v in ex.trace(info.output_name, 0, 0).items()}
        frame = cls(sample, info.channels_first(X[sample]), ex, truth, shapes)
        frame.add_clusters(cluster_layers)
        return frame

    def add_clusters(self, layers: tuple[str, ...] | list[str]) -> None:
        for name in layers:
            if name not in self.clusters and self.ex.activations[name].shape[2] > 1:
                self.clusters[name] = np.asarray(self.ex.clusters(name, sample=0).labels[0])

    def saliency(self, layer: str, filt: int) -> np.ndarray:
        """Input saliency ``(C, T)`` of one filter (computed on first use, then cached)."""
        key = (layer, int(filt))
        if key not in self._saliency:
            self._saliency[key] = np.asarray(self.ex.saliency(layer, int(filt))[0])
        return self._saliency[key]

    @property
    def prediction(self) -> np.ndarray:
        return np.asarray(self.ex.output[0])

    def importance(self, layer: str) -> np.ndarray:
        return np.asarray(self.ex.importance[layer][0])

    def activations(self, layer: str) -> np.ndarray:
        return np.asarray(self.ex.activations[layer][0])


# ----------------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class Plot:
    """One line plot: its points are ``a[index, 0..length-1]`` of ``tensor`` (a trace key)."""

    kind: str  # "input", "filter", "output"
    tensor: str
    layer: str | None
    index: int
    start: int  # first vertex in Geometry.line_pos
    length: int


@dataclass(frozen=True)
class Bar:
    """An importance (or cluster) bar as drawn: for tests and picking."""

    layer: str
    filter: int
    value: float  # importance, or the cluster number
    center: tuple[float, float, float]
    color: tuple[float, float, float, float]


@dataclass
class Geometry:
    level: int
    three_d: bool
    line_pos: np.ndarray
    line_connect: np.ndarray
    line_color: np.ndarray
    mesh_pos: np.ndarray
    mesh_faces: np.ndarray
    mesh_color: np.ndarray
    marker_pos: np.ndarray
    marker_color: np.ndarray
    marker_size: np.ndarray
    text: list[str]
    text_pos: np.ndarray
    text_color: np.ndarray
    text_detail: np.ndarray  # (len(text),) bool: a per-plot label, left out when plots are many
    plots: list[Plot]
    bars: list[Bar]
    cluster_bars: list[Bar]
    drawn: dict[str, list[int]]  # layer -> filters drawn, in drawing order (front/first first)
    columns: dict[str, tuple[float, float]]  # layer -> x range of its column (level 2 scrolling)
    bounds: tuple[tuple[float, float], tuple[float, float], tuple[float, float]]
    highlighted: dict[str, np.ndarray]  # tensor -> (C, L) mask that was drawn
    legend: list[str]

    @property
    def n_plots(self) -> int:
        return len(self.plots)

    def plot_points(self, plot: Plot) -> np.ndarray:
        return self.line_pos[plot.start : plot.start + plot.length]


#: Above this many plots a level draws each plot's min/max envelope instead of every point.
LOD_PLOTS = 250
#: Buckets of the envelope: at most 2 * LOD_BUCKETS + 2 points per plot.
LOD_BUCKETS = 32


def draw_text(g: Geometry) -> list[int]:
    """Indices of the labels to draw: per-plot labels only while the plots are few enough to
    read them (a thousand labels also cost more than the plots on software GL)."""
    if len(g.plots) <= LOD_PLOTS:
        return list(range(len(g.text)))
    return [i for i in range(len(g.text)) if not g.text_detail[i]]


def draw_connect(g: Geometry) -> np.ndarray:
    """The line segments to draw. With many plots on screen each plot is a few pixels wide, so
    its min/max envelope over LOD_BUCKETS buckets looks the same and costs a fraction of the
    rasterisation on software GL; the vertices stay as they are (picking and highlighting use
    every point), only the connect array skips the points between."""
    if len(g.plots) <= LOD_PLOTS:
        return g.line_connect
    inside = np.zeros(len(g.line_pos), dtype=bool)
    # Plots of one length are done together: one argmin and one argmax per bucket for all of
    # them (a Python loop per plot cost more than the drawing on a sample switch).
    by_length: dict[int, list[int]] = {}
    for p in g.plots:
        if p.length > 2 * LOD_BUCKETS + 2:
            by_length.setdefault(p.length, []).append(p.start)
    parts = []
    for length, first in by_length.items():
        starts = np.asarray(first, dtype=np.int64)[:, None]
        rows = starts + np.arange(length)
        inside[rows[:, :-1].ravel()] = True
        y = g.line_pos[rows, 1]
        edges = np.linspace(0, length, LOD_BUCKETS + 1).astype(np.int64)
        cols = [np.zeros(len(rows), np.int64), np.full(len(rows), length - 1, np.int64)]
        for a, b in zip(edges[:-1], edges[1:]):
            if b > a:
                cols.append(a + np.argmin(y[:, a:b], axis=1))
                cols.append(a + np.argmax(y[:, a:b], axis=1))
        keep = np.sort(np.stack(cols, axis=1), axis=1)
        nxt = keep[:, 1:] > keep[:, :-1]  # repeated points join nothing
        parts.append(np.stack([(starts + keep[:, :-1])[nxt], (starts + keep[:, 1:])[nxt]], axis=1))
    others = g.line_connect[~inside[g.line_connect[:, 0]]]
    return np.concatenate([others] + parts).astype(np.uint32) if parts else g.line_connect


class _Builder:
    def __init__(self) -> None:
        self.pos: list[np.ndarray] = []
        self.conn: list[np.ndarray] = []
        self.col: list[np.ndarray] = []
        self.nv = 0
        self.mpos: list[np.ndarray] = []
        self.mfaces: list[np.ndarray] = []
        self.mcol: list[np.ndarray] = []
        self.nm = 0
        self.text: list[str] = []
        self.tdetail: list[bool] = []
        self.tpos: list[tuple[float, float, float]] = []
        self.tcol: list[tuple[float, ...]] = []
        self.plots: list[Plot] = []
        self.bars: list[Bar] = []
        self.cluster_bars: list[Bar] = []
        self.text_extent = 0.0  # half-width of the widest label, in scene units (for bounds)

    def polyline(self, pts: np.ndarray, color: Any, connect: bool = True) -> int:
        """Adds vertices, joined by segments unless ``connect`` is False (points that are
        only picked and highlighted, such as the tops of the output bars)."""
        n = len(pts)
        start = self.nv
        self.pos.append(np.asarray(pts, dtype=np.float32))
        idx = np.arange(start, start + n - 1, dtype=np.uint32)
        self.conn.append(np.stack([idx, idx + 1], axis=1) if connect else np.zeros((0, 2), np.uint32))
        c = np.asarray(color, dtype=np.float32)
        self.col.append(np.broadcast_to(c, (n, 4)) if c.ndim == 1 else c)
        self.nv += n
        return start

    def plot(self, values: np.ndarray, x0: float, y0: float, w: float, h: float, d: float,
             color: Any, kind: str, tensor: str, layer: str | None, index: int,
             lo: float | None = None, hi: float | None = None, connect: bool = True) -> Plot:
        v = np.asarray(values, dtype=np.float64)
        length = len(v)
        lo = float(v.min()) if lo is None else lo
        hi = float(v.max()) if hi is None else hi
        span = hi - lo
        ys = (v - lo) / span if span > 0 else np.full(length, 0.5)
        if length == 1:  # one position (a dense unit): a short flat segment, both at position 0
            xs = np.array([x0 + 0.3 * w, x0 + 0.7 * w])
            ys = np.repeat(ys, 2)
        else:
            xs = x0 + w * np.arange(length) / (length - 1)
        pts = np.stack([xs, y0 + h * ys, np.full(len(xs), d)], axis=1)
        start = self.polyline(pts, color, connect)
        p = Plot(kind, tensor, layer, int(index), start, length)
        self.plots.append(p)
        return p

    def frame(self, x0: float, y0: float, w: float, h: float, d: float = 0.0) -> None:
        self.polyline(np.array([[x0, y0, d], [x0 + w, y0, d], [x0 + w, y0 + h, d],
                                [x0, y0 + h, d], [x0, y0, d]]), FRAME_COLOR)

    def quad(self, x0: float, y0: float, x1: float, y1: float, d: float, color: Any) -> None:
        self.mpos.append(np.array([[x0, y0, d], [x1, y0, d], [x1, y1, d], [x0, y1, d]], np.float32))
        self.mfaces.append(np.array([[0, 1, 2], [0, 2, 3]], np.uint32) + self.nm)
        self.mcol.append(np.tile(np.asarray(color, np.float32), (4, 1)))
        self.nm += 4

    def box(self, cx: float, cy: float, cd: float, w: float, h: float, depth: float,
            color: Any) -> None:
        """A cuboid; each face a little darker than the last so that its edges read in 3-D."""
        x0, x1, y0, y1 = cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2
        d0, d1 = cd - depth / 2, cd + depth / 2
        faces = [  # front, top, right, left, bottom, back
            ([x0, y0, d0], [x1, y0, d0], [x1, y1, d0], [x0, y1, d0], 1.0),
            ([x0, y1, d0], [x1, y1, d0], [x1, y1, d1], [x0, y1, d1], 0.8),
            ([x1, y0, d0], [x1, y0, d1], [x1, y1, d1], [x1, y1, d0], 0.65),
            ([x0, y0, d0], [x0, y0, d1], [x0, y1, d1], [x0, y1, d0], 0.65),
            ([x0, y0, d0], [x1, y0, d0], [x1, y0, d1], [x0, y0, d1], 0.5),
            ([x0, y0, d1], [x1, y0, d1], [x1, y1, d1], [x0, y1, d1], 0.5),
        ]
        c = np.asarray(color, np.float32)
        for *corners, shade in faces:
            self.mpos.append(np.array(corners, np.float32))
            self.mfaces.append(np.array([[0, 1, 2], [0, 2, 3]], np.uint32) + self.nm)
            self.mcol.append(np.tile(np.r_[c[:3] * shade, c[3]], (4, 1)).astype(np.float32))
            self.nm += 4

    def label(self, s: str, x: float, y: float, d: float = 0.0, color: Any = TEXT_COLOR,
              detail: bool = False) -> None:
        self.text.append(s)
        self.tpos.append((x, y, d))
        self.tcol.append(tuple(color))
        self.tdetail.append(detail)

    def geometry(self, level: int, three_d: bool, drawn: dict[str, list[int]],
                 columns: dict[str, tuple[float, float]], masks: dict[str, np.ndarray] | None,
                 legend: list[str]) -> Geometry:
        pos = np.concatenate(self.pos) if self.pos else np.zeros((0, 3), np.float32)
        conn = np.concatenate(self.conn) if self.conn else np.zeros((0, 2), np.uint32)
        col = np.concatenate(self.col).astype(np.float32) if self.col else np.zeros((0, 4), np.float32)
        mp = np.concatenate(self.mpos) if self.mpos else np.zeros((0, 3), np.float32)
        mf = np.concatenate(self.mfaces) if self.mfaces else np.zeros((0, 3), np.uint32)
        mc = np.concatenate(self.mcol) if self.mcol else np.zeros((0, 4), np.float32)
        mk_pos, mk_col, mk_size, shown = _markers(pos, self.plots, masks)
        allp = np.concatenate([pos, mp]) if len(mp) else pos
        if self.text_extent and self.tpos:
            tp = np.asarray(self.tpos, np.float32)
            allp = np.concatenate([allp, tp + [self.text_extent, 0, 0], tp - [self.text_extent, 0, 0]])
        if len(allp):
            lo, hi = allp.min(axis=0), allp.max(axis=0)
        else:
            lo, hi = np.zeros(3), np.ones(3)
        bounds = tuple((float(a), float(b)) for a, b in zip(lo, hi))
        return Geometry(level, three_d, pos, conn, col, mp, mf, mc, mk_pos, mk_col, mk_size,
                        self.text, np.asarray(self.tpos, np.float32).reshape(-1, 3),
                        np.asarray(self.tcol, np.float32).reshape(-1, 4),
                        np.asarray(self.tdetail, dtype=bool), self.plots, self.bars,
                        self.cluster_bars, drawn, columns, bounds, shown, legend)


MARKER_SIZE = 9.0
GLOW_SIZE = 17.0


def _markers(pos: np.ndarray, plots: list[Plot], masks: dict[str, np.ndarray] | None):
    """Two markers per traced point that is drawn: a wide translucent glow, a bright core."""
    shown: dict[str, np.ndarray] = {}
    pts = []
    for p in plots:
        if not masks or p.tensor not in masks:
            continue
        m = masks[p.tensor]
        if p.index >= m.shape[0] or m.shape[1] != p.length:
            continue
        sel = np.flatnonzero(m[p.index])
        if p.tensor not in shown:
            shown[p.tensor] = np.zeros_like(m, dtype=bool)
        shown[p.tensor][p.index, sel] = True
        pts.append(pos[p.start + sel])
    if not pts:
        z = np.zeros((0, 3), np.float32)
        return z, np.zeros((0, 4), np.float32), np.zeros(0, np.float32), shown
    core = np.concatenate(pts)
    n = len(core)
    mpos = np.concatenate([core, core]).astype(np.float32)
    mcol = np.concatenate([np.tile(HIGHLIGHT_GLOW, (n, 1)), np.tile(HIGHLIGHT_CORE, (n, 1))])
    msize = np.r_[np.full(n, GLOW_SIZE), np.full(n, MARKER_SIZE)]
    return mpos, mcol.astype(np.float32), msize.astype(np.float32), shown


# ----------------------------------------------------------------------------- shared pieces
def filter_order(importance: np.ndarray, keep: np.ndarray, sort: str) -> list[int]:
    """Kept filters sorted by importance (``descending``: most important first); ties by index."""
    idx = np.flatnonzero(keep)
    key = importance[idx]
    order = np.lexsort((idx, -key if sort == "descending" else key))
    return [int(i) for i in idx[order]]


def selected_filter(frame: Frame, state: ViewerState, info: ModelInfo, layer: str) -> int:
    """The filter whose saliency the input shows: the user's choice, else the front one."""
    if state.filter is not None and state.layer == layer:
        return int(state.filter)
    imp = frame.importance(layer)
    keep = frame.ex.keep(layer, state.percentile)[0]
    order = filter_order(imp, keep, state.sort)
    if not order:
        return int(np.argmax(imp))
    return order[min(state.scroll.get(layer, 0), len(order) - 1)]


def _input_panel(b: _Builder, frame: Frame, info: ModelInfo, x0: float, y0: float, w: float,
                 h: float, d: float = 0.0, saliency: np.ndarray | None = None,
                 caption: str = "input") -> None:
    """One plot per input channel, stacked; a saliency strip under each when given. A
    forecaster with a model record (:attr:`ModelInfo.forecasts_input`) gets its forecast drawn
    as the next point after channel 0, on that channel's axis, beside the truth."""
    C, T = frame.x.shape
    ch = h / C
    forecast = info.forecasts_input
    step = w / T if forecast else 0.0  # one more time step after the window, for the forecast
    for c in range(C):
        cy = y0 + h - (c + 1) * ch
        strip = 0.18 * ch if saliency is not None else 0.0
        if saliency is not None:
            s = saliency[c]
            s = s / s.max() if s.max() > 0 else s
            xs = x0 + (w - step) * np.arange(T + 1) / T
            for t in range(T):
                col = np.array(BACKGROUND) + s[t] * (np.array(SALIENCY_COLOR) - np.array(BACKGROUND))
                col[3] = 1.0
                b.quad(xs[t], cy + 0.04 * ch, xs[t + 1], cy + 0.04 * ch + strip, d, col)
        b.frame(x0, cy + 0.04 * ch + strip, w, ch * 0.9 - strip, d)
        py, ph = cy + 0.08 * ch + strip, ch * 0.82 - strip
        if forecast and c == 0:
            # short lines, stacked above the caption, so that they stay within the panel
            for i, line in enumerate(reversed(_forecast(b, frame, info, x0, py, w - step, ph, step, d))):
                b.label(line, x0 + w / 2, y0 + h + 0.26 + 0.17 * i, d, color=OUTPUT_COLOR)
        else:
            b.plot(frame.x[c], x0, py, w - step, ph, d, INPUT_COLOR, "input", info.input_name, None, c)
    b.label(caption, x0 + w / 2, y0 + h + 0.08, d)


def _forecast(b: _Builder, frame: Frame, info: ModelInfo, x0: float, y0: float, w: float, h: float,
              step: float, d: float) -> list[str]:
    """Channel 0 of the input, then the forecast one step after it (joined by a line) and the
    truth beside it, all on one axis; returns the label's lines, values on the original scale."""
    x = frame.x[0]
    pred = float(frame.prediction[0])
    values = [float(x.min()), float(x.max()), pred]
    if frame.truth is not None:
        values.append(float(frame.truth))
    lo, hi = min(values), max(values)
    p = b.plot(x, x0, y0, w, h, d, INPUT_COLOR, "input", info.input_name, None, 0, lo=lo, hi=hi)
    last = b.pos[-1][-1] if p.length else np.array([x0 + w, y0, d])
    span = (hi - lo) or 1.0
    fy = y0 + h * (pred - lo) / span
    fx = x0 + w + step
    b.polyline(np.array([last, [fx, fy, d]]), OUTPUT_COLOR)
    mark = 0.045 * h  # half-size of the forecast's and the truth's squares
    b.quad(fx - mark, fy - mark, fx + mark, fy + mark, d, OUTPUT_COLOR)
    # the output unit itself: picked and highlighted as the output
    b.plot(np.array([pred]), fx - 1.25 * step, y0, 2.5 * step, h, d, OUTPUT_COLOR, "output",
           info.output_name, None, 0, lo=lo, hi=hi)
    lines = ["next value, original scale:", f"forecast {info.original(pred):.1f} (green)"]
    if frame.truth is not None:
        ty = y0 + h * (float(frame.truth) - lo) / span
        tx = fx + 2.5 * mark
        b.quad(tx - mark, ty - mark, tx + mark, ty + mark, d, TRUTH_COLOR)
        lines.append(f"truth {info.original(float(frame.truth)):.1f} (pink)")
    return lines


def _output_panel(b: _Builder, frame: Frame, info: ModelInfo, x0: float, y0: float, w: float,
                  h: float, d: float = 0.0) -> None:
    """The output as one bar per unit (class), numbered, the explained target marked; the
    bar tops are the output's points (click one to highlight what produced it). A forecaster
    whose output is drawn after its input (:attr:`ModelInfo.forecasts_input`) has no box."""
    if info.forecasts_input:
        return
    y = frame.prediction
    K = len(y)
    target = int(frame.ex.target[0])
    lo, hi = min(0.0, float(y.min())), max(0.0, float(y.max()))
    if np.all((y >= 0) & (y <= 1)) and K > 1:
        hi = 1.0  # probabilities: the full scale
    if hi == lo:
        hi = lo + 1.0
    b.frame(x0, y0, w, h, d)
    inner_y, inner_h = y0 + 0.18 * h, 0.7 * h
    base = inner_y + inner_h * (0.0 - lo) / (hi - lo)
    slot = w / K
    every = max(1, int(math.ceil(K / 12)))  # class numbers stay readable for many classes
    for k in range(K):
        top = inner_y + inner_h * (float(y[k]) - lo) / (hi - lo)
        cx = x0 + (k + 0.5) * slot
        color = OUTPUT_COLOR if k == target else OUTPUT_DIM_COLOR
        b.quad(cx - 0.35 * slot, min(base, top), cx + 0.35 * slot, max(base, top) + 1e-4, d, color)
        b.plot(np.array([float(y[k])]), cx - 0.5 * slot, inner_y, slot, inner_h, d, color, "output",
               info.output_name, None, k, lo=lo, hi=hi, connect=False)
        if k % every == 0 or k == target:
            b.label(str(k), cx, y0 + 0.08 * h, d, TEXT_COLOR if k == target else (0.7, 0.7, 0.75, 1.0))
    kind = "class" if K > 1 else "output"
    b.label(f"explained: {kind} {target} ({_fmt(y[target])})", x0 + w / 2, y0 + h + 0.08, d)
    if frame.truth is not None:
        b.label(f"truth: {_fmt(frame.truth)}", x0 + w / 2, y0 - 0.12, d)


def _fmt(v: Any) -> str:
    try:
        return f"{float(v):.3g}"
    except (TypeError, ValueError):
        return str(v)


def _trace_masks(frame: Frame, state: ViewerState) -> dict[str, np.ndarray] | None:
    hl = state.highlight
    if hl is None:
        return None
    return frame.ex.trace(hl.tensor, hl.filter, hl.position, 0, state.active_only)


# ----------------------------------------------------------------------------- the four levels
def build(frame: Frame, info: ModelInfo, state: ViewerState) -> Geometry:
    """The geometry of ``state.level`` for one explained sample."""
    return (_level1, _level2, _level3, _level4)[state.level - 1](frame, info, state)


def _level1(frame: Frame, info: ModelInfo, state: ViewerState) -> Geometry:
    """The network: input, one box per convolution/pooling/dense layer, output, an overview."""
    b = _Builder()
    _input_panel(b, frame, info, 0.0, 0.0, 2.0, 1.6)
    shapes = [frame.shapes.get(bl.tensor, (0, 0)) for bl in info.blocks]
    cmax = max([s[0] for s in shapes] + [1])
    lmax = max([s[1] if len(s) > 1 else 1 for s in shapes] + [1])
    x = 2.8
    counts: dict[str, int] = {}
    for bl, shp in zip(info.blocks, shapes):
        c = shp[0] if shp else 0
        L = shp[1] if len(shp) > 1 else 1
        h = 0.35 + 1.25 * math.sqrt(c / cmax)
        depth = 0.15 + 1.1 * (L / lmax)
        b.box(x, 0.8, depth / 2, 0.55, h, depth, KIND_COLORS[bl.kind])
        b.label(bl.op, x, 0.8 - h / 2 - 0.15)
        b.label(f"{c}x{L}", x, 0.8 - h / 2 - 0.35)
        counts[bl.kind] = counts.get(bl.kind, 0) + 1
        x += 0.95
    _output_panel(b, frame, info, x + 0.1, 0.3, 1.2, 1.0)
    if info.forecasts_input:
        b.label("output: the forecast,", x + 0.3, 0.9)
        b.label("drawn after the input", x + 0.3, 0.7)
    counted = ", ".join(f"{n} {KIND_NAMES[k]}" for k, n in counts.items())
    b.label(f"{info.name}: {counted}", (x + 1.3) / 2, 2.45)
    for i, line in enumerate(info.overview[1:3]):
        b.label(line, (x + 1.3) / 2, 2.2 - 0.22 * i, color=(0.7, 0.7, 0.75, 1.0))
    legend = [f"{KIND_NAMES[k]}: {n}" for k, n in counts.items()]
    return b.geometry(1, True, {}, {}, _trace_masks(frame, state), legend)


STACK_W = 1.6
STACK_H = 1.5
STACK_DEPTH = 2.5
POP = 0.8


def _level2(frame: Frame, info: ModelInfo, state: ViewerState) -> Geometry:
    """The filters: each layer a stack in depth, with red importance bars; important pop out."""
    b = _Builder()
    sel = state.layer or info.layer_names[0]
    sal = frame.saliency(sel, selected_filter(frame, state, info, sel))
    _input_panel(b, frame, info, 0.0, 0.0, 1.6, 2.0, 0.0, saliency=sal)
    x = 1.6
    drawn: dict[str, list[int]] = {}
    columns: dict[str, tuple[float, float]] = {}
    for layer in info.layer_names:
        imp = frame.importance(layer)
        acts = frame.activations(layer)
        keep = frame.ex.keep(layer, state.percentile)[0]
        order = filter_order(imp, keep, state.sort)
        order = order[min(state.scroll.get(layer, 0), max(len(order) - 1, 0)):]
        F = len(imp)
        shear = min(1.2, 0.05 * F)
        sx = shear / max(F, 1)
        dz = STACK_DEPTH / max(F, 1)
        lo, hi = float(acts.min()), float(acts.max())
        front = selected_filter(frame, state, info, layer)
        drawn[layer] = order
        for r in reversed(range(len(order))):  # back to front
            f = order[r]
            px, pd, py = x + r * sx, r * dz, POP * float(imp[f])
            color = SELECTED_COLOR if (layer == sel and f == front) else FILTER_COLOR
            shade = 1.0 - 0.55 * r / max(len(order), 1)
            col = (color[0] * shade, color[1] * shade, color[2] * shade, 1.0)
            b.plot(acts[f], px, py, STACK_W, STACK_H, pd, col, "filter",
                   frame.ex.activation_name(layer), layer, f, lo, hi)
            bw = max(0.6 * sx, 0.02)
            c = bar_color(imp[f])
            y0 = py + STACK_H + 0.04
            b.quad(px, y0, px + bw, y0 + 0.14, pd, c)
            b.bars.append(Bar(layer, f, float(imp[f]), (px + bw / 2, y0 + 0.07, pd), tuple(c)))
        columns[layer] = (x, x + STACK_W + shear)
        b.label(info.label(layer).split(" · ")[0], x + (STACK_W + shear) / 2, -0.15, 0.0,
                SELECTED_COLOR if layer == sel else TEXT_COLOR)
        b.label(f"{len(order)}/{F} filters", x + (STACK_W + shear) / 2, -0.32, 0.0,
                (0.7, 0.7, 0.75, 1.0))
        x += STACK_W + shear + 0.35
    _output_panel(b, frame, info, x, 0.3, 1.0, 1.2)
    return b.geometry(2, True, drawn, columns, _trace_masks(frame, state), [])


LEGEND_HALF_WIDTH = 1.3


def _grid(n: int, aspect: float = 1.6) -> tuple[int, int]:
    cols = max(1, int(math.ceil(math.sqrt(n * aspect))))
    rows = max(1, int(math.ceil(n / cols)))
    return rows, cols


def _level3(frame: Frame, info: ModelInfo, state: ViewerState, clusters: bool = False) -> Geometry:
    """One layer: its filters on a 2-D grid sorted by importance; input and output beside."""
    b = _Builder()
    layer = state.layer or info.layer_names[0]
    imp = frame.importance(layer)
    acts = frame.activations(layer)
    keep = frame.ex.keep(layer, state.percentile)[0]
    order = filter_order(imp, keep, state.sort)
    chosen = selected_filter(frame, state, info, layer)
    gx0, gw, gh = 2.0, 6.0, 4.0
    rows, cols = _grid(len(order))
    cw, ch = gw / cols, gh / rows
    lo, hi = float(acts.min()), float(acts.max())
    labels = frame.clusters.get(layer) if clusters else None
    tname = frame.ex.activation_name(layer)
    for k, f in enumerate(order):
        r, c = divmod(k, cols)
        x0, y0 = gx0 + c * cw, gh - (r + 1) * ch
        left = 0.1 * cw if labels is not None else 0.0
        pw, ph = cw * 0.92 - left, ch * 0.62
        px = x0 + left
        b.frame(px, y0 + 0.06 * ch, pw, ph + 0.04 * ch)
        col = SELECTED_COLOR if f == chosen else FILTER_COLOR
        b.plot(acts[f], px, y0 + 0.08 * ch, pw, ph, 0.0, col, "filter", tname, layer, f, lo, hi)
        bc = bar_color(imp[f])
        by0, by1 = y0 + 0.72 * ch, y0 + 0.84 * ch
        b.quad(px, by0, px + pw * 0.5, by1, 0.0, bc)
        b.bars.append(Bar(layer, f, float(imp[f]), (px + pw * 0.25, (by0 + by1) / 2, 0.0), tuple(bc)))
        b.label(f"{f}: {imp[f]:.2f}", px + pw * 0.75, (by0 + by1) / 2, 0.0, detail=True)
        if labels is not None:
            cc = cluster_color(int(labels[f]))
            b.quad(x0, y0 + 0.06 * ch, x0 + left * 0.7, y0 + 0.84 * ch, 0.0, cc)
            b.cluster_bars.append(Bar(layer, f, float(labels[f]),
                                      (x0 + left * 0.35, y0 + 0.45 * ch, 0.0), cc))
    b.label(f"{info.label(layer)}: {len(order)} of {len(imp)} filters shown, sorted {state.sort}",
            gx0 + gw / 2, gh + 0.18)
    _input_panel(b, frame, info, 0.0, 1.6, 1.6, 2.0, saliency=frame.saliency(layer, chosen),
                 caption=f"input, saliency of filter {chosen}")
    _output_panel(b, frame, info, 0.2, 0.2, 1.2, 0.8)
    legend: list[str] = []
    if labels is not None:
        lx = gx0 + gw + 0.3
        for cl in range(int(labels.max()) + 1 if len(labels) else 0):
            members = np.flatnonzero(labels == cl)
            text = (f"cluster {cl}: {len(members)} filters, mean importance "
                    f"{float(imp[members].mean()) if len(members) else 0.0:.2f}")
            legend.append(text)
            yy = gh - 0.3 * (cl + 1)
            b.quad(lx, yy - 0.08, lx + 0.16, yy + 0.08, 0.0, cluster_color(cl))
            b.label(text, lx + 0.3 + LEGEND_HALF_WIDTH, yy, 0.0)
        b.text_extent = LEGEND_HALF_WIDTH
    return b.geometry(4 if clusters else 3, False, {layer: order}, {layer: (gx0, gx0 + gw)},
                      _trace_masks(frame, state), legend)


def _level4(frame: Frame, info: ModelInfo, state: ViewerState) -> Geometry:
    """Level 3 plus a cluster bar left of each plot and a legend (size, mean importance)."""
    layer = state.layer or info.layer_names[0]
    if layer not in frame.clusters:
        frame.add_clusters([layer]) if frame.activations(layer).shape[1] > 1 else None
    return _level3(frame, info, state, clusters=layer in frame.clusters)


# ----------------------------------------------------------------------------- picking
def pick(geom: Geometry, screen: np.ndarray, xy: tuple[float, float],
         radius: float = 12.0) -> tuple[Plot, int] | None:
    """The plot point nearest to a click: ``screen`` is ``line_pos`` mapped to canvas pixels."""
    if not len(geom.plots) or not len(screen):
        return None
    d2 = (screen[:, 0] - xy[0]) ** 2 + (screen[:, 1] - xy[1]) ** 2
    starts = np.array([p.start for p in geom.plots])
    owner = np.full(len(screen), -1)
    for i, p in enumerate(geom.plots):
        owner[p.start : p.start + max(p.length, 2 if p.length == 1 else p.length)] = i
    d2[owner < 0] = np.inf
    v = int(np.argmin(d2))
    if not np.isfinite(d2[v]) or d2[v] > radius**2:
        return None
    p = geom.plots[owner[v]]
    return p, min(v - starts[owner[v]], p.length - 1)
