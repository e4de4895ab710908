"""Adversarial robustness (docs/definitions.md, "Adversarial attacks"): FGSM and PGD on the
engine's signed loss gradient, L-infinity bounded in the input's own units, and the share of
decisions flipped (classifier) or the forecast error (forecaster) per eps over a data set.

The engine computes every gradient (:meth:`~tsviz_native.Model.input_gradient`); this module only
steps, projects and tabulates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tsviz_native._native import ArgumentError, ShapeError
from tsviz_native.analysis.metrics import compare, picture_module


def channels_first(model: Any, a: np.ndarray) -> np.ndarray:
    """A batch in the model's layout as (N, C, T)."""
    if model.layout == "NTC":
        return np.swapaxes(a, 1, 2)
    if model.layout == "NT":
        return a[:, np.newaxis, :]
    return a


def from_channels_first(model: Any, a: np.ndarray) -> np.ndarray:
    """(N, C, T) back to the model's layout."""
    if model.layout == "NTC":
        return np.ascontiguousarray(np.swapaxes(a, 1, 2))
    if model.layout == "NT":
        return np.ascontiguousarray(a[:, 0, :])
    return a


def _labels(model: Any, X: np.ndarray, y: object) -> tuple[np.ndarray, str]:
    """Targets for the loss an attack raises: class indices of a classifier (its own
    predictions when ``y`` is None), a forecaster's target values (required)."""
    if model.n_outputs > 1:
        if y is None:
            return model.predict(X).argmax(axis=1).astype(np.float32), "cross_entropy"
        return np.asarray(y).reshape(-1).astype(np.float32), "cross_entropy"
    if y is None:
        raise ArgumentError("an attack on a forecaster needs y, the target values: it raises the error against them")
    return np.asarray(y, dtype=np.float32).reshape(len(X), -1), "mse"


def _eps(eps: object, sample_shape: tuple[int, ...], what: str = "eps") -> np.ndarray:
    e = np.asarray(eps, dtype=np.float32)
    if not np.all(np.isfinite(e)) or np.any(e < 0):
        raise ArgumentError(f"{what} must be finite and >= 0, got {eps!r}")
    try:
        np.broadcast_to(e, sample_shape)
    except ValueError:
        raise ShapeError(f"{what} of shape {e.shape} does not broadcast to one sample {sample_shape}") from None
    return e


@dataclass
class AttackResult:
    """One attack on a batch. Arrays have the batch axis; inputs are in the model's layout,
    saliencies channels-first (N, C, T).

    ``x_adv`` is the perturbed input (``|x_adv - x| <= eps`` everywhere); ``loss_before`` /
    ``loss_after`` the loss the attack raised (cross_entropy against the class, mse against the
    target); ``saliency_before`` / ``saliency_after`` the output saliency ``|d a^L / d x|`` of the
    same unit (the class predicted before the attack; unit 0 of a forecaster) on both inputs;
    ``flipped`` whether the predicted class changed (classifiers; None for a forecaster).
    """

    method: str
    eps: np.ndarray
    steps: int
    step_size: float | None
    loss: str
    x: np.ndarray
    x_adv: np.ndarray
    output_before: np.ndarray
    output_after: np.ndarray
    loss_before: np.ndarray
    loss_after: np.ndarray
    saliency_before: np.ndarray
    saliency_after: np.ndarray
    flipped: np.ndarray | None
    seed: int | None = None

    def summary(self) -> dict[str, Any]:
        """Plain numbers for JSON."""
        out: dict[str, Any] = {
            "method": self.method, "eps": self.eps.tolist(), "steps": self.steps, "step_size": self.step_size,
            "loss": self.loss, "seed": self.seed, "n_windows": int(len(self.x)),
            "mean_loss_before": float(np.mean(self.loss_before)), "mean_loss_after": float(np.mean(self.loss_after)),
            "max_abs_change": float(np.abs(self.x_adv - self.x).max()),
        }
        if self.flipped is not None:
            out["flipped %"] = float(100 * np.mean(self.flipped))
        return out


