#!/usr/bin/env python3
"""Export the ONNX test models used by the engine's tests.

The .onnx files and manifest.json in this folder are committed, so the tests
need neither PyTorch nor TensorFlow.  Regenerate them with:

    python3 -m venv .venvs/torch
    .venvs/torch/bin/pip install torch==2.13.0 onnx onnxruntime onnxscript numpy
    python3 -m venv .venvs/tf
    .venvs/tf/bin/pip install tensorflow-cpu==2.21.0 tf2onnx==1.17.0 onnxruntime

    .venvs/torch/bin/python tests/models/make_models.py torch
    .venvs/tf/bin/python    tests/models/make_models.py keras
    # either python (needs only onnx):
    .venvs/torch/bin/python tests/models/make_models.py describe

Each part writes its own .onnx files and merges its entries into
manifest.json (sorted by name); the other part's entries are kept.
Every export is checked with onnx.checker, run with onnxruntime on random
input of batch 1 and 64, and compared to the framework's own output (1e-5).
Extra arguments restrict a part to some models/files, e.g. `... torch fcn resnet_op17`.

Reference explanations (refs/, committed; the engine's tests compare against them):

    .venvs/torch/bin/python tests/models/make_models.py refs-torch
    .venvs/tf/bin/python    tests/models/make_models.py refs-keras

rebuild each underlying model from the same seeds (nothing is re-exported) and write
refs/<model>.npz for paper_net, fcn, resnet, channels_last, ops_zoo (PyTorch autograd) and
keras_paper_net, keras_fcn, keras_strided, keras_activations, keras_separable, keras_tcn
(tf.GradientTape), plus refs/index.json mapping every
manifest key (e.g. paper_net_op11, resnet_op17_bn) to its refs file name in refs/ (every export
variant of a model shares one file: folding BatchNorm does not change z^l).  All in float32, as
the model runs.  Each .npz (np.savez_compressed) holds, for N = 4 inputs of real data:
  x (N, ...) float32 in the model's ONNX layout (NCT, or NTC for channels_last and Keras);
      x_source: where each sample came from (see ref_candidate):
      paper nets: ch0 = 50-step window of B5M standardised by the series mean/std, ch1 = its
      np.diff(prepend=first); FCNs: GunPoint_TEST series; others: channel c = a window of B5M
      (c even) or of diff(B5M) (c odd), each standardised by its own mean/std, offsets apart;
  target (N,) int64: a^L = argmax class (K > 1; the LOGIT, i.e. the Softmax input, when the
      model ends in Softmax) or unit 0 (K == 1);  output (N, K): the model's output (probabilities
      for Softmax models);
  n_layers, layer_filters (F per layer), layer_kinds ('conv'/'dense'), layer_modules (the
      framework layers, for reading only): the filter layers -- every convolution and dense layer
      -- in the order the forward runs them.  z^l = the layer's output with bias, after a
      BatchNormalization or per-channel constant affine that directly follows (ops_zoo:
      conv*scale+shift, and (mix-mu)/sd); Keras Conv1D(activation=...) -> pre-activation.
      a^l = the elementwise activation applied directly to z^l, else z^l;
  importance_raw_<l> (N, F) = sum_i |d a^L / d z^l[f, i]|;
  saliency_<l> (N, F, C, T) = |d (sum_i a^l[f, i]) / d x|, channels-first for every layout;
  output_saliency (N, C, T) = |d a^L / d x|; for Softmax models also
  output_prob_saliency (N, C, T) = |d softmax(logits)[target] / d x|.
Inputs are chosen away from kinks: candidate k = 0, 1, ... is taken only if no ReLU/LeakyReLU
input is within 1e-4 of 0 and no max-pool window has its two largest values within 1e-5 (the
FCNs have ~77k ReLUs per sample and no such input: for them no ReLU input within 1e-5 of 0).
Checks: the instrumented forward equals the model's own, onnxruntime on every committed .onnx of
the model equals the framework output (1e-5), a final dense layer's saliency for the target
equals output_saliency, and the top-two output margin exceeds 1e-4.  The files are
byte-reproducible.

Reference loss gradients (refs/train_<model>.npz, refs/loss_<shipped model>.npz) are written by
the sibling script make_train_refs.py (see its header).

Known: with Keras 3, tf2onnx 1.17's convert.from_keras fails (KeyError 'keras_tensor_N');
the script then converts a tf.function wrapper with convert.from_function.  Outputs are
byte-reproducible (tf2onnx's drifting generated names, the names of nodes it merges across
parallel branches and its opset-dependent order of those branches are canonicalised).
keras_activations and keras_tcn (functional models) convert with from_keras. Keras 3's exact gelu is not exported: TensorFlow
2.21 writes it with Erfc, which tf2onnx 1.17 cannot convert. A Keras SeparableConv1D is two
filter layers in the graph (and in its refs): the depthwise convolution, then the pointwise one
with the bias.
Last run with torch 2.13.0+cpu, onnxscript 0.7.2, tensorflow-cpu 2.21.0, keras 3.15.1,
tf2onnx 1.17.0, onnx 1.23.2, onnxruntime 1.32.0, numpy 2.4.6, Python 3.11.
"""

import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MANIFEST = os.path.join(HERE, "manifest.json")
ATOL = 1e-5


# --------------------------------------------------------------------------
# shared helpers (need only onnx / onnxruntime / numpy)
# --------------------------------------------------------------------------

def graph_ops(model):
    ops = set()

    def walk(g):
        for n in g.node:
            ops.add(n.op_type if n.domain in ("", "ai.onnx") else n.domain + "." + n.op_type)
            for a in n.attribute:
                if a.g is not None and a.g.node:
                    walk(a.g)
                for sg in a.graphs:
                    walk(sg)

    walk(model.graph)
    return sorted(ops)


def model_opset(model):
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    raise RuntimeError("no default-domain opset")


def check_and_run(path, ref_fn, sample_shape, extra_shapes=()):
    """onnx.checker + ORT run vs framework output. ref_fn(x: np.ndarray) -> np.ndarray."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    in_name = sess.get_inputs()[0].name
    rng = np.random.default_rng(1234)
    worst = 0.0
    shapes = [(1,) + tuple(sample_shape), (64,) + tuple(sample_shape)]
    shapes += [tuple(s) for s in extra_shapes]
    for shp in shapes:
        x = rng.standard_normal(shp).astype(np.float32)
        got = sess.run(None, {in_name: x})[0]
        ref = np.asarray(ref_fn(x))
        assert got.shape == ref.shape, (path, shp, got.shape, ref.shape)
        d = float(np.max(np.abs(got - ref)))
        print(f"    {os.path.basename(path)} input {shp} -> {got.shape}: max|ort-ref| = {d:.3g}")
        worst = max(worst, d)
        assert d <= ATOL, f"{path}: diff {d} > {ATOL} for input {shp}"
    return model, worst


def merge_manifest(entries, tools):
    data = {"models": {}, "tools": {}}
    if os.path.exists(MANIFEST):
        with open(MANIFEST) as f:
            data = json.load(f)
    data.setdefault("models", {})
    data.setdefault("tools", {})
    data["models"].update(entries)
    data["models"] = {k: data["models"][k] for k in sorted(data["models"])}
    data["tools"].update(tools)
    data["tools"] = {k: data["tools"][k] for k in sorted(data["tools"])}
    out = {"models": data["models"], "tools": data["tools"]}
    with open(MANIFEST, "w") as f:
        json.dump(out, f, indent=2, sort_keys=False)
        f.write("\n")
    print(f"wrote {MANIFEST} ({len(out['models'])} models)")


def entry(name, model, framework, exporter, sample_shape, layout, free_length,
          n_outputs, description, in_name, out_name):
    return {
        "file": name + ".onnx",
        "framework": framework,
        "exporter": exporter,
        "opset": model_opset(model),
        "input_shape": [int(d) for d in sample_shape],
        "layout": layout,
        "free_length": bool(free_length),
        "n_outputs": int(n_outputs),
        "ops": graph_ops(model),
        "input_name": in_name,
        "output_name": out_name,
        "description": description,
    }


def strip_doc_strings(model):
    """Drop doc_strings (TorchScript puts Python stack traces there) and the dynamo exporter's
    stack traces in node metadata, to keep files small and stable, and free of the exporting
    machine's paths."""
    model.doc_string = ""
    model.graph.doc_string = ""
    for n in model.graph.node:
        n.doc_string = ""
        kept = [p for p in n.metadata_props if p.key != "pkg.torch.onnx.stack_trace"]
        del n.metadata_props[:]
        n.metadata_props.extend(kept)


# --------------------------------------------------------------------------
# PyTorch part
# --------------------------------------------------------------------------

