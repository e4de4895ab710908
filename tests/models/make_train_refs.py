#!/usr/bin/env python3
"""Reference loss gradients from PyTorch autograd, written as committed fixtures.

The tests compare the engine's loss gradients against these files, so they need no PyTorch.
Regenerate them with a Python that has torch, onnx, numpy, pytest and the installed
tsviz_native (used only to read the committed data sets and the shipped models' paths;
nothing here is computed by the engine):

    python tests/models/make_train_refs.py train     # refs/train_<model>.npz
    python tests/models/make_train_refs.py loss      # refs/loss_<shipped model>.npz

Extra arguments restrict a part to some names, e.g. `... train fcn_op17 resnet_op17_bn`.

train: for every committed test model of a family with a PyTorch equivalent that reads its
weights from the ONNX file (bench/torch_peers.py, and OPS_ZOO / KERAS_STRIDED below), one
refs/train_<manifest key>.npz from that very file's weights (folded as the engine folds them),
in float32 as the model runs, for the mean loss over N = 6 samples (cross entropy of the
Softmax input for classifiers, else mean squared error):
  x (N, ...) float32 in the model's ONNX layout: conftest.real_windows(shape, layout, 6, seed=3)
      with 64 for a free length; y (N, 1) float32: np.random.default_rng(3).integers(0, K) as
      class indices for K > 1, else standard_normal targets;
  output (N, K): the model's output (probabilities for Softmax models); loss (): the mean loss;
  layer_names: z^l of every filter layer in the engine's order;
  for each layer l (in that order): weight_shape_<l>; bias_grad_<l> (F,): the whole bias
      gradient; scale_<l>: max |gradient| over the layer's weights and bias (the tolerance's
      scale); weight_index_<l>: a fixed sample of flat weight indices (all of them when the
      weight has at most N_SAMPLE entries; else N_SAMPLE drawn with default_rng(0) without
      replacement, sorted) and weight_grad_<l> the gradient there; weight_proj_<l> (N_PROJ,):
      the whole weight gradient, flattened, dotted with conftest.projection_directions(n,
      N_PROJ) (unit vectors fixed by a counter-based hash, not by NumPy's generators).
loss: for the shipped models (tsviz_native.models: forecaster, fcn-gunpoint), a float64 PyTorch
function that runs the file's ONNX nodes (Conv, Relu, MaxPool, Flatten, ReduceMean, Gemm,
Softmax), refs/loss_<name>.npz with x (float32, the first 16 forecaster test windows or the
first 8 GunPoint test series), y, per-sample loss (mse of the output, or cross entropy of the
Softmax input) and its input gradient d loss_i / d x_i (all in float64).
The files are byte-reproducible.  Last run with torch 2.13.0+cpu, onnx 1.23.2, numpy 2.4.6,
Python 3.11.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
REFS = HERE / "refs"
N_TRAIN = 6
SEED = 3
N_SAMPLE = 64
N_PROJ = 4

sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
from conftest import (  # noqa: E402
    MANIFEST, TRAIN_MODELS, model_family, model_path, projection_directions, training_data)


def save(path: Path, arrays: dict) -> None:
    """np.savez_compressed with fixed zip timestamps, so the bytes depend on the arrays only."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for key, value in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, member.getvalue())
    path.write_bytes(buf.getvalue())


# --------------------------------------------------------------------------------------------
# train: weight and bias gradients of the loss
# --------------------------------------------------------------------------------------------

def extra_nets(peers):  # type: ignore[no-untyped-def]
    """PyTorch equivalents of the two test models bench/torch_peers.py has none for (the
    architectures of make_models.py); padding the engine folds from a Pad node into the
    convolution is written out where the file has it as a node."""
    import torch
    import torch.nn.functional as F

    class OpsZoo(peers.TorchNet):
        def forward(self, x):
            dw, c2, cb, c4, fc = self.L
            z1 = dw.conv(F.pad(x, (2, 1)) if dw.pad == (0, 0) else x)  # a Pad node, or the Conv's pads
            z2 = c2.conv(F.elu(z1))
            m = F.max_pool1d(torch.sigmoid(z2), 3, 2, 1, dilation=2, ceil_mode=True)
            p = F.avg_pool1d(m, 3, 2, 1, ceil_mode=True, count_include_pad=False)
            z4 = c4.conv(torch.cat([p, cb.conv(m)], dim=1))
            return fc.dense(z4.amax(dim=2)), [], [], []

    class KerasStrided(peers.TorchNet):
        layout = "NTC"

        def forward(self, x):
            c1, c2, c3, fc = self.L
            z1 = c1.conv(x.transpose(1, 2))
            a2 = F.relu(c2.conv(F.pad(z1, (4, 0))))
            a3 = torch.tanh(c3.conv(F.pad(F.avg_pool1d(a2, 2), (2, 0))))
            return fc.dense(a3.transpose(1, 2).flatten(1)), [], [], []

    return {"ops_zoo": OpsZoo, "keras_strided": KerasStrided}


