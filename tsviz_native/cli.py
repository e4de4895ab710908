"""The ``tsviz`` command line: demo, analyze, prune, summary, predict (and view, render)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import tsviz_native as tsv


SHIPPED = ("forecaster", "fcn-gunpoint")


def load_model(arg: str, allow_nonfinite: bool = False) -> tsv.Model:
    """A model named on the command line: a shipped one by name, else an ONNX file."""
    from tsviz_native import models

    return tsv.load(models.path(arg) if arg in SHIPPED else arg, allow_nonfinite=allow_nonfinite)


def model_record(arg: str) -> dict | None:
    """The model record of a model named on the command line: the JSON file beside an ONNX
    file (``model.onnx`` -> ``model.json``), as the shipped models have; None without one.
    Its ``scaling`` (``mean``, ``std``) maps outputs to the original scale, ``y * std + mean``."""
    from tsviz_native import models

    if arg in SHIPPED:
        return models.info(arg)
    path = Path(arg).with_suffix(".json")
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:
        raise tsv.ArgumentError(f"{path}: the model record is not readable JSON ({e})") from None
    return record if isinstance(record, dict) else None


def scaling_of(record: dict | None) -> dict[str, float] | None:
    """``{"mean", "std"}`` of a model record's output scaling, or None."""
    sc = (record or {}).get("scaling")
    if isinstance(sc, dict) and isinstance(sc.get("mean"), (int, float)) and isinstance(sc.get("std"), (int, float)):
        return {"mean": float(sc["mean"]), "std": float(sc["std"])}
    return None


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


def _row_layout(model: tsv.Model) -> str:
    """How one flattened window is laid out, in words (CSV rows, ``(N, values)`` arrays)."""
    shape = model.sample_shape
    if model.layout == "NT":
        return f"{'T' if shape[0] < 0 else shape[0]} time steps"
    c = shape[0] if model.layout == "NCT" else shape[1]
    t = shape[1] if model.layout == "NCT" else shape[0]
    steps = "T" if t < 0 else str(t)
    if model.layout == "NCT":
        how = (f"channel-major: the {steps} values of channel 0, then those of channel 1, ..."
               if c > 1 else "the time steps in order")
    else:
        how = (f"time-major (the model is channels-last): the {c} channel values of step 0, "
               "then those of step 1, ..." if c > 1 else "the time steps in order")
    total = "" if t < 0 else f" = {c * t} values"
    return f"{c} channel{'s' if c > 1 else ''} x {steps} steps{total}, {how}"


def _windows(model: tsv.Model, data: Any, path: str) -> np.ndarray:
    """Windows in the model's layout from an array. A 2-D array (a CSV file: one window per
    row) holds each window flattened in the model's layout; see :func:`_row_layout`."""
    x = data["X"] if isinstance(data, dict) and "X" in data else data
    if isinstance(x, dict):
        raise tsv.ArgumentError(f"{path}: an .npz file needs an array named 'X'")
    x = np.asarray(x)
    shape = model.sample_shape
    if x.ndim == 2 and len(shape) == 2:
        c = shape[0] if model.layout == "NCT" else shape[1]
        fixed = int(np.prod(shape)) if min(shape) > 0 else None
        if (fixed is not None and x.shape[1] != fixed) or x.shape[1] % c:
            raise tsv.ShapeError(
                f"{path}: a row has {x.shape[1]} values; each row must hold one window of "
                f"{_row_layout(model)}")
        t = x.shape[1] // c
        x = x.reshape(len(x), c, t) if model.layout == "NCT" else x.reshape(len(x), t, c)
    if x.ndim != len(shape) + 1:
        from tsviz_native.model import _shape_text

        raise tsv.ShapeError(f"{path}: windows of shape {_shape_text(x.shape[1:])}; the model expects "
                             f"{_shape_text(shape)} per window" + (" (T: any length)" if min(shape) < 0 else ""))
    return x.astype(np.float32)


