"""Level 2, the filters: each filter layer a stack of its filters in depth, with red importance
bars; the important ones pop out, the percentile filter thins the stacks."""

from __future__ import annotations

import numpy as np

from .frame import Frame, ModelInfo
from .geometry import Builder, Geometry
from .palette import FILTER_COLOR, SELECTED_COLOR, TEXT_COLOR, bar_color
from .panels import filter_order, input_panel, output_panel, selected_filter, title, trace_masks
from .state import ViewerState

STACK_W = 1.6
STACK_H = 1.5
STACK_DEPTH = 2.5
POP = 0.8


def build(frame: Frame, info: ModelInfo, state: ViewerState) -> Geometry:
    """The filters: each layer a stack in depth, with red importance bars; important pop out."""
    b = Builder()
    sel = state.layer or info.layer_names[0]
    sal = frame.saliency(sel, selected_filter(frame, state, info, sel))
    input_panel(b, frame, info, 0.0, 0.0, 1.6, 2.0, 0.0, saliency=sal)
    x = 1.6
    drawn: dict[str, list[int]] = {}
    columns: dict[str, tuple[float, float]] = {}
    for layer in info.layer_names:
        imp = frame.importance(layer)
        acts = frame.activations(layer)
        keep = frame.ex.keep(layer, state.percentile)[0]
        kept = filter_order(imp, keep, state.sort)
        order = kept[min(state.scroll.get(layer, 0), max(len(kept) - 1, 0)):]
        F = len(imp)
        shear = min(1.2, 0.05 * F)
        sx = shear / max(F, 1)
        dz = STACK_DEPTH / max(F, 1)
        lo, hi = float(acts.min()), float(acts.max())
        front = selected_filter(frame, state, info, layer, kept)
        drawn[layer] = order
        # back to front, one array per layer (rows r = len(order) - 1 .. 0)
        r = np.arange(len(order) - 1, -1, -1)
        fs = np.asarray(order, dtype=np.int64)[r]
        px, pd = x + r * sx, r * dz
        py = POP * imp[fs].astype(np.float64)
        shade = 1.0 - 0.55 * r / max(len(order), 1)
        base = np.where((fs == front)[:, None] if layer == sel else np.zeros((len(r), 1), bool),
                        np.asarray(SELECTED_COLOR), np.asarray(FILTER_COLOR))
        cols = np.concatenate([base[:, :3] * shade[:, None], np.ones((len(r), 1))], axis=1)
        b.plot_rows(acts[fs], px, py, STACK_W, STACK_H, pd, cols, "filter",
                frame.ex.activation_name(layer), layer, fs, lo, hi)
        bw = max(0.6 * sx, 0.02)
        c = bar_color(imp[fs])
        y0 = py + STACK_H + 0.04
        b.quad_rows(px, y0, px + bw, y0 + 0.14, pd, c)
        b.add_bars(layer, fs, imp[fs], np.stack([px + bw / 2, y0 + 0.07, pd], axis=1), c)
        columns[layer] = (x, x + STACK_W + shear)
        b.label(info.label(layer).split(" · ")[0], x + (STACK_W + shear) / 2, -0.15, 0.0,
                SELECTED_COLOR if layer == sel else TEXT_COLOR)
        b.label(f"{len(order)}/{F} filters", x + (STACK_W + shear) / 2, -0.32, 0.0,
                (0.7, 0.7, 0.75, 1.0))
        x += STACK_W + shear + 0.35
    output_panel(b, frame, info, x, 0.3, 1.0, 1.2)
    title(b, frame, (x + 1.0) / 2, 2.95)
    return b.geometry(2, True, drawn, columns, trace_masks(frame, state), [])
