"""What an engine call loses when it follows other work, and to what: its own code, its thread's
buffers, or its model's data.

    python bench/cold_calls.py resnet 1 full
    python bench/cold_calls.py paper_net 64 explain

``bench/run.py`` times each engine call right after the peer's (PyTorch's) call on the same
windows, so a small call pays for whatever the peer evicted. This driver times one call of the
engine (``explain``, or ``full``: explain and every layer's saliency, through the binding as
``bench/run.py``'s rows do) on one engine thread after each of:

* ``warm``: nothing (the call repeated);
* ``data: 64 MiB read``: numpy sums 64 MiB, more than the caches hold, in one tight loop (the
  branch predictors keep what they had learnt);
* ``code: Python compiles a module``: the interpreter compiles ``bench/run.py`` three times: much
  code and many branches, ~3 MB of data;
* ``peer``: PyTorch's turn as in the bench's row (its explanation for ``explain``; its forward-mode
  full analysis, ``jacfwd``, for ``full``);
* ``peer + same call, other model``: the peer, then the same call on a second load of the same
  ONNX file (model B: the same code and the same thread's buffers, its own weights, plans and
  arena), then the timed call on model A;
* ``peer + same call, other thread``: as above, but B's call runs on another thread pinned to the
  same core (the code, the shared caches and the core's branch predictors warmed again; not the
  thread's buffers, nor its malloc arena);
* ``peer + the engine's code read``: the peer, then every executable page of the engine's binary
  module read as data (Linux: from ``/proc/self/maps``): its code back in the caches, nothing
  else (not the predictors, nor any data).

The process is pinned to one core. Medians of ``--reps`` turns, the conditions taking turns.
The two probes (data, code) print what they cost the call, as a share of what the peer's turn
costs it. What B's call gives back, out of what the peer took: on another thread, what any call
of the engine shares (code, predictors); on the same thread, that and the thread's buffers; the
rest is the model's own data; after the code read, what the engine's code lines in the caches
are worth. PyTorch is a benchmark dependency only.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def engine_code() -> list:
    """The executable mappings of the engine's binary module, as arrays over their bytes (none
    where /proc/self/maps is not there)."""
    import ctypes

    import tsviz_native._native as native

    path = os.path.realpath(native.__file__)
    spans = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                f = line.split()
                if len(f) >= 6 and "x" in f[1] and os.path.realpath(f[5]) == path:
                    lo, hi = (int(v, 16) for v in f[0].split("-"))
                    spans.append(np.ctypeslib.as_array((ctypes.c_uint8 * (hi - lo)).from_address(lo)).view(np.uint64))
    except OSError:
        return []
    return spans


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("net", help="a net of bench/torch_peers.py: paper_net, fcn, resnet, channels_last, "
                                "keras_paper_net")
    ap.add_argument("n", type=int, help="windows per call")
    ap.add_argument("mode", choices=("explain", "full"))
    ap.add_argument("--reps", type=int, default=200)
    args = ap.parse_args(argv)

    os.environ["TSVIZ_NUM_THREADS"] = "1"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import torch

    torch.set_num_threads(1)
    import run as bench_run
    import torch_peers as tp

    import tsviz_native as tsv
    from tsviz_native.explain import target_list

    if args.net not in tp.NETS:
        ap.error(f"unknown net {args.net!r}; one of {', '.join(tp.NETS)}")
    net = tp.NETS[args.net]()
    a, b = tsv.load(net.path), tsv.load(net.path)
    x, _ = bench_run.windows(a, args.n)
    x = np.ascontiguousarray(x)
    xb = x.copy()
    targets = target_list(None, args.n)

    def call(model, xs):
        ex = model._native.explain(xs, targets, "logit", False)
        if args.mode == "full":
            for name in model._layer_names:
                ex.saliency(name, [], "auto")

    if args.mode == "full":
        chunk = tp.jacfwd_chunk(net, x)
        peer = lambda: tp.full_jacfwd(net, x, chunk)  # noqa: E731
        peer_name = "PyTorch jacfwd full analysis"
    else:
        peer = lambda: tp.explain(net, x)  # noqa: E731
        peer_name = "PyTorch explain"
    other = concurrent.futures.ThreadPoolExecutor(1)
    sweep = np.ones(16 << 20, np.float32)  # 64 MiB
    source = Path(bench_run.__file__).read_text()

    def python_code():  # the interpreter's parser and compiler: much code, little data
        for _ in range(3):
            compile(source, "run.py", "exec")

    code = engine_code()

    def read_code():  # the engine's machine code read as data: its lines back in L2 and L3
        for c in code:
            c.sum()

    conditions = {
        "warm": lambda: None,
        "data: 64 MiB read": lambda: sweep.sum(),
        "code: Python compiles a module": python_code,
        "peer": peer,
        "peer + same call, other model": lambda: (peer(), call(b, xb)),
        "peer + same call, other thread": lambda: (peer(), other.submit(call, b, xb).result()),
    }
    if code:
        conditions["peer + the engine's code read"] = lambda: (peer(), read_code())
    times = {k: [] for k in conditions}
    for before in conditions.values():  # warm-up
        before()
        call(a, x)
    for _ in range(args.reps):
        for k, before in conditions.items():
            before()
            t = time.perf_counter()
            call(a, x)
            times[k].append(time.perf_counter() - t)
    other.shutdown()
    med = {k: 1e6 * statistics.median(v) for k, v in times.items()}
    lost = med["peer"] - med["warm"]
    print(f"{args.net}, {args.n} window(s), {args.mode}, one engine thread, one core; peer: {peer_name}; "
          f"medians of {args.reps}")
    probes = ("data: 64 MiB read", "code: Python compiles a module")
    print("| before the call | us | lost, of what the peer's turn costs | given back of what the peer took |")
    print("|---|---|---|---|")
    for k, v in med.items():
        took = f"{(v - med['warm']) / lost:.0%}" if k in probes and lost > 0 else ""
        back = "" if k in ("warm", "peer") or k in probes or lost <= 0 else f"{(med['peer'] - v) / lost:.0%}"
        print(f"| {k} | {v:.1f} | {took} | {back} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
