#!/usr/bin/env python3
"""Benchmark: TSViz engine vs PyTorch autograd doing the same explanation work.

Not a test. Run from the repository root in an environment that has both ``torch`` and
``tsviz_native`` (see bench/README.md):

    python bench/bench_explain.py [--reps 30] [--budget 8] [--quick]

For the paper's network (tests/models/paper_net_op17.onnx, input (N, 2, 50)) and the FCN
(tests/models/fcn_op17.onnx, input (N, 1, 150)) it times, median of repeated runs:

  (a) explain: ``model.explain(x)`` on one sample and on a batch of 64 = forward + one backward
      from the target unit, giving the importance of every filter of every filter layer and the
      output saliency.  PyTorch: a forward that keeps every z^l, then one
      ``torch.autograd.grad(target.sum(), [x] + zs)``; importance = sum over positions of |grad|
      per filter, min-max scaled per sample; output saliency = |dx|.
  (b) saliency of every filter of every layer on one sample, on an already computed
      explanation: ``for name in ex.layer_names: ex.saliency(name)``.  PyTorch: on an already
      computed forward (graph retained), per layer one batched
      ``torch.autograd.grad(a^l, x, onehots, is_grads_batched=True)`` whose cotangents are one-hot
      per filter, summed over positions, giving (F, C, T) per layer.

The PyTorch models are built from the ONNX initializers (BatchNorm is already folded into the
convolutions in these exports), and before timing the script asserts that the PyTorch forward
equals ``tsv.load(...).predict`` (1e-5) and that importance and saliency agree (1e-4 of scale).
Both run on one thread: ``torch.set_num_threads(1)`` and ``TSVIZ_NUM_THREADS=1`` (set here
before the engine loads, unless given), so the comparison is kernel against kernel.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TSVIZ_NUM_THREADS", "1")  # read when the engine first runs a batch

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - message for the user
    sys.exit(
        "bench_explain.py needs PyTorch, which is not installed in this Python "
        f"({sys.executable}).\nUse the benchmark venv, e.g.\n"
        "  /work/venvs/torch/bin/pip install /path/to/repo   # tsviz_native into the torch venv\n"
        "  /work/venvs/torch/bin/python bench/bench_explain.py\n"
        "(see bench/README.md). PyTorch is not a dependency of tsviz_native."
    )

try:
    import onnx
    from onnx import numpy_helper
except ImportError:  # pragma: no cover
    sys.exit("bench_explain.py needs the `onnx` package (to read the weights): pip install onnx")

try:
    import tsviz_native as tsv
except ImportError:  # pragma: no cover
    sys.exit(
        "bench_explain.py needs tsviz_native; install it into this Python with "
        "`pip install <repo root>` (see bench/README.md)."
    )

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "tests" / "models"


# --------------------------------------------------------------------------------------------
# PyTorch equivalents, weights read from the ONNX initializers
# --------------------------------------------------------------------------------------------

def _weights(path: Path):
    """(conv/gemm nodes in graph order, initializer name -> tensor)."""
    model = onnx.load(str(path))
    inits = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in model.graph.initializer}
    nodes = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm")]
    return nodes, inits


class PaperNetTorch:
    """Conv1d(2,16,5,p2)-ReLU-MaxPool2-Conv1d(16,32,5,p2)-ReLU-MaxPool2-Conv1d(32,32,3,p1)-ReLU-
    Flatten-Linear(384,1), as in tests/models/make_models.py."""

    name = "paper_net"
    onnx_file = "paper_net_op17.onnx"

    def __init__(self):
        nodes, w = _weights(MODELS / self.onnx_file)
        (c1, c2, c3, fc) = nodes
        self.w = [(w[n.input[1]], w[n.input[2]]) for n in (c1, c2, c3, fc)]

    def forward(self, x):
        """Returns (output explained (N, K), [z^l], [a^l]) for the filter layers in TSViz order."""
        (w1, b1), (w2, b2), (w3, b3), (wf, bf) = self.w
        z1 = F.conv1d(x, w1, b1, padding=2)
        a1 = F.relu(z1)
        z2 = F.conv1d(F.max_pool1d(a1, 2), w2, b2, padding=2)
        a2 = F.relu(z2)
        z3 = F.conv1d(F.max_pool1d(a2, 2), w3, b3, padding=1)
        a3 = F.relu(z3)
        z4 = F.linear(a3.flatten(1), wf, bf)
        return z4, [z1, z2, z3, z4], [a1, a2, a3, z4]

    def predict(self, x):
        return self.forward(x)[0]


class FCNTorch:
    """3x [Conv1d 'same' (128/8, 256/5, 128/3) - (BN folded) - ReLU], mean over T, Linear(128,2),
    Softmax; the logit of the argmax class is explained."""

    name = "fcn"
    onnx_file = "fcn_op17.onnx"

    def __init__(self):
        nodes, w = _weights(MODELS / self.onnx_file)
        self.w = [(w[n.input[1]], w[n.input[2]]) for n in nodes]

    @staticmethod
    def _same(h, k):  # ONNX auto_pad SAME_UPPER (the extra pad goes to the end), stride 1
        total = k - 1
        return F.pad(h, (total // 2, total - total // 2))

    def forward(self, x):
        (w1, b1), (w2, b2), (w3, b3), (wf, bf) = self.w
        z1 = F.conv1d(self._same(x, w1.shape[-1]), w1, b1)
        a1 = F.relu(z1)
        z2 = F.conv1d(self._same(a1, w2.shape[-1]), w2, b2)
        a2 = F.relu(z2)
        z3 = F.conv1d(self._same(a2, w3.shape[-1]), w3, b3)
        a3 = F.relu(z3)
        z4 = F.linear(a3.mean(dim=2), wf, bf)  # logits
        return z4, [z1, z2, z3, z4], [a1, a2, a3, z4]

    def predict(self, x):
        return torch.softmax(self.forward(x)[0], dim=1)


# --------------------------------------------------------------------------------------------
# the PyTorch workloads, written the fast way
# --------------------------------------------------------------------------------------------

def _minmax(v):
    """Min-max scaling per sample over the filters of a layer; a constant row gives 0."""
    lo = v.amin(dim=1, keepdim=True)
    hi = v.amax(dim=1, keepdim=True)
    span = hi - lo
    return torch.where(span > 0, (v - lo) / torch.where(span > 0, span, torch.ones_like(span)),
                       torch.zeros_like(v))


def torch_explain(net, x_np):
    """Forward keeping z^l, one backward from the target: importance per layer + output saliency."""
    x = torch.from_numpy(x_np).requires_grad_(True)
    out, zs, _ = net.forward(x)
    target = out.argmax(dim=1)  # forecaster: K = 1 -> unit 0; classifier: predicted class
    t = out.gather(1, target[:, None])
    grads = torch.autograd.grad(t.sum(), [x] + zs)
    imp_raw = [g.abs().reshape(g.shape[0], g.shape[1], -1).sum(-1) for g in grads[1:]]
    imp = [_minmax(r) for r in imp_raw]
    return out.detach(), imp_raw, imp, grads[0].abs()


def torch_forward_for_saliency(net, x_np):
    """The forward that (b) starts from (like ``ex`` for TSViz): graph kept, not timed."""
    x = torch.from_numpy(x_np).requires_grad_(True)
    _, _, acts = net.forward(x)
    return x, acts


def torch_saliency_all(x, acts):
    """Per layer one batched backward: cotangent f = one-hot on filter f at every position,
    i.e. d sum_i a^l[f, i] / dx for all f at once -> |.| as (N, F, C, T)."""
    out = []
    for a in acts:
        n, f = a.shape[0], a.shape[1]
        rest = a.shape[2:]
        eye = torch.eye(f, dtype=a.dtype).reshape((f, 1, f) + (1,) * len(rest))
        v = eye.expand((f, n, f) + tuple(rest))
        (g,) = torch.autograd.grad(a, x, v, retain_graph=True, is_grads_batched=True)
        out.append(g.abs().transpose(0, 1))  # (F, N, C, T) -> (N, F, C, T)
    return out


# --------------------------------------------------------------------------------------------
# data, checks, timing
# --------------------------------------------------------------------------------------------

def paper_windows(n, t=50, seed=0):
    """Windows of the B5M traffic series, standardised, with its first difference: (n, 2, t)."""
    s = tsv.datasets.internet_traffic("B5M").values.astype(np.float64)
    s = (s - s.mean()) / s.std()
    d = np.diff(s, prepend=s[0])
    starts = np.random.default_rng(seed).integers(0, len(s) - t, size=n)
    return np.stack([np.stack([s[a:a + t], d[a:a + t]]) for a in starts]).astype(np.float32)


def fcn_windows(n):
    x = tsv.datasets.ucr("GunPoint").X_test.astype(np.float32)  # (150, 1, 150)
    return np.ascontiguousarray(x[:n])


def _close(name, got, ref, rel):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape, f"{name}: shape {got.shape} vs {ref.shape}"
    scale = max(float(np.max(np.abs(ref))), 1e-30)
    err = float(np.max(np.abs(got - ref))) / scale
    assert err <= rel, f"{name}: max|diff|/max|ref| = {err:.3g} > {rel}"
    return err


def check_same_work(net, model, xb):
    """Assert the PyTorch model and the engine compute the same things on ``xb``."""
    worst_pred = float(np.max(np.abs(net.predict(torch.from_numpy(xb)).detach().numpy()
                                     - model.predict(xb))))
    assert worst_pred <= 1e-5, f"{net.name}: torch vs tsviz predict differ by {worst_pred:.3g}"
    # A preactivation within float32 rounding of a ReLU kink can land on either side in two
    # correct float32 implementations (seen: z = -5.6e-9 vs +1.4e-8 in one FCN sample), which
    # flips that position's gradient. Samples where the engine's and torch's z^l differ in sign
    # somewhere are left out of the comparison (not out of the timing).
    with torch.no_grad():
        _, zs, _ = net.forward(torch.from_numpy(xb))
    ex_all = model.explain(xb)
    flip = np.zeros(len(xb), bool)
    for name, z in zip(ex_all.layer_names, zs):
        e = ex_all.preactivations[name].reshape(z.shape)
        flip |= ((e > 0) != (z.numpy() > 0)).reshape(len(xb), -1).any(axis=1)
    keep = np.flatnonzero(~flip)
    assert len(keep) >= len(xb) // 2, f"{net.name}: too many samples with a ReLU flip"
    xc = np.ascontiguousarray(xb[keep])
    ex = model.explain(xc)
    out, imp_raw, imp, sal = torch_explain(net, xc)
    assert len(imp) == len(ex.layer_names)
    worst = 0.0
    for name, r, s in zip(ex.layer_names, imp_raw, imp):
        worst = max(worst, _close(f"{net.name} importance_raw {name}", ex.importance_raw[name],
                                  r.numpy(), 1e-4))
        worst = max(worst, _close(f"{net.name} importance {name}", ex.importance[name],
                                  s.numpy(), 1e-4))
    worst = max(worst, _close(f"{net.name} output_saliency", ex.output_saliency, sal.numpy(), 1e-4))
    # (b) on one sample
    x1 = xc[:1]
    ex1 = model.explain(x1)
    x, acts = torch_forward_for_saliency(net, x1)
    for name, s in zip(ex1.layer_names, torch_saliency_all(x, acts)):
        worst = max(worst, _close(f"{net.name} saliency {name}", ex1.saliency(name),
                                  s.numpy(), 1e-4))
    return worst_pred, worst, len(xb) - len(keep)


def timeit(fn, reps, budget_s, warmup=2):
    """Median of up to ``reps`` timed calls after ``warmup`` calls; fewer reps (>= 3) when one
    call is slow, so that one case takes roughly ``budget_s`` seconds."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        fn()
    per = (time.perf_counter() - t0) / max(warmup, 1)
    n = max(3, min(reps, int(budget_s / max(per, 1e-9))))
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3, n


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=30, help="max timed repetitions per case (30)")
    ap.add_argument("--budget", type=float, default=8.0,
                    help="seconds per case; slow cases get fewer repetitions (min 3)")
    ap.add_argument("--quick", action="store_true", help="--reps 5 --budget 1, for a smoke run")
    args = ap.parse_args(argv)
    if args.quick:
        args.reps, args.budget = 5, 1.0

    torch.set_num_threads(1)
    torch.set_grad_enabled(True)
    print(f"CPU: {cpu_model()}; cores: {os.cpu_count()}")
    print(f"python {platform.python_version()}, torch {torch.__version__} "
          f"(torch.set_num_threads(1), TSVIZ_NUM_THREADS={os.environ['TSVIZ_NUM_THREADS']}), "
          f"tsviz_native {tsv.__version__}, numpy {np.__version__}")
    print(f"medians of up to {args.reps} runs (fewer for slow cases, ~{args.budget:g} s per case), "
          f"after 2 warm-up runs; times in ms\n")

    rows = []
    for net, windows in ((PaperNetTorch(), paper_windows), (FCNTorch(), fcn_windows)):
        model = tsv.load(MODELS / net.onnx_file)
        xb = windows(64)
        x1 = np.ascontiguousarray(xb[:1])
        pred_err, rel_err, n_kink = check_same_work(net, model, xb)
        print(f"{net.name}: same work checked (predict max|diff| {pred_err:.2g}, importance/"
              f"saliency max rel diff {rel_err:.2g}; {n_kink} of {len(xb)} samples left out of "
              f"the comparison for a z^l sign flip at a ReLU kink); layers: "
              + ", ".join(f"{l.n_filters}" for l in model.layers) + " filters")

        for label, x in (("explain, 1 sample", x1), ("explain, batch 64", xb)):
            ms_t, n_t = timeit(lambda: model.explain(x), args.reps, args.budget)
            ms_p, n_p = timeit(lambda: torch_explain(net, x), args.reps, args.budget)
            rows.append((net.name, label, ms_t, ms_p, n_t, n_p))

        ex1 = model.explain(x1)
        xt, acts = torch_forward_for_saliency(net, x1)

        def tsviz_sal():
            for name in ex1.layer_names:
                ex1.saliency(name)

        ms_t, n_t = timeit(tsviz_sal, args.reps, args.budget, warmup=1)
        ms_p, n_p = timeit(lambda: torch_saliency_all(xt, acts), args.reps, args.budget, warmup=1)
        n_f = sum(l.n_filters for l in model.layers)
        rows.append((net.name, f"saliency, all {n_f} filters, 1 sample", ms_t, ms_p, n_t, n_p))

    w = max(len(f"{r[0]}: {r[1]}") for r in rows)
    head = f"{'workload':<{w}}  {'TSViz ms':>10}  {'PyTorch ms':>10}  {'PyTorch/TSViz':>13}  runs (T/P)"
    print("\n" + head)
    print("-" * len(head))
    for name, label, ms_t, ms_p, n_t, n_p in rows:
        print(f"{name + ': ' + label:<{w}}  {ms_t:>10.3f}  {ms_p:>10.3f}  {ms_p / ms_t:>13.2f}  "
              f"{n_t}/{n_p}")
    print("\n(a) explain = forward + one backward: importance of every filter + output saliency.\n"
          "(b) saliency starts from a computed explanation / retained torch graph (forward not "
          "timed).\nratio > 1: TSViz is faster.")


if __name__ == "__main__":
    main()
