"""The ``tsviz`` command line: demo, analyze, prune, summary, predict (and view, render)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import tsviz_native as tsv


def _read_array(path: str) -> Any:
    p = Path(path)
    if not p.is_file():
        raise tsv.ArgumentError(f"{path}: no such file")
    try:
        if p.suffix == ".npy":
            return np.load(p, allow_pickle=False)
        if p.suffix == ".npz":
            return dict(np.load(p, allow_pickle=False))
        if p.suffix == ".csv":
            return np.loadtxt(p, delimiter=",", ndmin=2, dtype=np.float64)
    except (ValueError, OSError) as e:
        raise tsv.ArgumentError(f"{path}: not a readable {p.suffix} file ({e})") from None
    raise tsv.ArgumentError(f"{path}: expected a .npy, .npz or .csv file")


def _windows(model: tsv.Model, data: Any, path: str) -> np.ndarray:
    """Windows in the model's layout from an array; CSV rows (one window each) are reshaped."""
    x = data["X"] if isinstance(data, dict) and "X" in data else data
    if isinstance(x, dict):
        raise tsv.ArgumentError(f"{path}: an .npz file needs an array named 'X'")
    x = np.asarray(x)
    shape = model.sample_shape
    if x.ndim == 2 and len(shape) == 2:
        c = shape[0] if model.layout == "NCT" else shape[1]
        if x.shape[1] % c:
            raise tsv.ShapeError(f"{path}: rows of {x.shape[1]} values cannot hold {c} channels")
        t = x.shape[1] // c
        x = x.reshape(len(x), c, t) if model.layout == "NCT" else x.reshape(len(x), t, c)
    if x.ndim != len(shape) + 1:
        raise tsv.ShapeError(f"{path}: windows of shape {x.shape[1:]}; the model expects {tuple(shape)}")
    return x.astype(np.float32)


def _summary(args: argparse.Namespace) -> None:
    print(tsv.load(args.model).summary(), end="")


def _predict(args: argparse.Namespace) -> None:
    model = tsv.load(args.model, allow_nonfinite=args.allow_nonfinite)
    y = model.predict(_windows(model, _read_array(args.data), args.data))
    np.savetxt(sys.stdout, y, fmt="%.7g", delimiter=",")


def _demo(args: argparse.Namespace) -> None:
    from tsviz_native import models
    from tsviz_native.report import build_report

    model = tsv.load(models.path(args.model))
    if args.model == "forecaster":
        X, y, y_orig = models.forecaster_windows("test")
        scaling = models.info("forecaster")["scaling"]
        labels, names, truth = None, ["signal (scaled)", "first difference"], float(y[args.index])
    else:
        X, labels = models.gunpoint("test")
        names, truth, scaling = ["series"], int(labels[args.index]), None
    print(f"explaining the {len(X)} test windows of {model.source} ...", file=sys.stderr)
    stats = tsv.analyze_dataset(model, X, labels=labels, progress=not args.quiet)
    report = build_report(model, X, args.index, args.out, truth=truth, channel_names=names,
                          dataset_stats=stats, pictures=not args.no_pictures)
    print(report.text())
    if scaling is not None:
        mean, std = scaling["mean"], scaling["std"]
        print(f"\nin original units: prediction {report.prediction[0] * std + mean:.1f}, "
              f"truth {y_orig[args.index]:.1f}")
    print()
    print(stats.summary())
    if not args.no_pictures:
        _demo_viewer(args)


def _demo_viewer(args: argparse.Namespace) -> None:
    """The viewer's four levels as pictures in the report folder, and the window itself when a
    display is present; both need the viewer extra, and are left out with a note without it."""
    import importlib.util
    import os

    if importlib.util.find_spec("vispy") is None:
        print("\nviewer pictures left out: pip install 'tsviz-native[viewer]' for the four levels")
        return
    parser = build_parser()
    written = []
    try:
        for level in (1, 2, 3, 4):
            out = str(Path(args.out) / f"level{level}.png")
            sub = parser.parse_args(["render", args.model, "--level", str(level), "--index", str(args.index), "--out", out])
            sub.func(sub)
            written.append(out)
    except (tsv.TSVizError, RuntimeError, OSError) as e:
        print(f"\nviewer pictures left out: {e}")
    if written:
        print("\nthe viewer's four levels: " + ", ".join(written))
    if os.environ.get("DISPLAY") and not args.no_window:
        sub = parser.parse_args(["view", args.model, "--index", str(args.index)])
        sub.func(sub)


def _analyze(args: argparse.Namespace) -> None:
    from tsviz_native.report import build_report

    model = tsv.load(args.model, allow_nonfinite=args.allow_nonfinite)
    X = _windows(model, _read_array(args.data), args.data)
    stats = tsv.analyze_dataset(model, X, target=args.target, progress=not args.quiet) if len(X) > 1 else None
    report = build_report(model, X, args.index, args.out, target=args.target, dataset_stats=stats,
                          pictures=not args.no_pictures)
    print(report.text())


