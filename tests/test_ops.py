"""Op and attribute coverage beyond the exported models: small graphs built with
onnx.helper, each run by the engine and by ONNX Runtime on real data."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import tsviz_native as tsv
from conftest import ort_run, real_windows
from onnx_builder import build, const, weights

rng = np.random.default_rng(7)
W3 = weights(rng, 5, 3, 4)
B5 = weights(rng, 5)
N = helper.make_node


def conv(inp: str, out: str, w: str = "w", b: str | None = "b", **attrs) -> object:
    return N("Conv", [inp, w] + ([b] if b else []), [out], name=out, **attrs)


WB = [const("w", W3), const("b", B5)]

CASES: dict[str, tuple] = {
    "conv_same_lower_stride2": ([conv("x", "y", auto_pad="SAME_LOWER", strides=[2])], WB),
    "conv_same_upper": ([conv("x", "y", auto_pad="SAME_UPPER")], WB),
    "conv_valid_dilation": ([conv("x", "y", auto_pad="VALID", dilations=[3])], WB),
    "conv_pads_no_bias": ([conv("x", "y", b=None, pads=[2, 1], strides=[3])], [const("w", W3)]),
    "conv_depthwise_multiplier": (
        [conv("x", "y", w="wd", b=None, group=3)],
        [const("wd", weights(rng, 6, 1, 3))],
    ),
    "conv_grouped": (
        [conv("x", "y", w="wg", b=None, group=2)],
        [const("wg", weights(rng, 4, 2, 3))],
        ("N", 4, 20),
    ),
    "maxpool_ceil_pads_dilation": (
        [N("MaxPool", ["x"], ["y"], kernel_shape=[3], strides=[2], pads=[1, 1], dilations=[2], ceil_mode=1)],
        [],
    ),
    # Windows of 2 at stride 2: dilated (taps two apart, not adjacent), on an even length
    # (every row's windows in one pass across row ends) and on an odd one (a last input unused).
    "maxpool_k2_s2_dilation2": ([N("MaxPool", ["x"], ["y"], kernel_shape=[2], strides=[2], dilations=[2])], []),
    "maxpool_k2_s2_even_length": ([N("MaxPool", ["x"], ["y"], kernel_shape=[2], strides=[2])], [], ("N", 3, 42)),
    "maxpool_k2_s2_odd_length": ([N("MaxPool", ["x"], ["y"], kernel_shape=[2], strides=[2])], [], ("N", 3, 37)),
    "maxpool_same_upper": ([N("MaxPool", ["x"], ["y"], kernel_shape=[4], strides=[3], auto_pad="SAME_UPPER")], []),
    "avgpool_include_pad_ceil": (
        [N("AveragePool", ["x"], ["y"], kernel_shape=[3], strides=[2], pads=[1, 2], ceil_mode=1, count_include_pad=1)],
        [],
    ),
    "avgpool_exclude_pad_same_lower": (
        [N("AveragePool", ["x"], ["y"], kernel_shape=[4], strides=[1], auto_pad="SAME_LOWER")],
        [],
    ),
    "avgpool_dilation_opset19": (
        [N("AveragePool", ["x"], ["y"], kernel_shape=[3], strides=[1], dilations=[2], pads=[2, 2])],
        [],
        ("N", 3, 20),
        19,
    ),
    "activations": (
        [
            N("LeakyRelu", ["x"], ["a"]),
            N("Elu", ["a"], ["b1"], alpha=0.5),
            N("Sigmoid", ["b1"], ["c"]),
            N("Tanh", ["c"], ["d"]),
            N("Relu", ["d"], ["y"]),
        ],
        [],
    ),
    "softmax_channels": ([N("Softmax", ["x"], ["y"], axis=1)], []),
    "softmax_time": ([N("Softmax", ["x"], ["y"], axis=-1)], []),
    "softmax_opset11_2d": (
        [N("GlobalAveragePool", ["x"], ["g"]), N("Flatten", ["g"], ["f"]), N("Softmax", ["f"], ["y"])],
        [],
        ("N", 3, 20),
        11,
    ),
    "global_max_gemm": (
        [
            N("GlobalMaxPool", ["x"], ["g"]),
            N("Flatten", ["g"], ["f"]),
            N("Gemm", ["f", "gw", "gc"], ["y"], alpha=0.5, beta=2.0),
        ],
        [const("gw", weights(rng, 3, 4)), const("gc", weights(rng, 4))],
    ),
    "reduce_mean_keepdims_squeeze_opset13": (
        [
            N("ReduceMean", ["x"], ["r"], axes=[2], keepdims=1),
            N("Squeeze", ["r", "ax"], ["s"]),
            N("Gemm", ["s", "gw"], ["y"], transB=1),
        ],
        [const("ax", [2], np.int64), const("gw", weights(rng, 2, 3))],
        ("N", 3, 20),
        13,
    ),
    "reduce_max_opset18": (
        [N("ReduceMax", ["x", "ax"], ["y"], keepdims=0)],
        [const("ax", [-1], np.int64)],
        ("N", 3, 20),
        18,
    ),
    "batchnorm_on_input": (
        [N("BatchNormalization", ["x", "s", "bb", "m", "v"], ["y"], epsilon=1e-3)],
        [
            const("s", [1.5, -0.5, 2.0]),
            const("bb", [0.1, 0.2, -0.3]),
            const("m", [0.3, -0.1, 0.0]),
            const("v", [0.5, 2.0, 1.0]),
        ],
    ),
    "const_first_sub_and_div": (
        [
            conv("x", "c"),
            N("Sub", ["k", "c"], ["s"]),
            N("Div", ["s", "two"], ["y"]),
        ],
        WB + [const("k", np.arange(5, dtype=np.float32).reshape(1, 5, 1)), const("two", 2.0)],
    ),
    "concat_branches_and_residual_add": (
        [
            conv("x", "c1", pads=[1, 2]),
            conv("x", "c2", w="w2", b=None, pads=[0, 1]),
            N("Concat", ["c1", "c2"], ["cat"], axis=1),
            N("Relu", ["cat"], ["r"]),
            N("Add", ["cat", "r"], ["y"]),
        ],
        WB + [const("w2", weights(rng, 2, 3, 2))],
    ),
    "pad_opset11_into_conv": (
        [N("Pad", ["x", "p"], ["xp"]), conv("xp", "y")],
        WB + [const("p", [0, 0, 3, 0, 0, 1], np.int64)],
        ("N", 3, 20),
        11,
    ),
    "pad_opset18_axes_into_conv": (
        [N("Pad", ["x", "p", "", "pa"], ["xp"]), conv("xp", "y")],
        WB + [const("p", [2, 2], np.int64), const("pa", [2], np.int64)],
        ("N", 3, 20),
        18,
    ),
    "pad_opset7_attr": (
        [N("Pad", ["x"], ["xp"], pads=[0, 0, 1, 0, 0, 1]), conv("xp", "y")],
        WB,
        ("N", 3, 20),
        7,
    ),
    "dropout_identity_cast": (
        [
            N("Dropout", ["x", "ratio"], ["d"]),
            N("Identity", ["d"], ["i"]),
            N("Cast", ["i"], ["cst"], to=1),
            conv("cst", "y"),
        ],
        WB + [const("ratio", 0.5)],
        ("N", 3, 20),
        13,
    ),
    "constant_nodes": (
        [
            N("Constant", [], ["k"], value_floats=[1.0, -2.0, 0.5]),
            N("Constant", [], ["ax"], value_ints=[1]),
            N("Unsqueeze", ["k", "ax"], ["k2"]),
            N("Mul", ["x", "k2"], ["y"]),
        ],
        [],
        ("N", 3, 20),
        13,
    ),
    "shape_arithmetic_flatten": (
        [
            conv("x", "c"),
            N("Shape", ["c"], ["sh"]),
            N("Gather", ["sh", "zero"], ["n"], axis=0),
            N("Unsqueeze", ["n", "ax0"], ["n1"]),
            N("Concat", ["n1", "minus1"], ["target"], axis=0),
            N("Reshape", ["c", "target"], ["f"]),
            N("MatMul", ["f", "mw"], ["mm"]),
            N("Add", ["mm", "mb"], ["y"]),
        ],
        WB
        + [
            const("zero", 0, np.int64),
            const("ax0", [0], np.int64),
            const("minus1", [-1], np.int64),
            const("mw", weights(rng, 85, 2)),
            const("mb", weights(rng, 2)),
        ],
        ("N", 3, 20),
        13,
    ),
    "channels_last_pointwise_matmul": (
        [
            N("MatMul", ["x", "pw"], ["m"]),
            N("Add", ["m", "pb"], ["a"]),
            N("Transpose", ["a"], ["t"], perm=[0, 2, 1]),
            conv("t", "y", w="w4", b=None),
        ],
        [const("pw", weights(rng, 3, 4)), const("pb", weights(rng, 4)), const("w4", weights(rng, 2, 4, 3))],
        ("N", 20, 3),
    ),
    "rank2_input_unsqueeze": (
        [N("Unsqueeze", ["x", "ax"], ["u"]), conv("u", "y", w="w1")],
        WB + [const("ax", [1], np.int64), const("w1", weights(rng, 5, 1, 4))],
        ("N", 20),
    ),
    "conv2d_1xk_keras_style": (
        [
            N("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
            N("Unsqueeze", ["t", "ax"], ["u"]),
            N("Conv", ["u", "w2d", "b"], ["c"], strides=[1, 2], pads=[0, 1, 0, 2]),
            N("Squeeze", ["c", "ax"], ["s"]),
            N("MaxPool", ["s"], ["y"], kernel_shape=[2], strides=[2]),
        ],
        [const("w2d", W3.reshape(5, 3, 1, 4)), const("b", B5), const("ax", [2], np.int64)],
        ("N", 20, 3),
        13,
    ),
    "gelu_opset20_erf_and_tanh": (
        [conv("x", "c"), N("Gelu", ["c"], ["g"]), N("Gelu", ["g"], ["y"], approximate="tanh")],
        WB,
        ("N", 3, 20),
        20,
    ),
    "gelu_erf_pattern_opset13": (
        [
            conv("x", "c"),
            N("Div", ["c", "sqrt2"], ["d"]),
            N("Erf", ["d"], ["e"]),
            N("Add", ["e", "one"], ["a"]),
            N("Mul", ["c", "a"], ["m"]),
            N("Mul", ["m", "half"], ["y"]),
        ],
        WB + [const("sqrt2", 1.4142135381698608), const("one", 1.0), const("half", 0.5)],
        ("N", 3, 20),
        13,
    ),
    "gelu_tanh_pattern_opset13": (
        [
            conv("x", "c"),
            N("Mul", ["c", "c"], ["sq"]),
            N("Mul", ["c", "sq"], ["cu"]),
            N("Mul", ["k1", "cu"], ["kcu"]),
            N("Add", ["c", "kcu"], ["s"]),
            N("Mul", ["k2", "s"], ["u"]),
            N("Tanh", ["u"], ["t"]),
            N("Add", ["one", "t"], ["a"]),
            N("Mul", ["c", "a"], ["m"]),
            N("Mul", ["half", "m"], ["y"]),
        ],
        WB + [const("k1", 0.044714998453855515), const("k2", 0.7978845834732056), const("one", 1.0), const("half", 0.5)],
        ("N", 3, 20),
        13,
    ),
    "erf": ([conv("x", "c"), N("Erf", ["c"], ["y"])], WB),
    # Keras 3 through tf2onnx: gelu(approximate=True) with Pow(x, 3) and 0.5 * x first,
    # hard_sigmoid as relu6(x + 3) / 6, hard_silu as x * that, PReLU as Relu(x) - a * Relu(-x).
    "keras_gelu_tanh_pattern_opset13": (
        [
            conv("x", "c"),
            N("Mul", ["half", "c"], ["h"]),
            N("Pow", ["c", "three"], ["cu"]),
            N("Mul", ["k1", "cu"], ["kcu"]),
            N("Add", ["c", "kcu"], ["s"]),
            N("Mul", ["k2", "s"], ["u"]),
            N("Tanh", ["u"], ["t"]),
            N("Add", ["one", "t"], ["a"]),
            N("Mul", ["h", "a"], ["y"]),
        ],
        WB + [const("k1", 0.044714998453855515), const("k2", 0.7978845834732056), const("one", 1.0),
              const("half", 0.5), const("three", 3.0)],
        ("N", 3, 20),
        13,
    ),
    "keras_hard_silu_hard_sigmoid_patterns_opset13": (
        [
            conv("x", "c"),
            N("Add", ["c", "three"], ["a"]),
            N("Clip", ["a", "zero", "six"], ["r"]),
            N("Mul", ["r", "sixth"], ["hs"]),
            N("Mul", ["c", "hs"], ["sw"]),
            N("Add", ["sw", "three"], ["a2"]),
            N("Clip", ["a2", "zero", "six"], ["r2"]),
            N("Mul", ["r2", "sixth"], ["y"]),
        ],
        WB + [const("three", [[[3.0]]]), const("zero", 0.0), const("six", 6.0), const("sixth", 1 / 6)],
        ("N", 3, 20),
        13,
    ),
    "keras_prelu_patterns_opset13": (
        [
            conv("x", "c"),
            N("Relu", ["c"], ["p"]),
            N("Neg", ["c"], ["n"]),
            N("Relu", ["n"], ["rn"]),
            N("Mul", ["rn", "neg_slope"], ["m"]),
            N("Add", ["p", "m"], ["q"]),
            N("Relu", ["q"], ["p2"]),
            N("Neg", ["q"], ["n2"]),
            N("Relu", ["n2"], ["rn2"]),
            N("Mul", ["rn2", "neg_one_slope"], ["m2"]),
            N("Add", ["m2", "p2"], ["y"]),
        ],
        WB + [const("neg_slope", -np.abs(weights(rng, 1, 5, 1))), const("neg_one_slope", [[[-0.3]]])],
        ("N", 3, 20),
        13,
    ),
    "pow_square_and_cube_neg": (
        [
            conv("x", "c"),
            N("Pow", ["c", "two"], ["sq"]),
            N("Pow", ["c", "three"], ["cu"]),
            N("Neg", ["cu"], ["ncu"]),
            N("Add", ["sq", "ncu"], ["y"]),
        ],
        WB + [const("two", 2.0), const("three", 3.0)],
    ),
    "silu_hardswish_mish_patterns_opset13": (
        [
            conv("x", "c"),
            N("Sigmoid", ["c"], ["s"]),
            N("Mul", ["c", "s"], ["a"]),
            N("HardSigmoid", ["a"], ["h"], alpha=1 / 6),
            N("Mul", ["a", "h"], ["hs"]),
            N("Softplus", ["hs"], ["sp"]),
            N("Tanh", ["sp"], ["t"]),
            N("Mul", ["hs", "t"], ["y"]),
        ],
        WB,
        ("N", 3, 20),
        13,
    ),
    "hardswish_mish_ops_opset18": (
        [conv("x", "c"), N("HardSwish", ["c"], ["h"]), N("Mish", ["h"], ["y"])],
        WB,
        ("N", 3, 20),
        18,
    ),
    "softplus_selu_hardsigmoid": (
        [
            conv("x", "c"),
            N("Softplus", ["c"], ["s"]),
            N("Selu", ["c"], ["e"], alpha=1.5, gamma=1.2),
            N("Add", ["s", "e"], ["a"]),
            N("HardSigmoid", ["a"], ["y"], alpha=0.25, beta=0.4),
        ],
        WB,
    ),
    "softsign": ([conv("x", "c"), N("Softsign", ["c"], ["y"])], WB),
    "clip_relu6_inputs_opset13": (
        [conv("x", "c"), N("Clip", ["c", "zero", "six"], ["r"]), N("Clip", ["r", "", "top"], ["y"])],
        WB + [const("zero", 0.0), const("six", 6.0), const("top", 2.5)],
        ("N", 3, 20),
        13,
    ),
    "clip_attributes_opset7": ([conv("x", "c"), N("Clip", ["c"], ["y"], min=-0.5, max=1.0)], WB, ("N", 3, 20), 7),
    "prelu_per_channel_and_scalar": (
        [conv("x", "c"), N("PRelu", ["c", "slope"], ["p"]), N("PRelu", ["p", "one_slope"], ["y"])],
        WB + [const("slope", weights(rng, 5, 1)), const("one_slope", [0.3])],
    ),
    "mul_sub_div_of_tensors": (
        [
            conv("x", "c1"),
            conv("x", "c2", w="w2", b=None),
            N("Sigmoid", ["c2"], ["g"]),
            N("Mul", ["c1", "g"], ["m"]),
            N("Sub", ["m", "c2"], ["s"]),
            N("Softplus", ["c1"], ["sp"]),
            N("Add", ["sp", "one"], ["den"]),
            N("Div", ["s", "den"], ["y"]),
        ],
        WB + [const("w2", weights(rng, 5, 3, 4)), const("one", 1.0)],
    ),
    "tcn_chomp_residual_last_step": (
        [
            conv("x", "c", pads=[6, 6], dilations=[2], w="wd"),
            N("Slice", ["c", "st", "en", "ax"], ["chomp"]),
            N("Relu", ["chomp"], ["r"]),
            conv("x", "down", w="w1", b=None),
            N("Add", ["r", "down"], ["a"]),
            N("Gather", ["a", "last"], ["y"], axis=2),
        ],
        [
            const("wd", weights(rng, 5, 3, 4)),
            const("b", B5),
            const("w1", weights(rng, 5, 3, 1)),
            const("st", [0], np.int64),
            const("en", [-6], np.int64),
            const("ax", [2], np.int64),
            const("last", -1, np.int64),
        ],
        ("N", 3, 20),
        13,
    ),
    "slice_window_keeps_axis": (
        [conv("x", "c"), N("Slice", ["c", "st", "en", "ax"], ["y"])],
        WB + [const("st", [3], np.int64), const("en", [9223372036854775807], np.int64), const("ax", [-1], np.int64)],
        ("N", 3, 20),
        13,
    ),
    "softplus_threshold_where_dynamo_style": (
        [
            conv("x", "c"),
            N("Softplus", ["c"], ["s"]),
            N("Greater", ["c", "twenty"], ["g"]),
            N("Where", ["g", "c", "s"], ["y"]),
        ],
        WB + [const("twenty", 20.0)],
        ("N", 3, 20),
        18,
    ),
    "squeeze_opset11_attr": (
        [
            N("Unsqueeze", ["x"], ["u"], axes=[2]),
            N("Conv", ["u", "w2d"], ["c"]),
            N("Squeeze", ["c"], ["y"], axes=[2]),
        ],
        [const("w2d", W3.reshape(5, 3, 1, 4))],
        ("N", 3, 20),
        11,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_onnxruntime(case: str) -> None:
    spec = CASES[case]
    nodes, inits = spec[0], spec[1]
    shape = spec[2] if len(spec) > 2 else ("N", 3, 20)
    opset = spec[3] if len(spec) > 3 else 17
    # A final Flatten gives every case the (N, K) output a model must have.
    flat = helper.make_node("Flatten", ["y"], ["out"], name="flatten_out")
    data = build(nodes + [flat], inits, input_shape=shape, opset=opset, outputs=("out",))
    model = tsv.load(data)
    if len(shape) == 2:
        x = real_windows((1, shape[1]), "NCT", 6)[:, 0, :]
    else:
        x = real_windows((shape[1], shape[2]), "NCT", 6)
    np.testing.assert_allclose(model.predict(x), ort_run(data, x), rtol=1e-5, atol=1e-5)


def test_readme_lists_every_onnx_op_the_engine_lowers() -> None:
    """The supported-ops table of the README names each ONNX op the engine's registry claims."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = text[text.index("| ONNX op | supported |") :].split("\n\n")[0]
    listed: set[str] = set()
    for row in table.splitlines()[2:]:
        for name in row.split("|")[1].split(","):
            listed.add(name.split("(")[0].strip())
    missing = set(tsv._native.onnx_ops()) - listed
    assert not missing, f"ONNX ops missing from the README's table: {sorted(missing)}"


