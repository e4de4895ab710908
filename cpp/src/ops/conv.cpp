// Convolution over time. ONNX Conv (opsets 1-22), 1-D, or 2-D with a 1 x k kernel that the
// importer has already reduced to 1-D. Attributes: strides, pads, dilations, auto_pad
// (NOTSET, VALID, SAME_UPPER, SAME_LOWER), group (any divisor of the channel count: ordinary,
// grouped and depthwise). Weights (F, C / group, K), bias (F). A BatchNormalization or a
// per-channel affine that follows is folded into the weights at import (SPEC.md: z^l is the
// output of the last folded op). Padding taps read zeros.
#include <algorithm>
#include <string>
#include <vector>

#include "ops/gemm.hpp"
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

namespace {

// Output positions [lo, hi] whose tap k reads inside the input (not the padding).
inline void tap_range(int64_t offset, int64_t stride, int64_t in_len, int64_t out_len, int64_t& lo, int64_t& hi) {
    lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
    hi = in_len - 1 - offset < 0 ? -1 : (in_len - 1 - offset) / stride;
    hi = std::min(hi, out_len - 1);
}

// col[(c * K + k) * out_len + o] = x[c, o * s - pad + k * d], 0 in the padding.
void im2col(const float* x, int64_t channels, int64_t in_len, const Node& node, int64_t pad, int64_t out_len,
            float* col) {
    const int64_t k_size = node.kernel, s = node.stride;
    for (int64_t c = 0; c < channels; ++c)
        for (int64_t k = 0; k < k_size; ++k) {
            float* dst = col + (c * k_size + k) * out_len;
            const float* src = x + c * in_len;
            const int64_t offset = k * node.dilation - pad;
            int64_t lo, hi;
            tap_range(offset, s, in_len, out_len, lo, hi);
            std::fill(dst, dst + out_len, 0.f);
            for (int64_t o = lo; o <= hi; ++o) dst[o] = src[o * s + offset];
        }
}

// The adjoint of im2col: x[c, o * s - pad + k * d] += col[(c * K + k) * out_len + o].
void col2im(const float* col, int64_t channels, int64_t in_len, const Node& node, int64_t pad, int64_t out_len,
            float* x) {
    const int64_t k_size = node.kernel, s = node.stride;
    for (int64_t c = 0; c < channels; ++c)
        for (int64_t k = 0; k < k_size; ++k) {
            const float* src = col + (c * k_size + k) * out_len;
            float* dst = x + c * in_len;
            const int64_t offset = k * node.dilation - pad;
            int64_t lo, hi;
            tap_range(offset, s, in_len, out_len, lo, hi);
            for (int64_t o = lo; o <= hi; ++o) dst[o * s + offset] += src[o];
        }
}

}  // namespace

// z = W * im2col(x) + b per sample and group: one matrix product each.
void forward_conv(const ForwardArgs& a) {
    const Node& node = a.node;
    const ConstView& x = a.in[0];
    const View& y = a.out;
    const int64_t groups = node.group, per_group = x.c / groups, filters_per_group = y.c / groups;
    const int64_t depth = per_group * node.kernel;
    std::vector<float> col(static_cast<size_t>(depth * y.l));
    for (int64_t n = 0; n < y.n; ++n)
        for (int64_t g = 0; g < groups; ++g) {
            im2col(x.sample(n) + g * per_group * x.l, per_group, x.l, node, a.geo.pad_begin, y.l, col.data());
            float* out = y.sample(n) + g * filters_per_group * y.l;
            for (int64_t f = 0; f < filters_per_group; ++f)
                std::fill(out + f * y.l, out + (f + 1) * y.l, node.bias[g * filters_per_group + f]);
            sgemm(filters_per_group, y.l, depth, node.weight.data() + g * filters_per_group * depth, depth,
                  col.data(), y.l, out, y.l);
        }
}

}  // namespace tsviz::ops

namespace tsviz::ops {

// dx = col2im(W^T * dz) per cotangent row and group.
void backward_conv(const BackwardArgs& a) {
    const Node& node = a.node;
    const View& gx = a.grad_in[0];
    if (!gx.data) return;
    const ConstView& gy = a.grad_out;
    const int64_t groups = node.group, per_group = gx.c / groups, filters_per_group = gy.c / groups;
    const int64_t depth = per_group * node.kernel;
    // W^T per group: (depth x filters_per_group).
    std::vector<float> wt(static_cast<size_t>(groups * depth * filters_per_group));
    for (int64_t g = 0; g < groups; ++g)
        for (int64_t f = 0; f < filters_per_group; ++f)
            for (int64_t q = 0; q < depth; ++q)
                wt[(g * depth + q) * filters_per_group + f] = node.weight[(g * filters_per_group + f) * depth + q];
    std::vector<float> col(static_cast<size_t>(depth * gy.l));
    for (int64_t r = 0; r < gy.n; ++r)
        for (int64_t g = 0; g < groups; ++g) {
            std::fill(col.begin(), col.end(), 0.f);
            sgemm(depth, gy.l, filters_per_group, wt.data() + g * depth * filters_per_group, filters_per_group,
                  gy.sample(r) + g * filters_per_group * gy.l, gy.l, col.data(), gy.l);
            col2im(col.data(), per_group, gx.l, node, a.geo.pad_begin, gy.l, gx.sample(r) + g * per_group * gx.l);
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
