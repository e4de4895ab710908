"""The metrics of a model's outputs against targets or against another model's outputs: one
definition for ``tsviz prune``, the faithfulness checks and the robustness curves
(docs/definitions.md, "Scales and the model record")."""

from __future__ import annotations

import numpy as np


def compare(out: np.ndarray, ref: np.ndarray, classifier: bool, scaling: dict[str, float] | None,
            ref_is_model: bool) -> dict[str, float]:
    """How ``out`` (N, K) agrees with ``ref``: targets (class indices or values), or the
    original model's outputs. A forecaster's errors are on the original scale when
    ``scaling`` is known: MAPE = 100 mean(|y - y_hat| / |y|) over y != 0, RMSE."""
    if classifier:
        want = ref.argmax(axis=1) if ref_is_model else ref.reshape(-1)
        key = "same class as original %" if ref_is_model else "accuracy %"
        return {key: float(100 * np.mean(out.argmax(axis=1) == want))}
    pred = out[:, 0].astype(np.float64)
    y = (ref[:, 0] if ref_is_model else ref.reshape(-1)).astype(np.float64)
    if scaling is not None:
        pred, y = pred * scaling["std"] + scaling["mean"], y * scaling["std"] + scaling["mean"]
    nonzero = y != 0
    return {"MAPE %": float(100 * np.mean(np.abs(pred - y)[nonzero] / np.abs(y[nonzero]))),
            "RMSE": float(np.sqrt(np.mean((pred - y) ** 2)))}


def picture_module():
    """matplotlib.pyplot on the Agg backend (the ``report`` extra), imported on first use."""
    try:
        import matplotlib
    except ImportError:
        from tsviz_native._native import ArgumentError

        raise ArgumentError("the pictures need matplotlib: pip install 'tsviz-native[report]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
