"""Pruning curve: the test metric against the fraction of filters pruned, for the shipped
forecaster and classifier, pruning by TSViz importance, at random (several seeds) and by the
L1 norm of the filters' weights. No fine-tuning after pruning.

    python bench/pruning_curve.py [--out docs/images/pruning.png] [--seeds 5]

Filters are ranked on data the metric never sees: the forecaster's validation windows and the
GunPoint training set; the metric is computed on the test windows. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import tsviz_native as tsv
from tsviz_native import models
from tsviz_native.analysis.pruning import prune

FRACTIONS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def l1_scores(model: tsv.Model) -> dict[str, np.ndarray]:
    """Sum of |weights| of each filter, read from the ONNX initializers."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load_from_string(model.to_bytes())
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    nodes = {(n.name or n.output[0]): n for n in proto.graph.node}
    out = {}
    for layer in model.layers:
        node = nodes[layer.onnx_node]
        w = np.abs(inits[node.input[1]])
        if node.op_type == "Conv":
            out[layer.name] = w.reshape(w.shape[0], -1).sum(axis=1)
        elif node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
            out[layer.name] = w.sum(axis=1)
        else:
            out[layer.name] = w.sum(axis=0)
    return out


def forecaster_metric(model: tsv.Model, X: np.ndarray, y_orig: np.ndarray, scaling: dict) -> float:
    pred = model.predict(X)[:, 0].astype(np.float64) * scaling["std"] + scaling["mean"]
    return float(100 * np.mean(np.abs(y_orig - pred) / np.abs(y_orig)))


def curve(model: tsv.Model, stats: tsv.DatasetStats, metric, seeds: int) -> dict[str, list]:
    layers = [n for n in stats.layers if len(stats.layers[n].mean) > 1]
    base = prune(model, stats, fraction=0.0)
    layers = [n for n in layers if n in base.removed]  # those that can be pruned
    rows: dict[str, list] = {"importance": [], "l1": [], "random_mean": [], "random_std": [], "params": []}
    l1 = l1_scores(model)
    for q in FRACTIONS:
        if q == 0:
            m = metric(model)
            rows["importance"].append(m)
            rows["l1"].append(m)
            rows["random_mean"].append(m)
            rows["random_std"].append(0.0)
            rows["params"].append(base.n_parameters_before)
            continue
        imp = prune(model, stats, fraction=q, layers=layers)
        rows["importance"].append(metric(imp.model))
        rows["params"].append(imp.n_parameters_after)
        rows["l1"].append(metric(prune(model, fraction=q, layers=layers, scores=l1).model))
        rnd = []
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            scores = {n: rng.random(len(stats.layers[n].mean)) for n in layers}
            rnd.append(metric(prune(model, fraction=q, layers=layers, scores=scores).model))
        rows["random_mean"].append(float(np.mean(rnd)))
        rows["random_std"].append(float(np.std(rnd)))
        print(f"  fraction {q:.1f} done", file=sys.stderr)
    return rows


def table(title: str, metric_name: str, rows: dict[str, list]) -> str:
    lines = [f"**{title}** ({metric_name} on the test set; random: mean ± std over seeds)", "",
             "| pruned | parameters | TSViz importance | L1 norm | random |", "|---|---|---|---|---|"]
    for i, q in enumerate(FRACTIONS):
        lines.append(f"| {100 * q:.0f}% | {rows['params'][i]} | {rows['importance'][i]:.3f} | {rows['l1'][i]:.3f} | "
                     f"{rows['random_mean'][i]:.3f} ± {rows['random_std'][i]:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/images/pruning.png", help="where to save the picture")
    parser.add_argument("--seeds", type=int, default=5, help="random pruning seeds")
    args = parser.parse_args()

    f_model = tsv.load(models.path("forecaster"))
    scaling = models.info("forecaster")["scaling"]
    Xv, _, _ = models.forecaster_windows("validation")
    Xt, _, yt = models.forecaster_windows("test")
    print("forecaster ...", file=sys.stderr)
    f_rows = curve(f_model, tsv.analyze_dataset(f_model, Xv, progress=False),
                   lambda m: forecaster_metric(m, Xt, yt, scaling), args.seeds)

    c_model = tsv.load(models.path("fcn-gunpoint"))
    Xtr, ytr = models.gunpoint("train")
    Xte, yte = models.gunpoint("test")
    print("classifier ...", file=sys.stderr)
    c_rows = curve(c_model, tsv.analyze_dataset(c_model, Xtr, labels=ytr, progress=False),
                   lambda m: float(np.mean(m.predict(Xte).argmax(axis=1) == yte)), args.seeds)

    print(table("Forecaster (B5M)", "MAPE %, lower is better", f_rows))
    print()
    print(table("FCN (GunPoint)", "accuracy, higher is better", c_rows))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, rows, title, ylabel in ((axes[0], f_rows, "Forecaster (B5M)", "test MAPE % (lower is better)"),
                                    (axes[1], c_rows, "FCN (GunPoint)", "test accuracy (higher is better)")):
        x = 100 * np.array(FRACTIONS)
        ax.plot(x, rows["importance"], "o-", color="tab:red", label="TSViz importance")
        ax.plot(x, rows["l1"], "s--", color="tab:blue", label="weight L1 norm")
        mean, std = np.array(rows["random_mean"]), np.array(rows["random_std"])
        ax.plot(x, mean, "^:", color="0.3", label=f"random ({args.seeds} seeds)")
        ax.fill_between(x, mean - std, mean + std, color="0.8", alpha=0.6)
        ax.set_xlabel("filters pruned per layer (%)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f"\nwrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
