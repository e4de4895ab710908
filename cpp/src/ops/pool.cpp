// Pooling over time. ONNX MaxPool (opsets 1-22: kernel_shape, strides, pads, dilations,
// ceil_mode, auto_pad; storage_order must be 0 and the Indices output unused), AveragePool
// (the same plus count_include_pad), GlobalAveragePool, GlobalMaxPool, and ReduceMean /
// ReduceMax over the time axis, lowered to global pooling.
// SPEC.md: max-pooling scans its window with a strict `>`, so the first maximal element wins
// ties (lowest index), as ONNX Runtime and PyTorch do. Its argmax is cached per output element
// (an input position, -1 for a window wholly in padding) and serves the backward and the trace.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "ops/op.hpp"
#include "tsviz/error.hpp"

namespace tsviz::ops {

namespace {

Resolved infer_window_pool(const Node& node, const std::vector<Shape>& in) {
    const Shape& x = in.at(0);
    Window w{node.kernel, node.stride, node.dilation, node.pad_begin, node.pad_end};
    resolve_auto_pad(node.auto_pad, x.l, w);
    const int64_t out = window_output_length(x.l, w, node.ceil_mode);
    if (out <= 0)
        throw ShapeError("node '" + node.onnx_node + "' (" + node.onnx_op + "): input length " +
                         std::to_string(x.l) + " is shorter than the pooling window " +
                         std::to_string((node.kernel - 1) * node.dilation + 1));
    Resolved r;
    r.out = {x.c, out};
    r.pad_begin = w.pad_begin;
    r.pad_end = w.pad_end;
    return r;
}

}  // namespace

Resolved infer_max_pool(const Node& node, const std::vector<Shape>& in) {
    Resolved r = infer_window_pool(node, in);
    r.aux_per_sample = r.out.size();
    return r;
}

Resolved infer_avg_pool(const Node& node, const std::vector<Shape>& in) {
    return infer_window_pool(node, in);
}

void forward_max_pool(const ForwardArgs& a) {
    const Node& node = a.node;
    const ConstView& x = a.in[0];
    const View& y = a.out;
    const int64_t s = node.stride, d = node.dilation, pb = a.geo.pad_begin;
    for (int64_t n = 0; n < y.n; ++n) {
        for (int64_t c = 0; c < y.c; ++c) {
            const float* xc = x.sample(n) + c * x.l;
            float* yc = y.sample(n) + c * y.l;
            int32_t* arg = a.aux + (n * y.c + c) * y.l;
            for (int64_t o = 0; o < y.l; ++o) {
                float best = -std::numeric_limits<float>::infinity();
                int64_t best_at = -1;
                for (int64_t k = 0; k < node.kernel; ++k) {
                    const int64_t i = o * s - pb + k * d;
                    if (i < 0 || i >= x.l) continue;
                    // Strict '>' keeps the first maximum (SPEC.md, ties: lowest index). A NaN
                    // never wins a comparison, so it only propagates when it comes first.
                    if (best_at < 0 || xc[i] > best) {
                        best = xc[i];
                        best_at = i;
                    }
                }
                yc[o] = best;
                arg[o] = static_cast<int32_t>(best_at);
            }
        }
    }
}

void forward_avg_pool(const ForwardArgs& a) {
    const Node& node = a.node;
    const ConstView& x = a.in[0];
    const View& y = a.out;
    const int64_t s = node.stride, d = node.dilation, pb = a.geo.pad_begin;
    const int64_t padded_end = x.l + a.geo.pad_end;
    for (int64_t n = 0; n < y.n; ++n) {
        for (int64_t c = 0; c < y.c; ++c) {
            const float* xc = x.sample(n) + c * x.l;
            float* yc = y.sample(n) + c * y.l;
            for (int64_t o = 0; o < y.l; ++o) {
                float sum = 0.f;
                int64_t count = 0;
                for (int64_t k = 0; k < node.kernel; ++k) {
                    const int64_t i = o * s - pb + k * d;
                    // count_include_pad counts taps in the declared padding, never those that
                    // ceil_mode adds beyond it.
                    if (i >= 0 && i < x.l) {
                        sum += xc[i];
                        ++count;
                    } else if (node.count_include_pad && i < padded_end) {
                        ++count;
                    }
                }
                yc[o] = count > 0 ? sum / static_cast<float>(count) : 0.f;
            }
        }
    }
}

Resolved infer_global_pool(const Node& node, const std::vector<Shape>& in) {
    Resolved r;
    r.out = {in.at(0).c, 1};
    if (node.kind == OpKind::GlobalMaxPool) r.aux_per_sample = in.at(0).c;
    return r;
}

void forward_global_avg_pool(const ForwardArgs& a) {
    const ConstView& x = a.in[0];
    for (int64_t n = 0; n < x.n; ++n)
        for (int64_t c = 0; c < x.c; ++c) {
            const float* xc = x.sample(n) + c * x.l;
            float sum = 0.f;
            for (int64_t i = 0; i < x.l; ++i) sum += xc[i];
            a.out.sample(n)[c] = sum / static_cast<float>(x.l);
        }
}

void forward_global_max_pool(const ForwardArgs& a) {
    const ConstView& x = a.in[0];
    for (int64_t n = 0; n < x.n; ++n)
        for (int64_t c = 0; c < x.c; ++c) {
            const float* xc = x.sample(n) + c * x.l;
            int64_t best_at = 0;
            for (int64_t i = 1; i < x.l; ++i)
                if (xc[i] > xc[best_at]) best_at = i;
            a.out.sample(n)[c] = xc[best_at];
            a.aux[n * x.c + c] = static_cast<int32_t>(best_at);
        }
}

}  // namespace tsviz::ops
