"""Adversarial attacks (docs/definitions.md, "Adversarial attacks") on the shipped models: the
FGSM step is eps times the sign of the engine's loss gradient, PGD stays in the eps ball and does
at least as well as FGSM, the curve's eps 0 is the clean data."""

from __future__ import annotations

import numpy as np
import pytest

import tsviz_native as tsv
from tsviz_native import models


@pytest.fixture(scope="module")
def forecaster():
    X, y, _ = models.forecaster_windows("test")
    return tsv.load(models.path("forecaster")), X[:64], y[:64]


@pytest.fixture(scope="module")
def fcn():
    X, labels = models.gunpoint("test")
    return tsv.load(models.path("fcn-gunpoint")), X[:40], labels[:40]


def ulp_bound(x: np.ndarray, eps: float) -> float:
    """eps plus the float32 rounding of x + eps."""
    return eps + 2 * float(np.spacing(np.float32(np.abs(x).max() + eps)))


@pytest.mark.parametrize("which", ["forecaster", "fcn"])
def test_fgsm_is_eps_times_the_sign_of_the_loss_gradient(which, request) -> None:
    model, X, y = request.getfixturevalue(which)
    eps = 0.05
    r = tsv.attack(model, X, y, method="fgsm", eps=eps)
    g = model.input_gradient(X, "loss", y_true=y).gradient
    np.testing.assert_allclose(r.x_adv - X, eps * np.sign(g), atol=ulp_bound(X, eps) - eps)
    # One linearised step: it raises the loss of most windows, not necessarily of all.
    assert np.mean(r.loss_after > r.loss_before) >= 0.8 and r.loss_after.mean() > r.loss_before.mean()
    np.testing.assert_allclose(r.output_after, model.predict(r.x_adv), rtol=1e-6)
    assert r.saliency_before.shape == r.saliency_after.shape == (len(X),) + model.explain(X[:1]).output_saliency.shape[1:]
    assert not np.allclose(r.saliency_before, r.saliency_after)


@pytest.mark.parametrize("which", ["forecaster", "fcn"])
def test_pgd_stays_in_the_ball_and_beats_fgsm(which, request) -> None:
    model, X, y = request.getfixturevalue(which)
    eps = 0.05
    f = tsv.attack(model, X, y, method="fgsm", eps=eps)
    p = tsv.attack(model, X, y, method="pgd", eps=eps, steps=20, seed=3)
    assert np.abs(p.x_adv - X).max() <= ulp_bound(X, eps)
    assert p.loss_after.mean() >= f.loss_after.mean()
    assert np.mean(p.loss_after >= f.loss_after - 1e-6) >= 0.9
    if model.n_outputs > 1:
        assert p.flipped.mean() >= f.flipped.mean()
    # The loss reported is the loss of the returned input.
    again = model.input_gradient(p.x_adv, "loss", y_true=y).value
    np.testing.assert_allclose(again, p.loss_after, rtol=1e-5)
    # Same seed, same attack; without a random start PGD starts from x.
    np.testing.assert_array_equal(tsv.attack(model, X, y, method="pgd", eps=eps, steps=20, seed=3).x_adv, p.x_adv)
    assert np.abs(tsv.attack(model, X, y, method="pgd", eps=eps, steps=5, seed=None).x_adv - X).max() <= ulp_bound(X, eps)


def test_per_channel_eps_and_one_window(forecaster) -> None:
    model, X, y = forecaster
    eps = np.array([[0.1], [0.0]], np.float32)  # channel 1 left alone
    r = tsv.attack(model, X[0], y[0], method="pgd", eps=eps, steps=4)
    assert r.x_adv.shape == (1, 2, 50)
    np.testing.assert_array_equal(r.x_adv[0, 1], X[0, 1])
    assert np.abs(r.x_adv[0, 0] - X[0, 0]).max() > 0.05


def test_curve_starts_at_the_clean_data(fcn, forecaster) -> None:
    model, X, y = fcn
    c = tsv.robustness_curve(model, X, y, [0.1, 0.2], method="fgsm")
    assert c.eps == [0.0, 0.1, 0.2]
    assert c.metrics["flipped %"][0] == 0.0
    assert c.metrics["accuracy %"][0] == pytest.approx(100 * np.mean(model.predict(X).argmax(1) == y))
    assert c.metrics["flipped %"][1] > 0
    model, X, y = forecaster
    c = tsv.robustness_curve(model, X, y, [0.05], method="pgd", steps=5)
    assert c.metrics["RMSE"][1] > c.metrics["RMSE"][0]
    assert c.mean_loss[1] > c.mean_loss[0]


def test_attack_arguments_are_checked(forecaster) -> None:
    model, X, y = forecaster
    with pytest.raises(tsv.ArgumentError, match="needs y"):
        tsv.attack(model, X)
    with pytest.raises(tsv.ArgumentError, match="method must be"):
        tsv.attack(model, X, y, method="cw")
    with pytest.raises(tsv.ArgumentError, match="eps must be finite and >= 0"):
        tsv.attack(model, X, y, eps=-1)
    with pytest.raises(tsv.ShapeError, match="does not broadcast"):
        tsv.attack(model, X, y, eps=np.ones(3))
    with pytest.raises(tsv.ArgumentError, match="steps must be"):
        tsv.attack(model, X, y, method="pgd", steps=0)


def test_curve_of_a_classifier_without_labels_reports_the_flipped_share(fcn) -> None:
    model, X, _ = fcn
    c = tsv.robustness_curve(model, X[:10], None, [0.05], method="fgsm")
    assert list(c.metrics) == ["flipped %"]