def torch_models():
    """(build, specs): the PyTorch test models, rebuilt from fixed seeds (used by `torch` and `refs-torch`)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(2)

    def randomize_bn(m, g):
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm1d):
                c = mod.num_features
                with torch.no_grad():
                    mod.running_mean.copy_(torch.randn(c, generator=g) * 0.5)
                    mod.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
                    mod.weight.copy_(torch.rand(c, generator=g) + 0.5)
                    mod.bias.copy_(torch.randn(c, generator=g) * 0.2)

    # ---- model definitions ------------------------------------------------
    class PaperNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv1d(2, 16, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
                nn.Conv1d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
                nn.Conv1d(32, 32, 3, padding=1), nn.ReLU(),
            )
            self.flatten = nn.Flatten()
            self.fc = nn.Linear(32 * 12, 1)

        def forward(self, x):
            return self.fc(self.flatten(self.features(x)))

    class FCN(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = nn.Sequential(
                nn.Conv1d(1, 128, 8, padding="same"), nn.BatchNorm1d(128), nn.ReLU(),
                nn.Conv1d(128, 256, 5, padding="same"), nn.BatchNorm1d(256), nn.ReLU(),
                nn.Conv1d(256, 128, 3, padding="same"), nn.BatchNorm1d(128), nn.ReLU(),
            )
            self.fc = nn.Linear(128, 2)

        def forward(self, x):
            h = self.block(x).mean(dim=2)
            return torch.softmax(self.fc(h), dim=1)

    class ResBlock(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.c1 = nn.Conv1d(cin, cout, 3, padding=1)
            self.b1 = nn.BatchNorm1d(cout)
            self.c2 = nn.Conv1d(cout, cout, 3, padding=1)
            self.b2 = nn.BatchNorm1d(cout)
            self.short = nn.Identity() if cin == cout else nn.Conv1d(cin, cout, 1)

        def forward(self, x):
            h = F.relu(self.b1(self.c1(x)))
            h = self.b2(self.c2(h))
            return F.relu(h + self.short(x))

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv1d(1, 16, 7, padding=3), nn.BatchNorm1d(16), nn.ReLU())
            self.block1 = ResBlock(16, 16)
            self.block2 = ResBlock(16, 32)
            self.pool = nn.AdaptiveAvgPool1d(1)
            self.fc = nn.Linear(32, 3)

        def forward(self, x):
            h = self.block2(self.block1(self.stem(x)))
            return self.fc(torch.flatten(self.pool(h), 1))

    class ChannelsLast(nn.Module):
        def __init__(self, g):
            super().__init__()
            self.c1 = nn.Conv1d(3, 8, 5, stride=2, dilation=2, padding=4)
            self.act1 = nn.LeakyReLU(0.1)
            self.c2 = nn.Conv1d(8, 8, 3, stride=1, dilation=3)
            self.act2 = nn.Tanh()
            # T: 64 -> 32 -> 26
            self.W = nn.Parameter(torch.randn(8 * 26, 4, generator=g) * 0.1)
            self.b = nn.Parameter(torch.randn(4, generator=g) * 0.1)

        def forward(self, x):  # x: (N, T, C)
            h = x.permute(0, 2, 1)
            h = self.act2(self.c2(self.act1(self.c1(h))))
            h = torch.flatten(h, 1)
            return h @ self.W + self.b

    class OpsZoo(nn.Module):
        def __init__(self, g):
            super().__init__()
            self.dw = nn.Conv1d(4, 4, 3, groups=4)             # after pad: 63 -> 61
            self.elu = nn.ELU()
            self.conv = nn.Conv1d(4, 8, 3, padding=1)           # 61
            self.register_buffer("scale", torch.rand(8, generator=g) + 0.5)
            self.register_buffer("shift", torch.randn(8, generator=g) * 0.3)
            self.mp = nn.MaxPool1d(3, stride=2, padding=1, dilation=2, ceil_mode=True)  # 61 -> 30
            self.ap = nn.AvgPool1d(3, stride=2, padding=1, count_include_pad=False, ceil_mode=True)  # 30 -> 16
            self.conv_b = nn.Conv1d(8, 8, 3, stride=2, padding=2)  # 30 -> 16
            self.mix = nn.Conv1d(16, 12, 1)
            self.register_buffer("mu", torch.randn(12, generator=g) * 0.2)
            self.register_buffer("sd", torch.rand(12, generator=g) + 0.5)
            self.gmp = nn.AdaptiveMaxPool1d(1)
            self.drop = nn.Dropout(0.3)
            self.fc = nn.Linear(12, 5)

        def forward(self, x):
            h = F.pad(x, (2, 1))
            h = self.elu(self.dw(h))
            h = self.conv(h) * self.scale.view(1, -1, 1) + self.shift.view(1, -1, 1)
            h = torch.sigmoid(h)
            h = self.mp(h)
            h = torch.cat([self.ap(h), self.conv_b(h)], dim=1)
            h = (self.mix(h) - self.mu.view(1, -1, 1)) / self.sd.view(1, -1, 1)
            h = self.gmp(h).flatten(1)
            return self.fc(self.drop(h))

    class ActivationsZoo(nn.Module):
        """Each activation of recent nets after its own convolution, gating and branch arithmetic."""

        def __init__(self, g):
            super().__init__()
            self.c_gelu = nn.Conv1d(3, 4, 3, padding=1)
            self.c_silu = nn.Conv1d(4, 4, 3, padding=1)
            self.c_hswish = nn.Conv1d(4, 4, 3, padding=1)
            self.c_mish = nn.Conv1d(4, 4, 3, padding=1)
            self.c_relu6 = nn.Conv1d(4, 4, 3, padding=1)
            self.c_softplus = nn.Conv1d(4, 4, 3, padding=1)
            self.c_selu = nn.Conv1d(4, 4, 3, padding=1)
            self.c_prelu = nn.Conv1d(4, 4, 3, padding=1)
            self.prelu = nn.PReLU(4)
            with torch.no_grad():
                self.prelu.weight.copy_(torch.rand(4, generator=g) * 0.5)
            self.c_hsig = nn.Conv1d(4, 4, 3, padding=1)
            self.c_value = nn.Conv1d(4, 4, 3, padding=1)
            self.c_gate = nn.Conv1d(4, 4, 3, padding=1)
            self.c_mix = nn.Conv1d(4, 4, 1)
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            h = F.gelu(self.c_gelu(x))
            h = F.silu(self.c_silu(h))
            h = F.hardswish(self.c_hswish(h))
            h = F.mish(self.c_mish(h))
            h = F.relu6(self.c_relu6(h) * 3.0)
            h = F.softplus(self.c_softplus(h))
            h = F.selu(self.c_selu(h))
            h = self.prelu(self.c_prelu(h))
            s = F.hardsigmoid(self.c_hsig(h))
            gated = self.c_value(h) * torch.sigmoid(self.c_gate(h))   # gating: a Mul of two tensors
            h = (gated - s) / (s + 1.0)                                # Sub and Div of two tensors
            h = F.gelu(self.c_mix(h), approximate="tanh")
            return self.fc(h.mean(dim=2))

    class InceptionModule(nn.Module):
        def __init__(self, cin, nf, kernels=(9, 5, 3)):
            super().__init__()
            self.bottleneck = nn.Conv1d(cin, nf, 1, bias=False) if cin > 1 else nn.Identity()
            bc = nf if cin > 1 else cin
            self.convs = nn.ModuleList([nn.Conv1d(bc, nf, k, padding=k // 2, bias=False) for k in kernels])
            self.pool = nn.MaxPool1d(3, stride=1, padding=1)
            self.pool_conv = nn.Conv1d(cin, nf, 1, bias=False)
            self.bn = nn.BatchNorm1d(nf * (len(kernels) + 1))

        def forward(self, x):
            b = self.bottleneck(x)
            h = torch.cat([c(b) for c in self.convs] + [self.pool_conv(self.pool(x))], dim=1)
            return F.relu(self.bn(h))

    class Inception(nn.Module):
        """InceptionTime (Fawaz et al. 2020), two modules and a residual shortcut, small."""

        def __init__(self):
            super().__init__()
            self.m1 = InceptionModule(2, 4)
            self.m2 = InceptionModule(16, 4)
            self.short = nn.Conv1d(2, 16, 1, bias=False)
            self.short_bn = nn.BatchNorm1d(16)
            self.fc = nn.Linear(16, 3)

        def forward(self, x):
            h = self.m2(self.m1(x))
            h = F.relu(h + self.short_bn(self.short(x)))
            return self.fc(h.mean(dim=2))

    class TCN(nn.Module):
        """Temporal convolutional network (Bai et al. 2018): causal dilated convolutions, one block
        written with a wider Conv padding and a chomping Slice, one with a left Pad; residual Adds;
        a head on the last time step."""

        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv1d(2, 6, 3, dilation=1, padding=2)
            self.c2 = nn.Conv1d(6, 6, 3, dilation=2, padding=4)
            self.down = nn.Conv1d(2, 6, 1)
            self.c3 = nn.Conv1d(6, 6, 3, dilation=4)
            self.c4 = nn.Conv1d(6, 6, 3, dilation=8)
            self.fc = nn.Linear(6, 2)

        def forward(self, x):
            h = F.relu(self.c1(x)[:, :, :-2])
            h = F.relu(self.c2(h)[:, :, :-4])
            r = F.relu(h + self.down(x))
            h = F.relu(self.c3(F.pad(r, (8, 0))))
            h = F.relu(self.c4(F.pad(h, (16, 0))))
            h = F.relu(h + r)
            return self.fc(h[:, :, -1])

    class Depthwise(nn.Module):
        """Depthwise-separable convolutions (XceptionTime-style): groups = channels, then 1x1."""

        def __init__(self):
            super().__init__()
            self.dw1 = nn.Conv1d(3, 3, 7, padding=3, groups=3)
            self.pw1 = nn.Conv1d(3, 8, 1)
            self.bn1 = nn.BatchNorm1d(8)
            self.dw2 = nn.Conv1d(8, 16, 5, padding=2, groups=8)
            self.pw2 = nn.Conv1d(16, 8, 1)
            self.bn2 = nn.BatchNorm1d(8)
            self.fc = nn.Linear(8, 2)

        def forward(self, x):
            h = F.relu(self.bn1(self.pw1(self.dw1(x))))
            h = F.relu(self.bn2(self.pw2(self.dw2(h))))
            return self.fc(h.mean(dim=2))

    def build(name):
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(12345)
        m = {
            "paper_net": lambda: PaperNet(),
            "fcn": lambda: FCN(),
            "resnet": lambda: ResNet(),
            "channels_last": lambda: ChannelsLast(g),
            "ops_zoo": lambda: OpsZoo(g),
            "activations_zoo": lambda: ActivationsZoo(g),
            "inception": lambda: Inception(),
            "tcn": lambda: TCN(),
            "depthwise": lambda: Depthwise(),
        }[name]()
        randomize_bn(m, g)
        m.eval()
        return m

    # name -> (sample shape, layout, T-axis dynamic?, n_outputs, description)
    specs = {
        "paper_net": ((2, 50), "NCT", False, 1,
                      "TSViz paper forecaster: Conv1d(2,16,5,p2)-ReLU-MaxPool2-Conv1d(16,32,5,p2)-ReLU-MaxPool2-"
                      "Conv1d(32,32,3,p1)-ReLU-Flatten-Linear(384,1)"),
        "fcn": ((1, 150), "NCT", True, 2,
                "FCN (Wang et al. 2017) for GunPoint: 3x [Conv1d 'same' (128/8, 256/5, 128/3) - BN - ReLU], "
                "mean over T, Linear(128,2), Softmax; random non-trivial BN stats; T dynamic"),
        "resnet": ((1, 96), "NCT", False, 3,
                   "small ResNet: stem Conv1d(1,16,7,p3)-BN-ReLU; block1 identity shortcut; block2 1x1 conv "
                   "shortcut 16->32; AdaptiveAvgPool1d(1); Linear(32,3)"),
        "channels_last": ((64, 3), "NTC", False, 4,
                          "channels-last input (N,T,C): permute -> Conv1d(3,8,5,s2,d2,p4) -> LeakyReLU(0.1) -> "
                          "Conv1d(8,8,3,d3) -> Tanh -> flatten -> x@W+b (MatMul+Add)"),
        "ops_zoo": ((4, 60), "NCT", False, 5,
                    "op coverage: F.pad(2,1) -> depthwise Conv1d(4,4,3,g4) -> Elu -> Conv1d(4,8,3,p1) * scale + shift "
                    "-> Sigmoid -> MaxPool1d(3,s2,p1,d2,ceil) -> cat[AvgPool1d(3,s2,p1,excl-pad,ceil), "
                    "Conv1d(8,8,3,s2,p2)] -> Conv1d(16,12,1) -> (y-mu)/sd -> AdaptiveMaxPool1d(1) -> Dropout -> "
                    "Linear(12,5)"),
        "activations_zoo": ((3, 40), "NCT", False, 3,
                            "activations of recent nets, each after a Conv1d(.,4,3,p1): GELU, SiLU, Hardswish, Mish, "
                            "ReLU6(3z), Softplus, SELU, PReLU(4); then HardSigmoid s, gating value*sigmoid(gate), "
                            "(gated - s) / (s + 1), Conv1d(4,4,1)-GELU(tanh), mean over T, Linear(4,3)"),
        "inception": ((2, 48), "NCT", True, 3,
                      "InceptionTime: 2 modules [bottleneck 1x1, Conv1d k 9/5/3 'same', MaxPool1d(3,s1,p1)-1x1; "
                      "concat, BN, ReLU] + 1x1-BN residual shortcut, ReLU, mean over T, Linear(16,3); T dynamic"),
        "tcn": ((2, 40), "NCT", True, 2,
                "TCN: causal dilated Conv1d(k3, d1/2) with wide padding chomped by a Slice, residual 1x1; "
                "Conv1d(k3, d4/8) after a left F.pad; residual Add; Linear on the last time step; T dynamic"),
        "depthwise": ((3, 50), "NCT", False, 2,
                      "depthwise-separable: Conv1d(3,3,7,g3)-1x1(3,8)-BN-ReLU, Conv1d(8,16,5,g8)-1x1(16,8)-BN-ReLU, "
                      "mean over T, Linear(8,2)"),
    }

    return build, specs


def torch_part():
    import onnx
    import torch

    build, specs = torch_models()

    # (file name, model name, exporter, opset or None, extra export kwargs, note)
    jobs = [
        ("paper_net_op11", "paper_net", "torchscript", 11, {}, ""),
        ("paper_net_op13", "paper_net", "torchscript", 13, {}, ""),
        ("paper_net_op17", "paper_net", "torchscript", 17, {}, ""),
        ("paper_net_dynamo", "paper_net", "dynamo", None, {}, ""),
        ("fcn_op11", "fcn", "torchscript", 11, {}, ""),
        ("fcn_op13", "fcn", "torchscript", 13,
         {"training": torch.onnx.TrainingMode.PRESERVE, "do_constant_folding": False},
         " [exported with training=PRESERVE, do_constant_folding=False: BatchNormalization kept]"),
        ("fcn_op17", "fcn", "torchscript", 17, {}, ""),
        ("fcn_dynamo", "fcn", "dynamo", None, {}, ""),
        ("resnet_op17", "resnet", "torchscript", 17, {}, ""),
        ("resnet_op17_bn", "resnet", "torchscript", 17,
         {"training": torch.onnx.TrainingMode.PRESERVE, "do_constant_folding": False},
         " [exported with training=PRESERVE, do_constant_folding=False: BatchNormalization kept]"),
        ("resnet_dynamo", "resnet", "dynamo", None, {}, ""),
        ("channels_last_op17", "channels_last", "torchscript", 17, {}, ""),
        ("channels_last_dynamo", "channels_last", "dynamo", None, {}, ""),
        ("ops_zoo_op13", "ops_zoo", "torchscript", 13, {}, ""),
        ("ops_zoo_op17", "ops_zoo", "torchscript", 17, {}, ""),
        ("ops_zoo_dynamo", "ops_zoo", "dynamo", None, {}, ""),
        ("activations_zoo_op13", "activations_zoo", "torchscript", 13, {}, ""),
        ("activations_zoo_op17", "activations_zoo", "torchscript", 17, {}, ""),
        ("activations_zoo_op20", "activations_zoo", "torchscript", 20, {}, ""),
        ("activations_zoo_dynamo", "activations_zoo", "dynamo", None, {}, ""),
        ("inception_op17", "inception", "torchscript", 17, {}, ""),
        ("tcn_op13", "tcn", "torchscript", 13, {}, ""),
        ("tcn_op17", "tcn", "torchscript", 17, {}, ""),
        ("tcn_dynamo", "tcn", "dynamo", None, {}, ""),
        ("depthwise_op17", "depthwise", "torchscript", 17, {}, ""),
        ("depthwise_dynamo", "depthwise", "dynamo", None, {}, ""),
    ]
    only = set(sys.argv[2:])

    entries, failures = {}, []
    for fname, mname, exporter, opset, kw, note in jobs:
        if only and fname not in only and mname not in only:
            continue
        shape, layout, free_t, n_out, desc = specs[mname]
        model = build(mname)
        path = os.path.join(HERE, fname + ".onnx")
        print(f"== {fname} ({exporter}, opset {opset or 'default'})")
        ex = torch.randn((2,) + shape, generator=torch.Generator().manual_seed(7))
        try:
            if exporter == "torchscript":
                axes = {0: "N"}
                if free_t:
                    axes[2] = "T"
                torch.onnx.export(
                    model, (ex,), path, dynamo=False, opset_version=opset,
                    input_names=["x"], output_names=["y"],
                    dynamic_axes={"x": axes, "y": {0: "N"}}, **kw)
            else:
                dyn = {0: torch.export.Dim("N", min=1, max=4096)}
                if free_t:
                    dyn[2] = torch.export.Dim("T", min=8, max=100000)
                prog = torch.onnx.export(
                    model, (ex,), dynamo=True, input_names=["x"], output_names=["y"],
                    dynamic_shapes=({**dyn},), **kw)
                prog.save(path, external_data=False)
            m = onnx.load(path)
            strip_doc_strings(m)
            onnx.save(m, path)

            def ref(x, model=model):
                with torch.no_grad():
                    return model(torch.from_numpy(x)).numpy()

            extra = [(3,) + shape[:-1] + (97,), (2,) + shape[:-1] + (300,)] if free_t else []
            m, worst = check_and_run(path, ref, shape, extra)
            free = free_t
            entries[fname] = entry(fname, m, "torch", exporter, shape, layout, free, n_out,
                                   desc + note, m.graph.input[0].name, m.graph.output[0].name)
            print(f"    ops: {entries[fname]['ops']}  opset {entries[fname]['opset']}  worst {worst:.3g}")
        except Exception as e:  # keep going, report at the end
            import traceback
            traceback.print_exc()
            failures.append((fname, repr(e)[:500]))
            if os.path.exists(path):
                os.remove(path)
        # dynamo may leave external data beside the file
        if os.path.exists(path + ".data"):
            os.remove(path + ".data")

    import onnxruntime
    import onnxscript
    merge_manifest(entries, {"torch": torch.__version__, "onnx": onnx.__version__,
                             "onnxscript": onnxscript.__version__,
                             "onnxruntime_torch_venv": onnxruntime.__version__})
    report_failures(failures)


# --------------------------------------------------------------------------
# Keras part
# --------------------------------------------------------------------------

# keras_activations: the activation after each convolution, in order (exact gelu is not here:
# TensorFlow 2.21 writes it with Erfc, which tf2onnx 1.17 cannot convert)
KERAS_ACTIVATIONS = ["gelu_tanh", "silu", "swish", "hard_sigmoid", "hard_silu", "relu6", "softplus", "selu", "mish"]


def keras_models():
    """(build, specs): the Keras test models, rebuilt from fixed seeds (used by `keras` and `refs-keras`)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # bitwise-stabler reference outputs
    import keras
    from keras import layers

    ACTS = KERAS_ACTIVATIONS
    KERAS_ACTS = {a: keras.activations.get(a) for a in ACTS if a != "gelu_tanh"}
    KERAS_ACTS["gelu_tanh"] = lambda z: keras.activations.gelu(z, approximate=True)

    def build(name):
        keras.utils.set_random_seed(0)
        if name == "keras_paper_net":
            m = keras.Sequential([
                keras.Input((50, 2), name="x"),
                layers.Conv1D(16, 5, padding="same", activation="relu"),
                layers.MaxPooling1D(2),
                layers.Conv1D(32, 5, padding="same", activation="relu"),
                layers.MaxPooling1D(2),
                layers.Conv1D(32, 3, padding="same", activation="relu"),
                layers.Flatten(),
                layers.Dense(1),
            ], name=name)
        elif name == "keras_fcn":
            m = keras.Sequential([keras.Input((150, 1), name="x")], name=name)
            for f, k in ((128, 8), (256, 5), (128, 3)):
                m.add(layers.Conv1D(f, k, padding="same"))
                m.add(layers.BatchNormalization())
                m.add(layers.Activation("relu"))
            m.add(layers.GlobalAveragePooling1D())
            m.add(layers.Dense(2, activation="softmax"))
            rng = np.random.default_rng(4321)
            for lyr in m.layers:
                if isinstance(lyr, layers.BatchNormalization):
                    c = lyr.get_weights()[0].shape[0]
                    gamma = (rng.random(c) + 0.5).astype(np.float32)
                    beta = (rng.standard_normal(c) * 0.2).astype(np.float32)
                    mean = (rng.standard_normal(c) * 0.5).astype(np.float32)
                    var = (rng.random(c) * 1.5 + 0.5).astype(np.float32)
                    lyr.set_weights([gamma, beta, mean, var])
        elif name == "keras_strided":
            m = keras.Sequential([
                keras.Input((64, 3), name="x"),
                layers.Conv1D(8, 5, strides=2, padding="valid"),
                layers.Conv1D(8, 3, dilation_rate=2, padding="causal", activation="relu"),
                layers.AveragePooling1D(2),
                layers.Conv1D(4, 3, padding="causal", activation="tanh"),
                layers.Flatten(),
                layers.Dropout(0.5),
                layers.Dense(3),
            ], name=name)
        elif name == "keras_activations":
            m = keras_activations_model()
        elif name == "keras_tcn":
            m = keras_tcn_model()
        elif name == "keras_separable":
            m = keras.Sequential([
                keras.Input((50, 3), name="x"),
                layers.SeparableConv1D(8, 7, padding="same", name="sep1"),
                layers.BatchNormalization(name="bn1"),
                layers.Activation("relu", name="relu1"),
                layers.DepthwiseConv1D(5, padding="same", depth_multiplier=2, name="dw2"),
                layers.BatchNormalization(name="bn2"),
                layers.Activation("relu", name="relu2"),
                layers.SeparableConv1D(8, 3, padding="valid", dilation_rate=2, activation="relu", name="sep3"),
                layers.GlobalAveragePooling1D(name="gap"),
                layers.Dense(2, name="fc"),
            ], name=name)
        else:
            raise KeyError(name)
        rng = np.random.default_rng(4321)
        if name in ("keras_separable", "keras_tcn"):
            for lyr in m.layers:
                if isinstance(lyr, layers.BatchNormalization):
                    c = lyr.get_weights()[0].shape[0]
                    lyr.set_weights([(rng.random(c) + 0.5).astype(np.float32),
                                     (rng.standard_normal(c) * 0.2).astype(np.float32),
                                     (rng.standard_normal(c) * 0.5).astype(np.float32),
                                     (rng.random(c) * 1.5 + 0.5).astype(np.float32)])
                elif isinstance(lyr, layers.DepthwiseConv1D) and lyr.use_bias:
                    w, b = lyr.get_weights()
                    lyr.set_weights([w, (rng.standard_normal(b.shape) * 0.1).astype(np.float32)])
        # Keras initialises biases to zero and tf2onnx then drops them; make every bias
        # non-zero so the exported graphs really carry Conv/Dense biases.
        rng = np.random.default_rng(99)
        for lyr in m.layers:
            if isinstance(lyr, (layers.Conv1D, layers.Dense)) and lyr.use_bias:
                w, b = lyr.get_weights()
                lyr.set_weights([w, (rng.standard_normal(b.shape) * 0.1).astype(np.float32)])
            elif isinstance(lyr, layers.SeparableConv1D) and lyr.use_bias:
                dw, pw, b = lyr.get_weights()
                lyr.set_weights([dw, pw, (rng.standard_normal(b.shape) * 0.1).astype(np.float32)])
            elif isinstance(lyr, layers.PReLU):
                (a,) = lyr.get_weights()
                lyr.set_weights([(rng.random(a.shape) * 0.5).astype(np.float32)])
        return m

    def keras_tcn_model():
        """Functional: a TCN block (causal dilated Conv1D, residual 1x1, Add) and an InceptionTime
        module (Conv1D k 5/3 same, MaxPooling1D(3, s1, same)-1x1, Concatenate, BatchNormalization)."""
        x = keras.Input((40, 2), name="x")
        h = layers.Conv1D(6, 3, padding="causal", activation="relu", name="t1")(x)
        h = layers.Conv1D(6, 3, padding="causal", dilation_rate=2, activation="relu", name="t2")(h)
        r = layers.Conv1D(6, 1, name="down")(x)
        h = layers.Activation("relu", name="res_relu")(layers.Add(name="res")([h, r]))
        b = [layers.Conv1D(4, k, padding="same", use_bias=False, name=f"i{k}")(h) for k in (5, 3)]
        p = layers.MaxPooling1D(3, strides=1, padding="same", name="pool")(h)
        b.append(layers.Conv1D(4, 1, use_bias=False, name="pool_conv")(p))
        h = layers.BatchNormalization(name="bn")(layers.Concatenate(name="cat")(b))
        h = layers.Activation("relu", name="cat_relu")(h)
        h = layers.GlobalAveragePooling1D(name="gap")(h)
        return keras.Model(x, layers.Dense(2, name="fc")(h), name="keras_tcn")

    def keras_activations_model():
        """Functional: each modern activation after its own Conv1D(4, 3, same), as Keras 3 writes it."""
        x = keras.Input((40, 3), name="x")
        h = x
        for act in ACTS:
            h = layers.Conv1D(4, 3, padding="same", name="c_" + act)(h)
            h = layers.Activation(KERAS_ACTS[act], name=act)(h)
        h = layers.Conv1D(4, 3, padding="same", name="c_prelu")(h)
        h = layers.PReLU(shared_axes=[1], name="prelu")(h)             # a slope per channel
        h = layers.Conv1D(4, 3, padding="same", name="c_prelu1")(h)
        h = layers.PReLU(shared_axes=[1, 2], name="prelu1")(h)         # one slope
        s = layers.Conv1D(4, 3, padding="same", activation="hard_sigmoid", name="c_hsig")(h)
        value = layers.Conv1D(4, 3, padding="same", name="c_value")(h)
        gate = layers.Conv1D(4, 3, padding="same", activation="sigmoid", name="c_gate")(h)
        gated = layers.Multiply(name="gating")([value, gate])               # a Mul of two tensors
        d = layers.Subtract(name="sub")([gated, s])                         # a Sub of two tensors
        h = layers.Lambda(lambda t: t[0] / (t[1] + 1.0), name="div")([d, s])  # a Div of two tensors
        h = layers.Conv1D(4, 1, activation="tanh", name="c_mix")(h)
        h = layers.GlobalAveragePooling1D(name="gap")(h)
        return keras.Model(x, layers.Dense(3, name="fc")(h), name="keras_activations")

    specs = {
        "keras_paper_net": ((50, 2), 1,
                            "Keras paper net: Conv1D(16,5,same,relu)-MaxPool1D(2)-Conv1D(32,5,same,relu)-MaxPool1D(2)-"
                            "Conv1D(32,3,same,relu)-Flatten-Dense(1)"),
        "keras_fcn": ((150, 1), 2,
                      "Keras FCN: 3x [Conv1D same (128/8, 256/5, 128/3) - BatchNormalization (random moving stats) - "
                      "ReLU], GlobalAveragePooling1D, Dense(2, softmax)"),
        "keras_strided": ((64, 3), 3,
                          "Keras strided/causal: Conv1D(8,5,s2,valid)-Conv1D(8,3,d2,causal,relu)-AvgPool1D(2)-"
                          "Conv1D(4,3,causal,tanh)-Flatten-Dropout(0.5)-Dense(3)"),
        "keras_activations": ((40, 3), 3,
                              "Keras 3 activations, each after a Conv1D(4,3,same): gelu(approximate), silu, "
                              "swish, hard_sigmoid, hard_silu, relu6, softplus, selu, mish; PReLU(shared_axes=[1]), "
                              "PReLU(shared_axes=[1,2]); then hard_sigmoid s, Multiply(value, sigmoid gate), "
                              "Subtract s, Lambda d / (s + 1), Conv1D(4,1,tanh), GlobalAveragePooling1D, Dense(3)"),
        "keras_tcn": ((40, 2), 2,
                      "Keras TCN + InceptionTime: Conv1D(6,3,causal,relu)-Conv1D(6,3,causal,d2,relu) + Conv1D(6,1) "
                      "residual Add-ReLU; Conv1D(4,k,same) k 5/3 and MaxPooling1D(3,s1,same)-Conv1D(4,1) "
                      "Concatenate-BatchNormalization (random stats)-ReLU, GlobalAveragePooling1D, Dense(2)"),
        "keras_separable": ((50, 3), 2,
                            "Keras separable: SeparableConv1D(8,7,same)-BN-ReLU, DepthwiseConv1D(5,same,x2)-BN-ReLU, "
                            "SeparableConv1D(8,3,valid,d2,relu), GlobalAveragePooling1D, Dense(2); random BN stats"),
    }
    return build, specs


