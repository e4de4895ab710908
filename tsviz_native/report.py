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
from tsviz_native.analysis.statistics import DEAD_TOLERANCE, DatasetStats

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

    def text(self) -> str:
        """The readable summary printed by the CLI."""
        out = [f"model {self.model}, window {self.index}"]
        pred = ", ".join(f"{p:.4g}" for p in self.prediction)
        out.append(f"prediction [{pred}]" + ("" if self.truth is None else f", truth {self.truth:.4g}"))
        out.append(f"explained output unit {self.target}")
        out.append("")
        out.append("1. Filters contributing (near) nothing to this prediction (importance <= 1%):")
        for layer in (l for l in self.layers if l["n_filters"] > 1):
            out.append(f"   {layer['name']}: {layer['near_zero']} of {layer['n_filters']} "
                       f"({100 * layer['near_zero_share']:.0f}%)")
        red = self.observations.get("redundancy")
        if red:
            out.append("2. Redundancy: filters per cluster of similar activation patterns "
                       "(k-means++, k by silhouette):")
            for name, r in red.items():
                out.append(f"   {name}: {r['n_filters']} filters in {r['k']} clusters, "
                           f"{r['filters_per_cluster']:.1f} per cluster; largest cluster {r['largest']}")
        ch = self.observations.get("channel_saliency_share")
        if ch:
            scope = self.observations.get("channel_scope", "")
            out.append(f"3. Saliency mass by input channel ({scope}):")
            for name, share in ch.items():
                out.append(f"   {name}: {100 * share:.1f}%")
        if self.files:
            out.append("")
            out.append("written: " + ", ".join(self.files))
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
) -> Report:
    """Explain window ``index`` of ``X`` and write the report folder.

    ``dataset_stats`` (from :func:`~tsviz_native.analyze_dataset` over ``X``) gives the saliency
    share per channel over the whole data set; without it the share of this window is reported.
    """
    if not 0 <= index < len(X):
        raise ArgumentError(f"index {index} is out of range for {len(X)} windows")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x = np.asarray(X[index], dtype=np.float32)
    ex = model.explain(x, target=target)
    c = ex.output_saliency.shape[1]
    names = channel_names or [f"channel {i}" for i in range(c)]

    layers = []
    arrays: dict[str, np.ndarray] = {"x": x, "output": ex.output[0], "output_saliency": ex.output_saliency[0]}
    redundancy = {}
    for i, name in enumerate(ex.layer_names):
        imp = ex.importance[name][0]
        raw = ex.importance_raw[name][0]
        order = np.argsort(-imp, kind="stable")
        near_zero = int(np.sum(imp <= NEAR_ZERO)) if len(imp) > 1 else 0
        entry: dict[str, Any] = {
            "name": name,
            "n_filters": int(len(imp)),
            "importance": imp.tolist(),
            "importance_raw": raw.tolist(),
            "top_filters": [int(f) for f in order[:top]],
            "near_zero": near_zero,
            "near_zero_share": near_zero / len(imp),
            "dead": int(np.sum(raw <= DEAD_TOLERANCE * raw.max())) if raw.max() > 0 else int(len(raw)),
        }
        arrays[f"importance_{i}"] = imp
        arrays[f"importance_raw_{i}"] = raw
        arrays[f"activations_{i}"] = ex.activations[name][0]
        if ex.activations[name].shape[2] > 1 and len(imp) > 1:
            # k by silhouette: with the default k = F / 5, filters per cluster would be fixed.
            cl = ex.clusters(name, k="auto", sample=0)
            labels = cl.labels[0]
            sizes = np.bincount(labels, minlength=int(cl.k[0]))
            entry["clusters"] = labels.tolist()
            redundancy[name] = {
                "n_filters": int(len(imp)),
                "k": int(cl.k[0]),
                "filters_per_cluster": float(len(imp) / cl.k[0]),
                "largest": int(sizes.max()),
                "sizes": sizes.tolist(),
                "inertia": float(cl.inertia[0]),
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
        "redundancy": redundancy,
        "channel_saliency_share": {names[i]: float(share[i]) for i in range(c)},
        "channel_scope": scope,
    }
    report = Report(
        model=model.source,
        index=int(index),
        prediction=[float(v) for v in ex.output[0]],
        target=int(ex.target[0]),
        truth=truth,
        layers=layers,
        observations=observations,
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
    axes[0, 0].set_title(f"input and its saliency |d output[{int(ex.target[0])}] / d x| (red = high)")
    axes[-1, 0].set_xlabel("time step")
    fig.tight_layout()
    files.append(_save(fig, out / "input_saliency.png", plt))

    conv = [l for l in layers if l["n_filters"] > 1]
    fig, axes = plt.subplots(len(conv), 1, figsize=(9, 1.9 * len(conv)), squeeze=False)
    for ax, layer in zip(axes[:, 0], conv):
        imp = np.asarray(layer["importance"])
        order = np.argsort(-imp, kind="stable")
        ax.bar(np.arange(len(imp)), imp[order], color=plt.cm.Reds(0.25 + 0.75 * imp[order]))
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("importance")
        ax.set_title(f"{layer['name']}: {layer['near_zero']} of {layer['n_filters']} filters <= {NEAR_ZERO:.0%}", fontsize=9)
    axes[-1, 0].set_xlabel("filters, most important first")
    fig.tight_layout()
    files.append(_save(fig, out / "importance.png", plt))

    top = [(l, f) for l in conv for f in l["top_filters"][:2]]
    fig, axes = plt.subplots(len(top), 2, figsize=(11, 1.8 * len(top)), squeeze=False)
    for row, (layer, f) in enumerate(top):
        act = ex.activations[layer["name"]][0, f]
        axes[row, 0].plot(act, color="tab:blue", lw=1)
        axes[row, 0].set_title(f"{layer['name']} filter {f}: activation (importance {layer['importance'][f]:.2f})", fontsize=8)
        s = ex.saliency(layer["name"], f)[0]
        for c in range(s.shape[0]):
            axes[row, 1].plot(s[c], lw=1, label=names[c])
        axes[row, 1].set_title("its input saliency |d sum a / d x|", fontsize=8)
    axes[0, 1].legend(fontsize=7)
    fig.tight_layout()
    files.append(_save(fig, out / "top_filters.png", plt))
    return files


def _save(fig: Any, path: Path, plt: Any) -> str:
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return str(path)
