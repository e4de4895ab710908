"""Pruning writes a valid, smaller ONNX model that ONNX Runtime runs, and removing a filter is
exactly removing its contribution: the pruned model equals the original with that filter's
weights and bias set to zero, run by ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import tsviz_native as tsv
from conftest import MANIFEST, model_path, ort_run, real_windows
from tsviz_native.analysis.pruning import choose_filters, prune

CHAINS = ["paper_net_op17", "paper_net_dynamo", "keras_paper_net_op17", "fcn_op13", "keras_fcn_op17",
          "channels_last_op17", "keras_strided_op17"]


def data(name: str, n: int = 48, seed: int = 0) -> np.ndarray:
    info = MANIFEST[name]
    return real_windows(tuple(info["input_shape"]), info["layout"], n, seed=seed)


@pytest.mark.parametrize("name", CHAINS)
def test_pruned_model_is_valid_smaller_and_runs_in_onnxruntime(name: str) -> None:
    model = tsv.load(model_path(name))
    X = data(name)
    stats = tsv.analyze_dataset(model, X, progress=False)
    result = prune(model, stats, fraction=0.3)
    onnx.checker.check_model(onnx.load_from_string(result.onnx_bytes), full_check=True)
    pruned = result.model
    for before, after in zip(model.layers, pruned.layers):
        removed = len(result.removed.get(before.name, ()))
        assert after.n_filters == before.n_filters - removed
        if before is not model.layers[-1]:
            assert removed == int(np.floor(0.3 * before.n_filters + 0.5))
    assert result.n_parameters_after < result.n_parameters_before
    np.testing.assert_allclose(pruned.predict(X), ort_run(result.onnx_bytes, X).reshape(len(X), -1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["paper_net_op17", "keras_paper_net_op17", "channels_last_op17"])
def test_pruning_equals_zeroing_the_filters(name: str) -> None:
    """Oracle: the original model with the removed filters' weights and bias zeroed (their
    ReLU outputs are then exactly 0), run by ONNX Runtime."""
    model = tsv.load(model_path(name))
    X = data(name, seed=1)
    result = prune(model, tsv.analyze_dataset(model, X, progress=False), fraction=0.4)
    proto = onnx.load(model_path(name))
    inits = {t.name: t for t in proto.graph.initializer}
    by_node = {(n.name or n.output[0]): n for n in proto.graph.node}
    for layer in model.layers:
        remove = list(result.removed.get(layer.name, ()))
        if not remove:
            continue
        node = by_node[layer.onnx_node]
        w = numpy_helper.to_array(inits[node.input[1]]).copy()
        if node.op_type == "Conv":
            w[remove] = 0
        else:
            w[:, remove] = 0
        inits[node.input[1]].CopyFrom(numpy_helper.from_array(w, node.input[1]))
        # The bias: the Conv's third input, or the constant of the Add that follows (tf2onnx).
        bias_names = [node.input[2]] if len(node.input) > 2 else [
            i for n in proto.graph.node if n.op_type == "Add" and _feeds(proto, node, n) for i in n.input if i in inits]
        for b in bias_names:
            arr = numpy_helper.to_array(inits[b]).copy()
            arr.reshape(-1)[remove] = 0
            inits[b].CopyFrom(numpy_helper.from_array(arr, b))
    zeroed = proto.SerializeToString()
    np.testing.assert_allclose(result.model.predict(X), ort_run(zeroed, X).reshape(len(X), -1), rtol=1e-5, atol=1e-6)


def _feeds(proto: onnx.ModelProto, conv: onnx.NodeProto, add: onnx.NodeProto) -> bool:
    """True when `add` is the bias Add right after `conv` (through a Squeeze)."""
    producers = {o: n for n in proto.graph.node for o in n.output}
    for name in add.input:
        node = producers.get(name)
        while node is not None and node is not conv and node.op_type in ("Squeeze",):
            node = producers.get(node.input[0])
        if node is conv:
            return True
    return False


def test_rules_choose_the_least_important() -> None:
    scores = np.array([0.5, 0.1, 0.9, 0.1, 0.0, 0.7])
    assert choose_filters(scores, fraction=0.5).tolist() == [1, 3, 4]
    assert choose_filters(scores, keep_top=2).tolist() == [0, 1, 3, 4]
    assert choose_filters(scores, percentile=50).tolist() == [1, 3, 4]
    assert choose_filters(scores, fraction=0).tolist() == []
    assert len(choose_filters(scores, percentile=100)) == 5  # one filter always stays
    with pytest.raises(tsv.ArgumentError, match="exactly one of percentile, fraction or keep_top"):
        choose_filters(scores, fraction=0.2, keep_top=3)
    with pytest.raises(tsv.ArgumentError, match=r"fraction must be in \[0, 1\)"):
        choose_filters(scores, fraction=1.0)


def test_per_cluster_keeps_the_most_important_of_each_cluster() -> None:
    model = tsv.load(model_path("paper_net_op17"))
    X = data("paper_net_op17")
    stats = tsv.analyze_dataset(model, X, progress=False)
    first = model.layers[0].name
    labels = np.arange(16) % 4
    result = prune(model, stats, per_cluster=True, clusters={first: labels}, layers=[first])
    kept = sorted(set(range(16)) - set(result.removed[first]))
    mean = stats.layers[first].mean
    assert kept == sorted(int(np.flatnonzero(labels == c)[np.argmax(mean[labels == c])]) for c in range(4))
    assert result.model.layers[0].n_filters == 4


def test_residual_and_grouped_layers_are_refused_or_skipped_with_a_reason() -> None:
    resnet = tsv.load(model_path("resnet_op17"))
    X = data("resnet_op17")
    stats = tsv.analyze_dataset(resnet, X, progress=False)
    stem = resnet.layers[0].name
    with pytest.raises(tsv.ArgumentError, match=rf"cannot prune layer '{stem}': its channels reach node .*\(Add\), "
                                                 "which combines it with another tensor \\(a residual connection\\)"):
        prune(resnet, stats, fraction=0.25, layers=[stem])
    result = prune(resnet, stats, fraction=0.25)
    assert stem in result.skipped and "residual" in result.skipped[stem]
    assert result.removed  # the first convolution of each block is free to prune
    np.testing.assert_allclose(result.model.predict(X), ort_run(result.onnx_bytes, X).reshape(len(X), -1), rtol=1e-5, atol=1e-5)
    zoo = tsv.load(model_path("ops_zoo_op17"))
    zstats = tsv.analyze_dataset(zoo, data("ops_zoo_op17"), progress=False)
    dw = next(l.name for l in zoo.layers if l.group > 1)
    with pytest.raises(tsv.ArgumentError, match="is a grouped convolution"):
        prune(zoo, zstats, fraction=0.25, layers=[dw])


def test_output_layer_cannot_be_pruned() -> None:
    model = tsv.load(model_path("fcn_op17"))
    stats = tsv.analyze_dataset(model, real_windows((1, 150), "NCT", 8), progress=False)
    with pytest.raises(tsv.ArgumentError, match="makes the model's output"):
        prune(model, stats, fraction=0.5, layers=[model.layers[-1].name])
    with pytest.raises(tsv.ArgumentError, match="statistics"):
        prune(model, None, fraction=0.5)


def test_parameter_counts_are_the_models_and_print_shows_a_summary() -> None:
    model = tsv.load(model_path("keras_fcn_op17"))  # BatchNorm folded: counted once, as the engine runs it
    stats = tsv.analyze_dataset(model, data("keras_fcn_op17", n=8), progress=False)
    result = prune(model, stats, fraction=0.3, layers=["conv 1"])
    assert result.n_parameters_before == model.n_parameters == 263938
    assert result.n_parameters_after == result.model.n_parameters < 263938
    text = str(result)
    assert text.startswith(f"pruned model: 263938 -> {result.n_parameters_after} parameters")
    assert "conv 1 · k=8 · 128 filters" in text and "removed 38 filters" in text
    assert "onnx_bytes" not in repr(result) and len(repr(result)) < 2000


def test_shapes_recorded_by_the_exporter_do_not_hide_a_fixed_length() -> None:
    """tf2onnx records tensor shapes with placeholders (unk__N) where it did not know a
    dimension; pruning infers the shapes itself from the input, so a fixed-length Keras model
    with such records still prunes through its flatten."""
    proto = onnx.load(model_path("keras_paper_net_op17"))
    inferred = onnx.shape_inference.infer_shapes(proto)
    for vi in inferred.graph.value_info:
        for i, d in enumerate(vi.type.tensor_type.shape.dim):
            if i > 0 and d.HasField("dim_value"):
                d.dim_param = f"unk__{i}"
    proto.graph.value_info.extend(inferred.graph.value_info)
    model = tsv.load(proto.SerializeToString())
    result = prune(model, scores={l.name: np.arange(l.n_filters, dtype=float) for l in model.layers}, fraction=0.25)
    assert result.skipped == {} and len(result.removed) == 3
    X = data("keras_paper_net_op17")
    np.testing.assert_allclose(result.model.predict(X), ort_run(result.onnx_bytes, X).reshape(len(X), -1), rtol=1e-5, atol=1e-5)


def test_a_flatten_of_a_free_length_is_refused_for_the_true_reason() -> None:
    """The reason names what is not known: here the input length is free, so the flatten's
    columns per channel are not known; a fixed length prunes through the same graph."""
    from onnx import helper

    from onnx_builder import build, const, weights

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w"], ["z"], pads=[1, 1]), helper.make_node("Relu", ["z"], ["a"]),
             helper.make_node("Flatten", ["a"], ["f"]), helper.make_node("Gemm", ["f", "gw"], ["y"], transB=1)]
    inits = [const("w", weights(rng, 4, 3, 3)), const("gw", weights(rng, 2, 80))]
    scores = {"z": np.arange(4, dtype=float)}

    def build_typed(input_shape: tuple) -> bytes:  # the output with its shape, as exporters write it
        proto = onnx.load_from_string(build(nodes, inits, input_shape=input_shape))
        del proto.graph.output[:]
        proto.graph.output.append(helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 2]))
        return proto.SerializeToString()

    free = tsv.load(build_typed(("N", 3, "T")))
    result = prune(free, scores=scores, fraction=0.5)
    assert result.skipped["z"] == ("its channels reach node 'f' (Flatten), a Flatten of tensor 'a' of shape (?, 4, ?), "
                                   "whose axis 2 is not fixed (the model's input length is free), so the columns of "
                                   "each channel after it are not known")
    fixed = tsv.load(build_typed(("N", 3, 20)))
    assert prune(fixed, scores=scores, fraction=0.5).removed == {"z": (0, 1)}


def test_pruning_before_a_prelu_prunes_its_slope_and_equals_zeroing_the_filters() -> None:
    """The PReLU's per-channel slope loses the removed channels; oracle: the original with the
    removed filters' weights and bias zeroed (PReLU(0) = 0), run by ONNX Runtime."""
    name = "activations_zoo_op17"
    model = tsv.load(model_path(name))
    X = data(name, seed=2)
    layer = next(l for l in model.layers if l.onnx_node == "/c_prelu/Conv")
    result = prune(model, tsv.analyze_dataset(model, X, progress=False), fraction=0.5, layers=[layer.name])
    remove = list(result.removed[layer.name])
    assert len(remove) == 2 and result.model.layer(layer.name).n_filters == 2
    proto = onnx.load(model_path(name))
    inits = {t.name: t for t in proto.graph.initializer}
    node = next(n for n in proto.graph.node if n.name == "/c_prelu/Conv")
    for i in (1, 2):
        arr = numpy_helper.to_array(inits[node.input[i]]).copy()
        arr[remove] = 0
        inits[node.input[i]].CopyFrom(numpy_helper.from_array(arr, node.input[i]))
    np.testing.assert_allclose(result.model.predict(X), ort_run(proto.SerializeToString(), X).reshape(len(X), -1),
                               rtol=1e-5, atol=1e-6)

