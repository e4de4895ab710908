"""The structural validator (cpp/src/onnx/validate.cpp) and the importer's checks: every
malformed model is a ModelError that names the file, the node and op, and what is wrong,
raised before anything is allocated for the model."""

from __future__ import annotations

import re

import numpy as np
import pytest
from onnx import TensorProto, helper

import tsviz_native as tsv
from conftest import model_path, ort_run, real_windows
from onnx_builder import build, const, weights

rng = np.random.default_rng(12)
N = helper.make_node
W = const("w", weights(rng, 4, 3, 3))
B = const("b", weights(rng, 4))


def head(x: str, features: int) -> tuple[list, list]:
    return (
        [N("Flatten", [x], ["f"], name="flat"), N("Gemm", ["f", "gw", "gb"], ["y"], name="fc", transB=1)],
        [const("gw", weights(rng, 2, features)), const("gb", weights(rng, 2))],
    )


def refused(data: bytes, pattern: str) -> None:
    with pytest.raises(tsv.ModelError, match=pattern):
        tsv.load(data)


# --- single assignment, dangling inputs, cycles ------------------------------------------------


def test_two_nodes_write_one_value() -> None:
    hn, hi = head("r", 48)
    data = build([N("Relu", ["x"], ["r"], name="a"), N("Tanh", ["x"], ["r"], name="b")] + hn, hi, input_shape=("N", 3, 16))
    refused(data, re.escape("<bytes>: node 'b' (Tanh): output 'r' is already produced by node 'a' (Relu); "
                            "ONNX values are assigned once"))


def test_initializer_and_node_output_share_a_name() -> None:
    hn, hi = head("w", 48)
    data = build([N("Relu", ["x"], ["w"], name="act")] + hn, hi + [W], input_shape=("N", 3, 16))
    refused(data, re.escape("node 'act' (Relu): output 'w' is also an initializer"))


def test_two_initializers_of_one_name() -> None:
    hn, hi = head("c", 56)
    data = build([N("Conv", ["x", "w", "b"], ["c"])] + hn, [W, B, const("w", weights(rng, 4, 3, 3))] + hi)
    refused(data, re.escape("<bytes>: initializer 'w' is defined twice"))


def test_node_output_shadows_the_graph_input() -> None:
    hn, hi = head("x", 60)
    data = build([N("Relu", ["f"], ["x"], name="loop")] + hn, hi)
    refused(data, re.escape("node 'loop' (Relu): output 'x' is also a graph input"))


def test_dangling_input() -> None:
    hn, hi = head("c", 56)
    data = build([N("Conv", ["x", "w", "bias_nobody_made"], ["c"], name="c1")] + hn, [W] + hi)
    refused(data, re.escape("node 'c1' (Conv): input 'bias_nobody_made' is not produced by any node, "
                            "initializer or graph input"))


def test_output_not_produced() -> None:
    data = build([N("Relu", ["x"], ["r"])], [], outputs=("nowhere",))
    refused(data, re.escape("output 'nowhere' is not produced by any node"))


def test_cycle_is_named_node_by_node() -> None:
    hn, hi = head("b2", 60)
    data = build([N("Add", ["x", "b2"], ["a"], name="plus"), N("Relu", ["a"], ["b2"], name="act")] + hn, hi)
    refused(data, re.escape("the graph has a cycle: node 'plus' (Add) -> node 'act' (Relu) -> node 'plus' (Add)"))
    refused(build([N("Relu", ["r"], ["r"], name="self")], [], outputs=("r",)),
            re.escape("the graph has a cycle: node 'self' (Relu) -> node 'self' (Relu)"))


def test_nodes_out_of_order_are_sorted_not_refused() -> None:
    """ONNX Runtime runs a graph whose nodes are listed out of order; so does TSViz, with
    the same result as the ordered graph."""
    hn, hi = head("r", 72)
    nodes = [N("Conv", ["x", "w", "b"], ["c"], name="c1"), N("Relu", ["c"], ["r"], name="act")] + hn
    ordered = build(nodes, [W, B] + hi)
    shuffled = build(nodes[::-1], [W, B] + hi)
    x = real_windows((3, 20), "NCT", 3)
    np.testing.assert_array_equal(tsv.load(shuffled).predict(x), tsv.load(ordered).predict(x))


