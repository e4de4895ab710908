"""The command line of the analyses beyond the paper: analyze --wrt loss, attack, inverse and
faithfulness write JSON and PNG into the report folder and report bad input in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tsviz_native as tsv
from tsviz_native import models
from tsviz_native.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000


def test_analyze_wrt_loss(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    X, labels = models.gunpoint("test")
    data = tmp_path / "gp.npz"
    np.savez(data, X=X[:6], y=labels[:6])
    out = tmp_path / "rep"
    code, text, err = run(capsys, "analyze", "fcn-gunpoint", str(data), "--wrt", "loss", "--index", "2",
                          "--out", str(out), "--quiet", "--no-pictures")
    assert code == 0, err
    assert "explained the cross_entropy loss against the target" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["target"] == int(labels[2]) and summary["explained"].startswith("cross_entropy loss")
    ex = tsv.load(models.path("fcn-gunpoint")).explain(X[2], wrt="loss", y_true=labels[2])
    np.testing.assert_allclose(np.load(out / "arrays.npz")["output_saliency"], ex.output_saliency[0])
    np.save(tmp_path / "x.npy", X[:6])
    code, _, err = run(capsys, "analyze", "fcn-gunpoint", str(tmp_path / "x.npy"), "--wrt", "loss",
                       "--out", str(out), "--quiet", "--no-pictures")
    assert code == 2 and "--wrt loss needs the targets" in err


def test_attack_writes_the_curve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text, err = run(capsys, "attack", "forecaster", "--method", "fgsm", "--eps", "0.02", "0.05",
                          "--limit", "40", "--out", str(tmp_path))
    assert code == 0, err
    rec = json.loads((tmp_path / "attack.json").read_text())
    assert rec["eps"] == [0.0, 0.02, 0.05] and rec["n_windows"] == 40
    assert rec["metrics"]["RMSE"][2] > rec["metrics"]["RMSE"][0]
    assert rec["window"]["max_abs_change"] <= 0.05 + 1e-6
    assert png(tmp_path / "attack_curve.png") and png(tmp_path / "attack_window.png")
    w = np.load(tmp_path / "attack_window.npz")
    assert w["x_adv"].shape == (2, 50)
    assert "RMSE" in text and "original scale" in text


def test_inverse_writes_the_picture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text, err = run(capsys, "inverse", "forecaster", "--layer", "conv 2", "--filter", "3", "--steps", "15",
                          "--lr", "0.02", "--max-change", "0.3", "--out", str(tmp_path))
    assert code == 0, err
    rec = json.loads((tmp_path / "inverse.json").read_text())
    assert rec["steps"] == 15 and rec["largest_change"] <= 0.3 + 1e-6
    assert png(tmp_path / "inverse.png")
    assert np.load(tmp_path / "inverse.npz")["trajectory"].shape == (16, 2, 50)
    code, _, err = run(capsys, "inverse", "forecaster", "--layer", "conv 2", "--out", str(tmp_path))
    assert code == 2 and "--layer and --filter together" in err


def test_faithfulness_writes_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, text, err = run(capsys, "faithfulness", "forecaster", "--limit", "32", "--ks", "0.25", "--repeats", "1",
                          "--out", str(tmp_path))
    assert code == 0, err
    rec = json.loads((tmp_path / "faithfulness.json").read_text())
    assert {r["scope"] for r in rec["rows"]} >= {"network"} and rec["metric_against"] == "targets"
    assert png(tmp_path / "faithfulness_filters.png") and png(tmp_path / "faithfulness_input.png")
    assert "deletion" in text and "insertion" in text
    code, _, err = run(capsys, "faithfulness", "no-such.onnx", "--out", str(tmp_path))
    assert code == 2 and "no-such.onnx" in err
