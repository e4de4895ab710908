"""Fine-tuning a model's filter layers with Adam (docs/definitions.md, "Fine-tuning").

The engine computes the loss of a batch and its gradient with respect to every weight and bias
(:class:`tsviz_native._native.Trainer`: a forward pass, a backward pass seeded with the loss
gradient, each layer's weight VJP, data-parallel over the engine's threads); this module
shuffles, batches, runs Adam on the flat parameter vector (vectorised numpy), stops early on
the validation loss and writes the trained values back into the model's ONNX graph with the
``onnx`` package (the ``prune`` extra).

Layers with a BatchNormalization or a per-channel constant folded in train the folded weights.
When written back, a folded BatchNormalization becomes the identity (scale 1, bias 0, mean 0,
variance 1 - epsilon) and the convolution takes the folded weights; other folded constants
(``Mul``, ``Add``, ``Sub``, ``Div``) are kept and divided out of the written weights. The graph
keeps its nodes; a Conv or Gemm without a bias gains one. A ``MatMul`` has no bias of its own:
its bias trains only when an ``Add`` of a constant follows it, which then holds it; otherwise
it stays as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tsviz_native import _native
from tsviz_native._native import ArgumentError, ModelError


@dataclass(frozen=True)
class FinetuneResult:
    """A fine-tuned model.

    Attributes
    ----------
    onnx_bytes : the model with its trained weights (the same graph, new initializers).
    history : ``"loss"`` (mean training loss per epoch, over its batches) and, with a
        validation set, ``"val_loss"`` (after each epoch); ``"initial_val_loss"`` before training.
    best_epoch : the epoch whose weights were kept (1-based; 0 = the initial weights), by
        validation loss; the last epoch without a validation set.
    """

    onnx_bytes: bytes = field(repr=False)
    history: Mapping[str, Any]
    best_epoch: int
    epochs_run: int

    @property
    def model(self) -> Any:
        """The fine-tuned model, loaded by the engine."""
        from tsviz_native.model import load

        return load(self.onnx_bytes)

    def save(self, path: str) -> None:
        with open(path, "wb") as f:
            f.write(self.onnx_bytes)


class Adam:
    """Adam (Kingma and Ba, 2015) on a flat float32 vector, as ``torch.optim.Adam`` computes it:
    m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2; p -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)."""

    def __init__(self, size: int, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.lr, self.b1, self.b2, self.eps = lr, betas[0], betas[1], eps
        self.m = np.zeros(size, dtype=np.float32)
        self.v = np.zeros(size, dtype=np.float32)
        self.t = 0

    def step(self, params: np.ndarray, grad: np.ndarray) -> np.ndarray:
        self.t += 1
        self.m *= self.b1
        self.m += (1 - self.b1) * grad
        self.v *= self.b2
        self.v += (1 - self.b2) * grad * grad
        denom = np.sqrt(self.v / np.float32(1 - self.b2 ** self.t)) + np.float32(self.eps)
        return (params - np.float32(self.lr / (1 - self.b1 ** self.t)) * self.m / denom).astype(np.float32)


def _check_data(model: Any, X: Any, y: Any, loss: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    x, _ = model._batch(X)
    t = np.asarray(y)
    if loss == "cross_entropy":
        t = t.reshape(-1)
        if t.dtype.kind not in "iuf" or not np.all(t == np.round(t)) or t.min() < 0 or t.max() >= model.n_outputs:
            raise ArgumentError(f"{what}: the targets of cross_entropy must be class indices 0..{model.n_outputs - 1}")
        t = t.reshape(-1, 1)
    else:
        t = t.reshape(len(t), -1) if t.ndim else t.reshape(1, 1)
        if t.shape[1] != model.n_outputs:
            raise ArgumentError(f"{what}: mse needs {model.n_outputs} target value(s) per sample, got "
                                f"targets of shape {np.asarray(y).shape}")
    if len(t) != len(x):
        raise ArgumentError(f"{what}: {len(t)} targets for {len(x)} samples")
    return x, np.ascontiguousarray(t, dtype=np.float32)


def finetune(
    model: Any,
    X: Any,
    y: Any,
    *,
    loss: str = "mse",
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 32,
    validation: tuple[Any, Any] | None = None,
    patience: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> FinetuneResult:
    """Train every filter layer's weights and bias with Adam and return the tuned model.

    Parameters
    ----------
    model : tsviz_native.Model (pruned or not)
    X, y : training samples (as :meth:`~tsviz_native.Model.predict` takes them) and targets:
        ``n_outputs`` values per sample for ``"mse"``, one class index for ``"cross_entropy"``
        (on the logits: the Softmax input when the model ends in Softmax).
    epochs, lr, batch_size : passes over the data, Adam's learning rate, samples per step (the
        last batch of an epoch may be smaller).
    validation : (X, y) to watch; the weights of the epoch with the lowest validation loss are
        kept (the initial ones when no epoch improves on them).
    patience : stop after this many epochs without a lower validation loss (needs validation).
    seed : the shuffling; with the same seed and engine thread count the result is the same.
    progress : a progress bar over the batches with the losses.

    Returns
    -------
    FinetuneResult : ``.model``, ``.history``, ``.onnx_bytes``.
    """
    if loss not in ("mse", "cross_entropy"):
        raise ArgumentError(f"loss must be 'mse' or 'cross_entropy', got {loss!r}")
    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ArgumentError(f"{name} must be an int >= 1, got {v!r}")
    if not (isinstance(lr, (int, float)) and np.isfinite(lr) and lr > 0):
        raise ArgumentError(f"lr must be a positive number, got {lr!r}")
    if patience is not None and (validation is None or patience < 1):
        raise ArgumentError("patience needs a validation set and must be >= 1")
    x, t = _check_data(model, X, y, loss, "training data")
    val = None if validation is None else _check_data(model, validation[0], validation[1], loss, "validation")
    trainer = _native.Trainer(model._native, loss)
    writer = _Writer(model, trainer.parameters)  # refuses a model it cannot write back, before training
    mask = writer.trainable(trainer.size)
    params = trainer.get()
    adam = Adam(trainer.size, lr)
    rng = np.random.default_rng(seed)
    history: dict[str, Any] = {"loss": []}
    best_params, best_epoch, best_val, waited = params.copy(), 0, np.inf, 0
    if val is not None:
        best_val = trainer.gradient(val[0], val[1], False)[0]
        history["initial_val_loss"] = best_val
        history["val_loss"] = []
    from tsviz_native.analysis.statistics import _progress

    n = len(x)
    steps = (n + batch_size - 1) // batch_size
    bar = _progress(epochs * steps, progress, desc="fine-tuning", unit="batch",
                    done_text="fine-tuned {done} of {total} batches")
    epoch = 0
    try:
        for epoch in range(1, epochs + 1):
            order = rng.permutation(n)
            total = 0.0
            for s in range(steps):
                idx = np.sort(order[s * batch_size:(s + 1) * batch_size])
                value, _, grad = trainer.gradient(x[idx], t[idx], True)
                total += value * len(idx)
                params = adam.step(params, grad * mask)
                trainer.set(params)
                bar.update(1)
            history["loss"].append(total / n)
            text = f"epoch {epoch}: loss {total / n:.5g}"
            if val is not None:
                v = trainer.gradient(val[0], val[1], False)[0]
                history["val_loss"].append(v)
                text += f", val {v:.5g}"
                if v < best_val:
                    best_val, best_params, best_epoch, waited = v, params.copy(), epoch, 0
                else:
                    waited += 1
            else:
                best_params, best_epoch = params, epoch
            bar.set_postfix_str(text)
            if patience is not None and waited >= patience:
                break
    finally:
        bar.close()
    history = {k: (tuple(v) if isinstance(v, list) else v) for k, v in history.items()}
    return FinetuneResult(writer.write(best_params), history, best_epoch, epoch)


def write_parameters(model: Any, values: np.ndarray, loss: str = "mse") -> bytes:
    """The model's ONNX with the filter layers' parameters set to ``values`` (the flat vector
    of :class:`tsviz_native._native.Trainer`, in its layout)."""
    trainer = _native.Trainer(model._native, loss)
    values = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    if values.size != trainer.size:
        raise ArgumentError(f"expected {trainer.size} parameter values, got {values.size}")
    return _Writer(model, trainer.parameters).write(values)


class _Writer:
    """Writes trained parameters into the model's ONNX graph (see the module's docstring)."""

    def __init__(self, model: Any, parameters: list[dict[str, Any]]) -> None:
        from tsviz_native.analysis.pruning import _onnx, _self_contained_bytes

        self.onnx = _onnx()
        self.original = _self_contained_bytes(self.onnx, model)
        self.params = parameters
        proto = self.onnx.load_from_string(self.original)
        # The written model is checked as strictly as the original passes: a file the ONNX
        # checker already refuses (e.g. an output declared without a shape) is written as is.
        try:
            self.onnx.checker.check_model(proto)
            self.checkable = True
        except self.onnx.checker.ValidationError:
            self.checkable = False
        self.nodes = {n.name or n.output[0]: n for n in proto.graph.node}
        from tsviz_native.analysis.pruning import _Surgery

        surgery = _Surgery(self.onnx, proto)
        self.bias_home: dict[str, str | None] = {}
        for p in parameters:
            where = f"layer {p['layer']!r} (node '{p['onnx_node']}', {p['onnx_op']})"
            if p["onnx_node"] not in self.nodes:
                raise ModelError(f"{where}: its ONNX node is not in the graph")
            for source, what in ((p["weight_source"], "weights"), (p["bias_source"], "bias")):
                if source and surgery.const(source) is None:
                    raise ArgumentError(f"{where}: its {what} '{source}' are computed by other nodes of the "
                                        "graph, not stored as a tensor, so trained values cannot be written back")
            scale = np.ones(p["n_filters"])
            for f in p["folded"]:
                if f["onnx_op"] != "BatchNormalization":
                    scale = scale * f["scale"]
            if np.any(scale == 0):
                raise ArgumentError(f"{where}: a folded constant scales some filters by 0, so trained "
                                    "weights cannot be written back")
            if p["weight_scale"] == 0:
                raise ArgumentError(f"{where}: alpha is 0, so trained weights cannot be written back")
            if p["onnx_op"] in ("Conv", "Gemm") and p["bias_scale"] != 0:
                home = "node"
            elif (p["onnx_op"] == "MatMul" and p["folded"] and p["folded"][0]["onnx_op"] == "Add"
                  and any(surgery.const(i) is not None for i in self.nodes[p["folded"][0]["onnx_node"]].input)):
                home = "add"
            else:
                home = None
            self.bias_home[p["layer"]] = home

    def trainable(self, size: int) -> np.ndarray:
        """1 for the parameters that can be written back, 0 for a bias without a home."""
        mask = np.ones(size, dtype=np.float32)
        for p in self.params:
            if self.bias_home[p["layer"]] is None:
                mask[p["bias_offset"]:p["bias_offset"] + p["n_filters"]] = 0
        return mask

    def write(self, values: np.ndarray) -> bytes:
        onnx = self.onnx
        from onnx import numpy_helper

        from tsviz_native.analysis.pruning import _Surgery

        proto = onnx.load_from_string(self.original)
        surgery = _Surgery(onnx, proto)
        nodes = {n.name or n.output[0]: n for n in proto.graph.node}
        uses: dict[str, int] = {}
        for n in proto.graph.node:
            for name in n.input:
                uses[name] = uses.get(name, 0) + 1

        def put(node: Any, index: int, array: np.ndarray, role: str) -> None:
            array = np.ascontiguousarray(array, dtype=np.float32)
            name = node.input[index] if index < len(node.input) else ""
            if name in surgery.inits and uses.get(name, 0) == 1:
                surgery.inits[name].CopyFrom(numpy_helper.from_array(array, name))
                return
            base = f"{node.name or node.output[0]}_{role}"
            new, k = base, 1
            while new in surgery.inits or new in uses:
                new, k = f"{base}_{k}", k + 1
            tensor = numpy_helper.from_array(array, new)
            proto.graph.initializer.append(tensor)
            surgery.inits[new] = tensor
            while len(node.input) <= index:
                node.input.append("")
            node.input[index] = new

        for p in self.params:
            node = nodes[p["onnx_node"]]
            f_n = p["n_filters"]
            w = values[p["weight_offset"]:p["weight_offset"] + int(np.prod(p["weight_shape"]))].astype(np.float64)
            w = w.reshape(f_n, -1)
            b = values[p["bias_offset"]:p["bias_offset"] + f_n].astype(np.float64)
            # The folded affines that stay in the graph, composed: y = S z + H.
            s_all, h_all = np.ones(f_n), np.zeros(f_n)
            s_rest, h_rest = np.ones(f_n), np.zeros(f_n)  # all but a leading Add that holds the bias
            for i, f in enumerate(p["folded"]):
                fnode = nodes[f["onnx_node"]]
                if f["onnx_op"] == "BatchNormalization":
                    eps = next((a.f for a in fnode.attribute if a.name == "epsilon"), 1e-5)
                    c = len(f["scale"])
                    for j, v in enumerate((np.ones(c), np.zeros(c), np.zeros(c), np.full(c, 1.0 - eps))):
                        put(fnode, j + 1, v, ("scale", "bias", "mean", "var")[j])
                    continue
                sc, sh = np.asarray(f["scale"], np.float64), np.asarray(f["shift"], np.float64)
                s_all, h_all = s_all * sc, h_all * sc + sh
                if not (i == 0 and self.bias_home[p["layer"]] == "add"):
                    s_rest, h_rest = s_rest * sc, h_rest * sc + sh
            w_raw = w / s_all[:, None] / p["weight_scale"]
            home = self.bias_home[p["layer"]]
            if p["onnx_op"] == "Conv":
                dims = surgery.const(node.input[1]).shape
                put(node, 1, w_raw.reshape(dims), "W")
            elif p["weight_transposed"]:
                put(node, 1, w_raw.T, "W")
            else:
                put(node, 1, w_raw, "W")
            if home == "node":
                put(node, 2, (b - h_all) / s_all / p["bias_scale"], "B")
            elif home == "add":
                add = nodes[p["folded"][0]["onnx_node"]]
                k = 1 if surgery.const(add.input[1]) is not None else 0
                old = surgery.const(add.input[k])
                c = (b - h_rest) / s_rest
                # Keep the constant's rank (e.g. (1, F) or (1, 1, F)): channels on its last axis.
                shape = (1,) * (max(old.ndim, 1) - 1) + (f_n,)
                put(add, k, c.reshape(shape), "bias")
        used = {name for n in proto.graph.node for name in n.input}
        kept = [t for t in proto.graph.initializer if t.name in used]
        del proto.graph.initializer[:]
        proto.graph.initializer.extend(kept)
        try:
            if self.checkable:
                onnx.checker.check_model(proto)
        except onnx.checker.ValidationError as e:  # pragma: no cover - a bug if reached
            raise ModelError(f"writing the trained weights produced an invalid ONNX model: {e}") from None
        return proto.SerializeToString()