def keras_part():
    build, specs = keras_models()
    import onnx
    import tensorflow as tf
    import tf2onnx
    import keras

    def tidy_names(path):
        """tf2onnx names the output 'Identity:0' and the batch dim 'unk__NNN'; rename to y / N."""
        m = onnx.load(path)
        g = m.graph
        for v in list(g.input) + list(g.output):
            d0 = v.type.tensor_type.shape.dim[0]
            if d0.dim_param or not d0.dim_value:
                d0.dim_param = "N"
        old = g.output[0].name
        if old != "y":
            for n in g.node:
                for i, o in enumerate(n.output):
                    if o == old:
                        n.output[i] = "y"
                for i, o in enumerate(n.input):
                    if o == old:
                        n.input[i] = "y"
            g.output[0].name = "y"
        # tf2onnx appends a process-global counter ("...__230") to generated names and shares
        # constants under whichever name came first, both of which drift between runs.
        # Rename canonically (node names without counters, values after their producer,
        # initializers after their first consumer, in graph order) so files are reproducible.
        import re
        pat = re.compile(r"__\d+")
        keep = {v.name for v in g.input} | {v.name for v in g.output}
        # tf2onnx merges identical nodes of parallel branches (the ExpandDims of convolutions
        # reading one tensor) and keeps the name of any one of them: name such a node after the
        # reader whose layer comes first by name, and a step of a reader's op that carries another
        # layer's name (ExpandDims -> Transpose -> the Convs) after that reader. Readers first.
        readers = {}
        for n in g.node:
            for v in n.input:
                readers.setdefault(v, []).append(n)
        for n in reversed(g.node):
            rs = [r for o in n.output for r in readers.get(o, [])]
            scope = "/".join(n.name.split("/")[:2])
            scopes = ["/".join(r.name.split("/")[:2]) for r in rs]
            if len(set(scopes)) > 1 and scope in scopes:
                n.name = min(scopes) + n.name[len(scope):]
            elif (len(rs) == 1 and scopes[0] != scope and scope.count("/") == scopes[0].count("/") == 1 and
                  scope.split("/")[0] == scopes[0].split("/")[0] and len(rs[0].name) > len(scopes[0]) and
                  pat.sub("", n.name[len(scope):]).startswith(pat.sub("", rs[0].name[len(scopes[0]):]) + "/")):
                n.name = scopes[0] + n.name[len(scope):]
        # tf2onnx orders parallel branches differently at different opsets; put the nodes in one
        # topological order, a ready node with the smallest name first, so that every opset's
        # file has its layers in the same order (the refs list them in that order).
        producer = {o: i for i, n in enumerate(g.node) for o in n.output}
        deps = [{producer[v] for v in n.input if v in producer} for n in g.node]
        key = [(pat.sub("", n.name), i) for i, n in enumerate(g.node)]
        done, order_n = set(), []
        while len(order_n) < len(g.node):
            i = min((i for i in range(len(g.node)) if i not in done and deps[i] <= done), key=lambda i: key[i])
            done.add(i)
            order_n.append(g.node[i])
        nodes = [onnx.NodeProto() for _ in order_n]
        for dst, src in zip(nodes, order_n):
            dst.CopyFrom(src)
        del g.node[:]
        g.node.extend(nodes)
        vmap, used = {}, set()
        for n in g.node:
            base = pat.sub("", n.name) or n.op_type
            name, k = base, 1
            while name in used:
                k += 1
                name = f"{base}_{k}"
            used.add(name)
            n.name = name
            for i, o in enumerate(n.output):
                if o and o not in keep:
                    vmap[o] = f"{name}:{i}"
        init_names = {t.name for t in g.initializer}
        order = []
        for n in g.node:
            for i, v in enumerate(n.input):
                if v in init_names and v not in vmap:
                    vmap[v] = f"{n.name}/in{i}"
                    order.append(v)
        for n in g.node:
            for i, v in enumerate(n.input):
                n.input[i] = vmap.get(v, v)
            for i, v in enumerate(n.output):
                n.output[i] = vmap.get(v, v)
        inits = {t.name: t for t in g.initializer}
        new_inits = []
        for old in order:
            t = inits[old]
            t.name = vmap[old]
            new_inits.append(t)
        del g.initializer[:]
        g.initializer.extend(new_inits)  # unused initializers are dropped
        del g.value_info[:]
        strip_doc_strings(m)
        onnx.save(m, path)

    only = set(sys.argv[2:])
    entries, failures = {}, []
    for mname, (shape, n_out, desc) in specs.items():
        if only and mname not in only:
            continue
        model = build(mname)
        for opset in (13, 17):
            fname = f"{mname}_op{opset}"
            path = os.path.join(HERE, fname + ".onnx")
            print(f"== {fname} (tf2onnx, opset {opset})")
            spec = (tf.TensorSpec((None,) + shape, tf.float32, name="x"),)
            how = None
            try:
                try:
                    m, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=opset,
                                                      output_path=path)
                    how = "from_keras"
                except Exception as e:
                    print(f"    from_keras failed ({type(e).__name__}: {str(e)[:200]}); trying from_function")

                    @tf.function(input_signature=spec)
                    def fn(x):
                        return model(x, training=False)

                    m, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=opset,
                                                         output_path=path)
                    how = "from_function"
                tidy_names(path)

                def ref(x, model=model):
                    return model(x, training=False).numpy()

                m, worst = check_and_run(path, ref, shape)
                entries[fname] = entry(fname, m, "keras", "tf2onnx", shape, "NTC", False, n_out,
                                       desc + f" [tf2onnx.convert.{how}; random non-zero biases; output renamed to y, batch dim N]",
                                       m.graph.input[0].name, m.graph.output[0].name)
                print(f"    via {how}; ops: {entries[fname]['ops']}  worst {worst:.3g}")
            except Exception as e:
                import traceback
                traceback.print_exc()
                failures.append((fname, repr(e)[:500]))
                if os.path.exists(path):
                    os.remove(path)

    merge_manifest(entries, {"tensorflow": tf.__version__, "keras": keras.__version__,
                             "tf2onnx": tf2onnx.__version__, "onnx_tf_venv": onnx.__version__,
                             "onnxruntime_tf_venv": __import__("onnxruntime").__version__})
    report_failures(failures)