def _check_index(index: int, n: int, option: str = "--index") -> None:
    if not 0 <= index < n:
        raise tsv.ArgumentError(f"{option} {index}: the data has windows 0..{n - 1}")


def _check_target(target: int | None, model: tsv.Model) -> None:
    if target is not None and not 0 <= target < model.n_outputs:
        raise tsv.ArgumentError(f"--target {target}: the model has output units 0..{model.n_outputs - 1}")


def _check_out_dir(out: str) -> None:
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise tsv.ArgumentError(f"--out {out}: a file of that name exists; give a folder for the report")


def _check_out_file(out: str) -> None:
    p = Path(out)
    if p.is_dir():
        raise tsv.ArgumentError(f"--out {out}: is a folder; give the path of the .onnx file to write")
    if not p.resolve().parent.is_dir():
        raise tsv.ArgumentError(f"--out {out}: the folder {p.parent} does not exist")


def _summary(args: argparse.Namespace) -> None:
    print(load_model(args.model).summary(), end="")


def _predict(args: argparse.Namespace) -> None:
    model = load_model(args.model, allow_nonfinite=args.allow_nonfinite)
    y = model.predict(_windows(model, _read_array(args.data), args.data))
    np.savetxt(sys.stdout, y, fmt="%.7g", delimiter=",")


def _demo(args: argparse.Namespace) -> None:
    from tsviz_native import models

    _check_out_dir(args.out)
    model = tsv.load(models.path(args.model))
    if args.model == "forecaster":
        X, y, _ = models.forecaster_windows("test")
        scaling = scaling_of(models.info("forecaster"))
        labels, names = None, ["signal (scaled)", "first difference"]
    else:
        X, labels = models.gunpoint("test")
        y, names, scaling = labels, ["series"], None
    _check_index(args.index, len(X))
    truth = float(y[args.index]) if args.model == "forecaster" else int(y[args.index])
    if not args.no_pictures:
        _need_matplotlib()
    print(f"explaining the {len(X)} test windows of {model.source} ...", file=sys.stderr)
    stats = tsv.analyze_dataset(model, X, labels=labels, progress=not args.quiet)
    _report(args, model, X, stats, truth=truth, channel_names=names, scaling=scaling)


def _need_matplotlib() -> None:
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise tsv.ArgumentError("the report's pictures need matplotlib: pip install 'tsviz-native[report]' "
                                "(or leave them out with --no-pictures)")


def _report(args: argparse.Namespace, model: tsv.Model, X: np.ndarray, stats: Any, **kw: Any) -> None:
    """Builds the report, prints it, then the files written (the last line), and opens the
    viewer when asked."""
    from tsviz_native.report import build_report

    report = build_report(model, X, args.index, args.out, target=getattr(args, "target", None),
                          dataset_stats=stats, pictures=not args.no_pictures, **kw)
    print(report.text())
    files = list(report.files)
    note = None
    if not args.no_pictures:
        levels, note = _viewer_pictures(args)
        files += levels
    if note:
        print(note)
    print()
    print("written: " + ", ".join(files))
    if getattr(args, "view", False):
        sub = build_parser().parse_args(["view", args.model, *([args.data] if getattr(args, "data", None) else []),
                                         "--index", str(args.index)])
        sub.func(sub)


def _viewer_pictures(args: argparse.Namespace) -> tuple[list[str], str | None]:
    """The viewer's four levels as pictures in the report folder (the ``viewer`` extra and
    an offscreen OpenGL); without them a one-line note says what is missing."""
    import importlib.util

    if importlib.util.find_spec("vispy") is None:
        return [], "the viewer's four levels left out: pip install 'tsviz-native[viewer]' to add them"
    parser = build_parser()
    written = []
    try:
        for level in (1, 2, 3, 4):
            out = str(Path(args.out) / f"level{level}.png")
            argv = ["render", args.model, *([args.data] if getattr(args, "data", None) else []),
                    "--level", str(level), "--index", str(args.index), "--out", out, "--quiet"]
            sub = parser.parse_args(argv)
            sub.func(sub)
            written.append(out)
    except (tsv.TSVizError, OSError) as e:
        return written, f"the viewer's four levels left out: {e}"
    return written, None


