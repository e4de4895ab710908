"""Pruning of the filters that contribute nothing (the paper's future work, Section 6;
docs/definitions.md, "Pruning ranks").

Filters are ranked by their importance over a data set (:func:`~tsviz_native.analyze_dataset`).
Removing filter ``f`` of a layer removes output channel ``f`` from that layer's weights and
bias, then follows the channel through the ONNX graph: BatchNormalization parameters and
per-channel constants are sliced, activations, pooling and layout ops pass it on, and the next
convolution loses input channel ``f`` (a dense layer after a flatten loses the matching
columns). The result is a smaller, valid ONNX model. Edits are made on the ONNX graph with the
``onnx`` package (the ``prune`` extra), so the pruned file keeps the original's structure.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tsviz_native import _native
from tsviz_native._native import ArgumentError, ModelError

#: Ops that carry a channel through unchanged (same axis): the engine's fact about each op.
_PASS = frozenset(op for op, facts in _native.onnx_ops().items() if facts["keeps_channels"])


@dataclass(frozen=True)
class PruneResult:
    """A pruned model.

    Attributes
    ----------
    onnx_bytes : the pruned ONNX model.
    removed : layer name -> sorted indices of the removed filters.
    n_parameters_before, n_parameters_after : parameters of the original and the pruned
        model, both as :attr:`tsviz_native.Model.n_parameters` counts them (the engine's
        count, BatchNorm folded into its convolution; ``docs/definitions.md``), so they
        match ``tsviz summary``.
    skipped : layer name -> why it was left whole (only when the layers were not named).
    labels : layer name -> its display label (``"conv 2 · k=5 · 32 filters"``).
    history : with fine-tuning, each step's :attr:`FinetuneResult.history
        <tsviz_native.analysis.finetune.FinetuneResult>` (one per pruning step).

    ``print(result)`` shows :meth:`summary`; the bytes are left out of ``repr``.
    """

    onnx_bytes: bytes = field(repr=False)
    removed: Mapping[str, tuple[int, ...]]
    n_parameters_before: int
    n_parameters_after: int
    skipped: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict, repr=False)
    history: tuple[Mapping[str, Any], ...] = ()

    def summary(self) -> str:
        """What was removed and kept, per layer, and the parameter counts before and after."""
        lines = [f"pruned model: {self.n_parameters_before} -> {self.n_parameters_after} parameters "
                 f"({len(self.onnx_bytes)} bytes of ONNX)"]
        for name, removed in self.removed.items():
            shown = ", ".join(map(str, removed[:12])) + (", ..." if len(removed) > 12 else "")
            lines.append(f"  {self.labels.get(name, name)} ({name}): removed {len(removed)} "
                         f"filters" + (f" [{shown}]" if removed else ""))
        for name, why in self.skipped.items():
            lines.append(f"  {self.labels.get(name, name)} ({name}): kept whole, {why}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    @property
    def model(self) -> Any:
        """The pruned model, loaded by the engine."""
        from tsviz_native.model import load

        return load(self.onnx_bytes)

    def save(self, path: str) -> None:
        with open(path, "wb") as f:
            f.write(self.onnx_bytes)


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:  # pragma: no cover - the message is the point
        raise ArgumentError("pruning writes ONNX with the 'onnx' package: pip install 'tsviz-native[prune]'") from None
    return onnx


def choose_filters(
    scores: np.ndarray,
    percentile: float | None = None,
    fraction: float | None = None,
    keep_top: int | None = None,
) -> np.ndarray:
    """Indices of the filters to remove, the least important first, by one rule: below the
    ``percentile`` of the scores, the ``fraction`` least important, or all but the
    ``keep_top`` most important. At least one filter is always kept; ties keep the lower index."""
    rules = [r is not None for r in (percentile, fraction, keep_top)]
    if sum(rules) != 1:
        raise ArgumentError("give exactly one of percentile, fraction or keep_top")
    f = len(scores)
    order = np.lexsort((-np.arange(f), scores))  # ascending score, higher index first on ties
    if percentile is not None:
        if not 0 <= percentile <= 100:
            raise ArgumentError(f"percentile must be between 0 and 100, got {percentile}")
        remove = np.flatnonzero(scores < np.percentile(scores, percentile))
        remove = np.array([i for i in order if i in set(remove.tolist())], dtype=np.int64)
    elif fraction is not None:
        if not 0 <= fraction < 1:
            raise ArgumentError(f"fraction must be in [0, 1), got {fraction}")
        remove = order[: int(np.floor(fraction * f + 0.5))]
    else:
        assert keep_top is not None
        if keep_top < 1:
            raise ArgumentError(f"keep_top must be >= 1, got {keep_top}")
        remove = order[: max(0, f - keep_top)]
    if len(remove) >= f:
        remove = remove[: f - 1]
    return np.sort(np.asarray(remove, dtype=np.int64))


def prune(
    model: Any,
    stats: Any = None,
    *,
    percentile: float | None = None,
    fraction: float | None = None,
    keep_top: int | None = None,
    per_cluster: bool = False,
    clusters: Mapping[str, np.ndarray] | None = None,
    layers: Sequence[str] | None = None,
    scores: Mapping[str, np.ndarray] | Callable[[Any], Mapping[str, np.ndarray]] | None = None,
    finetune: Mapping[str, Any] | None = None,
) -> PruneResult:
    """Remove the least important filters of each chosen layer and write a smaller ONNX model.

    Parameters
    ----------
    model : tsviz_native.Model
    stats : DatasetStats from :func:`~tsviz_native.analyze_dataset`; filters are ranked by
        their mean importance over the data set (docs/definitions.md, "Pruning ranks").
    percentile, fraction, keep_top : the rule, per layer (exactly one, unless per_cluster).
    per_cluster : keep one representative per cluster, the most important filter of each;
        ``clusters`` gives the cluster label of every filter per layer.
    layers : the layers to prune, each named by its tensor name, label or index (see
        :meth:`tsviz_native.Model.layer`). Default: every layer that can be pruned on its own; the
        others are listed in ``PruneResult.skipped`` with the reason.
    scores : rank by these per-layer scores instead of the statistics (e.g. random, or the
        L1 norm of the weights, to compare strategies); or a function of the model that
        returns them, called at each step of iterative pruning.
    finetune : fine-tune after pruning (:func:`~tsviz_native.finetune`): a dict with the
        training data ``X``, ``y`` and any of its keyword arguments (``loss``, ``epochs``,
        ``lr``, ``batch_size``, ``validation``, ``patience``, ``seed``, ``progress``), plus
        ``steps`` (default 1). With ``steps`` > 1 pruning is iterative: each step removes the
        share ``1 - (1 - fraction) ** (1 / steps)`` of each layer's remaining filters, ranked
        anew on the fine-tuned model (by ``scores`` when it is a function, else by the
        importance over ``X``), then fine-tunes; the steps together remove about ``fraction``.

    Returns
    -------
    PruneResult

    Raises
    ------
    ArgumentError
        A layer whose channels cannot be removed consistently (its output feeds an ``Add`` of
        two tensors, a residual connection, or a ``Concat``), with the reason.
    """
    if finetune is not None:
        return _prune_and_finetune(model, stats, percentile=percentile, fraction=fraction, keep_top=keep_top,
                                   per_cluster=per_cluster, clusters=clusters, layers=layers, scores=scores,
                                   finetune=finetune)
    if callable(scores):
        scores = scores(model)
    onnx = _onnx()
    names = [l.name for l in model.layers]
    output_layer = _output_layer(model)
    chosen = ([model.layer(k).name for k in layers] if layers is not None
              else [n for n in names if n != output_layer])
    for n in chosen:
        if n == output_layer:
            raise ArgumentError(f"layer {n!r} makes the model's output; its units cannot be pruned")
    if scores is None:
        if stats is None:
            raise ArgumentError("give the data-set statistics (analyze_dataset) or scores to rank filters by")
        scores = {n: np.asarray(stats.layers[n].mean) for n in chosen}
    plan: dict[str, np.ndarray] = {}
    for n in chosen:
        s = np.asarray(scores[n], dtype=np.float64)
        if per_cluster:
            if clusters is None or n not in clusters:
                raise ArgumentError(f"per_cluster needs the cluster labels of layer {n!r}")
            labels = np.asarray(clusters[n])
            keep = {int(np.flatnonzero(labels == c)[np.argmax(s[labels == c])]) for c in np.unique(labels)}
            plan[n] = np.array(sorted(set(range(len(s))) - keep), dtype=np.int64)
        else:
            plan[n] = choose_filters(s, percentile, fraction, keep_top)

    original = _self_contained_bytes(onnx, model)
    layer_nodes = {l.name: l.onnx_node for l in model.layers}
    labels = {l.name: l.label for l in model.layers}
    skipped: dict[str, str] = {}
    if layers is None:
        # Try each layer alone; the ones that cannot be pruned consistently stay whole.
        for n in list(chosen):
            try:
                _Surgery(onnx, onnx.load_from_string(original)).remove_filters(layer_nodes[n], n, np.array([0]))
            except ArgumentError as e:
                skipped[n] = str(e).split(": ", 1)[1] if str(e).startswith("cannot prune layer") else str(e)
                chosen.remove(n)
    proto = onnx.load_from_string(original)
    surgery = _Surgery(onnx, proto)
    for n in chosen:
        if len(plan[n]):
            surgery.remove_filters(layer_nodes[n], n, plan[n])
    pruned = surgery.finish()
    data = pruned.SerializeToString()
    try:
        onnx.checker.check_model(pruned)
    except onnx.checker.ValidationError as e:  # pragma: no cover - a bug if reached
        raise ModelError(f"pruning produced an invalid ONNX model: {e}") from None
    removed = {n: tuple(int(i) for i in plan[n]) for n in chosen}
    from tsviz_native.model import load

    after = load(data).n_parameters
    return PruneResult(data, removed, model.n_parameters, after, skipped, labels)


def _prune_and_finetune(model: Any, stats: Any, *, finetune: Mapping[str, Any], **rule: Any) -> PruneResult:
    """prune(..., finetune=...): one shot, or `steps` rounds of pruning and fine-tuning."""
    from tsviz_native.analysis.finetune import finetune as run_finetune
    from tsviz_native.analysis.statistics import analyze_dataset

    options = dict(finetune)
    if "X" not in options or "y" not in options:
        raise ArgumentError("finetune needs the training data: finetune=dict(X=..., y=..., epochs=...)")
    X, y = options.pop("X"), options.pop("y")
    steps = options.pop("steps", 1)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ArgumentError(f"finetune 'steps' must be an int >= 1, got {steps!r}")
    unknown = set(options) - {"loss", "epochs", "lr", "batch_size", "validation", "patience", "seed", "progress"}
    if unknown:
        raise ArgumentError(f"finetune has no option(s) {sorted(unknown)}")
    if steps > 1:
        if rule["fraction"] is None or rule["per_cluster"]:
            raise ArgumentError("iterative pruning (finetune steps > 1) takes the fraction rule")
        if rule["scores"] is not None and not callable(rule["scores"]):
            raise ArgumentError("iterative pruning ranks the filters anew at each step: give scores as a "
                                "function of the model, or the statistics")
        rule["fraction"] = 1.0 - (1.0 - rule["fraction"]) ** (1.0 / steps)
    current, original = model, model
    alive = {l.name: np.arange(l.n_filters) for l in model.layers}
    removed: dict[str, list[int]] = {}
    skipped: dict[str, str] = {}
    histories = []
    data = b""
    for step in range(steps):
        step_stats = stats
        if step > 0 and rule["scores"] is None:
            step_stats = analyze_dataset(current, X, progress=bool(options.get("progress", True)))
        result = prune(current, step_stats, **rule)
        skipped.update(result.skipped)
        for name, idx in result.removed.items():
            removed.setdefault(name, []).extend(int(alive[name][i]) for i in idx)
            alive[name] = np.delete(alive[name], list(idx))
        tuned = run_finetune(result.model, X, y, **options)
        histories.append(tuned.history)
        data = tuned.onnx_bytes
        current = tuned.model
    return PruneResult(data, {n: tuple(sorted(v)) for n, v in removed.items()}, original.n_parameters,
                       current.n_parameters, skipped, {l.name: l.label for l in original.layers}, tuple(histories))


def _self_contained_bytes(onnx: Any, model: Any) -> bytes:
    """The model's ONNX bytes with every tensor inline.

    A model saved with external data (PyTorch's dynamo exporter writes ``model.onnx.data``)
    keeps only references in its ``.onnx`` file, which name files relative to the model's
    folder, not the working directory. The engine has already loaded and checked those files
    (inside the model's folder, offsets and lengths within them), so they are read in here from
    the model's folder, and the pruned model is written self-contained, whatever the working
    directory and wherever it is saved.
    """
    data = model.to_bytes()
    source = getattr(model, "_source", None)
    if isinstance(source, bytes) or source is None:
        return data
    proto = onnx.load_from_string(data)
    if not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        return data
    from onnx.external_data_helper import load_external_data_for_model

    load_external_data_for_model(proto, os.path.dirname(os.path.abspath(source)))
    return proto.SerializeToString()


def _output_layer(model: Any) -> str | None:
    """The filter layer whose units are the model's output (not prunable), if any."""
    ops = model.graph_ops
    tail = {"Softmax", "Affine"}
    last = len(ops) - 1
    while last >= 0 and ops[last] in tail:
        last -= 1
    if last >= 0 and ops[last] in ("Dense", "Conv") and model.layers:
        return model.layers[-1].name
    return None


def _inferred_shapes(onnx: Any, proto: Any) -> dict[str, list[int | None]]:
    """Every tensor's shape (None for a dimension that is not fixed), as ONNX shape inference
    finds it from the input's declared shape. Shapes the file records for its tensors are set
    aside first: exporters (tf2onnx) write placeholders such as ``unk__12`` for dimensions
    they did not know, which inference would keep, so a fixed length would look free.
    Constant shape arithmetic (Shape, Gather, Concat before a Reshape) is evaluated."""
    bare = onnx.ModelProto()
    bare.CopyFrom(proto)
    del bare.graph.value_info[:]
    try:
        inferred = onnx.shape_inference.infer_shapes(bare, data_prop=True)
    except Exception:  # inference gives up on some graphs; shapes are then taken as unknown
        inferred = bare
    shapes: dict[str, list[int | None]] = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    return shapes


def _dims_text(dims: list[int | None]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"


class _Surgery:
    """Channel removal on an ONNX graph, following each removed channel to its consumers."""

    def __init__(self, onnx: Any, proto: Any) -> None:
        self.onnx = onnx
        self.proto = proto
        self.graph = proto.graph
        self.inits = {t.name: t for t in self.graph.initializer}
        self.consts: dict[str, np.ndarray] = {}
        for node in self.graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.consts[node.output[0]] = onnx.numpy_helper.to_array(node.attribute[0].t)
        self.shapes = _inferred_shapes(onnx, proto)
        self.consumers: dict[str, list[Any]] = {}
        for node in self.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.outputs = {o.name for o in self.graph.output}
        self.counter = 0
        self.layer = ""

    # -- constants -------------------------------------------------------------------------
    def const(self, name: str) -> np.ndarray | None:
        if name in self.inits:
            return self.onnx.numpy_helper.to_array(self.inits[name])
        return self.consts.get(name)

    def replace_input(self, node: Any, index: int, array: np.ndarray) -> None:
        """Gives node its own copy of a constant input, so shared constants stay intact."""
        self.counter += 1
        name = f"{node.input[index]}__pruned{self.counter}"
        tensor = self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name)
        self.graph.initializer.append(tensor)
        self.inits[name] = tensor
        node.input[index] = name

    def refuse(self, node: Any, why: str) -> None:
        raise ArgumentError(
            f"cannot prune layer {self.layer!r}: its channels reach node '{node.name or node.output[0]}' "
            f"({node.op_type}), {why}"
        )

    # -- the walk ---------------------------------------------------------------------------
    def remove_filters(self, node_name: str, layer: str, remove: np.ndarray) -> None:
        self.layer = layer
        node = next((n for n in self.graph.node if n.name == node_name or (not n.name and n.output[0] == node_name)), None)
        if node is None:
            raise ModelError(f"layer {layer!r}: its ONNX node '{node_name}' is not in the graph")
        w = self.const(node.input[1])
        if w is None:
            self.refuse(node, "whose weights are not a constant")
        if node.op_type == "Conv":
            out_channels, axis_w = w.shape[0], 0
            if int(next((a.i for a in node.attribute if a.name == "group"), 1)) != 1:
                raise ArgumentError(f"cannot prune layer {layer!r}: it is a grouped convolution, "
                                    "whose filters are tied to its input channels")
        elif node.op_type == "Gemm":
            trans_b = int(next((a.i for a in node.attribute if a.name == "transB"), 0))
            out_channels, axis_w = (w.shape[0], 0) if trans_b else (w.shape[1], 1)
        elif node.op_type == "MatMul":
            out_channels, axis_w = w.shape[1], 1
        else:
            raise ModelError(f"layer {layer!r} comes from a {node.op_type} node, which pruning does not handle")
        keep = np.ones(out_channels, dtype=bool)
        keep[remove] = False
        self.replace_input(node, 1, np.compress(keep, w, axis=axis_w))
        if node.op_type in ("Conv", "Gemm") and len(node.input) > 2 and node.input[2]:
            b = self.const(node.input[2])
            if b is not None and b.size == out_channels:
                self.replace_input(node, 2, b.reshape(-1)[keep].reshape(-1) if b.ndim == 1 else np.compress(keep, b, axis=b.ndim - 1))
        rank = len(self.shapes.get(node.output[0]) or [None, None, None])
        axis = 1 if node.op_type != "MatMul" or rank == 2 else rank - 1
        self.follow(node.output[0], axis, keep)

    def follow(self, tensor: str, axis: int, keep: np.ndarray) -> None:
        if tensor in self.outputs:
            raise ArgumentError(f"cannot prune layer {self.layer!r}: its channels reach the model's output '{tensor}'")
        for node in list(self.consumers.get(tensor, [])):
            index = list(node.input).index(tensor)
            self.consume(node, index, tensor, axis, keep)

    def consume(self, node: Any, index: int, tensor: str, axis: int, keep: np.ndarray) -> None:
        op = node.op_type
        if op == "Shape":
            return
        if op in _PASS and index == 0:
            return self.follow(node.output[0], axis, keep)
        if op == "BatchNormalization" and index == 0:
            for j in range(1, 5):
                p = self.const(node.input[j])
                if p is None:
                    self.refuse(node, "whose parameters are not constants")
                self.replace_input(node, j, p[keep])
            return self.follow(node.output[0], axis, keep)
        if op in ("Add", "Sub", "Mul", "Div") or (op == "PRelu" and index == 0):
            other = node.input[1 - index]
            c = self.const(other)
            if c is None:
                self.refuse(node, "which combines it with another tensor (a residual connection); "
                            "its channels would have to be pruned on both sides at once")
            rank = len(self.shapes.get(tensor) or [])
            if c.ndim > rank and rank:
                self.refuse(node, "with a constant of higher rank")
            j = axis - (rank - c.ndim)
            if 0 <= j < c.ndim and c.shape[j] == len(keep):
                self.replace_input(node, 1 - index, np.compress(keep, c, axis=j))
            elif 0 <= j < c.ndim and c.shape[j] != 1:
                self.refuse(node, f"with a constant of shape {c.shape} that does not match the channels")
            return self.follow(node.output[0], axis, keep)
        if op == "Conv" and index == 0:
            if int(next((a.i for a in node.attribute if a.name == "group"), 1)) != 1:
                self.refuse(node, "a grouped convolution that reads it")
            w = self.const(node.input[1])
            self.replace_input(node, 1, np.compress(keep, w, axis=1))
            return None
        if op == "Transpose":
            perm = list(next(a.ints for a in node.attribute if a.name == "perm"))
            return self.follow(node.output[0], perm.index(axis), keep)
        if op in ("Unsqueeze", "Squeeze"):
            axes = self.axes(node)
            if op == "Unsqueeze":
                r = len(self.shapes.get(tensor) or []) + len(axes)
                axes = sorted(a % r for a in axes)
                new, src = 0, 0
                for pos in range(r):
                    if pos in axes:
                        continue
                    if src == axis:
                        new = pos
                        break
                    src += 1
                return self.follow(node.output[0], new, keep)
            r = len(self.shapes.get(tensor) or [])
            axes = sorted(a % r for a in axes) if axes else [i for i, d in enumerate(self.shapes[tensor]) if d == 1]
            if axis in axes:
                self.refuse(node, "which squeezes the channel axis")
            return self.follow(node.output[0], axis - sum(a < axis for a in axes), keep)
        if op in ("ReduceMean", "ReduceMax"):
            axes = self.axes(node)
            r = len(self.shapes.get(tensor) or [])
            axes = sorted(a % r for a in axes)
            if axis in axes:
                self.refuse(node, "which reduces over the channels")
            keepdims = int(next((a.i for a in node.attribute if a.name == "keepdims"), 1))
            return self.follow(node.output[0], axis if keepdims else axis - sum(a < axis for a in axes), keep)
        if op in ("Flatten", "Reshape") and index == 0:
            return self.flatten(node, tensor, axis, keep)
        if op == "Gemm" and index == 0:
            w = self.const(node.input[1])
            trans_b = int(next((a.i for a in node.attribute if a.name == "transB"), 0))
            self.replace_input(node, 1, np.compress(keep, w, axis=1 if trans_b else 0))
            return None
        if op == "MatMul" and index == 0:
            w = self.const(node.input[1])
            rank = len(self.shapes.get(tensor) or [])
            if axis != rank - 1:
                self.refuse(node, "along an axis that is not its channel axis")
            self.replace_input(node, 1, np.compress(keep, w, axis=0))
            return None
        if op == "Concat":
            self.refuse(node, "a concatenation; pruning through it is not supported yet")
        if op == "Softmax":
            self.refuse(node, "a Softmax, whose normalisation would change")
        self.refuse(node, "which pruning does not handle")

    def axes(self, node: Any) -> list[int]:
        attr = next((list(a.ints) for a in node.attribute if a.name == "axes"), None)
        if attr is not None:
            return attr
        if len(node.input) > 1 and node.input[1]:
            c = self.const(node.input[1])
            if c is None:
                self.refuse(node, "whose axes are computed")
            return [int(v) for v in np.atleast_1d(c)]
        return []

    def flatten(self, node: Any, tensor: str, axis: int, keep: np.ndarray) -> None:
        dims = self.shapes.get(tensor)
        out = self.shapes.get(node.output[0])
        if not dims:
            self.refuse(node, f"a {node.op_type} of tensor '{tensor}', whose shape ONNX shape "
                        "inference cannot determine")
        if any(d is None for d in dims[1:]):
            free = ", ".join(str(i) for i, d in enumerate(dims) if i and d is None)
            self.refuse(node, f"a {node.op_type} of tensor '{tensor}' of shape {_dims_text(dims)}, "
                        f"whose axis {free} is not fixed (the model's input length is free), so "
                        "the columns of each channel after it are not known")
        if not out:
            self.refuse(node, f"a {node.op_type} whose output shape ONNX shape inference cannot "
                        "determine (it is computed at run time)")
        if len(out) != 2:
            # Only size-1 axes move: find where the channel axis lands.
            nonone = [i for i, d in enumerate(dims) if i == 0 or d != 1]
            target = [i for i, d in enumerate(out) if i == 0 or d != 1]
            if len(nonone) != len(target) or axis not in nonone:
                self.refuse(node, "a reshape that is not a flatten")
            self.rewrite_reshape(node, [d if i != target[nonone.index(axis)] else int(keep.sum()) for i, d in enumerate(out)])
            return self.follow(node.output[0], target[nonone.index(axis)], keep)
        sample = dims[1:]
        mask = np.ones(sample, dtype=bool)
        index = [slice(None)] * len(sample)
        index[axis - 1] = ~keep
        mask[tuple(index)] = False
        flat = mask.reshape(-1)
        if node.op_type == "Reshape":
            self.rewrite_reshape(node, [out[0] or -1, int(flat.sum())])
        return self.follow(node.output[0], 1, flat)

    def rewrite_reshape(self, node: Any, new_shape: list[int]) -> None:
        if node.op_type != "Reshape":
            return
        shape = self.const(node.input[1])
        if shape is None:
            return  # computed at run time from the (already smaller) input
        shape = shape.astype(np.int64).copy()
        for i, v in enumerate(shape):
            if v > 0 and i > 0 and i < len(new_shape):
                shape[i] = new_shape[i]
        self.replace_input(node, 1, shape)

    def finish(self) -> Any:
        used = {name for node in self.graph.node for name in node.input}
        kept = [t for t in self.graph.initializer if t.name in used]
        del self.graph.initializer[:]
        self.graph.initializer.extend(kept)
        # Shapes recorded for the old sizes would now be wrong.
        del self.graph.value_info[:]
        return self.proto
