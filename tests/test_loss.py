"""The losses of tsviz/loss.hpp against PyTorch's, values and gradients."""

import numpy as np
import pytest
import torch

from tsviz_native import ArgumentError
from tsviz_native._native import batch_loss


def test_mse_matches_torch() -> None:
    rng = np.random.default_rng(0)
    v, y = rng.normal(size=(7, 3)).astype(np.float32), rng.normal(size=(7, 3)).astype(np.float32)
    mean, per, grad = batch_loss("mse", v, y)
    tv = torch.tensor(v, dtype=torch.float64, requires_grad=True)
    ref = torch.nn.functional.mse_loss(tv, torch.tensor(y, dtype=torch.float64))
    ref.backward()
    assert mean == pytest.approx(ref.item(), rel=1e-6)
    np.testing.assert_allclose(per, ((v - y) ** 2).mean(axis=1), rtol=1e-5)
    # The engine's gradient is per sample; torch's is of the mean over samples.
    np.testing.assert_allclose(grad / len(v), tv.grad.numpy(), rtol=1e-5, atol=1e-8)


def test_cross_entropy_matches_torch() -> None:
    rng = np.random.default_rng(1)
    v = (rng.normal(size=(9, 4)) * 5).astype(np.float32)
    c = rng.integers(0, 4, size=9)
    mean, per, grad = batch_loss("cross_entropy", v, c.astype(np.float32))
    tv = torch.tensor(v, dtype=torch.float64, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(tv, torch.tensor(c), reduction="none")
    ref.mean().backward()
    np.testing.assert_allclose(per, ref.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert mean == pytest.approx(ref.mean().item(), rel=1e-6)
    np.testing.assert_allclose(grad / len(v), tv.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_bad_targets_are_named() -> None:
    v = np.zeros((2, 3), np.float32)
    with pytest.raises(ArgumentError, match="target of sample 1 is 3; expected a class index in \\[0, 3\\)"):
        batch_loss("cross_entropy", v, np.array([0, 3], np.float32))
    with pytest.raises(ArgumentError, match="mse needs 3 target value"):
        batch_loss("mse", v, np.zeros(2, np.float32))
    with pytest.raises(ArgumentError, match="'mse', 'cross_entropy'"):
        batch_loss("hinge", v, np.zeros(2, np.float32))