# --------------------------------------------------------------------------
# refs: reference explanations computed by the frameworks themselves
# --------------------------------------------------------------------------

REFS = os.path.join(HERE, "refs")
DATA = os.path.join(os.path.dirname(os.path.dirname(HERE)), "tsviz_native", "datasets", "data")
N_REF = 4            # samples per refs file
RELU_EPS = 1e-4      # a ReLU/LeakyReLU input closer than this to 0 is a kink hit
TIE_EPS = 1e-5       # a max-pool window whose two largest values differ by less is a near-tie
REF_MODELS = {       # underlying model -> (framework, how x is built)
    "paper_net": ("torch", "paper"), "fcn": ("torch", "gunpoint"), "resnet": ("torch", "mixed"),
    "channels_last": ("torch", "mixed"), "ops_zoo": ("torch", "mixed"),
    "activations_zoo": ("torch", "mixed"), "inception": ("torch", "mixed"), "tcn": ("torch", "mixed"),
    "depthwise": ("torch", "mixed"),
    "keras_paper_net": ("keras", "paper"), "keras_fcn": ("keras", "gunpoint"),
    "keras_strided": ("keras", "mixed"), "keras_activations": ("keras", "mixed"),
    "keras_separable": ("keras", "mixed"), "keras_tcn": ("keras", "mixed"),
}


