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
