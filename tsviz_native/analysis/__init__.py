"""Analyses that consume an :class:`~tsviz_native.Explanation`'s arrays (docs/definitions.md).

One submodule per analysis, imported on first use. This package itself imports nothing heavy:
:mod:`tsviz_native.analysis.clustering` (filter clustering, Section 3.3: k-means++ or
average-linkage on DTW distances) needs numba, so ``import tsviz_native`` must not import it;
its names below are resolved lazily. The analyses beyond the paper (docs/definitions.md) are
:mod:`~tsviz_native.analysis.robustness` (FGSM / PGD attacks and robustness curves),
:mod:`~tsviz_native.analysis.inverse` (inverse optimisation of the input) and
:mod:`~tsviz_native.analysis.faithfulness` (removing filters and input points by their
ranking), with the metrics they share with pruning in :mod:`~tsviz_native.analysis.metrics`.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "ClusterResult": "clustering",
    "FilterClusters": "clustering",
    "cluster_filters": "clustering",
    "cluster_batch": "clustering",
}

__all__ = ["ClusterResult", "FilterClusters", "cluster_batch", "cluster_filters"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