def _offset(k, n):
    """Window offset of candidate k in a series of n points (all windows fit: T + 331*C < 2000)."""
    return 1000 + (997 * k) % (n - 3000)


_CACHE = {}


def load_b5m():
    if "b5m" in _CACHE:
        return _CACHE["b5m"]
    import csv
    with open(os.path.join(DATA, "internet_traffic", "B5M.csv"), newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["timestamp", "value"], rows[0]
    _CACHE["b5m"] = np.array([float(r[1]) for r in rows[1:]], dtype=np.float64)
    return _CACHE["b5m"]


def load_gunpoint():
    series, started = [], False
    with open(os.path.join(DATA, "ucr", "GunPoint_TEST.ts")) as f:
        for line in f:
            line = line.strip()
            if not started:
                started = line.lower() == "@data"
                continue
            if line:
                series.append([float(v) for v in line.rsplit(":", 1)[0].split(",")])
    return np.array(series, dtype=np.float64)


def ref_candidate(how, shape, layout, k):
    """Candidate input number k (channels-first (C, T) before layout), and a description.

    paper:    ch0 = B5M window of T steps, standardised by the series mean/std;
              ch1 = np.diff(ch0, prepend=ch0[0]).
    gunpoint: GunPoint test series k.
    mixed:    ch c = a window of B5M (c even) or of np.diff(B5M) (c odd), each window
              standardised by its own mean/std, at offset o_k + 331*c; o_k = 1000 + (997*k mod (len(B5M) - 3000)) (also for paper)."""
    C, T = (shape[1], shape[0]) if layout == "NTC" else shape
    if how == "paper":
        s = load_b5m()
        s = (s - s.mean()) / s.std()
        off = _offset(k, len(s))
        w = s[off:off + T]
        x = np.stack([w, np.diff(w, prepend=w[0])])
        desc = f"B5M[{off}:{off + T}] (series-standardised) + first difference"
    elif how == "gunpoint":
        x = load_gunpoint()[k][None, :T]
        assert x.shape == (C, T)
        desc = f"GunPoint_TEST series {k}"
    else:
        s = load_b5m()
        d = np.diff(s)
        chans, parts = [], []
        for c in range(C):
            off = _offset(k, len(s)) + 331 * c
            src, nm = (s, "B5M") if c % 2 == 0 else (d, "diff(B5M)")
            w = src[off:off + T]
            chans.append((w - w.mean()) / w.std())
            parts.append(f"{nm}[{off}:{off + T}]")
        x = np.stack(chans)
        desc = "window-standardised " + ", ".join(parts)
    x = x.astype(np.float32)
    return (x.T if layout == "NTC" else x), desc


def pool_windows(T, k, s, p, d, ceil):
    """Index array (L_out, k) of a 1-D max-pool's windows, -1 for padding (PyTorch's rules)."""
    span = d * (k - 1) + 1
    num = T + 2 * p - span
    L = (-(-num // s) if ceil else num // s) + 1
    if ceil and (L - 1) * s >= T + p:
        L -= 1
    idx = np.full((L, k), -1, dtype=np.int64)
    for o in range(L):
        for j in range(k):
            t = o * s - p + j * d
            if 0 <= t < T:
                idx[o, j] = t
    return idx


def kink_counts(relu_inputs, pools, relu_eps=RELU_EPS):
    """Per-sample counts of ReLU/LeakyReLU inputs with |z| < RELU_EPS, and of max-pool windows
    whose two largest values differ by < TIE_EPS (windows whose max is exactly 0, i.e. all-dead
    ReLUs, have zero gradient either way and are not counted). Arrays are channels-first (N, C, T)."""
    n = relu_inputs[0].shape[0] if relu_inputs else pools[0][0].shape[0]
    relu = np.zeros(n, dtype=np.int64)
    ties = np.zeros(n, dtype=np.int64)
    for z in relu_inputs:
        relu += (np.abs(z) < relu_eps).reshape(n, -1).sum(1)
    for h, (k, s, p, d, ceil) in pools:
        T = h.shape[-1]
        idx = np.arange(T)[None, :] if k is None else pool_windows(T, k, s, p, d, ceil)
        v = np.where(idx >= 0, h[..., np.maximum(idx, 0)], -np.inf)   # (N, C, L, k)
        v = np.sort(v, axis=-1)
        top1, top2 = v[..., -1], v[..., -2]
        ties += ((top1 - top2 < TIE_EPS) & (top1 != 0)).reshape(n, -1).sum(1)
    return relu, ties


def onnx_files_for(mname):
    with open(MANIFEST) as f:
        keys = list(json.load(f)["models"])
    out = []
    for key in keys:
        best = max((m for m in REF_MODELS if key.startswith(m + "_")), key=len, default=None)
        if best == mname:
            out.append(key)
    return out


def ort_check(mname, x, framework_out):
    import onnxruntime as ort
    with open(MANIFEST) as f:
        man = json.load(f)["models"]
    worst = 0.0
    for key in onnx_files_for(mname):
        sess = ort.InferenceSession(os.path.join(HERE, man[key]["file"]), providers=["CPUExecutionProvider"])
        got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        d = float(np.max(np.abs(got - framework_out)))
        print(f"    ORT {key}: max|ort - framework| = {d:.3g}")
        assert got.shape == framework_out.shape and d <= ATOL, (key, d)
        worst = max(worst, d)
    return worst


def select_inputs(mname, how, shape, layout, kinks_fn, max_candidates=150):
    """The first N_REF candidates (k = 0, 1, ...) with no kink hit.  kinks_fn(x, relu_eps) ->
    (relu, ties).  Where fewer than N_REF are clean (the FCNs have ~77k ReLUs per sample, so about
    5 inputs per sample fall within 1e-4 of 0), take the candidates with no ReLU input within
    RELU_EPS/10 and no near-tie, fewest hits at RELU_EPS first (ties broken by k)."""
    xs, descs = zip(*[ref_candidate(how, shape, layout, k) for k in range(max_candidates)])
    xs = np.stack(xs)
    relu, ties = kinks_fn(xs, RELU_EPS)
    print(f"    kink hits of candidates 0..{N_REF - 1}: relu {relu[:N_REF].tolist()} ties {ties[:N_REF].tolist()}")
    clean = [k for k in range(max_candidates) if relu[k] == 0 and ties[k] == 0]
    if len(clean) < N_REF:
        relu10, _ = kinks_fn(xs, RELU_EPS / 10)
        ok = [k for k in range(max_candidates) if relu10[k] == 0 and ties[k] == 0]
        clean = sorted(sorted(ok, key=lambda k: relu[k])[:N_REF])
        print(f"    WARNING: only {int(np.sum(relu + ties == 0))} of {max_candidates} candidates have no ReLU "
              f"input within {RELU_EPS:g} of 0; {len(ok)} have none within {RELU_EPS / 10:g}")
    chosen = clean[:N_REF]
    assert len(chosen) == N_REF, (mname, "not enough kink-free candidates")
    print(f"    chosen candidates {chosen}: relu hits (|z| < {RELU_EPS:g}) {relu[chosen].tolist()}, "
          f"pool near-ties {ties[chosen].tolist()}")
    return xs[chosen], [descs[k] for k in chosen], relu[chosen], ties[chosen]


def write_refs(mname, res, x, descs):
    os.makedirs(REFS, exist_ok=True)
    arrays = {
        "x": x.astype(np.float32),
        "x_source": np.array(descs),
        "target": res["target"].astype(np.int64),
        "output": res["output"].astype(np.float32),
        "output_saliency": res["output_saliency"].astype(np.float32),
        "n_layers": np.int64(len(res["kinds"])),
        "layer_filters": np.array(res["filters"], dtype=np.int64),
        "layer_kinds": np.array(res["kinds"]),
        "layer_modules": np.array(res["modules"]),
    }
    if "output_prob_saliency" in res:
        arrays["output_prob_saliency"] = res["output_prob_saliency"].astype(np.float32)
    for l, (imp, sal) in enumerate(zip(res["importance_raw"], res["saliency"])):
        arrays[f"importance_raw_{l}"] = imp.astype(np.float32)
        arrays[f"saliency_{l}"] = sal.astype(np.float32)
    path = os.path.join(REFS, mname + ".npz")
    np.savez_compressed(path, **arrays)
    print(f"    wrote {os.path.relpath(path, HERE)} ({os.path.getsize(path)} bytes)")


def sanity(mname, res):
    """A dense final layer's saliency for the target unit is the output saliency."""
    out = np.sort(res["output"], 1)
    if out.shape[1] > 1:
        margin = float(np.min(out[:, -1] - out[:, -2]))
        print(f"    smallest margin between the top two outputs: {margin:.3g}")
        assert margin > 1e-4, margin
    if res["kinds"][-1] == "dense":
        sal = res["saliency"][-1]
        pick = sal[np.arange(sal.shape[0]), res["target"]]
        d = float(np.max(np.abs(pick - res["output_saliency"])))
        print(f"    saliency[last][target] vs output_saliency: max diff {d:.3g}")
        assert d <= 1e-6 * max(1.0, float(np.max(res["output_saliency"]))), d


def merge_index(entries):
    path = os.path.join(REFS, "index.json")
    data = {}
    if os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
    data.update(entries)
    with open(path, "w") as f:
        json.dump({k: data[k] for k in sorted(data)}, f, indent=2)
        f.write("\n")
    print(f"wrote {os.path.relpath(path, HERE)} ({len(data)} models)")


def refs_part(framework):
    only = set(sys.argv[2:])
    if framework == "torch":
        fwd, build, specs = torch_ref_forward()
    else:
        fwd, build, specs = keras_ref_forward()
    index = {}
    for mname, (fw, how) in REF_MODELS.items():
        if fw != framework or (only and mname not in only):
            continue
        print(f"== refs {mname}")
        shape, layout = specs[mname][0], specs[mname][1] if framework == "torch" else "NTC"
        model = build(mname)
        x, descs, _, _ = select_inputs(mname, how, shape, layout,
                                       lambda xs, eps: fwd(model, mname, xs, kinks_only=eps))
        res = fwd(model, mname, x)
        ort_check(mname, x, res["output"])
        sanity(mname, res)
        print(f"    layers {list(zip(res['modules'], res['filters']))} target {res['target'].tolist()}")
        write_refs(mname, res, x, descs)
        for key in onnx_files_for(mname):
            index[key] = mname + ".npz"
    merge_index(index)


def torch_ref_forward():
    """fwd(model, name, x) -> reference explanations with PyTorch autograd (float32)."""
    import torch
    import torch.nn.functional as F

    build, specs = torch_models()

    def instrumented(m, name, x):
        """Forward exactly as the model runs it, recording z^l, a^l, ReLU inputs and max-pools.
        Returns (layers [(module, kind, z, a)], logits, output, relu_inputs, pools)."""
        L, relu_in, pools = [], [], []
        if name == "paper_net":
            f, h = m.features, x
            for i in (0, 3, 6):
                z = f[i](h)
                a = F.relu(z)
                L.append((f"features.{i}", "conv", z, a))
                relu_in.append(z)
                h = a
                if i < 6:
                    pools.append((a, (2, 2, 0, 1, False)))
                    h = f[i + 2](a)
            z = m.fc(torch.flatten(h, 1))
            L.append(("fc", "dense", z, z))
            logits = out = z
        elif name == "fcn":
            b, h = m.block, x
            for i in (0, 3, 6):
                z = b[i + 1](b[i](h))
                a = F.relu(z)
                L.append((f"block.{i}+block.{i + 1}", "conv", z, a))
                relu_in.append(z)
                h = a
            logits = m.fc(h.mean(dim=2))
            L.append(("fc", "dense", logits, logits))
            out = torch.softmax(logits, dim=1)
        elif name == "resnet":
            z = m.stem[1](m.stem[0](x))
            h = F.relu(z)
            L.append(("stem.0+stem.1", "conv", z, h))
            relu_in.append(z)
            for bn in ("block1", "block2"):
                blk = getattr(m, bn)
                z1 = blk.b1(blk.c1(h))
                a1 = F.relu(z1)
                L.append((f"{bn}.c1+{bn}.b1", "conv", z1, a1))
                relu_in.append(z1)
                z2 = blk.b2(blk.c2(a1))
                L.append((f"{bn}.c2+{bn}.b2", "conv", z2, z2))
                if isinstance(blk.short, torch.nn.Conv1d):
                    sc = blk.short(h)
                    L.append((f"{bn}.short", "conv", sc, sc))
                else:
                    sc = h
                pre = z2 + sc
                relu_in.append(pre)
                h = F.relu(pre)
            logits = out = m.fc(torch.flatten(m.pool(h), 1))
            L.append(("fc", "dense", logits, logits))
        elif name == "channels_last":
            h = x.permute(0, 2, 1)
            z0 = m.c1(h)
            a0 = m.act1(z0)
            relu_in.append(z0)
            z1 = m.c2(a0)
            a1 = m.act2(z1)
            z2 = torch.flatten(a1, 1) @ m.W + m.b
            L += [("c1", "conv", z0, a0), ("c2", "conv", z1, a1), ("W,b", "dense", z2, z2)]
            logits = out = z2
        elif name == "ops_zoo":
            z0 = m.dw(F.pad(x, (2, 1)))
            a0 = m.elu(z0)
            z1 = m.conv(a0) * m.scale.view(1, -1, 1) + m.shift.view(1, -1, 1)
            a1 = torch.sigmoid(z1)
            pools.append((a1, (3, 2, 1, 2, True)))
            p = m.mp(a1)
            z2 = m.conv_b(p)
            z3 = (m.mix(torch.cat([m.ap(p), z2], dim=1)) - m.mu.view(1, -1, 1)) / m.sd.view(1, -1, 1)
            pools.append((z3, (None, None, None, None, None)))
            z4 = m.fc(m.drop(m.gmp(z3).flatten(1)))
            L += [("dw", "conv", z0, a0), ("conv*scale+shift", "conv", z1, a1), ("conv_b", "conv", z2, z2),
                  ("(mix-mu)/sd", "conv", z3, z3), ("fc", "dense", z4, z4)]
            logits = out = z4
        elif name == "activations_zoo":
            # a^l is the activation applied directly to z^l; x * f(x) patterns count as one.
            z0 = m.c_gelu(x); a0 = F.gelu(z0)
            z1 = m.c_silu(a0); a1 = F.silu(z1)
            z2 = m.c_hswish(a1); a2 = F.hardswish(z2)
            z3 = m.c_mish(a2); a3 = F.mish(z3)
            # relu6(z * 3): the constant Mul is folded into the convolution's z^l
            z4 = m.c_relu6(a3) * 3.0; a4 = F.relu6(z4)
            z5 = m.c_softplus(a4); a5 = F.softplus(z5)
            z6 = m.c_selu(a5); a6 = F.selu(z6)
            z7 = m.c_prelu(a6); a7 = m.prelu(z7)
            z8 = m.c_hsig(a7); a8 = F.hardsigmoid(z8)
            z9 = m.c_value(a7)
            z10 = m.c_gate(a7); a10 = torch.sigmoid(z10)
            h = (z9 * a10 - a8) / (a8 + 1.0)
            z11 = m.c_mix(h); a11 = F.gelu(z11, approximate="tanh")
            z12 = m.fc(a11.mean(dim=2))
            relu_in += [z2 + 3, z2 - 3, z4, z4 - 6, z7, z8 + 3, z8 - 3]
            L += [("c_gelu", "conv", z0, a0), ("c_silu", "conv", z1, a1), ("c_hswish", "conv", z2, a2),
                  ("c_mish", "conv", z3, a3), ("c_relu6*3", "conv", z4, a4), ("c_softplus", "conv", z5, a5),
                  ("c_selu", "conv", z6, a6), ("c_prelu", "conv", z7, a7), ("c_hsig", "conv", z8, a8),
                  ("c_value", "conv", z9, z9), ("c_gate", "conv", z10, a10),
                  ("c_mix", "conv", z11, a11), ("fc", "dense", z12, z12)]
            logits = out = z12
        elif name == "inception":
            def module(mod, h, prefix):
                b = mod.bottleneck(h)
                zs = [(f"{prefix}.convs.{i}", c(b)) for i, c in enumerate(mod.convs)]
                # Not checked for near-ties: a stride-1 pool repeats the maximum of neighbouring
                # windows, and a 1x1 convolution of repeated columns gives exactly equal values,
                # so exact ties abound; PyTorch and the engine both take the first maximum (the
                # comparison with autograd below shows they agree).
                pooled = mod.pool(h)
                zs.append((f"{prefix}.pool_conv", mod.pool_conv(pooled)))
                pre = mod.bn(torch.cat([z for _, z in zs], dim=1))
                relu_in.append(pre)
                if not isinstance(mod.bottleneck, torch.nn.Identity):
                    L.append((f"{prefix}.bottleneck", "conv", b, b))
                L.extend((n, "conv", z, z) for n, z in zs)
                return F.relu(pre)

            h = module(m.m1, x, "m1")
            h = module(m.m2, h, "m2")
            zs = m.short_bn(m.short(x))
            L.append(("short+short_bn", "conv", zs, zs))
            pre = h + zs
            relu_in.append(pre)
            z = m.fc(F.relu(pre).mean(dim=2))
            L.append(("fc", "dense", z, z))
            logits = out = z
        elif name == "tcn":
            # z^l of c1 and c2 is the whole convolution output; the chomping Slice follows it
            y1 = m.c1(x)
            z1 = y1[:, :, :-2]
            a1 = F.relu(z1)
            y2 = m.c2(a1)
            z2 = y2[:, :, :-4]
            a2 = F.relu(z2)
            zd = m.down(x)
            r = F.relu(a2 + zd)
            z3 = m.c3(F.pad(r, (8, 0)))
            a3 = F.relu(z3)
            z4 = m.c4(F.pad(a3, (16, 0)))
            a4 = F.relu(z4)
            h = F.relu(a4 + r)
            z5 = m.fc(h[:, :, -1])
            # a4 + r is exactly 0 where both ReLUs are dead: the gradient is 0 there in both
            # PyTorch and the engine (SPEC: x > 0), so exact zeros are no kink hits.
            pre = a4 + r
            relu_in += [z1, z2, a2 + zd, z3, z4, torch.where(pre == 0, torch.ones_like(pre), pre)]
            L += [("c1", "conv", y1, y1), ("c2", "conv", y2, y2), ("down", "conv", zd, zd),
                  ("c3", "conv", z3, a3), ("c4", "conv", z4, a4), ("fc", "dense", z5, z5)]
            logits = out = z5
        elif name == "depthwise":
            z0 = m.dw1(x)
            z1 = m.bn1(m.pw1(z0)); a1 = F.relu(z1)
            z2 = m.dw2(a1)
            z3 = m.bn2(m.pw2(z2)); a3 = F.relu(z3)
            z4 = m.fc(a3.mean(dim=2))
            relu_in += [z1, z3]
            L += [("dw1", "conv", z0, z0), ("pw1+bn1", "conv", z1, a1), ("dw2", "conv", z2, z2),
                  ("pw2+bn2", "conv", z3, a3), ("fc", "dense", z4, z4)]
            logits = out = z4
        else:
            raise KeyError(name)
        return L, logits, out, relu_in, pools

    def fwd(m, name, xnp, kinks_only=None):
        """kinks_only=eps: only the kink counts (relu_eps = eps) of kink_counts."""
        x = torch.from_numpy(np.ascontiguousarray(xnp)).requires_grad_(kinks_only is None)
        with torch.set_grad_enabled(kinks_only is None):
            L, logits, out, relu_in, pools = instrumented(m, name, x)
            with torch.no_grad():
                plain = m(x.detach())
            d = float((plain - out.detach()).abs().max())
            assert d <= 1e-6, (name, "instrumented forward differs from the model", d)
        if kinks_only is not None:
            return kink_counts([r.numpy() for r in relu_in], [(h.numpy(), p) for h, p in pools], kinks_only)
        # channels-first gradient of x
        cf = (lambda g: g.permute(0, 2, 1)) if x.dim() == 3 and name == "channels_last" else (lambda g: g)
        K = logits.shape[1]
        target = logits.detach().argmax(1) if K > 1 else torch.zeros(len(x), dtype=torch.int64)
        aL = logits.gather(1, target[:, None])[:, 0]
        grads = torch.autograd.grad(aL.sum(), [z for _, _, z, _ in L] + [x], retain_graph=True)
        res = {"target": target.numpy(), "output": out.detach().numpy(),
               "output_saliency": cf(grads[-1]).abs().numpy(),
               "modules": [mod for mod, _, _, _ in L], "kinds": [k for _, k, _, _ in L],
               "filters": [int(z.shape[1]) for _, _, z, _ in L],
               "importance_raw": [], "saliency": []}
        for (mod, kind, z, a), g in zip(L, grads[:-1]):
            g = g.abs()
            res["importance_raw"].append((g.sum(-1) if kind == "conv" else g).numpy())
            sal = []
            for f in range(z.shape[1]):
                (gx,) = torch.autograd.grad(a[:, f].sum(), x, retain_graph=True)
                sal.append(cf(gx).abs())
            res["saliency"].append(torch.stack(sal, 1).numpy())
        if name == "fcn":
            p = torch.softmax(logits, 1).gather(1, target[:, None])[:, 0]
            (gx,) = torch.autograd.grad(p.sum(), x, retain_graph=True)
            res["output_prob_saliency"] = cf(gx).abs().numpy()
        return res

    return fwd, build, specs


def keras_ref_forward():
    """fwd(model, name, x) -> reference explanations with TensorFlow's GradientTape (float32)."""
    build, specs = keras_models()
    import tensorflow as tf
    import keras
    from keras import layers

    linear = keras.activations.get("linear")

    def pre_activation(ly, h):
        act = ly.activation
        ly.activation = linear
        try:
            return ly(h)
        finally:
            ly.activation = act

    def separable(ly, h):
        """SeparableConv1D as the exported graph runs it: the depthwise convolution (no bias), then
        the pointwise one with the bias, before the activation."""
        dw = keras.ops.depthwise_conv(h, ly.depthwise_kernel, ly.strides, ly.padding, ly.data_format,
                                      ly.dilation_rate)
        z = keras.ops.conv(dw, ly.pointwise_kernel, 1, "valid", ly.data_format)
        return dw, z + ly.bias if ly.use_bias else z

    def activations_model(m, x):
        """keras_activations, layer by layer in the order of the exported graph (parallel
        branches by name: see tidy_names)."""
        L, relu_in = [], []
        ly = {l.name: l for l in m.layers}
        h = x
        for act in KERAS_ACTIVATIONS:
            z = pre_activation(ly["c_" + act], h)
            h = ly[act](z)
            L.append(("c_" + act, "conv", z, h))
            if act in ("hard_sigmoid", "hard_silu"):
                relu_in += [z + 3, z - 3]
            elif act == "relu6":
                relu_in += [z, z - 6]
        for name in ("prelu", "prelu1"):
            z = pre_activation(ly["c_" + name], h)
            h = ly[name](z)
            L.append(("c_" + name, "conv", z, h))
            relu_in.append(z)
        zv = pre_activation(ly["c_value"], h)
        zs = pre_activation(ly["c_hsig"], h)
        s = keras.activations.hard_sigmoid(zs)
        zg = pre_activation(ly["c_gate"], h)
        gate = keras.activations.sigmoid(zg)
        relu_in += [zs + 3, zs - 3]
        L += [("c_gate", "conv", zg, gate), ("c_hsig", "conv", zs, s), ("c_value", "conv", zv, zv)]
        h = ly["div"]([ly["sub"]([ly["gating"]([zv, gate]), s]), s])
        z = pre_activation(ly["c_mix"], h)
        a = keras.activations.tanh(z)
        L.append(("c_mix", "conv", z, a))
        logits = ly["fc"](ly["gap"](a))
        L.append(("fc", "dense", logits, logits))
        return L, logits, logits, relu_in, []

    def tcn_model(m, x):
        """keras_tcn, layer by layer."""
        ly = {l.name: l for l in m.layers}
        z1 = pre_activation(ly["t1"], x)
        a1 = keras.activations.relu(z1)
        z2 = pre_activation(ly["t2"], a1)
        a2 = keras.activations.relu(z2)
        zd = ly["down"](x)
        pre = a2 + zd
        h = ly["res_relu"](pre)
        z5, z3 = ly["i5"](h), ly["i3"](h)
        p = ly["pool"](h)
        zp = ly["pool_conv"](p)
        c = ly["bn"](ly["cat"]([z5, z3, zp]), training=False)
        logits = ly["fc"](ly["gap"](ly["cat_relu"](c)))
        # parallel branches in the order of the exported graph (by name: see tidy_names)
        L = [("down", "conv", zd, zd), ("t1", "conv", z1, a1), ("t2", "conv", z2, a2),
             ("i3", "conv", z3, z3), ("i5", "conv", z5, z5), ("pool_conv", "conv", zp, zp),
             ("fc", "dense", logits, logits)]
        return L, logits, logits, [z1, z2, pre, c], [(h, (3, 1, 1, 1, False))]

    def instrumented(m, x):
        if m.name == "keras_activations":
            return activations_model(m, x)
        if m.name == "keras_tcn":
            return tcn_model(m, x)
        L, relu_in, pools = [], [], []
        lyrs, i, h, logits, out = m.layers, 0, x, None, None
        while i < len(lyrs):
            ly = lyrs[i]
            if isinstance(ly, (layers.Conv1D, layers.Dense, layers.SeparableConv1D, layers.DepthwiseConv1D)):
                act = ly.activation
                if isinstance(ly, layers.SeparableConv1D):
                    dw, z = separable(ly, h)
                    L.append((f"layers[{i}]:SeparableConv1D(depthwise)", "conv", dw, dw))
                else:
                    z = pre_activation(ly, h)
                mod = f"layers[{i}]:{type(ly).__name__}"    # Keras' own names depend on build order
                if i + 1 < len(lyrs) and isinstance(lyrs[i + 1], layers.BatchNormalization):
                    i += 1
                    z = lyrs[i](z, training=False)
                    mod += f"+layers[{i}]:BatchNormalization"
                an = getattr(act, "__name__", str(act))
                if an == "softmax":
                    assert i == len(lyrs) - 1
                    a, logits, h = z, z, act(z)
                elif an != "linear":
                    a = act(z)
                    h = a
                elif i + 1 < len(lyrs) and isinstance(lyrs[i + 1], layers.Activation):
                    i += 1
                    an = getattr(lyrs[i].activation, "__name__", "")
                    a = lyrs[i](z)
                    h = a
                else:
                    a = h = z
                if an == "relu":
                    relu_in.append(z)
                L.append((mod, "dense" if isinstance(ly, layers.Dense) else "conv", z, a))
                if logits is None and i == len(lyrs) - 1:
                    logits = z
            elif isinstance(ly, layers.MaxPooling1D):
                assert ly.padding == "valid"
                pools.append((h, (ly.pool_size[0], ly.strides[0], 0, 1, False)))
                h = ly(h)
            else:
                h = ly(h, training=False) if isinstance(ly, layers.Dropout) else ly(h)
            i += 1
        return L, logits, h, relu_in, pools

    def fwd(m, name, xnp, kinks_only=None):
        """kinks_only=eps: only the kink counts (relu_eps = eps) of kink_counts."""
        x = tf.constant(xnp)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            L, logits, out, relu_in, pools = instrumented(m, x)
            K = logits.shape[1]
            target = np.argmax(logits.numpy(), 1) if K > 1 else np.zeros(len(xnp), np.int64)
            aL = tf.reduce_sum(tf.gather(logits, target, axis=1, batch_dims=1))
            asums = [[tf.reduce_sum(a[..., f]) for f in range(a.shape[-1])] for _, _, _, a in L] \
                if kinks_only is None else []
            if K > 1 and name == "keras_fcn" and kinks_only is None:
                psum = tf.reduce_sum(tf.gather(tf.nn.softmax(logits, 1), target, axis=1, batch_dims=1))
        plain = m(x, training=False).numpy()
        d = float(np.max(np.abs(plain - out.numpy())))
        assert d <= 1e-6, (name, "instrumented forward differs from the model", d)
        if kinks_only is not None:
            cf3 = lambda t: np.transpose(t.numpy(), (0, 2, 1))
            return kink_counts([cf3(r) for r in relu_in], [(cf3(h), p) for h, p in pools], kinks_only)
        cf = lambda g: np.transpose(g.numpy(), (0, 2, 1))   # (N, T, C) -> (N, C, T)
        grads = tape.gradient(aL, [z for _, _, z, _ in L] + [x])
        res = {"target": target.astype(np.int64), "output": out.numpy(),
               "output_saliency": np.abs(cf(grads[-1])),
               "modules": [mod for mod, _, _, _ in L], "kinds": [k for _, k, _, _ in L],
               "filters": [int(z.shape[-1]) for _, _, z, _ in L],
               "importance_raw": [], "saliency": []}
        for (mod, kind, z, a), g, sums in zip(L, grads[:-1], asums):
            g = np.abs(g.numpy())
            res["importance_raw"].append(g.sum(1) if kind == "conv" else g)   # (N, L, F) -> (N, F)
            res["saliency"].append(np.stack([np.abs(cf(tape.gradient(s, x))) for s in sums], 1))
        if name == "keras_fcn":
            res["output_prob_saliency"] = np.abs(cf(tape.gradient(psum, x)))
        del tape
        return res

    return fwd, build, specs


# --------------------------------------------------------------------------
# describe: dump nodes and attributes of every file in the manifest
# --------------------------------------------------------------------------

def describe():
    import onnx
    from onnx import helper, numpy_helper

    with open(MANIFEST) as f:
        data = json.load(f)
    for name, e in data["models"].items():
        m = onnx.load(os.path.join(HERE, e["file"]))
        g = m.graph
        inits = {i.name: i for i in g.initializer}

        def vi(v):
            dims = [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            return f"{v.name}{dims}"

        print(f"### {name}  opset {e['opset']}  {e['exporter']}  "
              f"in {[vi(v) for v in g.input if v.name not in inits]} out {[vi(v) for v in g.output]}  "
              f"{os.path.getsize(os.path.join(HERE, e['file']))} bytes")
        for n in g.node:
            attrs = []
            for a in n.attribute:
                v = helper.get_attribute_value(a)
                if isinstance(v, onnx.TensorProto):
                    arr = numpy_helper.to_array(v)
                    v = arr.tolist() if arr.size <= 8 else f"tensor{list(arr.shape)}"
                elif isinstance(v, bytes):
                    v = v.decode()
                elif isinstance(v, list):
                    v = [x.decode() if isinstance(x, bytes) else x for x in v]
                attrs.append(f"{a.name}={v}")
            ins = []
            for i in n.input:
                if i in inits:
                    arr = numpy_helper.to_array(inits[i])
                    ins.append(f"init{list(arr.shape)}" + (f"={arr.tolist()}" if arr.size <= 6 else ""))
                else:
                    ins.append(i)
            print(f"  {n.op_type:20s} {' '.join(attrs)}  <- {ins}")


def report_failures(failures):
    if failures:
        print("FAILURES:")
        for f, e in failures:
            print(f"  {f}: {e}")
    else:
        print("all exports OK")


if __name__ == "__main__":
    part = sys.argv[1] if len(sys.argv) > 1 else ""
    if part == "torch":
        torch_part()
    elif part == "keras":
        keras_part()
    elif part == "refs-torch":
        refs_part("torch")
    elif part == "refs-keras":
        refs_part("keras")
    elif part == "describe":
        describe()
    else:
        print(__doc__)
        sys.exit(2)
