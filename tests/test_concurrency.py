"""One model shared by 8 threads (predict, explain, saliency at once; the engine releases the
GIL) gives results bit-identical to a serial run. cpp/tests/test_threads.cpp checks the same in
C++, and cpp/tests/run_tsan.sh runs it under ThreadSanitizer."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import tsviz_native as tsv
from conftest import MANIFEST, model_path, real_windows

THREADS = 8


def everything(model: tsv.Model, x: np.ndarray) -> list[np.ndarray]:
    ex = model.explain(x)
    out = [model.predict(x), ex.output, ex.output_saliency]
    for name in ex.layer_names:
        out += [ex.importance_raw[name], ex.importance[name]]
    out.append(ex.saliency(ex.layer_names[0]))
    out.append(ex.saliency(ex.layer_names[-1]))
    return out


@pytest.mark.parametrize("name", ["paper_net_op17", "keras_paper_net_op17", "fcn_op17", "resnet_op17_bn"])
def test_eight_threads_are_bit_identical_to_serial(name: str) -> None:
    info = MANIFEST[name]
    model = tsv.load(model_path(name))
    inputs = [real_windows(tuple(info["input_shape"]), info["layout"], 3, seed=s) for s in range(THREADS)]
    serial = [everything(model, x) for x in inputs]
    jobs = [(i + j) % THREADS for i in range(THREADS) for j in range(2)]
    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(lambda i: (i, everything(model, inputs[i])), jobs))
    for i, got in results:
        assert len(got) == len(serial[i])
        for a, b in zip(got, serial[i]):
            np.testing.assert_array_equal(a, b)
    # One Explanation read by 8 threads at once.
    ex = model.explain(inputs[0])
    layer = ex.layer_names[0]
    want = ex.saliency(layer)
    with ThreadPoolExecutor(THREADS) as pool:
        for got in pool.map(lambda _: ex.saliency(layer), range(THREADS)):
            np.testing.assert_array_equal(got, want)