def _metric(model: tsv.Model, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    out = model.predict(X)
    if model.n_outputs > 1:
        return {"accuracy": float(np.mean(out.argmax(axis=1) == y))}
    pred = out[:, 0].astype(np.float64)
    y = y.astype(np.float64).reshape(-1)
    nonzero = y != 0
    return {"mse": float(np.mean((pred - y) ** 2)),
            "mape": float(100 * np.mean(np.abs(pred - y)[nonzero] / np.abs(y[nonzero])))}


def _speed(model: tsv.Model, X: np.ndarray, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        model.predict(X)
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1000


def _prune(args: argparse.Namespace) -> None:
    from tsviz_native.analysis.pruning import prune

    model = tsv.load(args.model)
    data = _read_array(args.data)
    X = _windows(model, data, args.data)
    if args.targets:
        y = np.asarray(_read_array(args.targets)).reshape(-1)
    elif isinstance(data, dict) and "y" in data:
        y = np.asarray(data["y"]).reshape(-1)
    else:
        raise tsv.ArgumentError(f"{args.data}: give the targets, as an array 'y' in an .npz or with --targets")
    if len(y) != len(X):
        raise tsv.ShapeError(f"{len(y)} targets for {len(X)} windows")
    split = int(round(len(X) * (1 - args.holdout)))
    if not 0 < split < len(X):
        raise tsv.ArgumentError(f"--holdout {args.holdout} leaves no windows on one side")
    stats = tsv.analyze_dataset(model, X[:split], progress=not args.quiet)
    rule = {"fraction": args.fraction, "percentile": args.percentile, "keep_top": args.keep_top}
    rule = {k: v for k, v in rule.items() if v is not None} or {"fraction": 0.3}
    result = prune(model, stats, **rule)
    result.save(args.out)
    pruned = result.model
    held, yh = X[split:], y[split:]
    before, after = _metric(model, held, yh), _metric(pruned, held, yh)
    print(f"statistics from {split} windows, metric on the other {len(held)}")
    print(f"{'':24}{'original':>14}{'pruned':>14}")
    for key in before:
        print(f"{key:24}{before[key]:>14.6g}{after[key]:>14.6g}")
    print(f"{'parameters':24}{result.n_parameters_before:>14}{result.n_parameters_after:>14}")
    print(f"{'predict ms (held-out)':24}{_speed(model, held):>14.2f}{_speed(pruned, held):>14.2f}")
    for name, removed in result.removed.items():
        print(f"  {name}: removed {len(removed)} of {model.layer(name).n_filters} filters")
    for name, why in result.skipped.items():
        print(f"  {name}: kept whole ({why})")
    print(f"wrote {args.out}")


def _add_viewer_commands(sub: Any) -> None:
    """``tsviz view`` and ``tsviz render``, defined by the viewer (the ``viewer`` extra); vispy
    is imported only when one of them runs."""
    from tsviz_native.viewer.commands import add_commands  # imports no vispy

    add_commands(sub)


_NONFINITE_HELP = "compute with NaN and infinity in the data (IEEE: NaN in, NaN out) instead of refusing them"


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser; every option carries its help text."""
    parser = argparse.ArgumentParser(
        prog="tsviz", description="Explain 1-D convolutional networks for time series (ONNX)."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="explain the shipped Internet-traffic forecaster on a test window",
                       description="Loads the shipped model and its real test data, explains one window, "
                                   "measures the paper's three observations and writes a report folder.")
    p.add_argument("--model", choices=["forecaster", "fcn-gunpoint"], default="forecaster",
                   help="which shipped model (default: the paper's forecaster)")
    p.add_argument("--index", type=int, default=0, help="test window to explain (default 0)")
    p.add_argument("--out", default="tsviz-report", help="report folder (default ./tsviz-report)")
    p.add_argument("--no-pictures", action="store_true", help="skip the PNG pictures")
    p.add_argument("--no-window", action="store_true", help="do not open the viewer even when a display is present")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_demo)

    p = sub.add_parser("analyze", help="explain a window of any ONNX model and data file",
                       description="Explains window INDEX of DATA with MODEL and writes the same report as the demo.")
    p.add_argument("model", help="path of an .onnx file")
    p.add_argument("data", help=".npy (N, ...) in the model's layout, .npz with an array X, or .csv with one window per row")
    p.add_argument("--index", type=int, default=0, help="window to explain (default 0)")
    p.add_argument("--target", type=int, default=None, help="output unit to explain (default: predicted class, or 0)")
    p.add_argument("--out", default="tsviz-report", help="report folder (default ./tsviz-report)")
    p.add_argument("--no-pictures", action="store_true", help="skip the PNG pictures")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--allow-nonfinite", action="store_true", help=_NONFINITE_HELP)
    p.set_defaults(func=_analyze)

    p = sub.add_parser("prune", help="remove the least important filters and write a smaller ONNX model",
                       description="Ranks filters by mean importance over the first part of DATA, prunes, and "
                                   "compares the metric (MSE/MAPE or accuracy), size and speed on the rest.")
    p.add_argument("model", help="path of an .onnx file")
    p.add_argument("data", help=".npz with arrays X (windows) and y (targets), or .npy windows with --targets")
    p.add_argument("--targets", help=".npy of targets (values for a forecaster, class indices for a classifier)")
    rule = p.add_mutually_exclusive_group()
    rule.add_argument("--fraction", type=float, help="prune this fraction of each layer's filters (default 0.3)")
    rule.add_argument("--percentile", type=float, help="prune filters below this importance percentile")
    rule.add_argument("--keep-top", type=int, help="keep this many filters per layer")
    p.add_argument("--holdout", type=float, default=0.5, help="share of DATA held out for the metric (default 0.5)")
    p.add_argument("--out", required=True, help="path of the pruned .onnx file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_prune)

    _add_viewer_commands(sub)

    p = sub.add_parser("summary", help="print an overview of an ONNX model")
    p.add_argument("model", help="path of an .onnx file")
    p.set_defaults(func=_summary)

    p = sub.add_parser("predict", help="run a model on windows from a .npy, .npz or .csv file")
    p.add_argument("model", help="path of an .onnx file")
    p.add_argument("data", help=".npy (N, ...) in the model's layout, .npz with X, or .csv rows")
    p.add_argument("--allow-nonfinite", action="store_true", help=_NONFINITE_HELP)
    p.set_defaults(func=_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except tsv.TSVizError as e:
        print(f"tsviz: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"tsviz: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
