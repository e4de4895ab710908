"""Explanations of a batch (docs/definitions.md): importance, saliency, the percentile filter, the trace."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from tsviz_native import _native
from tsviz_native._native import ArgumentError

if TYPE_CHECKING:
    from tsviz_native.analysis.clustering import FilterClusters
    from tsviz_native.model import Layer


class _LayerArrays(Mapping):
    """Read-only ``layer name -> array`` whose views into the engine's explanation are made on
    first access: an explanation of one window of a small model is a few microseconds of
    engine work, and making every view up front cost as much again."""

    __slots__ = ("_names", "_get", "_made")

    def __init__(self, names: tuple[str, ...], get) -> None:
        self._names = names
        self._get = get
        self._made: dict[str, np.ndarray] | None = None  # on first access: most are never read

    def __getitem__(self, name: str) -> np.ndarray:
        made = self._made
        if made is None:
            made = self._made = {}
        a = made.get(name)
        if a is None:
            if name not in self._names:
                raise KeyError(name)
            a = made[name] = self._get(name)
        return a

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{n!r}: array{tuple(self[n].shape)}" for n in self._names) + "}"


@dataclass(frozen=True)
class Explanation:
    """Why the model predicted what it did, for every sample of a batch.

    Arrays are keyed by filter layer name (the ONNX name of the layer's output tensor). All
    arrays are read-only views into the engine's results.

    Attributes
    ----------
    output : (N, K) the model's output.
    target : (N,) the output unit explained, a^L.
    layer_names : filter layers (convolutions and dense layers), topological order.
    preactivations : name -> (N, F, L) z^l, the layer's own output (bias, folded BatchNorm).
    activations : name -> (N, F, L) a^l, z^l after the activation that follows it. For more
        windows than fit in cache at once, ``explain`` does not keep these tensors; the first
        access to either (or to :meth:`saliency` or :meth:`trace`) runs the forward pass again
        and keeps them (docs/engine.md).
    importance_raw : name -> (N, F) sum_i |d a^L / d z^l[f, i]|.
    importance : name -> (N, F) importance_raw min-max scaled within the layer; when all
        filters of a layer have the same raw importance (a one-filter layer), 1 if it is
        positive and 0 if it is 0 (docs/definitions.md, "Importance").
    taylor : name -> (N, F) |sum_i z^l[f, i] d a^L / d z^l[f, i]|, the first-order Taylor
        criterion of Molchanov et al. (2017) with a^L in place of the loss (docs/definitions.md,
        "Pruning criteria"); a criterion to compare with the importance.
    dead : name -> (N, F) bool, the filter's a^l is 0 at every position of the sample: it passes
        nothing on (docs/definitions.md, "Dead filters").
    output_saliency : (N, C, T) |d a^L / d x|, channels-first.
    layers : the model's filter layers (:class:`~tsviz_native.Layer`, with display labels), in
        the order of ``layer_names``.
    wrt : ``"output"``, or ``"loss"`` when :meth:`Model.explain` was asked for the influence on
        the loss (docs/definitions.md, "Influence on the loss"): then importance, taylor and
        output_saliency are of loss_i instead of a^L, and ``target`` is the class of ``y_true``
        (cross_entropy) or -1 (mse: every output unit enters the loss).
    loss : (N,) loss_i of each sample when ``wrt == "loss"``, else None.

    The arrays are keyed by tensor name; the methods accept any name of a layer: its tensor
    name, its label (``"conv 2 · k=5 · 32 filters"`` or ``"conv 2"``) or its index.
    """

    output: np.ndarray
    target: np.ndarray
    layer_names: tuple[str, ...]
    preactivations: Mapping[str, np.ndarray]
    activations: Mapping[str, np.ndarray]
    importance_raw: Mapping[str, np.ndarray]
    importance: Mapping[str, np.ndarray]
    taylor: Mapping[str, np.ndarray]
    dead: Mapping[str, np.ndarray]
    output_saliency: np.ndarray
    layers: tuple[Layer, ...] = field(repr=False, compare=False)
    _native: _native.Explanation = field(repr=False, compare=False)
    wrt: str = "output"
    loss: np.ndarray | None = field(default=None, repr=False, compare=False)

    @classmethod
    def _from_native(cls, ex: _native.Explanation, layers: tuple[Layer, ...], names: tuple[str, ...],
                     wrt: str = "output") -> Explanation:
        """``names``: the layers' names (the model keeps them as a tuple).

        Only what is not a view into the engine's results is set here: the views (output,
        target, output_saliency, and the six layer mappings) are made on first access
        (:meth:`__getattr__`). Explaining one window of a small net takes the engine a few
        microseconds; after other work has evicted the interpreter's state, making the views
        and mappings up front cost 29 of the 99 us the call took from Python, for arrays most
        callers never read."""
        self = object.__new__(cls)
        # Into the instance's dict at once, not one frozen setattr at a time as the generated
        # __init__ would.
        self.__dict__.update(layer_names=names, layers=layers, _native=ex, wrt=wrt, loss=None)
        if wrt == "loss":
            self._parts()
        return self

    # The fields made on first access, and from which call into the module.
    _MAPPINGS = frozenset({"preactivations", "activations", "importance_raw", "importance", "taylor", "dead"})
    _PARTS = frozenset({"output", "target", "output_saliency"})

    def _parts(self) -> None:
        output, target, output_saliency, loss = self.__dict__["_native"].parts()  # one call for the four
        self.__dict__.update(output=output, target=target, output_saliency=output_saliency, loss=loss)

    def __getattr__(self, name: str):
        # Called only for a name the instance does not hold yet (and the class has no default
        # for): a field made on first access, or an AttributeError as usual.
        d = self.__dict__
        if "_native" in d:
            if name in Explanation._MAPPINGS:
                value = d[name] = _LayerArrays(d["layer_names"], getattr(d["_native"], name))
                return value
            if name in Explanation._PARTS:
                self._parts()
                return d[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    @property
    def n_samples(self) -> int:
        return int(self.output.shape[0])

    def layer(self, key: str | int | Layer) -> Layer:
        """The filter layer named by ``key`` (index, tensor name or label; see
        :func:`~tsviz_native.model.resolve_layer`)."""
        return _model.resolve_layer(self.layers, key)

    def _layer(self, key: str | int | Layer) -> str:
        if type(key) is str and key in self.layer_names:  # the common case: a name from layer_names
            return key
        return self.layer(key).name

    def activation_name(self, name: str | int) -> str:
        """The tensor that holds a^l of a filter layer (its activation's output, or the layer
        itself when no elementwise activation follows); a key of :meth:`trace`'s result."""
        return self._native.activation_name(self._layer(name))

    def saliency(
        self, name: str, filters: Sequence[int] | int | None = None, method: str = "auto"
    ) -> np.ndarray:
        """Input saliency of filters of one layer: ``|d sum_i a^l[f, i] / d x|``.

        Parameters
        ----------
        name : a filter layer.
        filters : filter indices, one index, or None for every filter.
        method : ``"auto"`` (default), ``"reverse"`` or ``"forward"``. Reverse mode pushes one
            cotangent per filter back to the input. Forward mode pushes one tangent per input
            point up through the network, each kept on the positions its receptive field
            reaches, and gives every filter of every layer it covers in one pass (kept for
            later calls on this explanation). Both give the same values to float rounding;
            ``"auto"`` picks the cheaper by a count of floating-point operations, and for a
            layer whose activation is the explained unit (a regression head, its one filter
            asked for) hands out :attr:`output_saliency`, which is that saliency.

        Returns
        -------
        numpy.ndarray
            ``(N, F, C, T)`` for all filters or a list, ``(N, C, T)`` for one index;
            channels-first, also for channels-last models.
        """
        if filters is None and method == "auto" and type(name) is str and name in self.layer_names:
            # A full analysis asks for this, layer by layer: straight to the engine, without the
            # checks below (the first call after other work pays each line's cold cache misses,
            # 10 of the 70 us of one window's first layer).
            return self._native.saliency(name, [], "auto")
        name = self._layer(name)
        single = isinstance(filters, (int, np.integer))
        chosen = [] if filters is None else [int(filters)] if single else [int(f) for f in filters]
        if filters is not None and not single and not chosen:
            raise ArgumentError("filters is empty; give None for every filter")
        if method not in ("auto", "reverse", "forward"):
            raise ArgumentError(f"method must be 'auto', 'reverse' or 'forward', got {method!r}")
        out = self._native.saliency(name, chosen, method)
        return out[:, 0] if single else out

    def keep(self, name: str, percentile: float) -> np.ndarray:
        """The percentile filter: ``importance >= percentile(importance, p)`` per sample, with
        numpy's linear interpolation. ``p = 0`` keeps every filter. Returns ``(N, F)`` bool."""
        return self._native.keep(self._layer(name), float(percentile))

    def trace(
        self, name: str, filter: int, position: int, sample: int = 0, active_only: bool = False
    ) -> dict[str, np.ndarray]:
        """The points that produced ``a^l[filter, position]`` (recursive highlighting).

        Returns a bool mask ``(C, L)`` for every tensor from the input up to ``name``, keyed by
        tensor name; the model input's mask is ``(C, T)`` channels-first. Through max-pooling
        only the argmax is kept. ``active_only=True`` also drops points whose contribution is
        exactly 0 (a dead ReLU), so the input mask is the support of the input gradient.
        ``name`` may also be any tensor of the graph, e.g. the output.
        """
        if name not in self.importance and isinstance(name, (str, int, np.integer)):
            try:
                name = self._layer(name)
            except ArgumentError:
                if not isinstance(name, str):
                    raise
        return self._native.trace(name, int(filter), int(position), int(sample), bool(active_only))

    def clusters(
        self,
        name: str,
        k: int | str | None = None,
        seed: int = 0,
        method: str = "kmeans",
        sample: int | None = None,
    ) -> FilterClusters:
        """Filter clustering (docs/definitions.md, "Filter clustering"): groups the filters of a layer by their
        min-max scaled activation pattern, per sample.

        ``k``: None for ``max(1, round(F / 5))``, an int in ``1..F``, or ``"auto"`` (the best
        silhouette). ``method``: ``"kmeans"`` (k-means++) or ``"hierarchical-dtw"``. Cluster 0
        has the highest mean importance. ``sample``: one sample index, or None for all.
        Deterministic for a seed. Dense layers have no activation pattern and are refused.
        See :mod:`tsviz_native.analysis.clustering`.
        """
        from tsviz_native.analysis.clustering import cluster_batch  # lazy: imports numba

        name = self._layer(name)
        acts = self.activations[name]
        if acts.shape[2] == 1:
            raise ArgumentError(
                f"layer {name!r} has one position per filter (a dense layer): no activation "
                "pattern to cluster (docs/definitions.md, Filter clustering)"
            )
        imp = self.importance[name]
        if sample is not None:
            if not isinstance(sample, (int, np.integer)) or isinstance(sample, bool) or not (
                0 <= int(sample) < self.n_samples
            ):
                raise ArgumentError(
                    f"sample must be None or an int in 0..{self.n_samples - 1}; got {sample!r}"
                )
            acts, imp = acts[int(sample) : int(sample) + 1], imp[int(sample) : int(sample) + 1]
        return cluster_batch(acts, imp, k=k, method=method, seed=seed)

    def clusters_all(self, names: Sequence[str] | None = None, **kw: object) -> dict[str, FilterClusters]:
        """:meth:`clusters` for several layers (default: every layer with more than one
        position per filter, i.e. the convolutions), keyed by layer name."""
        if names is None:
            names = [n for n in self.layer_names if self.activations[n].shape[2] > 1]
        return {n: self.clusters(n, **kw) for n in names}


def target_list(target: object, n: int) -> list[int]:
    """Validates ``target``: None, one int, or one int per sample."""
    if target is None:
        return []
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        return [int(target)]
    arr = np.asarray(target)
    if arr.ndim == 1 and arr.dtype.kind in "iu" and len(arr) == n:
        return [int(t) for t in arr]
    raise ArgumentError(
        f"target must be None, an int, or one int per sample ({n}); got {target!r}"
    )


# Last, so that either module may be imported first (model imports this one); Explanation.layer
# reads _model.resolve_layer at call time, not an import statement per call.
import tsviz_native.model as _model