def _analyze(args: argparse.Namespace) -> None:
    model = load_model(args.model, allow_nonfinite=args.allow_nonfinite)
    X = _windows(model, _read_array(args.data), args.data)
    _check_index(args.index, len(X))
    _check_target(args.target, model)
    _check_out_dir(args.out)
    if not args.no_pictures:
        _need_matplotlib()
    stats = tsv.analyze_dataset(model, X, target=args.target, progress=not args.quiet) if len(X) > 1 else None
    _report(args, model, X, stats, scaling=scaling_of(model_record(args.model)))


def _compare(out: np.ndarray, ref: np.ndarray, classifier: bool, scaling: dict[str, float] | None,
             ref_is_model: bool) -> dict[str, float]:
    """How ``out`` (N, K) agrees with ``ref``: targets (class indices or values), or the
    original model's outputs. A forecaster's errors are on the original scale when
    ``scaling`` is known: MAPE = 100 mean(|y - y_hat| / |y|) over y != 0, RMSE."""
    if classifier:
        want = ref.argmax(axis=1) if ref_is_model else ref.reshape(-1)
        key = "same class as original %" if ref_is_model else "accuracy %"
        return {key: float(100 * np.mean(out.argmax(axis=1) == want))}
    pred = out[:, 0].astype(np.float64)
    y = (ref[:, 0] if ref_is_model else ref.reshape(-1)).astype(np.float64)
    if scaling is not None:
        pred, y = pred * scaling["std"] + scaling["mean"], y * scaling["std"] + scaling["mean"]
    nonzero = y != 0
    return {"MAPE %": float(100 * np.mean(np.abs(pred - y)[nonzero] / np.abs(y[nonzero]))),
            "RMSE": float(np.sqrt(np.mean((pred - y) ** 2)))}