def train_refs(name: str) -> dict:
    import onnx
    import torch
    import torch.nn.functional as F
    import torch_peers

    torch.set_num_threads(1)
    cls = {**torch_peers.NETS, **extra_nets(torch_peers)}[model_family(name)]
    net = type(cls.__name__, (cls,), {"onnx_file": str(model_path(name).relative_to(ROOT))})()
    graph = onnx.load(str(net.path)).graph
    softmax = graph.node[-1].op_type == "Softmax"
    k = MANIFEST[name]["n_outputs"]
    x, y = training_data(name, k, N_TRAIN, SEED)
    params = []
    for spec in net.L:
        spec.w.requires_grad_(True)
        spec.b.requires_grad_(True)
        params += [spec.w, spec.b]
    logits = net.forward(torch.from_numpy(x))[0]
    out = torch.softmax(logits, dim=1) if softmax else logits
    if k > 1:
        loss = F.cross_entropy(logits, torch.from_numpy(y.reshape(-1).astype(np.int64)))
    else:
        loss = ((logits - torch.from_numpy(y)) ** 2).mean()
    loss.backward()
    res = {"x": x, "y": y, "output": out.detach().numpy().astype(np.float32),
           "loss": np.float64(loss.detach()), "layer_names": np.array(net.layer_names())}
    for l, spec in enumerate(net.L):
        tw = spec.w.grad.detach().numpy().reshape(-1).astype(np.float32)
        tb = spec.b.grad.detach().numpy().reshape(-1).astype(np.float32)
        n = tw.size
        idx = (np.arange(n) if n <= N_SAMPLE
               else np.sort(np.random.default_rng(0).choice(n, N_SAMPLE, replace=False)))
        res[f"weight_shape_{l}"] = np.array(spec.w.shape, dtype=np.int64)
        res[f"bias_grad_{l}"] = tb
        res[f"scale_{l}"] = np.float32(max(np.abs(tw).max(), np.abs(tb).max(), 1e-12))
        res[f"weight_index_{l}"] = idx.astype(np.int64)
        res[f"weight_grad_{l}"] = tw[idx]
        res[f"weight_proj_{l}"] = projection_directions(n, N_PROJ) @ tw.astype(np.float64)
    return res


# --------------------------------------------------------------------------------------------
# loss: input gradients of the per-sample loss of the shipped models
# --------------------------------------------------------------------------------------------

def torch_net(path):  # type: ignore[no-untyped-def]
    """A float64 PyTorch function of x (N, C, T) that runs the shipped model's ONNX nodes (a
    chain of Conv, Relu, MaxPool, Flatten, ReduceMean, Gemm, Softmax), weights read from the
    file; it returns (logits, output): the Softmax input and the output."""
    import onnx
    import torch
    from onnx import numpy_helper

    g = onnx.load(str(path)).graph
    w = {i.name: torch.tensor(numpy_helper.to_array(i).astype(np.float64)) for i in g.initializer}

    def attrs(node):
        return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def run(x):
        h, logits = x, None
        for node in g.node:
            a = attrs(node)
            if node.op_type == "Conv":
                pads = a.get("pads", [0, 0])
                if a.get("auto_pad", b"NOTSET") == b"SAME_UPPER":  # stride 1: k - 1 in all, the extra one at the end
                    total = a.get("dilations", [1])[0] * (a["kernel_shape"][0] - 1)
                    pads = [total // 2, total - total // 2]
                h = torch.nn.functional.pad(h, (pads[0], pads[1]))
                h = torch.nn.functional.conv1d(h, w[node.input[1]], w[node.input[2]],
                                               stride=a.get("strides", [1])[0], dilation=a.get("dilations", [1])[0])
            elif node.op_type == "Relu":
                h = torch.relu(h)
            elif node.op_type == "MaxPool":
                h = torch.nn.functional.max_pool1d(h, a["kernel_shape"][0], a.get("strides", a["kernel_shape"])[0])
            elif node.op_type == "Flatten":
                h = h.reshape(h.shape[0], -1)
            elif node.op_type == "ReduceMean":
                h = h.mean(dim=-1)
            elif node.op_type == "Gemm":
                wt = w[node.input[1]]
                h = h @ (wt.T if a.get("transB", 0) else wt) + w[node.input[2]]
            elif node.op_type == "Softmax":
                logits, h = h, torch.softmax(h, dim=-1)
            else:
                raise AssertionError(f"{path}: no PyTorch rule for {node.op_type}")
        return (h if logits is None else logits), h

    return run


def loss_data(name: str) -> tuple[np.ndarray, np.ndarray]:
    from tsviz_native import models

    if name == "forecaster":
        X, y, _ = models.forecaster_windows("test")
        return X[:16].astype(np.float32), y[:16].astype(np.float32)
    X, labels = models.gunpoint("test")
    return X[:8].astype(np.float32), labels[:8].astype(np.int64)


LOSS_MODELS = ["forecaster", "fcn-gunpoint"]


def loss_refs(name: str) -> dict:
    import torch
    from tsviz_native import models

    X, y = loss_data(name)
    net = torch_net(models.path(name))
    x = torch.tensor(X.astype(np.float64), requires_grad=True)
    logits, out = net(x)
    if name == "forecaster":
        per = ((out - torch.tensor(y.astype(np.float64)).reshape(-1, 1)) ** 2).mean(dim=1)
    else:
        per = torch.nn.functional.cross_entropy(logits, torch.tensor(y), reduction="none")
    per.sum().backward()
    return {"x": X, "y": y, "loss": per.detach().numpy(), "gradient": x.grad.numpy()}


def main() -> None:
    part = sys.argv[1] if len(sys.argv) > 1 else ""
    names = {"train": TRAIN_MODELS, "loss": LOSS_MODELS}.get(part)
    if names is None:
        sys.exit("usage: make_train_refs.py train|loss [names...]")
    only = set(sys.argv[2:])
    unknown = only - set(names)
    if unknown:
        sys.exit(f"unknown {part} names: {sorted(unknown)}; expected some of {names}")
    for name in names:
        if only and name not in only:
            continue
        res = train_refs(name) if part == "train" else loss_refs(name)
        path = REFS / f"{part}_{name}.npz"
        save(path, res)
        print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
