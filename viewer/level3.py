"""Levels 3 and 4, one layer: its filters on a 2-D grid sorted by importance, with the input
(and the saliency of the chosen filter) and the output beside; level 4 adds the clusters."""

from __future__ import annotations

import math

import numpy as np

from .frame import Frame, ModelInfo
from .geometry import Builder, Geometry
from .palette import FILTER_COLOR, SELECTED_COLOR, bar_color, cluster_color
from .panels import filter_order, input_panel, output_panel, selected_filter, title, trace_masks
from .state import ViewerState

LEGEND_HALF_WIDTH = 1.3


def _grid(n: int, aspect: float = 1.6) -> tuple[int, int]:
    cols = max(1, int(math.ceil(math.sqrt(n * aspect))))
    rows = max(1, int(math.ceil(n / cols)))
    return rows, cols


def build(frame: Frame, info: ModelInfo, state: ViewerState, clusters: bool = False) -> Geometry:
    """One layer: its filters on a 2-D grid sorted by importance; input and output beside."""
    b = Builder()
    layer = state.layer or info.layer_names[0]
    imp = frame.importance(layer)
    acts = frame.activations(layer)
    keep = frame.ex.keep(layer, state.percentile)[0]
    order = filter_order(imp, keep, state.sort)
    chosen = selected_filter(frame, state, info, layer, order)
    gx0, gw, gh = 2.0, 6.0, 4.0
    rows, cols = _grid(len(order))
    cw, ch = gw / cols, gh / rows
    lo, hi = float(acts.min()), float(acts.max())
    labels = frame.clusters.get(layer) if clusters else None
    tname = frame.ex.activation_name(layer)
    # every filter at once, in the order of the grid (k): its frame, plot, bar, label and
    # cluster bar, as a loop over k would add them
    n = len(order)
    fs = np.asarray(order, dtype=np.int64)
    r, c = np.divmod(np.arange(n), cols)
    x0, y0 = gx0 + c * cw, gh - (r + 1) * ch
    left = 0.1 * cw if labels is not None else 0.0
    pw, ph = cw * 0.92 - left, ch * 0.62
    px = x0 + left
    frames = np.stack([px, y0 + 0.06 * ch, np.full(n, pw), np.full(n, ph + 0.04 * ch)], axis=1)
    colors = np.where((fs == chosen)[:, None], np.asarray(SELECTED_COLOR), np.asarray(FILTER_COLOR))
    b.plot_rows(acts[fs], px, y0 + 0.08 * ch, pw, ph, 0.0, colors, "filter", tname, layer, fs, lo, hi,
            frames=frames)
    bc = bar_color(imp[fs])
    by0, by1 = y0 + 0.72 * ch, y0 + 0.84 * ch
    values = imp[fs].astype(np.float64).tolist()
    b.add_bars(layer, fs, imp[fs], np.stack([px + pw * 0.25, (by0 + by1) / 2, np.zeros(n)], axis=1),
               bc)
    for f, v, x, y in zip(fs.tolist(), values, (px + pw * 0.75).tolist(), ((by0 + by1) / 2).tolist()):
        b.label(f"{f}: {v:.2f}", x, y, 0.0, detail=True)
    if labels is None:
        b.quad_rows(px, by0, px + pw * 0.5, by1, 0.0, bc)
    else:
        cl = np.asarray(labels)[fs].astype(np.int64)
        ccs = [cluster_color(int(k)) for k in cl.tolist()]
        # a filter's importance bar, then its cluster bar
        b.quad_rows(np.stack([px, x0], axis=1), np.stack([by0, y0 + 0.06 * ch], axis=1),
                np.stack([px + pw * 0.5, x0 + left * 0.7], axis=1),
                np.stack([by1, y0 + 0.84 * ch], axis=1), 0.0,
                np.stack([bc, np.asarray(ccs, np.float32).reshape(-1, 4)], axis=1))
        b.add_bars(layer, fs, cl, np.stack([x0 + left * 0.35, y0 + 0.45 * ch, np.zeros(n)], axis=1),
                   np.asarray(ccs, np.float64), cluster=True)
    b.label(f"{info.label(layer)}: {len(order)} of {len(imp)} filters shown, sorted {state.sort}",
            gx0 + gw / 2, gh + 0.18)
    input_panel(b, frame, info, 0.0, 1.6, 1.6, 2.0, saliency=frame.saliency(layer, chosen),
                 caption=f"input, saliency of filter {chosen}")
    output_panel(b, frame, info, 0.2, 0.2, 1.2, 0.8)
    title(b, frame, (gx0 + gw) / 2, gh + 0.48)
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
                      trace_masks(frame, state), legend)


def build_clusters(frame: Frame, info: ModelInfo, state: ViewerState) -> Geometry:
    """Level 3 plus a cluster bar left of each plot and a legend (size, mean importance)."""
    layer = state.layer or info.layer_names[0]
    if layer not in frame.clusters:
        frame.add_clusters([layer]) if frame.activations(layer).shape[1] > 1 else None
    return build(frame, info, state, clusters=layer in frame.clusters)
