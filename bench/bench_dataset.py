"""analyze_dataset on 1,000,000 windows of the paper's forecaster, with bounded memory.

    python bench/bench_dataset.py [--windows 1000000] [--batch-size 4096]

The windows are real B5M windows (the scaled signal and its first difference), cut from the
series on demand and cycling through it, so the data set itself never sits in memory either.
Prints the wall time, windows per second and the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

import tsviz_native as tsv
from tsviz_native import models


class Windows:
    """Indexable by slices like an array of shape (n, 2, 50); made on demand."""

    def __init__(self, n: int) -> None:
        s = tsv.datasets.internet_traffic("B5M").values
        scaling = models.info("forecaster")["scaling"]
        self.s = ((s - scaling["mean"]) / scaling["std"]).astype(np.float32)
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, sl: slice) -> np.ndarray:
        idx = np.arange(sl.start, sl.stop) % (len(self.s) - 50)
        w = self.s[idx[:, None] + np.arange(50)]
        d = np.diff(w, axis=1, prepend=w[:, :1])
        return np.stack([w, d], axis=1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--windows", type=int, default=1_000_000, help="number of windows")
    p.add_argument("--batch-size", type=int, default=4096, help="windows per engine call")
    args = p.parse_args()
    model = tsv.load(models.path("forecaster"))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    stats = tsv.analyze_dataset(model, Windows(args.windows), batch_size=args.batch_size)
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(stats.summary())
    print(f"\n{stats.n_windows} windows in {wall:.1f} s ({stats.n_windows / wall:,.0f} windows/s); "
          f"peak resident memory {peak / 1024:.0f} MiB (after loading: {before / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
