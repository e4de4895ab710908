"""Every refusal is a clear error naming what is wrong: the file, the node and op, the
attribute, the type, the shape. Never a crash, never a silent wrong answer."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import tsviz_native as tsv
from conftest import model_path, real_windows
from onnx_builder import build, const, weights

rng = np.random.default_rng(3)
N = helper.make_node
WB = [const("w", weights(rng, 5, 3, 4)), const("b", weights(rng, 5))]


def refused(data: bytes, pattern: str, error: type = tsv.ModelError) -> None:
    with pytest.raises(error, match=pattern):
        tsv.load(data)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(tsv.ModelError, match=r"nope\.onnx: no such file"):
        tsv.load(tmp_path / "nope.onnx")
    with pytest.raises(tsv.ModelError, match="is a folder"):
        tsv.load(tmp_path)


def test_not_onnx(tmp_path: Path) -> None:
    f = tmp_path / "notes.onnx"
    f.write_text("these are my notes, not a model\n")
    with pytest.raises(tsv.ModelError, match=r"^notes\.onnx: not an ONNX model"):
        tsv.load(f)
    refused(b"", r"not an ONNX model \(empty\)")
    refused(np.random.default_rng(0).bytes(4096), "not an ONNX model|truncated|malformed")


def test_truncated_file() -> None:
    data = model_path("paper_net_op17").read_bytes()
    for cut in (len(data) // 2, len(data) - 1, 10):
        with pytest.raises(tsv.ModelError, match="truncated|not an ONNX model|malformed"):
            tsv.load(data[:cut])


def test_corrupted_bytes_never_crash() -> None:
    """Random damage gives a ModelError or a model that still runs; never anything else."""
    data = bytearray(model_path("keras_strided_op17").read_bytes())
    r = np.random.default_rng(1)
    x = real_windows((64, 3), "NTC", 2)
    for _ in range(300):
        damaged = bytearray(data)
        for pos in r.integers(0, len(data), size=3):
            damaged[pos] = int(r.integers(0, 256))
        try:
            model = tsv.load(bytes(damaged))
        except tsv.ModelError:
            continue
        try:
            model.predict(x)
        except tsv.ShapeError:
            pass


def test_unsupported_ops_are_listed_at_once() -> None:
    data = build(
        [
            N("LSTM", ["x", "w", "r"], ["h"], name="lstm1", hidden_size=4),
            N("Floor", ["h"], ["y"], name="floor1"),
        ],
        [const("w", weights(rng, 1, 16, 3)), const("r", weights(rng, 1, 16, 4))],
    )
    refused(data, re.escape("unsupported ops: node 'lstm1' (LSTM, opset 17); node 'floor1' (Floor, opset 17)"))


def test_a_comparison_as_the_output_is_refused() -> None:
    data = build([N("Conv", ["x", "w", "b"], ["c"]), N("Greater", ["c", "k"], ["y"])], WB + [const("k", 20.0)])
    refused(data, re.escape("output 'y' is a comparison (Greater); TSViz explains float outputs"))


def test_op_before_the_opset_that_defines_it_is_unsupported() -> None:
    """Gelu is an ONNX op from opset 20; at 17 a node of that name is no standard op."""
    data = build([N("Gelu", ["x"], ["y"], name="g1")], [], opset=17)
    refused(data, re.escape("unsupported op: node 'g1' (Gelu, opset 17)"))


def test_custom_domain_op() -> None:
    node = N("FusedConv", ["x", "w"], ["y"], name="fused", domain="com.microsoft")
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 20])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [WB[0]],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    refused(model.SerializeToString(), re.escape("node 'fused' (com.microsoft.FusedConv, opset 17)"))


@pytest.mark.parametrize(
    "nodes, inits, pattern",
    [
        (
            [N("MaxPool", ["x"], ["y"], name="pool1", kernel_shape=[2], storage_order=1)],
            [],
            r"node 'pool1' \(MaxPool\): attribute 'storage_order': expected 0, got 1",
        ),
        (
            [N("Pad", ["x", "p"], ["xp"], name="pad1", mode="reflect"), N("Conv", ["xp", "w"], ["y"])],
            WB + [const("p", [0, 0, 1, 0, 0, 1], np.int64)],
            r"node 'pad1' \(Pad\): attribute 'mode': only 'constant' \(zero\) padding is supported, got 'reflect'",
        ),
        (
            [N("Conv", ["x", "w"], ["y"], name="c1", auto_pad="SAME_SIDEWAYS")],
            WB,
            r"node 'c1' \(Conv\): attribute 'auto_pad': unsupported value 'SAME_SIDEWAYS'",
        ),
        (
            [N("GlobalAveragePool", ["x"], ["g"]), N("Flatten", ["g"], ["f"]),
             N("Gemm", ["f", "gw"], ["y"], name="fc", transA=1)],
            [const("gw", weights(rng, 3, 2))],
            r"node 'fc' \(Gemm\): attribute 'transA': expected 0, got 1",
        ),
        (
            [N("Conv", ["x", "w"], ["c"]), N("Mul", ["c", "x"], ["y"], name="gate")],
            WB,
            r"node 'gate' \(Mul\): multiplies tensors of shapes \(5, 17\) and \(3, 20\)",
        ),
        (
            [N("Conv", ["x", "w"], ["c"]), N("Greater", ["c", "k"], ["g"]), N("Where", ["g", "c", "c"], ["y"], name="pick")],
            WB + [const("k", 20.0)],
            r"node 'pick' \(Where\): selects between tensors; only Where\(Greater\(x, c\), x, Softplus\(x\)\) with c >= 17",
        ),
        (
            [N("Pad", ["x", "p"], ["xp"], name="pad1"), N("MaxPool", ["xp"], ["y"], name="pool1", kernel_shape=[2])],
            [const("p", [0, 0, 1, 0, 0, 1], np.int64)],
            r"node 'pad1' \(Pad\): zero padding is supported only directly before a Conv; it feeds node 'pool1' \(MaxPool\)",
        ),
        (
            [N("Conv", ["x", "w"], ["c"]), N("Pad", ["c", "p"], ["cp"], name="pad1"), N("Conv", ["cp", "w5"], ["y"])],
            WB + [const("p", [0, 1, 0, 0, 1, 0], np.int64), const("w5", weights(rng, 2, 5, 3))],
            r"node 'pad1' \(Pad\): 'pads' \(0, 1, 0, 0, 1, 0\) pads an axis other than time",
        ),
        (
            [N("Conv", ["x", "w", "b"], ["c"]), N("Flatten", ["c"], ["f"]),
             N("Reshape", ["f", "shape"], ["y"], name="unflatten")],
            WB + [const("shape", [-1, 17, 5], np.int64)],
            r"node 'unflatten' \(Reshape\): reshapes a tensor of per-sample shape \(85,\) to \(17, 5\); "
            r"only flattening and adding or removing size-1 axes are supported",
        ),
        (
            [N("Conv", ["x", "w"], ["c"]), N("Mul", ["c", "k"], ["y"], name="ramp")],
            WB + [const("k", np.linspace(0, 1, 17, dtype=np.float32))],
            r"node 'ramp' \(Mul\): constant of shape \(17,\) varies along the time axis; only per-channel constants are supported",
        ),
        (
            [N("Conv", ["x", "w4"], ["y"], name="c1")],
            [const("w4", weights(rng, 5, 4, 3))],
            r"node 'c1' \(Conv\): weight shape \(5, 4, 3\) with group 1 does not fit an input of 3 channels",
        ),
        (
            [N("BatchNormalization", ["x", "s", "s", "s", "s"], ["y"], name="bn", training_mode=1)],
            [const("s", [1.0, 1.0, 1.0])],
            r"node 'bn' \(BatchNormalization\): attribute 'training_mode': expected 0, got 1",
        ),
        (
            [N("Softmax", ["x"], ["y"], name="sm", axis=0)],
            [],
            r"node 'sm' \(Softmax\): normalises over the batch axis",
        ),
        (
            [N("Conv", ["x", "w"], ["c"]), N("ReduceMean", ["c", "ax"], ["y"], name="rm", keepdims=0)],
            WB + [const("ax", [1], np.int64)],
            r"node 'rm' \(ReduceMean\): reduces over the channel axis",
        ),
        (
            [N("Transpose", ["x"], ["y"], name="tr", perm=[1, 0, 2])],
            [],
            r"node 'tr' \(Transpose\): attribute 'perm' \(1, 0, 2\) moves the batch axis",
        ),
        (
            [N("Conv", ["x", "w"], ["c"]), N("Reshape", ["c", "shape"], ["y"], name="rs")],
            WB + [const("shape", [4, -1], np.int64)],
            r"node 'rs' \(Reshape\): target shape \(4, -1\) fixes the batch size",
        ),
        (
            [N("Conv", ["x", "w"], ["y"], name="c1")],
            [const("w", weights(rng, 5, 3, 4).astype(np.float16), np.float16)],
            r"tensor 'w': tensor type FLOAT16 is not supported",
        ),
    ],
    ids=[
        "storage_order", "pad_mode", "auto_pad", "transA", "mul_shapes", "where_not_softplus", "pad_before_pool",
        "pad_channels", "unflatten", "const_along_time", "conv_channels", "bn_training",
        "softmax_batch", "reduce_channels", "transpose_batch", "reshape_fixed_batch", "float16",
    ],
)
def test_unsupported_attribute_or_structure(nodes: list, inits: list, pattern: str) -> None:
    refused(build(nodes, inits, opset=18 if any(n.op_type == "ReduceMean" for n in nodes) else 17), pattern)


def test_reduce_mean_axes_attribute_at_opset17() -> None:
    data = build([N("Conv", ["x", "w"], ["c"]), N("ReduceMean", ["c"], ["y"], name="rm", axes=[1], keepdims=0)], WB, opset=17)
    refused(data, r"node 'rm' \(ReduceMean\): reduces over the channel axis")


def test_input_type_and_count() -> None:
    refused(
        build([N("Relu", ["x"], ["y"])], [], input_type=TensorProto.DOUBLE),
        r"input 'x' has tensor type DOUBLE; TSViz reads FLOAT \(float32\) inputs",
    )
    second = helper.make_tensor_value_info("x2", TensorProto.FLOAT, ["N", 3, 20])
    refused(
        build([N("Add", ["x", "x2"], ["y"])], [], extra_inputs=[second]),
        r"the model has 2 inputs \('x', 'x2'\); TSViz explains models with exactly one input",
    )
    refused(
        build([N("Relu", ["x"], ["y"])], [], input_shape=("N", 3, 4, 20)),
        r"input 'x' has rank 4; expected \(N, C, T\), \(N, T, C\) or \(N, T\)",
    )


def test_two_outputs_and_constant_output() -> None:
    refused(
        build([N("Relu", ["x"], ["y"]), N("Tanh", ["x"], ["z"])], [], outputs=("y", "z")),
        "the model has 2 outputs; TSViz explains models with exactly one output",
    )
    refused(build([N("Identity", ["b"], ["y"])], WB), "output 'y' does not depend on the input")


def test_unsupported_opset() -> None:
    refused(build([N("Relu", ["x"], ["y"])], [], opset=5), r"opset 5 is not supported \(supported: 7 to 23\)")


def test_output_must_be_one_value_per_unit() -> None:
    refused(
        build([N("Conv", ["x", "w"], ["y"])], WB),
        r"output 'y' has 17 positions per channel; TSViz explains outputs of shape \(N, K\)",
    )


def test_wrong_declared_length_for_dense() -> None:
    """The dense layer fixes the length; a declared input length that disagrees is refused."""
    data = build(
        [N("Conv", ["x", "w", "b"], ["c"]), N("Flatten", ["c"], ["f"]), N("Gemm", ["f", "gw"], ["y"], name="fc")],
        WB + [const("gw", weights(rng, 80, 2))],
    )
    refused(data, r"node 'fc' \(Gemm\): expects 80 input features, got 85 \(at the model's declared input length 20\)")


def _model_with_external_data(folder: Path, location: str) -> Path:
    model = onnx.load(model_path("paper_net_op17"))
    onnx.save_model(model, folder / "m.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=0)
    return folder / "m.onnx"


def test_external_data_inside_the_folder(tmp_path: Path) -> None:
    path = _model_with_external_data(tmp_path, "weights.bin")
    x = real_windows((2, 50), "NCT", 3)
    np.testing.assert_allclose(tsv.load(path).predict(x), tsv.load(model_path("paper_net_op17")).predict(x))
    with pytest.raises(tsv.ModelError, match="stored in an external file \\('weights.bin'\\), which a model given as bytes cannot reach"):
        tsv.load(path.read_bytes())


def test_external_data_outside_the_folder_is_refused(tmp_path: Path) -> None:
    inner = tmp_path / "models"
    inner.mkdir()
    path = _model_with_external_data(inner, "weights.bin")
    os.replace(inner / "weights.bin", tmp_path / "weights.bin")
    model = onnx.load(path, load_external_data=False)
    for t in model.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "../weights.bin"
    onnx.save_model(model, path)
    with pytest.raises(tsv.ModelError, match=r"external data location '\.\./weights\.bin' contains '\.\.'; it must lie inside the model's folder"):
        tsv.load(path)


def test_external_data_missing_or_short(tmp_path: Path) -> None:
    path = _model_with_external_data(tmp_path, "weights.bin")
    data = (tmp_path / "weights.bin").read_bytes()
    (tmp_path / "weights.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(tsv.ModelError, match="external data range runs past the end of 'weights.bin'"):
        tsv.load(path)
    (tmp_path / "weights.bin").unlink()
    with pytest.raises(tsv.ModelError, match="cannot open external data file 'weights.bin'"):
        tsv.load(path)


def test_tensor_with_wrong_element_count() -> None:
    bad = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[5, 3, 4], raw_data=np.zeros(59, np.float32).tobytes())
    refused(build([N("Conv", ["x", "w"], ["y"])], [bad]), r"tensor 'w': raw data of 236 bytes does not fit shape \(5, 3, 4\)")


def test_cli_reports_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tsviz_native.cli import main

    f = tmp_path / "bad.onnx"
    f.write_bytes(b"\x00\x01garbage")
    assert main(["summary", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tsviz: error: bad.onnx: ") and err.count("\n") == 1


@pytest.mark.parametrize("kind", ["logic_error", "out_of_range"])
def test_a_cpp_logic_error_becomes_a_tsviz_error(kind: str) -> None:
    from tsviz_native import _native

    with pytest.raises(tsv.TSVizError, match="internal error in the engine: .*please report it"):
        _native._throw_for_test(kind)
    with pytest.raises(tsv.ArgumentError, match="bad argument"):
        _native._throw_for_test("argument")
