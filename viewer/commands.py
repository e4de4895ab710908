"""``tsviz view`` and ``tsviz render``: registered by the CLI without importing vispy."""

from __future__ import annotations

import argparse
from typing import Any

def add_commands(sub: Any) -> None:
    """Adds the viewer's subcommands to the ``tsviz`` parser."""
    p = sub.add_parser(
        "view", help="open the interactive viewer (the paper's four levels)",
        description="Opens a window on MODEL and the windows of DATA (default: the shipped "
                    "forecaster and its test windows). Press h in the window for every shortcut. "
                    "Needs the viewer extra: pip install 'tsviz-native[viewer]'.")
    p.add_argument("model", nargs="?", default="forecaster",
                   help="an .onnx file, or a shipped model: forecaster (default), fcn-gunpoint")
    p.add_argument("data", nargs="?", default=None,
                   help=".npy/.npz/.csv windows (default for a shipped model: its test windows)")
    _common(p)
    p.set_defaults(func=_view)

    p = sub.add_parser(
        "render", help="render one view of the viewer to a PNG, headless",
        description="Renders exactly the scene `tsviz view` shows, offscreen (OSMesa or EGL), "
                    "into a PNG: for reports and docs.")
    p.add_argument("model", help="an .onnx file, or a shipped model: forecaster, fcn-gunpoint")
    p.add_argument("data", nargs="?", default=None,
                   help=".npy/.npz/.csv windows (may be left out for a shipped model)")
    _common(p)
    p.add_argument("--out", required=True, help="the PNG file to write")
    p.add_argument("--highlight", default=None, metavar="LAYER:FILTER:POS",
                   help="recursive highlighting of a^l[FILTER, POS]; LAYER is a filter layer "
                        "name, its number (0 = first) or the output's name")
    p.add_argument("--azimuth", type=float, default=None, help="3-D levels: camera azimuth")
    p.add_argument("--elevation", type=float, default=None, help="3-D levels: camera elevation")
    p.add_argument("--quiet", action="store_true", help="print nothing when the PNG is written")
    p.set_defaults(func=_render)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--level", type=int, choices=[1, 2, 3, 4], default=1,
                   help="1 network, 2 filters, 3 one layer, 4 clusters (default 1)")
    p.add_argument("--index", type=int, default=0, help="window to show first (default 0)")
    p.add_argument("--layer", default=None,
                   help="filter layer for levels 3 and 4: its number (0 = first, the default), its label "
                        "('conv 2' or 'conv 2 · k=5 · 32 filters', as `tsviz summary` lists them) or its "
                        "tensor name")
    p.add_argument("--percentile", type=float, default=0.0,
                   help="draw only filters at or above this importance percentile (default 0)")
    p.add_argument("--sort", choices=["descending", "ascending"], default="descending",
                   help="order of filters by importance (default descending)")
    p.add_argument("--active-only", action="store_true",
                   help="highlighting drops points whose contribution is exactly 0")
    p.add_argument("--size", default=None, metavar="WxH",
                   help="canvas size in pixels (default 1400x850)")
    p.add_argument("--wrt", choices=["output", "loss"], default="output",
                   help="explain the output (default) or the loss against the windows' targets (key L)")
    p.add_argument("--input", choices=["original", "attack", "inverse"], default="original",
                   help="show the window itself (default), its PGD attack (key A) or its inverse "
                        "optimisation towards the --highlight filter, else the output (key I)")


def _size(text: str | None) -> tuple[int, int]:
    import tsviz_native as tsv

    if text is None:
        return (1400, 850)
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise tsv.ArgumentError(f"--size {text!r}: expected WxH, e.g. 1400x850") from None
    if not (64 <= w <= 8192 and 64 <= h <= 8192):
        raise tsv.ArgumentError(f"--size {text!r}: each side must be in 64..8192")
    return w, h


def load_inputs(model_arg: str, data_arg: str | None) -> tuple[Any, Any, Any]:
    """The model, its windows and their truth (or None) from the command line's arguments."""
    import tsviz_native as tsv
    from tsviz_native import cli, io, models

    model = cli.load_model(model_arg)
    if data_arg is None:
        if model_arg == "forecaster":
            X, y, _ = models.forecaster_windows("test")
            return model, X, y
        if model_arg == "fcn-gunpoint":
            X, y = models.gunpoint("test")
            return model, X, y
        raise tsv.ArgumentError(f"{model_arg}: give DATA (windows for this model)")
    X, truth = io.read_windows(model, data_arg)
    if truth is not None and len(truth) != len(X):
        truth = None
    return model, X, truth


