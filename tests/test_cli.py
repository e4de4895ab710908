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
    shares = summary["observations"]["channel_saliency_share"]
    assert abs(sum(shares.values()) - 1) < 1e-9 and "over all 6630 windows" in summary["observations"]["channel_scope"]
    assert "1. Filters contributing (near) nothing" in out and "2. Redundancy" in out and "3. Saliency mass" in out
    assert "in original units" in out


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
        (["analyze", "MODEL", "GOOD.npy", "--index", "99"], "index 99 is out of range for 4 windows"),
        (["prune", "MODEL", "GOOD.npy", "--out", "p.onnx"], "give the targets"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "BAD.npy").write_bytes(b"not numpy")
    np.save(tmp_path / "WRONG.npy", np.zeros((4, 3, 50), np.float32))
    np.save(tmp_path / "GOOD.npy", real_windows((2, 50), "NCT", 4))
    argv = [str(model_path("paper_net_op17")) if a == "MODEL" else a for a in argv]
    code, _, err = run(capsys, *argv, "--quiet") if argv[0] != "summary" else run(capsys, *argv)
    assert code == 2
    assert err.startswith("tsviz: error: ") and err.count("\n") == 1
    assert message in err
