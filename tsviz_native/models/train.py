"""Train, evaluate and export the models shipped in ``tsviz_native/models/``.

A training-time tool, not part of the package's API: the package never imports this file, and
PyTorch, onnxruntime and statsmodels are needed only here. Run it from the repository root with
the PyTorch environment::

    python tsviz_native/models/train.py forecaster   # B5M CNN (paper, Sec. 4)
    python tsviz_native/models/train.py fcn          # FCN on UCR GunPoint
    python tsviz_native/models/train.py all          # both

and then check the exported files with the package's own engine (system python, no torch)::

    python3 tsviz_native/models/train.py check

Data are read straight from the files shipped in ``tsviz_native/datasets/data/`` (importing
``tsviz_native`` would load its compiled engine, which the PyTorch environment lacks). The windows
and normalisation come from ``tsviz_native/models/windows.py``, loaded by file path, which is the
same code ``tsviz_native.models.forecaster_windows`` and ``gunpoint`` use.

Everything is deterministic given the seed: one CPU thread, ``torch.use_deterministic_algorithms``,
a seeded generator for initialisation and for the shuffling order, and an epoch budget (never a
wall-clock budget). Only the recorded wall times differ between runs.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PKG = HERE.parent
DATA = PKG / "datasets" / "data"
B5M_CSV = DATA / "internet_traffic" / "B5M.csv"
GUNPOINT_TS = {s: DATA / "ucr" / f"GunPoint_{s.upper()}.ts" for s in ("train", "test")}

FORECASTER_ONNX = HERE / "forecaster_b5m.onnx"
FORECASTER_JSON = HERE / "forecaster_b5m.json"
FCN_ONNX = HERE / "fcn_gunpoint.onnx"
FCN_JSON = HERE / "fcn_gunpoint.json"

# Forecaster hyper-parameters. Paper (Sec. 4): Adam, lr 0.001, batch 5, MSE, 5000 epochs; here
# early stopping on the validation loss replaces the 5000 epochs (see MODELS.md).
FC_SEED = 20190101
FC_LR = 1e-3
FC_BATCH = 5
FC_MAX_EPOCHS = 120
FC_PATIENCE = 40
HW_PERIOD = 288  # one day of 5-minute steps

# FCN hyper-parameters, as in Wang et al.'s public Keras code (FCN.py): Adam lr 0.001, batch
# min(n_train / 10, 16) = 5 for GunPoint, 2000 epochs, ReduceLROnPlateau(monitor=training loss,
# factor 0.5, patience 50, min_lr 1e-4), report the epoch with the lowest training loss.
FCN_SEED = 20170101
FCN_LR = 1e-3
FCN_EPOCHS = 2000
FCN_PLATEAU = {"factor": 0.5, "patience": 50, "min_lr": 1e-4}

NUM_THREADS = 1


def load_windows_module():
    """``tsviz_native/models/windows.py`` loaded by path (numpy only)."""
    spec = importlib.util.spec_from_file_location("tsviz_models_windows", HERE / "windows.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


W = load_windows_module()


# ------------------------------------------------------------------------------------------
# data readers (same parsing as tsviz_native.datasets: float() of the text)
# ------------------------------------------------------------------------------------------


def read_b5m() -> np.ndarray:
    with open(B5M_CSV, newline="", encoding="ascii") as fh:
        rows = list(csv.reader(fh))
    if rows[0] != ["timestamp", "value"]:
        raise ValueError(f"{B5M_CSV}: unexpected header {rows[0]!r}")
    return np.asarray([float(r[1]) for r in rows[1:] if r], dtype=np.float64)


def read_gunpoint(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(X float64 (n, 1, 150), y int64 with labels '1','2' -> 0, 1) like ``datasets.ucr``."""
    X, y, in_data = [], [], False
    for line in GUNPOINT_TS[split].read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            in_data = line.lower().startswith("@data")
            continue
        *series, label = line.split(":")
        X.append([[float(v) for v in series[0].split(",")]])
        y.append({"1": 0, "2": 1}[label.strip()])
    return np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64)


