#!/usr/bin/env python3
"""One epoch of fine-tuning the shipped forecaster: the engine (``tsv.finetune``, Adam, the
forward, backward and weight gradients in C++) against PyTorch doing the same epoch (the same
network with the same weights, ``torch.optim.Adam``, the same batch size and batch order).

    python bench/bench_finetune.py                        # 10,556 windows, batch 32, 1 and 2 threads
    python bench/bench_finetune.py --windows 256 --quick  # a smoke run

Follows bench/run.py: each thread count runs in its own subprocess with TSVIZ_NUM_THREADS set
before the engine first runs and ``torch.set_num_threads`` to the same value; the two sides
are checked to compute the same first step, then timed interleaved (bench/run.py
``interleaved``), medians reported. The engine's time includes writing the tuned ONNX.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run as bench_run  # noqa: E402


def worker(args: argparse.Namespace) -> dict:
    import torch
    import torch.nn.functional as F

    import tsviz_native as tsv
    import torch_peers
    from tsviz_native import _native, models

    threads = args.threads[0]
    assert os.environ.get("TSVIZ_NUM_THREADS") == str(threads), "run through bench/bench_finetune.py"
    torch.set_num_threads(threads)
    X, y, _ = models.forecaster_windows("train")
    if args.windows:
        X, y = X[:args.windows], y[:args.windows]
    y = y.astype(np.float32)
    model = tsv.load(models.path("forecaster"))

    class Forecaster(torch_peers.PaperNetTorch):
        onnx_file = "tsviz_native/models/forecaster_b5m.onnx"

    def torch_epoch(seed: int = 0, steps: int | None = None) -> list:
        net = Forecaster()
        params = []
        for spec in net.L:
            params += [spec.w.requires_grad_(True), spec.b.requires_grad_(True)]
        opt = torch.optim.Adam(params, lr=args.lr)
        order = np.random.default_rng(seed).permutation(len(X))
        xt, yt = torch.from_numpy(X), torch.from_numpy(y).reshape(-1, 1)
        n_steps = (len(X) + args.batch_size - 1) // args.batch_size
        for s in range(n_steps if steps is None else steps):
            idx = torch.from_numpy(np.sort(order[s * args.batch_size:(s + 1) * args.batch_size]))
            opt.zero_grad()
            loss = F.mse_loss(net.forward(xt[idx])[0], yt[idx])
            loss.backward()
            opt.step()
        return params

    def engine_epoch():
        return tsv.finetune(model, X, y, epochs=1, lr=args.lr, batch_size=args.batch_size, seed=0, progress=False)

    # The check: one step on the same batch gives the same parameters on both sides.
    first = np.sort(np.random.default_rng(0).permutation(len(X))[:args.batch_size])
    trainer = _native.Trainer(model._native, "mse")
    from tsviz_native.analysis.finetune import Adam

    _, _, grad = trainer.gradient(X[first], y[first], True)
    after = Adam(trainer.size, args.lr).step(trainer.get(), grad)
    ref = torch_epoch(steps=1)
    for p, (w, b) in zip(trainer.parameters, zip(ref[::2], ref[1::2])):
        n_w = int(np.prod(p["weight_shape"]))
        got = np.concatenate([after[p["weight_offset"]:p["weight_offset"] + n_w],
                              after[p["bias_offset"]:p["bias_offset"] + p["n_filters"]]])
        want = np.concatenate([w.detach().numpy().reshape(-1), b.detach().numpy().reshape(-1)])
        err = float(np.abs(got - want).max())
        if err > 1e-5:
            raise AssertionError(f"layer {p['layer']}: the engine's first Adam step differs from PyTorch's by {err:.3g}")
    cfg = bench_run.config(args)
    med, reps = bench_run.interleaved({"engine": engine_epoch, "pytorch": lambda: torch_epoch()}, cfg)
    return {"threads": threads, "windows": len(X), "batch_size": args.batch_size, "reps": reps,
            "engine_s": med["engine"], "pytorch_s": med["pytorch"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    parser.add_argument("--windows", type=int, default=0, help="only the first N training windows (default all 10,556)")
    parser.add_argument("--batch-size", type=int, default=32, help="samples per step (default 32)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate (default 0.001)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: few repetitions")
    parser.add_argument("--budget", type=float, default=None, help="seconds of timed repetitions")
    parser.add_argument("--peer-spin", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_out:
        with open(args.worker_out, "w") as f:
            json.dump(worker(args), f)
        return
    rows = []
    for threads in args.threads:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "row.json"
            argv = [sys.executable, __file__, "--threads", str(threads), "--windows", str(args.windows),
                    "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--worker-out", str(out)]
            argv += ["--quick"] if args.quick else []
            argv += ["--budget", str(args.budget)] if args.budget is not None else []
            subprocess.run(argv, check=True, env={**os.environ, "TSVIZ_NUM_THREADS": str(threads)})
            rows.append(json.loads(out.read_text()))
    print("| threads | windows | batch | engine epoch (s) | PyTorch epoch (s) | PyTorch / engine | repetitions |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['threads']} | {r['windows']} | {r['batch_size']} | {r['engine_s']:.3f} | {r['pytorch_s']:.3f} | "
              f"{r['pytorch_s'] / r['engine_s']:.2f} | {r['reps']} |")


if __name__ == "__main__":
    main()
