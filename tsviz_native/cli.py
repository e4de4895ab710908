"""The ``tsviz`` command line: demo, analyze, prune, attack, inverse, faithfulness, summary,
predict (and view, render)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import tsviz_native as tsv
from tsviz_native.analysis.metrics import compare as _compare
from tsviz_native import io


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
    X, _ = io.read_windows(model, args.data)
    y = model.predict(X)
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
    X, _ = io.read_windows(model, args.data)
    _check_index(args.index, len(X))
    _check_target(args.target, model)
    _check_out_dir(args.out)
    if not args.no_pictures:
        _need_matplotlib()
    extra: dict[str, Any] = {}
    if args.wrt == "loss":
        if args.target is not None:
            raise tsv.ArgumentError("--target names an output unit; --wrt loss explains the loss of every unit")
        y = _targets(args, model, io.read_array(args.data), len(X))
        if y is None:
            raise tsv.ArgumentError("--wrt loss needs the targets: an .npz DATA with an array y, or --targets FILE")
        extra = {"wrt": "loss", "y_true": y, "loss": args.loss}
    elif args.loss is not None or args.targets is not None:
        raise tsv.ArgumentError("--loss and --targets are for --wrt loss")
    stats = tsv.analyze_dataset(model, X, target=args.target, progress=not args.quiet) if len(X) > 1 else None
    _report(args, model, X, stats, scaling=scaling_of(model_record(args.model)), **extra)


def _targets(args: argparse.Namespace, model: tsv.Model, data: Any, n: int) -> np.ndarray | None:
    """The targets of the windows: ``--targets FILE`` or the array ``y`` of an .npz DATA; class
    indices of a classifier are checked. None when there are none."""
    if getattr(args, "targets", None):
        y = np.asarray(io.read_array(args.targets))
    elif isinstance(data, dict) and "y" in data:
        y = np.asarray(data["y"])
    else:
        return None
    y = y.reshape(len(y), -1) if model.n_outputs > 1 or y.ndim > 1 else y.reshape(-1)
    if len(y) != n:
        raise tsv.ShapeError(f"{len(y)} targets for {n} windows")
    if model.n_outputs > 1:
        y = y.reshape(-1)
        if y.dtype.kind not in "iuf" or not (np.all(y == np.round(y)) and 0 <= y.min() and y.max() < model.n_outputs):
            raise tsv.ArgumentError(f"the targets of a classifier must be class indices 0..{model.n_outputs - 1}")
        return y.astype(np.int64)
    return y.astype(np.float32)


def _data_and_targets(args: argparse.Namespace, model: tsv.Model) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """Windows, targets and channel names: DATA (and --targets), or a shipped model's test split."""
    from tsviz_native import models

    if args.data is None:
        if args.model == "forecaster":
            X, y, _ = models.forecaster_windows("test")
            return X, y, ["signal (scaled)", "first difference"]
        if args.model == "fcn-gunpoint":
            X, labels = models.gunpoint("test")
            return X, labels, ["series"]
        raise tsv.ArgumentError("give DATA: only the shipped models (forecaster, fcn-gunpoint) have their test data")
    data = io.read_array(args.data)
    X = io.windows(model, data, args.data)
    return X, _targets(args, model, data, len(X)), None