def test_exported_activation_patterns_are_fused_into_one_activation() -> None:
    """Gelu's Erf form and x * f(x) become one activation each, which after a convolution is
    its a^l (SPEC.md)."""
    for case, fused in [
        ("gelu_erf_pattern_opset13", ["Gelu"]),
        ("gelu_tanh_pattern_opset13", ["Gelu"]),
        ("silu_hardswish_mish_patterns_opset13", ["Silu", "HardSwish", "Mish"]),
        ("keras_gelu_tanh_pattern_opset13", ["Gelu"]),
        ("keras_hard_silu_hard_sigmoid_patterns_opset13", ["HardSwish", "HardSigmoid"]),
        ("keras_prelu_patterns_opset13", ["PRelu", "PRelu"]),
    ]:
        nodes, inits, shape, opset = CASES[case]
        flat = helper.make_node("Flatten", ["y"], ["out"], name="flatten_out")
        model = tsv.load(build(nodes + [flat], inits, input_shape=shape, opset=opset, outputs=("out",)))
        ops = [op for op in model.graph_ops if op not in ("Input", "Flatten")]
        assert ops == ["Conv"] + fused, (case, model.graph_ops)
        ex = model.explain(real_windows(shape[1:], "NCT", 1))
        assert ex.activation_name(ex.layer_names[0]) != ex.layer_names[0]


