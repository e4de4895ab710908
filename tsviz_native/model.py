"""The Python face of a loaded model: validation of user input, then the engine."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np

from tsviz_native import _native
from tsviz_native._native import ArgumentError, ShapeError
from tsviz_native.explain import Explanation, target_list

ModelSource = Union[str, os.PathLike, bytes, bytearray, memoryview]


@dataclass(frozen=True)
class InputGradient:
    """:meth:`Model.input_gradient`: ``value`` (N,) the differentiated quantity per sample,
    ``gradient`` its signed gradient in the input's layout, ``output`` (N, K)."""

    value: np.ndarray
    gradient: np.ndarray
    output: np.ndarray


@dataclass(frozen=True)
class Layer:
    """A filter layer: a convolution or a dense node, named by its ONNX output tensor.

    ``out_length`` is the number of positions per filter at the model's declared input
    length (-1 when the model leaves the length free). ``activation`` is the tensor of the
    layer's a^l: the elementwise activation that follows it, or the layer itself when none
    does (docs/definitions.md). ``label`` is a short display name,
    unique within the model, such as ``"conv 2 · k=5 · 128 filters"`` or
    ``"dense 1 · 2 units"``: tensor names can be long and, in models exported from Keras,
    alike (``.../batchnorm/add_1:0``). Wherever a layer is named, its tensor name, its label,
    the label's first part (``"conv 2"``) and its index are all accepted (:func:`resolve_layer`).
    """

    name: str
    op: str
    n_filters: int
    out_length: int
    kernel: int
    stride: int
    dilation: int
    group: int
    in_channels: int
    onnx_node: str
    onnx_op: str
    activation: str = ""
    label: str = ""

    @property
    def short_label(self) -> str:
        """The first part of :attr:`label`: the kind and its count, e.g. ``"conv 2"``."""
        return self.label.split(" · ")[0]


@dataclass(frozen=True)
class Node:
    """One node of the engine's graph, after loading lowered and folded the ONNX graph
    (docs/engine.md): the tensor it outputs and the op that computes it. The first node is the
    model input; nodes come in topological order.

    ``op`` is the engine's op (``"Conv"``, ``"Relu"``, ``"MaxPool"``, ...);
    ``inputs`` the indices of the nodes it reads; ``shape`` the per-sample shape ``(channels,
    length)`` of its tensor, channels-first, at the model's declared input length (length -1
    when the model leaves it free); ``layer`` the index in :attr:`Model.layers` of a filter
    layer, else -1. ``kernel``, ``stride``, ``dilation`` and ``group`` describe a convolution
    or a windowed pooling (1 elsewhere).
    """

    name: str
    op: str
    inputs: tuple[int, ...]
    onnx_node: str
    onnx_op: str
    shape: tuple[int, int]
    kernel: int
    stride: int
    dilation: int
    group: int
    layer: int

    @property
    def is_filter_layer(self) -> bool:
        return self.layer >= 0

    @classmethod
    def _from_native(cls, d: dict) -> Node:
        return cls(d["name"], d["op"], tuple(d["inputs"]), d["onnx_node"], d["onnx_op"],
                   (int(d["channels"]), int(d["length"])), d["kernel"], d["stride"], d["dilation"],
                   d["group"], d["layer"])


def resolve_layer(layers: Sequence[Layer], key: object) -> Layer:
    """The filter layer that ``key`` names: its index (an int, or a string of digits; negative
    counts from the end), its ONNX tensor name, its display label or the label's first part
    (``"conv 2"``, case and spacing ignored), or the :class:`Layer` itself. The engine's one
    lookup (``tsviz::find_layer``) decides, for Python and C++ alike.

    Raises
    ------
    ArgumentError
        No layer fits; the message lists every layer with its index, label and tensor name.
    """
    if isinstance(key, Layer):
        key = key.name
    for layer in layers:  # the common case, without building the engine's list
        if layer.name == key:
            return layer
    if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
        key = str(int(key))
    index = _native.find_layer([(l.name, l.label) for l in layers], key if isinstance(key, str) else repr(key))
    return layers[index]


_FLOAT32 = np.dtype(np.float32)  # native byte order; numpy keeps one instance


def _shape_text(dims: tuple[int, ...] | list[int]) -> str:
    inner = ", ".join("T" if d < 0 else str(d) for d in dims)
    return f"({inner},)" if len(dims) == 1 else f"({inner})"


