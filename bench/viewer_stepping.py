"""Stepping through windows in the threaded viewer (as ``tsviz view`` runs it): the time from
the Right key to the next window swapped in, with the worker explaining ahead and without.

    python3 bench/viewer_stepping.py [--steps 30] [--every 0.25]

The FCN of ``bench_viewer.py`` (``tests/models/fcn_op17.onnx`` on GunPoint test series) at
level 2, offscreen. A key every ``--every`` seconds; between keys, and after one until the window
is shown, the worker's results are polled on the ticks of a 15 ms timer, as the window's timer
does. The latency ends when the new window's geometry is uploaded; the frame's drawing is not in
it (``bench_viewer.py`` times that). Both ways alternate, two rounds each; medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from bench_viewer import fcn_scene

TICK = 0.015  # the viewer's poll timer (viewer/app.py)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--every", type=float, default=0.25)
    args = ap.parse_args()

    from tsviz_native.viewer import backend

    name = backend.use(headless=True)
    from tsviz_native.viewer.app import Viewer

    fcn, X = fcn_scene()
    t0 = time.perf_counter()

    def tick() -> None:  # to the next tick of a timer started at t0
        time.sleep(TICK - ((time.perf_counter() - t0) % TICK))

    def run(ahead: bool) -> list[float]:
        v = Viewer(fcn, X, None, sample=0, size=(1400, 850), show=False, threaded=True)
        if not ahead:
            v._explain_ahead = lambda: None
        v.state.set(level=2, layer=v.info.layer_names[1])
        v.wait()
        latency = []
        next_key = time.perf_counter()
        for _ in range(args.steps):
            while time.perf_counter() < next_key:  # idle: the timer polls
                v._poll()
                tick()
            target = v.state.sample + 1
            start = time.perf_counter()
            v.state.step_sample(1)
            while v.frame.sample != target:
                tick()
                v._poll()
            latency.append(1000 * (time.perf_counter() - start))
            next_key = time.perf_counter() + args.every
        v.close()
        return latency

    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(2):
        for ahead in (False, True):
            times[ahead] += run(ahead)
    print(f"backend {name}, FCN level 2, a key every {args.every} s, {2 * args.steps} steps each way")
    for ahead in (False, True):
        t = times[ahead]
        print(f"{'explained ahead' if ahead else 'not ahead'}: key to shown median "
              f"{statistics.median(t):.1f} ms (min {min(t):.1f}, max {max(t):.1f})")


if __name__ == "__main__":
    sys.exit(main())
