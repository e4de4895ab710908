"""The bench's profile reader splits perf's samples by function and by the op that ran them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _perf_split():
    spec = importlib.util.spec_from_file_location("perf_split", ROOT / "bench" / "engine_ab" / "perf_split.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# `perf script -F ip,sym` of four samples, innermost frame first, as perf prints them.
_SCRIPT = """
\t  90a9e tsviz::ops::(anonymous namespace)::narrow_avx2(tsviz::ops::TapProduct const&, long)+0x2e
\t  91b08 tsviz::ops::tap_product(tsviz::ops::TapProduct const&, tsviz::ops::Segment const*, long)
\t  7a100 tsviz::ops::forward_conv(tsviz::ops::ForwardArgs const&)
\t  61000 tsviz::forward_samples(tsviz::Graph const&, tsviz::Activations&, long, long)
\t  3a9d2 tsviz::Model::explain(float const*, long) const

\t  90a9e tsviz::ops::(anonymous namespace)::narrow_avx2(tsviz::ops::TapProduct const&, long)+0x40
\t  91b08 tsviz::ops::tap_product(tsviz::ops::TapProduct const&, tsviz::ops::Segment const*, long)
\t  7a200 tsviz::ops::tangent_conv(tsviz::ops::TangentArgs const&)
\t  62000 tsviz::tangent_sums(tsviz::Graph const&, tsviz::Activations const&)::{lambda(long, long)#1}::operator()

\t  80000 tsviz::ops::tangent_add_avx2(tsviz::ops::TangentArgs const&)
\t  62000 tsviz::tangent_sums(tsviz::Graph const&, tsviz::Activations const&)::{lambda(long, long)#1}::operator()

\t  409a3 std::vector<float, std::allocator<float> >::_M_fill_assign(unsigned long, float const&)
\t  3a9d2 tsviz::Model::explain(float const*, long) const
"""


def test_perf_split_by_function_and_by_op() -> None:
    by_function, by_op, total = _perf_split().split(_SCRIPT.splitlines(keepends=True))
    assert total == 4
    assert by_function["tsviz::ops::narrow_avx2"] == 2  # anonymous namespace and parameters cut
    assert by_function["tsviz::ops::tangent_add_avx2"] == 1
    # the shared kernel goes to the rule that called it; a kernel of one instruction set to its rule
    assert by_op == {"forward_conv": 1, "tangent_conv": 1, "tangent_add": 1, "Model::explain": 1}


def _footprint():
    spec = importlib.util.spec_from_file_location("footprint", ROOT / "bench" / "engine_ab" / "footprint.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# A callgrind profile as valgrind writes it with --dump-instr=yes: names compressed to "(id)"
# after their first use, positions absolute (hex) or relative to the line before (decimal), and
# after each calls= line the call's own position with the callee's inclusive cost.
_CALLGRIND = """# callgrind format
version: 1
positions: instr line
events: Ir DLmr DLmw
summary: 1000 3 5

ob=(1) /lib/libc.so.6
fl=(1) malloc.c
fn=(1) malloc
0x1000 10 20
+4 11 5

ob=(2) /bench/engine_time
fl=(2) explain.cpp
fn=(2) tsviz::Model::explain
0x2000 30 100 1 2
+70 31 50
cob=(1)
cfl=(1)
cfn=(1)
calls=3 0x1000
+2 32 999
+60 33 7
fn=(3) tsviz::ops::narrow_avx2
0x2100 40 800 2 3
* 40 1
"""


def test_footprint_counts_distinct_code_lines_by_binary_and_function() -> None:
    events, totals, lines, fn_lines, fn_ir = _footprint().parse(_CALLGRIND.splitlines())
    assert dict(zip(events, totals)) == {"Ir": 1000, "DLmr": 3, "DLmw": 5}
    # malloc: 0x1000 and 0x1004, one line; explain: 0x2000, 0x2046, 0x2048, 0x2084 (lines
    # 0x80, 0x81, 0x82); narrow: 0x2100 twice (line 0x84)
    assert {ob: sorted(v) for ob, v in lines.items()} == {"/lib/libc.so.6": [0x40],
                                                            "/bench/engine_time": [0x80, 0x81, 0x82, 0x84]}
    assert len(fn_lines[("/bench/engine_time", "tsviz::Model::explain")]) == 3
    # the call's line carries malloc's inclusive cost (999), not explain's own
    assert fn_ir[("/bench/engine_time", "tsviz::Model::explain")] == 100 + 50 + 7
    assert fn_ir[("/bench/engine_time", "tsviz::ops::narrow_avx2")] == 801
    assert fn_ir[("/lib/libc.so.6", "malloc")] == 25
