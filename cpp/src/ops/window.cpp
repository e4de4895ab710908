// Sliding-window geometry shared by Conv, MaxPool and AveragePool, with ONNX semantics:
// auto_pad SAME_UPPER puts the odd padding at the end, SAME_LOWER at the beginning; ceil_mode
// rounds the window count up but never lets a window start inside the end padding.
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

}  // namespace tsviz::ops