def _speed(model: tsv.Model, X: np.ndarray, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        model.predict(X)
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1000


def _prune(args: argparse.Namespace) -> None:
    from tsviz_native.analysis.pruning import _onnx, prune

    _check_out_file(args.out)
    for name, v, ok in (("--fraction", args.fraction, lambda v: 0 <= v < 1),
                        ("--percentile", args.percentile, lambda v: 0 <= v <= 100),
                        ("--keep-top", args.keep_top, lambda v: v >= 1),
                        ("--holdout", args.holdout, lambda v: 0 < v < 1)):
        if v is not None and not ok(v):
            raise tsv.ArgumentError(f"{name} {v}: expected " + {"--fraction": "0 <= F < 1", "--percentile": "0..100",
                                                                 "--keep-top": "an int >= 1", "--holdout": "0 < H < 1"}[name])
    _onnx()  # the prune extra, before any work
    model = load_model(args.model)
    data = _read_array(args.data)
    X = _windows(model, data, args.data)
    if args.targets:
        y = np.asarray(_read_array(args.targets)).reshape(-1)
    elif isinstance(data, dict) and "y" in data:
        y = np.asarray(data["y"]).reshape(-1)
    else:
        y = None
    if y is not None and len(y) != len(X):
        raise tsv.ShapeError(f"{len(y)} targets for {len(X)} windows")
    classifier = model.n_outputs > 1
    if y is not None and classifier:
        if y.dtype.kind not in "iuf" or not (np.all(y == np.round(y)) and 0 <= y.min() and y.max() < model.n_outputs):
            raise tsv.ArgumentError(f"the targets of a classifier must be class indices 0..{model.n_outputs - 1}")
        y = y.astype(np.int64)
    split = int(round(len(X) * (1 - args.holdout)))
    if not 0 < split < len(X):
        raise tsv.ArgumentError(f"--holdout {args.holdout} leaves no windows on one side of {len(X)}")
    stats = tsv.analyze_dataset(model, X[:split], progress=not args.quiet)
    rule = {"fraction": args.fraction, "percentile": args.percentile, "keep_top": args.keep_top}
    rule = {k: v for k, v in rule.items() if v is not None} or {"fraction": 0.3}
    finetune = None
    if args.finetune:
        # Fine-tuning on the ranking part: its last 20% is held for early stopping; without
        # targets the pruned model learns the original model's outputs.
        Xf = X[:split]
        yf = y[:split] if y is not None else (model.predict(Xf).argmax(axis=1) if classifier else model.predict(Xf))
        cut = max(1, int(round(len(Xf) * 0.8)))
        if cut >= len(Xf):
            raise tsv.ArgumentError(f"--finetune needs more than {len(Xf)} windows before the held-out part")
        finetune = {"X": Xf[:cut], "y": yf[:cut], "validation": (Xf[cut:], yf[cut:]), "patience": 5,
                    "loss": "cross_entropy" if classifier else "mse", "epochs": args.finetune, "lr": args.lr,
                    "batch_size": args.batch_size, "steps": args.steps, "seed": 0, "progress": not args.quiet}
    elif args.steps != 1:
        raise tsv.ArgumentError("--steps needs --finetune EPOCHS")
    result = prune(model, stats, **rule, finetune=finetune)
    result.save(args.out)
    pruned = result.model
    held = X[split:]
    out_before, out_after = model.predict(held), pruned.predict(held)
    scaling = scaling_of(model_record(args.model))
    if classifier:
        scale = ""
    elif scaling is not None:
        scale = f"; errors on the original scale (y * {scaling['std']:.6g} + {scaling['mean']:.6g}, from the model record)"
    else:
        scale = "; errors on the scale of the model's outputs (no scaling in a model record)"
    print(f"filters ranked by mean importance over {split} windows; compared on the other {len(held)}{scale}")
    for step, h in enumerate(result.history, 1):
        val = h.get("val_loss", ())
        print(f"fine-tuning{f' step {step}' if len(result.history) > 1 else ''}: {len(h['loss'])} epochs, "
              f"training loss {h['loss'][0]:.5g} -> {h['loss'][-1]:.5g}"
              + (f", best validation loss {min(val):.5g}" if val else ""))
    if y is None:
        print("no targets given: the pruned model is compared with the original's outputs")
        after = _compare(out_after, out_before, classifier, scaling, ref_is_model=True)
        print(f"{'':28}{'pruned vs original':>20}")
        for key, v in after.items():
            print(f"{key:28}{v:>20.6g}")
    else:
        yh = y[split:]
        before = _compare(out_before, yh, classifier, scaling, ref_is_model=False)
        after = _compare(out_after, yh, classifier, scaling, ref_is_model=False)
        print(f"{'':28}{'original':>14}{'pruned':>14}")
        for key in before:
            print(f"{key:28}{before[key]:>14.6g}{after[key]:>14.6g}")
    print(f"{'parameters':28}{result.n_parameters_before:>14}{result.n_parameters_after:>14}")
    print(f"{'predict ms (held-out)':28}{_speed(model, held):>14.2f}{_speed(pruned, held):>14.2f}")
    for name, removed in result.removed.items():
        layer = model.layer(name)
        print(f"  {layer.label}: removed {len(removed)} of {layer.n_filters} filters")
    for name, why in result.skipped.items():
        print(f"  {model.layer(name).label}: kept whole, {why}")
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
    p.add_argument("--no-pictures", action="store_true",
                   help="skip the PNG pictures (the report's three, and the viewer's four levels "
                        "written when the viewer extra is installed)")
    p.add_argument("--view", action="store_true", help="then open the interactive viewer on the same window (needs a display)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_demo)

    p = sub.add_parser("analyze", help="explain a window of any ONNX model and data file",
                       description="Explains window INDEX of DATA with MODEL and writes the same report as the demo.")
    p.add_argument("model", help="path of an .onnx file (a model record model.json beside it may give the output scaling), or a shipped model: forecaster, fcn-gunpoint")
    p.add_argument("data", help=".npy (N, ...) in the model's layout, .npz with an array X, or .csv with one "
                                "window per row, flattened in the model's layout (channels-first: channel-major)")
    p.add_argument("--index", type=int, default=0, help="window to explain (default 0)")
    p.add_argument("--target", type=int, default=None, help="output unit to explain (default: predicted class, or 0)")
    p.add_argument("--out", default="tsviz-report", help="report folder (default ./tsviz-report)")
    p.add_argument("--no-pictures", action="store_true",
                   help="skip the PNG pictures (the report's three, and the viewer's four levels)")
    p.add_argument("--view", action="store_true", help="then open the interactive viewer on the same window (needs a display)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--allow-nonfinite", action="store_true", help=_NONFINITE_HELP)
    p.set_defaults(func=_analyze)

    p = sub.add_parser("prune", help="remove the least important filters and write a smaller ONNX model",
                       description="Ranks filters by mean importance over the first part of DATA, prunes, and "
                                   "compares the metric (accuracy, or MAPE and RMSE on the original scale when "
                                   "the model record gives the scaling), size and speed on the rest. Without "
                                   "targets the pruned model is compared with the original's outputs.")
    p.add_argument("model", help="path of an .onnx file (a model record model.json beside it may give the "
                                 "output scaling), or a shipped model: forecaster, fcn-gunpoint")
    p.add_argument("data", help=".npz with arrays X (windows) and optionally y (targets), .npy or .csv windows")
    p.add_argument("--targets", help=".npy of targets (values for a forecaster, class indices for a classifier)")
    rule = p.add_mutually_exclusive_group()
    rule.add_argument("--fraction", type=float, help="prune this fraction of each layer's filters (default 0.3)")
    rule.add_argument("--percentile", type=float, help="prune filters below this importance percentile")
    rule.add_argument("--keep-top", type=int, help="keep this many filters per layer")
    p.add_argument("--holdout", type=float, default=0.5, help="share of DATA held out for the metric (default 0.5)")
    p.add_argument("--out", required=True, help="path of the pruned .onnx file")
    p.add_argument("--finetune", type=int, default=0, metavar="EPOCHS",
                   help="then fine-tune for up to EPOCHS epochs with Adam on the ranking part (its last 20%% "
                        "for early stopping; the original's outputs as targets when none are given)")
    p.add_argument("--steps", type=int, default=1,
                   help="with --finetune: prune and fine-tune in this many steps (iterative pruning)")
    p.add_argument("--lr", type=float, default=1e-3, help="with --finetune: Adam's learning rate (default 0.001)")
    p.add_argument("--batch-size", type=int, default=32, help="with --finetune: samples per step (default 32)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_prune)

    _add_viewer_commands(sub)

    p = sub.add_parser("summary", help="print an overview of an ONNX model")
    p.add_argument("model", help="path of an .onnx file, or a shipped model: forecaster, fcn-gunpoint")
    p.set_defaults(func=_summary)

    p = sub.add_parser("predict", help="run a model on windows from a .npy, .npz or .csv file")
    p.add_argument("model", help="path of an .onnx file, or a shipped model: forecaster, fcn-gunpoint")
    p.add_argument("data", help=".npy (N, ...) in the model's layout, .npz with X, or .csv rows")
    p.add_argument("--allow-nonfinite", action="store_true", help=_NONFINITE_HELP)
    p.set_defaults(func=_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_help()  # a bare `tsviz`: the usage and the list of commands
        return 2
    args = parser.parse_args(argv)
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
