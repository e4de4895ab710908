"""The viewer's colours (RGBA, 0..1): distinct and known, so that tests find them by colour."""

from __future__ import annotations

import numpy as np

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
MODIFIED_COLOR = (1.00, 0.80, 0.30, 1.0)  # the title of an attacked or optimised input
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