def test_engine_facts_per_onnx_op_drive_pruning() -> None:
    """Pruning passes through exactly the ONNX ops the engine says keep channels one-to-one."""
    from tsviz_native.analysis.pruning import _PASS

    facts = tsv._native.onnx_ops()
    assert facts["Relu"] == {"ir_op": "Relu", "keeps_channels": True, "activation": True, "since_opset": 1}
    assert facts["Gelu"]["since_opset"] == 20 and facts["Gelu"]["activation"]
    assert facts["Reshape"]["ir_op"] == "Flatten" and facts["Shape"]["ir_op"] == ""
    assert not facts["Softmax"]["keeps_channels"] and not facts["PRelu"]["keeps_channels"]
    assert _PASS == {op for op, f in facts.items() if f["keeps_channels"]}
    assert {"Relu", "Sigmoid", "MaxPool", "Pad", "Dropout", "Gelu", "Clip", "Slice"} <= _PASS
    assert not {"Gather", "ReduceMean", "Concat", "Add", "Mul", "BatchNormalization"} & _PASS



def test_pow_other_than_square_or_cube_is_refused() -> None:
    nodes = [conv("x", "c"), N("Pow", ["c", "e"], ["y"]), helper.make_node("Flatten", ["y"], ["out"])]
    data = build(nodes, WB + [const("e", 0.5)], outputs=("out",))
    with pytest.raises(tsv.ModelError, match=r"node 'c?.*\(Pow.*power 0\.5.*only the constant exponents 2 and 3"):
        tsv.load(data)