def metrics(y: np.ndarray, yhat: np.ndarray) -> dict[str, float]:
    """MAPE (%) and RMSE on the original scale (docs/definitions.md, "Scales and the model record")."""
    y = np.asarray(y, np.float64)
    yhat = np.asarray(yhat, np.float64)
    return {"mape": float(100.0 * np.mean(np.abs(y - yhat) / np.abs(y))),
            "rmse": float(np.sqrt(np.mean((y - yhat) ** 2)))}


def versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch
    out = {"python": platform.python_version(), "numpy": np.__version__,
           "torch": torch.__version__, "onnx": onnx.__version__,
           "onnxruntime": onnxruntime.__version__}
    try:
        import statsmodels
        out["statsmodels"] = statsmodels.__version__
    except ImportError:
        pass
    return out


def setup_torch(seed: int):
    import torch
    torch.set_num_threads(NUM_THREADS)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def export_onnx(model, example, path: Path, dynamic_time: bool) -> None:
    """TorchScript exporter, opset 17, input "x", output "y", batch (and optionally T) dynamic."""
    import onnx
    import torch
    axes = {0: "N"}
    if dynamic_time:
        axes[2] = "T"
    model.eval()
    torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=17,
                      input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": axes, "y": {0: "N"}})
    m = onnx.load(str(path))
    for node in m.graph.node:  # drop exporter stack traces (they hold local paths)
        node.doc_string = ""
    m.graph.doc_string = ""
    m.doc_string = ""
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


