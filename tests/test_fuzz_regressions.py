"""Every input the fuzz target ever flagged (cpp/fuzz/regressions) and every mutated seed
(cpp/fuzz/seeds), through the Python API: a ModelError naming the source, or a model that runs
at its declared shape; never another exception. The sanitizer replay of the same files is the
ctest fuzz_replay (cpp/fuzz/README.md)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

import tsviz_native as tsv

FUZZ = Path(__file__).resolve().parents[1] / "cpp" / "fuzz"
FILES = sorted((FUZZ / "regressions").iterdir()) + sorted((FUZZ / "seeds").glob("*.onnx"))


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_refused_by_name_or_runs(path: Path) -> None:
    start = time.perf_counter()
    try:
        model = tsv.load(path.read_bytes(), max_memory=16 << 20)
    except tsv.ModelError as e:
        assert str(e).startswith("<bytes>: ")
        assert time.perf_counter() - start < 5, "refusing a model must not take long"
        return
    shape = tuple(d if d > 0 else 32 for d in model.sample_shape)
    x = np.sin(np.arange(2 * int(np.prod(shape)), dtype=np.float32) / 3).reshape((2, *shape))
    assert model.predict(x).shape == (2, model.n_outputs)
    ex = model.explain(x)
    assert ex.output.shape == (2, model.n_outputs)
