// Per-channel affine maps and sums of tensors. Affine is what a BatchNormalization
// (inference) or a Mul/Add/Sub/Div by a per-channel or scalar constant becomes; after a
// convolution or dense layer it is folded into the weights at import. Add sums two tensors of
// one shape (ONNX Add of two activations: residual connections).
#include <string>

#include "ops/op.hpp"
#include "tsviz/error.hpp"

namespace tsviz::ops {

void forward_affine(const ForwardArgs& a) {
    const ConstView& x = a.in[0];
    const std::vector<float>& scale = a.node.scale;
    const std::vector<float>& shift = a.node.shift;
    for (int64_t n = 0; n < x.n; ++n)
        for (int64_t c = 0; c < x.c; ++c) {
            const float* xc = x.sample(n) + c * x.l;
            float* yc = a.out.sample(n) + c * x.l;
            for (int64_t i = 0; i < x.l; ++i) yc[i] = xc[i] * scale[c] + shift[c];
        }
}

Resolved infer_add(const Node& node, const std::vector<Shape>& in) {
    const Shape& p = in.at(0);
    const Shape& q = in.at(1);
    if (p.c != q.c || p.l != q.l)
        throw ShapeError("node '" + node.onnx_node + "' (" + node.onnx_op +
                         "): adds tensors of shapes (" + std::to_string(p.c) + ", " +
                         std::to_string(p.l) + ") and (" + std::to_string(q.c) + ", " +
                         std::to_string(q.l) + ")");
    Resolved r;
    r.out = p;
    return r;
}

void forward_add(const ForwardArgs& a) {
    const int64_t total = a.out.n * a.out.c * a.out.l;
    const float* p = a.in[0].data;
    const float* q = a.in[1].data;
    for (int64_t i = 0; i < total; ++i) a.out.data[i] = p[i] + q[i];
}

void backward_affine(const BackwardArgs& a) {
    const View& gx = a.grad_in[0];
    if (!gx.data) return;
    for (int64_t r = 0; r < gx.n; ++r)
        for (int64_t c = 0; c < gx.c; ++c) {
            const float* g = a.grad_out.sample(r) + c * gx.l;
            float* dst = gx.sample(r) + c * gx.l;
            const float s = a.node.scale[c];
            for (int64_t i = 0; i < gx.l; ++i) dst[i] += g[i] * s;
        }
}

// Same position; with active_only, not through a channel scaled by exactly 0.
void trace_affine(const TraceArgs& a) {
    const int64_t len = a.out.l;
    for (int64_t c = 0; c < a.out.c; ++c) {
        if (a.active_only && a.node.scale[c] == 0.f) continue;
        for (int64_t i = 0; i < len; ++i)
            if (a.mask_out[c * len + i]) a.mask_in[0][c * len + i] = 1;
    }
}

void backward_add(const BackwardArgs& a) {
    const int64_t total = a.grad_out.n * a.grad_out.c * a.grad_out.l;
    for (const View& gx : a.grad_in) {
        if (!gx.data) continue;
        for (int64_t i = 0; i < total; ++i) gx.data[i] += a.grad_out.data[i];
    }
}

// SPEC.md: elementwise ops mark the same position on every input.
void trace_add(const TraceArgs& a) {
    const int64_t size = a.out.c * a.out.l;
    for (uint8_t* m : a.mask_in)
        for (int64_t i = 0; i < size; ++i)
            if (a.mask_out[i]) m[i] = 1;
}


Band band_affine(const BandArgs& a) { return band_same(a); }
Band band_add(const BandArgs& a) { return band_hull(a); }

void tangent_affine(const TangentArgs& a) {
    const int64_t c_n = a.out.c, w = a.w_out;
    for (int64_t t = 0; t < a.count; ++t)
        for (int64_t c = 0; c < c_n; ++c) {
            const float* src = a.t_in[0] + (t * c_n + c) * w;
            float* dst = a.t_out + (t * c_n + c) * w;
            const float s = a.node.scale[c];
            for (int64_t j = 0; j < w; ++j) dst[j] = src[j] * s;
        }
}

// Each input's band lies inside the output's (the hull), at its own offset.
void tangent_add(const TangentArgs& a) {
    const int64_t c_n = a.out.c, w_out = a.w_out;
    for (size_t k = 0; k < a.t_in.size(); ++k) {
        if (!a.t_in[k]) continue;
        const int64_t w_in = a.w_in[k];
        for (int64_t t = 0; t < a.count; ++t) {
            const int64_t shift = a.start_in[k][t] - a.start_out[t];
            for (int64_t c = 0; c < c_n; ++c) {
                const float* src = a.t_in[k] + (t * c_n + c) * w_in;
                float* dst = a.t_out + (t * c_n + c) * w_out;
                for (int64_t r = 0; r < w_in; ++r) {
                    const int64_t j = r + shift;
                    if (j >= 0 && j < w_out) dst[j] += src[r];
                }
            }
        }
    }
}

}  // namespace tsviz::ops
