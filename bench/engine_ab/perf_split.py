"""Where a profile of engine_time spends its samples: by function, and by the op whose rule ran.

    perf script -F ip,sym -i perf.data | python3 bench/engine_ab/perf_split.py [--top 15] [--calls R]

Reads ``perf script -F ip,sym`` output (one block of frames per sample, innermost first, blocks
separated by blank lines) from a ``perf record -g`` of ``engine_time`` built with frame pointers
(bench/engine_ab/profile.sh does both). Prints two tables:

* by function: each function's share of the samples (its own, not its callees'), the innermost
  frame of each sample;
* by op: each sample goes to the innermost op rule on its call chain (``forward_conv``,
  ``backward_max_pool``, ``tangent_add``, ...), so that a shared kernel (the matrix product, say)
  is split among the ops that called it; samples under no rule go to the engine's own step that
  holds them (``importance_rows``, ``band_sums``, ..., then the call itself: ``Model::explain``
  for its own work, allocations and copies) or to "other" (loading the model, the system).

``--calls R``: the number of calls the profile covers, to print samples per call as well (the
sampling frequency is perf's, 20 kHz in profile.sh: 20 samples per ms).
"""

from __future__ import annotations

import argparse
import collections
import re
import sys

# The ops' rules (cpp/src/ops): forward_<op>, backward_<op>, tangent_<op>, and their kernels of
# one instruction set (tangent_add_avx2: tangent_add).
_RULE = re.compile(r"\btsviz::ops::((?:forward|backward|tangent)_[a-z0-9_]+?)(?:_avx2|_avx512|_reference)?\b")
# Steps of the engine outside the ops' rules, in the order they are looked for: the first that is
# on a sample's chain takes it (the calls themselves last: what they do around their steps).
_STEPS = ("conv_filter_input_grad", "importance_rows", "band_sums", "tangent_sums", "seed_rows", "abs_floats",
          "check_input", "reverse_saliency", "saliency_into", "forward_samples", "tsviz::backward",
          "Model::explain", "Model::predict", "Explanation::saliency")


def _name(frame: str) -> str:
    """The function of one `perf script` frame line: 'ADDR SYMBOL+OFF' or 'ADDR SYMBOL'."""
    parts = frame.strip().split(None, 1)
    if len(parts) < 2:
        return "[unknown]"
    sym = re.sub(r"\+0x[0-9a-f]+$", "", parts[1])
    return sym


def _short(sym: str) -> str:
    """A function's name without its parameter list or anonymous namespaces, for the table."""
    sym = sym.replace("(anonymous namespace)::", "")
    depth, cut = 0, len(sym)
    for i, ch in enumerate(sym):  # the first '(' outside template brackets
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0 and i > 0:
            cut = i
            break
    return sym[:cut]


def split(lines) -> tuple[collections.Counter, collections.Counter, int]:
    by_function: collections.Counter = collections.Counter()
    by_op: collections.Counter = collections.Counter()
    total = 0
    block: list[str] = []

    def flush() -> None:
        nonlocal total
        if not block:
            return
        total += 1
        frames = [_name(f) for f in block]
        by_function[_short(frames[0])] += 1
        owner = "other"
        for f in frames:
            m = _RULE.search(f)
            if m:
                owner = m.group(1)
                break
        else:
            for step in _STEPS:
                if any(step in f for f in frames):
                    owner = step
                    break
        by_op[owner] += 1
        block.clear()

    for line in lines:
        if line.strip():
            block.append(line)
        else:
            flush()
    flush()
    return by_function, by_op, total


def _table(title: str, counts: collections.Counter, total: int, top: int, calls: int | None) -> None:
    per_call = calls is not None and calls > 0
    print(f"| {title} | share | samples" + (" | samples per call |" if per_call else " |"))
    print("|---|---|---" + ("|---|" if per_call else "|"))
    for name, n in counts.most_common(top):
        row = f"| {name} | {100 * n / total:.1f}% | {n}"
        print(row + (f" | {n / calls:.2f} |" if per_call else " |"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--top", type=int, default=15, help="rows per table (default 15)")
    ap.add_argument("--calls", type=int, default=None, help="calls the profile covers")
    args = ap.parse_args()
    by_function, by_op, total = split(sys.stdin)
    if total == 0:
        print("no samples on standard input: pipe `perf script -F ip,sym` of a `perf record -g` into it",
              file=sys.stderr)
        return 1
    print(f"{total} samples" + (f", {total / args.calls:.1f} per call" if args.calls else ""))
    print()
    _table("function (own samples)", by_function, total, args.top, args.calls)
    print()
    _table("op (innermost rule on the call chain)", by_op, total, args.top, args.calls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