def test_keras_prelu_with_a_slope_per_time_step_is_refused() -> None:
    """Keras' PReLU without shared_axes has a slope per (time step, channel): not per channel."""
    nodes = [
        conv("x", "c"),
        N("Relu", ["c"], ["p"]),
        N("Neg", ["c"], ["n"]),
        N("Relu", ["n"], ["rn"]),
        N("Mul", ["rn", "neg_slope"], ["m"], name="prelu/mul"),
        N("Add", ["p", "m"], ["y"]),
        helper.make_node("Flatten", ["y"], ["out"]),
    ]
    data = build(nodes, WB + [const("neg_slope", -np.abs(weights(rng, 1, 5, 20)))], outputs=("out",))
    with pytest.raises(tsv.ModelError, match=r"node 'prelu/mul' \(Mul.*varies along more than one axis"):
        tsv.load(data)


def test_global_average_pool_is_the_mean_to_float_rounding_whatever_the_batch() -> None:
    """The mean over time of every channel against the exact one (float64), within float32
    rounding of the sum of magnitudes; lengths below, at and past the kernel's 16 lanes, 11
    channels (four rows at a time, 3 left over). Each channel's value is the same bit for bit
    whether its sample runs alone or in a batch."""
    nodes = [N("GlobalAveragePool", ["x"], ["g"]), N("Flatten", ["g"], ["y"])]
    model = tsv.load(build(nodes, [], input_shape=("N", 11, "T"), outputs=("y",)))
    for t in (1, 7, 16, 50, 150):
        x = np.random.default_rng(t).standard_normal((5, 11, t)).astype(np.float32) * 100
        got = model.predict(x)
        exact = x.astype(np.float64).mean(axis=2)
        bound = 4 * t * np.finfo(np.float32).eps * np.abs(x.astype(np.float64)).sum(axis=2) / t
        assert np.all(np.abs(got - exact) <= bound + 1e-30), t
        for i in range(len(x)):
            np.testing.assert_array_equal(model.predict(x[i:i + 1])[0], got[i])


