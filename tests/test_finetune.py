"""Weight gradients, fine-tuning and writing the trained weights back (docs/definitions.md,
"Fine-tuning"). Oracles: PyTorch autograd on the PyTorch equivalents of the test models
(bench/torch_peers.py, weights read from the ONNX files; its results are committed as
tests/models/refs/train_*.npz by tests/models/make_train_refs.py), finite differences of ONNX
Runtime's forward on the written ONNX, and a hand computation of Adam."""

from __future__ import annotations

import numpy as np
import pytest

import tsviz_native as tsv
from conftest import MANIFEST, MODELS, TRAIN_MODELS, model_path, ort_run, projection_directions, training_data
from tsviz_native import _native, models
from tsviz_native.analysis.finetune import Adam, finetune, write_parameters

onnx = pytest.importorskip("onnx")


def _loss_for(model: tsv.Model) -> str:
    return "cross_entropy" if model.n_outputs > 1 else "mse"


def _data(model: tsv.Model, name: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return training_data(name, model.n_outputs, n, seed)


# The models of the families with a PyTorch equivalent (conftest.TORCH_FAMILIES); the families
# of recent activations, Inception, TCN and depthwise blocks are checked against ONNX Runtime's
# finite differences below.
@pytest.mark.parametrize("name", TRAIN_MODELS)
def test_weight_gradients_equal_pytorch_autograd(name: str) -> None:
    """Every committed test model of a family with a PyTorch equivalent: that network, with the
    weights of this very file (folded as the engine folds them), gives the same output, loss and
    gradients (refs/train_<model>.npz, written by tests/models/make_train_refs.py).

    To keep the fixtures small they hold every bias gradient but only a fixed sample of 64
    entries of each weight gradient and its projections on 4 fixed unit vectors of random signs
    (conftest.projection_directions), which see every entry. Entries must agree within 1e-4 of
    the layer's largest gradient, as in a comparison in full; so must the projections: rounding
    differences, independent across entries, average out in them (they stay below 1% of that
    bound), while an error e in one entry outside the sample moves them by e / sqrt(n) and an
    error in many entries moves them in proportion."""
    ref = np.load(MODELS / "refs" / f"train_{name}.npz")
    model = tsv.load(model_path(name))
    x, y = ref["x"], ref["y"]
    np.testing.assert_allclose(ref["output"], model.predict(x), rtol=1e-4, atol=1e-5)
    trainer = _native.Trainer(model._native, _loss_for(model))
    value, per, grad = trainer.gradient(x, y, True)
    assert value == pytest.approx(float(ref["loss"]), rel=1e-5)
    info = trainer.parameters
    assert [p["layer"] for p in info] == list(ref["layer_names"])
    for l, p in enumerate(info):
        assert tuple(p["weight_shape"]) == tuple(ref[f"weight_shape_{l}"]), p["layer"]
        n = int(np.prod(p["weight_shape"]))
        gw = grad[p["weight_offset"]:p["weight_offset"] + n]
        gb = grad[p["bias_offset"]:p["bias_offset"] + p["n_filters"]]
        scale = float(ref[f"scale_{l}"])
        assert np.abs(gw[ref[f"weight_index_{l}"]] - ref[f"weight_grad_{l}"]).max() <= 1e-4 * scale, p["layer"]
        assert np.abs(gb - ref[f"bias_grad_{l}"]).max() <= 1e-4 * scale, p["layer"]
        proj = projection_directions(n, len(ref[f"weight_proj_{l}"])) @ gw.astype(np.float64)
        assert np.abs(proj - ref[f"weight_proj_{l}"]).max() <= 1e-4 * scale, p["layer"]


def _ort_loss(data: bytes, x: np.ndarray, y: np.ndarray, loss: str, softmax: bool) -> float:
    out = ort_run(data, x).astype(np.float64).reshape(len(x), -1)
    if loss == "mse":
        return float(np.mean((out - y) ** 2))
    logp = np.log(out) if softmax else out - np.log(np.exp(out - out.max(1, keepdims=True)).sum(1, keepdims=True)) - out.max(1, keepdims=True)
    return float(-np.mean(logp[np.arange(len(x)), y.reshape(-1).astype(int)]))


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_gradient_agrees_with_onnx_runtime_finite_differences(name: str) -> None:
    """The directional derivative of the loss along random directions in parameter space, by
    central differences of ONNX Runtime's forward on the written ONNX (so the writer is
    checked too), equals the engine's gradient projected on them."""
    model = tsv.load(model_path(name))
    loss = _loss_for(model)
    x, y = _data(model, name, 8, seed=1)
    trainer = _native.Trainer(model._native, loss)
    p = trainer.get().astype(np.float64)
    _, _, grad = trainer.gradient(x, y, True)
    softmax = model.graph_ops[-1] == "Softmax"
    rng = np.random.default_rng(0)
    for _ in range(2):
        # Half along the gradient, so the derivative stands well above float32 rounding in
        # ONNX Runtime's loss, half a random direction scaled like the parameters.
        r = rng.standard_normal(p.size) * (np.abs(p) + 1e-3)
        d = r / np.linalg.norm(r) + grad / np.linalg.norm(grad)
        d /= np.linalg.norm(d)
        h = 1e-3
        up = _ort_loss(write_parameters(model, p + h * d, loss), x, y, loss, softmax)
        down = _ort_loss(write_parameters(model, p - h * d, loss), x, y, loss, softmax)
        fd = (up - down) / (2 * h)
        exact = float(grad.astype(np.float64) @ d)
        assert abs(fd - exact) <= 1e-2 * abs(exact), (fd, exact)


def test_adam_step_equals_a_hand_computation() -> None:
    opt = Adam(3, lr=0.1, betas=(0.9, 0.99), eps=1e-8)
    p = np.array([1.0, -2.0, 0.5], dtype=np.float32)
    g1 = np.array([0.5, -1.0, 0.0], dtype=np.float32)
    p1 = opt.step(p, g1)
    # Step 1: m = 0.1 g, v = 0.01 g^2; m_hat = g, v_hat = g^2: p - lr * g / (|g| + eps).
    np.testing.assert_allclose(p1, [1.0 - 0.1, -2.0 + 0.1, 0.5], rtol=1e-6)
    g2 = np.array([0.25, 1.0, 2.0], dtype=np.float32)
    p2 = opt.step(p1, g2)
    m = 0.9 * 0.1 * g1 + 0.1 * g2
    v = 0.99 * 0.01 * g1**2 + 0.01 * g2**2
    want = p1 - 0.1 * (m / (1 - 0.9**2)) / (np.sqrt(v / (1 - 0.99**2)) + 1e-8)
    np.testing.assert_allclose(p2, want, rtol=1e-5)


@pytest.fixture(scope="module")
def forecaster() -> tsv.Model:
    return tsv.load(models.path("forecaster"))


@pytest.fixture(scope="module")
def b5m() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    X, y, _ = models.forecaster_windows("train")
    Xv, yv, _ = models.forecaster_windows("validation")
    return X[-600:], y[-600:], Xv[:300], yv[:300]


def _pruned_forecaster(forecaster: tsv.Model) -> tsv.Model:
    rng = np.random.default_rng(0)
    scores = {l.name: rng.random(l.n_filters) for l in forecaster.layers}
    return tsv.prune(forecaster, scores=scores, fraction=0.5).model


def test_finetuning_reduces_the_training_loss_of_a_pruned_forecaster(forecaster, b5m) -> None:
    X, y, Xv, yv = b5m
    pruned = _pruned_forecaster(forecaster)
    before = float(np.mean((pruned.predict(X)[:, 0] - y) ** 2))
    result = finetune(pruned, X, y, epochs=3, lr=1e-3, batch_size=16, seed=0, progress=False)
    after = float(np.mean((result.model.predict(X)[:, 0] - y) ** 2))
    assert len(result.history["loss"]) == 3
    assert after < 0.5 * before, (before, after)
    # The written model runs in ONNX Runtime with the engine's outputs.
    out = ort_run(result.onnx_bytes, X[:50])
    np.testing.assert_allclose(result.model.predict(X[:50]), out, rtol=1e-5, atol=1e-5)
    assert result.model.n_parameters == pruned.n_parameters


def test_finetuning_a_classifier_with_cross_entropy() -> None:
    model = tsv.load(models.path("fcn-gunpoint"))
    X, y = models.gunpoint("train")
    pruned = tsv.prune(model, scores={l.name: np.arange(l.n_filters, dtype=float) for l in model.layers},
                       fraction=0.6).model
    trainer = _native.Trainer(pruned._native, "cross_entropy")
    before = trainer.gradient(X, y.astype(np.float32).reshape(-1, 1), False)[0]
    result = finetune(pruned, X, y, loss="cross_entropy", epochs=2, lr=1e-3, batch_size=10, seed=1, progress=False)
    assert result.history["loss"][-1] < before
    np.testing.assert_allclose(result.model.predict(X[:20]), ort_run(result.onnx_bytes, X[:20]), atol=1e-5)


def test_finetuning_is_deterministic_for_a_seed(forecaster, b5m) -> None:
    X, y, _, _ = b5m
    a = finetune(forecaster, X[:200], y[:200], epochs=1, batch_size=16, seed=4, progress=False)
    b = finetune(forecaster, X[:200], y[:200], epochs=1, batch_size=16, seed=4, progress=False)
    c = finetune(forecaster, X[:200], y[:200], epochs=1, batch_size=16, seed=5, progress=False)
    assert a.onnx_bytes == b.onnx_bytes
    assert a.history == b.history
    assert c.onnx_bytes != a.onnx_bytes


def test_early_stopping_keeps_the_best_epoch(forecaster, b5m) -> None:
    X, y, Xv, yv = b5m
    pruned = _pruned_forecaster(forecaster)
    result = finetune(pruned, X, y, epochs=6, lr=3e-3, batch_size=8, validation=(Xv, yv), patience=2,
                      seed=0, progress=False)
    val = [result.history["initial_val_loss"], *result.history["val_loss"]]
    assert result.best_epoch == int(np.argmin(val))
    assert len(result.history["val_loss"]) == result.epochs_run
    if result.epochs_run < 6:
        assert result.epochs_run - result.best_epoch == 2
    kept = float(np.mean((result.model.predict(Xv)[:, 0] - yv) ** 2))
    assert kept == pytest.approx(min(val), rel=1e-4)


def test_unpruned_model_with_folded_batchnorm_writes_an_identity_batchnorm() -> None:
    model = tsv.load(model_path("fcn_op13"))
    x, y = _data(model, "fcn_op13", 16)
    result = finetune(model, x, y.reshape(-1), loss="cross_entropy", epochs=1, batch_size=8, progress=False)
    proto = onnx.load_from_string(result.onnx_bytes)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in proto.graph.initializer}
    bns = [n for n in proto.graph.node if n.op_type == "BatchNormalization"]
    assert bns and [n.op_type for n in proto.graph.node] == [
        n.op_type for n in onnx.load(str(model_path("fcn_op13"))).graph.node]
    for n in bns:
        np.testing.assert_array_equal(inits[n.input[1]], 1)
        np.testing.assert_array_equal(inits[n.input[3]], 0)
    np.testing.assert_allclose(result.model.predict(x), ort_run(result.onnx_bytes, x), atol=1e-5)


