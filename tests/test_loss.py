"""The losses of tsviz/loss.hpp against their closed forms in float64 (numpy), values and
gradients, and the errors for bad targets. (cpp/tests/test_loss.cpp checks the gradients
against finite differences.)"""

import numpy as np
import pytest

from tsviz_native import ArgumentError
from tsviz_native._native import batch_loss


def test_mse_matches_its_closed_form() -> None:
    rng = np.random.default_rng(0)
    v, y = rng.normal(size=(7, 3)).astype(np.float32), rng.normal(size=(7, 3)).astype(np.float32)
    mean, per, grad = batch_loss("mse", v, y)
    d = v.astype(np.float64) - y
    np.testing.assert_allclose(per, (d ** 2).mean(axis=1), rtol=1e-5)
    assert mean == pytest.approx((d ** 2).mean(), rel=1e-6)
    np.testing.assert_allclose(grad, 2 * d / 3, rtol=1e-5, atol=1e-7)


def test_cross_entropy_matches_its_closed_form() -> None:
    rng = np.random.default_rng(1)
    v = (rng.normal(size=(9, 4)) * 5).astype(np.float32)
    c = rng.integers(0, 4, size=9)
    mean, per, grad = batch_loss("cross_entropy", v, c.astype(np.float32))
    z = v.astype(np.float64)
    log_p = z - z.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    want = -log_p[np.arange(9), c]
    np.testing.assert_allclose(per, want, rtol=1e-5, atol=1e-6)
    assert mean == pytest.approx(want.mean(), rel=1e-6)
    np.testing.assert_allclose(grad, np.exp(log_p) - np.eye(4)[c], rtol=1e-5, atol=1e-7)


def test_bad_targets_are_named() -> None:
    v = np.zeros((2, 3), np.float32)
    with pytest.raises(ArgumentError, match="target of sample 1 is 3; expected a class index in \\[0, 3\\)"):
        batch_loss("cross_entropy", v, np.array([0, 3], np.float32))
    with pytest.raises(ArgumentError, match="mse needs 3 target value"):
        batch_loss("mse", v, np.zeros(2, np.float32))
    with pytest.raises(ArgumentError, match="'mse', 'cross_entropy'"):
        batch_loss("hinge", v, np.zeros(2, np.float32))
