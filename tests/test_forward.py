"""Forward passes of every exported test model equal ONNX Runtime's, on real data."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import tsviz_native as tsv
from conftest import MANIFEST, model_path, ort_run, outputs_at_thread_counts, real_windows
from onnx_builder import build, const, weights

TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch", [1, 64])
@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_forward_matches_onnxruntime(name: str, batch: int) -> None:
    info = MANIFEST[name]
    model = tsv.load(model_path(name))
    x = real_windows(tuple(info["input_shape"]), info["layout"], batch, seed=batch)
    y = model.predict(x)
    expected = ort_run(model_path(name), x).reshape(batch, -1)
    assert y.shape == (batch, info["n_outputs"])
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, expected, **TOL)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_a_sample_s_output_does_not_depend_on_the_batch(name: str) -> None:
    """predict and explain cut a batch into chunks their own way; elementwise ops run over a
    chunk as one array, so a value falls in the vectorised body or the scalar tail depending on
    its neighbours. Each sample must still get the same arithmetic: alone, in halves, in the
    whole batch and in explain, its output is bit-identical."""
    info = MANIFEST[name]
    model = tsv.load(model_path(name))
    x = real_windows(tuple(info["input_shape"]), info["layout"], 13, seed=3)
    whole = model.predict(x)
    np.testing.assert_array_equal(np.concatenate([model.predict(x[i : i + 1]) for i in range(13)]), whole)
    np.testing.assert_array_equal(np.concatenate([model.predict(x[:5]), model.predict(x[5:])]), whole)
    np.testing.assert_array_equal(model.explain(x).output, whole)


def test_a_wide_dense_layer_s_output_does_not_depend_on_the_batch() -> None:
    """Dense layers wider than a few units and features go through the matrix product with one
    column per sample; its kernel must not change with the number of samples in a chunk (it
    did: a matrix-vector loop under 8 columns, the narrow kernel above, with other roundings)."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "cw", "cb"], ["c"], kernel_shape=[3], pads=[1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("Gemm", ["f", "gw", "gb"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["hr"]),
             helper.make_node("Gemm", ["hr", "ow", "ob"], ["y"], transB=1)]
    inits = [const("cw", weights(rng, 16, 3, 3)), const("cb", weights(rng, 16)), const("gw", weights(rng, 24, 320)),
             const("gb", weights(rng, 24)), const("ow", weights(rng, 10, 24)), const("ob", weights(rng, 10))]
    model = tsv.load(build(nodes, inits, input_shape=("N", 3, 20)))
    x = rng.standard_normal((13, 3, 20)).astype(np.float32)
    whole = model.predict(x)
    np.testing.assert_array_equal(np.concatenate([model.predict(x[i : i + 1]) for i in range(13)]), whole)
    np.testing.assert_array_equal(np.concatenate([model.predict(x[:5]), model.predict(x[5:])]), whole)
    np.testing.assert_array_equal(model.explain(x).output, whole)


@pytest.mark.parametrize("name", [n for n in sorted(MANIFEST) if MANIFEST[n]["free_length"]])
@pytest.mark.parametrize("length", [97, 300])
def test_free_length_matches_onnxruntime(name: str, length: int) -> None:
    info = MANIFEST[name]
    shape = (info["input_shape"][0], length)
    x = real_windows(shape, "NCT", 5)
    y = tsv.load(model_path(name)).predict(x)
    np.testing.assert_allclose(y, ort_run(model_path(name), x), **TOL)


def test_layout_is_detected(manifest: dict) -> None:
    for name, info in manifest.items():
        model = tsv.load(model_path(name))
        assert model.layout == info["layout"], name
        assert model.sample_shape[0 if info["layout"] == "NCT" else 1] == (
            info["input_shape"][0 if info["layout"] == "NCT" else 1]
        )


