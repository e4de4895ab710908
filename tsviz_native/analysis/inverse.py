"""Inverse optimisation (docs/definitions.md, "Inverse optimisation"): gradient steps on the
input that drive the output, or one filter's position-summed activation, to a goal, with a
smoothness penalty and a bound on the change from the start. The engine computes every
gradient (:meth:`~tsviz_native.Model.input_gradient`); this module steps and projects."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tsviz_native._native import ArgumentError
from tsviz_native.analysis.metrics import picture_module
from tsviz_native.analysis.robustness import _eps, channels_first, from_channels_first


@dataclass
class InverseResult:
    """What :func:`inverse` found. Inputs are in the model's layout, with the batch axis when
    the start was a batch: ``x`` the optimised input, ``trajectory`` (steps + 1, ...) every
    iterate from ``x0`` on; ``value`` (steps + 1, N) the quantity driven (the output unit, or
    sum_i a^l[filter, i]); ``objective`` (steps + 1, N) the objective minimised (goal term plus
    smoothness penalty)."""

    x0: np.ndarray
    x: np.ndarray
    trajectory: np.ndarray
    value: np.ndarray
    objective: np.ndarray
    what: str
    goal: str | float
    lr: float
    smoothness: float
    max_change: np.ndarray | None

    def summary(self) -> dict[str, Any]:
        return {
            "what": self.what, "goal": self.goal, "steps": int(len(self.value) - 1), "lr": self.lr,
            "smoothness": self.smoothness,
            "max_change": None if self.max_change is None else self.max_change.tolist(),
            "value_start": self.value[0].tolist(), "value_end": self.value[-1].tolist(),
            "objective_start": self.objective[0].tolist(), "objective_end": self.objective[-1].tolist(),
            "largest_change": float(np.abs(self.x - self.x0).max()),
        }


def _smoothness(model: Any, x: np.ndarray, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """weight * sum over channels and time of (x[t + 1] - x[t])^2 per sample, and its gradient."""
    cf = channels_first(model, x).astype(np.float64)
    d = np.diff(cf, axis=2)
    pen = weight * np.sum(d * d, axis=(1, 2))
    g = np.zeros_like(cf)
    g[:, :, 1:] += 2 * weight * d
    g[:, :, :-1] -= 2 * weight * d
    return pen, from_channels_first(model, g)


def inverse(
    model: Any,
    x0: object,
    layer: object = None,
    filter: int | None = None,
    goal: str | float = "max",
    target: int | None = None,
    steps: int = 100,
    lr: float = 0.01,
    smoothness: float = 0.0,
    max_change: object = None,
) -> InverseResult:
    """Gradient steps on the input from ``x0`` (one window or a batch, model's layout).

    The quantity driven is the output unit ``target`` (default: the class predicted at ``x0``,
    unit 0 of a forecaster; the logit for a model that ends in Softmax), or, with ``layer`` and
    ``filter``, that filter's position-summed activation ``sum_i a^l[filter, i]``. ``goal``
    ``"max"`` or ``"min"`` raises or lowers it; a number drives it to that value
    (objective ``(s - goal)^2``). ``smoothness`` adds ``smoothness * sum (x[t+1] - x[t])^2``
    to the objective. Each step moves ``x`` by ``lr`` times the objective's gradient divided by
    its largest magnitude (so the point that moves most moves by ``lr``, in the input's units),
    then clips ``|x - x0| <= max_change`` (a number or an array that broadcasts to one window;
    None: unbounded).

    Examples
    --------
    >>> import tsviz_native as tsv
    >>> from tsviz_native import models
    >>> model = tsv.load(models.path("forecaster"))
    >>> X, _, _ = models.forecaster_windows("test")
    >>> r = tsv.inverse(model, X[0], layer="conv 3", filter=17, goal="max", steps=20, lr=0.02)
    >>> r.trajectory.shape, bool(r.value[-1, 0] > r.value[0, 0])
    ((21, 2, 50), True)
    """
    X, single = model._batch(x0)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ArgumentError(f"steps must be an int >= 0, got {steps!r}")
    if not (np.isfinite(lr) and lr > 0):
        raise ArgumentError(f"lr must be > 0, got {lr!r}")
    if not (np.isfinite(smoothness) and smoothness >= 0):
        raise ArgumentError(f"smoothness must be >= 0, got {smoothness!r}")
    if isinstance(goal, str):
        if goal not in ("max", "min"):
            raise ArgumentError(f"goal must be 'max', 'min' or a number, got {goal!r}")
    elif not np.isfinite(goal):
        raise ArgumentError(f"goal must be 'max', 'min' or a finite number, got {goal!r}")
    bound = None if max_change is None else _eps(max_change, X.shape[1:], "max_change")
    if (layer is None) != (filter is None):
        raise ArgumentError("give both layer and filter to drive a filter, or neither to drive the output")
    if layer is not None:
        name = model.layer(layer)
        what = f"sum_i a[{int(filter)}, i] of {name.label}"
        kw: dict[str, Any] = {"of": "filter", "layer": name.name, "filter": int(filter)}
        if target is not None:
            raise ArgumentError("target is for the output; a filter is driven with layer and filter")
    else:
        if target is None:
            target = int(model.predict(X[:1]).argmax()) if model.n_outputs > 1 else 0
        what = f"output unit {target}"
        kw = {"of": "output", "target": int(target)}

    def objective(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        g = model.input_gradient(x, **kw)
        s = g.value.astype(np.float64)
        if goal == "max":
            j, dj = -s, -1.0
        elif goal == "min":
            j, dj = s, 1.0
        else:
            j, dj = (s - float(goal)) ** 2, 2 * (s - float(goal))
        dj = np.broadcast_to(np.asarray(dj, dtype=np.float64), s.shape).reshape((-1,) + (1,) * (x.ndim - 1))
        grad = dj * g.gradient
        if smoothness > 0:
            pen, gp = _smoothness(model, x, smoothness)
            j, grad = j + pen, grad + gp
        return j, s, grad

    x = X.copy()
    traj, values, objs = [x.copy()], [], []
    for k in range(steps + 1):
        j, s, grad = objective(x)
        values.append(s)
        objs.append(j)
        if k == steps:
            break
        scale = np.abs(grad).reshape(len(x), -1).max(axis=1).reshape((-1,) + (1,) * (x.ndim - 1))
        x = x - lr * np.divide(grad, scale, out=np.zeros_like(grad), where=scale > 0)
        if bound is not None:
            x = np.clip(x, X - bound, X + bound)
        x = x.astype(np.float32)
        traj.append(x.copy())
    trajectory = np.stack(traj)
    if single:
        trajectory = trajectory[:, 0]
    return InverseResult(
        x0=X[0] if single else X, x=trajectory[-1], trajectory=trajectory, value=np.stack(values),
        objective=np.stack(objs), what=what, goal=goal, lr=float(lr), smoothness=float(smoothness),
        max_change=bound,
    )


def plot_inverse(model: Any, result: InverseResult, path: str | Path, channel_names: list[str] | None = None) -> str:
    """The start and the optimised input (first window), and the value and objective per
    step (PNG)."""
    plt = picture_module()
    x0 = result.x0 if result.x0.ndim == len(model.sample_shape) else result.x0[0]
    x1 = result.x if result.x.ndim == len(model.sample_shape) else result.x[0]
    a0, a1 = channels_first(model, x0[None])[0], channels_first(model, x1[None])[0]
    c = a0.shape[0]
    names = channel_names or [f"channel {i}" for i in range(c)]
    fig, axes = plt.subplots(c + 1, 1, figsize=(9, 2.2 * (c + 1)), squeeze=False)
    t = np.arange(a0.shape[1])
    for i in range(c):
        ax = axes[i, 0]
        ax.plot(t, a0[i], color="0.4", lw=1.2, label="start x0")
        ax.plot(t, a1[i], color="tab:blue", lw=1.2, label="optimised")
        ax.set_ylabel(names[i], fontsize=8)
    axes[0, 0].legend(fontsize=7)
    axes[0, 0].set_title(f"inverse optimisation: {result.goal} {result.what}", fontsize=9)
    ax = axes[c, 0]
    ax.plot(result.value[:, 0], color="tab:blue", label="value")
    ax2 = ax.twinx()
    ax2.plot(result.objective[:, 0], color="tab:red", lw=1, label="objective")
    ax.set_xlabel("step")
    ax.set_ylabel("value", color="tab:blue", fontsize=8)
    ax2.set_ylabel("objective", color="tab:red", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return str(path)
