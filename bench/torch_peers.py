"""PyTorch equivalents of the committed test models, and the PyTorch side of each workload.

Benchmark code, not part of the package (PyTorch is a benchmark dependency only). The weights
are read from the ONNX initializers; the architectures are those of
``tests/models/make_models.py`` (which nests its modules inside functions, so they cannot be
imported). Each network's ``forward(x)`` takes the input in the model's ONNX layout and
returns ``(logits, zs, acts, kinks)``:

* ``logits`` (N, K): the output whose unit is explained (the Softmax input for classifiers
  that end in Softmax, as the engine does);
* ``zs`` / ``acts``: ``z^l`` and ``a^l`` of every filter layer in the engine's order
  (``model.layers`` / ``ex.layer_names``): ``a^l`` is ``z^l`` after the elementwise activation
  that is its only consumer, else ``z^l`` itself;
* ``kinks``: ReLU inputs that are not a ``z^l`` (the residual ``Add`` outputs), used to leave
  out samples that sit on a ReLU kink in the correctness check.

``onnx_layers`` reads every filter layer's weights from the graph the way the engine folds
them (bias, a per-channel constant ``Mul``/``Add`` after the conv, a ``Squeeze`` between, a
``BatchNormalization``), and returns the name of the tensor that is ``z^l``; the networks check
those names against ``model.layers``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
TEST_MODELS = ROOT / "tests" / "models"


# --------------------------------------------------------------------------------------------
# weights from the ONNX graph
# --------------------------------------------------------------------------------------------

@dataclass
class LayerSpec:
    kind: str                 # "conv" or "dense"
    node: str                 # ONNX node name of the Conv / Gemm / MatMul
    z_name: str               # the tensor that is z^l (the engine's layer name)
    w: torch.Tensor           # conv: (F, C/g, K); dense: (F, X)
    b: torch.Tensor           # (F,)
    stride: int = 1
    dilation: int = 1
    group: int = 1
    pad: tuple = (0, 0)       # (begin, end) along T
    extra: dict = field(default_factory=dict)

    def conv(self, h):
        """F.conv1d with this layer's padding (symmetric padding goes to conv1d itself)."""
        p0, p1 = self.pad
        if p0 != p1:
            h = F.pad(h, (p0, p1))
            p0 = 0
        return F.conv1d(h, self.w, self.b, self.stride, p0, self.dilation, self.group)

    def dense(self, h):
        return F.linear(h, self.w, self.b)


