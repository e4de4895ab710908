"""The structured description of a model's graph (``Model.nodes``): its nodes, ops, shapes and
filter layers, checked against the ONNX files themselves (their nodes, and every tensor's shape
as ONNX Runtime computes it)
and against what the summary, the viewer and the explanation show of the same model."""

from __future__ import annotations

import numpy as np
import pytest

import tsviz_native as tsv
from tsviz_native import _native
from conftest import MANIFEST, model_path, real_windows

onnx = pytest.importorskip("onnx")

FIXED = [name for name, info in MANIFEST.items() if not info["free_length"]]


def _onnx_shapes(name: str) -> dict[str, list[tuple[int, int]]]:
    """Per-sample (channels, length) of every tensor of the ONNX graph, as ONNX Runtime computes
    it on a real window, read as the engine keeps it, channels-first: (N, C, L); (N, K) as
    (K, 1). A tensor of a channels-last model may be (N, L, C) (Keras) or (N, C, L) (after a
    Transpose), so both readings are given for those."""
    ort = pytest.importorskip("onnxruntime")
    info = MANIFEST[name]
    proto = onnx.load(str(model_path(name)))
    shown = {o.name for o in proto.graph.output}
    for node in proto.graph.node:
        for out in node.output:
            if out not in shown:
                proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(out))
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = real_windows(tuple(info["input_shape"]), info["layout"], 1)
    values = sess.run(None, {sess.get_inputs()[0].name: x})
    values = [np.asarray(v) for v in values]
    last = info["layout"] == "NTC"
    out = {info["input_name"]: [tuple(x.shape[1:]) if not last else tuple(x.shape[:0:-1])]}
    for o, v in zip(sess.get_outputs(), values):
        if v.ndim == 4 and 1 in v.shape[1:]:  # a 1-D op written as 2-D (tf2onnx, dynamo's reductions)
            axis = 1 + v.shape[1:].index(1)
            v = v.reshape(v.shape[:axis] + v.shape[axis + 1:])
        if v.ndim == 3:
            out[o.name] = [(v.shape[1], v.shape[2])] + ([(v.shape[2], v.shape[1])] if last else [])
        elif v.ndim == 2:
            out[o.name] = [(v.shape[1], 1)]
    return out


@pytest.mark.parametrize("name", FIXED)
def test_nodes_match_the_onnx_graph(name: str) -> None:
    model = tsv.load(model_path(name))
    proto = onnx.load(str(model_path(name)))
    onnx_ops = {n.name: n.op_type for n in proto.graph.node}
    nodes = model.nodes
    first = nodes[0]
    assert (first.op, first.name, first.inputs, first.layer) == ("Input", model.input_name, (), -1)
    assert nodes[-1].name == model.output_name or model.output_name in {n.name for n in nodes}
    for i, node in enumerate(nodes[1:], start=1):
        assert node.inputs and all(0 <= j < i for j in node.inputs), (name, node)  # topological
        assert node.op in tsv._native.registered_ops()
        # every node names the ONNX node it came from, with that node's op type
        assert onnx_ops.get(node.onnx_node) == node.onnx_op, (name, node)
    shapes = _onnx_shapes(name)
    for node in nodes:
        assert node.shape in shapes[node.name], (name, node.name)
    assert model.graph_ops == tuple(n.op for n in nodes[1:])


# The engine ops that make a^l (docs/definitions.md), by the registry's own fact; the classic
# five and the fused ones (GELU, SiLU) must be among them.
_ACTIVATIONS = set(_native.activation_ops())
assert {"Relu", "LeakyRelu", "Elu", "Sigmoid", "Tanh", "Gelu", "Silu", "Mish"} <= _ACTIVATIONS


@pytest.mark.parametrize("name", FIXED)
def test_filter_layers_are_the_conv_and_dense_nodes(name: str) -> None:
    model = tsv.load(model_path(name))
    filters = [n for n in model.nodes if n.is_filter_layer]
    assert [n.op for n in filters] == [{"conv": "Conv", "dense": "Dense"}[l.op] for l in model.layers]
    assert [n.name for n in filters] == [l.name for l in model.layers]
    assert [n.layer for n in filters] == list(range(len(model.layers)))
    assert not [n for n in model.nodes if n.op in ("Conv", "Dense") and not n.is_filter_layer]
    for node, layer in zip(filters, model.layers):
        assert node.shape == (layer.n_filters, layer.out_length)
        assert (node.kernel, node.stride, node.dilation, node.group) == (
            layer.kernel, layer.stride, layer.dilation, layer.group)
    # a^l: the explanation's tensors are the layer table's
    x = real_windows(tuple(MANIFEST[name]["input_shape"]), model.layout, 1)
    ex = model.explain(x)
    assert [ex.activation_name(l.name) for l in model.layers] == [l.activation for l in model.layers]
    by_name = {n.name: i for i, n in enumerate(model.nodes)}
    for layer in model.layers:
        a = model.nodes[by_name[layer.activation]]
        assert layer.activation == layer.name or (
            a.inputs == (by_name[layer.name],) and a.op in _ACTIVATIONS)
        z, a_l = ex.preactivations[layer.name], ex.activations[layer.name]
        if layer.activation == layer.name:
            np.testing.assert_array_equal(a_l, z)
        elif a.op == "Relu":
            np.testing.assert_array_equal(a_l, np.maximum(z, 0))


