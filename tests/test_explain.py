"""Explanations checked against independent oracles: central finite differences on the
engine's own forward for the backward of every op, hand-computed receptive windows and
argmax for the trace, numpy for min-max scaling and the percentile filter, and the SPEC's
conventions (ties in max-pooling, ReLU at exactly 0, the all-equal layer) pinned exactly."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

import tsviz_native as tsv
from conftest import MANIFEST, model_path, real_windows
from onnx_builder import build, const, weights
from test_ops import CASES

N = helper.make_node


def case_model(case: str) -> tuple[tsv.Model, np.ndarray]:
    spec = CASES[case]
    nodes, inits = spec[0], spec[1]
    shape = spec[2] if len(spec) > 2 else ("N", 3, 20)
    opset = spec[3] if len(spec) > 3 else 17
    flat = N("Flatten", ["y"], ["out"], name="flatten_out")
    model = tsv.load(build(nodes + [flat], inits, input_shape=shape, opset=opset, outputs=("out",)))
    if len(shape) == 2:
        x = real_windows((1, shape[1]), "NCT", 1, seed=11)[:, 0, :]
    else:
        x = real_windows((shape[1], shape[2]), "NCT", 1, seed=11)
    return model, x[0]


def finite_difference_saliency(model: tsv.Model, x: np.ndarray, target: int, eps: float = 3e-3) -> tuple[np.ndarray, np.ndarray, float]:
    """|d output[target] / d x| by central differences on the engine's forward, all
    perturbations in one batch, channels-first like the engine's saliency.

    Returns the estimate, a mask of the elements away from kinks (where the forward and the
    backward one-sided differences agree, so no ReLU or max-pool switched inside the step),
    and the absolute error float32 rounding of the output allows.
    """
    flat = x.reshape(-1).astype(np.float64)
    m = flat.size
    batch = np.repeat(flat[None], 3 * m, axis=0)
    idx = np.arange(m)
    batch[3 * idx, idx] += eps
    batch[3 * idx + 2, idx] -= eps
    y = model.predict(batch.reshape((3 * m, *x.shape)).astype(np.float32)).astype(np.float64)[:, target]
    up, mid, down = y[0::3], y[1::3], y[2::3]
    central = (up - down) / (2 * eps)
    # float32 rounding inside the forward, a few units in the last place of the output.
    noise = 16 * float(np.spacing(np.float32(np.abs(y).max()))) / eps
    smooth = np.abs((up - mid) - (mid - down)) / eps <= 0.05 * np.abs(central) + 2 * noise

    def channels_first(a: np.ndarray) -> np.ndarray:
        a = a.reshape(x.shape)
        return a.T if model.layout == "NTC" else a[None] if model.layout == "NT" else a

    return channels_first(np.abs(central)), channels_first(smooth), noise


def explain_output(model: tsv.Model, x: np.ndarray, target: int) -> tsv.Explanation:
    """Explains the model's output unit itself (the probability when it ends in Softmax)."""
    ends_in_softmax = model.graph_ops[-1] == "Softmax"
    return model.explain(x, target=target, output="prob" if ends_in_softmax else "logit")


def assert_saliency_close(model: tsv.Model, x: np.ndarray, ex: tsv.Explanation, sample: int = 0) -> None:
    target = int(ex.target[sample])
    fd, smooth, noise = finite_difference_saliency(model, x, target)
    got = ex.output_saliency[sample]
    assert smooth.mean() >= 0.7, "too many kinks near this input for a finite-difference check"
    scale = float(np.abs(fd[smooth]).max())
    np.testing.assert_allclose(got[smooth], fd[smooth], rtol=2e-2, atol=2e-3 * scale + 2 * noise)