def attack(
    model: Any,
    x: object,
    y: object = None,
    method: str = "fgsm",
    eps: object = 0.1,
    steps: int = 10,
    step_size: float | None = None,
    seed: int | None = 0,
    saliency: bool = True,
) -> AttackResult:
    """Perturb ``x`` within an L-infinity ball of radius ``eps`` (in the input's own units; a
    number, or an array that broadcasts to one sample, e.g. per channel) to raise the loss.

    ``method="fgsm"``: one step, ``x + eps * sign(d loss / d x)``. ``method="pgd"``: ``steps``
    steps of ``step_size`` (default ``2.5 * eps / steps``) along the sign of the gradient, each
    projected back into the ball; it starts from a uniform random point of the ball drawn with
    ``seed`` (None: from ``x`` itself) and returns, per sample, the iterate of highest loss.

    ``y``: class indices of a classifier (default: its own predictions, so that the attack
    flips decisions) or a forecaster's target values (required). The loss is cross_entropy for
    a classifier, mse for a forecaster (docs/definitions.md, "Losses"). One window (without the
    batch axis) is taken as a batch of one.

    Examples
    --------
    >>> import tsviz_native as tsv
    >>> from tsviz_native import models
    >>> model = tsv.load(models.path("forecaster"))
    >>> X, y, _ = models.forecaster_windows("test")
    >>> r = tsv.attack(model, X[:8], y[:8], method="fgsm", eps=0.05)
    >>> bool(abs(r.x_adv - r.x).max() <= 0.05 + 1e-6), bool(r.loss_after.mean() > r.loss_before.mean())
    (True, True)
    """
    if method not in ("fgsm", "pgd"):
        raise ArgumentError(f"method must be 'fgsm' or 'pgd', got {method!r}")
    X, _ = model._batch(x)
    e = _eps(eps, X.shape[1:])
    if method == "pgd":
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ArgumentError(f"steps must be an int >= 1, got {steps!r}")
        if step_size is None:
            step_size = 2.5 * float(np.max(e)) / steps
        elif not (np.isfinite(step_size) and step_size > 0):
            raise ArgumentError(f"step_size must be > 0, got {step_size!r}")
    labels, loss = _labels(model, X, y)
    if len(labels) != len(X):
        raise ShapeError(f"{len(labels)} targets for {len(X)} windows")
    lo, hi = X - e, X + e

    def grad(z: np.ndarray):
        return model.input_gradient(z, "loss", y_true=labels, loss=loss)

    g0 = grad(X)
    if method == "fgsm":
        x_adv = np.clip(X + e * np.sign(g0.gradient), lo, hi).astype(np.float32)
        after = grad(x_adv)
        best, best_loss, best_out = x_adv, after.value, after.output
    else:
        cur = X.copy()
        if seed is not None:
            rng = np.random.default_rng(seed)
            cur = np.clip(X + rng.uniform(-1, 1, X.shape).astype(np.float32) * e, lo, hi).astype(np.float32)
        best, best_loss, best_out = X.copy(), g0.value.copy(), g0.output.copy()
        for k in range(steps + 1):  # the start and each step's result, the best kept per sample
            g = grad(cur)
            better = g.value > best_loss
            best[better], best_loss[better], best_out[better] = cur[better], g.value[better], g.output[better]
            if k < steps:
                cur = np.clip(cur + step_size * np.sign(g.gradient), lo, hi).astype(np.float32)
        step_size = float(step_size)
    flipped = None
    if model.n_outputs > 1:
        flipped = best_out.argmax(axis=1) != g0.output.argmax(axis=1)
    sal_before = sal_after = np.zeros((0,), np.float32)
    if saliency:
        target = g0.output.argmax(axis=1) if model.n_outputs > 1 else None
        sal_before = np.array(model.explain(X, target=target).output_saliency)
        sal_after = np.array(model.explain(best, target=target).output_saliency)
    return AttackResult(
        method=method, eps=e, steps=1 if method == "fgsm" else int(steps),
        step_size=None if method == "fgsm" else step_size, loss=loss, x=X, x_adv=best,
        output_before=np.array(g0.output), output_after=np.array(best_out), loss_before=np.array(g0.value),
        loss_after=np.array(best_loss), saliency_before=sal_before, saliency_after=sal_after, flipped=flipped,
        seed=seed if method == "pgd" else None,
    )


