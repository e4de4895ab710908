"""The saliency of every filter computed three ways gives one answer: reverse mode (one
cotangent per filter), forward mode (one banded tangent per input point, every layer at once)
and the automatic choice between them, on every committed model and both shipped models, on
real windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tsviz_native as tsv
from conftest import MANIFEST, model_path, outputs_at_thread_counts, real_windows

SHIPPED = Path(tsv.__file__).parent / "models"


def _cases() -> list[tuple[str, Path]]:
    cases = [(name, model_path(name)) for name in sorted(MANIFEST)]
    cases += [(p.stem, p) for p in sorted(SHIPPED.glob("*.onnx"))]
    return cases


def _windows(model: tsv.Model, n: int) -> np.ndarray:
    shape = [s if s > 0 else 96 for s in model.sample_shape]
    if model.layout == "NT":
        return real_windows((1, shape[0]), "NCT", n, seed=3)[:, 0, :]
    return real_windows(tuple(shape), model.layout, n, seed=3)


@pytest.mark.parametrize(("name", "path"), _cases(), ids=[c[0] for c in _cases()])
def test_forward_reverse_and_auto_saliency_agree(name: str, path: Path) -> None:
    model = tsv.load(path)
    x = _windows(model, 3)
    # Separate explanations, so that no mode reads what another one cached.
    modes = {m: model.explain(x) for m in ("reverse", "forward", "auto")}
    for layer in modes["reverse"].layer_names:
        ref = modes["reverse"].saliency(layer, method="reverse")
        scale = float(np.abs(ref).max())
        assert scale > 0, f"{name} {layer}: all-zero saliency checks nothing"
        for m in ("forward", "auto"):
            got = modes[m].saliency(layer, method=m)
            assert got.shape == ref.shape
            err = float(np.abs(got - ref).max())
            assert err <= 1e-5 * scale, f"{name} {layer} {m}: max diff {err:.3g} of {scale:.3g}"


def test_forward_mode_serves_a_subset_of_filters_from_its_cache() -> None:
    model = tsv.load(model_path("fcn_op17"))
    ex = model.explain(real_windows((1, 150), "NCT", 2))
    layer = ex.layer_names[1]
    every = ex.saliency(layer, method="forward")
    np.testing.assert_array_equal(ex.saliency(layer, [5, 3], method="forward"), every[:, [5, 3]])
    np.testing.assert_array_equal(ex.saliency(layer, 7, method="forward"), every[:, 7])
    np.testing.assert_allclose(ex.saliency(layer, [5, 3], method="reverse"), every[:, [5, 3]],
                               rtol=0, atol=1e-5 * float(np.abs(every).max()))


def test_every_filter_asked_again_gives_the_same_array() -> None:
    """A request for every filter of a layer takes the sweep's sums instead of copying them;
    asking again computes the layer anew, to the same bits, and the arrays are the caller's."""
    model = tsv.load(model_path("fcn_op17"))
    ex = model.explain(real_windows((1, 150), "NCT", 2))
    first = {name: ex.saliency(name) for name in ex.layer_names}
    kept = {name: a.copy() for name, a in first.items()}
    for a in first.values():
        a[...] = -1.0  # the caller's to change
    for name in ex.layer_names:
        np.testing.assert_array_equal(ex.saliency(name), kept[name])
        np.testing.assert_array_equal(ex.saliency(name, [1, 0], method="forward"), kept[name][:, [1, 0]])


