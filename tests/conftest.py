"""Shared fixtures: the exported test models and real windows to feed them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

# `python -m pytest` puts the working directory first on sys.path, where the checkout's
# tsviz_native/ (sources without the compiled engine) would shadow the installed package.
# An editable install is found by its own import hook and is not affected.
ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT]

MODELS = Path(__file__).parent / "models"
MANIFEST = json.loads((MODELS / "manifest.json").read_text())["models"]


def model_path(name: str) -> Path:
    return MODELS / MANIFEST[name]["file"]


def real_windows(shape: tuple[int, ...], layout: str, n: int, seed: int = 0) -> np.ndarray:
    """``n`` windows of real data in a model's layout.

    Channels are taken from real series: the B5M Internet traffic signal and its first
    difference (the paper's two inputs), then GunPoint and the other traffic variants, each
    standardised, so every test model sees real time series rather than noise.
    """
    from tsviz_native import datasets

    c, t = (shape[0], shape[1]) if layout == "NCT" else (shape[1], shape[0])
    b5m = datasets.internet_traffic("B5M").values
    series = [b5m, np.diff(b5m, prepend=b5m[0])]
    for variant in ("A5M", "B1H", "A1H"):
        series.append(datasets.internet_traffic(variant).values)
    gun = datasets.ucr("GunPoint").X_test.reshape(-1)
    series.insert(2, gun)
    rng = np.random.default_rng(seed)
    out = np.empty((n, c, t), dtype=np.float32)
    for ch in range(c):
        s = series[ch % len(series)]
        s = (s - s.mean()) / s.std()
        starts = rng.integers(0, len(s) - t, size=n)
        for i, st in enumerate(starts):
            out[i, ch] = s[st : st + t]
    return out if layout == "NCT" else np.ascontiguousarray(out.transpose(0, 2, 1))


def model_family(name: str) -> str:
    """The family of a committed test model: its name without the exporter suffix."""
    for suffix in ("_op11", "_op13", "_op17_bn", "_op17", "_dynamo"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


# The families with a PyTorch equivalent that reads its weights from the ONNX file
# (bench/torch_peers.py and tests/models/make_train_refs.py): their models have PyTorch
# references of the training gradients (tests/models/refs/train_*.npz).
TORCH_FAMILIES = {"paper_net", "fcn", "resnet", "channels_last", "keras_paper_net", "keras_fcn", "ops_zoo",
                  "keras_strided"}
TRAIN_MODELS = [n for n in sorted(MANIFEST) if model_family(n) in TORCH_FAMILIES]


def training_data(name: str, n_outputs: int, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` real windows for a committed model (a free length taken as 64) and random targets:
    class indices of a classifier or standard-normal values, (n, 1) float32."""
    shape = tuple(d if d > 0 else 64 for d in MANIFEST[name]["input_shape"])
    x = real_windows(shape, MANIFEST[name]["layout"], n, seed)
    rng = np.random.default_rng(seed)
    if n_outputs > 1:
        y = rng.integers(0, n_outputs, size=(n, 1)).astype(np.float32)
    else:
        y = rng.standard_normal((n, 1)).astype(np.float32)
    return x, y


def projection_directions(n: int, k: int) -> np.ndarray:
    """``k`` fixed unit vectors of length ``n`` (entries +-1/sqrt(n)), for comparing a long
    gradient with a reference through a few projections (tests/models/refs/train_*.npz).

    The signs are the top bits of splitmix64 of the counter 1, 2, ..., so they do not depend
    on NumPy's random generators, whose streams may change between versions.
    """
    z = np.arange(1, k * n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return np.where(z >> np.uint64(63), 1.0, -1.0).reshape(k, n) / np.sqrt(n)


def ort_run(path: Path | bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(
        path if isinstance(path, bytes) else str(path), providers=["CPUExecutionProvider"]
    )
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def outputs_in_processes(tmp_path: Path, script: str, inputs: dict, envs: dict) -> dict:
    """Runs ``script`` (arguments: the inputs' .npz, the models folder, the .npz to write) in a
    fresh process per entry of ``envs`` ({label: environment variables to set}), since the
    engine reads TSVIZ_NUM_THREADS and TSVIZ_KERNELS when it first runs; returns {label: the
    outputs it wrote}."""
    import os
    import subprocess

    np.savez(tmp_path / "inputs.npz", **inputs)
    path = tmp_path / "script.py"
    path.write_text(script)
    results = {}
    for label, extra in envs.items():
        out = tmp_path / f"out_{label}.npz"
        env = dict(os.environ, **extra)
        subprocess.run([sys.executable, str(path), str(tmp_path / "inputs.npz"), str(MODELS), str(out)],
                       check=True, cwd=tmp_path, env=env)
        results[label] = np.load(out)
    return results


def outputs_at_thread_counts(tmp_path: Path, script: str, inputs: dict, threads=(1, 2, 3)) -> dict:
    """outputs_in_processes at each TSVIZ_NUM_THREADS: {threads: the outputs}."""
    return outputs_in_processes(tmp_path, script, inputs, {n: {"TSVIZ_NUM_THREADS": str(n)} for n in threads})


@pytest.fixture(scope="session")
def manifest() -> dict:
    return MANIFEST
