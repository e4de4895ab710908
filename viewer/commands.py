"""``tsviz view`` and ``tsviz render``: registered by the CLI without importing vispy."""

from __future__ import annotations

import argparse
from typing import Any

SHIPPED = ("forecaster", "fcn-gunpoint")


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
    p.set_defaults(func=_render)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--level", type=int, choices=[1, 2, 3, 4], default=1,
                   help="1 network, 2 filters, 3 one layer, 4 clusters (default 1)")
    p.add_argument("--index", type=int, default=0, help="window to show first (default 0)")
    p.add_argument("--layer", default=None,
                   help="filter layer for levels 3 and 4: a name or its number (default: first)")
    p.add_argument("--percentile", type=float, default=0.0,
                   help="draw only filters at or above this importance percentile (default 0)")
    p.add_argument("--sort", choices=["descending", "ascending"], default="descending",
                   help="order of filters by importance (default descending)")
    p.add_argument("--active-only", action="store_true",
                   help="highlighting drops points whose contribution is exactly 0")
    p.add_argument("--size", default=None, metavar="WxH",
                   help="canvas size in pixels (default 1400x850)")


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
    import numpy as np

    import tsviz_native as tsv
    from tsviz_native import cli, models

    if model_arg in SHIPPED:
        model = tsv.load(models.path(model_arg))
        if data_arg is None:
            if model_arg == "forecaster":
                X, y, _ = models.forecaster_windows("test")
            else:
                X, y = models.gunpoint("test")
            return model, X, y
    else:
        model = tsv.load(model_arg)
        if data_arg is None:
            raise tsv.ArgumentError(f"{model_arg}: give DATA (windows for this model)")
    raw = cli._read_array(data_arg)
    X = cli._windows(model, raw, data_arg)
    truth = np.asarray(raw["y"]).reshape(-1) if isinstance(raw, dict) and "y" in raw else None
    if truth is not None and len(truth) != len(X):
        truth = None
    return model, X, truth


def _layer(model: Any, text: str | None) -> str | None:
    import tsviz_native as tsv

    if text is None:
        return None
    names = [l.name for l in model.layers]
    if text in names:
        return text
    if text.lstrip("-").isdigit() and -len(names) <= int(text) < len(names):
        return names[int(text)]
    raise tsv.ArgumentError(f"no filter layer {text!r}; the model has {', '.join(names)} "
                            f"(or give its number 0..{len(names) - 1})")


def _viewer(args: argparse.Namespace, show: bool) -> Any:
    import tsviz_native as tsv

    from . import backend

    model, X, truth = load_inputs(args.model, args.data)
    if not 0 <= args.index < len(X):
        raise tsv.ArgumentError(f"--index {args.index}: the data has windows 0..{len(X) - 1}")
    if not 0 <= args.percentile <= 100:
        raise tsv.ArgumentError(f"--percentile {args.percentile}: expected 0..100")
    size = _size(args.size)
    layer = _layer(model, args.layer)
    backend.use(headless=not show)
    from .app import Viewer

    v = Viewer(model, X, truth, sample=args.index, level=args.level, layer=layer,
               percentile=args.percentile, sort=args.sort, size=size, show=show, threaded=show)
    v.state.set(active_only=bool(args.active_only))
    return v


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
    if args.highlight:
        hl = parse_highlight(v.model, args.highlight)
        try:
            v.state.set(highlight=hl, **({"layer": hl.tensor, "filter": hl.filter}
                                         if hl.tensor in v.info.layer_names else {}))
            v.refresh()
        except Exception as e:
            import tsviz_native as tsv

            raise tsv.ArgumentError(f"--highlight {args.highlight!r}: {e}") from None
    cam = v.view.camera
    if args.azimuth is not None and hasattr(cam, "azimuth"):
        cam.azimuth = args.azimuth
    if args.elevation is not None and hasattr(cam, "elevation"):
        cam.elevation = args.elevation
    img = v.render()
    write_png(args.out, img)
    v.close()
    print(f"wrote {args.out} ({img.shape[1]}x{img.shape[0]}): {v.status()}")


def _view(args: argparse.Namespace) -> None:
    from vispy import app

    v = _viewer(args, show=True)
    print(f"{v.info.name}: {len(v.X)} windows. Press h in the window for the shortcuts.")
    app.run()
    v.close()
