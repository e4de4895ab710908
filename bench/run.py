#!/usr/bin/env python3
"""TSViz engine against its peers: ONNX Runtime (forward) and PyTorch (explain, full analysis).

    python bench/run.py                      # every row, 1 and 2 threads (~10-15 minutes)
    python bench/run.py --quick              # smoke run, every row, small sizes (~2-3 minutes)
    python bench/run.py --threads 1 --only explain full fcn paper_net

Rows (see bench/README.md for the exact work and the FLOP counts):

* forward: ``model.predict(x)`` vs an ONNX Runtime session, batch 1 and 256, for every
  committed test model (tests/models/*.onnx) and the two shipped models
  (tsviz_native/models/*.onnx);
* explain: ``model.explain(x)`` (importance of every filter + output saliency) vs PyTorch
  autograd (one forward, one backward), 1 and 64 samples;
* full: explain + the saliency of every filter of every filter layer vs PyTorch's faster of
  two ways (reverse mode, one batched backward of one-hot cotangents per layer; forward mode,
  ``vmap(jacfwd(f))``), 1 and 64 samples.

Each thread count runs in its own subprocess of this script, with TSVIZ_NUM_THREADS set before
the engine first runs and ``torch.set_num_threads`` / ONNX Runtime's ``intra_op_num_threads``
set to the same value. Inside a subprocess every row checks that both sides compute the same
thing, then times them interleaved (engine, peer, engine, peer, ...) after warm-up calls and
reports medians. The table is printed and written to bench/results/ as markdown and JSON.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"

KINDS = ("forward", "explain", "full")
DEFAULT_NETS = ("paper_net", "fcn", "resnet", "channels_last", "keras_paper_net")
EXTRA_NETS = ("keras_fcn",)            # only with --only keras_fcn (another FCN-sized row)


def rel(p: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def forward_models():
    return sorted((ROOT / "tests" / "models").glob("*.onnx")) + \
        sorted((ROOT / "tsviz_native" / "models").glob("*.onnx"))


# --------------------------------------------------------------------------------------------
# machine and versions
# --------------------------------------------------------------------------------------------

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    fl = set(line.split(":", 1)[1].split())
                    return [x for x in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if x in fl]
    except OSError:
        pass
    return []


def git_commit():
    try:
        c = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                           text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return c + ("+uncommitted changes" if dirty else "") if c else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def engine_built():
    """When the installed engine's extension module was written (UTC): the package is rebuilt
    from time to time while the engine is being optimised."""
    try:
        import tsviz_native._native as nat

        t = os.path.getmtime(nat.__file__)
        return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    except (ImportError, OSError, AttributeError):
        return "unknown"


def versions():
    import importlib.metadata as md

    v = {"python": platform.python_version()}
    for name, dist in (("tsviz_native", "tsviz-native"), ("numpy", "numpy"), ("torch", "torch"),
                       ("onnxruntime", "onnxruntime"), ("onnx", "onnx")):
        try:
            v[name] = md.version(dist)
        except md.PackageNotFoundError:
            v[name] = "not installed"
    return v


# --------------------------------------------------------------------------------------------
# data: real windows of the right shape
# --------------------------------------------------------------------------------------------

_CACHE: dict = {}


def _b5m():
    import tsviz_native as tsv

    if "b5m" not in _CACHE:
        s = tsv.datasets.internet_traffic("B5M").values.astype(np.float64)
        s = (s - s.mean()) / s.std()
        d = np.diff(s, prepend=s[0])
        _CACHE["b5m"] = (s, (d - d.mean()) / d.std(), d)
    return _CACHE["b5m"]


def _ucr(name):
    import tsviz_native as tsv

    if name not in _CACHE:
        ds = tsv.datasets.ucr(name)
        _CACHE[name] = np.concatenate([ds.X_test, ds.X_train]).astype(np.float32)  # test first
    return _CACHE[name]


def channels_first_shape(model):
    """(C, T) of one sample, channels-first; T = -1 for a free length."""
    shape = tuple(model.sample_shape)
    if model.layout == "NTC":
        return shape[1], shape[0]
    if len(shape) == 1:
        return 1, shape[0]
    return shape


def windows(model, n, seed=0):
    """n real windows in the model's input layout, and where they come from.

    (1, 150) or free length with 1 channel: GunPoint series (test set first, then train;
    cycled beyond 200); (1, 24): ItalyPowerDemand; (2, 50): the paper's B5M windows (the
    standardised series and its first difference); any other (C, T): B5M windows, channel c the
    standardised series (c even) or its standardised first difference (c odd), 97 steps apart;
    128 steps when the length is free."""
    c, t = channels_first_shape(model)
    if t == -1 and c != 1:
        t = 128  # a free length: B5M windows of 128 steps
    if c == 1 and t in (150, -1):
        x = _ucr("GunPoint")
        x = x[np.arange(n) % len(x)]
        src = "GunPoint (UCR), test then train series"
    elif c == 1 and t == 24:
        x = _ucr("ItalyPowerDemand")
        x = x[np.arange(n) % len(x)]
        src = "ItalyPowerDemand (UCR)"
    else:
        s, dz, d = _b5m()
        starts = np.random.default_rng(seed).integers(0, len(s) - t - 97 * c, size=n)
        if (c, t) == (2, 50):
            x = np.stack([np.stack([s[a:a + t], d[a:a + t]]) for a in starts])
            src = "B5M windows (standardised series, first difference)"
        else:
            x = np.stack([np.stack([(s if k % 2 == 0 else dz)[a + 97 * k:a + 97 * k + t]
                                    for k in range(c)]) for a in starts])
            src = "B5M windows (series / first difference per channel)"
    x = x.astype(np.float32).reshape(n, c, -1)
    if model.layout == "NTC":
        x = x.transpose(0, 2, 1)
    elif model.layout == "NT":
        x = x[:, 0]
    return np.ascontiguousarray(x), src


# --------------------------------------------------------------------------------------------
# FLOP counts (dense: every multiply-add of the conv / dense layers counted as 2)
# --------------------------------------------------------------------------------------------

def layer_flops(model, x1):
    """Per sample, per filter layer: (name, F, dense forward FLOPs).
    conv: 2 * F * C/g * K * L_out; dense: 2 * F * X. L_out is read from an explanation."""
    ex = model.explain(x1)
    out = []
    for layer in model.layers:
        if layer.op == "conv":
            l_out = int(ex.preactivations[layer.name].shape[-1])
            fl = 2 * layer.n_filters * (layer.in_channels // layer.group) * layer.kernel * l_out
        else:
            fl = 2 * layer.n_filters * layer.in_channels
        out.append((layer.name, layer.n_filters, fl))
    return out


def ancestors(model, path):
    """name -> names of the filter layers below it (that its output depends on)."""
    import onnx

    g = onnx.load(str(path)).graph
    producer = {o: n for n in g.node for o in n.output}
    by_node = {layer.onnx_node: layer.name for layer in model.layers}
    res = {}
    for layer in model.layers:
        node = next(n for n in g.node if n.name == layer.onnx_node)
        seen, found, stack = set(), set(), list(node.input)
        while stack:
            t = stack.pop()
            p = producer.get(t)
            if p is None or p.name in seen:
                continue
            seen.add(p.name)
            if p.name in by_node:
                found.add(by_node[p.name])
            stack.extend(p.input)
        res[layer.name] = found
    return res


def flop_counts(model, path, x1):
    """Per-sample FLOP counts: forward; explain = 2 x forward (the forward, and one backward of
    the input gradient through every layer: same multiply-adds, no weight gradients); full
    analysis, dense reverse = explain + for every layer l, F_l cotangents each pushed densely
    through layer l and every layer below it (what the batched-backward way computes);
    forward-mode dense = explain + C*T tangents each pushed through every layer (jacfwd)."""
    lf = layer_flops(model, x1)
    fwd = sum(f for _, _, f in lf)
    out = {"forward": fwd, "explain": 2 * fwd}
    try:
        anc = ancestors(model, path)
    except Exception:  # no onnx or an unexpected graph: every layer depends on all before it
        anc = {name: {m for m, _, _ in lf[:i]} for i, (name, _, _) in enumerate(lf)}
    fl = {name: f for name, _, f in lf}
    rev = sum(nf * (fl[name] + sum(fl[a] for a in anc[name])) for name, nf, _ in lf)
    out["full_dense_reverse"] = 2 * fwd + rev
    out["full_dense_forward_mode"] = 2 * fwd + int(np.prod(x1.shape[1:])) * fwd
    return out


# --------------------------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------------------------

def interleaved(fns, cfg):
    """Median seconds per callable in ``fns`` (name -> fn), timed in turns: every repetition
    calls each once, in the given order. Warm-up: 2 turns (1 when one turn takes over a
    second). Repetitions: as many as fit in cfg.budget seconds, within [min_reps, max_reps]
    (--quick: 1 repetition when one turn takes over cfg.slow_turn_s)."""
    gc.collect()
    warm = {}
    t_turn = 0.0
    for k, fn in fns.items():
        t = time.perf_counter()
        fn()
        warm[k] = time.perf_counter() - t
    t_turn = sum(warm.values())
    if t_turn < 1.0 and cfg.warmup > 1:
        for _ in range(cfg.warmup - 1):
            t0 = time.perf_counter()
            for fn in fns.values():
                fn()
            t_turn = min(t_turn, time.perf_counter() - t0)
    min_reps = cfg.min_reps if t_turn < cfg.slow_turn_s else 1
    reps = max(min_reps, min(cfg.max_reps, int(cfg.budget / max(t_turn, 1e-9))))
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    interleaved.last_times = times
    return {k: statistics.median(v) for k, v in times.items()}, reps


# --------------------------------------------------------------------------------------------
# correctness checks
# --------------------------------------------------------------------------------------------

class CheckError(AssertionError):
    pass


def _close(what, got, ref, tol):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        raise CheckError(f"{what}: shape {got.shape} vs {ref.shape}")
    scale = max(float(np.max(np.abs(ref))) if ref.size else 0.0, 1e-30)
    err = float(np.max(np.abs(got - ref))) / scale if ref.size else 0.0
    if not err <= tol:
        raise CheckError(f"{what}: max|diff|/max|ref| = {err:.3g} > {tol}")
    return err


def kink_free(net, model, x):
    """Indices of the samples where PyTorch and the engine agree on the sign of every z^l and
    no other ReLU input (a residual Add) is within 1e-6 of its scale from 0. A preactivation
    within float32 rounding of a kink can land on either side in two correct implementations
    (seen: z = -5.6e-9 vs +1.4e-8 in one FCN sample), which flips that position's gradient;
    such samples are left out of the comparison, not out of the timing."""
    import torch

    with torch.no_grad():
        _, zs, _, kinks = net.forward(torch.from_numpy(x))
    ex = model.explain(x)
    flip = np.zeros(len(x), bool)
    for name, z in zip(ex.layer_names, zs):
        e = ex.preactivations[name].reshape(z.shape)
        flip |= ((e > 0) != (z.numpy() > 0)).reshape(len(x), -1).any(axis=1)
    for k in kinks:
        k = k.numpy().reshape(len(x), -1)
        flip |= (np.abs(k) <= 1e-6 * np.abs(k).max()).any(axis=1)
    return np.flatnonzero(~flip)


def check_net(net, model, x, n_sal):
    """Assert the PyTorch equivalent and the engine compute the same: predict (1e-5 absolute),
    importance_raw, importance, output saliency on ``x`` and the saliency of every filter of
    every layer, both PyTorch ways, on ``n_sal`` samples (1e-4 of each array's max)."""
    import torch
    import torch_peers as tp

    names = [layer.name for layer in model.layers]
    if net.layer_names() != names:
        raise CheckError(f"{net.key}: layer names {net.layer_names()} != engine {names}")
    d_pred = float(np.max(np.abs(net.predict(torch.from_numpy(x)).detach().numpy() - model.predict(x))))
    if not d_pred <= 1e-5:
        raise CheckError(f"{net.key}: predict differs by {d_pred:.3g} > 1e-5")
    keep = kink_free(net, model, x)
    if len(keep) < max(1, len(x) // 2):
        raise CheckError(f"{net.key}: {len(x) - len(keep)} of {len(x)} samples at a ReLU kink")
    xc = np.ascontiguousarray(x[keep])
    ex = model.explain(xc)
    _, imp_raw, imp, osal = tp.explain(net, xc)
    worst, const_rows = 0.0, []
    for name, r, s in zip(ex.layer_names, imp_raw, imp):
        worst = max(worst, _close(f"{net.key} importance_raw {name}", ex.importance_raw[name],
                                  r.numpy(), 1e-4))
        r = r.numpy()
        varied = r.max(axis=1) > r.min(axis=1)  # min-max scaling of a constant row: see below
        if varied.any():
            worst = max(worst, _close(f"{net.key} importance {name}", ex.importance[name][varied],
                                      s.numpy()[varied], 1e-4))
        if (~varied).any() and not np.allclose(ex.importance[name][~varied], s.numpy()[~varied]):
            const_rows.append(f"{name}: engine {np.unique(ex.importance[name][~varied]).tolist()}, "
                              f"docs/definitions.md {np.unique(s.numpy()[~varied]).tolist()}")
    worst = max(worst, _close(f"{net.key} output_saliency", ex.output_saliency, osal.numpy(), 1e-4))
    xs = np.ascontiguousarray(xc[:n_sal])
    exs = model.explain(xs)
    eng = [exs.saliency(name) for name in exs.layer_names]
    (_, _, _, _), sal_g = tp.full_grad(net, xs)
    (_, _, _, _), sal_f = tp.full_jacfwd(net, xs, tp.jacfwd_chunk(net, xs))
    for way, sal in (("grad", sal_g), ("jacfwd", sal_f)):
        for name, e, s in zip(exs.layer_names, eng, sal):
            worst = max(worst, _close(f"{net.key} saliency ({way}) {name}", e, s.numpy(), 1e-4))
    return {"predict_max_abs_diff": d_pred, "max_rel_diff": worst,
            "kink_samples_left_out": int(len(x) - len(keep)), "saliency_checked_samples": len(xs),
            "constant_row_importance_mismatch": const_rows}


# --------------------------------------------------------------------------------------------
# the worker: one thread count
# --------------------------------------------------------------------------------------------

def log(msg):
    print(msg, flush=True)


def run_forward(cfg, threads, models, out):
    import onnxruntime as ort
    import tsviz_native as tsv

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not cfg.peer_spin:
        # Its pool threads wait passively after a call, as the engine's do (see main()).
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    for path in models:
        model = tsv.load(path)
        sess = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
        in_name = sess.get_inputs()[0].name
        x1, src = windows(model, 1)
        fl = flop_counts(model, path, x1)
        for n in cfg.forward_batches:
            x, src = windows(model, n)
            row = {"kind": "forward", "model": path.stem, "file": rel(path), "n": n,
                   "threads": threads, "data": src, "peer": "onnxruntime",
                   "flops": fl["forward"] * n, "flop_count": "dense forward"}
            try:
                ye, yo = model.predict(x), sess.run(None, {in_name: x})[0]
                row["check_max_rel_diff"] = _close(f"{path.stem} forward", ye, yo, 1e-4)
            except CheckError as e:
                row["error"] = str(e)
                log(f"  FAILED CHECK {e}")
                out.append(row)
                continue
            feed = {in_name: x}
            med, reps = interleaved({"engine": lambda: model.predict(x),
                                     "onnxruntime": lambda: sess.run(None, feed)}, cfg)
            row.update(engine_s=med["engine"], peer_s=med["onnxruntime"], reps=reps,
                       peer_ways={"onnxruntime": med["onnxruntime"]}, times_s=interleaved.last_times)
            out.append(row)
            log(f"  forward {path.stem:24s} N={n:<4d} engine {med['engine'] * 1e3:9.3f} ms  "
                f"ORT {med['onnxruntime'] * 1e3:9.3f} ms  ratio {med['onnxruntime'] / med['engine']:6.2f}"
                f"  ({reps} reps)")


def run_nets(cfg, threads, nets, kinds, out, checks):
    import torch
    import tsviz_native as tsv
    import torch_peers as tp

    for key in nets:
        net = tp.NETS[key]()
        model = tsv.load(net.path)
        n_big = max(cfg.explain_samples, cfg.full_samples)
        xb, src = windows(model, n_big)
        x1 = np.ascontiguousarray(xb[:1])
        fl = flop_counts(model, net.path, x1)
        try:
            chk = check_net(net, model, xb[:cfg.explain_samples], cfg.check_saliency_samples)
            checks[key] = chk
            log(f"  {key}: same work checked (predict max|diff| {chk['predict_max_abs_diff']:.2g}; "
                f"importance/saliency max rel diff {chk['max_rel_diff']:.2g}; "
                f"{chk['kink_samples_left_out']} of {cfg.explain_samples} samples left out for a "
                f"ReLU kink)")
            for c in chk["constant_row_importance_mismatch"]:
                log(f"  NOTE {key}: min-max importance of a constant layer differs from docs/definitions.md: {c}")
        except CheckError as e:
            checks[key] = {"error": str(e)}
            log(f"  FAILED CHECK {e}; {key} is not timed")
            for kind in kinds:
                out.append({"kind": kind, "model": key, "file": rel(net.path), "threads": threads,
                            "error": str(e)})
            continue
        base = {"model": key, "file": rel(net.path), "threads": threads, "data": src}
        if "explain" in kinds:
            for n in (1, cfg.explain_samples):
                x = np.ascontiguousarray(xb[:n])
                med, reps = interleaved({"engine": lambda: model.explain(x),
                                         "torch": lambda: tp.explain(net, x)}, cfg)
                out.append({**base, "kind": "explain", "n": n, "engine_s": med["engine"],
                            "peer_s": med["torch"], "peer": "torch autograd", "reps": reps,
                            "peer_ways": {"torch autograd": med["torch"]},
                            "flops": fl["explain"] * n, "flop_count": "2 x dense forward",
                            "times_s": interleaved.last_times})
                log(f"  explain {key:16s} N={n:<3d} engine {med['engine'] * 1e3:9.3f} ms  torch "
                    f"{med['torch'] * 1e3:9.3f} ms  ratio {med['torch'] / med['engine']:6.2f}  ({reps} reps)")
        if "full" in kinds:
            for n in (1, cfg.full_samples):
                x = np.ascontiguousarray(xb[:n])
                chunk = tp.jacfwd_chunk(net, x)

                def engine_full(x=x):
                    ex = model.explain(x)
                    return [ex.saliency(name) for name in ex.layer_names]

                med, reps = interleaved({"engine": engine_full,
                                         "grad": lambda: tp.full_grad(net, x),
                                         "jacfwd": lambda: tp.full_jacfwd(net, x, chunk)}, cfg)
                way = min(("grad", "jacfwd"), key=lambda k: med[k])
                out.append({**base, "kind": "full", "n": n, "engine_s": med["engine"],
                            "peer_s": med[way], "peer": f"torch {way}", "reps": reps,
                            "peer_ways": {"torch grad": med["grad"], "torch jacfwd": med["jacfwd"]},
                            "jacfwd_chunk": chunk, "flops": fl["full_dense_reverse"] * n,
                            "flops_forward_mode": fl["full_dense_forward_mode"] * n,
                            "flop_count": "dense reverse", "times_s": interleaved.last_times})
                log(f"  full    {key:16s} N={n:<3d} engine {med['engine'] * 1e3:9.3f} ms  torch "
                    f"grad {med['grad'] * 1e3:9.3f} ms, jacfwd {med['jacfwd'] * 1e3:9.3f} ms  ratio "
                    f"{med[way] / med['engine']:6.2f} ({way})  ({reps} reps)")
        del net, model
        gc.collect()
        torch.set_num_threads(threads)


def worker(args):
    threads = args.threads[0]
    assert os.environ.get("TSVIZ_NUM_THREADS") == str(threads), "run through bench/run.py"
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.set_grad_enabled(True)
    sys.path.insert(0, str(HERE))
    cfg = config(args)
    kinds, models, nets = selection(args)
    rows, checks = [], {}
    t0 = time.perf_counter()
    built = engine_built()
    load0 = os.getloadavg()[0]
    log(f"[{threads} thread{'s' if threads > 1 else ''}] TSVIZ_NUM_THREADS={threads}, "
        f"torch.set_num_threads({threads}), ORT intra_op_num_threads={threads}")
    if os.environ.get("TSVIZ_KERNELS"):
        log(f"kernels: engine TSVIZ_KERNELS={os.environ['TSVIZ_KERNELS']}, PyTorch "
            f"{torch.backends.cpu.get_cpu_capability()}")
    if "forward" in kinds:
        run_forward(cfg, threads, models, rows)
    if {"explain", "full"} & set(kinds):
        run_nets(cfg, threads, nets, kinds, rows, checks)
    with open(args.worker_out, "w") as f:
        json.dump({"threads": threads, "rows": rows, "checks": checks,
                   "seconds": time.perf_counter() - t0, "engine_built": built,
                   "load_average": [load0, os.getloadavg()[0]]}, f)


# --------------------------------------------------------------------------------------------
# configuration, selection, report
# --------------------------------------------------------------------------------------------

def config(args):
    class C:
        pass

    c = C()
    if args.quick:
        c.budget, c.min_reps, c.max_reps, c.warmup, c.slow_turn_s = 0.3, 3, 5, 1, 0.3
        c.forward_batches, c.explain_samples, c.full_samples = (1, 256), 64, 4
        c.check_saliency_samples = 2
    else:
        c.budget, c.min_reps, c.max_reps, c.warmup, c.slow_turn_s = 3.0, 3, 41, 2, float("inf")
        c.forward_batches, c.explain_samples, c.full_samples = (1, 256), 64, 64
        c.check_saliency_samples = 4
    if args.budget is not None:
        c.budget = args.budget
    c.peer_spin = args.peer_spin
    return c


def selection(args):
    """(kinds, forward model paths, explain/full net keys) from --only."""
    import torch_peers as tp

    only = args.only or []
    kinds = [k for k in only if k in KINDS] or list(KINDS)
    names = [t for t in only if t not in KINDS]
    unknown = []
    models = forward_models()
    nets = list(DEFAULT_NETS)
    if names:
        models = [p for p in models if any(p.stem == t or p.stem.startswith(t + "_") for t in names)]
        nets = [k for k in list(DEFAULT_NETS) + list(EXTRA_NETS)
                if any(t == k or t == Path(tp.NETS[k].onnx_file).stem for t in names)]
        unknown = [t for t in names if not any(p.stem == t or p.stem.startswith(t + "_")
                                               for p in forward_models()) and t not in tp.NETS]
    if unknown:
        sys.exit(f"--only: unknown row or model {unknown}; rows are {list(KINDS)}, models are "
                 f"file names in tests/models/ and tsviz_native/models/ (or a prefix), nets "
                 f"{list(tp.NETS)}")
    return kinds, models, nets


def _fmt_ms(s):
    ms = s * 1e3
    return f"{ms:.3f}" if ms < 10 else f"{ms:.2f}" if ms < 1000 else f"{ms:.0f}"


def tables(rows, threads):
    """Markdown tables: one per kind of row, a column group per thread count."""
    out = []
    by = {}
    for r in rows:
        by.setdefault((r["kind"], r["model"], r.get("n")), {})[r["threads"]] = r
    titles = {
        "forward": ("Forward vs ONNX Runtime", "ORT ms", "dense forward FLOPs"),
        "explain": ("Explain (importance of every filter + output saliency) vs PyTorch autograd",
                    "PyTorch ms", "2 x dense forward FLOPs"),
        "full": ("Full analysis (explain + saliency of every filter of every layer) vs PyTorch, "
                 "the faster of its two ways", "PyTorch ms (way)", "dense reverse FLOPs"),
    }
    for kind in KINDS:
        keys = [k for k in by if k[0] == kind]
        if not keys:
            continue
        title, peer_h, count = titles[kind]
        head = ["model", "N", "MFLOP"]
        for t in threads:
            sfx = f" ({t}t)"
            head += ["engine ms" + sfx, peer_h + sfx, "peer/engine" + sfx, "engine GFLOP/s" + sfx]
        lines = [f"### {title}", "", f"GFLOP/s and MFLOP: {count} (see bench/README.md).", "",
                 "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for k in keys:
            cells = by[k]
            any_r = next(iter(cells.values()))
            mflop = any_r.get("flops")
            row = [k[1], str(k[2] if k[2] is not None else "-"),
                   f"{mflop / 1e6:.4g}" if mflop else "-"]
            for t in threads:
                r = cells.get(t)
                if r is None:
                    row += ["-"] * 4
                elif "error" in r:
                    row += ["FAILED CHECK", "-", "-", "-"]
                else:
                    peer = _fmt_ms(r["peer_s"])
                    if kind == "full":
                        peer += " (" + r["peer"].split()[-1] + ")"
                    row += [_fmt_ms(r["engine_s"]), peer, f"{r['peer_s'] / r['engine_s']:.2f}",
                            f"{r['flops'] / r['engine_s'] / 1e9:.2f}"]
            lines.append("| " + " | ".join(row) + " |")
        out.append("\n".join(lines))
    return out


def summary_table(rows, threads):
    """The issue's view: ratios only, rows = work, columns = nets."""
    nets = [n for n in list(DEFAULT_NETS) + list(EXTRA_NETS)
            if any(r["model"] == n for r in rows if r["kind"] != "forward")]
    fwd_models = sorted({r["model"] for r in rows if r["kind"] == "forward"})
    lines = []
    if fwd_models:
        lines += ["| forward: ORT time / engine time | " +
                  " | ".join(f"batch {b}, {t}t" for b in (1, 256) for t in threads) + " |",
                  "|---|" + "---|" * (2 * len(threads))]
        for m in fwd_models:
            cells = []
            for b in (1, 256):
                for t in threads:
                    r = next((r for r in rows if r["kind"] == "forward" and r["model"] == m
                              and r.get("n") == b and r["threads"] == t), None)
                    cells.append("-" if r is None or "error" in r else f"{r['peer_s'] / r['engine_s']:.2f}")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    if nets:
        lines += ["| PyTorch time / engine time | " + " | ".join(nets) + " |",
                  "|---|" + "---|" * len(nets)]
        ns = sorted({(r["kind"], r["n"]) for r in rows if r["kind"] in ("explain", "full") and "n" in r},
                    key=lambda k: (KINDS.index(k[0]), k[1]))
        for kind, n in ns:
            for t in threads:
                cells = []
                for m in nets:
                    r = next((r for r in rows if r["kind"] == kind and r["model"] == m
                              and r.get("n") == n and r["threads"] == t), None)
                    if r is None or "error" in r:
                        cells.append("-")
                    else:
                        w = f" ({r['peer'].split()[-1]})" if kind == "full" else ""
                        cells.append(f"{r['peer_s'] / r['engine_s']:.2f}{w}")
                label = f"{kind}, {n} sample{'s' if n > 1 else ''}, {t} thread{'s' if t > 1 else ''}"
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Rows: " + ", ".join(KINDS) + ". See bench/README.md.")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: every row once or a few times, full analysis on 4 samples")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="thread counts, each in its own subprocess (default: 1 2)")
    ap.add_argument("--only", nargs="+", metavar="ROW_OR_MODEL",
                    help="restrict to rows (forward, explain, full) and/or models (a file name "
                         "in tests/models/ or a prefix such as fcn; nets: paper_net, fcn, resnet, "
                         "channels_last, keras_paper_net, keras_fcn)")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds of timed repetitions per row (default 3; quick 0.3)")
    ap.add_argument("--out", type=Path, default=None,
                    help="results file stem (default bench/results/<UTC date-time>[-avx2][-quick])")
    ap.add_argument("--peer-spin", action="store_true",
                    help="leave ONNX Runtime's and PyTorch's threads spinning after a call (their "
                         "default), which holds cores through the engine's next interleaved call")
    ap.add_argument("--isa", choices=("best", "avx2"), default="best",
                    help="avx2: the engine's AVX2 kernels (TSVIZ_KERNELS=avx2) against PyTorch held "
                         "to AVX2 too (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, "
                         "MKL_ENABLE_INSTRUCTIONS), as on a processor without AVX-512; ONNX "
                         "Runtime has no such switch (default: best, each side's best kernels)")
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    sys.path.insert(0, str(HERE))
    try:
        import onnxruntime  # noqa: F401
        import torch  # noqa: F401
        import onnx  # noqa: F401
        import tsviz_native  # noqa: F401
    except ImportError as e:
        sys.exit(f"bench/run.py needs tsviz_native, torch, onnx and onnxruntime in this Python "
                 f"({sys.executable}): {e}.\nSet-up: see bench/README.md.")
    if args.worker_out:
        worker(args)
        return
    selection(args)  # validate --only before starting

    started = _dt.datetime.now(_dt.timezone.utc)
    meta = {"date": started.strftime("%Y-%m-%d %H:%M UTC"), "cpu": cpu_model(),
            "cpu_flags": cpu_flags(), "cores": os.cpu_count(), "versions": versions(),
            "commit": git_commit(), "command": " ".join(["python bench/run.py"] + list(argv or sys.argv[1:])),
            "quick": args.quick, "threads": args.threads, "isa": args.isa}
    v = meta["versions"]
    log(f"{meta['date']}; CPU: {meta['cpu']} ({', '.join(meta['cpu_flags'])}); cores: {meta['cores']}")
    log(f"python {v['python']}, tsviz_native {v['tsviz_native']}, torch {v['torch']}, onnxruntime "
        f"{v['onnxruntime']}, onnx {v['onnx']}, numpy {v['numpy']}; checkout {meta['commit']}")

    rows, checks, seconds, built, load = [], {}, {}, {}, {}
    for t in args.threads:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            tmp = f.name
        env = dict(os.environ, TSVIZ_NUM_THREADS=str(t), OMP_NUM_THREADS=str(t))
        # The runs interleave engine and peer calls. By default ONNX Runtime's and PyTorch's
        # (OpenMP) worker threads spin for a while after a call, and on a 2-core machine that
        # spinning thread holds the second core through the engine's next call (the engine's
        # workers poll for 200 us, yielding the core to any thread that wants it, then sleep):
        # the engine then ran its 2-thread rows on one core. Unless --peer-spin, the peers wait
        # passively.
        if not args.peer_spin:
            env["OMP_WAIT_POLICY"] = "PASSIVE"
        if args.isa == "avx2":
            env.update(TSVIZ_KERNELS="avx2", ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2",
                       MKL_ENABLE_INSTRUCTIONS="AVX2")
        if args.peer_spin:
            cmd_spin = ["--peer-spin"]
        else:
            cmd_spin = []
        cmd = [sys.executable, str(Path(__file__).resolve()), "--threads", str(t), "--worker-out", tmp]
        cmd += ["--quick"] if args.quick else []
        cmd += cmd_spin
        cmd += ["--budget", str(args.budget)] if args.budget is not None else []
        cmd += ["--only", *args.only] if args.only else []
        rc = subprocess.run(cmd, env=env, cwd=ROOT).returncode
        if rc != 0:
            sys.exit(f"the {t}-thread run failed (exit code {rc})")
        with open(tmp) as f:
            res = json.load(f)
        os.unlink(tmp)
        rows += res["rows"]
        checks[str(t)] = res["checks"]
        seconds[str(t)] = res["seconds"]
        built[str(t)] = res["engine_built"]
        load[str(t)] = res["load_average"]

    cfg = config(args)
    parts = [f"# TSViz engine vs ONNX Runtime and PyTorch{' (quick smoke run)' if args.quick else ''}",
             "",
             f"{meta['date']}; `{meta['command']}`; checkout {meta['commit']}; installed engine "
             f"built {', '.join(sorted(set(built.values())))}.",
             f"Machine: {meta['cpu']} ({', '.join(meta['cpu_flags'])}), {meta['cores']} cores. "
             f"Python {v['python']}, tsviz_native {v['tsviz_native']}, torch {v['torch']}, "
             f"onnxruntime {v['onnxruntime']}, onnx {v['onnx']}, numpy {v['numpy']}.",
             f"Medians of {1 if args.quick else cfg.min_reps}-{cfg.max_reps} interleaved "
             f"repetitions (~{cfg.budget:g} s per row) after warm-up; peer/engine > 1: the engine "
             f"is faster. "
             f"Threads: {', '.join(map(str, args.threads))} (TSVIZ_NUM_THREADS, "
             f"torch.set_num_threads, ORT intra_op_num_threads).",
             ""]
    if args.isa == "avx2":
        parts[-1:-1] = ["", "Kernels: AVX2 (`--isa avx2`): the engine's AVX2 kernels (TSVIZ_KERNELS=avx2) "
                        "and PyTorch's (ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2, "
                        "MKL_ENABLE_INSTRUCTIONS=AVX2), as on a processor without AVX-512. ONNX "
                        "Runtime has no such switch and keeps its AVX-512 kernels: the forward rows "
                        "are not like for like."]
    if len(set(built.values())) > 1:
        parts += ["**The installed engine was rebuilt between the thread counts: the columns "
                  "timed different builds.**", ""]
    parts += ["## Summary: peer time / engine time", "", summary_table(rows, args.threads), ""]
    for tbl in tables(rows, args.threads):
        parts += [tbl, ""]
    notes = sorted({c for per in checks.values() for ck in per.values()
                    for c in ck.get("constant_row_importance_mismatch", [])})
    failed = [r for r in rows if "error" in r]
    parts += ["## Checks", "",
              "Before timing: forward outputs agree with ONNX Runtime to 1e-4 of the largest "
              "value; the PyTorch equivalents agree with `predict` to 1e-5 and with "
              "importance, output saliency and every filter's saliency (both PyTorch ways) to "
              "1e-4 of each array's largest value; samples at a ReLU kink are left out of the "
              "comparison (not of the timing):", ""]
    for t, per in checks.items():
        for key, ck in per.items():
            if "error" in ck:
                parts.append(f"* {t} thread(s), {key}: FAILED: {ck['error']}")
            else:
                parts.append(f"* {t} thread(s), {key}: predict max|diff| {ck['predict_max_abs_diff']:.2g},"
                             f" max rel diff {ck['max_rel_diff']:.2g}, {ck['kink_samples_left_out']} "
                             f"kink sample(s) left out")
    for r in failed:
        if r["kind"] == "forward":
            parts.append(f"* FAILED forward check, {r['model']} N={r.get('n')}, {r['threads']} "
                         f"thread(s): {r['error']}")
    if notes:
        parts += ["", "Left out of the comparison because the engine and `docs/definitions.md` differ: "
                  "the min-max importance of a layer whose filters all have the same raw "
                  "importance (the definition: 1 if positive, 0 if zero): " + "; ".join(notes)]
    parts += ["", "Wall time per thread count: " +
              ", ".join(f"{t} thread(s) {s:.0f} s" for t, s in seconds.items()) +
              f". Load average (1 min) at the start and end of each thread count, on "
              f"{meta['cores']} cores: " +
              ", ".join(f"{t} thread(s) {a:.1f} / {b:.1f}" for t, (a, b) in load.items()) +
              " (other processes on the machine slow both sides, and PyTorch's multi-threaded "
              "kernels most: read the ratios with it).", ""]
    md = "\n".join(parts)
    print("\n" + md)

    RESULTS.mkdir(exist_ok=True)
    stem = args.out or RESULTS / (started.strftime("%Y-%m-%d_%H%M") + ("-avx2" if args.isa == "avx2" else "")
                                  + ("-quick" if args.quick else ""))
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".md").write_text(md)
    meta["engine_built"] = built
    meta["load_average"] = load
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows, "checks": checks,
                                                     "seconds": seconds}, indent=1) + "\n")
    log(f"wrote {rel(stem.with_suffix('.md'))} and {rel(stem.with_suffix('.json'))}")


if __name__ == "__main__":
    main()
