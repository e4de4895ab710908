"""The geometry of one view as plain numpy arrays (no vispy, no GL), and the builder the levels
draw with.

A :class:`Geometry` holds every plot of the level in one line array with a ``connect`` array,
every bar, box and strip in one triangle mesh, every highlighted point in one marker array, every
label in one list of strings. The vispy layer (:mod:`tsviz_native.viewer.app`) only uploads these
arrays, into one visual each, and picks clicks from :attr:`Geometry.plots` without asking GL.

Coordinates are ``(x, y, depth)``: ``y`` up; ``depth`` grows away from the viewer (level 2 stacks
filters in depth). Levels 1 and 2 are 3-D, levels 3 and 4 are flat (depth 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np

from .palette import FRAME_COLOR, HIGHLIGHT_CORE, HIGHLIGHT_GLOW, TEXT_COLOR


class Plot(NamedTuple):
    """One line plot: its points are ``a[index, 0..length-1]`` of ``tensor`` (a trace key).
    A named tuple, like :class:`Bar`: a level of hundreds of filters makes one per filter on
    every sample switch, and a frozen dataclass took three times as long to make."""

    kind: str  # "input", "filter", "output"
    tensor: str
    layer: str | None
    index: int
    start: int  # first vertex in Geometry.line_pos
    length: int


class Bar(NamedTuple):
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
    # line_connect again as draw_connect reads it: the segments drawn as they are, and the
    # runs of long plots of one length, (starts (n,), y (n, L)), that it may draw as envelopes
    fixed_segments: list[np.ndarray]
    runs: list[tuple[np.ndarray, np.ndarray]]
    bar_rows: list[tuple]  # per Builder.add_bars call: (layer, filters, values, centers, colors)
    cluster_bar_rows: list[tuple]
    drawn: dict[str, list[int]]  # layer -> filters drawn, in drawing order (front/first first)
    columns: dict[str, tuple[float, float]]  # layer -> x range of its column (level 2 scrolling)
    bounds: tuple[tuple[float, float], tuple[float, float], tuple[float, float]]
    highlighted: dict[str, np.ndarray]  # tensor -> (C, L) mask that was drawn
    legend: list[str]

    @cached_property
    def bars(self) -> list[Bar]:
        """The importance bars as drawn, made when first read (tests read them; a sample
        switch does not)."""
        return _bars(self.bar_rows)

    @cached_property
    def cluster_bars(self) -> list[Bar]:
        return _bars(self.cluster_bar_rows)

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
    if not g.runs:
        return g.line_connect
    parts = list(g.fixed_segments)
    runs: dict[int, list[tuple]] = {}  # length -> its runs, in the order added
    for run in g.runs:
        runs.setdefault(run[1].shape[1], []).append(run)
    # Plots of one length are done together: the first minimum and maximum of every bucket of
    # every plot at once (a Python loop per plot cost more than the drawing on a sample switch).
    for length, group in runs.items():
        st = np.concatenate([r[0] for r in group])[:, None]
        y = group[0][1] if len(group) == 1 else np.concatenate([r[1] for r in group])
        edges = np.linspace(0, length, LOD_BUCKETS + 1).astype(np.int64)
        a, b = edges[:-1][edges[1:] > edges[:-1]], edges[1:][edges[1:] > edges[:-1]]
        # the buckets as rows of one index matrix, the shorter ones padded with their last
        # index (argmin and argmax give the first extreme, so a repeat at the end changes
        # nothing, and the pick's offset in its row is its offset in its bucket)
        bucket = np.minimum(a[:, None] + np.arange(int((b - a).max())), (b - 1)[:, None])
        yb = y[:, bucket]  # (plots, buckets, bucket size)
        lo, hi = a + np.argmin(yb, axis=2), a + np.argmax(yb, axis=2)
        # each bucket's two picks in order, the buckets in order, between the plot's ends: a
        # sorted row; a repeated point joins nothing
        keep = np.empty((len(st), 2 * len(a) + 2), np.int64)
        keep[:, 0], keep[:, -1] = 0, length - 1
        keep[:, 1:-1:2], keep[:, 2:-1:2] = np.minimum(lo, hi), np.maximum(lo, hi)
        keep += st
        nxt = keep[:, 1:] > keep[:, :-1]
        seg = np.empty((int(nxt.sum()), 2), np.uint32)
        seg[:, 0], seg[:, 1] = keep[:, :-1][nxt], keep[:, 1:][nxt]
        parts.append(seg)
    return np.concatenate(parts).astype(np.uint32, copy=False)


class Builder:
    """Collects the plots, quads, boxes and labels of one view into :class:`Geometry` arrays."""

    def __init__(self) -> None:
        self.pos: list[np.ndarray] = []
        self.conn: list[np.ndarray] = []
        self.fixed_segments: list[np.ndarray] = []  # see Geometry.fixed_segments
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []
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
        self.bar_rows: list[tuple] = []
        self.cluster_bar_rows: list[tuple] = []
        self.text_extent = 0.0  # half-width of the widest label, in scene units (for bounds)

    def polyline(self, pts: np.ndarray, color: Any, connect: bool = True) -> int:
        """Adds vertices, joined by segments unless ``connect`` is False (points that are
        only picked and highlighted, such as the tops of the output bars)."""
        n = len(pts)
        start = self.nv
        self.pos.append(np.asarray(pts, dtype=np.float32))
        idx = np.arange(start, start + n - 1, dtype=np.uint32)
        self.conn.append(np.stack([idx, idx + 1], axis=1) if connect else np.zeros((0, 2), np.uint32))
        self.fixed_segments.append(self.conn[-1])
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
        if connect and length > 2 * LOD_BUCKETS + 2:
            self.fixed_segments.pop()
            self.runs.append((np.array([start], np.int64), self.pos[-1][None, :, 1]))
        p = Plot(kind, tensor, layer, int(index), start, length)
        self.plots.append(p)
        return p

    def plot_rows(self, values: np.ndarray, x0: Any, y0: Any, w: float, h: float, d: Any,
              color: Any, kind: str, tensor: str, layer: str | None, indices: Any,
              lo: float, hi: float, frames: np.ndarray | None = None) -> list[Plot]:
        """Many plots of one length at once, each as :meth:`plot` draws it: the rows of
        ``values`` ``(n, L)`` at per-plot ``x0``, ``y0``, depth ``d`` and colour (``(n, 4)``,
        or one colour), with one width, height and value range ``lo..hi``. With ``frames``
        ``(n, 4)`` (x0, y0, w, h) each plot comes right after its :meth:`frame` (at the plot's
        depth), as alternating :meth:`frame` and :meth:`plot` calls would add them. One array
        per call instead of one per plot: a layer of hundreds of filters is built in bulk."""
        v = np.asarray(values, dtype=np.float64)
        n, length = v.shape
        if n == 0:
            return []
        x0, y0, d = (np.broadcast_to(np.asarray(a, np.float64), (n,)) for a in (x0, y0, d))
        span = hi - lo
        ys = (v - lo) / span if span > 0 else np.full(v.shape, 0.5)
        if length == 1:  # one position: a short flat segment, as plot() draws it
            xs = x0[:, None] + np.array([0.3 * w, 0.7 * w])
            ys = np.repeat(ys, 2, axis=1)
        else:
            xs = x0[:, None] + w * np.arange(length) / (length - 1)
        nv = xs.shape[1]
        nf = 5 if frames is not None else 0
        block = np.empty((n, nf + nv, 3), np.float32)
        block[:, nf:, 0] = xs
        block[:, nf:, 1] = y0[:, None] + h * ys
        block[:, :, 2] = d[:, None]
        if frames is not None:
            fx, fy, fw, fh = (np.asarray(frames, np.float64)[:, i] for i in range(4))
            block[:, :5, 0] = np.stack([fx, fx + fw, fx + fw, fx, fx], axis=1)
            block[:, :5, 1] = np.stack([fy, fy, fy + fh, fy + fh, fy], axis=1)
        first = self.nv + nf + (nf + nv) * np.arange(n)
        # Segment q of a plot joins its vertices q and q + 1, after its frame's four (vertices
        # -5 .. -1); made as uint32 at once, and the colours below as one 16-byte value per
        # vertex: numpy's broadcasts over an inner axis of 2 or 4 took longer than the rest.
        seg = np.arange(nv - 1) if frames is None else np.r_[np.arange(-nf, -1), np.arange(nv - 1)]
        start = first[:, None] + seg
        conn = np.empty(start.shape + (2,), np.uint32)
        conn[..., 0] = start
        conn[..., 1] = start + 1
        cols = np.empty((n, nf + nv, 4), np.float32)
        per_vertex = cols.view(np.complex128)[..., 0]  # (n, nf + nv)
        per_vertex[:, :nf] = np.asarray(FRAME_COLOR, np.float32).view(np.complex128)
        rgba = np.broadcast_to(np.asarray(color, np.float32).reshape(-1, 4), (n, 4))
        per_vertex[:, nf:] = np.ascontiguousarray(rgba).view(np.complex128)
        self.pos.append(block.reshape(-1, 3))
        self.conn.append(conn.reshape(-1, 2))
        if length > 2 * LOD_BUCKETS + 2:  # the frames' segments apart from the plots'
            if nf:
                self.fixed_segments.append(conn[:, : nf - 1].reshape(-1, 2))
            self.runs.append((first, block[:, nf:, 1]))
        else:
            self.fixed_segments.append(self.conn[-1])
        self.col.append(cols.reshape(-1, 4))
        self.nv += n * (nf + nv)
        idx = np.asarray(indices).tolist()
        new = [Plot(kind, tensor, layer, i, s, length) for i, s in zip(idx, first.tolist())]
        self.plots.extend(new)
        return new

    def add_bars(self, layer: str, filters: Any, values: Any, centers: Any, colors: Any,
                 cluster: bool = False) -> None:
        """Records bars (:class:`Bar`, what tests read) as arrays: ``filters`` and
        ``values`` ``(n,)``, ``centers`` ``(n, 3)``, ``colors`` ``(n, 4)``, each bar's colour
        as given (its values become the Bar's floats)."""
        rows = (layer, np.asarray(filters), np.asarray(values, np.float64),
                np.asarray(centers, np.float64).reshape(-1, 3), np.asarray(colors).reshape(-1, 4))
        (self.cluster_bar_rows if cluster else self.bar_rows).append(rows)

    def quad_rows(self, x0: Any, y0: Any, x1: Any, y1: Any, d: Any, colors: Any) -> None:
        """Many axis-aligned quads at once, in order, as :meth:`quad` adds each; coordinates
        ``(n,)`` (or scalars), colours ``(n, 4)`` (or one colour)."""
        x0, y0, x1, y1, d = np.broadcast_arrays(*(np.asarray(a, np.float64) for a in (x0, y0, x1, y1, d)))
        n = x0.size
        if n == 0:
            return
        x0, y0, x1, y1, d = (a.ravel() for a in (x0, y0, x1, y1, d))
        p = np.empty((n, 4, 3), np.float32)
        p[:, :, 0] = np.stack([x0, x1, x1, x0], axis=1)
        p[:, :, 1] = np.stack([y0, y0, y1, y1], axis=1)
        p[:, :, 2] = d[:, None]
        c = np.empty((n, 4, 4), np.float32)
        c[:] = np.asarray(colors, np.float32).reshape(-1, 1, 4)
        faces = np.array([[0, 1, 2], [0, 2, 3]], np.uint32) + (self.nm + 4 * np.arange(n, dtype=np.uint32))[:, None, None]
        self.mpos.append(p.reshape(-1, 3))
        self.mfaces.append(faces.reshape(-1, 3))
        self.mcol.append(c.reshape(-1, 4))
        self.nm += 4 * n

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
        col = np.concatenate(self.col).astype(np.float32, copy=False) if self.col else np.zeros((0, 4), np.float32)
        mp = np.concatenate(self.mpos) if self.mpos else np.zeros((0, 3), np.float32)
        mf = np.concatenate(self.mfaces) if self.mfaces else np.zeros((0, 3), np.uint32)
        mc = np.concatenate(self.mcol) if self.mcol else np.zeros((0, 4), np.float32)
        mk_pos, mk_col, mk_size, shown = _markers(pos, self.plots, masks)
        parts = [a for a in (pos, mp) if len(a)]
        if self.text_extent and self.tpos:
            tp = np.asarray(self.tpos, np.float32)
            parts += [tp + [self.text_extent, 0, 0], tp - [self.text_extent, 0, 0]]
        if parts:  # per part and column: numpy's min(axis=0) over (n, 3) is 50x slower
            lo = [min(float(a[:, k].min()) for a in parts) for k in range(3)]
            hi = [max(float(a[:, k].max()) for a in parts) for k in range(3)]
        else:
            lo, hi = [0.0] * 3, [1.0] * 3
        bounds = tuple(zip(lo, hi))
        return Geometry(level, three_d, pos, conn, col, mp, mf, mc, mk_pos, mk_col, mk_size,
                        self.text, np.asarray(self.tpos, np.float32).reshape(-1, 3),
                        np.asarray(self.tcol, np.float32).reshape(-1, 4),
                        np.asarray(self.tdetail, dtype=bool), self.plots, self.fixed_segments,
                        self.runs, self.bar_rows, self.cluster_bar_rows, drawn, columns, bounds,
                        shown, legend)


def _bars(rows: list[tuple]) -> list[Bar]:
    out: list[Bar] = []
    for layer, filters, values, centers, colors in rows:
        out.extend(Bar(layer, f, v, tuple(c), tuple(cc)) for f, v, c, cc in zip(
            filters.tolist(), values.tolist(), centers.tolist(), colors.tolist()))
    return out


MARKER_SIZE = 9.0
GLOW_SIZE = 17.0


def _markers(pos: np.ndarray, plots: list[Plot], masks: dict[str, np.ndarray] | None):
    """Two markers per traced point that is drawn: a wide translucent glow, a bright core."""
    shown: dict[str, np.ndarray] = {}
    pts = []
    for p in plots if masks else ():
        if p.tensor not in masks:
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
