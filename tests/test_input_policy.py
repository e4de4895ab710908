"""What the engine accepts as input (cpp/src/model.cpp, Model::Impl::check_input): NaN and
infinity are refused unless allowed, then computed with as ONNX Runtime does; the declared
input shape is the contract; empty batches, wrong dtypes and ranks are named; read-only and
strided arrays work."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

import tsviz_native as tsv
from conftest import MANIFEST, model_path, ort_run, real_windows
from onnx_builder import build, const, weights

N = helper.make_node


def windows(name: str, n: int = 4) -> np.ndarray:
    info = MANIFEST[name]
    return real_windows(tuple(info["input_shape"]), info["layout"], n)


def test_nan_is_refused_naming_sample_and_position() -> None:
    model = tsv.load(model_path("paper_net_op17"))
    x = windows("paper_net_op17")
    x[2, 1, 17] = np.nan
    pattern = re.escape("input sample 2 has NaN at position (1, 17) of its per-sample shape (2, 50); "
                        "pass allow_nonfinite to compute with it (IEEE: NaN in, NaN out)")
    with pytest.raises(tsv.ArgumentError, match=pattern):
        model.predict(x)
    with pytest.raises(tsv.ArgumentError, match=pattern):
        model.explain(x)
    x[1, 0, 3] = -np.inf  # the first one is named
    with pytest.raises(tsv.ArgumentError, match=re.escape("input sample 1 has -inf at position (0, 3)")):
        model.predict(x)


def test_nonfinite_channels_last_and_nt() -> None:
    keras = tsv.load(model_path("keras_paper_net_op17"))
    x = windows("keras_paper_net_op17", 2)
    x[0, 7, 1] = np.inf
    with pytest.raises(tsv.ArgumentError, match=re.escape("input sample 0 has +inf at position (7, 1) of its per-sample shape (50, 2)")):
        keras.predict(x)
    nt = tsv.load(build([N("Unsqueeze", ["x", "ax"], ["x3"]), N("Conv", ["x3", "w"], ["c"]),
                         N("ReduceMean", ["c", "ax2"], ["y"], keepdims=0)],
                        [const("ax", [1], np.int64), const("w", weights(np.random.default_rng(0), 2, 1, 3)),
                         const("ax2", [2], np.int64)], input_shape=("N", 16), opset=18))
    with pytest.raises(tsv.ArgumentError, match=re.escape("input sample 0 has NaN at position (5,) of its per-sample shape (16,)")):
        nt.predict(np.where(np.arange(16) == 5, np.nan, 1.0)[None])


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_allow_nonfinite_gives_nan_where_onnxruntime_does(name: str) -> None:
    """NaN in, NaN out: wherever ONNX Runtime's output is NaN, so is ours, and the finite
    outputs of the same windows agree. ONNX Runtime's max pooling skips a NaN where ours (as
    PyTorch's) propagates it, so for models with max pooling ours may be NaN where ORT is not."""
    model = tsv.load(model_path(name))
    x = windows(name)
    x[0].flat[3] = np.nan
    x[1].flat[x[1].size // 2] = np.inf
    ours = model.predict(x, allow_nonfinite=True)
    ref = ort_run(model_path(name), x).reshape(len(x), -1)
    assert np.isnan(ours[np.isnan(ref)]).all()
    has_max = any(op in ("MaxPool", "GlobalMaxPool") for op in model.graph_ops)
    if not has_max:
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    both = ~np.isnan(ours) & ~np.isnan(ref)
    np.testing.assert_allclose(ours[both], ref[both], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours[3], ref[3], rtol=1e-4, atol=1e-5)  # the clean window
    ex = model.explain(x, allow_nonfinite=True)
    np.testing.assert_array_equal(ex.output, ours)


def test_model_default_for_nonfinite() -> None:
    model = tsv.load(model_path("fcn_op17"), allow_nonfinite=True)
    x = windows("fcn_op17", 2)
    x[1, 0, 9] = np.nan
    assert np.isnan(model.predict(x)[1]).all() and np.isfinite(model.predict(x)[0]).all()
    with pytest.raises(tsv.ArgumentError, match="input sample 1 has NaN"):
        model.predict(x, allow_nonfinite=False)
    stats = tsv.analyze_dataset(model, x[:1], progress=False)  # follows the model's default
    assert stats.n_windows == 1
    with pytest.raises(tsv.ArgumentError, match="input sample 1 has NaN"):
        tsv.analyze_dataset(tsv.load(model_path("fcn_op17")), x, progress=False)


def test_declared_fixed_length_is_honoured() -> None:
    """A model declaring length 150 ran on windows of 100 (its graph allows any length);
    ONNX Runtime refuses, and so does TSViz, naming the declared shape."""
    rng = np.random.default_rng(1)
    gap = [N("Conv", ["x", "w"], ["c"]), N("GlobalAveragePool", ["c"], ["g"]), N("Flatten", ["g"], ["y"])]
    inits = [const("w", weights(rng, 4, 3, 3))]
    fixed = tsv.load(build(gap, inits, input_shape=("N", 3, 150)))
    x100 = real_windows((3, 100), "NCT", 2)
    with pytest.raises(tsv.ShapeError, match=re.escape("input has per-sample shape (3, 100); the model expects (3, 150) "
                                                       "(input 'x' declares (N, 3, 150); its length is fixed)")):
        fixed.predict(x100)
    with pytest.raises(tsv.ShapeError, match=re.escape("input 'x' declares (N, 3, 150)")):
        fixed.explain(x100)
    assert fixed.predict(real_windows((3, 150), "NCT", 2)).shape == (2, 4)
    free = tsv.load(build(gap, inits, input_shape=("N", 3, "T")))
    for t in (5, 100, 150, 1000):
        x = np.sin(np.arange(3 * t, dtype=np.float32)).reshape(1, 3, t)
        assert free.predict(x).shape == (1, 4)


def test_empty_batch_wrong_dtype_wrong_rank() -> None:
    model = tsv.load(model_path("paper_net_op17"))
    with pytest.raises(tsv.ArgumentError, match=re.escape("the batch is empty (0 samples); give at least one sample")):
        model.predict(np.zeros((0, 2, 50), np.float32))
    with pytest.raises(tsv.ArgumentError, match="explain needs at least one sample"):
        model.explain(np.zeros((0, 2, 50), np.float32))
    for bad in (np.zeros((1, 2, 50), np.complex64), np.zeros((1, 2, 50), bool), np.array([["a"] * 50] * 2)):
        with pytest.raises(tsv.ArgumentError, match=f"input has dtype {bad.dtype}; expected float32 or float64"):
            model.predict(bad)
    with pytest.raises(tsv.ArgumentError, match="input cannot be read as a numeric array"):
        model.predict([[1.0, 2.0], [3.0]])
    with pytest.raises(tsv.ShapeError, match=re.escape("input has shape (3, 1, 2, 50); the model expects (N, 2, 50) or one sample (2, 50)")):
        model.predict(np.zeros((3, 1, 2, 50), np.float32))
    with pytest.raises(tsv.ShapeError, match=re.escape("input has per-sample shape (3, 50); the model expects (2, 50)")):
        model.predict(np.zeros((1, 3, 50), np.float32))


def test_read_only_and_strided_arrays() -> None:
    model = tsv.load(model_path("paper_net_op17"))
    x = windows("paper_net_op17", 6)
    want = model.predict(x)
    ro = x.copy()
    ro.setflags(write=False)
    np.testing.assert_array_equal(model.predict(ro), want)
    np.testing.assert_array_equal(model.explain(ro).output, want)
    wide = np.zeros((6, 2, 100), np.float32)
    wide[:, :, ::2] = x
    strided = wide[:, :, ::2]
    assert not strided.flags.c_contiguous
    np.testing.assert_array_equal(model.predict(strided), want)
    np.testing.assert_array_equal(model.predict(np.asfortranarray(x)), want)
    np.testing.assert_array_equal(model.predict(x[::-1])[::-1], want)
    np.testing.assert_array_equal(model.predict(x.astype(np.float64)), want)


def test_cli_allow_nonfinite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tsviz_native.cli import main

    x = windows("paper_net_op17", 2)
    x[1, 0, 4] = np.nan
    np.save(tmp_path / "x.npy", x)
    assert main(["predict", str(model_path("paper_net_op17")), str(tmp_path / "x.npy")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tsviz: error: input sample 1 has NaN at position (0, 4)") and err.count("\n") == 1
    assert main(["predict", str(model_path("paper_net_op17")), str(tmp_path / "x.npy"), "--allow-nonfinite"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert len(rows) == 2 and rows[1] == "nan" and rows[0] != "nan"


def test_nan_reaches_the_output_through_relu_and_max_pooling() -> None:
    """The ops that used to swallow a NaN (ReLU's x > 0 ? x : 0, max pooling's strict >)."""
    for name in ("paper_net_op17", "keras_paper_net_op17", "ops_zoo_op17"):
        x = windows(name, 1)
        x.flat[x.size // 2] = np.nan
        assert np.isnan(tsv.load(model_path(name)).predict(x, allow_nonfinite=True)).all(), name


def test_percentile_filter_with_nan_importance() -> None:
    """A NaN importance (a NaN input let through) used to reach std::sort with a plain <, which
    is undefined behaviour; NaN sorts last, as numpy's, and keeps nothing of that sample."""
    model = tsv.load(model_path("fcn_op17"))
    x = windows("fcn_op17", 2)
    x[0, 0, 40] = np.nan
    ex = model.explain(x, allow_nonfinite=True)
    for name in ex.layer_names:
        kept = ex.keep(name, 50)
        assert kept.shape == ex.importance[name].shape
        imp = ex.importance[name][1]
        np.testing.assert_array_equal(kept[1], imp >= np.percentile(imp, 50))
        if np.isnan(ex.importance[name][0]).any():
            assert not kept[0].any()
