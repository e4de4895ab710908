"""What the viewer computes: the model as it shows it (:class:`ModelInfo`, read once from the
model's public API and its graph description) and the explanation of one sample (:class:`Frame`),
which the worker thread makes and the GUI thread swaps in. No vispy, no geometry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: The attack key's PGD: eps is this share of the window's value range (max - min over all its
#: channels), in ATTACK_STEPS steps.
ATTACK_SHARE = 0.02
ATTACK_STEPS = 20
#: The inverse key's optimisation: INVERSE_STEPS steps that each move the input by at most
#: INVERSE_LR_SHARE of the window's value range, within INVERSE_BOUND_SHARE of it from the start.
INVERSE_STEPS = 100
INVERSE_LR_SHARE = 0.005
INVERSE_BOUND_SHARE = 0.25


@dataclass(frozen=True)
class Block:
    """One layer of the level-1 overview: a convolution, pooling or dense node of the model's
    graph (:attr:`tsviz_native.Model.nodes`)."""

    kind: str  # conv, pool, dense
    op: str
    tensor: str


def block_kind(op: str) -> str | None:
    """The level-1 kind of an engine op (``Node.op``): conv, pool or dense; None for the ops
    level 1 leaves out (activations, affine, flatten, ...)."""
    if op == "Conv":
        return "conv"
    if op.endswith("Pool"):
        return "pool"
    return "dense" if op == "Dense" else None


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
        blocks = tuple(Block(kind, node.op, node.name) for node in model.nodes
                       if (kind := block_kind(node.op)) is not None)
        # the summary's header lines (model, input, output, layer counts), shown as they are
        overview = tuple(" ".join(line.split()) for line in model.summary().splitlines()[:4])
        name = str(model.source).replace("\\", "/").rsplit("/", 1)[-1]
        return cls(name, model.input_name, model.output_name, tuple(model.layers),
                   blocks, overview, model.layout, int(model.n_outputs), scaling)

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


def _value_range(x: np.ndarray) -> float:
    span = float(np.max(x) - np.min(x))
    return span if span > 0 else 1.0


def modified_input(model: Any, x: np.ndarray, truth: Any, variant: Any) -> tuple[np.ndarray, str]:
    """The input that replaces window ``x`` (model's layout) for a :class:`~.state.Variant`,
    and a short note saying what it is: :func:`tsviz_native.attack` (PGD, eps ATTACK_SHARE of
    the window's value range, against ``truth``; a classifier without it against its own
    prediction) or :func:`tsviz_native.inverse` (goal "max")."""
    import tsviz_native as tsv

    span = _value_range(x)
    if variant.kind == "attack":
        eps = ATTACK_SHARE * span
        y = None if truth is None else np.asarray(truth)[np.newaxis]
        r = tsv.attack(model, x, y, method="pgd", eps=eps, steps=ATTACK_STEPS, seed=0, saliency=False)
        return r.x_adv[0], f"modified: PGD-attacked, eps {eps:.3g} = {ATTACK_SHARE:.0%} of its range"
    kw = {} if variant.layer is None else {"layer": variant.layer, "filter": int(variant.filter)}
    bound = INVERSE_BOUND_SHARE * span
    r = tsv.inverse(model, x, goal="max", steps=INVERSE_STEPS, lr=INVERSE_LR_SHARE * span,
                    max_change=bound, **kw)
    return r.x, f"modified: optimised to max {r.what.split(' · ')[0]}, |x - x0| <= {bound:.3g}"


@dataclass
class Frame:
    """One explained sample: what the worker computes and the GUI swaps in. ``wrt`` says
    what is explained (the output, or the loss against ``truth``); ``variant`` (a
    :class:`~.state.Variant`, None for the window itself) what replaced the input, ``note``
    in words."""

    sample: int
    x: np.ndarray  # (C, T) channels-first
    ex: Any  # tsviz_native.Explanation of this one sample
    truth: Any = None
    clusters: dict[str, np.ndarray] = field(default_factory=dict)  # layer -> labels (F,)
    wrt: str = "output"
    loss_name: str | None = None
    variant: Any = None
    note: str = ""
    _saliency: dict[tuple[str, int], np.ndarray] = field(default_factory=dict, repr=False)
    output_name: str = ""  # the model's output tensor (the trace that gives the shapes)
    _shapes: dict[str, tuple[int, ...]] | None = field(default=None, repr=False)

    @classmethod
    def compute(cls, model: Any, info: ModelInfo, X: np.ndarray, sample: int, truth: Any = None,
                cluster_layers: tuple[str, ...] = (), *, wrt: str = "output",
                x: np.ndarray | None = None, variant: Any = None, note: str = "") -> Frame:
        """Explains window ``sample`` of ``X`` (or ``x`` in its place, one window in the model's
        layout): its output, or with ``wrt="loss"`` its loss against ``truth``."""
        window = np.asarray(X[sample] if x is None else x, dtype=np.float32)
        loss_name = None
        if wrt == "loss":
            y = np.asarray(truth)[np.newaxis]
            loss_name, _ = model.loss_targets(y, 1)
            ex = model.explain(window[np.newaxis], wrt="loss", y_true=y, loss=loss_name)
        else:
            ex = model.explain(window[np.newaxis])
        frame = cls(sample, info.channels_first(window), ex, truth, wrt=wrt,
                    loss_name=loss_name, variant=variant, note=note, output_name=info.output_name)
        frame.add_clusters(cluster_layers)
        return frame

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """``(C, L)`` of every tensor from the input to the output (level 1 draws them): read
        from a trace of the output when first asked, not on every sample switch."""
        if self._shapes is None:
            out = self.ex.trace(self.output_name, 0, 0)
            self._shapes = {k: v.shape for k, v in out.items()}
        return self._shapes

    @property
    def key(self) -> tuple[int, str, Any]:
        """What the frame explains: sample, wrt, variant (the viewer's cache key)."""
        return (self.sample, self.wrt, self.variant)

    def explained(self) -> str:
        """What the importances are of, in words: ``explaining the loss (mse) = 0.0123``,
        ``explaining class 1``, ``explaining output 0``."""
        if self.ex.wrt == "loss":
            return f"explaining the loss ({self.loss_name}) = {float(self.ex.loss[0]):.4g}"
        kind = "class" if len(self.prediction) > 1 else "output"
        return f"explaining {kind} {int(self.ex.target[0])}"

    def title(self) -> str:
        """The levels' title: the window, whether its input was replaced, what is explained."""
        what = f"window {self.sample}" + (f", {self.note}" if self.note else "")
        return f"{what} · {self.explained()}"

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