# --- attributes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "node, opset, pattern",
    [
        (N("Relu", ["x"], ["r"], name="act", alpha=0.1), 17,
         "node 'act' (Relu): attribute 'alpha' is not defined for Relu at opset 17 (it takes no attributes)"),
        (N("MaxPool", ["x"], ["r"], name="pool", kernel_shape=[2], dilations=[1]), 9,
         "node 'pool' (MaxPool): attribute 'dilations' is not defined for MaxPool at opset 9 "
         "(it takes auto_pad, kernel_shape, pads, strides, storage_order)"),
        (N("Conv", ["x", "w"], ["r"], name="c1", padding=[1, 1]), 17,
         "node 'c1' (Conv): attribute 'padding' is not defined for Conv at opset 17"),
        (N("Squeeze", ["x"], ["r"], name="sq", axes=[1]), 13,
         "node 'sq' (Squeeze): attribute 'axes' is not defined for Squeeze at opset 13 (it takes no attributes)"),
    ],
    ids=["relu_alpha", "maxpool_dilations_op9", "conv_typo", "squeeze_axes_op13"],
)
def test_attribute_the_op_does_not_define(node, opset: int, pattern: str) -> None:
    refused(build([node], [W], opset=opset, outputs=("r",)), re.escape(pattern))


def test_attribute_given_twice() -> None:
    node = N("LeakyRelu", ["x"], ["r"], name="lr", alpha=0.1)
    node.attribute.extend([helper.make_attribute("alpha", 0.2)])
    refused(build([node], [], outputs=("r",)), re.escape("node 'lr' (LeakyRelu): attribute 'alpha' is given twice"))


@pytest.mark.parametrize("op, extra", [("Conv", ["w"]), ("MaxPool", []), ("AveragePool", [])])
def test_auto_pad_with_explicit_pads(op: str, extra: list[str]) -> None:
    kw = {} if op == "Conv" else {"kernel_shape": [3]}
    node = N(op, ["x"] + extra, ["c"], name="win", auto_pad="SAME_UPPER", pads=[1, 1], **kw)
    refused(build([node], [W], outputs=("c",)),
            re.escape(f"node 'win' ({op}): attribute 'auto_pad' is 'SAME_UPPER' and explicit 'pads' are given too"))


def test_auto_pad_notset_with_pads_is_fine() -> None:
    hn, hi = head("c", 80)
    model = tsv.load(build([N("Conv", ["x", "w", "b"], ["c"], auto_pad="NOTSET", pads=[1, 1])] + hn, [W, B, ] + [
        const("gw", weights(rng, 2, 80)), const("gb", weights(rng, 2))]))
    assert model.layers[0].n_filters == 4


@pytest.mark.parametrize(
    "attrs, pattern",
    [
        ({"strides": [0]}, "attribute 'strides' has the value 0; each entry must be >= 1"),
        ({"dilations": [-2]}, "attribute 'dilations' has the value -2; each entry must be >= 1"),
        ({"kernel_shape": [0]}, "attribute 'kernel_shape' has the value 0; each entry must be >= 1"),
        ({"pads": [-1, 0]}, "attribute 'pads' has the value -1; padding must be >= 0"),
        ({"group": 0}, "attribute 'group' is 0; it must be >= 1"),
    ],
    ids=["stride0", "dilation_negative", "kernel0", "pads_negative", "group0"],
)
def test_non_positive_windows(attrs: dict, pattern: str) -> None:
    refused(build([N("Conv", ["x", "w"], ["c"], name="c1", **attrs)], [W], outputs=("c",)),
            re.escape("node 'c1' (Conv): " + pattern))


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pooling_pads_as_large_as_the_kernel(op: str) -> None:
    """A window entirely in the padding gave -inf (MaxPool) or 0/0 (AveragePool) silently."""
    node = N(op, ["x"], ["y"], name="pool", kernel_shape=[2], pads=[0, 2])
    refused(build([node], [], outputs=("y",)),
            re.escape(f"node 'pool' ({op}): attribute 'pads' (0, 2) pads by as much as the kernel (2,); "
                      "a window would lie entirely in the padding"))