def _attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def onnx_layers(path) -> list[LayerSpec]:
    """The filter layers of an ONNX model in graph order, with weights folded as the engine
    folds them (z^l = the last per-channel constant affine before the activation)."""
    model = onnx.load(str(path))
    g = model.graph
    inits = {i.name: numpy_helper.to_array(i).astype(np.float32) for i in g.initializer}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def const_input(node):
        """The constant operand of a binary op, or None."""
        ins = [i for i in node.input if i in inits]
        return inits[ins[0]] if len(ins) == 1 and len(node.input) == 2 else None

    def follow(out, w, b, nf):
        """Fold Squeeze / per-channel Add / Mul / BatchNormalization after a layer into w, b."""
        while True:
            cons = consumers.get(out, [])
            if len(cons) != 1 or out in {o.name for o in g.output}:
                return out, w, b
            c = cons[0]
            if c.op_type == "Squeeze":
                out = c.output[0]
                continue
            if c.op_type in ("Add", "Mul", "Sub", "Div"):
                k = const_input(c)
                if k is None or k.size not in (1, nf):
                    return out, w, b
                k = k.reshape(-1)
                if c.op_type == "Add":
                    b = b + k
                elif c.op_type == "Sub" and c.input[1] in inits:
                    b = b - k
                elif c.op_type == "Mul":
                    w = w * k.reshape((-1,) + (1,) * (w.ndim - 1))
                    b = b * k
                elif c.op_type == "Div" and c.input[1] in inits:
                    w = w / k.reshape((-1,) + (1,) * (w.ndim - 1))
                    b = b / k
                else:
                    return out, w, b
                out = c.output[0]
                continue
            if c.op_type == "BatchNormalization":
                a = _attrs(c)
                gamma, beta, mean, var = (inits[i] for i in c.input[1:5])
                s = gamma / np.sqrt(var + a.get("epsilon", 1e-5))
                w = w * s.reshape((-1,) + (1,) * (w.ndim - 1))
                b = (b - mean) * s + beta
                out = c.output[0]
                continue
            return out, w, b

    specs = []
    for n in g.node:
        if n.op_type == "Conv":
            a = _attrs(n)
            w = inits[n.input[1]]
            nf = w.shape[0]
            w = w.reshape(nf, w.shape[1], -1)                       # Keras: (F, C, 1, K)
            b = inits[n.input[2]] if len(n.input) > 2 and n.input[2] else np.zeros(nf, np.float32)
            k = w.shape[-1]
            stride = int(a.get("strides", [1])[-1])
            dil = int(a.get("dilations", [1])[-1])
            auto = a.get("auto_pad", b"NOTSET")
            auto = auto.decode() if isinstance(auto, bytes) else auto
            if auto in ("SAME_UPPER", "SAME_LOWER"):
                assert stride == 1, "SAME padding with stride > 1 is not needed here"
                tot = dil * (k - 1)
                small, big = tot // 2, tot - tot // 2
                pad = (small, big) if auto == "SAME_UPPER" else (big, small)
            else:
                pads = list(a.get("pads", [0, 0]))
                d = len(pads) // 2
                pad = (int(pads[d - 1]), int(pads[-1]))             # last spatial axis
            out, w, b = follow(n.output[0], w, b, nf)
            specs.append(LayerSpec("conv", n.name, out, torch.from_numpy(np.ascontiguousarray(w)),
                                   torch.from_numpy(np.ascontiguousarray(b)), stride, dil,
                                   int(a.get("group", 1)), pad))
        elif n.op_type == "Gemm":
            a = _attrs(n)
            w = inits[n.input[1]]
            w = w if a.get("transB", 0) else w.T
            w = w * a.get("alpha", 1.0)
            nf = w.shape[0]
            b = (inits[n.input[2]].reshape(-1) * a.get("beta", 1.0)
                 if len(n.input) > 2 and n.input[2] else np.zeros(nf, np.float32))
            out, w, b = follow(n.output[0], w, np.broadcast_to(b, (nf,)).astype(np.float32), nf)
            specs.append(LayerSpec("dense", n.name, out, torch.from_numpy(np.ascontiguousarray(w)),
                                   torch.from_numpy(np.ascontiguousarray(b))))
        elif n.op_type == "MatMul" and n.input[1] in inits:
            w = inits[n.input[1]].T                                  # (X, F) -> (F, X)
            nf = w.shape[0]
            out, w, b = follow(n.output[0], w, np.zeros(nf, np.float32), nf)
            specs.append(LayerSpec("dense", n.name, out, torch.from_numpy(np.ascontiguousarray(w)),
                                   torch.from_numpy(np.ascontiguousarray(b))))
    return specs


# --------------------------------------------------------------------------------------------
# the networks
# --------------------------------------------------------------------------------------------

class TorchNet:
    """Base: ``onnx_file`` (relative to the repository root), ``layout`` and ``forward``."""

    key = ""
    onnx_file = ""
    layout = "NCT"
    softmax = False
    description = ""

    def __init__(self):
        self.path = ROOT / self.onnx_file
        self.L = onnx_layers(self.path)

    def layer_names(self):
        return [s.z_name for s in self.L]

    def forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def predict(self, x):
        logits = self.forward(x)[0]
        return torch.softmax(logits, dim=1) if self.softmax else logits


class PaperNetTorch(TorchNet):
    key = "paper_net"
    onnx_file = "tests/models/paper_net_op17.onnx"
    description = ("Conv1d(2,16,5,p2)-ReLU-MaxPool2-Conv1d(16,32,5,p2)-ReLU-MaxPool2-"
                   "Conv1d(32,32,3,p1)-ReLU-Flatten-Linear(384,1)")

    def forward(self, x):
        c1, c2, c3, fc = self.L
        z1 = c1.conv(x)
        a1 = F.relu(z1)
        z2 = c2.conv(F.max_pool1d(a1, 2))
        a2 = F.relu(z2)
        z3 = c3.conv(F.max_pool1d(a2, 2))
        a3 = F.relu(z3)
        z4 = fc.dense(self.flatten(a3))
        return z4, [z1, z2, z3, z4], [a1, a2, a3, z4], []

    def flatten(self, a):
        return a.flatten(1)


class FCNTorch(TorchNet):
    key = "fcn"
    onnx_file = "tests/models/fcn_op17.onnx"
    softmax = True
    description = ("3x [Conv1d same (128/8, 256/5, 128/3) - BN (folded in the export) - ReLU], "
                   "mean over T, Linear(128,2), Softmax (the logit is explained)")

    def forward(self, x):
        c1, c2, c3, fc = self.L
        z1 = c1.conv(x)
        a1 = F.relu(z1)
        z2 = c2.conv(a1)
        a2 = F.relu(z2)
        z3 = c3.conv(a2)
        a3 = F.relu(z3)
        z4 = fc.dense(a3.mean(dim=2))
        return z4, [z1, z2, z3, z4], [a1, a2, a3, z4], []


