// Convolution over time. ONNX Conv (opsets 1-22), 1-D, or 2-D with a 1 x k kernel that the
// importer has already reduced to 1-D. Attributes: strides, pads, dilations, auto_pad
// (NOTSET, VALID, SAME_UPPER, SAME_LOWER), group (any divisor of the channel count: ordinary,
// grouped and depthwise). Weights (F, C / group, K), bias (F). A BatchNormalization or a
// per-channel affine that follows is folded into the weights at import (SPEC.md: z^l is the
// output of the last folded op). Padding taps read zeros.
#include <algorithm>
#include <string>

#include "ops/op.hpp"
#include "tsviz/error.hpp"

namespace tsviz::ops {

Resolved infer_conv(const Node& node, const std::vector<Shape>& in) {
    const Shape& x = in.at(0);
    const int64_t per_group = static_cast<int64_t>(node.weight.size()) / node.channels / node.kernel;
    if (x.c != per_group * node.group)
        throw ShapeError("node '" + node.onnx_node + "' (" + node.onnx_op + "): input has " +
                         std::to_string(x.c) + " channels; the weights expect " +
                         std::to_string(per_group * node.group));
    Window w{node.kernel, node.stride, node.dilation, node.pad_begin, node.pad_end};
    resolve_auto_pad(node.auto_pad, x.l, w);
    const int64_t out = window_output_length(x.l, w, false);
    if (out <= 0)
        throw ShapeError("node '" + node.onnx_node + "' (" + node.onnx_op + "): input length " +
                         std::to_string(x.l) + " is shorter than the kernel's reach " +
                         std::to_string((node.kernel - 1) * node.dilation + 1) + " (padding " +
                         std::to_string(w.pad_begin) + "+" + std::to_string(w.pad_end) + ")");
    Resolved r;
    r.out = {node.channels, out};
    r.pad_begin = w.pad_begin;
    r.pad_end = w.pad_end;
    return r;
}

void forward_conv(const ForwardArgs& a) {
    const Node& node = a.node;
    const ConstView& x = a.in[0];
    const View& y = a.out;
    const int64_t filters = y.c, out_len = y.l, in_len = x.l;
    const int64_t per_group = x.c / node.group, filters_per_group = filters / node.group;
    const int64_t k_size = node.kernel, s = node.stride, d = node.dilation, pb = a.geo.pad_begin;
    for (int64_t n = 0; n < y.n; ++n) {
        const float* xs = x.sample(n);
        float* ys = y.sample(n);
        for (int64_t f = 0; f < filters; ++f) {
            float* row = ys + f * out_len;
            std::fill(row, row + out_len, node.bias[f]);
            const int64_t first_channel = (f / filters_per_group) * per_group;
            const float* wf = node.weight.data() + f * per_group * k_size;
            for (int64_t c = 0; c < per_group; ++c) {
                const float* xc = xs + (first_channel + c) * in_len;
                for (int64_t k = 0; k < k_size; ++k) {
                    const float w = wf[c * k_size + k];
                    const int64_t offset = k * d - pb;
                    // Output positions whose tap lands inside the input (not in padding).
                    int64_t lo = offset >= 0 ? 0 : (-offset + s - 1) / s;
                    int64_t hi = in_len - 1 - offset < 0 ? -1 : (in_len - 1 - offset) / s;
                    hi = std::min(hi, out_len - 1);
                    if (s == 1) {
                        const float* src = xc + offset;
                        for (int64_t o = lo; o <= hi; ++o) row[o] += w * src[o];
                    } else {
                        for (int64_t o = lo; o <= hi; ++o) row[o] += w * xc[o * s + offset];
                    }
                }
            }
        }
    }
}

}  // namespace tsviz::ops

namespace tsviz::ops {

void backward_conv(const BackwardArgs& a) {
    const Node& node = a.node;
    const View& gx = a.grad_in[0];
    if (!gx.data) return;
    const ConstView& gy = a.grad_out;
    const int64_t filters = gy.c, out_len = gy.l, in_len = gx.l;
    const int64_t per_group = gx.c / node.group, filters_per_group = filters / node.group;
    const int64_t k_size = node.kernel, s = node.stride, d = node.dilation, pb = a.geo.pad_begin;
    for (int64_t r = 0; r < gy.n; ++r) {
        const float* gys = gy.sample(r);
        float* gxs = gx.sample(r);
        for (int64_t f = 0; f < filters; ++f) {
            const float* row = gys + f * out_len;
            const int64_t first_channel = (f / filters_per_group) * per_group;
            const float* wf = node.weight.data() + f * per_group * k_size;
            for (int64_t c = 0; c < per_group; ++c) {
                float* gc = gxs + (first_channel + c) * in_len;
                for (int64_t k = 0; k < k_size; ++k) {
                    const float w = wf[c * k_size + k];
                    const int64_t offset = k * d - pb;
                    int64_t lo = offset >= 0 ? 0 : (-offset + s - 1) / s;
                    int64_t hi = in_len - 1 - offset < 0 ? -1 : (in_len - 1 - offset) / s;
                    hi = std::min(hi, out_len - 1);
                    if (s == 1) {
                        float* dst = gc + offset;
                        for (int64_t o = lo; o <= hi; ++o) dst[o] += w * row[o];
                    } else {
                        for (int64_t o = lo; o <= hi; ++o) gc[o * s + offset] += w * row[o];
                    }
                }
            }
        }
    }
}

// The receptive window of each marked output: every input channel of its group, every tap,
// with stride, padding and dilation; taps in the padding are dropped. With active_only, taps
// whose weight is exactly 0 contribute nothing and are dropped too.
void trace_conv(const TraceArgs& a) {
    const Node& node = a.node;
    const ConstView& x = a.in[0];
    const int64_t filters = a.out.c, out_len = a.out.l, in_len = x.l;
    const int64_t per_group = x.c / node.group, filters_per_group = filters / node.group;
    uint8_t* mask = a.mask_in[0];
    for (int64_t f = 0; f < filters; ++f) {
        const int64_t first_channel = (f / filters_per_group) * per_group;
        const float* wf = node.weight.data() + f * per_group * node.kernel;
        for (int64_t o = 0; o < out_len; ++o) {
            if (!a.mask_out[f * out_len + o]) continue;
            for (int64_t c = 0; c < per_group; ++c)
                for (int64_t k = 0; k < node.kernel; ++k) {
                    const int64_t i = o * node.stride - a.geo.pad_begin + k * node.dilation;
                    if (i < 0 || i >= in_len) continue;
                    if (a.active_only && wf[c * node.kernel + k] == 0.f) continue;
                    mask[(first_channel + c) * in_len + i] = 1;
                }
        }
    }
}

}  // namespace tsviz::ops