@pytest.mark.parametrize("kernel, stride, dilation, pads, ceil, include_pad", [
    (2, 2, 1, [0, 0], 0, 0), (3, 1, 1, [1, 1], 0, 1), (3, 2, 1, [1, 1], 1, 0), (4, 3, 2, [2, 1], 0, 1),
    (5, 1, 1, [0, 0], 0, 0), (3, 2, 2, [0, 2], 1, 1)])
def test_average_pool_sums_taps_in_order(kernel: int, stride: int, dilation: int, pads: list[int], ceil: int,
                                         include_pad: int) -> None:
    """Windows inside the input take vectorised loops (by stride 1, 2 or any), the edges the
    general rule: bit for bit 0 + x_0 / n + x_1 / n + ... in float32, n the taps counted."""
    channels, length = 3, 37
    nodes = [N("AveragePool", ["x"], ["p"], kernel_shape=[kernel], strides=[stride], dilations=[dilation],
               pads=pads, ceil_mode=ceil, count_include_pad=include_pad), N("Flatten", ["p"], ["y"])]
    model = tsv.load(build(nodes, [], input_shape=("N", channels, length), outputs=("y",), opset=19))
    x = np.random.default_rng(kernel + 10 * stride).standard_normal((2, channels, length)).astype(np.float32)
    y = model.predict(x).reshape(2, channels, -1)
    for n in range(2):
        for c in range(channels):
            for o in range(y.shape[2]):
                taps = [o * stride - pads[0] + k * dilation for k in range(kernel)]
                counted = sum(1 for i in taps if 0 <= i < length or (include_pad and i < length + pads[1]))
                inv = np.float32(1) / np.float32(counted)
                acc = np.float32(0)
                for i in taps:
                    if 0 <= i < length:
                        acc = np.float32(acc + np.float32(x[n, c, i] * inv))
                assert y[n, c, o] == acc, (n, c, o)


