"""Faithfulness of the importances (docs/definitions.md, "Faithfulness"): remove (zero) the
top-k, bottom-k and k random filters by a criterion, per layer and network-wide, and watch the
output and the metric; and the deletion / insertion curves of the input saliency. If a
criterion is right, removing its top filters (or input points) hurts most and its bottom ones
least.

The engine zeroes filters as it runs (:meth:`~tsviz_native.Model.predict_zeroed`) and computes
every criterion; this module ranks, tabulates and draws.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np

from tsviz_native._native import ArgumentError, ShapeError
from tsviz_native.analysis.metrics import compare, picture_module

Criterion = Union[str, Callable[[Any], Mapping[str, np.ndarray]]]
CHUNK = 512  # windows explained at once: the scores are kept, the explanations are not


def _minmax(s: np.ndarray) -> np.ndarray:
    """Min-max scaling over the last axis; 0 where every entry is equal."""
    lo, hi = s.min(axis=-1, keepdims=True), s.max(axis=-1, keepdims=True)
    span = hi - lo
    return np.divide(s - lo, span, out=np.zeros_like(s, dtype=np.float64), where=span > 0)


def _top(scores: np.ndarray, k: int, order: str) -> np.ndarray:
    """(N, F) mask of each row's k highest (``top``) or lowest (``bottom``) scores; ties go to
    the lower index either way (a stable sort)."""
    key = -scores if order == "top" else scores
    idx = np.argsort(key, axis=1, kind="stable")[:, :k]
    mask = np.zeros(scores.shape, bool)
    np.put_along_axis(mask, idx, True, axis=1)
    return mask


def _counts(ks: Sequence[float], f: int) -> list[int]:
    """Filters removed for each k: a share in (0, 1) of ``f``, or a count (an int >= 1)."""
    out = []
    for k in ks:
        n = int(round(k * f)) if isinstance(k, float) and 0 < k < 1 else int(k)
        out.append(max(1, min(n, f)))
    return out


@dataclass
class FaithfulnessResult:
    """The table of :func:`faithfulness`.

    ``rows``: one dict per (scope, criterion, order, k): ``scope`` a layer's label or
    ``"network"``; ``criterion`` a name or ``"random"``; ``order`` ``"top"``, ``"bottom"`` or
    ``"random"``; ``k`` the filters removed (per layer; network-wide the total), ``share`` k over
    the filters in scope; ``output_change`` the mean |change| of the outputs; and the metric
    (``accuracy %`` / ``MAPE %``, ``RMSE`` against the targets, or agreement with the original
    model without targets). Random rows are means over ``repeats`` draws.

    ``curves``: the deletion / insertion curves of the input points, ``curves[kind][criterion]``
    a list of output changes over ``fractions`` (kind ``"deletion"``: the most salient points
    replaced by the baseline first; ``"insertion"``: from the baseline, the most salient points
    put back first, measured against the original output). ``baseline`` says what replaced them.
    """

    rows: list[dict[str, Any]]
    fractions: list[float]
    curves: dict[str, dict[str, list[float]]]
    baseline: str
    n_windows: int
    metric_against: str
    extra: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        """The rows as aligned text, one line per (scope, criterion, order, k)."""
        keys = [k for k in self.rows[0] if k not in ("scope", "criterion", "order", "k", "share")] if self.rows else []
        head = f"{'scope':34}{'criterion':12}{'order':8}{'k':>5}{'share':>7}" + "".join(f"{k:>16}" for k in keys)
        lines = [head]
        for r in self.rows:
            lines.append(f"{r['scope'][:33]:34}{r['criterion']:12}{r['order']:8}{r['k']:>5}{r['share']:>7.2f}"
                         + "".join(f"{r[k]:>16.6g}" for k in keys))
        return "\n".join(lines)

    def auc(self) -> dict[str, dict[str, float]]:
        """Mean output change over the fractions of each curve (the area under it)."""
        return {kind: {name: float(np.mean(v)) for name, v in c.items()} for kind, c in self.curves.items()}

    def plot(self, out_dir: str | Path, stem: str = "faithfulness") -> list[str]:
        """``<stem>_filters.png`` (output change against the share removed, per scope) and
        ``<stem>_input.png`` (the deletion and insertion curves); returns the paths."""
        plt = picture_module()
        out = Path(out_dir)
        scopes = list(dict.fromkeys(r["scope"] for r in self.rows))
        crits = [c for c in dict.fromkeys(r["criterion"] for r in self.rows) if c != "random"]
        colours = dict(zip(crits, ["tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange"]))
        fig, axes = plt.subplots(1, len(scopes), figsize=(4.2 * len(scopes), 3.4), squeeze=False)
        for ax, scope in zip(axes[0], scopes):
            for crit in crits + ["random"]:
                for order, style in (("top", "-"), ("bottom", "--"), ("random", ":")):
                    pts = [(r["share"], r["output_change"]) for r in self.rows
                           if r["scope"] == scope and r["criterion"] == crit and r["order"] == order]
                    if pts:
                        xs, ys = zip(*pts)
                        ax.plot(xs, ys, style, marker="o", ms=3, color=colours.get(crit, "0.5"),
                                label=f"{crit} {order}" if crit != "random" else "random")
            ax.set_title(scope, fontsize=8)
            ax.set_xlabel("share of filters zeroed", fontsize=8)
            ax.set_ylabel("mean |output change|", fontsize=8)
            ax.grid(alpha=0.3)
        axes[0, 0].legend(fontsize=6)
        fig.tight_layout()
        files = [str(out / f"{stem}_filters.png")]
        fig.savefig(files[0], dpi=90)
        plt.close(fig)
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), squeeze=False)
        for ax, kind in zip(axes[0], ("deletion", "insertion")):
            for i, (name, ys) in enumerate(self.curves.get(kind, {}).items()):
                ax.plot(self.fractions, ys, marker="o", ms=3, label=name,
                        color=["tab:red", "tab:blue", "0.5", "tab:green"][i % 4])
            ax.set_title(f"{kind} of input points (baseline: {self.baseline})", fontsize=8)
            ax.set_xlabel("share of input points " + ("replaced" if kind == "deletion" else "put back"), fontsize=8)
            ax.set_ylabel("mean |output change|", fontsize=8)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        files.append(str(out / f"{stem}_input.png"))
        fig.savefig(files[1], dpi=90)
        plt.close(fig)
        return files


def _scores(model: Any, X: np.ndarray, criteria: Mapping[str, Criterion], layers: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """criterion -> layer -> (N, F), explained chunk by chunk."""
    parts: dict[str, dict[str, list[np.ndarray]]] = {c: {l: [] for l in layers} for c in criteria}
    for start in range(0, len(X), CHUNK):
        ex = model.explain(X[start : start + CHUNK])
        for name, crit in criteria.items():
            if crit == "importance":
                got: Mapping[str, np.ndarray] = ex.importance
            elif crit == "taylor":
                got = ex.taylor
            elif callable(crit):
                got = crit(ex)
            else:
                raise ArgumentError(f"criterion {name!r}: expected 'importance', 'taylor' or a function of an "
                                    f"Explanation returning {{layer: (N, F) scores}}, got {crit!r}")
            for l in layers:
                a = np.asarray(got[l], dtype=np.float64)
                if a.shape != (len(ex.output), model.layer(l).n_filters):
                    raise ShapeError(f"criterion {name!r} gives shape {a.shape} for layer {l!r}; expected "
                                     f"{(len(ex.output), model.layer(l).n_filters)}")
                parts[name][l].append(a)
    return {c: {l: np.concatenate(v) for l, v in d.items()} for c, d in parts.items()}


def _baseline(model: Any, X: np.ndarray, baseline: str | float) -> tuple[np.ndarray, str]:
    if baseline == "mean":
        axis = 1 if model.layout == "NTC" else -1
        return np.broadcast_to(X.mean(axis=axis, keepdims=True), X.shape).astype(np.float32), \
            "each window's per-channel mean over time"
    if baseline == "zero":
        return np.zeros_like(X), "zero"
    if isinstance(baseline, (int, float)) and np.isfinite(baseline):
        return np.full_like(X, float(baseline)), f"the constant {float(baseline):g}"
    raise ArgumentError(f"baseline must be 'mean', 'zero' or a number, got {baseline!r}")


def faithfulness(
    model: Any,
    X: object,
    y: object = None,
    ks: Sequence[float] = (0.1, 0.25, 0.5),
    repeats: int = 5,
    seed: int = 0,
    criteria: Sequence[str] | Mapping[str, Criterion] = ("importance", "taylor"),
    fractions: Sequence[float] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0),
    baseline: str | float = "mean",
    scaling: dict[str, float] | None = None,
) -> FaithfulnessResult:
    """Remove filters by each criterion and input points by their saliency; see
    :class:`FaithfulnessResult` for the table.

    The filters are those of the convolutions (the dense output layer's units are the outputs
    themselves). Each window is ranked by its own explanation (the output unit a^L: the
    predicted class, or unit 0). Per layer, the k filters of highest (``top``) or lowest
    (``bottom``) score are zeroed; network-wide, the k of every convolution together, after
    min-max scaling each layer's scores (per window), as the importance itself is scaled.
    ``ks``: shares of the filters in scope (floats in (0, 1)) or counts (ints). ``random``: k
    filters drawn per window, ``repeats`` times with ``seed``. ``criteria``: ``"importance"``,
    ``"taylor"``, or ``{name: function(Explanation) -> {layer: (N, F) scores}}``.

    The input curves rank each window's points (every channel and time step) by the output
    saliency ``|d a^L / d x|``, by ``|(x - baseline) * d a^L / d x|`` (the Taylor criterion of
    the input: the first-order change when the point takes the baseline's value) and at random,
    and replace them by ``baseline``: ``"mean"`` (each window's per-channel mean over time,
    default), ``"zero"`` or a number.

    ``y``: the targets for the metric (class indices or values); without them the metric is the
    agreement with the original model. ``scaling`` puts a forecaster's errors on the original
    scale.
    """
    Xb, _ = model._batch(X)
    n = len(Xb)
    if isinstance(criteria, Mapping):
        crit = dict(criteria)
    else:
        crit = {c: c for c in criteria}
    if "random" in crit:
        raise ArgumentError("'random' is always compared; name the other criteria")
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ArgumentError(f"repeats must be an int >= 1, got {repeats!r}")
    for k in ks:
        if not ((isinstance(k, float) and 0 < k < 1) or (isinstance(k, (int, np.integer)) and k >= 1)):
            raise ArgumentError(f"ks holds shares in (0, 1) or counts >= 1, got {k!r}")
    fr = [float(f) for f in fractions]
    if any(not 0 <= f <= 1 for f in fr):
        raise ArgumentError(f"fractions must lie in [0, 1], got {list(fractions)}")
    _baseline(model, Xb[:1], baseline)  # its check, before any work
    classifier = model.n_outputs > 1
    ref = None if y is None else np.asarray(y)
    if ref is not None and len(ref.reshape(len(ref), -1)) != n:
        raise ShapeError(f"{len(ref)} targets for {n} windows")
    original = model.predict(Xb)

    def measure(out: np.ndarray) -> dict[str, float]:
        row = {"output_change": float(np.mean(np.abs(out.astype(np.float64) - original)))}
        if ref is None:
            row.update(compare(out, original, classifier, scaling, ref_is_model=True))
        else:
            row.update(compare(out, ref.astype(np.int64) if classifier else ref, classifier, scaling,
                               ref_is_model=False))
        return row

    layers = [l for l in model.layers if l.op == "conv" and l.n_filters > 1]
    names = [l.name for l in layers]
    scores = _scores(model, Xb, crit, names)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    clean = measure(original)

    def add(scope: str, criterion: str, order: str, k: int, total: int, outs: list[np.ndarray]) -> None:
        ms = [measure(o) for o in outs]
        row = {"scope": scope, "criterion": criterion, "order": order, "k": k, "share": k / total}
        row.update({key: float(np.mean([m[key] for m in ms])) for key in ms[0]})
        rows.append(row)

    for layer in layers:
        f = layer.n_filters
        for k in _counts(ks, f):
            for name in crit:
                for order in ("top", "bottom"):
                    mask = _top(scores[name][layer.name], k, order)
                    add(layer.label, name, order, k, f, [model.predict_zeroed(Xb, {layer.name: mask})])
            outs = [model.predict_zeroed(Xb, {layer.name: _top(rng.random((n, f)), k, "top")}) for _ in range(repeats)]
            add(layer.label, "random", "random", k, f, outs)
    widths = [l.n_filters for l in layers]
    total = sum(widths)
    cuts = np.cumsum([0] + widths)

    def split(mask: np.ndarray) -> dict[str, np.ndarray]:
        return {l.name: mask[:, cuts[i] : cuts[i + 1]] for i, l in enumerate(layers)}

    if len(layers) > 1:
        for k in _counts(ks, total):
            for name in crit:
                joint = np.concatenate([_minmax(scores[name][l]) for l in names], axis=1)
                for order in ("top", "bottom"):
                    add("network", name, order, k, total, [model.predict_zeroed(Xb, split(_top(joint, k, order)))])
            outs = [model.predict_zeroed(Xb, split(_top(rng.random((n, total)), k, "top"))) for _ in range(repeats)]
            add("network", "random", "random", k, total, outs)

    # Deletion / insertion of input points.
    g = model.input_gradient(Xb, "output")
    base, base_text = _baseline(model, Xb, baseline)
    flat = Xb.reshape(n, -1)
    point_scores = {
        "saliency": np.abs(g.gradient).reshape(n, -1),
        "taylor": np.abs((Xb - base) * g.gradient).reshape(n, -1),
    }
    curves: dict[str, dict[str, list[float]]] = {"deletion": {}, "insertion": {}}
    m = flat.shape[1]

    def curve(order_of: Callable[[], np.ndarray], kind: str) -> list[float]:
        rank = order_of()
        out = []
        for q in fr:
            chosen = _top(rank, int(round(q * m)), "top") if q > 0 else np.zeros((n, m), bool)
            src, dst = (base.reshape(n, -1), flat) if kind == "deletion" else (flat, base.reshape(n, -1))
            z = np.where(chosen, src, dst).reshape(Xb.shape).astype(np.float32)
            out.append(measure(model.predict(z))["output_change"])
        return out

    for kind in ("deletion", "insertion"):
        for name, s in point_scores.items():
            curves[kind][name] = curve(lambda s=s: s, kind)
        draws = [curve(lambda: rng.random((n, m)), kind) for _ in range(repeats)]
        curves[kind]["random"] = list(np.mean(draws, axis=0))
    return FaithfulnessResult(
        rows=rows, fractions=fr, curves=curves, baseline=base_text, n_windows=n,
        metric_against="targets" if ref is not None else "the original model's outputs",
        extra={"clean": clean, "criteria": list(crit)},
    )