def ort_run(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(["y"], {"x": np.ascontiguousarray(x, dtype=np.float32)})[0]


# ------------------------------------------------------------------------------------------
# forecaster
# ------------------------------------------------------------------------------------------


def build_forecaster():
    from torch import nn
    # Same layout as the project's test model ``paper_net``: 3 conv, 2 max-pool, 1 dense, ReLU.
    return nn.Sequential(
        nn.Conv1d(2, 16, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(32, 32, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 12, 1),
    )


def holt_winters(values: np.ndarray, train_end: int, period: int) -> tuple[np.ndarray, dict]:
    """One-step-ahead Holt-Winters forecasts for every index of ``values``.

    Additive trend and additive seasonality (period ``period``) fitted by statsmodels on
    ``values[:train_end]`` (initial states estimated with the smoothing parameters); then the
    parameters and initial states are frozen and the same recursion is run through the whole
    series, so the forecast for index ``t`` uses only ``values[:t]``. The statsmodels rerun is
    cross-checked against a plain numpy recursion.
    """
    import warnings

    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    kw = {"trend": "add", "seasonal": "add", "seasonal_periods": period}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = ExponentialSmoothing(values[:train_end], initialization_method="estimated",
                                   **kw).fit()
    p = fit.params
    frozen = ExponentialSmoothing(
        values, initialization_method="known", initial_level=p["initial_level"],
        initial_trend=p["initial_trend"], initial_seasonal=p["initial_seasons"], **kw,
    ).fit(smoothing_level=p["smoothing_level"], smoothing_trend=p["smoothing_trend"],
          smoothing_seasonal=p["smoothing_seasonal"], optimized=False)
    pred = np.asarray(frozen.fittedvalues, dtype=np.float64)
    if np.max(np.abs(pred[:train_end] - np.asarray(fit.fittedvalues))) > 1e-6:
        raise RuntimeError("frozen Holt-Winters run does not reproduce the training fit")

    # The Holt-Winters recursion (statsmodels' additive form), written out as a cross-check.
    a, b, g = p["smoothing_level"], p["smoothing_trend"], p["smoothing_seasonal"]
    level, trend = float(p["initial_level"]), float(p["initial_trend"])
    season = list(np.asarray(p["initial_seasons"], dtype=np.float64))
    own = np.empty_like(values)
    for t, y in enumerate(values):
        s = season[t]
        own[t] = level + trend + s
        new_level = a * (y - s) + (1 - a) * (level + trend)
        season.append(g * (y - level - trend) + (1 - g) * s)
        trend = b * (new_level - level) + (1 - b) * trend
        level = new_level
    diff = float(np.max(np.abs(own - pred)))
    if diff > 1e-6 * float(np.max(np.abs(values))):
        raise RuntimeError(f"Holt-Winters recursion differs from statsmodels by {diff}")
    info = {"smoothing_level": float(a), "smoothing_trend": float(b),
            "smoothing_seasonal": float(g), "initial_level": float(p["initial_level"]),
            "initial_trend": float(p["initial_trend"]), "seasonal_period": period,
            "trend": "additive", "seasonal": "additive", "damped": False,
            "fitted_on": f"values[0:{train_end}]",
            "initialization": "estimated (statsmodels holtwinters), then frozen",
            "max_abs_diff_statsmodels_vs_numpy_recursion": diff}
    return pred, info


def train_forecaster(max_epochs: int = FC_MAX_EPOCHS, patience: int = FC_PATIENCE,
                     seed: int = FC_SEED) -> dict:
    import torch

    t_start = time.time()
    gen = setup_torch(seed)
    values = read_b5m()
    idx = W.split_indices(len(values))
    mean, std = W.fit_scaler(values, idx["test_start"])
    win = W.WINDOW
    parts = {name: W.make_windows(values, mean, std, win, *W.split_range(name, idx))
             for name in ("train", "validation", "test")}
    Xtr, ytr = torch.from_numpy(parts["train"][0]), torch.from_numpy(parts["train"][1]).float()
    Xva, yva = torch.from_numpy(parts["validation"][0]), torch.from_numpy(
        parts["validation"][1]).float()
    n_train = Xtr.shape[0]
    print(f"B5M: n={len(values)} split={idx} mean={mean:.6f} std={std:.6f} windows: "
          + ", ".join(f"{k}={v[0].shape[0]}" for k, v in parts.items()), flush=True)

    model = build_forecaster()
    opt = torch.optim.Adam(model.parameters(), lr=FC_LR)
    loss_fn = torch.nn.MSELoss()
    best = (float("inf"), -1, None)
    history = []
    for epoch in range(1, max_epochs + 1):
        t0 = time.time()
        model.train()
        perm = torch.randperm(n_train, generator=gen)
        total = 0.0
        for i in range(0, n_train, FC_BATCH):
            b = perm[i:i + FC_BATCH]
            opt.zero_grad()
            loss = loss_fn(model(Xtr[b]).squeeze(1), ytr[b])
            loss.backward()
            opt.step()
            total += loss.item() * b.numel()
        model.eval()
        with torch.no_grad():
            val = float(loss_fn(model(Xva).squeeze(1), yva))
        history.append({"epoch": epoch, "train_mse": total / n_train, "val_mse": val})
        improved = val < best[0]
        if improved:
            best = (val, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
        print(f"epoch {epoch:4d} train_mse {total / n_train:.6f} val_mse {val:.6f}"
              f"{' *' if improved else ''} ({time.time() - t0:.1f}s)", flush=True)
        if epoch - best[1] >= patience:
            break
    epochs_run = epoch
    model.load_state_dict(best[2])
    model.eval()
    train_wall = time.time() - t_start

    # ---- evaluation on the test third --------------------------------------------------
    Xte, _, yte, targets = parts["test"]
    with torch.no_grad():
        cnn_s = model(torch.from_numpy(Xte)).squeeze(1).double().numpy()
    cnn = cnn_s * std + mean
    persistence = values[targets - 1]
    hw_all, hw_info = holt_winters(values, idx["train_end"], HW_PERIOD)
    hw = hw_all[targets]
    results = {"cnn": metrics(yte, cnn), "persistence": metrics(yte, persistence),
               "holt_winters": metrics(yte, hw)}
    # the same on the validation part, for context (never used for any choice but stopping)
    Xv, _, yv, tv = parts["validation"]
    with torch.no_grad():
        cnn_v = model(torch.from_numpy(Xv)).squeeze(1).double().numpy() * std + mean
    results_val = {"cnn": metrics(yv, cnn_v), "persistence": metrics(yv, values[tv - 1]),
                   "holt_winters": metrics(yv, hw_all[tv])}
    for k, v in results.items():
        print(f"test {k:13s} MAPE {v['mape']:.4f} %  RMSE {v['rmse']:.3f}")

    # ---- export and check ----------------------------------------------------------------
    export_onnx(model, torch.from_numpy(Xte[:2]), FORECASTER_ONNX, dynamic_time=False)
    ort_out = ort_run(FORECASTER_ONNX, Xte)
    with torch.no_grad():
        torch_out = model(torch.from_numpy(Xte)).numpy()
    ort_diff = float(np.max(np.abs(ort_out - torch_out)))
    print(f"onnxruntime vs torch on {len(Xte)} test windows: max |diff| = {ort_diff:.3g}")
    if ort_diff > 1e-5:
        raise RuntimeError("ONNX export differs from torch by more than 1e-5")

    info = {
        "name": "forecaster",
        "file": FORECASTER_ONNX.name,
        "task": "one-step-ahead forecast of Internet traffic B5M (Cortez et al. 2012), "
                "the TSViz paper's case study (Sec. 4)",
        "dataset": "tsviz_native.datasets.internet_traffic('B5M')",
        "n_values": idx["n"],
        "window": win,
        "channels": ["scaled signal",
                     ("first difference of the scaled signal within the window "
                      "(first element 0)")],
        "input": {"name": "x", "shape": ["N", 2, win], "dtype": "float32"},
        "output": {"name": "y", "shape": ["N", 1],
                   "meaning": "next value, scaled; original = y * std + mean"},
        "scaling": {"method": "standardisation fitted on the training part values[0:train_end]",
                    "mean": mean, "std": std, "ddof": 0},
        "split": {**idx,
                  "description": "training part = values[0:train_end] (first two thirds, "
                                 "train_end = floor(2n/3)); validation = its last 20% "
                                 "(targets in [val_start, train_end)); fitting windows have "
                                 "targets in [window, val_start); test windows have targets "
                                 "in [test_start, n). A window belongs to the split of its "
                                 "target."},
        "n_windows": {k: int(v[0].shape[0]) for k, v in parts.items()},
        "architecture": "Conv1d(2,16,5,p=2)-ReLU-MaxPool(2)-Conv1d(16,32,5,p=2)-ReLU-MaxPool(2)-"
                        "Conv1d(32,32,3,p=1)-ReLU-Flatten-Linear(384,1)",
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "training": {"optimizer": "Adam", "lr": FC_LR, "batch_size": FC_BATCH, "loss": "MSE",
                     "max_epochs": max_epochs, "early_stopping_patience": patience,
                     "monitor": "validation MSE (scaled)", "epochs_run": epochs_run,
                     "best_epoch": best[1], "best_val_mse": best[0],
                     "restored": "weights of best_epoch",
                     "seed": seed, "num_threads": NUM_THREADS,
                     "deterministic_algorithms": True,
                     "wall_time_s": round(train_wall, 1),
                     "history": [{k: (round(v, 7) if isinstance(v, float) else v)
                                  for k, v in h.items()} for h in history]},
        "evaluation": {
            "description": "one-step-ahead forecasts for every test target t in "
                           "[test_start, n); errors on the original scale. CNN: from the "
                           "50-step window before t; persistence: values[t-1]; Holt-Winters: "
                           "fitted on the training part, parameters frozen, run forward.",
            "n_test": len(yte),
            "test": results,
            "validation": results_val,
            "holt_winters": hw_info,
        },
        "checks": {"onnxruntime_vs_torch_max_abs_diff": ort_diff},
        "versions": versions(),
        "command": "python tsviz_native/models/train.py forecaster",
    }
    FORECASTER_JSON.write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {FORECASTER_ONNX.name}, {FORECASTER_JSON.name}; "
          f"{epochs_run} epochs (best {best[1]}), {train_wall:.0f} s")
    return info


# ------------------------------------------------------------------------------------------
# FCN on GunPoint
# ------------------------------------------------------------------------------------------


def build_fcn():
    import torch
    from torch import nn

    class FCN(nn.Module):
        """Wang et al. 2017 FCN: 3 x (conv-BN-ReLU), global average pooling, dense, softmax."""

        def __init__(self, n_classes: int = 2):
            super().__init__()
            self.block = nn.Sequential(
                nn.Conv1d(1, 128, 8, padding="same"), nn.BatchNorm1d(128), nn.ReLU(),
                nn.Conv1d(128, 256, 5, padding="same"), nn.BatchNorm1d(256), nn.ReLU(),
                nn.Conv1d(256, 128, 3, padding="same"), nn.BatchNorm1d(128), nn.ReLU(),
            )
            self.fc = nn.Linear(128, n_classes)
            self.softmax_output = True

        def logits(self, x):
            return self.fc(self.block(x).mean(dim=2))

        def forward(self, x):
            return torch.softmax(self.logits(x), dim=1)

    return FCN()


def train_fcn(epochs: int = FCN_EPOCHS, seed: int = FCN_SEED) -> dict:
    import warnings

    import torch

    warnings.filterwarnings("ignore", message="Using padding='same' with even kernel")
    t_start = time.time()
    gen = setup_torch(seed)
    Xtr_raw, ytr = read_gunpoint("train")
    Xte_raw, yte = read_gunpoint("test")
    Xtr, Xte = W.znormalise(Xtr_raw), W.znormalise(Xte_raw)
    batch = int(min(Xtr.shape[0] // 10, 16))
    Xtr_t, ytr_t = torch.from_numpy(Xtr), torch.from_numpy(ytr)
    model = build_fcn()
    opt = torch.optim.Adam(model.parameters(), lr=FCN_LR)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", **FCN_PLATEAU)
    best = (float("inf"), -1, None)
    history = []
    n = Xtr.shape[0]
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for i in range(0, n, batch):
            b = perm[i:i + batch]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model.logits(Xtr_t[b]), ytr_t[b])
            loss.backward()
            opt.step()
            total += loss.item() * b.numel()
        train_loss = total / n
        sched.step(train_loss)
        if train_loss < best[0]:
            best = (train_loss, epoch,
                    {k: v.detach().clone() for k, v in model.state_dict().items()})
        if epoch % 100 == 0 or epoch == 1:
            history.append({"epoch": epoch, "train_loss": round(train_loss, 7),
                            "lr": opt.param_groups[0]["lr"]})
            print(f"epoch {epoch:5d} train_loss {train_loss:.6f} lr {opt.param_groups[0]['lr']:.2g}"
                  f" best {best[0]:.3g}@{best[1]} ({time.time() - t_start:.0f}s)", flush=True)
    model.load_state_dict(best[2])
    model.eval()
    wall = time.time() - t_start
    with torch.no_grad():
        p_test = model(torch.from_numpy(Xte)).numpy()
        p_train = model(torch.from_numpy(Xtr)).numpy()
    acc_test = float(np.mean(p_test.argmax(1) == yte))
    acc_train = float(np.mean(p_train.argmax(1) == ytr))
    print(f"FCN GunPoint: train acc {acc_train:.4f}, test acc {acc_test:.4f} "
          f"(best training loss {best[0]:.3g} at epoch {best[1]}), {wall:.0f} s")

    export_onnx(model, torch.from_numpy(Xte[:2]), FCN_ONNX, dynamic_time=True)
    ort_out = ort_run(FCN_ONNX, Xte)
    ort_diff = float(np.max(np.abs(ort_out - p_test)))
    print(f"onnxruntime vs torch on the 150 test series: max |diff| = {ort_diff:.3g}")
    if ort_diff > 1e-5:
        raise RuntimeError("ONNX export differs from torch by more than 1e-5")

    info = {
        "name": "fcn-gunpoint",
        "file": FCN_ONNX.name,
        "task": "binary classification of UCR GunPoint (Gun-Draw = class 0 = label '1', "
                "Point = class 1 = label '2')",
        "dataset": "tsviz_native.datasets.ucr('GunPoint') (standard UCR train/test split)",
        "classes": ["1", "2"],
        "input": {"name": "x", "shape": ["N", 1, "T"], "dtype": "float32",
                  "trained_length": 150},
        "output": {"name": "y", "shape": ["N", 2], "meaning": "class probabilities (softmax)"},
        "normalisation": {"method": "z-normalise every series (its own mean and population "
                                    "standard deviation, ddof=0), as in the UCR convention",
                          "eps": 1e-8},
        "architecture": "Conv1d(1,128,8,same)-BN-ReLU-Conv1d(128,256,5,same)-BN-ReLU-"
                        "Conv1d(256,128,3,same)-BN-ReLU-GlobalAvgPool-Linear(128,2)-Softmax",
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "training": {"optimizer": "Adam", "lr": FCN_LR, "batch_size": batch,
                     "batch_rule": "min(n_train // 10, 16) as in Wang et al.'s code",
                     "loss": "cross-entropy", "epochs": epochs,
                     "lr_schedule": {"ReduceLROnPlateau_on": "training loss", **FCN_PLATEAU},
                     "selection": "weights of the epoch with the lowest training loss "
                                  "(as in Wang et al.'s code); the test set is never used",
                     "selected_epoch": best[1], "selected_train_loss": best[0],
                     "seed": seed, "num_threads": NUM_THREADS,
                     "deterministic_algorithms": True, "wall_time_s": round(wall, 1),
                     "history": history},
        "evaluation": {"train_accuracy": acc_train, "test_accuracy": acc_test,
                       "n_test": len(yte), "test_errors": int(np.sum(p_test.argmax(1) != yte)),
                       "published": {"source": "Wang, Yan, Oates (2017), Time series "
                                               "classification from scratch with deep neural "
                                               "networks: a strong baseline, IJCNN 2017",
                                     "fcn_test_error": 0.0, "fcn_test_accuracy": 1.0}},
        "checks": {"onnxruntime_vs_torch_max_abs_diff": ort_diff},
        "versions": versions(),
        "command": "python tsviz_native/models/train.py fcn",
    }
    FCN_JSON.write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return info


# ------------------------------------------------------------------------------------------
# engine check (system python with tsviz_native built; no torch)
# ------------------------------------------------------------------------------------------


def check_engine() -> int:
    sys.path.insert(0, str(PKG.parent))
    import tsviz_native as tsv
    from tsviz_native import models

    # the package's loaders must give exactly the arrays this script trained and tested on
    meta = models.info("forecaster")
    values = read_b5m()
    for split in ("train", "validation", "test"):
        mine = W.make_windows(values, meta["scaling"]["mean"], meta["scaling"]["std"],
                              meta["window"], *W.split_range(split, meta["split"]))[:3]
        theirs = models.forecaster_windows(split)
        if not all(np.array_equal(a, b) for a, b in zip(mine, theirs)):
            print(f"forecaster_windows({split!r}) differs from the training windows")
            return 1
    for split in ("train", "test"):
        Xs, ys = read_gunpoint(split)
        Xp, yp = models.gunpoint(split)
        if not (np.array_equal(W.znormalise(Xs), Xp) and np.array_equal(ys, yp)):
            print(f"gunpoint({split!r}) differs from the training data")
            return 1
    print("package loaders reproduce the training/test arrays exactly")

    worst = {}
    X, _, _ = models.forecaster_windows("test")
    Xg, _ = models.gunpoint("test")
    Xg_odd = models.gunpoint("train")[0][:, :, :97].copy()  # another length (T is dynamic)
    for name, inputs in (("forecaster", [X]), ("fcn-gunpoint", [Xg, Xg_odd])):
        path = models.path(name)
        m = tsv.load(str(path))
        diff = 0.0
        for x in inputs:
            ref = ort_run(path, x)
            got = np.asarray(m.predict(x))
            diff = max(diff, float(np.max(np.abs(got.reshape(ref.shape) - ref))))
        worst[name] = diff
        print(f"{name}: engine vs onnxruntime max |diff| = {diff:.3g}")
        jpath = path.with_suffix(".json")
        info = json.loads(jpath.read_text(encoding="utf-8"))
        info.setdefault("checks", {})["engine_vs_onnxruntime_max_abs_diff"] = diff
        jpath.write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return 0 if all(d <= 1e-5 for d in worst.values()) else 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["forecaster", "fcn", "all", "check"])
    ap.add_argument("--max-epochs", type=int, default=FC_MAX_EPOCHS)
    ap.add_argument("--patience", type=int, default=FC_PATIENCE)
    ap.add_argument("--fcn-epochs", type=int, default=FCN_EPOCHS)
    args = ap.parse_args(argv)
    if args.what == "check":
        return check_engine()
    if args.what in ("forecaster", "all"):
        train_forecaster(args.max_epochs, args.patience)
    if args.what in ("fcn", "all"):
        train_fcn(args.fcn_epochs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
