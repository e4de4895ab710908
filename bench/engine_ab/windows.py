#!/usr/bin/env python3
"""Writes the bench's real windows for engine_ab (run.sh --real): for each model it times,
64 windows in the model's input layout as raw float32, FOLDER/<model>.bin, from
bench/run.py's windows() (B5M windows for these models' shapes).

    python3 bench/engine_ab/windows.py FOLDER
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
MODELS = ("paper_net_op17", "keras_paper_net_op17", "channels_last_op17", "resnet_op17", "fcn_op17")


def main() -> None:
    sys.path.insert(0, str(HERE.parent))
    import numpy as np
    import tsviz_native as tsv
    from run import windows

    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name in MODELS:
        x, _ = windows(tsv.load(ROOT / "tests" / "models" / f"{name}.onnx"), 64)
        np.ascontiguousarray(x, dtype=np.float32).tofile(out / f"{name}.bin")


if __name__ == "__main__":
    main()