def _pooling_configs(count: int = 48) -> list[tuple]:
    """Random windows (kernel, stride, dilation, pads, ceil_mode, count_include_pad) on random
    lengths, seeded: the kernels' fast paths each hold for some windows only (adjacent taps,
    rows that tile the tensor, windows inside the input), so a sweep crosses their edges."""
    r = np.random.default_rng(11)
    out = []
    while len(out) < count:
        op = str(r.choice(["MaxPool", "AveragePool"]))
        k, s, d = int(r.integers(1, 5)), int(r.integers(1, 4)), int(r.integers(1, 4))
        length = int(r.integers(12, 60))
        pads = [int(r.integers(0, k)), int(r.integers(0, k))]
        if (k - 1) * d + 1 > length - 1:  # the pooled tensor: length - 1 (the 4-tap Conv below, pads 1)
            continue
        out.append((op, k, s, d, pads, int(r.integers(0, 2)), int(r.integers(0, 2)), length))
    return out


@pytest.mark.parametrize("op, kernel, stride, dilation, pads, ceil, include_pad, length", _pooling_configs())
def test_pooling_windows_match_onnxruntime(op: str, kernel: int, stride: int, dilation: int, pads: list[int],
                                           ceil: int, include_pad: int, length: int) -> None:
    """Pooling after Conv -> ReLU (ties at 0 for max-pooling's first-maximum rule) against ONNX
    Runtime, over windows the fast paths take and windows they must leave alone."""
    attrs = dict(kernel_shape=[kernel], strides=[stride], dilations=[dilation], pads=pads, ceil_mode=ceil)
    if op == "AveragePool":
        attrs["count_include_pad"] = include_pad
    nodes = [conv("x", "c", pads=[1, 1]), N("Relu", ["c"], ["r"]), N(op, ["r"], ["y"], **attrs),
             N("Flatten", ["y"], ["out"])]
    data = build(nodes, WB, input_shape=("N", 3, length), opset=19, outputs=("out",))
    x = real_windows((3, length), "NCT", 5)
    np.testing.assert_allclose(tsv.load(data).predict(x), ort_run(data, x), rtol=1e-5, atol=1e-5)