def _layer(model: Any, text: str | None) -> str | None:
    """The tensor name of the layer ``--layer`` names (number, label or tensor name)."""
    return None if text is None else model.layer(text).name


def _viewer(args: argparse.Namespace, show: bool) -> Any:
    import tsviz_native as tsv

    from . import backend

    from tsviz_native import cli

    if not 0 <= args.percentile <= 100:
        raise tsv.ArgumentError(f"--percentile {args.percentile}: expected 0..100")
    size = _size(args.size)
    model, X, truth = load_inputs(args.model, args.data)
    cli._check_index(args.index, len(X))
    layer = _layer(model, args.layer)
    highlight = parse_highlight(model, args.highlight) if getattr(args, "highlight", None) else None
    if highlight is not None and highlight.tensor != model.output_name:
        layer_info = model.layer(highlight.tensor)
        length = layer_info.out_length
        if not 0 <= highlight.filter < layer_info.n_filters or (length > 0 and not 0 <= highlight.position < length):
            raise tsv.ArgumentError(
                f"--highlight {args.highlight!r}: {layer_info.label} has filters 0..{layer_info.n_filters - 1}"
                + (f" and positions 0..{length - 1}" if length > 0 else ""))
    if show:
        _check_display()
    backend.use(headless=not show)
    from .app import Viewer

    try:
        v = Viewer(model, X, truth, sample=args.index, level=args.level, layer=layer,
                   percentile=args.percentile, sort=args.sort, size=size, show=show, threaded=show,
                   scaling=cli.scaling_of(cli.model_record(args.model)))
    except (OSError, RuntimeError) as e:  # the GL toolkit could not open its window or context
        why = " ".join(str(e).split())
        hint = ("render the same scene to a PNG without a window: tsviz render MODEL [DATA] --out FILE.png"
                if show else "install OSMesa or EGL (Debian: apt-get install libosmesa6)")
        raise backend.BackendError(f"cannot open {'a window' if show else 'an offscreen canvas'} ({why}); {hint}") from None
    v.state.set(active_only=bool(args.active_only))
    if highlight is not None:
        v.state.set(highlight=highlight, **({"layer": highlight.tensor, "filter": highlight.filter}
                                            if highlight.tensor in v.info.layer_names else {}))
    try:
        if args.wrt == "loss":
            v.toggle_wrt()
        if args.input != "original":
            getattr(v, args.input)()
    except tsv.TSVizError as e:
        v.close()
        raise tsv.ArgumentError(f"--wrt {args.wrt} --input {args.input}: {e}") from None
    return v


def _check_display() -> None:
    """A window needs a display: without one, say so in one line and point to render."""
    import os
    import sys

    import tsviz_native as tsv

    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise tsv.ArgumentError("tsviz view needs a display (DISPLAY is not set); render the same "
                                "scene to a PNG without one: tsviz render MODEL [DATA] --out FILE.png")


def parse_highlight(model: Any, text: str) -> Any:
    import tsviz_native as tsv

    from .state import Highlight

    try:
        layer, f, pos = text.rsplit(":", 2)
        f, pos = int(f), int(pos)
    except ValueError:
        raise tsv.ArgumentError(f"--highlight {text!r}: expected LAYER:FILTER:POS") from None
    if layer != model.output_name:
        layer = _layer(model, layer)
    return Highlight(layer, f, pos)


def _render(args: argparse.Namespace) -> None:
    from vispy.io import write_png  # after the backend: _viewer chose it

    v = _viewer(args, show=False)
    cam = v.view.camera
    if args.azimuth is not None and hasattr(cam, "azimuth"):
        cam.azimuth = args.azimuth
    if args.elevation is not None and hasattr(cam, "elevation"):
        cam.elevation = args.elevation
    img = v.render()
    write_png(args.out, img)
    v.close()
    if not args.quiet:
        print(f"wrote {args.out} ({img.shape[1]}x{img.shape[0]}): {v.status()}")


def _view(args: argparse.Namespace) -> None:
    from vispy import app

    v = _viewer(args, show=True)
    print(f"{v.info.name}: {len(v.X)} windows. Press h in the window for the shortcuts.")
    app.run()
    v.close()
