"""The pieces the levels share: the order of filters, the selected filter, the input panel (with
its saliency strips and a forecaster's forecast) and the output panel."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .frame import Frame, ModelInfo
from .geometry import Builder
from .palette import (BACKGROUND, INPUT_COLOR, MODIFIED_COLOR, OUTPUT_COLOR, OUTPUT_DIM_COLOR,
                      SALIENCY_COLOR, TEXT_COLOR, TRUTH_COLOR)
from .state import ViewerState


def filter_order(importance: np.ndarray, keep: np.ndarray, sort: str) -> list[int]:
    """Kept filters sorted by importance (``descending``: most important first); ties by index."""
    idx = np.flatnonzero(keep)
    key = importance[idx]
    order = np.lexsort((idx, -key if sort == "descending" else key))
    return idx[order].tolist()


def selected_filter(frame: Frame, state: ViewerState, info: ModelInfo, layer: str,
                    order: list[int] | None = None) -> int:
    """The filter whose saliency the input shows: the user's choice, else the front one.
    ``order``: the layer's :func:`filter_order` when the caller has it already."""
    if state.filter is not None and state.layer == layer:
        return int(state.filter)
    imp = frame.importance(layer)
    if order is None:
        keep = frame.ex.keep(layer, state.percentile)[0]
        order = filter_order(imp, keep, state.sort)
    if not order:
        return int(np.argmax(imp))
    return order[min(state.scroll.get(layer, 0), len(order) - 1)]


def input_panel(b: Builder, frame: Frame, info: ModelInfo, x0: float, y0: float, w: float,
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
            col = np.array(BACKGROUND) + s[:, None] * (np.array(SALIENCY_COLOR) - np.array(BACKGROUND))
            col[:, 3] = 1.0
            b.quad_rows(xs[:-1], cy + 0.04 * ch, xs[1:], cy + 0.04 * ch + strip, d, col)
        b.frame(x0, cy + 0.04 * ch + strip, w, ch * 0.9 - strip, d)
        py, ph = cy + 0.08 * ch + strip, ch * 0.82 - strip
        if forecast and c == 0:
            # short lines, stacked above the caption, so that they stay within the panel
            for i, line in enumerate(reversed(_forecast(b, frame, info, x0, py, w - step, ph, step, d))):
                b.label(line, x0 + w / 2, y0 + h + 0.26 + 0.17 * i, d, color=OUTPUT_COLOR)
        else:
            b.plot(frame.x[c], x0, py, w - step, ph, d, INPUT_COLOR, "input", info.input_name, None, c)
    b.label(caption, x0 + w / 2, y0 + h + 0.08, d)


def _forecast(b: Builder, frame: Frame, info: ModelInfo, x0: float, y0: float, w: float, h: float,
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


def output_panel(b: Builder, frame: Frame, info: ModelInfo, x0: float, y0: float, w: float,
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
    b.label(f"explained: {kind} {target} ({fmt(y[target])})", x0 + w / 2, y0 + h + 0.08, d)
    if frame.truth is not None:
        b.label(f"truth: {fmt(frame.truth)}", x0 + w / 2, y0 - 0.12, d)


def title(b: Builder, frame: Frame, x: float, y: float, d: float = 0.0) -> None:
    """Every level's title: the window, whether its input was replaced (an attacked or
    optimised input, in its own colour) and what is explained (:meth:`Frame.title`)."""
    b.label(frame.title(), x, y, d, MODIFIED_COLOR if frame.variant is not None else TEXT_COLOR)


def fmt(v: Any) -> str:
    try:
        return f"{float(v):.3g}"
    except (TypeError, ValueError):
        return str(v)


def trace_masks(frame: Frame, state: ViewerState) -> dict[str, np.ndarray] | None:
    hl = state.highlight
    if hl is None:
        return None
    return frame.ex.trace(hl.tensor, hl.filter, hl.position, 0, state.active_only)
