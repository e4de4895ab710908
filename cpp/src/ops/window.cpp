// Sliding-window geometry shared by Conv, MaxPool and AveragePool, with ONNX semantics:
// auto_pad SAME_UPPER puts the odd padding at the end, SAME_LOWER at the beginning; ceil_mode
// rounds the window count up but never lets a window start inside the end padding.
#include <algorithm>

#include "ops/op.hpp"

namespace tsviz::ops {

void resolve_auto_pad(AutoPad mode, int64_t length, Window& w) {
    if (mode == AutoPad::NotSet) return;
    if (mode == AutoPad::Valid) {
        w.pad_begin = w.pad_end = 0;
        return;
    }
    const int64_t out = (length + w.stride - 1) / w.stride;
    const int64_t reach = (w.kernel - 1) * w.dilation + 1;
    int64_t total = (out - 1) * w.stride + reach - length;
    if (total < 0) total = 0;
    const int64_t small = total / 2, large = total - small;
    if (mode == AutoPad::SameUpper) {
        w.pad_begin = small;
        w.pad_end = large;
    } else {
        w.pad_begin = large;
        w.pad_end = small;
    }
}

int64_t window_output_length(int64_t length, const Window& w, bool ceil_mode) {
    const int64_t span = length + w.pad_begin + w.pad_end - (w.kernel - 1) * w.dilation - 1;
    if (span < 0) return 0;
    if (!ceil_mode) return span / w.stride + 1;
    int64_t out = (span + w.stride - 1) / w.stride + 1;
    if ((out - 1) * w.stride >= length + w.pad_begin) --out;
    return out;
}

namespace {
// Floor and ceiling of a / b for b > 0.
int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }
}  // namespace

Band window_band(const Node& node, const Resolved& geo, int64_t out_len, Band in) {
    if (in.empty()) return {};
    // Output o reads i = o * s - pad + k * d for k in [0, K): it reads the band when
    // o * s - pad <= hi and o * s - pad + (K - 1) * d >= lo.
    const int64_t reach = (node.kernel - 1) * node.dilation;
    Band b{ceil_div(in.lo + geo.pad_begin - reach, node.stride), floor_div(in.hi + geo.pad_begin, node.stride)};
    b.lo = std::max<int64_t>(b.lo, 0);
    b.hi = std::min<int64_t>(b.hi, out_len - 1);
    return b;
}

Band band_same(const BandArgs& a) { return a.in_band.at(0); }

Band band_hull(const BandArgs& a) {
    Band out;
    for (const Band& b : a.in_band) {
        if (b.empty()) continue;
        if (out.empty()) {
            out = b;
        } else {
            out.lo = std::min(out.lo, b.lo);
            out.hi = std::max(out.hi, b.hi);
        }
    }
    return out;
}

Band band_full(const BandArgs& a) {
    for (const Band& b : a.in_band)
        if (!b.empty()) return {0, a.geo.out.l - 1};
    return {};
}

}  // namespace tsviz::ops
