"""The ``tsviz`` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import tsviz_native as tsv


def _read_windows(path: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise tsv.ArgumentError(f"{path}: no such file")
    if p.suffix == ".npy":
        try:
            return np.load(p, allow_pickle=False)
        except ValueError as e:
            raise tsv.ArgumentError(f"{path}: not a readable .npy file ({e})") from None
    if p.suffix == ".csv":
        try:
            return np.loadtxt(p, delimiter=",", ndmin=2, dtype=np.float64)
        except ValueError as e:
            raise tsv.ArgumentError(f"{path}: not a numeric CSV file ({e})") from None
    raise tsv.ArgumentError(f"{path}: expected a .npy or .csv file")


def _summary(args: argparse.Namespace) -> None:
    print(tsv.load(args.model).summary(), end="")


def _predict(args: argparse.Namespace) -> None:
    model = tsv.load(args.model)
    x = _read_windows(args.data)
    if model.layout != "NT" and x.ndim == 2 and len(model.sample_shape) == 2:
        # A CSV holds one window per row; reshape rows to the model's per-sample layout.
        x = x.reshape((x.shape[0], *model.sample_shape)) if -1 not in model.sample_shape else x
    y = model.predict(x)
    np.savetxt(sys.stdout, y, fmt="%.7g", delimiter=",")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tsviz", description="Explain 1-D convolutional networks for time series (ONNX)."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("summary", help="print an overview of an ONNX model")
    p.add_argument("model", help="path of an .onnx file")
    p.set_defaults(func=_summary)
    p = sub.add_parser("predict", help="run a model on windows from a .npy or .csv file")
    p.add_argument("model", help="path of an .onnx file")
    p.add_argument("data", help=".npy of shape (N, ...) in the model's layout, or .csv of one window per row")
    p.set_defaults(func=_predict)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except tsv.TSVizError as e:
        print(f"tsviz: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