def test_finetune_errors_name_what_is_wrong(forecaster, b5m) -> None:
    X, y, _, _ = b5m
    with pytest.raises(tsv.ArgumentError, match="loss must be"):
        finetune(forecaster, X, y, loss="hinge")
    with pytest.raises(tsv.ArgumentError, match="10 targets for 600 samples"):
        finetune(forecaster, X, y[:10])
    with pytest.raises(tsv.ArgumentError, match="patience needs a validation set"):
        finetune(forecaster, X, y, patience=3)
    with pytest.raises(tsv.ArgumentError, match="class indices"):
        finetune(tsv.load(models.path("fcn-gunpoint")), *models.gunpoint("train")[:1], np.full(50, 7),
                 loss="cross_entropy")


def test_prune_then_finetune_one_shot_and_iterative(forecaster, b5m) -> None:
    X, y, Xv, yv = b5m
    rng = np.random.default_rng(2)
    fixed = {l.name: rng.random(l.n_filters) for l in forecaster.layers}
    plain = tsv.prune(forecaster, scores=fixed, fraction=0.5)
    tuned = tsv.prune(forecaster, scores=fixed, fraction=0.5,
                      finetune=dict(X=X, y=y, epochs=2, batch_size=16, progress=False))
    assert tuned.removed == plain.removed and tuned.n_parameters_after == plain.n_parameters_after
    assert len(tuned.history) == 1 and len(tuned.history[0]["loss"]) == 2
    mse = [float(np.mean((r.model.predict(Xv)[:, 0] - yv) ** 2)) for r in (plain, tuned)]
    assert mse[1] < mse[0]
    calls = []

    def l1(model: tsv.Model) -> dict:
        calls.append(model.n_parameters)
        trainer = _native.Trainer(model._native, "mse")
        p = trainer.get()
        return {q["layer"]: np.abs(p[q["weight_offset"]:q["weight_offset"] + int(np.prod(q["weight_shape"]))]
                                   .reshape(q["n_filters"], -1)).sum(1) for q in trainer.parameters}

    steps = tsv.prune(forecaster, scores=l1, fraction=0.5,
                      finetune=dict(X=X, y=y, epochs=1, batch_size=16, steps=2, progress=False))
    assert len(calls) == 2 and calls[1] < calls[0] and len(steps.history) == 2
    # 1 - (1 - 0.5) ** (1 / 2) = 29.3% per step, rounded per layer: 16 -> 11 -> 8 filters.
    assert [l.n_filters for l in steps.model.layers] == [8, 16, 16, 1]
    assert all(len(set(v)) == len(v) for v in steps.removed.values())
    assert len(steps.removed[forecaster.layers[0].name]) == 8
    with pytest.raises(tsv.ArgumentError, match="ranks the filters anew"):
        tsv.prune(forecaster, scores=fixed, fraction=0.5, finetune=dict(X=X, y=y, steps=2))
    with pytest.raises(tsv.ArgumentError, match="needs the training data"):
        tsv.prune(forecaster, scores=fixed, fraction=0.5, finetune=dict(epochs=2))