@pytest.mark.parametrize("method", ["reverse", "forward"])
def test_saliency_arrays_never_share_memory(method: str) -> None:
    """Saliency arrays are written into blocks that dead arrays handed back, and forward mode's
    sums into blocks that dead explanations handed back: a live array is never handed out
    again, and a reused block holds only the new values."""
    model = tsv.load(model_path("paper_net_op17"))
    xs = [real_windows((2, 50), "NCT", 4, seed=s) for s in (1, 2)]
    want = []
    for x in xs:
        ex = model.explain(x)
        want.append([ex.saliency(name, method=method).copy() for name in ex.layer_names])
    for round_ in range(4):
        # Every other round the other window first: blocks move between inputs.
        order = [0, 1] if round_ % 2 == 0 else [1, 0]
        live = [model.explain(xs[i]) for i in order]
        got = [[ex.saliency(name, method=method) for name in ex.layer_names] for ex in live]
        got = [got[order.index(i)] for i in (0, 1)]
        flat = [a for arrays in got for a in arrays]
        for i, a in enumerate(flat):
            assert a.flags.writeable and a.flags.c_contiguous
            for b in flat[i + 1:]:
                assert not np.shares_memory(a, b)
        for arrays, expected in zip(got, want):
            for a, e in zip(arrays, expected):
                np.testing.assert_array_equal(a, e)
        got[0][1][...] = np.nan  # the caller's to change; the next round must not see it
        del got, flat


def test_saliency_method_is_checked() -> None:
    model = tsv.load(model_path("paper_net_op17"))
    ex = model.explain(real_windows((2, 50), "NCT", 1))
    with pytest.raises(tsv.ArgumentError, match="method must be 'auto', 'reverse' or 'forward'"):
        ex.saliency(ex.layer_names[0], method="backward")


def test_modes_agree_on_grouped_strided_and_dilated_convolutions() -> None:
    """A graph the committed models leave out: a grouped convolution with a stride (the
    reverse pass's per-tap scatter, its one-hot first step within a group of 8 filters) and a
    dilated one, each under an activation (the ReLU fused into the forward-mode product)."""
    from onnx import helper

    from onnx_builder import build, const, weights

    rng = np.random.default_rng(7)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["z1"], group=2, strides=[2], pads=[1, 1], kernel_shape=[3]),
        helper.make_node("Relu", ["z1"], ["a1"]),
        helper.make_node("Conv", ["a1", "w2", "b2"], ["z2"], dilations=[2], pads=[2, 2], kernel_shape=[3]),
        helper.make_node("LeakyRelu", ["z2"], ["a2"], alpha=0.1),
        helper.make_node("Flatten", ["a2"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1),
    ]
    inits = [
        const("w1", weights(rng, 16, 2, 3)), const("b1", weights(rng, 16)),
        const("w2", weights(rng, 8, 16, 3)), const("b2", weights(rng, 8)),
        const("w3", weights(rng, 3, 8 * 20)), const("b3", weights(rng, 3)),
    ]
    model = tsv.load(build(nodes, inits, input_shape=("N", 4, 40)))
    x = real_windows((4, 40), "NCT", 3, seed=5)
    modes = {m: model.explain(x) for m in ("reverse", "forward", "auto")}
    for layer in modes["reverse"].layer_names:
        ref = modes["reverse"].saliency(layer, method="reverse")
        scale = float(np.abs(ref).max())
        assert scale > 0
        for m in ("forward", "auto"):
            err = float(np.abs(modes[m].saliency(layer, method=m) - ref).max())
            assert err <= 1e-5 * scale, f"{layer} {m}: max diff {err:.3g} of {scale:.3g}"


_EXPLAIN_AT_THREADS = """
import sys
import numpy as np
import tsviz_native as tsv
inputs = np.load(sys.argv[1])
out = {}
for key in inputs.files:
    name = key.split(":")[0]
    ex = tsv.load(sys.argv[2] + "/" + name + ".onnx").explain(inputs[key])
    out[key + ":output_saliency"] = ex.output_saliency
    for i, layer in enumerate(ex.layer_names):
        out[key + f":importance_raw{i}"] = ex.importance_raw[layer]
        out[key + f":saliency{i}"] = ex.saliency(layer)
np.savez(sys.argv[3], **out)
"""


