#!/usr/bin/env python3
"""PGD attack of the shipped forecaster: the TSViz engine against PyTorch doing the same.

    python bench/bench_attack.py                  # 6,630 test windows, 20 steps, 1 and 2 threads
    python bench/bench_attack.py --quick          # smoke run: 64 windows, 3 steps, 1 repetition

The work, on both sides: ``tsv.attack(model, X, y, method="pgd", eps=0.05, steps=20, seed=None)``
over the forecaster's test windows (docs/definitions.md, "Adversarial attacks"): from x itself,
20 steps of ``x <- clip_ball(x + step_size * sign(d loss / d x))`` with ``step_size = 2.5 eps /
20``, the mse loss of each window against its target, and the iterate of highest loss kept per
window; 21 gradient evaluations of the whole batch (the start and every step) plus the one at x.
The engine computes each with ``Model.input_gradient`` (one forward and one backward pass per
chunk of windows); PyTorch runs the same steps with a ``torch.nn`` equivalent of the model (the
paper net's, weights read from the ONNX file: ``torch_peers.py``) and ``torch.autograd.grad`` of
the summed per-window losses, in float32.

Each thread count runs in its own subprocess with TSVIZ_NUM_THREADS, ``torch.set_num_threads``
and OMP_NUM_THREADS set to it (OMP_WAIT_POLICY=PASSIVE, as bench/run.py). Before timing, the two
attacks are checked against each other: the first step's signs agree on at least 99.9% of the
points, and the mean loss after the attack agrees within 1%. Engine and PyTorch are then timed
interleaved (medians of --repeats). The table is printed and written to bench/results/ as
markdown and JSON.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
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
EPS = 0.05


def torch_forecaster():
    import torch_peers as tp

    class ForecasterTorch(tp.PaperNetTorch):
        key = "forecaster"
        onnx_file = "tsviz_native/models/forecaster_b5m.onnx"

    return ForecasterTorch()


def torch_pgd(net, X, y, eps, steps, step_size):
    """The same PGD as tsv.attack(..., seed=None), in PyTorch: returns (x_adv, loss per window)."""
    import torch

    x0 = torch.from_numpy(X)
    yt = torch.from_numpy(y.reshape(len(y), -1))
    lo, hi = x0 - eps, x0 + eps

    def loss_and_grad(x):
        x = x.detach().requires_grad_(True)
        out = net.predict(x)
        per = ((out - yt) ** 2).mean(dim=1)
        (g,) = torch.autograd.grad(per.sum(), x)
        return per.detach(), g

    best, best_loss = x0.clone(), loss_and_grad(x0)[0]
    cur = x0.clone()
    for k in range(steps + 1):
        loss, g = loss_and_grad(cur)
        better = loss > best_loss
        best[better], best_loss[better] = cur[better], loss[better]
        if k < steps:
            cur = torch.minimum(torch.maximum(cur + step_size * torch.sign(g), lo), hi)
    return best.numpy(), best_loss.numpy()


def worker(args):
    import torch

    import tsviz_native as tsv
    from tsviz_native import models

    threads = args.threads[0]
    assert os.environ.get("TSVIZ_NUM_THREADS") == str(threads), "run through bench/bench_attack.py"
    torch.set_num_threads(threads)
    sys.path.insert(0, str(HERE))
    model = tsv.load(models.path("forecaster"))
    X, y, _ = models.forecaster_windows("test")
    X, y = np.ascontiguousarray(X[: args.windows], np.float32), np.asarray(y[: args.windows], np.float32)
    net = torch_forecaster()
    step_size = 2.5 * EPS / args.steps

    def engine():
        return tsv.attack(model, X, y, method="pgd", eps=EPS, steps=args.steps, seed=None, saliency=False)

    def peer():
        return torch_pgd(net, X, y, EPS, args.steps, step_size)

    # Check: the same attack on both sides.
    g = model.input_gradient(X, "loss", y_true=y).gradient
    xt = torch.from_numpy(X).requires_grad_(True)
    per = ((net.predict(xt) - torch.from_numpy(y.reshape(len(y), -1))) ** 2).mean(dim=1)
    (gt,) = torch.autograd.grad(per.sum(), xt)
    sign_agree = float(np.mean(np.sign(g) == np.sign(gt.numpy())))
    r, (xa, la) = engine(), peer()
    mean_e, mean_t = float(np.mean(r.loss_after)), float(np.mean(la))
    check = {"first_step_sign_agreement": sign_agree, "mean_loss_engine": mean_e, "mean_loss_torch": mean_t,
             "max_abs_change_engine": float(np.abs(r.x_adv - X).max()),
             "max_abs_change_torch": float(np.abs(xa - X).max())}
    ok = sign_agree >= 0.999 and abs(mean_e - mean_t) <= 0.01 * max(abs(mean_t), 1e-12)
    check["ok"] = ok
    print(f"[{threads} thread(s)] check: signs agree on {100 * sign_agree:.3f}% of points; mean loss after "
          f"engine {mean_e:.6g}, torch {mean_t:.6g}", file=sys.stderr)
    times = {"engine": [], "torch": []}
    for _ in range(args.repeats):
        for name, fn in (("engine", engine), ("torch", peer)):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    with open(args.worker_out, "w") as f:
        json.dump({"threads": threads, "times": times, "check": check, "windows": len(X), "steps": args.steps}, f)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 64 windows, 3 steps, 1 repetition")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    ap.add_argument("--windows", type=int, default=None, help="test windows attacked (default all 6,630)")
    ap.add_argument("--steps", type=int, default=None, help="PGD steps (default 20)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repetitions per side (default 5)")
    ap.add_argument("--out", type=Path, default=None,
                    help="results file stem (default bench/results/<UTC date-time>_attack[-quick])")
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.windows = args.windows or (64 if args.quick else 6630)
    args.steps = args.steps or (3 if args.quick else 20)
    args.repeats = args.repeats or (1 if args.quick else 5)
    if args.worker_out:
        worker(args)
        return
    sys.path.insert(0, str(HERE))
    import run as bench_run

    started = _dt.datetime.now(_dt.timezone.utc)
    results = []
    for t in args.threads:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            tmp = f.name
        env = dict(os.environ, TSVIZ_NUM_THREADS=str(t), OMP_NUM_THREADS=str(t), OMP_WAIT_POLICY="PASSIVE")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--threads", str(t), "--worker-out", tmp,
               "--windows", str(args.windows), "--steps", str(args.steps), "--repeats", str(args.repeats)]
        rc = subprocess.run(cmd, env=env, cwd=ROOT).returncode
        if rc != 0:
            sys.exit(f"the {t}-thread run failed (exit code {rc})")
        with open(tmp) as f:
            results.append(json.load(f))
        os.unlink(tmp)
    v = bench_run.versions()
    lines = [f"# PGD attack of the forecaster: TSViz engine vs PyTorch{' (quick smoke run)' if args.quick else ''}",
             "",
             f"{started.strftime('%Y-%m-%d %H:%M UTC')}; checkout {bench_run.git_commit()}; "
             f"{bench_run.cpu_model()}, {os.cpu_count()} cores; torch {v['torch']}, tsviz_native {v['tsviz_native']}.",
             f"{args.windows} windows, {args.steps} PGD steps, eps {EPS}; medians of {args.repeats} interleaved "
             "repetitions.",
             "",
             "| threads | engine s | PyTorch s | PyTorch / engine | check |",
             "|---|---|---|---|---|"]
    for r in results:
        e, p = statistics.median(r["times"]["engine"]), statistics.median(r["times"]["torch"])
        c = r["check"]
        lines.append(f"| {r['threads']} | {e:.3f} | {p:.3f} | {p / e:.2f} | "
                     f"{'ok' if c['ok'] else 'MISMATCH'} (signs {100 * c['first_step_sign_agreement']:.2f}%, "
                     f"loss {c['mean_loss_engine']:.5g} vs {c['mean_loss_torch']:.5g}) |")
    text = "\n".join(lines) + "\n"
    print(text)
    stem = args.out or RESULTS / (started.strftime("%Y-%m-%d_%H%M") + "_attack" + ("-quick" if args.quick else ""))
    stem.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{stem}.md").write_text(text)
    # The results name their stem relative to the repository, not one machine's folders.
    out = Path(stem).resolve()
    out = out.relative_to(ROOT) if out.is_relative_to(ROOT) else Path(stem)
    Path(f"{stem}.json").write_text(json.dumps({"results": results, "versions": v, "args": vars(args) | {"out": str(out)}},
                                               indent=1, default=str))
    print(f"written {stem}.md, {stem}.json")


if __name__ == "__main__":
    main()
