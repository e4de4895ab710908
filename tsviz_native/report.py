"""The report of ``tsviz demo`` and ``tsviz analyze``: one window explained, the paper's three
observations measured, written as JSON (every number), NPZ (the arrays) and PNG pictures.

The numbers come from the engine and the analysis modules; this module only arranges them.
Pictures need matplotlib (the ``report`` extra).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tsviz_native._native import ArgumentError
from tsviz_native.analysis.clustering import cluster_filters
from tsviz_native.analysis.statistics import DEAD_SHARE, DatasetStats

#: Share of filters per layer whose importance is at most this (min-max scaled, per window) is
#: reported as "contributing nothing" to this prediction.
NEAR_ZERO = 0.01


@dataclass
class Report:
    """Everything the report says, as plain data (what ``summary.json`` holds)."""

    model: str
    index: int
    prediction: list[float]
    target: int
    truth: float | int | None
    layers: list[dict[str, Any]]
    observations: dict[str, Any]
    files: list[str] = field(default_factory=list)
    original_scale: dict[str, float] | None = None
    n_windows: int | None = None
    explained: str = "output"

    def text(self) -> str:
        """The readable summary printed by the CLI: each number once, files not included."""
        where = f"window {self.index}" + (f" of 0..{self.n_windows - 1}" if self.n_windows else "")
        out = [f"model {self.model}, {where}"]
        pred = ", ".join(f"{p:.4g}" for p in self.prediction)
        line = f"prediction [{pred}]" + ("" if self.truth is None else f", truth {self.truth:.4g}")
        if self.original_scale is not None:
            o = self.original_scale
            line += (f" (on the original scale: prediction {o['prediction']:.1f}"
                     + (f", truth {o['truth']:.1f}" if "truth" in o else "") + ")")
        out.append(line)
        out.append(f"explained output unit {self.target}" if self.explained == "output"
                   else f"explained the {self.explained} (docs/definitions.md, \"Influence on the loss\")")
        conv = [l for l in self.layers if l["n_filters"] > 1]
        out.append("")
        out.append(f"1. Filters contributing (near) nothing to this prediction (importance <= "
                   f"{NEAR_ZERO:.0%}); dead filters (activation zero at every position) are "
                   "counted apart:")
        for layer in conv:
            dead = f"dead {layer['dead']} on this window"
            if layer.get("dead_dataset") is not None:
                dead += f", {layer['dead_dataset']} on >= {DEAD_SHARE:.0%} of the {self.n_windows} windows"
            out.append(f"   {layer['label']}: {layer['near_zero']} of {layer['n_filters']} "
                       f"({100 * layer['near_zero_share']:.0f}%); {dead}")
        red = self.observations.get("redundancy")
        if red:
            out.append("2. Redundancy: the live filters (not dead on this window) grouped by "
                       "activation pattern (k-means++, k by silhouette):")
            for r in red.values():
                sizes = "+".join(str(v) for v in r["sizes"])
                out.append(f"   {r['label']}: {r['live']} live filters in {r['k']} clusters "
                           f"({sizes}), {r['filters_per_cluster']:.1f} per cluster")
        ch = self.observations.get("channel_saliency_share")
        if ch:
            scope = self.observations.get("channel_scope", "")
            shares = ", ".join(f"{name} {100 * share:.1f}%" for name, share in ch.items())
            out.append(f"3. Saliency mass by input channel ({scope}): {shares}")
        return "\n".join(out)


def build_report(
    model: Any,
    X: np.ndarray,
    index: int,
    out_dir: str | Path,
    target: int | None = None,
    truth: float | int | None = None,
    channel_names: list[str] | None = None,
    dataset_stats: DatasetStats | None = None,
    pictures: bool = True,
    top: int = 4,
    scaling: dict[str, float] | None = None,
    wrt: str = "output",
    y_true: object = None,
    loss: str | None = None,
) -> Report:
    """Explain window ``index`` of ``X`` and write the report folder.

    ``dataset_stats`` (from :func:`~tsviz_native.analyze_dataset` over ``X``) gives the saliency
    share per channel and the filters dead on >= 99% of the windows; without it the share of
    this window is reported. ``scaling`` (``{"mean", "std"}`` of a model record) adds the
    prediction and the truth on the original scale, ``y * std + mean``. ``wrt="loss"`` explains
    the window's loss against ``y_true`` (the targets of every window of ``X``; ``loss`` as for
    :meth:`~tsviz_native.Model.explain`) instead of an output unit.
    """
    if not 0 <= index < len(X):
        raise ArgumentError(f"index {index} is out of range: the data has windows 0..{len(X) - 1}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x = np.asarray(X[index], dtype=np.float32)
    if wrt == "loss":
        if y_true is None:
            raise ArgumentError("explaining the loss needs the targets of the windows")
        ex = model.explain(x, wrt="loss", y_true=np.asarray(y_true)[index], loss=loss)
    else:
        ex = model.explain(x, target=target)
    c = ex.output_saliency.shape[1]
    names = channel_names or [f"channel {i}" for i in range(c)]

    layers = []
    arrays: dict[str, np.ndarray] = {"x": x, "output": ex.output[0], "output_saliency": ex.output_saliency[0]}
    redundancy = {}
    for i, (name, info) in enumerate(zip(ex.layer_names, ex.layers)):
        imp = ex.importance[name][0]
        raw = ex.importance_raw[name][0]
        acts = ex.activations[name][0]
        order = np.argsort(-imp, kind="stable")
        near_zero = int(np.sum(imp <= NEAR_ZERO)) if len(imp) > 1 else 0
        dead = ex.dead[name][0]
        entry: dict[str, Any] = {
            "name": name,
            "label": info.label,
            "n_filters": int(len(imp)),
            "importance": imp.tolist(),
            "importance_raw": raw.tolist(),
            "top_filters": [int(f) for f in order[:top]],
            "near_zero": near_zero,
            "near_zero_share": near_zero / len(imp),
            "dead": int(dead.sum()),
            "dead_filters": np.flatnonzero(dead).tolist(),
            "dead_dataset": None if dataset_stats is None else dataset_stats.layers[name].n_dead,
        }
        arrays[f"importance_{i}"] = imp
        arrays[f"importance_raw_{i}"] = raw
        arrays[f"activations_{i}"] = acts
        live = np.flatnonzero(~dead)
        if acts.shape[1] > 1 and len(imp) > 1 and len(live):
            # Only the live filters: dead ones share one (all-zero) pattern and would make a
            # cluster of inertia 0 that says nothing about redundancy. k by silhouette: with the
            # default k = F / 5, filters per cluster would be fixed by construction.
            cl = cluster_filters(acts[live], imp[live], k="auto")
            labels = np.full(len(imp), -1, dtype=np.int64)
            labels[live] = cl.labels
            sizes = np.bincount(cl.labels, minlength=cl.k)
            entry["clusters"] = labels.tolist()
            redundancy[name] = {
                "label": info.label,
                "n_filters": int(len(imp)),
                "live": int(len(live)),
                "k": int(cl.k),
                "filters_per_cluster": float(len(live) / cl.k),
                "largest": int(sizes.max()),
                "sizes": sizes.tolist(),
                "inertia": float(cl.inertia),
            }
            arrays[f"clusters_{i}"] = labels
        sal = ex.saliency(name, order[:top].tolist())[0]
        arrays[f"saliency_top_{i}"] = sal
        layers.append(entry)

    if dataset_stats is not None:
        share = dataset_stats.channel_saliency_share
        scope = f"over all {dataset_stats.n_windows} windows"
    else:
        mass = ex.output_saliency[0].astype(np.float64).sum(axis=1)
        share = mass / mass.sum() if mass.sum() > 0 else mass
        scope = "this window"
    observations = {
        "near_zero_threshold": NEAR_ZERO,
        "dead_rule": "activation zero at every position of the window; on the data set: on "
                     f">= {DEAD_SHARE:.0%} of windows",
        "redundancy": redundancy,
        "channel_saliency_share": {names[i]: float(share[i]) for i in range(c)},
        "channel_scope": scope,
    }
    original = None
    if scaling is not None:
        original = {"prediction": float(ex.output[0][0]) * scaling["std"] + scaling["mean"]}
        if truth is not None:
            original["truth"] = float(truth) * scaling["std"] + scaling["mean"]
    report = Report(
        model=model.source,
        index=int(index),
        prediction=[float(v) for v in ex.output[0]],
        target=int(ex.target[0]),
        truth=truth,
        layers=layers,
        observations=observations,
        original_scale=original,
        n_windows=len(X),
        explained="output" if wrt == "output" else f"{loss or ('cross_entropy' if model.n_outputs > 1 else 'mse')} loss"
        f" against the target ({float(ex.loss[0]):.4g})",
    )
    np.savez_compressed(out / "arrays.npz", **arrays)
    report.files.append(str(out / "arrays.npz"))
    if pictures:
        report.files.extend(_pictures(ex, x, names, layers, out, model.layout))
    (out / "summary.json").write_text(json.dumps(report.__dict__, indent=1))
    report.files.insert(0, str(out / "summary.json"))
    return report


def _pictures(ex: Any, x: np.ndarray, names: list[str], layers: list[dict], out: Path, layout: str) -> list[str]:
    try:
        import matplotlib
    except ImportError:
        raise ArgumentError("the report's pictures need matplotlib: pip install 'tsviz-native[report]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = x.T if layout == "NTC" else (x[None] if layout == "NT" else x)  # channels-first
    sal = ex.output_saliency[0]
    files = []

    fig, axes = plt.subplots(len(xs), 1, figsize=(9, 2.2 * len(xs)), sharex=True, squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        t = np.arange(xs.shape[1])
        ax.plot(t, xs[i], color="0.2", lw=1.2, label=names[i])
        s = sal[i] / (sal.max() or 1)
        ax.scatter(t, xs[i], c=s, cmap="Reds", vmin=0, vmax=1, s=12 + 60 * s, zorder=3)
        ax.set_ylabel(names[i])
    what = f"output[{int(ex.target[0])}]" if ex.wrt == "output" else "loss"
    axes[0, 0].set_title(f"input and its saliency |d {what} / d x| (red = high)")
    axes[-1, 0].set_xlabel("time step")
    fig.tight_layout()
    files.append(_save(fig, out / "input_saliency.png", plt))

    conv = [l for l in layers if l["n_filters"] > 1]
    fig, axes = plt.subplots(len(conv), 1, figsize=(10, 2.3 * len(conv)), squeeze=False)
    for ax, layer in zip(axes[:, 0], conv):
        imp = np.asarray(layer["importance"])
        order = np.argsort(-imp, kind="stable")
        ax.bar(np.arange(len(imp)), imp[order], color=plt.cm.Reds(0.25 + 0.75 * imp[order]))
        # Each bar is labelled with its filter's index: the x-axis is the rank, not the index.
        step = max(1, int(np.ceil(len(imp) / 64)))
        ax.set_xticks(np.arange(0, len(imp), step))
        ax.set_xticklabels([str(int(f)) for f in order[::step]], fontsize=6, rotation=90)
        ax.set_xlim(-0.6, len(imp) - 0.4)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("importance")
        ax.set_xlabel(f"filter index of {layer['label']}, most important first"
                      + ("" if step == 1 else f" (every {step}th labelled)"), fontsize=8)
        ax.set_title(f"{layer['label']} ({layer['name']}): {layer['near_zero']} of "
                     f"{layer['n_filters']} filters <= {NEAR_ZERO:.0%}", fontsize=9)
    fig.tight_layout()
    files.append(_save(fig, out / "importance.png", plt))

    top = [(l, f) for l in conv for f in l["top_filters"][:2]]
    fig, axes = plt.subplots(len(top), 2, figsize=(11, 2.1 * len(top)), squeeze=False)
    for row, (layer, f) in enumerate(top):
        act = ex.activations[layer["name"]][0, f]
        a = axes[row, 0]
        a.plot(np.arange(len(act)), act, color="tab:blue", lw=1)
        a.set_title(f"{layer['label']}, filter {f}: activation a[{f}, :] "
                    f"(importance {layer['importance'][f]:.2f})", fontsize=8)
        a.set_xlabel(f"position in the layer's output (its own time axis, {len(act)} positions)", fontsize=7)
        a.set_ylabel("activation", fontsize=7)
        s = ex.saliency(layer["name"], f)[0]
        b = axes[row, 1]
        for c in range(s.shape[0]):
            b.plot(np.arange(s.shape[1]), s[c], lw=1, label=names[c])
        b.set_title(f"its input saliency |d sum_i a[{f}, i] / d x|", fontsize=8)
        b.set_xlabel(f"input time step ({s.shape[1]} steps)", fontsize=7)
        b.set_ylabel("saliency", fontsize=7)
        for ax in (a, b):
            ax.tick_params(labelsize=7)
    axes[0, 1].legend(fontsize=7)
    fig.tight_layout()
    files.append(_save(fig, out / "top_filters.png", plt))
    return files


def _save(fig: Any, path: Path, plt: Any) -> str:
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return str(path)
