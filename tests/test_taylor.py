"""The Taylor criterion |sum_i z^l[f, i] d a^L / d z^l[f, i]| against ONNX Runtime: scaling a
filter's weights and bias by (1 + e) scales its z^l by (1 + e) (no BatchNorm after it), so the
criterion is |d a^L / d e| at e = 0, which central differences of ONNX Runtime's output give."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import tsviz_native as tsv
from conftest import model_path, real_windows


def _scaled_output(proto: onnx.ModelProto, node_name: str, f: int, e: float, x: np.ndarray) -> np.ndarray:
    scaled = onnx.ModelProto()
    scaled.CopyFrom(proto)
    node = next(n for n in scaled.graph.node if n.name == node_name)
    inits = {t.name: t for t in scaled.graph.initializer}
    for name in node.input[1:]:
        t = inits[name]
        w = numpy_helper.to_array(t).astype(np.float64).copy()
        w[f] *= 1 + e
        t.CopyFrom(numpy_helper.from_array(w.astype(np.float32), name))
    sess = ort.InferenceSession(scaled.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("layer_index", [0, 1])
def test_taylor_matches_scaled_filters_in_onnx_runtime(layer_index: int) -> None:
    path = model_path("paper_net_op13")
    model = tsv.load(path)
    proto = onnx.load(path)
    x = real_windows(model.sample_shape, model.layout, 2, seed=3)
    ex = model.explain(x)
    layer = ex.layers[layer_index]
    assert layer.onnx_op == "Conv"
    taylor = ex.taylor[layer.name]
    assert taylor.shape == ex.importance_raw[layer.name].shape
    e = 1e-3
    rows = np.arange(len(x))
    checked = 0
    for f in range(min(8, taylor.shape[1])):
        up, mid, down = (_scaled_output(proto, layer.onnx_node, f, s, x).reshape(len(x), -1)[rows, ex.target]
                         for s in (e, 0.0, -e))
        ahead, behind = (up - mid) / e, (mid - down) / e
        # A ReLU or max-pool that switches inside the step makes the one-sided slopes differ:
        # there the output is not differentiable in e and no derivative can be checked.
        # ONNX Runtime's float32 output carries about 3e-5 of rounding into each slope.
        smooth = np.abs(ahead - behind) <= 1e-4
        fd = np.abs((up - down) / (2 * e))
        np.testing.assert_allclose(taylor[smooth, f], fd[smooth], rtol=1e-2, atol=1e-4)
        checked += int(smooth.sum())
    assert checked >= 8  # of 16 (filter, sample) pairs