def _limit(X: np.ndarray, y: np.ndarray | None, limit: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    if limit is None:
        return X, y
    if limit < 1:
        raise tsv.ArgumentError(f"--limit {limit}: expected an int >= 1")
    return X[:limit], None if y is None else y[:limit]


def _write_json(out: Path, name: str, record: dict) -> str:
    path = out / name
    path.write_text(json.dumps(record, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
    return str(path)


def _attack_cmd(args: argparse.Namespace) -> None:
    from tsviz_native.analysis.robustness import attack, plot_attack, robustness_curve

    _check_out_dir(args.out)
    if not args.no_pictures:
        _need_matplotlib()
    model = load_model(args.model)
    X, y, names = _data_and_targets(args, model)
    X, y = _limit(X, y, args.limit)
    if y is None and model.n_outputs == 1:
        raise tsv.ArgumentError("attacking a forecaster needs the targets: an .npz DATA with y, or --targets FILE")
    _check_index(args.index, len(X))
    scaling = scaling_of(model_record(args.model))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    curve = robustness_curve(model, X, y, args.eps, method=args.method, steps=args.steps, seed=args.seed,
                             scaling=scaling)
    window = attack(model, X[args.index], None if y is None else y[args.index : args.index + 1],
                    method=args.method, eps=max(args.eps), steps=args.steps, seed=args.seed)
    record = {"model": model.source, "n_windows": len(X), "method": args.method, "steps": curve.steps,
              "seed": args.seed, "scale": curve.scale, "eps": curve.eps, "metrics": curve.metrics,
              "mean_loss": curve.mean_loss, "window": {"index": args.index, **window.summary(),
                                                       "output_before": window.output_before[0],
                                                       "output_after": window.output_after[0]}}
    files = [_write_json(out, "attack.json", record)]
    np.savez_compressed(out / "attack_window.npz", x=window.x[0], x_adv=window.x_adv[0],
                        saliency_before=window.saliency_before[0], saliency_after=window.saliency_after[0])
    files.append(str(out / "attack_window.npz"))
    if not args.no_pictures:
        files.append(curve.plot(out / "attack_curve.png", title=f"{model.source}: {args.method.upper()} "
                                f"({curve.steps} steps) over {len(X)} windows"))
        files.append(plot_attack(model, window, 0, out / "attack_window.png", names))
    print(f"{args.method.upper()} ({curve.steps} steps) on {len(X)} windows of {model.source}"
          + (f"; errors on the {curve.scale}" if curve.scale else ""))
    keys = list(curve.metrics)
    print(f"{'eps':>10}" + "".join(f"{k:>16}" for k in keys) + f"{'mean loss':>16}")
    for j, e in enumerate(curve.eps):
        print(f"{e:>10.4g}" + "".join(f"{curve.metrics[k][j]:>16.6g}" for k in keys) + f"{curve.mean_loss[j]:>16.6g}")
    print()
    print("written: " + ", ".join(files))


def _inverse_cmd(args: argparse.Namespace) -> None:
    from tsviz_native.analysis.inverse import inverse, plot_inverse

    _check_out_dir(args.out)
    if not args.no_pictures:
        _need_matplotlib()
    model = load_model(args.model)
    X, _, names = _data_and_targets(args, model)
    _check_index(args.index, len(X))
    _check_target(args.target, model)
    if (args.layer is None) != (args.filter is None):
        raise tsv.ArgumentError("give --layer and --filter together (a filter), or neither (the output)")
    goal: str | float = args.goal
    if goal not in ("max", "min"):
        try:
            goal = float(goal)
        except ValueError:
            raise tsv.ArgumentError(f"--goal {args.goal}: expected max, min or a number") from None
    r = inverse(model, X[args.index], layer=args.layer, filter=args.filter, goal=goal, target=args.target,
                steps=args.steps, lr=args.lr, smoothness=args.smoothness, max_change=args.max_change)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = [_write_json(out, "inverse.json", {"model": model.source, "index": args.index, **r.summary()})]
    np.savez_compressed(out / "inverse.npz", x0=r.x0, x=r.x, trajectory=r.trajectory, value=r.value[:, 0],
                        objective=r.objective[:, 0])
    files.append(str(out / "inverse.npz"))
    if not args.no_pictures:
        files.append(plot_inverse(model, r, out / "inverse.png", names))
    print(f"{goal} {r.what} from window {args.index} of {model.source}: {args.steps} steps of lr {args.lr}"
          + (f", smoothness {args.smoothness}" if args.smoothness else "")
          + (f", |x - x0| <= {args.max_change}" if args.max_change is not None else ""))
    print(f"value     {r.value[0, 0]:.6g} -> {r.value[-1, 0]:.6g}")
    print(f"objective {r.objective[0, 0]:.6g} -> {r.objective[-1, 0]:.6g}")
    print(f"largest change of the input {float(np.abs(r.x - r.x0).max()):.4g}")
    if args.steps and not np.any(r.x != r.x0):
        print("the input did not move: the gradient is zero at this window (a filter inactive at every "
              "position, say); choose another filter or window")
    print()
    print("written: " + ", ".join(files))


def _faithfulness_cmd(args: argparse.Namespace) -> None:
    from tsviz_native.analysis.faithfulness import faithfulness

    _check_out_dir(args.out)
    if not args.no_pictures:
        _need_matplotlib()
    model = load_model(args.model)
    X, y, _ = _data_and_targets(args, model)
    X, y = _limit(X, y, args.limit)
    ks = [int(k) if float(k).is_integer() and k >= 1 else float(k) for k in args.ks]
    r = faithfulness(model, X, y, ks=ks, repeats=args.repeats, seed=args.seed, baseline=args.baseline,
                     scaling=scaling_of(model_record(args.model)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = {"model": model.source, "n_windows": r.n_windows, "metric_against": r.metric_against,
              "clean": r.extra["clean"], "rows": r.rows, "fractions": r.fractions, "baseline": r.baseline,
              "curves": r.curves, "curve_means": r.auc(), "repeats": args.repeats, "seed": args.seed}
    files = [_write_json(out, "faithfulness.json", record)]
    if not args.no_pictures:
        files += r.plot(out)
    print(f"filters zeroed in {r.n_windows} windows of {model.source}; metric against {r.metric_against}; "
          f"clean: " + ", ".join(f"{k} {v:.6g}" for k, v in r.extra["clean"].items() if k != "output_change"))
    print(r.table())
    print(f"input points replaced by the baseline ({r.baseline}); mean |output change| over the fractions "
          f"{', '.join(f'{f:g}' for f in r.fractions)}:")
    for kind, c in r.auc().items():
        print(f"  {kind:10}" + "".join(f"{name} {v:.4g}   " for name, v in c.items()))
    print()
    print("written: " + ", ".join(files))


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
    X, y = io.read_windows(model, args.data)
    if args.targets:
        y = np.asarray(io.read_array(args.targets)).reshape(-1)
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
    p.add_argument("--wrt", choices=["output", "loss"], default="output",
                   help="explain the output unit (default) or the loss against the targets (DATA .npz with y, "
                        "or --targets)")
    p.add_argument("--loss", choices=["mse", "cross_entropy"], default=None,
                   help="with --wrt loss (default: cross_entropy for a classifier, mse otherwise)")
    p.add_argument("--targets", help="with --wrt loss: .npy of targets (values, or class indices)")
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

    _data_help = ("optional for the shipped models (their test split); else .npz with X and y, or .npy / .csv "
                  "windows with --targets")
    p = sub.add_parser("attack", help="FGSM / PGD attacks: flipped share or forecast error per eps (JSON + PNG)",
                       description="Perturbs every window within an L-infinity ball of each eps (in the input's "
                                   "units) to raise its loss, reports the share of decisions flipped (classifier) "
                                   "or MAPE/RMSE (forecaster) per eps, and one window before and after with its "
                                   "saliency.")
    p.add_argument("model", help="path of an .onnx file, or a shipped model: forecaster, fcn-gunpoint")
    p.add_argument("data", nargs="?", default=None, help=_data_help)
    p.add_argument("--targets", help=".npy of targets (values, or class indices; a classifier defaults to its "
                                     "own predictions)")
    p.add_argument("--method", choices=["fgsm", "pgd"], default="pgd", help="default pgd")
    p.add_argument("--eps", type=float, nargs="+", default=[0.01, 0.02, 0.05, 0.1],
                   help="radii of the L-infinity ball, in the input's units (default 0.01 0.02 0.05 0.1)")
    p.add_argument("--steps", type=int, default=20, help="PGD steps (default 20)")
    p.add_argument("--seed", type=int, default=0, help="PGD random start (default 0)")
    p.add_argument("--index", type=int, default=0, help="window shown before and after (default 0)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N windows")
    p.add_argument("--out", default="tsviz-report", help="report folder (default ./tsviz-report)")
    p.add_argument("--no-pictures", action="store_true", help="skip the PNG pictures")
    p.set_defaults(func=_attack_cmd)

    p = sub.add_parser("inverse", help="optimise an input towards an output or filter goal (JSON + PNG)",
                       description="Gradient steps on window INDEX that drive the output unit, or one filter's "
                                   "position-summed activation, to a goal, with a smoothness penalty and a bound "
                                   "on the change.")
    p.add_argument("model", help="path of an .onnx file, or a shipped model: forecaster, fcn-gunpoint")
    p.add_argument("data", nargs="?", default=None, help=_data_help)
    p.add_argument("--index", type=int, default=0, help="starting window (default 0)")
    p.add_argument("--layer", default=None, help="filter layer (number, label or tensor name); with --filter")
    p.add_argument("--filter", type=int, default=None, help="filter of --layer to drive")
    p.add_argument("--target", type=int, default=None, help="output unit to drive (default: predicted class, or 0)")
    p.add_argument("--goal", default="max", help="max, min, or a value to reach (default max)")
    p.add_argument("--steps", type=int, default=100, help="default 100")
    p.add_argument("--lr", type=float, default=0.01, help="largest move of one step, input units (default 0.01)")
    p.add_argument("--smoothness", type=float, default=0.0, help="weight of sum (x[t+1] - x[t])^2 (default 0)")
    p.add_argument("--max-change", type=float, default=None, help="bound on |x - x0| (default none)")
    p.add_argument("--out", default="tsviz-report", help="report folder (default ./tsviz-report)")
    p.add_argument("--no-pictures", action="store_true", help="skip the PNG picture")
    p.set_defaults(func=_inverse_cmd)

    p = sub.add_parser("faithfulness", help="zero top / bottom / random filters and input points (JSON + PNG)",
                       description="Removes the top-k, bottom-k and k random filters by importance and by the "
                                   "Taylor criterion, per convolution and network-wide, and the most salient input "
                                   "points (deletion / insertion), and reports the output change and the metric.")
    p.add_argument("model", help="path of an .onnx file, or a shipped model: forecaster, fcn-gunpoint")
    p.add_argument("data", nargs="?", default=None, help=_data_help)
    p.add_argument("--targets", help=".npy of targets (without: the metric is agreement with the original model)")
    p.add_argument("--ks", type=float, nargs="+", default=[0.1, 0.25, 0.5],
                   help="filters removed: shares in (0, 1) or counts (default 0.1 0.25 0.5)")
    p.add_argument("--repeats", type=int, default=5, help="random draws per k (default 5)")
    p.add_argument("--seed", type=int, default=0, help="default 0")
    p.add_argument("--baseline", default="mean", help="what replaces input points: mean (each window's per-channel "
                                                      "mean, default), zero")
    p.add_argument("--limit", type=int, default=None, help="use only the first N windows")
    p.add_argument("--out", default="tsviz-report", help="report folder (default ./tsviz-report)")
    p.add_argument("--no-pictures", action="store_true", help="skip the PNG pictures")
    p.set_defaults(func=_faithfulness_cmd)

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
