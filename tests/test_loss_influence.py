"""Explanations of the loss and signed input gradients (docs/definitions.md, "Influence on the
loss", "Signed input gradient") on the shipped models, against finite differences, PyTorch
(reference gradients committed in tests/models/refs/) and the engine's own saliencies; filters
zeroed by the engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import tsviz_native as tsv
from tsviz_native import models
from tsviz_native._native import batch_loss

REFS = Path(__file__).parent / "models" / "refs"


@pytest.fixture(scope="module")
def forecaster():
    X, y, _ = models.forecaster_windows("test")
    return tsv.load(models.path("forecaster")), X[:16].astype(np.float32), y[:16].astype(np.float32)


@pytest.fixture(scope="module")
def fcn():
    X, labels = models.gunpoint("test")
    return tsv.load(models.path("fcn-gunpoint")), X[:8].astype(np.float32), labels[:8].astype(np.int64)


def fd_gradient(model, x, y, loss, coords, h=1e-3):
    """Central differences of the engine's loss_i in float64 arithmetic of float32 runs."""
    out = []
    for (i, c, t) in coords:
        xp, xm = x.copy(), x.copy()
        xp[i, c, t] += h
        xm[i, c, t] -= h
        lp = model.explain(xp[i], wrt="loss", y_true=y[i], loss=loss).loss[0]
        lm = model.explain(xm[i], wrt="loss", y_true=y[i], loss=loss).loss[0]
        out.append((float(lp) - float(lm)) / (2 * h))
    return np.array(out)


def test_loss_gradient_matches_pytorch_and_finite_differences(forecaster, fcn) -> None:
    """PyTorch autograd of the per-sample loss, in float64, on a PyTorch function that runs
    the shipped model's ONNX nodes: committed as refs/loss_<model>.npz (whole gradients) by
    tests/models/make_train_refs.py."""
    for (model, X, y), name in ((forecaster, "forecaster"), (fcn, "fcn-gunpoint")):
        ref = np.load(REFS / f"loss_{name}.npz")
        np.testing.assert_array_equal(ref["x"], X)
        np.testing.assert_array_equal(ref["y"], y)
        loss = "mse" if name == "forecaster" else "cross_entropy"
        g = model.input_gradient(X, "loss", y_true=y)
        np.testing.assert_allclose(g.value, ref["loss"], rtol=1e-4, atol=1e-6)
        assert np.abs(g.gradient - ref["gradient"]).max() <= 1e-4 * np.abs(ref["gradient"]).max()
        # Finite differences at the points of largest gradient. A ReLU or max-pooling kink inside
        # the step makes a difference quotient meaningless: points where two steps disagree are
        # left out, and most points must remain.
        flat = np.argsort(-np.abs(g.gradient).reshape(-1))[:10]
        coords = [np.unravel_index(f, X.shape) for f in flat]
        fd1, fd2 = fd_gradient(model, X, y, loss, coords, h=1e-3), fd_gradient(model, X, y, loss, coords, h=5e-4)
        smooth = np.abs(fd1 - fd2) <= 0.01 * np.abs(fd1)
        assert smooth.sum() >= 6
        got = np.array([g.gradient[c] for c in coords])
        np.testing.assert_allclose(fd1[smooth], got[smooth], rtol=0.01, atol=1e-3 * np.abs(got).max())


def test_explain_wrt_loss_is_the_loss_backward(forecaster, fcn) -> None:
    for (model, X, y) in (forecaster, fcn):
        ex = model.explain(X, wrt="loss", y_true=y)
        assert ex.wrt == "loss"
        loss = "cross_entropy" if model.n_outputs > 1 else "mse"
        logits = model.input_gradient(X, "output").output
        if loss == "cross_entropy":  # the loss of the logits: recover them as log p (shift-invariant)
            logits = np.log(logits)
        _, per, _ = batch_loss(loss, logits, y.astype(np.float32))
        np.testing.assert_allclose(ex.loss, per, rtol=1e-4, atol=1e-6)
        g = model.input_gradient(X, "loss", y_true=y)
        np.testing.assert_allclose(ex.loss, g.value, rtol=1e-6)
        np.testing.assert_allclose(ex.output_saliency, np.abs(g.gradient), rtol=1e-5, atol=1e-9)
        out = model.explain(X)
        name = ex.layer_names[0]
        # The loss's importance differs from the output's (the seed is not one-hot).
        assert not np.allclose(ex.importance_raw[name], out.importance_raw[name])
        # Per-filter saliency does not depend on what is explained.
        np.testing.assert_array_equal(ex.saliency(name, [0, 1]), out.saliency(name, [0, 1]))
        if loss == "cross_entropy":
            np.testing.assert_array_equal(ex.target, y)
        else:
            assert np.all(ex.target == -1)