def _small_graph(mul: float, gemm: bool = False) -> bytes:
    """x (N, 3, 20) -> Conv (no bias) -> Mul by a constant -> Relu -> Flatten -> MatMul (no bias)
    or Gemm (transB = 0, alpha 2, beta 0.5, a scalar C)."""
    from onnx import helper

    from onnx_builder import build, const, weights

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1]),
             helper.make_node("Mul", ["c", "m"], ["cm"]),
             helper.make_node("Relu", ["cm"], ["r"]),
             helper.make_node("Flatten", ["r"], ["f"])]
    inits = [const("w", weights(rng, 4, 3, 3)), const("m", np.full((1, 4, 1), mul)),
             const("d", weights(rng, 80, 2))]
    if gemm:
        nodes.append(helper.make_node("Gemm", ["f", "d", "c0"], ["y"], alpha=2.0, beta=0.5))
        inits.append(const("c0", [0.25]))
    else:
        nodes.append(helper.make_node("MatMul", ["f", "d"], ["y"]))
    return build(nodes, inits, input_shape=("N", 3, 20))


@pytest.mark.parametrize("gemm", [False, True])
def test_writing_back_conv_without_bias_scaled_constant_and_dense_variants(gemm: bool) -> None:
    model = tsv.load(_small_graph(0.5, gemm))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((32, 3, 20)).astype(np.float32)
    y = rng.standard_normal((32, 2)).astype(np.float32)
    result = finetune(model, x, y, epochs=3, lr=1e-2, batch_size=8, progress=False)
    tuned = result.model
    np.testing.assert_allclose(tuned.predict(x), ort_run(result.onnx_bytes, x), rtol=1e-5, atol=1e-6)
    assert result.history["loss"][-1] < result.history["loss"][0]
    trainer = _native.Trainer(tuned._native, "mse")
    dense = trainer.parameters[-1]
    bias = trainer.get()[dense["bias_offset"]:dense["bias_offset"] + 2]
    conv = trainer.parameters[0]
    proto = onnx.load_from_string(result.onnx_bytes)
    conv_node = next(n for n in proto.graph.node if n.op_type == "Conv")
    assert len(conv_node.input) == 3  # the Conv gained a bias, which trained
    assert np.abs(trainer.get()[conv["bias_offset"]:conv["bias_offset"] + 4]).max() > 0
    if gemm:
        assert np.abs(bias - 0.125).max() > 1e-4  # beta * C trained away from 0.5 * 0.25
    else:
        np.testing.assert_array_equal(bias, 0)  # a MatMul without an Add has no bias to train