class Model:
    """A trained 1-D convolutional network loaded from ONNX.

    Use :func:`load` to make one. Inputs are given in the layout the ONNX model expects, as
    one would feed ONNX Runtime: ``(N, C, T)`` channels-first, ``(N, T, C)`` channels-last
    (Keras), or ``(N, T)``.
    """

    def __init__(self, native: _native.Model, source: str | bytes, allow_nonfinite: bool = False) -> None:
        self._native = native
        self._source = source
        #: The default of ``allow_nonfinite`` for :meth:`predict` and :meth:`explain` (set by
        #: :func:`load`), so that code that calls them without it (analyze_dataset, reports)
        #: follows the caller's choice.
        self.allow_nonfinite = bool(allow_nonfinite)
        self.layers: tuple[Layer, ...] = tuple(Layer(**d) for d in native.layers)
        #: The engine's graph (:class:`Node`), input first, in topological order: what
        #: :meth:`summary` prints.
        self.nodes: tuple[Node, ...] = tuple(Node._from_native(d) for d in native.nodes)
        # What every call reads, kept rather than asked of the engine each time: a call on a
        # small model is microseconds, and after other work each extra Python step costs more.
        self._rank = len(native.sample_shape)
        self._layer_names = tuple(l.name for l in self.layers)

    def to_bytes(self) -> bytes:
        """The ONNX bytes the model was loaded from (read again from its file, if a path)."""
        if isinstance(self._source, bytes):
            return self._source
        return Path(self._source).read_bytes()

    def __reduce__(self) -> tuple:
        # Pickled as its ONNX bytes, so that it travels to worker processes (Dask).
        return (_restore, (self.to_bytes(), self.allow_nonfinite))

    @property
    def input_name(self) -> str:
        return self._native.input_name

    @property
    def output_name(self) -> str:
        return self._native.output_name

    @property
    def layout(self) -> str:
        """``"NCT"``, ``"NTC"`` or ``"NT"``: the layout of the model's input."""
        return self._native.layout

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Per-sample input dims in the model's layout; -1 marks a free length."""
        return tuple(self._native.sample_shape)

    @property
    def source(self) -> str:
        """The model's file name, or ``"<bytes>"``."""
        return self._native.source

    @property
    def n_outputs(self) -> int:
        return self._native.n_outputs

    @property
    def producer(self) -> str:
        """The exporter that wrote the file and its version, e.g. ``"pytorch 2.13.0"``; empty
        when the file does not say. Placeholder words some exporters write into the version
        (tf2onnx: ``"1.17.0 None"``, no git hash) are left out."""
        return " ".join(w for w in self._native.producer.split() if w not in ("None", "none", "null"))

    @property
    def n_parameters(self) -> int:
        """The number of parameters as the engine runs the model: the weights and biases of
        every convolution and dense layer, with a BatchNormalization (or a per-channel affine)
        after a convolution folded into it, plus any per-channel constants left standalone.
        One definition for ``tsviz summary``, :func:`~tsviz_native.prune` and the docs
        (``docs/definitions.md``); a BatchNorm therefore adds no parameters."""
        return self._native.n_parameters

    @property
    def opset(self) -> int:
        return self._native.opset

    @property
    def graph_ops(self) -> tuple[str, ...]:
        """The ops of the engine's lowered graph, in order (after folding), without the input:
        the ``op`` of every :attr:`nodes` entry but the first."""
        return tuple(n.op for n in self.nodes[1:])

    def layer(self, key: str | int | Layer) -> Layer:
        """The filter layer named by ``key``: its index, tensor name or display label (see
        :func:`resolve_layer`); raises ArgumentError listing the valid ones.

        Examples
        --------
        >>> import tsviz_native as tsv
        >>> from tsviz_native import models
        >>> model = tsv.load(models.path("forecaster"))
        >>> [layer.label for layer in model.layers]
        ['conv 1 · k=5 · 16 filters', 'conv 2 · k=5 · 32 filters', 'conv 3 · k=3 · 32 filters', 'dense 1 · 1 unit']
        >>> model.layer("conv 2").name, model.layer(1).name, model.layer("/3/Conv_output_0").label
        ('/3/Conv_output_0', '/3/Conv_output_0', 'conv 2 · k=5 · 32 filters')
        """
        return resolve_layer(self.layers, key)

    def summary(self) -> str:
        """A text overview: input, output, counts of layers by kind, and every layer.

        Examples
        --------
        >>> import tsviz_native as tsv
        >>> from tsviz_native import models
        >>> print(tsv.load(models.path("forecaster")).summary().splitlines()[0])
        model   forecaster_b5m.onnx (opset 17, from pytorch 2.13.0)
        """
        text = self._native.summary()
        raw = self._native.producer
        if raw and raw != self.producer:
            text = text.replace(f"from {raw}", f"from {self.producer}", 1)
        lines = ["", "filter layers (name one by its number, label or tensor name):"]
        width = max(len(l.label) for l in self.layers) if self.layers else 0
        lines += [f"  [{i}] {l.label:<{width}}  {l.name}" for i, l in enumerate(self.layers)]
        return text.rstrip("\n") + "\n" + "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        return (
            f"<tsviz Model {self._native.source!r}: input (N, "
            f"{_shape_text(self.sample_shape)[1:]} {self.layout}, {self.n_outputs} outputs, "
            f"{len(self.layers)} filter layers>"
        )

    def _batch(self, x: object) -> tuple[np.ndarray, bool]:
        """``x`` as a C-contiguous float32 batch, and whether it was one sample.

        Only what is Python's is checked here (the dtype, the rank, the memory layout: read-only
        and strided arrays are copied as needed); the engine checks the shape against the
        model's declared one and refuses NaN or infinity, for embedded users alike.
        """
        if (type(x) is np.ndarray and x.dtype is _FLOAT32 and x.flags.c_contiguous
                and x.ndim == self._rank + 1):
            return x, False  # what the checks below return for it, in fewer calls
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as e:  # ragged lists, objects numpy cannot convert
            raise ArgumentError(f"input cannot be read as a numeric array: {e}") from None
        if arr.dtype.kind not in "fiu" or arr.dtype.itemsize > 8:
            raise ArgumentError(
                f"input has dtype {arr.dtype}; expected float32 or float64 (integers are converted)"
            )
        rank = self._rank
        single = arr.ndim == rank
        if single:
            arr = arr[np.newaxis]
        if arr.ndim != rank + 1:
            raise ShapeError(
                f"input has shape {_shape_text(arr.shape)}; the model expects "
                f"(N, {_shape_text(self.sample_shape)[1:]} or one sample "
                f"{_shape_text(self.sample_shape)}"
            )
        return np.ascontiguousarray(arr, dtype=np.float32), single

    def _nonfinite(self, allow: bool | None) -> bool:
        return self.allow_nonfinite if allow is None else bool(allow)

    def predict(self, x: object, allow_nonfinite: bool | None = None) -> np.ndarray:
        """Run the model.

        Parameters
        ----------
        x : array_like
            A batch ``(N, ...)`` or one sample ``(...)`` in the model's layout, float32 or
            float64 (computed in float32). A fixed length the model declares must match.
        allow_nonfinite : bool, optional
            NaN or infinity in ``x`` raise ArgumentError naming the first sample and position,
            unless this is True; then they go through with IEEE semantics (NaN in, NaN out),
            as in ONNX Runtime. Default: the model's ``allow_nonfinite`` (False unless
            :func:`load` was told otherwise).

        Returns
        -------
        numpy.ndarray
            ``(N, K)`` float32 outputs; ``N = 1`` for one sample.

        Examples
        --------
        >>> import tsviz_native as tsv
        >>> from tsviz_native import models
        >>> model = tsv.load(models.path("forecaster"))
        >>> X, y, _ = models.forecaster_windows("test")
        >>> model.predict(X[:3]).shape
        (3, 1)
        """
        batch, _ = self._batch(x)
        return self._native.predict(batch, self._nonfinite(allow_nonfinite))

    def explain(
        self,
        x: object,
        target: object = None,
        output: str = "logit",
        allow_nonfinite: bool | None = None,
        *,
        wrt: str = "output",
        y_true: object = None,
        loss: str | None = None,
    ) -> Explanation:
        """Explain the model's predictions (docs/definitions.md: importance, saliency, trace).

        Parameters
        ----------
        x : array_like
            A batch ``(N, ...)`` or one sample, as for :meth:`predict`.
        target : None, int, or sequence of int
            The output unit a^L: None for the default (the predicted class of a classifier,
            unit 0 of a forecaster), one unit for all samples, or one per sample.
        output : {"logit", "prob"}
            For a model that ends in Softmax, explain the logit (default) or the probability.
        allow_nonfinite : bool, optional
            Let NaN and infinity in ``x`` through, as for :meth:`predict`.
        wrt : {"output", "loss"}
            Explain the output unit (default) or the loss against ``y_true``
            (docs/definitions.md, "Influence on the loss"): importance, Taylor criterion and
            output saliency then say which filters and input points drive the error.
        y_true : array_like, needed when ``wrt="loss"``
            The targets: ``(N, K)`` values (or ``(N,)`` when K = 1) for mse, ``(N,)`` class
            indices for cross_entropy; one sample's without the batch axis.
        loss : {"mse", "cross_entropy"}, optional
            Default: cross_entropy for a classifier (K > 1), mse for K = 1.

        Returns
        -------
        Explanation
            Importance of every filter, output saliency, and the forward tensors; its
            ``saliency``, ``keep`` and ``trace`` reuse the same forward pass.

        Examples
        --------
        >>> import tsviz_native as tsv
        >>> from tsviz_native import models
        >>> model = tsv.load(models.path("forecaster"))
        >>> X, y, _ = models.forecaster_windows("test")
        >>> ex = model.explain(X[:4])
        >>> first = ex.layer_names[0]
        >>> ex.importance[first].shape, float(ex.importance[first].max())
        ((4, 16), 1.0)
        >>> ex.saliency(first).shape          # (N, F, C, T)
        (4, 16, 2, 50)
        >>> ex.output_saliency.shape
        (4, 2, 50)
        """
        if output not in ("logit", "prob"):
            raise ArgumentError(f"output must be 'logit' or 'prob', got {output!r}")
        if wrt not in ("output", "loss"):
            raise ArgumentError(f"wrt must be 'output' or 'loss', got {wrt!r}")
        batch, single = self._batch(x)
        extra: dict[str, object] = {}
        if wrt == "loss":
            if target is not None or output != "logit":
                raise ArgumentError("wrt='loss' explains the loss: leave target and output at their defaults")
            name, y = self.loss_targets(y_true, len(batch), loss, single)
            extra = {"loss": name, "y_true": y}
        elif y_true is not None or loss is not None:
            raise ArgumentError("y_true and loss are for wrt='loss'; pass wrt='loss' to explain the loss")
        return Explanation._from_native(
            self._native.explain(
                batch, target_list(target, len(batch)), output, self._nonfinite(allow_nonfinite), **extra
            ),
            self.layers,
            self._layer_names,
            wrt,
        )

    def loss_targets(self, y_true: object, n: int, loss: str | None = None, single: bool = False) -> tuple[str, np.ndarray]:
        """The loss's name (default: cross_entropy for a classifier, mse for K = 1) and
        ``y_true`` checked against it for ``n`` samples, flat float32 as the engine takes it:
        mse needs ``(n, K)`` values (``(n,)`` when K = 1), cross_entropy ``(n,)`` class indices
        (the engine checks that they are integers in [0, K)). ``single``: one sample's targets,
        without the batch axis."""
        k = self.n_outputs
        if loss is None:
            loss = "cross_entropy" if k > 1 else "mse"
        if loss not in ("mse", "cross_entropy"):
            raise ArgumentError(f"loss must be 'mse' or 'cross_entropy', got {loss!r}")
        if y_true is None:
            raise ArgumentError(f"the {loss} loss needs y_true: " + (
                f"{n} class indices" if loss == "cross_entropy" else f"{n} x {k} target values"))
        try:
            y = np.asarray(y_true, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ArgumentError(f"y_true cannot be read as numbers: {e}") from None
        if single:
            y = y[np.newaxis]
        want = (n,) if loss == "cross_entropy" or k == 1 else (n, k)
        if loss == "mse" and k == 1 and y.shape == (n, 1):
            y = y.reshape(n)
        if y.shape != want:
            raise ShapeError(
                f"y_true has shape {_shape_text(y.shape)}; the {loss} loss needs {_shape_text(want)}"
                + (" (one class index per sample)" if loss == "cross_entropy" else "")
            )
        return loss, np.ascontiguousarray(y.reshape(-1), dtype=np.float32)

    def input_gradient(
        self,
        x: object,
        of: str = "output",
        *,
        target: object = None,
        output: str = "logit",
        y_true: object = None,
        loss: str | None = None,
        layer: str | int | Layer | None = None,
        filter: int | None = None,
        allow_nonfinite: bool | None = None,
    ) -> InputGradient:
        """The signed gradient of a batch (docs/definitions.md, "Signed input gradient"): of
        the output unit a^L (``of="output"``, ``target`` and ``output`` as for :meth:`explain`),
        of the loss against ``y_true`` (``of="loss"``), or of one filter's position-summed
        activation sum_i a^l[filter, i] (``of="filter"``, with ``layer`` and ``filter``). One
        forward and one backward pass per chunk of samples; what attacks and inverse
        optimisation step along.

        Returns
        -------
        InputGradient
            ``value`` (N,), ``gradient`` in the layout of ``x`` (one sample: its own shape),
            ``output`` (N, K).

        Examples
        --------
        >>> import tsviz_native as tsv
        >>> from tsviz_native import models
        >>> model = tsv.load(models.path("forecaster"))
        >>> X, y, _ = models.forecaster_windows("test")
        >>> g = model.input_gradient(X[:3], "loss", y_true=y[:3])
        >>> g.gradient.shape, g.value.shape
        ((3, 2, 50), (3,))
        """
        if of not in ("output", "loss", "filter"):
            raise ArgumentError(f"of must be 'output', 'loss' or 'filter', got {of!r}")
        if output not in ("logit", "prob"):
            raise ArgumentError(f"output must be 'logit' or 'prob', got {output!r}")
        batch, single = self._batch(x)
        name, y, layer_name, f = "mse", np.zeros(0, np.float32), "", 0
        if of == "loss":
            name, y = self.loss_targets(y_true, len(batch), loss, single)
        elif y_true is not None or loss is not None:
            raise ArgumentError("y_true and loss are for of='loss'")
        if of == "filter":
            if layer is None or filter is None:
                raise ArgumentError("of='filter' needs a layer and a filter")
            layer_name, f = self.layer(layer).name, int(filter)
        elif layer is not None or filter is not None:
            raise ArgumentError("layer and filter are for of='filter'")
        if of != "output" and (target is not None or output != "logit"):
            raise ArgumentError("target and output are for of='output'")
        value, grad, out = self._native.input_gradient(
            batch, of, target_list(target, len(batch)), output, name, y, layer_name, f,
            self._nonfinite(allow_nonfinite),
        )
        return InputGradient(value=value, gradient=grad[0] if single else grad, output=out)

    def predict_zeroed(self, x: object, zero: dict, allow_nonfinite: bool | None = None) -> np.ndarray:
        """:meth:`predict` with filters removed: ``zero`` maps a layer (any name
        :meth:`layer` takes) to a boolean mask of its filters, ``(F,)`` for every sample or
        ``(N, F)`` per sample; the engine sets a^l of each masked filter to 0 as it runs
        (docs/definitions.md, "Faithfulness"). The model itself is not changed."""
        batch, _ = self._batch(x)
        masks = {}
        for key, mask in zero.items():
            m = np.asarray(mask)
            if m.dtype.kind not in "biu":
                raise ArgumentError(f"zero[{key!r}] must be a boolean mask of filters, got dtype {m.dtype}")
            masks[self.layer(key).name] = np.ascontiguousarray(m != 0, dtype=np.uint8).reshape(-1)
        return self._native.predict_zeroed(batch, masks, self._nonfinite(allow_nonfinite))


def load(source: ModelSource, *, max_memory: int | None = None, allow_nonfinite: bool = False) -> Model:
    """Load an ONNX model from a path or from the bytes of one.

    ``max_memory`` (bytes; default 4 GiB) bounds the decoded weights and the activations of
    one call, checked before anything is allocated: a model file is untrusted input.
    ``allow_nonfinite`` is the model's default for :meth:`Model.predict` and
    :meth:`Model.explain`: whether NaN and infinity in an input are computed with (IEEE) or
    refused (the default).

    Raises
    ------
    ModelError
        The file is missing, not ONNX, or uses an op, attribute or type TSViz does not
        support; the message names the file, the node and the op.

    Examples
    --------
    >>> import tsviz_native as tsv
    >>> from tsviz_native import models
    >>> model = tsv.load(models.path("forecaster"))
    >>> model.layout, model.sample_shape, model.n_outputs
    ('NCT', (2, 50), 1)
    >>> [(layer.op, layer.n_filters) for layer in model.layers]
    [('conv', 16), ('conv', 32), ('conv', 32), ('dense', 1)]
    >>> tsv.load(b"not a model")
    Traceback (most recent call last):
    ...
    tsviz_native._native.ModelError: <bytes>: not an ONNX model ...
    """
    limit: dict[str, int] = {}
    if max_memory is not None:
        if isinstance(max_memory, bool) or not isinstance(max_memory, int) or max_memory < 1:
            raise ArgumentError(f"max_memory must be a positive number of bytes, got {max_memory!r}")
        limit["max_memory"] = max_memory
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return Model(_native.Model.from_bytes(data, **limit), data, allow_nonfinite)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(Path(source))
        return Model(_native.Model.load(path, **limit), os.path.abspath(path), allow_nonfinite)
    raise ArgumentError(
        f"load expects a path or the bytes of an ONNX file, got {type(source).__name__}"
    )


def _restore(data: bytes, allow_nonfinite: bool) -> Model:
    """Unpickling: the model from its ONNX bytes, with its default input policy."""
    return load(data, allow_nonfinite=allow_nonfinite)
