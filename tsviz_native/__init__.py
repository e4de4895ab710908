"""TSViz: explain 1-D convolutional networks for time series.

Opens a trained ONNX model (exported from PyTorch or Keras) in a C++ engine with hand-written
forward and backward passes, after the paper "TSViz: Demystification of Deep Learning Models
for Time-Series Analysis".
"""

from tsviz_native import datasets
from tsviz_native._native import ArgumentError, ModelError, ShapeError, TSVizError
from tsviz_native.analysis.statistics import DatasetStats, LayerStats, analyze_dataset
from tsviz_native.explain import Explanation
from tsviz_native.model import Layer, Model, load

__all__ = [
    "ArgumentError",
    "DatasetStats",
    "LayerStats",
    "analyze_dataset",
    "Explanation",
    "Layer",
    "Model",
    "ModelError",
    "ShapeError",
    "TSVizError",
    "datasets",
    "load",
    "prune",
]
__version__ = "0.1.0"


def prune(model, stats=None, **kwargs):  # type: ignore[no-untyped-def]
    """Remove the least important filters and write a smaller ONNX model: see
    :func:`tsviz_native.analysis.pruning.prune` (needs the ``prune`` extra, the onnx package)."""
    from tsviz_native.analysis.pruning import prune as _prune

    return _prune(model, stats, **kwargs)
