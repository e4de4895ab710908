"""Explanations equal reference values computed by the framework that built each model
(PyTorch autograd, TensorFlow's GradientTape for the Keras models), committed beside the test
models by tests/models/make_models.py (refs-torch, refs-keras)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tsviz_native as tsv
from conftest import MODELS, model_path

INDEX = json.loads((MODELS / "refs" / "index.json").read_text())
RTOL = 1e-4


def close(got: np.ndarray, ref: np.ndarray) -> None:
    """Relative to the reference's largest magnitude, as gradients span many decades."""
    scale = max(float(np.abs(ref).max()), 1e-30)
    assert got.shape == ref.shape
    assert float(np.abs(got - ref).max()) <= RTOL * scale


@pytest.mark.parametrize("name", sorted(INDEX))
def test_explanation_equals_the_framework_reference(name: str) -> None:
    ref = np.load(MODELS / "refs" / INDEX[name])
    model = tsv.load(model_path(name))
    ex = model.explain(ref["x"])
    np.testing.assert_allclose(ex.output, ref["output"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ex.target, ref["target"])
    assert len(ex.layer_names) == int(ref["n_layers"])
    assert [model.layer(n).n_filters for n in ex.layer_names] == ref["layer_filters"].tolist()
    assert [model.layer(n).op for n in ex.layer_names] == ref["layer_kinds"].tolist()
    close(ex.output_saliency, ref["output_saliency"])
    for i, layer in enumerate(ex.layer_names):
        close(ex.importance_raw[layer], ref[f"importance_raw_{i}"])
        close(ex.saliency(layer), ref[f"saliency_{i}"])
    if "output_prob_saliency" in ref:
        close(model.explain(ref["x"], output="prob").output_saliency, ref["output_prob_saliency"])
