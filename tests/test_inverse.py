"""Inverse optimisation (docs/definitions.md, "Inverse optimisation"): the objective decreases
on a smooth model, the bound on the change holds, the smoothness penalty smooths, and the
shipped models' filters can be driven."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import tsviz_native as tsv
from onnx_builder import build, const, weights
from tsviz_native import models

N = helper.make_node


@pytest.fixture(scope="module")
def smooth():
    """Conv -> Tanh -> Conv -> Tanh -> Gemm: every derivative continuous."""
    rng = np.random.default_rng(4)
    nodes = [N("Conv", ["x", "w1", "b1"], ["z1"], pads=[1, 1]), N("Tanh", ["z1"], ["a1"]),
             N("Conv", ["a1", "w2", "b2"], ["z2"], pads=[1, 1]), N("Tanh", ["z2"], ["a2"]),
             N("Flatten", ["a2"], ["f"]), N("Gemm", ["f", "gw", "gb"], ["y"], transB=1)]
    init = [const("w1", weights(rng, 6, 2, 3)), const("b1", weights(rng, 6)), const("w2", weights(rng, 4, 6, 3)),
            const("b2", weights(rng, 4)), const("gw", weights(rng, 2, 4 * 16)), const("gb", weights(rng, 2))]
    model = tsv.load(build(nodes, init, input_shape=("N", 2, 16)))
    x0 = rng.standard_normal((2, 16)).astype(np.float32)
    return model, x0


@pytest.mark.parametrize("goal", ["max", "min", 0.5])
def test_objective_decreases_on_a_smooth_model(smooth, goal) -> None:
    model, x0 = smooth
    r = tsv.inverse(model, x0, goal=goal, target=1, steps=40, lr=0.01)
    obj = r.objective[:, 0]
    assert obj[-1] < obj[0]
    assert np.all(np.diff(obj) <= 1e-6 * np.abs(obj).max())  # small steps: never up
    assert r.trajectory.shape == (41, 2, 16) and np.array_equal(r.trajectory[0], x0)
    np.testing.assert_allclose(r.value[:, 0], model.predict(r.trajectory)[:, 1], rtol=1e-5, atol=1e-6)
    if goal == 0.5:
        assert abs(r.value[-1, 0] - 0.5) < abs(r.value[0, 0] - 0.5)


def test_filter_goal_bound_and_smoothness(smooth) -> None:
    model, x0 = smooth
    free = tsv.inverse(model, x0, layer=0, filter=2, goal="max", steps=30, lr=0.05)
    assert free.objective[-1, 0] < free.objective[0, 0]
    ex = model.explain(free.x)
    assert free.value[-1, 0] == pytest.approx(float(ex.activations[ex.layer_names[0]][0, 2].sum()), rel=1e-5)
    bounded = tsv.inverse(model, x0, layer=0, filter=2, goal="max", steps=30, lr=0.05, max_change=0.1)
    assert np.abs(bounded.x - x0).max() <= 0.1 + 1e-6
    assert np.abs(free.x - x0).max() > 0.1
    rough = lambda x: float(np.sum(np.diff(x, axis=-1) ** 2))  # noqa: E731
    smoothed = tsv.inverse(model, x0, layer=0, filter=2, goal="max", steps=30, lr=0.05, smoothness=1.0)
    assert rough(smoothed.x) < rough(free.x)


def test_shipped_models_filters_and_outputs() -> None:
    model = tsv.load(models.path("forecaster"))
    X, _, _ = models.forecaster_windows("test")
    r = tsv.inverse(model, X[:3], layer="conv 3", filter=5, goal="max", steps=15, lr=0.02, max_change=0.5)
    assert r.x.shape == (3, 2, 50) and r.value.shape == (16, 3)
    assert np.all(r.value[-1] >= r.value[0])
    fcn = tsv.load(models.path("fcn-gunpoint"))
    FX, _ = models.gunpoint("test")
    r = tsv.inverse(fcn, FX[0], goal="max", target=1 - int(fcn.predict(FX[:1]).argmax()), steps=20, lr=0.05)
    assert r.value[-1, 0] > r.value[0, 0]


def test_inverse_arguments_are_checked(smooth) -> None:
    model, x0 = smooth
    with pytest.raises(tsv.ArgumentError, match="goal must be"):
        tsv.inverse(model, x0, goal="up")
    with pytest.raises(tsv.ArgumentError, match="both layer and filter"):
        tsv.inverse(model, x0, layer=0)
    with pytest.raises(tsv.ArgumentError, match="lr must be > 0"):
        tsv.inverse(model, x0, lr=0)
    with pytest.raises(tsv.ArgumentError, match="max_change must be"):
        tsv.inverse(model, x0, max_change=-1)
