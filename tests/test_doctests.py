"""The docstring examples of the public API run, on the shipped model and data."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["tsviz_native.model", "tsviz_native.datasets", "tsviz_native.models",
                                    "tsviz_native.analysis.robustness", "tsviz_native.analysis.inverse",
                                    "tsviz_native.io"])
def test_docstring_examples(module: str) -> None:
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
