#!/usr/bin/env python3
"""Kept for its old command: the explain benchmark is now part of ``bench/run.py``.

    python bench/bench_explain.py [--quick] [run.py options]

runs ``python bench/run.py --threads 1 --only explain full paper_net fcn`` (the two models
this script used to time: the paper's network and the FCN), plus any further options given.
The PyTorch equivalents of the models (``PaperNetTorch``, ``FCNTorch``, ...) and the PyTorch
workloads now live in ``bench/torch_peers.py``. See bench/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402  (bench/run.py)

if __name__ == "__main__":
    extra = sys.argv[1:]
    base = [] if "--threads" in extra else ["--threads", "1"]
    base += [] if "--only" in extra else ["--only", "explain", "full", "paper_net", "fcn"]
    sys.argv = [str(Path(run.__file__))] + base + extra
    run.main(sys.argv[1:])