def test_zero_sized_kernel_from_the_weight() -> None:
    w0 = const("w0", np.zeros((4, 3, 0), np.float32))
    refused(build([N("Conv", ["x", "w0"], ["c"], name="c1")], [w0], outputs=("c",)),
            re.escape("node 'c1' (Conv): weight has shape (4, 3, 0); every dim must be >= 1"))


def test_kernel_longer_than_its_padded_input() -> None:
    """Fixed length: refused at load; free length: refused at run time, naming the node."""
    wl = const("wl", weights(rng, 4, 3, 25))
    hn, hi = head("c", 4)
    data = build([N("Conv", ["x", "wl"], ["c"], name="long", pads=[1, 1])] + hn, [wl] + hi)
    refused(data, re.escape("node 'long' (Conv): input length 20 is shorter than the kernel's reach 25 "
                            "(padding 1+1) (at the model's declared input length 20)"))
    free = build([N("Conv", ["x", "wl"], ["c"], name="long"), N("GlobalAveragePool", ["c"], ["g"]),
                  N("Flatten", ["g"], ["y"])], [wl], input_shape=("N", 3, "T"))
    model = tsv.load(free)
    assert model.predict(real_windows((3, 30), "NCT", 1)).shape == (1, 4)
    with pytest.raises(tsv.ShapeError, match=re.escape("node 'long' (Conv): input length 20 is shorter than the kernel's reach 25")):
        model.predict(real_windows((3, 20), "NCT", 1))


# --- weight types --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, name", [(np.int8, "INT8"), (np.uint8, "UINT8"), (np.int32, "INT32"), (np.bool_, "BOOL")])
def test_integer_conv_weights_are_refused(dtype, name: str) -> None:
    wq = const("wq", np.ones((4, 3, 3)), dtype)
    refused(build([N("Conv", ["x", "wq"], ["c"], name="qconv")], [wq], outputs=("c",)),
            re.escape(f"node 'qconv' (Conv): the weight ('wq') has type {name}; Conv on a FLOAT input takes FLOAT "
                      "weights, and TSViz implements no dequantisation of integer weights"))


def test_integer_weights_elsewhere_are_refused() -> None:
    gq = const("gq", np.ones((60, 2)), np.uint8)
    refused(build([N("Flatten", ["x"], ["f"]), N("Gemm", ["f", "gq"], ["y"], name="fc")], [gq]),
            re.escape("node 'fc' (Gemm): B ('gq') has type UINT8"))
    refused(build([N("Flatten", ["x"], ["f"]), N("MatMul", ["f", "gq"], ["y"], name="mm")], [gq]),
            re.escape("node 'mm' (MatMul): the second operand ('gq') has type UINT8"))
    k = const("k", [1, 2, 3], np.int32)
    refused(build([N("Conv", ["x", "w"], ["c"]), N("Mul", ["c", "k"], ["y"], name="scale")], [W, k]),
            re.escape("node 'scale' (Mul): constant operand ('k') has type INT32; Mul with a FLOAT tensor takes a FLOAT constant"))
    s = const("s", [1, 1, 1, 1], np.int64)
    refused(build([N("Conv", ["x", "w"], ["c"]), N("BatchNormalization", ["c", "s", "s", "s", "s"], ["y"], name="bn")], [W, s]),
            re.escape("node 'bn' (BatchNormalization): scale ('s') has type INT64"))