def test_paper_net_layers() -> None:
    model = tsv.load(model_path("paper_net_op17"))
    assert [l.op for l in model.layers] == ["conv", "conv", "conv", "dense"]
    assert [l.n_filters for l in model.layers] == [16, 32, 32, 1]
    assert [l.out_length for l in model.layers] == [50, 25, 12, 1]
    assert [l.kernel for l in model.layers] == [5, 5, 3, 1]
    assert [l.in_channels for l in model.layers] == [2, 16, 32, 384]
    # Layers are named by their ONNX output tensors.
    assert model.layers[0].name == "/conv1/Conv_output_0" or model.layers[0].name.endswith("Conv_output_0")
    text = model.summary()
    assert "3 convolution, 2 pooling, 1 dense" in text
    assert "(N, 2, 50)" in text


@pytest.mark.parametrize(
    "torch_name, keras_name",
    [("paper_net_op17", "keras_paper_net_op17"), ("fcn_op17", "keras_fcn_op17")],
)
def test_keras_model_lowers_like_its_pytorch_twin(torch_name: str, keras_name: str) -> None:
    """A Keras Conv1D arrives as Unsqueeze/Transpose/2-D Conv/Squeeze/Add; it must become the
    same 1-D layers as the PyTorch export."""
    t = tsv.load(model_path(torch_name))
    k = tsv.load(model_path(keras_name))
    fields = ("op", "n_filters", "kernel", "stride", "dilation", "in_channels")
    assert [tuple(getattr(l, f) for f in fields) for l in k.layers] == [
        tuple(getattr(l, f) for f in fields) for l in t.layers
    ]
    if t.layers[0].out_length > 0 and k.layers[0].out_length > 0:
        assert [l.out_length for l in k.layers] == [l.out_length for l in t.layers]
    assert k.layout == "NTC" and t.layout == "NCT"


def test_batch_norm_is_folded_and_named_by_its_output() -> None:
    kept = tsv.load(model_path("fcn_op13"))  # real BatchNormalization nodes
    folded = tsv.load(model_path("fcn_op17"))  # folded by the exporter
    assert len(kept.layers) == len(folded.layers) == 4
    assert all("BatchNormalization" in l.name for l in kept.layers[:3])
    assert [l.onnx_op for l in kept.layers[:3]] == ["Conv"] * 3
    x = real_windows((1, 150), "NCT", 8)
    np.testing.assert_allclose(kept.predict(x), folded.predict(x), rtol=1e-5, atol=1e-5)


def test_keras_affine_batch_norm_folds_into_conv() -> None:
    """tf2onnx writes a Keras BatchNormalization as Mul and Add after the bias Add."""
    model = tsv.load(model_path("keras_fcn_op17"))
    assert [l.op for l in model.layers] == ["conv", "conv", "conv", "dense"]
    assert "Affine" not in model.summary()


def test_one_sample_and_float64() -> None:
    model = tsv.load(model_path("paper_net_op17"))
    x = real_windows((2, 50), "NCT", 3)
    batch = model.predict(x)
    one = model.predict(x[1].astype(np.float64))
    assert one.shape == (1, 1)
    np.testing.assert_allclose(one[0], batch[1], rtol=1e-6)


def test_load_from_bytes_equals_path() -> None:
    path = model_path("keras_strided_op17")
    x = real_windows((64, 3), "NTC", 4)
    np.testing.assert_array_equal(tsv.load(path.read_bytes()).predict(x), tsv.load(path).predict(x))


def test_noncontiguous_input() -> None:
    model = tsv.load(model_path("paper_net_op17"))
    x = real_windows((2, 100), "NCT", 4)[:, :, ::2]
    assert not x.flags.c_contiguous
    np.testing.assert_allclose(model.predict(x), ort_run(model_path("paper_net_op17"), np.ascontiguousarray(x)), **TOL)


def test_wrong_length_names_the_expected_shape() -> None:
    model = tsv.load(model_path("paper_net_op17"))
    with pytest.raises(tsv.ShapeError, match=r"input has per-sample shape \(2, 52\); the model expects \(2, 50\)"):
        model.predict(np.zeros((3, 2, 52), np.float32))