class ResNetTorch(TorchNet):
    key = "resnet"
    onnx_file = "tests/models/resnet_op17.onnx"
    description = ("stem Conv1d(1,16,7,p3)-ReLU; block1 (16->16, identity shortcut); block2 "
                   "(16->32, 1x1 conv shortcut); global average pool; Linear(32,3); BN folded")

    def forward(self, x):
        stem, b1c1, b1c2, b2c1, b2c2, short, fc = self.L
        z0 = stem.conv(x)
        h0 = F.relu(z0)
        z1 = b1c1.conv(h0)
        a1 = F.relu(z1)
        z2 = b1c2.conv(a1)                 # feeds the Add: a^l = z^l
        p1 = z2 + h0
        h1 = F.relu(p1)
        z3 = b2c1.conv(h1)
        a3 = F.relu(z3)
        z4 = b2c2.conv(a3)
        z5 = short.conv(h1)
        p2 = z4 + z5
        h2 = F.relu(p2)
        z6 = fc.dense(h2.mean(dim=2))
        zs = [z0, z1, z2, z3, z4, z5, z6]
        return z6, zs, [h0, a1, z2, a3, z4, z5, z6], [p1, p2]


class ChannelsLastTorch(TorchNet):
    key = "channels_last"
    onnx_file = "tests/models/channels_last_op17.onnx"
    layout = "NTC"
    description = ("input (N,T,C) -> permute -> Conv1d(3,8,5,s2,d2,p4) -> LeakyReLU(0.1) -> "
                   "Conv1d(8,8,3,d3) -> Tanh -> flatten -> x@W+b")

    def forward(self, x):
        c1, c2, fc = self.L
        h = x.permute(0, 2, 1)
        z1 = c1.conv(h)
        a1 = F.leaky_relu(z1, 0.1)
        z2 = c2.conv(a1)
        a2 = torch.tanh(z2)
        z3 = fc.dense(a2.flatten(1))
        return z3, [z1, z2, z3], [a1, a2, z3], []


class KerasPaperNetTorch(PaperNetTorch):
    key = "keras_paper_net"
    onnx_file = "tests/models/keras_paper_net_op17.onnx"
    layout = "NTC"
    description = ("Keras (tf2onnx), input (N,50,2): Conv1D(16,5,same,relu)-MaxPool1D(2)-"
                   "Conv1D(32,5,same,relu)-MaxPool1D(2)-Conv1D(32,3,same,relu)-Flatten "
                   "(channels-last order)-Dense(1)")

    def forward(self, x):
        return super().forward(x.transpose(1, 2))

    def flatten(self, a):
        return a.transpose(1, 2).flatten(1)   # Keras flattens (T, C)


class KerasFCNTorch(FCNTorch):
    key = "keras_fcn"
    onnx_file = "tests/models/keras_fcn_op17.onnx"
    layout = "NTC"
    description = ("Keras (tf2onnx), input (N,150,1): 3x [Conv1D same (128/8, 256/5, 128/3) - "
                   "BatchNormalization (exported as Mul+Add; folded here) - ReLU], "
                   "GlobalAveragePooling1D, Dense(2, softmax)")

    def forward(self, x):
        return super().forward(x.transpose(1, 2))


NETS = {c.key: c for c in (PaperNetTorch, FCNTorch, ResNetTorch, ChannelsLastTorch,
                           KerasPaperNetTorch, KerasFCNTorch)}


# --------------------------------------------------------------------------------------------
# the PyTorch workloads
# --------------------------------------------------------------------------------------------

def _minmax(v):
    """Min-max scaling per sample over the filters of a layer; a constant row gives 1 if its
    value is positive, else 0 (docs/definitions.md, "Importance")."""
    lo = v.amin(dim=1, keepdim=True)
    hi = v.amax(dim=1, keepdim=True)
    span = hi - lo
    flat = torch.where(hi > 0, torch.ones_like(v), torch.zeros_like(v))
    return torch.where(span > 0, (v - lo) / torch.where(span > 0, span, torch.ones_like(span)), flat)


def _cf(net, g):
    """A gradient w.r.t. x as channels-first (..., C, T)."""
    return g.transpose(-1, -2) if net.layout == "NTC" else g