def test_mse_loss_importance_is_the_output_importance_scaled(forecaster) -> None:
    # K = 1: d loss_i / d v_i = 2 (v_i - y_i), so the loss's raw importance and Taylor are the
    # output's times |2 (v_i - y_i)|, and the scaled importance is the same.
    model, X, y = forecaster
    ex, out = model.explain(X, wrt="loss", y_true=y), model.explain(X)
    scale = np.abs(2 * (out.output[:, 0] - y))[:, None]
    for name in ex.layer_names:
        np.testing.assert_allclose(ex.importance_raw[name], out.importance_raw[name] * scale, rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(ex.taylor[name], out.taylor[name] * scale, rtol=1e-4, atol=1e-7)


def test_signed_gradients_match_the_absolute_saliencies(forecaster, fcn) -> None:
    for (model, X, _) in (forecaster, fcn):
        ex = model.explain(X)
        g = model.input_gradient(X, "output")
        np.testing.assert_allclose(np.abs(g.gradient), ex.output_saliency, rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(g.output, ex.output, rtol=1e-6)
        assert np.all(g.value == ex.output[np.arange(len(X)), ex.target]) or model.n_outputs > 1
        assert (g.gradient < 0).any() and (g.gradient > 0).any()  # signed
        name = ex.layer_names[1]
        for f in (0, 3):
            gf = model.input_gradient(X, "filter", layer=name, filter=f)
            np.testing.assert_allclose(np.abs(gf.gradient), ex.saliency(name, [f])[:, 0], rtol=1e-4, atol=1e-7)
            np.testing.assert_allclose(gf.value, ex.activations[name][:, f].sum(axis=1), rtol=1e-5, atol=1e-5)
    one = forecaster[0].input_gradient(forecaster[1][0], "loss", y_true=forecaster[2][0])
    assert one.gradient.shape == (2, 50) and one.value.shape == (1,)


def test_filters_zeroed_by_the_engine(forecaster) -> None:
    model, X, _ = forecaster
    names = [l.name for l in model.layers]
    np.testing.assert_array_equal(model.predict_zeroed(X, {names[0]: np.zeros(16, bool)}), model.predict(X))
    # Every filter of the last convolution zeroed: the dense layer sees zeros, gives its bias.
    bias = numpy_helper.to_array([i for i in onnx.load(str(models.path("forecaster"))).graph.initializer
                                  if i.name == "9.bias"][0])
    np.testing.assert_allclose(model.predict_zeroed(X, {"conv 3": np.ones(32, bool)}), np.full((16, 1), bias[0]),
                               rtol=1e-6)
    # One filter zeroed changes the output; per-sample masks act row by row.
    mask = np.zeros((16, 16), bool)
    mask[::2, 5] = True
    got = model.predict_zeroed(X, {0: mask})
    one = model.predict_zeroed(X, {0: np.eye(16, dtype=bool)[5]})
    np.testing.assert_array_equal(got[::2], one[::2])
    np.testing.assert_array_equal(got[1::2], model.predict(X)[1::2])
    assert not np.allclose(one, model.predict(X))
    with pytest.raises(tsv.ArgumentError, match="mask has 3 entries; expected 16"):
        model.predict_zeroed(X, {0: np.ones(3, bool)})


def test_loss_arguments_are_checked(forecaster, fcn) -> None:
    model, X, y = forecaster
    with pytest.raises(tsv.ArgumentError, match="mse loss needs y_true"):
        model.explain(X, wrt="loss")
    with pytest.raises(tsv.ShapeError, match=r"y_true has shape \(3,\); the mse loss needs \(16,\)"):
        model.explain(X, wrt="loss", y_true=y[:3])
    with pytest.raises(tsv.ArgumentError, match="wrt must be"):
        model.explain(X, wrt="error")
    with pytest.raises(tsv.ArgumentError, match="pass wrt='loss'"):
        model.explain(X, y_true=y)
    with pytest.raises(tsv.ArgumentError, match="target of sample 0 is not finite"):
        model.explain(X[:1], wrt="loss", y_true=[np.nan])
    fmodel, FX, labels = fcn
    with pytest.raises(tsv.ArgumentError, match="target of sample 1 is 2; expected a class index in \\[0, 2\\)"):
        fmodel.explain(FX[:2], wrt="loss", y_true=[0, 2])
    with pytest.raises(tsv.ArgumentError, match="output='prob' does not apply to the loss|leave target and output"):
        fmodel.explain(FX[:2], wrt="loss", y_true=[0, 1], output="prob")
    with pytest.raises(tsv.ArgumentError, match="filter 40 is out of range for layer"):
        model.input_gradient(X, "filter", layer=1, filter=40)
    with pytest.raises(tsv.ArgumentError, match="needs a layer and a filter"):
        model.input_gradient(X, "filter", layer=1)