def test_wrong_channels_and_rank() -> None:
    model = tsv.load(model_path("paper_net_op17"))
    with pytest.raises(tsv.ShapeError, match=r"\(3, 50\); the model expects \(2, 50\)"):
        model.predict(np.zeros((1, 3, 50), np.float32))
    with pytest.raises(tsv.ShapeError, match=r"input has shape \(100,\); the model expects \(N, 2, 50\)"):
        model.predict(np.zeros(100, np.float32))
    keras = tsv.load(model_path("keras_paper_net_op17"))
    with pytest.raises(tsv.ShapeError, match=r"\(2, 50\); the model expects \(50, 2\)"):
        keras.predict(np.zeros((1, 2, 50), np.float32))


def test_too_short_for_a_free_length_model() -> None:
    model = tsv.load(model_path("fcn_op17"))
    with pytest.raises(tsv.ShapeError, match="the model expects"):
        model.predict(np.zeros((1, 1, 0), np.float32))
    np.testing.assert_allclose(
        model.predict(np.ones((1, 1, 3), np.float32)),
        ort_run(model_path("fcn_op17"), np.ones((1, 1, 3), np.float32)),
        **TOL,
    )


def test_bad_dtype_and_source() -> None:
    model = tsv.load(model_path("paper_net_op17"))
    with pytest.raises(tsv.ArgumentError, match="dtype complex128"):
        model.predict(np.zeros((1, 2, 50), np.complex128))
    with pytest.raises(tsv.ArgumentError, match="path or the bytes"):
        tsv.load(123)  # type: ignore[arg-type]
    assert issubclass(tsv.ModelError, ValueError)
    assert issubclass(tsv.ShapeError, ValueError)
    assert issubclass(tsv.ArgumentError, ValueError)


def test_layer_lookup() -> None:
    model = tsv.load(model_path("paper_net_op17"))
    assert model.layer(model.layers[1].name) is model.layers[1]
    with pytest.raises(tsv.ArgumentError, match="no filter layer named 'nope'"):
        model.layer("nope")


def test_empty_batch() -> None:
    model = tsv.load(model_path("paper_net_op17"))
    with pytest.raises(tsv.ArgumentError, match=r"the batch is empty \(0 samples\)"):
        model.predict(np.zeros((0, 2, 50), np.float32))


# predict in a fresh process at a given TSVIZ_NUM_THREADS (read once, at the engine's first
# run): every model of the manifest on the batches saved in inputs.npz.
_PREDICT_AT_THREADS = """
import sys
import numpy as np
import tsviz_native as tsv
inputs = np.load(sys.argv[1])
out = {}
for key in inputs.files:
    name = key.split(":")[0]
    out[key] = tsv.load(sys.argv[2] + "/" + name).predict(inputs[key])
np.savez(sys.argv[3], **out)
"""


def test_predict_does_not_depend_on_the_thread_count(tmp_path) -> None:
    """Batches are cut into one chunk per thread and wide layers into one block of filters per
    thread; every sample's arithmetic stays the same, so the outputs are bit-identical."""
    inputs = {}
    for name in sorted(MANIFEST):
        info = MANIFEST[name]
        for batch in (1, 3, 256):
            x = real_windows(tuple(info["input_shape"]), info["layout"], batch, seed=batch)
            inputs[f"{MANIFEST[name]['file']}:{batch}"] = x
    results = outputs_at_thread_counts(tmp_path, _PREDICT_AT_THREADS, inputs)
    for key in inputs:
        for threads in (2, 3):
            np.testing.assert_array_equal(results[threads][key], results[1][key], err_msg=f"{key}, {threads} threads")


@pytest.mark.parametrize("channels", [2, 3, 4, 5])
def test_channels_last_input_is_transposed_exactly(channels: int) -> None:
    """(N, T, C) input, read as channels-first by the engine (its own loops for 2 to 4
    channels): a model that only transposes and flattens gives back x.transpose(0, 2, 1)."""
    from onnx import helper

    from onnx_builder import build

    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1]), helper.make_node("Flatten", ["t"], ["y"])]
    model = tsv.load(build(nodes, [], input_shape=("N", 29, channels), outputs=("y",)))
    assert model.layout == "NTC"
    x = np.random.default_rng(channels).standard_normal((7, 29, channels)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x), x.transpose(0, 2, 1).reshape(7, -1))