@dataclass
class RobustnessCurve:
    """The metric of attacked data per eps: ``metrics[name][j]`` at ``eps[j]`` (eps 0 is the
    clean data). A classifier's ``"flipped %"`` is the share of windows whose predicted class
    the attack changed, ``"accuracy %"`` against the labels; a forecaster's ``"MAPE %"`` and
    ``"RMSE"`` are on the original scale when ``scaling`` was given."""

    method: str
    eps: list[float]
    steps: int
    metrics: dict[str, list[float]]
    mean_loss: list[float]
    n_windows: int
    scale: str
    extra: dict[str, Any] = field(default_factory=dict)

    def plot(self, path: str | Path, title: str = "") -> str:
        """Draw the curve(s) into a PNG (the ``report`` extra); returns the path."""
        plt = picture_module()
        names = list(self.metrics)
        fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 3.4), squeeze=False)
        for ax, name in zip(axes[0], names):
            ax.plot(self.eps, self.metrics[name], marker="o", color="tab:red")
            ax.set_xlabel("eps (L-inf, input units)")
            ax.set_ylabel(name)
            ax.grid(alpha=0.3)
        fig.suptitle(title or f"{self.method.upper()} ({self.steps} steps), {self.n_windows} windows", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        return str(path)


def robustness_curve(
    model: Any,
    X: object,
    y: object,
    eps_values: list[float],
    method: str = "pgd",
    steps: int = 10,
    step_size: float | None = None,
    seed: int | None = 0,
    scaling: dict[str, float] | None = None,
) -> RobustnessCurve:
    """:func:`attack` over a data set at each eps of ``eps_values`` (0 added first: the clean
    data); ``y`` the labels or targets (a classifier's may be None: its own predictions are
    attacked, and only the flipped share is reported). ``step_size`` None: ``2.5 * eps / steps`` at each eps.
    ``scaling`` (``{"mean", "std"}`` of a model record) puts a forecaster's errors on the
    original scale."""
    Xb, _ = model._batch(X)
    labels, _ = _labels(model, Xb, y)
    eps_list = [0.0] + [float(e) for e in eps_values if float(e) != 0.0]
    classifier = model.n_outputs > 1
    clean = model.predict(Xb)
    metrics: dict[str, list[float]] = {}
    losses = []
    for e in eps_list:
        if e == 0.0:
            out = clean
            r_loss = model.input_gradient(Xb, "loss", y_true=labels).value
        else:
            r = attack(model, Xb, labels, method=method, eps=e, steps=steps,
                       step_size=step_size, seed=seed, saliency=False)
            out, r_loss = r.output_after, r.loss_after
        row = {}
        if classifier:
            row["flipped %"] = float(100 * np.mean(out.argmax(axis=1) != clean.argmax(axis=1)))
        if y is not None:
            row.update(compare(out, labels.astype(np.int64) if classifier else labels, classifier, scaling,
                               ref_is_model=False))
        for k, v in row.items():
            metrics.setdefault(k, []).append(v)
        losses.append(float(np.mean(r_loss)))
    scale = "" if classifier else ("original scale" if scaling else "model output scale")
    return RobustnessCurve(method=method, eps=eps_list, steps=1 if method == "fgsm" else steps, metrics=metrics,
                           mean_loss=losses, n_windows=len(Xb), scale=scale)


def plot_attack(model: Any, result: AttackResult, index: int, path: str | Path,
                channel_names: list[str] | None = None) -> str:
    """One window before and after the attack, each with its output saliency (PNG)."""
    plt = picture_module()
    xs = channels_first(model, result.x[index : index + 1])[0]
    xa = channels_first(model, result.x_adv[index : index + 1])[0]
    c = xs.shape[0]
    names = channel_names or [f"channel {i}" for i in range(c)]
    fig, axes = plt.subplots(c, 2, figsize=(11, 2.4 * c), squeeze=False, sharex=True)
    t = np.arange(xs.shape[1])
    for i in range(c):
        a = axes[i, 0]
        a.plot(t, xs[i], color="0.3", lw=1.2, label="original")
        a.plot(t, xa[i], color="tab:red", lw=1, label="attacked")
        a.set_ylabel(names[i], fontsize=8)
        b = axes[i, 1]
        if result.saliency_before.size:
            b.plot(t, result.saliency_before[index, i], color="0.3", lw=1.2, label="original")
            b.plot(t, result.saliency_after[index, i], color="tab:red", lw=1, label="attacked")
        b.set_ylabel("saliency", fontsize=8)
    ob, oa = result.output_before[index], result.output_after[index]
    what = (f"class {int(ob.argmax())} -> {int(oa.argmax())}" if len(ob) > 1 else f"output {ob[0]:.4g} -> {oa[0]:.4g}")
    axes[0, 0].set_title(f"window {index}: {result.method.upper()}, eps {float(np.max(result.eps)):.4g}; {what}",
                         fontsize=9)
    axes[0, 1].set_title("output saliency |d a^L / d x| before and after", fontsize=9)
    axes[0, 0].legend(fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("time step")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return str(path)
