"""What one engine call touches from cold caches: a callgrind profile of engine_time's FOOTPRINT
mode (bench/engine_ab/profile.sh MODEL N MODE --footprint runs both).

    python3 bench/engine_ab/footprint.py callgrind.out [--top 15]

The profile must come from ``valgrind --tool=callgrind --collect-atstart=no --dump-instr=yes
--branch-sim=yes --cache-sim=yes`` (one call collected, after a sweep larger than the simulated
last-level cache). Prints:

* the call's instructions, conditional and indirect branches (with the mispredictions of
  valgrind's simple predictor model, which learns from this call alone: a cold predictor's
  count, not a real processor's), its data lines read and written from beyond the last-level
  cache, and its code lines from there;
* the distinct 64-byte code lines it runs, by binary (file name): the code a call must fetch
  again after other work evicted it;
* the functions with the most distinct code lines, with their instructions.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import sys

_NAMED = re.compile(r"^(c?ob|c?fn|fl|fi|fe|cfi|cfl)=(?:\((\d+)\))?\s*(.*)$")


def parse(text):
    """(events, totals, code lines by binary, code lines by (binary, function), Ir by function)
    of a callgrind profile's lines (an open file, or a list of strings)."""
    names = {"ob": {}, "fn": {}}
    ob = fn = None
    addr = 0
    events: list[str] = []
    totals: list[int] = []
    positions = 1  # fields before the costs on a cost line (positions: instr line)
    lines = collections.defaultdict(set)
    fn_lines = collections.defaultdict(set)
    fn_ir = collections.Counter()
    inclusive = False  # the cost line after calls= is the callee's, not the caller's own
    for raw in text:
        s = raw.strip()
        if not s:
            continue
        if s.startswith("events:"):
            events = s.split()[1:]
            continue
        if s.startswith("positions:"):
            positions = len(s.split()) - 1
            continue
        if s.startswith(("summary:", "totals:")):
            totals = [int(v) for v in s.split()[1:]]
            continue
        m = _NAMED.match(s)
        if m:
            kind, idx, name = m.groups()
            table = names.get(kind[-2:])
            if table is not None:
                if idx and name:
                    table[idx] = name
                value = table.get(idx, name) if idx else name
                if kind == "ob":
                    ob = value
                elif kind == "fn":
                    fn = value
            continue
        if s.startswith("calls="):
            inclusive = True
            continue
        tok = s.split()
        first = tok[0]
        if first.startswith("0x"):
            addr = int(first, 16)
        elif first[0] in "+-" and first[1:].isdigit():
            addr += int(first)
        elif first != "*":
            continue  # a header line
        lines[ob].add(addr >> 6)
        fn_lines[(ob, fn)].add(addr >> 6)
        if not inclusive and events[:1] == ["Ir"] and len(tok) > positions:
            fn_ir[(ob, fn)] += int(tok[positions])
        inclusive = False
    return events, totals, lines, fn_lines, fn_ir


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profile")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args(argv)
    with open(args.profile) as f:
        events, totals, lines, fn_lines, fn_ir = parse(f)
    if not totals:
        print(f"{args.profile}: no totals (was the call collected?)", file=sys.stderr)
        return 1
    ev = dict(zip(events, totals))
    kib = lambda count: f"{count * 64 / 1024:.0f} KiB"  # noqa: E731
    print("| per call | count |")
    print("|---|---|")
    print(f"| instructions | {ev.get('Ir', 0):,} |")
    if "Bc" in ev:
        print(f"| conditional branches (mispredicted, cold model) | {ev['Bc']:,} ({ev.get('Bcm', 0):,}) |")
        print(f"| indirect branches (mispredicted, cold model) | {ev['Bi']:,} ({ev.get('Bim', 0):,}) |")
    if "DLmr" in ev:
        print(f"| data lines read from beyond the last-level cache | {ev['DLmr']:,} ({kib(ev['DLmr'])}) |")
        print(f"| data lines written, first touch beyond it | {ev['DLmw']:,} ({kib(ev['DLmw'])}) |")
        print(f"| code lines from beyond it | {ev['ILmr']:,} ({kib(ev['ILmr'])}) |")
    print()
    print("| binary | distinct code lines run | KiB |")
    print("|---|---|---|")
    for ob, v in sorted(lines.items(), key=lambda kv: -len(kv[1])):
        print(f"| {os.path.basename(ob or '?')} | {len(v)} | {len(v) * 64 / 1024:.1f} |")
    print(f"| all | {sum(len(v) for v in lines.values())} | {sum(len(v) for v in lines.values()) * 64 / 1024:.1f} |")
    print()
    print(f"{len(fn_lines)} functions run. The {args.top} with the most code lines:")
    print()
    print("| function | code lines | instructions |")
    print("|---|---|---|")
    for key, v in sorted(fn_lines.items(), key=lambda kv: -len(kv[1]))[:args.top]:
        name = (key[1] or "?").replace("|", "\\|")
        print(f"| {name[:120]} | {len(v)} | {fn_ir[key]:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