def test_paper_net_graph_by_hand() -> None:
    """The paper's forecaster as its exporting script builds it (tests/models/make_models.py)."""
    model = tsv.load(model_path("paper_net_op17"))
    got = [(n.op, n.shape, n.kernel, n.stride, n.layer) for n in model.nodes]
    assert got == [
        ("Input", (2, 50), 1, 1, -1),
        ("Conv", (16, 50), 5, 1, 0), ("Relu", (16, 50), 1, 1, -1), ("MaxPool", (16, 25), 2, 2, -1),
        ("Conv", (32, 25), 5, 1, 1), ("Relu", (32, 25), 1, 1, -1), ("MaxPool", (32, 12), 2, 2, -1),
        ("Conv", (32, 12), 3, 1, 2), ("Relu", (32, 12), 1, 1, -1),
        ("Flatten", (384, 1), 1, 1, -1), ("Dense", (1, 1), 1, 1, 3),
    ]
    assert [n.inputs for n in model.nodes[1:]] == [(i,) for i in range(10)]


def test_residual_adds_read_two_nodes() -> None:
    model = tsv.load(model_path("resnet_op17"))
    adds = [n for n in model.nodes if n.op == "Add"]
    assert len(adds) == 2 and all(len(a.inputs) == 2 for a in adds)
    names = [n.name for n in model.nodes]
    # block 2's shortcut: a 1x1 convolution of the block's input, added to the main path
    short = model.nodes[names.index("/block2/short/Conv_output_0")]
    assert short.kernel == 1 and short.is_filter_layer and names.index(short.name) in adds[1].inputs
    # a filter layer whose only consumer is an Add has no activation: a^l = z^l
    c2 = model.layer("/block1/c2/Conv_output_0")
    assert c2.activation == c2.name


def test_free_length_leaves_the_length_open() -> None:
    model = tsv.load(model_path("fcn_op17"))
    assert model.nodes[0].shape == (1, -1)
    assert [n.shape[0] for n in model.nodes if n.is_filter_layer] == [128, 256, 128, 2]
    assert all(n.shape[1] == -1 for n in model.nodes)


@pytest.mark.parametrize("name", ["paper_net_op17", "keras_paper_net_op17", "resnet_op17", "fcn_op17"])
def test_summary_rows_are_the_nodes(name: str) -> None:
    """Every row of the summary's table is one node, as the description has it."""
    model = tsv.load(model_path(name))
    text = model.summary()
    rows = [l.split() for l in text.splitlines() if l[:6].strip().isdigit()]
    assert len(rows) == len(model.nodes) - 1
    for row, node in zip(rows, model.nodes[1:]):
        assert row[1] == node.op
        length = "?" if node.shape[1] < 0 else str(node.shape[1])
        assert f"({node.shape[0]}, {length})" in " ".join(row)
        assert ("[filter layer]" in " ".join(row)) == node.is_filter_layer


def test_viewer_blocks_come_from_the_nodes() -> None:
    """Level 1 draws one box per convolution, pooling and dense node of the description, also
    for tensor names the summary's table shortens (Keras)."""
    from tsviz_native.viewer.frame import ModelInfo

    model = tsv.load(model_path("keras_paper_net_op17"))
    info = ModelInfo.from_model(model)
    want = [n for n in model.nodes if n.op in ("Conv", "Dense") or n.op.endswith("Pool")]
    assert [(b.op, b.tensor) for b in info.blocks] == [(n.op, n.name) for n in want]
    assert info.overview[0].startswith("model keras_paper_net_op17.onnx")


def test_one_lookup_of_a_layer_for_every_front_end() -> None:
    """Model.layer, the explanation's methods, the viewer's state and the engine itself name
    layers by one lookup (tsviz::find_layer), with one message."""
    from tsviz_native.viewer.state import ViewerState

    model = tsv.load(model_path("paper_net_op17"))
    second = model.layers[1]
    assert second.label == "conv 2 · k=5 · 32 filters"  # the engine's label
    ex = model.explain(real_windows((2, 50), "NCT", 1))
    for key in (1, "1", -3, "001", second.name, second.label, "conv 2", " CONV   2 ", second):
        assert model.layer(key) is second
        assert ex.layer(key) is second
    np.testing.assert_array_equal(ex.saliency("conv 2"), ex.saliency(second.name))
    messages = set()
    for lookup in (model.layer, ex.layer, lambda k: ex.keep(k, 50), lambda k: ex.trace(k, 0, 0),
                   lambda k: ex._native.importance(k)):  # the last one: the engine, not Python
        with pytest.raises(tsv.ArgumentError) as info:
            lookup("conv 9")
        messages.add(str(info.value))
    assert len(messages) == 1
    (message,) = messages
    assert message.startswith("no filter layer named 'conv 9'; give a number 0..3, a label or a tensor name: "
                              f"0 = 'conv 1 · k=5 · 16 filters' ('{model.layers[0].name}'); ")
    with pytest.raises(tsv.ArgumentError, match="no filter layer with index 4; give a number 0..3"):
        model.layer(4)
    state = ViewerState(n_samples=2, layers=tuple(l.name for l in model.layers))
    state.set(layer=2)  # an index names the layer, as everywhere
    assert state.layer == model.layers[2].name
    with pytest.raises(tsv.ArgumentError, match="no filter layer named 'conv 9'; give a number 0..3"):
        state.set(layer="conv 9")
    assert state.layer == model.layers[2].name