def test_a_folded_constant_of_zero_cannot_be_written_back() -> None:
    model = tsv.load(_small_graph(0.0))
    x = np.zeros((4, 3, 20), np.float32)
    with pytest.raises(tsv.ArgumentError, match="scales some filters by 0"):
        finetune(model, x, np.zeros((4, 2)), progress=False)


def test_progress_off_a_terminal_is_one_line_with_the_losses(capsys: pytest.CaptureFixture[str]) -> None:
    model = tsv.load(_small_graph(0.5))
    x = np.random.default_rng(0).standard_normal((20, 3, 20)).astype(np.float32)
    finetune(model, x, np.zeros((20, 2)), epochs=2, batch_size=8, validation=(x, np.zeros((20, 2))))
    err = capsys.readouterr().err
    assert "fine-tuned 6 of 6 batches in" in err and "(epoch 2: loss " in err and ", val " in err
    assert "\r" not in err and err.count("\n") == 1


def test_weights_computed_in_the_graph_are_refused_before_training() -> None:
    from onnx import helper

    from onnx_builder import build, const, weights

    rng = np.random.default_rng(0)
    data = build([helper.make_node("Transpose", ["wt"], ["w"], perm=[2, 1, 0]),
                  helper.make_node("Conv", ["x", "w"], ["c"]),
                  helper.make_node("GlobalAveragePool", ["c"], ["g"]),
                  helper.make_node("Flatten", ["g"], ["y"])],
                 [const("wt", weights(rng, 3, 3, 4))], input_shape=("N", 3, 20))
    model = tsv.load(data)
    with pytest.raises(tsv.ArgumentError, match="its weights 'w' are computed by other nodes"):
        finetune(model, np.zeros((4, 3, 20)), np.zeros((4, 4)), progress=False)
