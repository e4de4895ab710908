"""TSViz: explain 1-D convolutional networks for time series.

Opens a trained ONNX model (exported from PyTorch or Keras) in a C++ engine with hand-written
forward and backward passes, after the paper "TSViz: Demystification of Deep Learning Models
for Time-Series Analysis".
"""

try:
    from tsviz_native import _native as _native  # noqa: F401  (the compiled engine)
except ImportError as _error:  # pragma: no cover - exercised by tests/test_import.py
    import os as _os

    _here = _os.path.dirname(_os.path.abspath(__file__))
    if _os.path.exists(_os.path.join(_os.path.dirname(_here), "pyproject.toml")):
        # numpy's convention: one line that says what to do, not a ModuleNotFoundError of an
        # internal module. The source folder shadows the installed package on sys.path.
        raise ImportError(
            f"tsviz_native is being imported from its source folder ({_here}), which holds no "
            "compiled engine; run Python outside the source folder to use the installed "
            "package, or install in place with: pip install -e ."
        ) from None
    raise ImportError(
        f"the TSViz engine (tsviz_native._native) is missing from {_here}: reinstall with "
        f"pip install --force-reinstall tsviz-native ({_error})"
    ) from None

from tsviz_native import datasets
from tsviz_native._native import ArgumentError, ModelError, ShapeError, TSVizError
from tsviz_native.analysis.statistics import DatasetStats, LayerStats, analyze_dataset
from tsviz_native.explain import Explanation
from tsviz_native.model import Layer, Model, Node, load

__all__ = [
    "ArgumentError",
    "DatasetStats",
    "LayerStats",
    "analyze_dataset",
    "attack",
    "faithfulness",
    "inverse",
    "robustness_curve",
    "Explanation",
    "Layer",
    "Model",
    "ModelError",
    "Node",
    "ShapeError",
    "TSVizError",
    "datasets",
    "finetune",
    "load",
    "prune",
]
__version__ = "0.1.0"


def prune(model, stats=None, **kwargs):  # type: ignore[no-untyped-def]
    """Remove the least important filters and write a smaller ONNX model: see
    :func:`tsviz_native.analysis.pruning.prune` (needs the ``prune`` extra, the onnx package)."""
    from tsviz_native.analysis.pruning import prune as _prune

    return _prune(model, stats, **kwargs)


def attack(model, x, y=None, **kwargs):  # type: ignore[no-untyped-def]
    """FGSM or PGD on the engine's signed loss gradient: see
    :func:`tsviz_native.analysis.robustness.attack`."""
    from tsviz_native.analysis.robustness import attack as _attack

    return _attack(model, x, y, **kwargs)


def robustness_curve(model, X, y, eps_values, **kwargs):  # type: ignore[no-untyped-def]
    """Share flipped or forecast error per eps over a data set: see
    :func:`tsviz_native.analysis.robustness.robustness_curve`."""
    from tsviz_native.analysis.robustness import robustness_curve as _curve

    return _curve(model, X, y, eps_values, **kwargs)


def inverse(model, x0, **kwargs):  # type: ignore[no-untyped-def]
    """Gradient steps on the input towards a goal: see :func:`tsviz_native.analysis.inverse.inverse`."""
    from tsviz_native.analysis.inverse import inverse as _inverse

    return _inverse(model, x0, **kwargs)


def faithfulness(model, X, y=None, **kwargs):  # type: ignore[no-untyped-def]
    """Remove the top, bottom and random filters and watch the metric: see
    :func:`tsviz_native.analysis.faithfulness.faithfulness`."""
    from tsviz_native.analysis.faithfulness import faithfulness as _faithfulness

    return _faithfulness(model, X, y, **kwargs)
def finetune(model, X, y, **kwargs):  # type: ignore[no-untyped-def]
    """Train a model's weights and biases with Adam in the engine and write the tuned ONNX: see
    :func:`tsviz_native.analysis.finetune.finetune` (needs the ``prune`` extra, the onnx package)."""
    from tsviz_native.analysis.finetune import finetune as _finetune

    return _finetune(model, X, y, **kwargs)
