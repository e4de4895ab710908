#!/usr/bin/env python3
"""Export the ONNX test models used by the engine's tests.

The .onnx files and manifest.json in this folder are committed, so the tests
need neither PyTorch nor TensorFlow.  Regenerate them with:

    python3 -m venv /work/venvs/torch
    /work/venvs/torch/bin/pip install torch==2.13.0 onnx onnxruntime onnxscript numpy
    python3 -m venv /work/venvs/tf
    /work/venvs/tf/bin/pip install tensorflow-cpu==2.21.0 tf2onnx==1.17.0 onnxruntime

    /work/venvs/torch/bin/python tests/models/make_models.py torch
    /work/venvs/tf/bin/python    tests/models/make_models.py keras
    # either python (needs only onnx):
    /work/venvs/torch/bin/python tests/models/make_models.py describe

Each part writes its own .onnx files and merges its entries into
manifest.json (sorted by name); the other part's entries are kept.
Every export is checked with onnx.checker, run with onnxruntime on random
input of batch 1 and 64, and compared to the framework's own output (1e-5).
Extra arguments restrict a part to some models/files, e.g. `... torch fcn resnet_op17`.

Known: with Keras 3, tf2onnx 1.17's convert.from_keras fails (KeyError 'keras_tensor_N');
the script then converts a tf.function wrapper with convert.from_function.  Outputs are
byte-reproducible (tf2onnx's drifting generated names are canonicalised).
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
    """Drop doc_strings (TorchScript puts Python stack traces there) to keep files small/stable."""
    model.doc_string = ""
    model.graph.doc_string = ""
    for n in model.graph.node:
        n.doc_string = ""


# --------------------------------------------------------------------------
# PyTorch part
# --------------------------------------------------------------------------

def torch_part():
    import onnx
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

    def build(name):
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(12345)
        m = {
            "paper_net": lambda: PaperNet(),
            "fcn": lambda: FCN(),
            "resnet": lambda: ResNet(),
            "channels_last": lambda: ChannelsLast(g),
            "ops_zoo": lambda: OpsZoo(g),
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
    }

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

def keras_part():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # bitwise-stabler reference outputs
    import onnx
    import tensorflow as tf
    import tf2onnx
    import keras
    from keras import layers

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
        else:
            raise KeyError(name)
        # Keras initialises biases to zero and tf2onnx then drops them; make every bias
        # non-zero so the exported graphs really carry Conv/Dense biases.
        rng = np.random.default_rng(99)
        for lyr in m.layers:
            if isinstance(lyr, (layers.Conv1D, layers.Dense)) and lyr.use_bias:
                w, b = lyr.get_weights()
                lyr.set_weights([w, (rng.standard_normal(b.shape) * 0.1).astype(np.float32)])
        return m

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
    }
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
    elif part == "describe":
        describe()
    else:
        print(__doc__)
        sys.exit(2)
