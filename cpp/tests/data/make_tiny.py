"""Writes tiny.onnx, the fixture of cpp/tests/test_proto.cpp: Conv -> Relu -> Flatten -> Gemm on a
1-D signal. It is committed so the C++ test needs no Python; rerun this only to change it.
The weights are deterministic, and both tensor encodings the decoder must handle appear:
raw_data (conv weight and bias, gemm weight) and float_data (gemm bias)."""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

rng = np.random.default_rng(0)
conv_w = rng.standard_normal((4, 2, 3)).astype(np.float32)  # [out_ch, in_ch, k]
conv_b = rng.standard_normal(4).astype(np.float32)
gemm_w = rng.standard_normal((3, 56)).astype(np.float32)    # [classes, 4 * 14]
gemm_b = [0.5, -0.25, 0.125]

initializers = [
    numpy_helper.from_array(conv_w, "conv_w"),  # numpy_helper writes raw_data
    numpy_helper.from_array(conv_b, "conv_b"),
    numpy_helper.from_array(gemm_w, "gemm_w"),
    helper.make_tensor("gemm_b", TensorProto.FLOAT, [3], gemm_b),  # float_data
]
nodes = [
    helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], name="conv",
                     kernel_shape=[3], strides=[1], pads=[0, 0], dilations=[1]),
    helper.make_node("Relu", ["c"], ["r"], name="relu"),
    helper.make_node("Flatten", ["r"], ["f"], name="flatten", axis=1),
    helper.make_node("Gemm", ["f", "gemm_w", "gemm_b"], ["y"], name="gemm", transB=1),
]
graph = helper.make_graph(
    nodes, "tiny",
    inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 16])],
    outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
    initializer=initializers,
)
model = helper.make_model(graph, producer_name="tsviz-make-tiny",
                          opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 7
onnx.checker.check_model(model)
out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "tiny.onnx")
onnx.save(model, out)
print(f"wrote {out} ({os.path.getsize(out)} bytes)")