def test_cast_to_float_makes_a_float_weight() -> None:
    """A Cast to FLOAT is the one conversion of integer weights the engine implements."""
    wq = const("wq", np.arange(36).reshape(4, 3, 3) % 5 - 2, np.int8)
    hn, hi = head("c", 72)
    data = build([N("Cast", ["wq"], ["wf"], to=TensorProto.FLOAT), N("Conv", ["x", "wf"], ["c"])] + hn, [wq] + hi)
    x = real_windows((3, 20), "NCT", 2)
    np.testing.assert_allclose(tsv.load(data).predict(x), ort_run(data, x), rtol=1e-5, atol=1e-5)


# --- dims and memory -------------------------------------------------------------------------------


def test_dims_that_do_not_multiply_out() -> None:
    refused(build([N("Conv", ["x", "w"], ["y"])], [TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, 3, 3],
                                                                float_data=[0.5] * 35)]),
            re.escape("tensor 'w': holds 35 values; its shape (4, 3, 3) needs 36"))
    refused(build([N("Conv", ["x", "w"], ["y"])], [TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, -3, 3])]),
            re.escape("tensor 'w': negative dimension -3"))
    refused(build([N("Conv", ["x", "w"], ["y"])], [TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1 << 20, 1 << 20])]),
            re.escape("tensor 'w': its dims multiply out to more than 2^31 values"))
    shape = const("shape", [5, 7], np.int64)
    refused(build([N("Reshape", ["w", "shape"], ["w2"], name="rs"), N("Conv", ["x", "w2"], ["y"])], [W, shape]),
            re.escape("node 'rs' (Reshape): reshapes a constant of shape (4, 3, 3) (36 values) to (5, 7); "
                      "the dims do not multiply out"))


def test_memory_limit_for_the_weights() -> None:
    data = model_path("fcn_op17").read_bytes()
    with pytest.raises(tsv.ModelError, match=r"^fcn_op17\.onnx: the weights need more than the memory limit of 1 MiB "
                                             r"\(max_memory\); tensor '[^']+' alone holds \d+ values"):
        tsv.load(model_path("fcn_op17"), max_memory=1 << 20)
    assert tsv.load(data, max_memory=64 << 20).n_parameters > 0


def test_memory_limit_for_the_activations() -> None:
    """One sample at the declared length: at load. A batch: before it is allocated."""
    long = build([N("Conv", ["x", "w"], ["c"]), N("GlobalAveragePool", ["c"], ["g"]), N("Flatten", ["g"], ["y"])], [W],
                 input_shape=("N", 3, 100000))
    with pytest.raises(tsv.ModelError, match=r"^<bytes>: the activations of one sample of length 100000 need 2.7 MiB, more "
                                             r"than the memory limit of 1.0 MiB \(max_memory\)"):
        tsv.load(long, max_memory=1 << 20)
    assert tsv.load(long, max_memory=4 << 20).sample_shape == (3, 100000)
    model = tsv.load(model_path("fcn_op17"), max_memory=16 << 20)
    x = real_windows((1, 150), "NCT", 40)
    assert model.predict(x).shape == (40, 2)  # predict runs in chunks within the limit
    with pytest.raises(tsv.ArgumentError, match=r"^40 samples of length 150 need [\d.]+ MiB of activations, more than "
                                                r"the memory limit of 16.0 MiB \(max_memory\); pass fewer samples at once"):
        model.explain(x)
    with pytest.raises(tsv.ArgumentError, match=r"^1 sample of length 100000 need"):
        model.predict(np.sin(np.arange(100000, dtype=np.float32) / 7.0).reshape(1, 1, -1))
    with pytest.raises(tsv.ArgumentError, match="max_memory must be a positive number of bytes"):
        tsv.load(model_path("fcn_op17"), max_memory=0)


def test_declared_dims_out_of_range() -> None:
    refused(build([N("Relu", ["x"], ["y"])], [], input_shape=("N", 3, 1 << 40)),
            re.escape("input 'x' declares dimension 2 of size 1099511627776; expected 1 to 16777216 or a free dimension"))


def test_every_committed_model_passes_the_validator() -> None:
    from conftest import MANIFEST

    for name in MANIFEST:
        assert tsv.load(model_path(name)).layers
