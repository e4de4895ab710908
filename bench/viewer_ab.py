"""The viewer at a git revision against the working tree's, in one process: sample switches
alternated between the two, so that a shared machine's slow periods fall on both alike.

    python3 bench/viewer_ab.py REF [--switches 40] [--size 1400x850]

REF's ``viewer/`` is read with ``git show`` into a temporary package and imported beside the
installed ``tsviz_native.viewer`` (the working tree's, once installed); both run on the one
installed engine, so this compares the viewer's Python and its drawing, not the engine. Rows as
``bench_viewer.py``'s FCN rows (``tests/models/fcn_op17.onnx`` on GunPoint test series) and the
paper net's level 2. Each switch: explain the next window, build the geometry, upload, render
(``canvas.render()``: draw and read back), timed in two parts; medians, and new / old.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_viewer import fcn_scene, one_switch

ROOT = Path(__file__).resolve().parents[1]


def _old_viewer(ref: str, into: Path) -> str:
    """Writes REF's viewer/ as package ``tsviz_viewer_<ref>`` under ``into``; its name."""
    name = "tsviz_viewer_" + "".join(c if c.isalnum() else "_" for c in ref)
    pkg = into / name
    pkg.mkdir()
    files = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "--name-only", ref, "viewer/"],
                           check=True, capture_output=True, text=True).stdout.split()
    if not files:
        sys.exit(f"viewer_ab: no viewer/ at {ref}")
    for f in files:
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:{f}"], check=True,
                              capture_output=True, text=True).stdout
        (pkg / Path(f).name).write_text(text)
    return name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ref")
    ap.add_argument("--switches", type=int, default=40)
    ap.add_argument("--size", default="1400x850")
    args = ap.parse_args()
    size = tuple(int(s) for s in args.size.split("x"))

    import tsviz_native as tsv
    from tsviz_native import models
    from tsviz_native.viewer import backend

    name = backend.use(headless=True)
    tmp = tempfile.TemporaryDirectory()
    sys.path.insert(0, tmp.name)
    old_name = _old_viewer(args.ref, Path(tmp.name))
    old_app = importlib.import_module(old_name + ".app")
    from tsviz_native.viewer import app as new_app

    fcn, Xg = fcn_scene()
    paper = tsv.load(models.path("forecaster"))
    Xp, yp, _ = models.forecaster_windows("test")
    scenes = [("FCN, level 2", fcn, Xg, None, 2, 1), ("FCN, level 3", fcn, Xg, None, 3, 1),
              ("paper net, level 2", paper, Xp, yp, 2, 0)]
    print(f"backend {name}, canvas {size[0]}x{size[1]}, {args.switches} switches each, "
          f"old = {args.ref}, new = the installed viewer")
    print("| scene | explain+build+upload ms, new / old | render ms, new / old | switch, new / old |")
    print("|---|---|---|---|")
    for label, model, X, y, level, layer in scenes:
        views = [m.Viewer(model, X, y, sample=0, size=size, show=False, threaded=False)
                 for m in (new_app, old_app)]
        for v in views:
            v.state.set(level=level, layer=v.info.layer_names[layer])
            v.canvas.render()
        times = [[], []]  # per viewer: (build, render) per switch
        for k in range(args.switches):
            sample = 1 + k % (len(X) - 1)
            order = (0, 1) if k % 2 == 0 else (1, 0)
            for i in order:
                build, whole = one_switch(views[i], sample)
                times[i].append((build, whole - build))
        med = [[statistics.median(t[j] for t in times[i]) for j in (0, 1)] for i in (0, 1)]
        total = [statistics.median(a + b for a, b in times[i]) for i in (0, 1)]
        print(f"| {label} | {med[0][0]:.1f} / {med[1][0]:.1f} ({med[0][0] / med[1][0]:.2f}) | "
              f"{med[0][1]:.1f} / {med[1][1]:.1f} ({med[0][1] / med[1][1]:.2f}) | "
              f"{total[0]:.1f} / {total[1]:.1f} ({total[0] / total[1]:.2f}) |")
        for v in views:
            v.close()
    import os

    if hasattr(os, "getloadavg"):
        print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    sys.exit(main())
