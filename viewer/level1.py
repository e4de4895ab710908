"""Level 1, the network: the input, one box per convolution, pooling and dense node of the
model's graph, the output, and the summary's overview lines."""

from __future__ import annotations

import math

from .frame import Frame, ModelInfo
from .geometry import Builder, Geometry
from .palette import KIND_COLORS, KIND_NAMES
from .panels import input_panel, output_panel, title, trace_masks
from .state import ViewerState


def build(frame: Frame, info: ModelInfo, state: ViewerState) -> Geometry:
    """The network: input, one box per convolution/pooling/dense layer, output, an overview."""
    b = Builder()
    input_panel(b, frame, info, 0.0, 0.0, 2.0, 1.6)
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
    output_panel(b, frame, info, x + 0.1, 0.3, 1.2, 1.0)
    if info.forecasts_input:
        b.label("output: the forecast,", x + 0.3, 0.9)
        b.label("drawn after the input", x + 0.3, 0.7)
    counted = ", ".join(f"{n} {KIND_NAMES[k]}" for k, n in counts.items())
    b.label(f"{info.name}: {counted}", (x + 1.3) / 2, 2.45)
    title(b, frame, (x + 1.3) / 2, 2.75)
    for i, line in enumerate(info.overview[1:3]):
        b.label(line, (x + 1.3) / 2, 2.2 - 0.22 * i, color=(0.7, 0.7, 0.75, 1.0))
    legend = [f"{KIND_NAMES[k]}: {n}" for k, n in counts.items()]
    return b.geometry(1, True, {}, {}, trace_masks(frame, state), legend)
