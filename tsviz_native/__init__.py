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
]
__version__ = "0.1.0"