def test_explanations_do_not_depend_on_the_thread_count(tmp_path) -> None:
    """Samples, tangent chunks and column parts of the products are split over the threads;
    every product chooses its kernel for the whole product and every element's arithmetic stays
    the same, so importance, output saliency and every filter's saliency are bit-identical on
    1, 2 and 3 threads (forward mode on the paper net, resnet and the FCN, reverse mode on the
    channels-last net and the TCN)."""
    names = ("paper_net_op17", "resnet_op17", "fcn_op17", "channels_last_op17", "tcn_op17")
    inputs = {}
    for name in names:
        model = tsv.load(model_path(name))
        for batch in (1, 5):
            inputs[f"{name}:{batch}"] = _windows(model, batch)
    results = outputs_at_thread_counts(tmp_path, _EXPLAIN_AT_THREADS, inputs)
    for key in results[1].files:
        for threads in (2, 3):
            np.testing.assert_array_equal(results[threads][key], results[1][key], err_msg=f"{key}, {threads} threads")


def test_filters_off_all_along_have_zero_saliency_in_every_mode() -> None:
    """Reverse mode leaves out the rows of filters whose ReLU is off at every position of a
    sample: their saliency is exactly 0. Biases set so that each filter of the second layer
    is off on some windows and on on others, so that the windows of one pass keep different
    numbers of rows (padded to the most); forward mode agrees."""
    from onnx import helper

    from onnx_builder import build, const, weights

    rng = np.random.default_rng(11)
    w1, b1, w2 = weights(rng, 8, 3, 5), weights(rng, 8), weights(rng, 16, 8, 3)
    x = real_windows((3, 40), "NCT", 12, seed=2)

    def conv(a: np.ndarray, w: np.ndarray, pad: int) -> np.ndarray:
        a = np.pad(a, ((0, 0), (0, 0), (pad, pad)))
        k = w.shape[2]
        cols = np.stack([a[:, :, j:j + a.shape[2] - k + 1] for j in range(k)], axis=3)  # N C T K
        return np.einsum("nctk,fck->nft", cols, w)

    peak = conv(np.maximum(conv(x, w1, 2) + b1[None, :, None], 0), w2, 1).max(axis=2)  # (N, F)
    b2 = -np.median(peak, axis=0).astype(np.float32)  # each filter off on about half the windows
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["z1"], pads=[2, 2]),
        helper.make_node("Relu", ["z1"], ["a1"]),
        helper.make_node("Conv", ["a1", "w2", "b2"], ["z2"], pads=[1, 1]),
        helper.make_node("Relu", ["z2"], ["a2"]),
        helper.make_node("Flatten", ["a2"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1),
    ]
    inits = [const("w1", w1), const("b1", b1), const("w2", w2), const("b2", b2),
             const("w3", weights(rng, 2, 16 * 40)), const("b3", weights(rng, 2))]
    model = tsv.load(build(nodes, inits, input_shape=("N", 3, 40)))

    ex = model.explain(x)
    reverse, forward = (ex.saliency("z2", method=m) for m in ("reverse", "forward"))
    dead = reverse.reshape(12, 16, -1).max(axis=2) == 0
    live_rows = (~dead).sum(axis=1)
    assert dead.any() and live_rows.min() < live_rows.max(), live_rows
    np.testing.assert_array_equal(forward.reshape(12, 16, -1)[dead], 0.0)
    scale = float(np.abs(forward).max())
    assert float(np.abs(reverse - forward).max()) <= 1e-5 * scale
    # The pass over every row (allow_nonfinite turns the skip off: with a NaN the rows left
    # out would not be 0), one window at a time, a subset of filters in another order: the
    # same bits.
    np.testing.assert_array_equal(model.explain(x, allow_nonfinite=True).saliency("z2", method="reverse"), reverse)
    np.testing.assert_array_equal(model.explain(x[5]).saliency("z2", method="reverse")[0], reverse[5])
    np.testing.assert_array_equal(ex.saliency("z2", [9, 2, 14], method="reverse"), reverse[:, [9, 2, 14]])
