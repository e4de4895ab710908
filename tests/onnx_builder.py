"""Small ONNX graphs built with onnx.helper, for op coverage and for every refused case."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def const(name: str, value: np.ndarray | list | float, dtype=np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def build(
    nodes: list[onnx.NodeProto],
    initializers: list[onnx.TensorProto] | None = None,
    input_shape: tuple = ("N", 3, 20),
    opset: int = 17,
    input_type: int = TensorProto.FLOAT,
    outputs: tuple[str, ...] = ("y",),
    extra_inputs: list[onnx.ValueInfoProto] | None = None,
) -> bytes:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", input_type, list(input_shape))] + (extra_inputs or []),
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        initializer=initializers or [],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8 if opset <= 18 else 10
    return model.SerializeToString()


def weights(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32) * 0.5