def _target_and_grads(net, x, retain):
    out, zs, acts, _ = net.forward(x)
    if out.shape[1] > 1:
        target = out.detach().argmax(dim=1)
    else:
        target = torch.zeros(out.shape[0], dtype=torch.int64)
    t = out.gather(1, target[:, None])
    grads = torch.autograd.grad(t.sum(), [x] + zs, retain_graph=retain)
    imp_raw = [g.abs().reshape(g.shape[0], g.shape[1], -1).sum(-1) for g in grads[1:]]
    imp = [_minmax(r) for r in imp_raw]
    return out.detach(), acts, imp_raw, imp, _cf(net, grads[0].abs())


def explain(net, x_np):
    """Forward keeping z^l, one backward from the target: importance of every filter of every
    layer (raw and min-max scaled) and the output saliency, channels-first."""
    x = torch.from_numpy(x_np).requires_grad_(True)
    out, _, imp_raw, imp, sal = _target_and_grads(net, x, retain=False)
    return out, imp_raw, imp, sal


def full_grad(net, x_np, cap=1 << 23):
    """Full analysis, reverse mode: explain (one forward, graph kept, one backward from the
    target), then per layer ``torch.autograd.grad(a^l, x, one_hot_cotangents,
    is_grads_batched=True)``: cotangent f = 1 on filter f at every position, 0 elsewhere, so
    row f is d sum_i a^l[f, i] / dx. Filters are split into chunks when a batched cotangent
    would exceed ``cap`` floats (32 MiB; on the FCN, chunks of 3 filters at 64 samples and of
    218 at 1 sample: smaller chunks stay in cache and were faster here than one big batch).
    Returns (explain results, [saliency (N, F, C, T) per layer])."""
    x = torch.from_numpy(x_np).requires_grad_(True)
    out, acts, imp_raw, imp, osal = _target_and_grads(net, x, retain=True)
    n = x.shape[0]
    widest = max(int(np.prod(a.shape[1:])) for a in acts)   # largest cotangent per sample
    chunk = max(1, cap // (n * widest))
    sal = []
    for a in acts:
        nf = a.shape[1]
        rest = tuple(a.shape[2:])
        eye = torch.eye(nf, dtype=a.dtype).reshape((nf, 1, nf) + (1,) * len(rest))
        parts = []
        for f0 in range(0, nf, chunk):
            f1 = min(nf, f0 + chunk)
            v = eye[f0:f1].expand((f1 - f0, n, nf) + rest)
            (g,) = torch.autograd.grad(a, x, v, retain_graph=True, is_grads_batched=True)
            parts.append(g.abs())
        g = parts[0] if len(parts) == 1 else torch.cat(parts, 0)
        sal.append(_cf(net, g.transpose(0, 1)))                 # (F, N, ...) -> (N, F, C, T)
    return (out, imp_raw, imp, osal), sal


def _summed_acts(net):
    def f(x1):
        _, _, acts, _ = net.forward(x1.unsqueeze(0))
        return torch.cat([a.reshape(a.shape[0], a.shape[1], -1).sum(-1).reshape(-1) for a in acts])
    return f


def jacfwd_chunk(net, x_np, cap=1 << 21):
    """Samples per vmap chunk so that the batched tangents of the widest activation,
    (chunk * C * T, F, L), stay under ``cap`` floats (8 MiB: 1 sample of the FCN per chunk,
    26 of the paper net; measured faster than bigger chunks, which leave the cache)."""
    with torch.no_grad():
        _, _, acts, _ = net.forward(torch.from_numpy(x_np[:1]))
    widest = max(int(np.prod(a.shape[1:])) for a in acts)
    tangents = int(np.prod(x_np.shape[1:]))
    return max(1, min(len(x_np), cap // (tangents * widest)))


def full_jacfwd(net, x_np, chunk=None):
    """Full analysis, forward mode for the saliency: explain as in :func:`explain`, then
    ``torch.func.vmap(torch.func.jacfwd(f), chunk_size=chunk)`` over the samples, where f maps
    one sample to every layer's position-summed activations (sum_i a^l[f, i] for every filter
    of every layer, concatenated): one Jacobian (F_total, C, T) per sample."""
    ex = explain(net, x_np)
    x = torch.from_numpy(x_np)
    j = torch.func.vmap(torch.func.jacfwd(_summed_acts(net)), chunk_size=chunk)(x)
    j = _cf(net, j.abs())
    sizes = [s.w.shape[0] for s in net.L]
    return ex, list(torch.split(j, sizes, dim=1))
