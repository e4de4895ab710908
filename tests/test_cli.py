"""The command line: the demo on the shipped model and data, analyze and prune on any model and
data file, every option documented, and bad input reported in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tsviz_native as tsv
from conftest import model_path, real_windows
from tsviz_native.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_demo_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "demo", "--out", str(tmp_path), "--quiet", "--index", "3")
    assert code == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["index"] == 3 and summary["model"] == "forecaster_b5m.onnx"
    for name in ("input_saliency.png", "importance.png", "top_filters.png"):
        png = tmp_path / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    arrays = np.load(tmp_path / "arrays.npz")
    from tsviz_native import models

    X, _, _ = models.forecaster_windows("test")
    ex = tsv.load(models.path("forecaster")).explain(X[3])
    np.testing.assert_allclose(arrays["output_saliency"], ex.output_saliency[0])
    for i, name in enumerate(ex.layer_names):
        np.testing.assert_allclose(arrays[f"importance_{i}"], ex.importance[name][0])
        assert summary["layers"][i]["near_zero"] == int(np.sum(ex.importance[name][0] <= 0.01)) or len(ex.importance[name][0]) == 1
    for i, layer in enumerate(summary["layers"][:3]):  # dead filters apart, only live ones clustered
        acts = ex.activations[layer["name"]][0]
        dead = np.flatnonzero(~np.any(acts != 0, axis=1)).tolist()
        assert layer["dead_filters"] == dead and layer["dead"] == len(dead)
        assert layer["label"] == ex.layers[i].label
        red = summary["observations"]["redundancy"][layer["name"]]
        assert red["live"] == layer["n_filters"] - len(dead) == sum(red["sizes"])
        assert [c for f, c in enumerate(layer["clusters"]) if f in dead] == [-1] * len(dead)
        assert min(c for f, c in enumerate(layer["clusters"]) if f not in dead) == 0
    shares = summary["observations"]["channel_saliency_share"]
    assert abs(sum(shares.values()) - 1) < 1e-9 and "over all 6630 windows" in summary["observations"]["channel_scope"]
    assert "1. Filters contributing (near) nothing" in out and "2. Redundancy" in out and "3. Saliency mass" in out
    assert "on the original scale: prediction" in out
    # one order: the report, then the files written, nothing after them
    assert out.rstrip().splitlines()[-1].startswith("written: ") and out.count("written: ") == 1
    assert out.count("45.2%") == 1


def test_demo_classifier(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "demo", "--model", "fcn-gunpoint", "--out", str(tmp_path), "--quiet", "--no-pictures")
    assert code == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["target"] == int(np.argmax(summary["prediction"]))


@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_analyze_any_model_and_data_file(tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]) -> None:
    X = real_windows((2, 50), "NCT", 20)
    data = tmp_path / f"windows{suffix}"
    if suffix == ".npy":
        np.save(data, X)
    else:
        np.savetxt(data, X.reshape(len(X), -1), delimiter=",")
    code, out, _ = run(capsys, "analyze", str(model_path("paper_net_op17")), str(data), "--index", "5",
                       "--out", str(tmp_path / "r"), "--quiet", "--no-pictures")
    assert code == 0, out
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    ex = tsv.load(model_path("paper_net_op17")).explain(X[5])
    np.testing.assert_allclose(summary["prediction"], ex.output[0], rtol=1e-6)


def test_prune_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gun = tsv.datasets.ucr("GunPoint")
    data = tmp_path / "gun.npz"
    np.savez(data, X=gun.X_test.astype(np.float32), y=gun.y_test)
    out_model = tmp_path / "pruned.onnx"
    code, out, err = run(capsys, "prune", str(model_path("fcn_op17")), str(data), "--fraction", "0.3",
                         "--out", str(out_model), "--quiet")
    assert code == 0, err
    assert "accuracy" in out and "parameters" in out and "predict ms" in out
    pruned = tsv.load(out_model)
    assert [l.n_filters for l in pruned.layers] == [90, 179, 90, 2]


def test_every_option_is_documented() -> None:
    import argparse

    from tsviz_native.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {"demo", "analyze", "prune", "summary", "predict"} <= set(commands.choices)
    for name, sub in commands.choices.items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help and len(action.help) > 5, f"tsviz {name} {action.dest} has no help"
    # Run from tests/, so the installed package is imported, not the checkout's sources.
    text = subprocess.run([sys.executable, "-m", "tsviz_native.cli", "analyze", "--help"],
                          capture_output=True, text=True, check=True, cwd=Path(__file__).parent).stdout
    assert "--index" in text and "--target" in text and "--out" in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["analyze", "missing.onnx", "x.npy"], "missing.onnx: no such file"),
        (["analyze", "MODEL", "nothere.npy"], "nothere.npy: no such file"),
        (["analyze", "MODEL", "BAD.npy"], "not a readable .npy file"),
        (["analyze", "MODEL", "WRONG.npy"], "the model expects (2, 50)"),
        (["analyze", "MODEL", "GOOD.npy", "--index", "99"], "--index 99: the data has windows 0..3"),
        (["analyze", "MODEL", "GOOD.npy", "--target", "1"], "--target 1: the model has output units 0..0"),
        (["analyze", "MODEL", "GOOD.npy", "--out", "GOOD.npy"], "--out GOOD.npy: a file of that name exists"),
        (["analyze", "MODEL", "ROWS.csv"], "a row has 104 values; each row must hold one window of 2 channels x 50 steps = 100 values, channel-major"),
        (["prune", "MODEL", "GOOD.npy", "--out", "nofolder/p.onnx"], "the folder nofolder does not exist"),
        (["prune", "MODEL", "GOOD.npy", "--out", "p.onnx", "--fraction", "1.5"], "--fraction 1.5: expected 0 <= F < 1"),
        (["demo", "--index", "99999"], "--index 99999: the data has windows 0..6629"),
        (["demo", "--out", "GOOD.npy"], "--out GOOD.npy: a file of that name exists"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "BAD.npy").write_bytes(b"not numpy")
    np.save(tmp_path / "WRONG.npy", np.zeros((4, 3, 50), np.float32))
    np.save(tmp_path / "GOOD.npy", real_windows((2, 50), "NCT", 4))
    np.savetxt(tmp_path / "ROWS.csv", np.zeros((3, 104)), delimiter=",")
    argv = [str(model_path("paper_net_op17")) if a == "MODEL" else a for a in argv]
    code, _, err = run(capsys, *argv, "--quiet") if argv[0] != "summary" else run(capsys, *argv)
    assert code == 2
    assert err.startswith("tsviz: error: ") and err.count("\n") == 1
    assert message in err


def test_bare_tsviz_prints_the_usage_and_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys)
    assert code == 2
    assert out.startswith("usage: tsviz") and all(c in out for c in ("demo", "analyze", "prune", "view", "render", "summary"))


def test_prune_without_targets_compares_with_the_original(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gun = tsv.datasets.ucr("GunPoint")
    data = tmp_path / "gun.npy"
    np.save(data, gun.X_test[:60].astype(np.float32))
    code, out, err = run(capsys, "prune", str(model_path("fcn_op17")), str(data), "--fraction", "0.3",
                         "--out", str(tmp_path / "p.onnx"), "--quiet")
    assert code == 0, err
    assert "no targets given: the pruned model is compared with the original's outputs" in out
    line = next(l for l in out.splitlines() if l.startswith("same class as original %"))
    model, pruned = tsv.load(model_path("fcn_op17")), tsv.load(tmp_path / "p.onnx")
    held = gun.X_test[30:60].astype(np.float32)
    same = 100 * np.mean(model.predict(held).argmax(1) == pruned.predict(held).argmax(1))
    assert float(line.split()[-1]) == pytest.approx(same, abs=1e-3)


def test_prune_reports_the_forecaster_on_the_original_scale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tsviz_native import models

    X, y, y_orig = models.forecaster_windows("test")
    data = tmp_path / "b5m.npz"
    np.savez(data, X=X[:400], y=y[:400])
    code, out, err = run(capsys, "prune", "forecaster", str(data), "--fraction", "0.1", "--out",
                         str(tmp_path / "p.onnx"), "--quiet")
    assert code == 0, err
    assert "errors on the original scale (y * 1943.04 + 3742.41, from the model record)" in out
    pred = tsv.load(models.path("forecaster")).predict(X[200:400])[:, 0] * 1943.0400039841763 + 3742.412836646793
    mape = 100 * np.mean(np.abs(pred - y_orig[200:400]) / y_orig[200:400])
    row = next(l for l in out.splitlines() if l.startswith("MAPE %")).split()
    assert float(row[2]) == pytest.approx(mape, rel=1e-4) and float(row[2]) < 5  # not the scaled 18.6
    params = next(l for l in out.splitlines() if l.startswith("parameters")).split()
    assert int(params[1]) == tsv.load(models.path("forecaster")).n_parameters == 6257
    # the same model without its record: the scale is named
    plain = tmp_path / "plain.onnx"
    plain.write_bytes(models.path("forecaster").read_bytes())
    code, out, _ = run(capsys, "prune", str(plain), str(data), "--fraction", "0.1", "--out", str(tmp_path / "q.onnx"), "--quiet")
    assert code == 0 and "errors on the scale of the model's outputs (no scaling in a model record)" in out


def test_progress_off_a_terminal_is_one_line(tmp_path: Path) -> None:
    X = real_windows((2, 50), "NCT", 300)
    np.save(tmp_path / "w.npy", X)
    res = subprocess.run([sys.executable, "-m", "tsviz_native.cli", "analyze", str(model_path("paper_net_op17")),
                          str(tmp_path / "w.npy"), "--out", str(tmp_path / "r"), "--no-pictures"],
                         capture_output=True, text=True, cwd=Path(__file__).parent, check=True)
    assert "\r" not in res.stderr and "\r" not in res.stdout
    assert "explained 300 of 300 windows in" in res.stderr


def test_view_without_a_display_says_so_in_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    code, _, err = run(capsys, "view", "forecaster")
    assert code == 2 and err.count("\n") == 1
    assert "tsviz view needs a display" in err and "tsviz render" in err


def test_layers_are_named_by_label_index_or_tensor(capsys: pytest.CaptureFixture[str]) -> None:
    model = tsv.load(model_path("keras_fcn_op17"))
    labels = [l.label for l in model.layers]
    assert labels == ["conv 1 · k=8 · 128 filters", "conv 2 · k=5 · 256 filters", "conv 3 · k=3 · 128 filters",
                      "dense 1 · 2 units"]
    second = model.layers[1]
    for key in (1, "1", -3, second.name, second.label, "conv 2", "CONV  2"):
        assert model.layer(key) is second
    with pytest.raises(tsv.ArgumentError, match=r"no filter layer named 'batchnorm/add_1:0'; give a number 0..3, a label"):
        model.layer("batchnorm/add_1:0")
    ex = model.explain(real_windows((150, 1), "NTC", 1))
    assert ex.saliency("conv 2", 3).shape == ex.saliency(second.name, 3).shape == (1, 1, 150)
    assert ex.clusters(2, sample=0).labels.shape == (1, 128)
    assert set(ex.trace("conv 3", 0, 5)) == set(ex.trace(model.layers[2].name, 0, 5))
    from tsviz_native.viewer.commands import _layer, parse_highlight  # --layer and --highlight

    assert _layer(model, "conv 2") == _layer(model, second.name) == _layer(model, "1") == second.name
    assert parse_highlight(model, "conv 2:3:4").tensor == parse_highlight(model, f"{second.name}:3:4").tensor == second.name
    code, out, _ = run(capsys, "summary", str(model_path("keras_fcn_op17")))
    assert code == 0 and "from tf2onnx 1.17.0)" in out and "None" not in out
    assert f"[1] conv 2 · k=5 · 256 filters  {second.name}" in out


def test_prune_with_finetuning_recovers_the_forecaster(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tsviz_native import models

    X, y, _ = models.forecaster_windows("train")
    data = tmp_path / "b5m.npz"
    np.savez(data, X=X[-1000:], y=y[-1000:])
    args = ["prune", "forecaster", str(data), "--fraction", "0.5", "--holdout", "0.3", "--quiet"]
    code, plain, err = run(capsys, *args, "--out", str(tmp_path / "p.onnx"))
    assert code == 0, err
    code, tuned, err = run(capsys, *args, "--out", str(tmp_path / "t.onnx"), "--finetune", "3", "--steps", "2")
    assert code == 0, err
    assert "fine-tuning step 1: " in tuned and "fine-tuning step 2: " in tuned
    mape = [float(next(l for l in o.splitlines() if l.startswith("MAPE %")).split()[3]) for o in (plain, tuned)]
    assert mape[1] < mape[0]
    assert [l.n_filters for l in tsv.load(tmp_path / "t.onnx").layers] == [8, 16, 16, 1]
    code, _, err = run(capsys, *args, "--out", str(tmp_path / "s.onnx"), "--steps", "2")
    assert code == 2 and "--steps needs --finetune" in err
