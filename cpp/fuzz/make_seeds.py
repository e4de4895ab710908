"""Writes the mutated seed models of the fuzz target into cpp/fuzz/seeds/: small variants of
the committed test models (tests/models) and one small graph per supported op, each with a
deliberate defect or an unusual but valid form, so that fuzzing starts next to every check.
The committed models themselves are seeds too (the fuzz README passes tests/models).
Run with the `onnx` package: python cpp/fuzz/make_seeds.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = HERE / "seeds"
rng = np.random.default_rng(12)
N = helper.make_node


def c(name: str, value, dtype=np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def w(*shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) * 0.5).astype(np.float32)


def model(nodes, inits, shape=("N", 3, 16), opset=17, outputs=("y",)) -> onnx.ModelProto:
    g = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], initializer=inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def head(x: str, channels: int, length: int, k: int = 2) -> tuple[list, list]:
    """Flatten + Gemm to k outputs after a tensor of (channels, length)."""
    return (
        [N("Flatten", [x], ["f"]), N("Gemm", ["f", "gw", "gb"], ["y"], transB=1)],
        [c("gw", w(k, channels * length)), c("gb", w(k))],
    )


def seeds() -> dict[str, onnx.ModelProto]:
    s: dict[str, onnx.ModelProto] = {}
    conv = [c("w", w(4, 3, 3)), c("b", w(4))]
    hn, hi = head("r", 4, 14)
    s["conv_relu_gemm"] = model([N("Conv", ["x", "w", "b"], ["c"], name="c1"), N("Relu", ["c"], ["r"])] + hn, conv + hi)
    s["conv_free_length_gap"] = model(
        [N("Conv", ["x", "w", "b"], ["c"], strides=[2], pads=[1, 1], dilations=[2]), N("LeakyRelu", ["c"], ["r"], alpha=0.2),
         N("GlobalAveragePool", ["r"], ["g"]), N("Flatten", ["g"], ["y"])], conv, shape=("N", 3, "T"))
    s["channels_last"] = model(
        [N("Transpose", ["x"], ["xt"], perm=[0, 2, 1]), N("Conv", ["xt", "w", "b"], ["c"], auto_pad="SAME_UPPER"),
         N("Tanh", ["c"], ["r"]), N("ReduceMax", ["r"], ["y"], axes=[2], keepdims=0)], conv, shape=("N", 16, 3))
    s["pool_avg_max"] = model(
        [N("MaxPool", ["x"], ["p"], kernel_shape=[3], strides=[2], ceil_mode=1, dilations=[1]),
         N("AveragePool", ["p"], ["a"], kernel_shape=[2], count_include_pad=1, pads=[1, 0]),
         N("Sigmoid", ["a"], ["s"]), N("ReduceMean", ["s"], ["y"], axes=[2], keepdims=0)], [])
    s["bn_affine_softmax"] = model(
        [N("Conv", ["x", "w"], ["c"]), N("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"], epsilon=1e-3),
         N("Mul", ["n", "k"], ["mk"]), N("Sub", ["mk", "k"], ["sk"]), N("Div", ["sk", "k"], ["dk"]), N("Elu", ["dk"], ["e"]),
         N("GlobalMaxPool", ["e"], ["g"]), N("Flatten", ["g"], ["f"]), N("Softmax", ["f"], ["y"], axis=1)],
        [conv[0], c("s", w(4)), c("b", w(4)), c("m", w(4)), c("v", np.abs(w(4)) + 0.1), c("k", w(1, 4, 1))])
    s["residual_concat"] = model(
        [N("Conv", ["x", "w", "b"], ["c1"], pads=[1, 1]), N("Conv", ["c1", "w2"], ["c2"], pads=[1, 1], group=2),
         N("Add", ["c1", "c2"], ["a"]), N("Concat", ["a", "c1"], ["cc"], axis=1), N("Relu", ["cc"], ["r"]),
         N("GlobalAveragePool", ["r"], ["g"]), N("Squeeze", ["g", "ax"], ["y"])],
        conv + [c("w2", w(4, 2, 3)), c("ax", [2], np.int64)])
    s["pad_then_conv_op11"] = model(
        [N("Pad", ["x", "p"], ["xp"]), N("Conv", ["xp", "w", "b"], ["c"]), N("Relu", ["c"], ["r"])] + head("r", 4, 16)[0],
        conv + [c("p", [0, 0, 1, 0, 0, 1], np.int64)] + head("r", 4, 16)[1], opset=11)
    s["shape_arith_reshape"] = model(
        [N("Conv", ["x", "w", "b"], ["c"]), N("Shape", ["c"], ["sh"]), N("Gather", ["sh", "i0"], ["n0"], axis=0),
         N("Unsqueeze", ["n0", "ax"], ["n1"]), N("Concat", ["n1", "m1"], ["tgt"], axis=0), N("Reshape", ["c", "tgt"], ["f"]),
         N("MatMul", ["f", "mw"], ["mm"]), N("Add", ["mm", "mb"], ["y"])],
        conv + [c("i0", 0, np.int64), c("ax", [0], np.int64), c("m1", [-1], np.int64), c("mw", w(56, 2)), c("mb", w(2))])
    s["constants_cast_slice"] = model(
        [N("Constant", [], ["k"], value=c("kv", [0.5, 1.5, 2.0, -1.0])), N("Cast", ["k"], ["kc"], to=TensorProto.FLOAT),
         N("Slice", ["kc", "st", "en"], ["ks"]), N("ConstantOfShape", ["shp"], ["z"], value=c("zv", [0.0])),
         N("Add", ["ks", "z"], ["kk"]), N("Reshape", ["kk", "rs"], ["k3"]), N("Conv", ["x", "w", "b"], ["cv"]),
         N("Mul", ["cv", "k3"], ["m"]), N("Dropout", ["m"], ["d"]), N("Identity", ["d"], ["r"])] + hn,
        conv + [c("st", [0], np.int64), c("en", [4], np.int64), c("shp", [4], np.int64), c("rs", [1, 4, 1], np.int64)] + hi)
    s["nt_input"] = model(
        [N("Unsqueeze", ["x", "ax"], ["x3"]), N("Conv", ["x3", "w1"], ["c"]), N("Relu", ["c"], ["r"]),
         N("ReduceMean", ["r", "ax2"], ["y"], keepdims=0)],
        [c("ax", [1], np.int64), c("w1", w(2, 1, 3)), c("ax2", [2], np.int64)], shape=("N", 16), opset=18)
    # Defects the validator names: each is one small step from a valid model.
    s["dup_output"] = model([N("Relu", ["x"], ["r"]), N("Tanh", ["x"], ["r"])] + hn, hi)
    s["cycle"] = model([N("Add", ["x", "b2"], ["a"]), N("Relu", ["a"], ["b2"])] + head("b2", 3, 16)[0], head("b2", 3, 16)[1])
    s["auto_pad_with_pads"] = model([N("Conv", ["x", "w", "b"], ["c"], auto_pad="SAME_UPPER", pads=[1, 1])] + head("c", 4, 16)[0],
                                    conv + head("c", 4, 16)[1])
    s["int8_weights"] = model([N("Conv", ["x", "w8", "b"], ["r"])] + hn, [c("w8", np.ones((4, 3, 3)), np.int8), conv[1]] + hi)
    s["zero_stride"] = model([N("Conv", ["x", "w", "b"], ["r"], strides=[0])] + hn, conv + hi)
    s["unknown_attribute"] = model([N("Relu", ["x"], ["r"], alpha=0.1)] + head("r", 3, 16)[0], head("r", 3, 16)[1])
    s["long_kernel"] = model([N("Conv", ["x", "wl", "b"], ["r"])] + hn, [c("wl", w(4, 3, 40)), conv[1]] + hi)
    ext = model([N("Conv", ["x", "w", "b"], ["r"])] + hn, conv + hi)
    ext.graph.initializer[0].ClearField("raw_data")
    ext.graph.initializer[0].data_location = TensorProto.EXTERNAL
    for k, v in (("location", "w.bin"), ("offset", "0"), ("length", "144")):
        e = ext.graph.initializer[0].external_data.add()
        e.key, e.value = k, v
    s["external_data_from_bytes"] = ext
    return s


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, m in seeds().items():
        (OUT / f"{name}.onnx").write_bytes(m.SerializeToString())
    # Small variants of the committed models: the FCNs with their channels cut, so the fuzzer
    # mutates their structure rather than a megabyte of weights.
    for src in sorted((ROOT / "tests" / "models").glob("*fcn*.onnx")):
        m = onnx.load(src)
        for t in m.graph.initializer:
            a = numpy_helper.to_array(t)
            if a.size > 64:
                a = a[tuple(slice(0, 4) for _ in a.shape)]
                t.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(a), t.name))
        (OUT / f"small_{src.name}").write_bytes(m.SerializeToString())
    print(f"wrote {len(list(OUT.glob('*.onnx')))} seeds to {OUT}")


if __name__ == "__main__":
    main()