@pytest.mark.parametrize("case", sorted(CASES))
def test_backward_of_every_op_matches_finite_differences(case: str) -> None:
    model, x = case_model(case)
    k = model.n_outputs
    for target in sorted({0, k // 2, k - 1}):
        ex = explain_output(model, x, target)
        assert ex.target.tolist() == [target]
        assert_saliency_close(model, x, ex)


def test_every_registered_op_has_a_gradient_check() -> None:
    """Walks the engine's op table: each op must occur in a finite-difference case."""
    covered: set[str] = set()
    for case in CASES:
        covered.update(case_model(case)[0].graph_ops)
    missing = set(tsv._native.registered_ops()) - covered
    assert not missing, f"ops without a gradient check: {sorted(missing)}"


@pytest.mark.parametrize(
    "name", ["paper_net_op17", "channels_last_op17", "ops_zoo_op17", "keras_strided_op17", "keras_paper_net_op17", "resnet_op17"]
)
def test_output_saliency_of_exported_models_matches_finite_differences(name: str) -> None:
    info = MANIFEST[name]
    model = tsv.load(model_path(name))
    x = real_windows(tuple(info["input_shape"]), info["layout"], 1, seed=5)[0]
    ex = model.explain(x)
    assert_saliency_close(model, x, ex)


def test_probability_saliency_matches_finite_differences() -> None:
    model = tsv.load(model_path("fcn_op17"))
    x = real_windows((1, 150), "NCT", 1, seed=2)[0]
    ex = model.explain(x, output="prob")
    np.testing.assert_allclose(ex.output.sum(axis=1), 1.0, rtol=1e-6)
    assert_saliency_close(model, x, ex)
    # The default explains the logit, which differs from the probability's gradient.
    assert not np.allclose(model.explain(x).output_saliency, ex.output_saliency)


def test_saliency_of_dense_output_layer_equals_output_saliency() -> None:
    """The saliency of a one-output regression head is |d a^L / d x|: the reverse pass gives the
    output saliency, and method="auto" hands out the explanation's own copy of it, but not for
    an explanation of the loss, whose output saliency is of loss_i."""
    model = tsv.load(model_path("paper_net_op17"))
    x = real_windows((2, 50), "NCT", 4)
    ex = model.explain(x)
    last = ex.layer_names[-1]
    # The sweep sums in another order than the explanation's pass (its first convolution's input
    # gradient comes straight from the pooling's windows): equal to float32 rounding.
    scale = np.abs(ex.output_saliency).max()
    np.testing.assert_allclose(ex.saliency(last, method="reverse")[:, 0], ex.output_saliency, rtol=1e-6, atol=1e-6 * scale)
    np.testing.assert_array_equal(ex.saliency(last)[:, 0], ex.output_saliency)
    of_loss = model.explain(x, wrt="loss", y_true=np.ones(4, np.float32))
    reverse = of_loss.saliency(last, method="reverse")
    np.testing.assert_array_equal(of_loss.saliency(last), reverse)
    assert not np.allclose(reverse[:, 0], of_loss.output_saliency)


def test_saliency_shapes_filters_and_batching() -> None:
    model = tsv.load(model_path("keras_paper_net_op17"))  # channels-last: results channels-first
    x = real_windows((50, 2), "NTC", 5)
    ex = model.explain(x)
    name = ex.layer_names[1]
    every = ex.saliency(name)
    assert every.shape == (5, 32, 2, 50)
    np.testing.assert_array_equal(ex.saliency(name, [3, 7]), every[:, [3, 7]])
    np.testing.assert_array_equal(ex.saliency(name, 7), every[:, 7])
    one = model.explain(x[2]).saliency(name)
    np.testing.assert_allclose(one[0], every[2], rtol=1e-6, atol=1e-9)
    with pytest.raises(tsv.ArgumentError, match="filter 32 is out of range for layer .* with 32 filters"):
        ex.saliency(name, [32])
    with pytest.raises(tsv.ArgumentError, match="no filter layer named 'conv9'"):
        ex.saliency("conv9")


def test_saliency_is_the_gradient_of_the_summed_activation() -> None:
    """Per filter, by finite differences of sum_i a^l[f, i] through a model cut at that layer."""
    rng = np.random.default_rng(4)
    w, b = weights(rng, 4, 3, 5), weights(rng, 4)
    nodes = [N("Conv", ["x", "w", "b"], ["z"], name="conv", pads=[2, 2]), N("Relu", ["z"], ["a"]),
             N("ReduceMean", ["a"], ["m"], axes=[2], keepdims=0)]
    model = tsv.load(build(nodes, [const("w", w), const("b", b)], opset=17, outputs=("m",)))
    x = real_windows((3, 20), "NCT", 1, seed=9)[0]
    ex = model.explain(x)
    sal = ex.saliency("z")[0]
    for f in range(4):
        # The model's output f is the mean of a^l[f, :] over 20 positions.
        np.testing.assert_allclose(sal[f] / 20, model.explain(x, target=f).output_saliency[0], rtol=1e-5, atol=1e-8)
        assert_saliency_close(model, x, model.explain(x, target=f))
    assert ex.activation_name("z") == "a"


def test_importance_is_min_max_scaled_raw_importance() -> None:
    model = tsv.load(model_path("fcn_op17"))
    x = real_windows((1, 150), "NCT", 6)
    ex = model.explain(x)
    for name in ex.layer_names:
        raw = ex.importance_raw[name].astype(np.float64)
        lo, hi = raw.min(axis=1, keepdims=True), raw.max(axis=1, keepdims=True)
        expected = np.where(hi > lo, (raw - lo) / np.where(hi > lo, hi - lo, 1), (hi > 0).astype(float))
        np.testing.assert_allclose(ex.importance[name], expected, rtol=1e-5, atol=1e-6)
        assert ex.importance[name].shape == (6, model.layer(name).n_filters)


def test_importance_of_the_output_layer_and_default_targets() -> None:
    model = tsv.load(model_path("fcn_op17"))
    x = real_windows((1, 150), "NCT", 6)
    ex = model.explain(x)
    np.testing.assert_array_equal(ex.target, ex.output.argmax(axis=1))
    dense = ex.layer_names[-1]
    # d logit[t] / d z^L[f] is 1 for f == t, 0 otherwise.
    np.testing.assert_array_equal(ex.importance_raw[dense], np.eye(2, dtype=np.float32)[ex.target])
    forced = model.explain(x, target=[1, 0, 1, 0, 1, 0])
    assert forced.target.tolist() == [1, 0, 1, 0, 1, 0]
    assert tsv.load(model_path("paper_net_op17")).explain(real_windows((2, 50), "NCT", 2)).target.tolist() == [0, 0]


def test_all_equal_layer_has_importance_one_when_it_matters() -> None:
    """docs/definitions: when max == min within a layer, every filter gets 1 if that value is
    positive (all matter equally) and 0 if it is 0 (all dead)."""
    rng = np.random.default_rng(0)
    w = np.repeat(weights(rng, 1, 3, 3), 4, axis=0)  # four identical filters
    nodes = [N("Conv", ["x", "w"], ["z"], name="conv"), N("Relu", ["z"], ["a"]),
             N("GlobalAveragePool", ["a"], ["g"]), N("Flatten", ["g"], ["f"]), N("Gemm", ["f", "gw"], ["y"], transB=1)]
    model = tsv.load(build(nodes, [const("w", w), const("gw", np.ones((1, 4), np.float32))]))
    ex = model.explain(real_windows((3, 20), "NCT", 3))
    raw = ex.importance_raw["z"]
    assert np.all(raw == raw[:, :1]) and raw.min() > 0
    np.testing.assert_array_equal(ex.importance["z"], 1.0)
    # The one-unit output layer: raw importance 1 (d y / d y), scaled importance 1.
    np.testing.assert_array_equal(ex.importance_raw["y"], 1.0)
    np.testing.assert_array_equal(ex.importance["y"], 1.0)
    # A dead layer (all raw importances 0) stays at 0.
    dead = tsv.load(build(nodes, [const("w", w), const("gw", np.zeros((1, 4), np.float32))]))
    ex = dead.explain(real_windows((3, 20), "NCT", 3))
    np.testing.assert_array_equal(ex.importance_raw["z"], 0.0)
    np.testing.assert_array_equal(ex.importance["z"], 0.0)


def test_max_pool_ties_send_the_gradient_to_the_first_maximum() -> None:
    nodes = [N("MaxPool", ["x"], ["p"], kernel_shape=[3], strides=[3]), N("Flatten", ["p"], ["y"])]
    model = tsv.load(build(nodes, [], input_shape=("N", 1, 9), outputs=("y",)))
    x = np.array([[[2.0, 2.0, 1.0, 0.5, 3.0, 3.0, 4.0, 4.0, 4.0]]], np.float32)
    for unit, first in [(0, 0), (1, 4), (2, 6)]:
        sal = model.explain(x, target=unit).output_saliency[0, 0]
        expected = np.zeros(9, np.float32)
        expected[first] = 1
        np.testing.assert_array_equal(sal, expected)
        mask = model.explain(x).trace("y", unit, 0)["x"][0]
        np.testing.assert_array_equal(mask, expected.astype(bool))


@pytest.mark.parametrize("kernel, stride, dilation, pads", [
    (3, 1, 1, [1, 1]), (3, 1, 2, [2, 1]), (2, 1, 1, [0, 1]), (4, 1, 1, [2, 1]), (5, 1, 3, [0, 0]),
    (3, 2, 2, [1, 1]), (2, 2, 1, [0, 0]), (4, 2, 1, [1, 2]), (3, 3, 1, [1, 0])])
def test_max_pool_keeps_the_first_maximum(kernel: int, stride: int, dilation: int, pads: list[int]) -> None:
    """Strides 1 and 2 have their own vectorised loops (stride 1, kernel 3: one pass): values and
    argmax, with many ties, against the windows scanned in numpy; edge windows read only the
    input."""
    length, channels = 40, 2
    nodes = [N("MaxPool", ["x"], ["p"], kernel_shape=[kernel], strides=[stride], pads=pads, dilations=[dilation]),
             N("Flatten", ["p"], ["y"])]
    model = tsv.load(build(nodes, [], input_shape=("N", channels, length), outputs=("y",)))
    rng = np.random.default_rng(kernel * 10 + dilation + 100 * stride)
    x = rng.integers(0, 3, size=(1, channels, length)).astype(np.float32)  # ties everywhere
    out_len = (length + sum(pads) - (kernel - 1) * dilation - 1) // stride + 1
    expected = np.zeros((channels, out_len), np.float32)
    first = np.zeros((channels, out_len), np.int64)
    for c in range(channels):
        for o in range(out_len):
            taps = [i for i in (o * stride - pads[0] + k * dilation for k in range(kernel)) if 0 <= i < length]
            best = max(taps, key=lambda i: (x[0, c, i], -i))  # the first of the maxima
            expected[c, o], first[c, o] = x[0, c, best], best
    np.testing.assert_array_equal(model.predict(x)[0], expected.reshape(-1))
    ex = model.explain(x)
    for c in range(channels):
        for o in range(out_len):
            mask = ex.trace("y", c * out_len + o, 0)["x"]  # (channels, length)
            assert np.flatnonzero(mask).tolist() == [c * length + first[c, o]], (c, o)


def test_relu_gradient_at_exactly_zero_is_zero() -> None:
    nodes = [N("Relu", ["x"], ["r"]), N("ReduceMean", ["r"], ["m"], axes=[2], keepdims=0),
             N("Gemm", ["m", "gw"], ["y"], transB=1)]
    model = tsv.load(build(nodes, [const("gw", np.ones((1, 1), np.float32))], input_shape=("N", 1, 4), outputs=("y",)))
    x = np.array([[[-1.0, 0.0, 0.5, 2.0]]], np.float32)
    np.testing.assert_array_equal(model.explain(x).output_saliency[0, 0], [0, 0, 0.25, 0.25])
    mask = model.explain(x).trace("y", 0, 0, active_only=True)["x"][0]
    np.testing.assert_array_equal(mask, [False, False, True, True])


@pytest.mark.parametrize("percentile", [0, 10, 50, 62.5, 90, 100])
def test_keep_matches_numpy_percentile(percentile: float) -> None:
    model = tsv.load(model_path("fcn_op17"))
    ex = model.explain(real_windows((1, 150), "NCT", 3))
    for name in ex.layer_names[:3]:
        imp = ex.importance[name]
        expected = imp >= np.percentile(imp, percentile, axis=1, keepdims=True)
        np.testing.assert_array_equal(ex.keep(name, percentile), expected)
    if percentile == 0:
        assert ex.keep(ex.layer_names[0], 0).all()
    if percentile == 90:
        kept = ex.keep(ex.layer_names[0], 90).sum(axis=1)
        assert np.all((kept >= 12) & (kept <= 14))  # about a tenth of 128


def test_keep_rejects_a_percentile_out_of_range() -> None:
    ex = tsv.load(model_path("paper_net_op17")).explain(real_windows((2, 50), "NCT", 1))
    with pytest.raises(tsv.ArgumentError, match="percentile must be between 0 and 100, got 101"):
        ex.keep(ex.layer_names[0], 101)


def receptive_window(pos: int, kernel: int, stride: int, pad: int, dilation: int, length: int) -> set[int]:
    return {pos * stride - pad + k * dilation for k in range(kernel)} & set(range(length))


def test_structural_trace_of_a_conv_neuron_is_its_receptive_window() -> None:
    model = tsv.load(model_path("channels_last_op17"))  # stride 2, dilation 2, padding 4
    layer = model.layers[0]
    assert (layer.kernel, layer.stride, layer.dilation) == (5, 2, 2)
    ex = model.explain(real_windows((64, 3), "NTC", 2))
    for pos in (0, 1, 15, layer.out_length - 1):
        masks = ex.trace(layer.name, 3, pos, sample=1)
        x_mask = masks[model.input_name]
        assert x_mask.shape == (3, 64)  # channels-first
        expected = receptive_window(pos, 5, 2, 4, 2, 64)
        for c in range(3):
            assert set(np.flatnonzero(x_mask[c])) == expected
        z = masks[layer.name]
        assert z.sum() == 1 and z[3, pos]


def test_trace_through_max_pooling_keeps_only_the_argmax() -> None:
    model = tsv.load(model_path("paper_net_op17"))
    x = real_windows((2, 50), "NCT", 1)
    ex = model.explain(x)
    conv1, conv2 = ex.layer_names[0], ex.layer_names[1]
    masks = ex.trace(conv2, 5, 10)
    relu1 = ex.activations[conv1][0]  # (16, 50), feeds the first max-pool (k=2, s=2)
    pooled = [name for name in masks if "MaxPool" in name][0]
    pool_mask = masks[pooled]
    # conv2 has kernel 5, padding 2: positions 8..12 of the pooled tensor, every channel.
    assert set(np.flatnonzero(pool_mask.any(axis=0))) == {8, 9, 10, 11, 12}
    relu_mask = masks[ex.activation_name(conv1)]
    expected = np.zeros_like(relu_mask)
    for c, o in zip(*np.nonzero(pool_mask)):
        window = relu1[c, 2 * o : 2 * o + 2]
        expected[c, 2 * o + int(np.argmax(window))] = True  # first maximum
    np.testing.assert_array_equal(relu_mask, expected)
    # and the input: the union of conv1's windows (k=5, pad 2) around the argmax positions
    cols = set()
    for o in np.flatnonzero(relu_mask.any(axis=0)):
        cols |= receptive_window(int(o), 5, 1, 2, 1, 50)
    assert set(np.flatnonzero(masks["x"].any(axis=0))) == cols


@pytest.mark.parametrize("name", ["paper_net_op17", "resnet_op17", "keras_strided_op17", "ops_zoo_op17"])
def test_active_only_trace_is_the_support_of_the_input_gradient(name: str) -> None:
    info = MANIFEST[name]
    model = tsv.load(model_path(name))
    x = real_windows(tuple(info["input_shape"]), info["layout"], 3, seed=8)
    ex = model.explain(x)
    for sample in range(3):
        for unit in range(model.n_outputs):
            grad = model.explain(x[sample], target=unit).output_saliency[0]
            mask = ex.trace(model.output_name, unit, 0, sample=sample, active_only=True)[model.input_name]
            np.testing.assert_array_equal(mask, grad != 0)
            structural = ex.trace(model.output_name, unit, 0, sample=sample)[model.input_name]
            assert np.all(structural >= mask)


def test_active_only_trace_of_a_conv_neuron() -> None:
    """A neuron inside the network: the model's output is that layer, flattened."""
    rng = np.random.default_rng(12)
    nodes = [N("Conv", ["x", "w1", "b1"], ["z1"], pads=[1, 1]), N("Relu", ["z1"], ["a1"]),
             N("MaxPool", ["a1"], ["p1"], kernel_shape=[2], strides=[2]),
             N("Conv", ["p1", "w2", "b2"], ["z2"], pads=[1, 1]), N("Relu", ["z2"], ["a2"]),
             N("Flatten", ["a2"], ["y"])]
    inits = [const("w1", weights(rng, 6, 3, 3)), const("b1", weights(rng, 6)),
             const("w2", weights(rng, 4, 6, 3)), const("b2", weights(rng, 4))]
    model = tsv.load(build(nodes, inits, outputs=("y",)))
    x = real_windows((3, 20), "NCT", 1, seed=3)[0]
    ex = model.explain(x)
    for f in range(4):
        for pos in range(10):
            grad = model.explain(x, target=f * 10 + pos).output_saliency[0]
            mask = ex.trace("z2", f, pos, active_only=True)["x"]
            np.testing.assert_array_equal(mask, grad != 0)


def test_trace_errors() -> None:
    model = tsv.load(model_path("paper_net_op17"))
    ex = model.explain(real_windows((2, 50), "NCT", 2))
    name = ex.layer_names[0]
    with pytest.raises(tsv.ArgumentError, match="position 50 is out of range for .* of length 50"):
        ex.trace(name, 0, 50)
    with pytest.raises(tsv.ArgumentError, match="filter 16 is out of range"):
        ex.trace(name, 16, 0)
    with pytest.raises(tsv.ArgumentError, match="sample 2 is out of range for 2 samples"):
        ex.trace(name, 0, 0, sample=2)
    with pytest.raises(tsv.ArgumentError, match="no filter layer named 'nope'"):
        ex.trace("nope", 0, 0)


def test_explain_argument_errors() -> None:
    model = tsv.load(model_path("fcn_op17"))
    x = real_windows((1, 150), "NCT", 2)
    with pytest.raises(tsv.ArgumentError, match="target 2 is out of range for a model with 2 outputs"):
        model.explain(x, target=2)
    with pytest.raises(tsv.ArgumentError, match=r"target must be None, an int, or one int per sample \(2\)"):
        model.explain(x, target=[0, 1, 0])
    with pytest.raises(tsv.ArgumentError, match="output must be 'logit' or 'prob'"):
        model.explain(x, output="probability")
    with pytest.raises(tsv.ArgumentError, match="output='prob' needs a model that ends in Softmax"):
        tsv.load(model_path("paper_net_op17")).explain(real_windows((2, 50), "NCT", 1), output="prob")
    with pytest.raises(tsv.ShapeError, match="the model expects"):
        model.explain(np.zeros((2, 2, 150), np.float32))


def test_explanation_arrays_are_read_only_views() -> None:
    model = tsv.load(model_path("paper_net_op17"))
    x = real_windows((2, 50), "NCT", 3)
    ex = model.explain(x)
    np.testing.assert_allclose(ex.output, model.predict(x), rtol=1e-6)
    name = ex.layer_names[0]
    assert ex.preactivations[name].shape == (3, 16, 50)
    assert (ex.activations[name] >= 0).all()
    np.testing.assert_array_equal(ex.activations[name], np.maximum(ex.preactivations[name], 0))
    for arr in (ex.output, ex.importance[name], ex.output_saliency, ex.preactivations[name]):
        assert not arr.flags.writeable
    # Dense layers have one position per filter.
    assert ex.preactivations[ex.layer_names[-1]].shape == (3, 1, 1)


def test_explanation_is_a_complete_frozen_dataclass() -> None:
    """Explanation._from_native fills the instance's fields directly (not through __init__),
    the views into the engine's results on first access: every field reads to what the engine
    computed, is made once, and the instance stays frozen."""
    import dataclasses

    model = tsv.load(model_path("paper_net_op17"))
    x = real_windows((2, 50), "NCT", 2)
    ex, loss_ex = model.explain(x), model.explain(x, wrt="loss", y_true=np.zeros(2, np.float32))
    names = {f.name for f in dataclasses.fields(ex)}
    assert not {"output", "output_saliency", "importance", "preactivations"} & set(vars(ex))  # not made yet
    assert ex.importance is ex.importance and ex.output is ex.output  # made once, then kept
    for e, wrt in ((ex, "output"), (loss_ex, "loss")):
        for name in names:
            getattr(e, name)
        assert set(vars(e)) == names
        np.testing.assert_array_equal(e.output, model.predict(x))
        np.testing.assert_array_equal(e.importance[e.layer_names[0]], e._native.importance(e.layer_names[0]))
        with pytest.raises(AttributeError, match="no attribute 'nothing'"):
            e.nothing  # noqa: B018
        assert e.wrt == wrt and e.layer_names == tuple(l.name for l in model.layers)
        assert e.layers is model.layers and len(e.importance) == len(model.layers)
        with pytest.raises(dataclasses.FrozenInstanceError):
            e.wrt = "x"  # type: ignore[misc]
    assert ex.loss is None and loss_ex.loss.shape == (2,)
    # Equal to one built by the generated __init__ from the same fields.
    assert dataclasses.replace(ex) == ex
    assert "Explanation(output=" in repr(ex)


@pytest.mark.parametrize("name", ["paper_net_op17", "resnet_op17", "fcn_op17", "activations_zoo_op17"])
def test_tensors_of_a_streamed_explanation_match_onnxruntime(name: str) -> None:
    """An explanation of more windows than one chunk holds streams them through a scratch
    arena and runs the forward pass again when its tensors are asked for. Those tensors are
    ONNX Runtime's (each layer's z^l and a^l made graph outputs), the dead filters are the
    rule on them, and the explanation's numbers do not depend on whether it streamed: each
    window explained alone (one chunk, kept in place) gives the same, and the next explanation
    of the batch, which keeps its tensors as it computes them (the model saw the last one's
    asked for), gives identical ones. (The streamed pass runs each ReLU inside the convolution
    or sum before it and never writes those z^l; the kept one runs them apart.)"""
    import onnx
    import onnxruntime as ort

    info = MANIFEST[name]
    model = tsv.load(model_path(name))
    x = real_windows(tuple(info["input_shape"]), info["layout"], 64, seed=5)  # every net's 64 stream
    ex = model.explain(x)
    proto = onnx.load(str(model_path(name)))
    wanted = sorted({n for layer in model.layers for n in (layer.name, layer.activation)})
    proto.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in wanted)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = dict(zip(wanted, sess.run(wanted, {sess.get_inputs()[0].name: x})))
    n_dead = 0
    for layer in model.layers:
        z, a = ex.preactivations[layer.name], ex.activations[layer.name]
        for got, tensor in ((z, layer.name), (a, layer.activation)):
            expected = ref[tensor].reshape(got.shape)
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))
        np.testing.assert_array_equal(ex.dead[layer.name], ~np.any(a != 0, axis=-1))
        n_dead += int(ex.dead[layer.name].sum())
    if name == "paper_net_op17":
        assert 0 < n_dead < ex.dead[model.layers[1].name].size * 3  # real windows: some, not all
    again = model.explain(x)
    for layer in model.layers:
        for arrays in ("preactivations", "activations", "importance_raw", "taylor", "dead"):
            np.testing.assert_array_equal(getattr(again, arrays)[layer.name], getattr(ex, arrays)[layer.name])
    np.testing.assert_array_equal(again.output_saliency, ex.output_saliency)
    np.testing.assert_array_equal(again.output, ex.output)
    for i in (0, 17, 63):
        one = model.explain(x[i : i + 1])
        for layer in model.layers:
            for arrays in ("importance_raw", "taylor", "dead", "preactivations", "activations"):
                np.testing.assert_allclose(getattr(one, arrays)[layer.name][0], getattr(ex, arrays)[layer.name][i],
                                           rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(one.output_saliency[0], ex.output_saliency[i], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(one.saliency(model.layers[0].name)[0], ex.saliency(model.layers[0].name)[i],
                                   rtol=1e-4, atol=1e-6)
