// Layout ops: Concat along channels, and Flatten of (C, L) into (C * L, 1), channel-major as
// ONNX Flatten/Reshape writes it, or position-major after a channels-last Transpose (Keras).
#include <string>

#include "ops/op.hpp"
#include "tsviz/error.hpp"

namespace tsviz::ops {

namespace {

// Index of input element (c, l) in the flattened output.
inline int64_t flat_index(const Node& node, int64_t c, int64_t l, int64_t channels, int64_t length) {
    return node.position_major ? l * channels + c : c * length + l;
}

}  // namespace

Resolved infer_concat(const Node& node, const std::vector<Shape>& in) {
    Resolved r;
    r.out = {0, in.at(0).l};
    for (const Shape& s : in) {
        if (s.l != r.out.l)
            throw ShapeError("node '" + node.onnx_node + "' (" + node.onnx_op +
                             "): concatenates tensors of lengths " +
                             std::to_string(in.at(0).l) + " and " + std::to_string(s.l));
        r.out.c += s.c;
    }
    return r;
}

void forward_concat(const ForwardArgs& a) {
    for (int64_t n = 0; n < a.out.n; ++n) {
        float* dst = a.out.sample(n);
        for (const ConstView& x : a.in) {
            const float* src = x.sample(n);
            for (int64_t i = 0; i < x.c * x.l; ++i) dst[i] = src[i];
            dst += x.c * x.l;
        }
    }
}

Resolved infer_flatten(const Node&, const std::vector<Shape>& in) {
    Resolved r;
    r.out = {in.at(0).size(), 1};
    return r;
}

void forward_flatten(const ForwardArgs& a) {
    const ConstView& x = a.in[0];
    for (int64_t n = 0; n < x.n; ++n) {
        const float* src = x.sample(n);
        float* dst = a.out.sample(n);
        for (int64_t c = 0; c < x.c; ++c)
            for (int64_t l = 0; l < x.l; ++l) dst[flat_index(a.node, c, l, x.c, x.l)] = src[c * x.l + l];
    }
}


void backward_concat(const BackwardArgs& a) {
    for (int64_t r = 0; r < a.grad_out.n; ++r) {
        const float* src = a.grad_out.sample(r);
        for (const View& gx : a.grad_in) {
            const int64_t size = gx.c * gx.l;
            if (gx.data) {
                float* dst = gx.sample(r);
                for (int64_t i = 0; i < size; ++i) dst[i] += src[i];
            }
            src += size;
        }
    }
}

void trace_concat(const TraceArgs& a) {
    const uint8_t* src = a.mask_out;
    for (size_t k = 0; k < a.mask_in.size(); ++k) {
        const int64_t size = a.in[k].c * a.in[k].l;
        for (int64_t i = 0; i < size; ++i)
            if (src[i]) a.mask_in[k][i] = 1;
        src += size;
    }
}


void backward_flatten(const BackwardArgs& a) {
    const View& gx = a.grad_in[0];
    if (!gx.data) return;
    for (int64_t r = 0; r < gx.n; ++r) {
        const float* g = a.grad_out.sample(r);
        float* dst = gx.sample(r);
        for (int64_t c = 0; c < gx.c; ++c)
            for (int64_t l = 0; l < gx.l; ++l) dst[c * gx.l + l] += g[flat_index(a.node, c, l, gx.c, gx.l)];
    }
}

void trace_flatten(const TraceArgs& a) {
    const int64_t channels = a.in[0].c, length = a.in[0].l;
    for (int64_t c = 0; c < channels; ++c)
        for (int64_t l = 0; l < length; ++l)
            if (a.mask_out[flat_index(a.node, c, l, channels, length)]) a.mask_in[0][c * length + l] = 1;
}


Band band_concat(const BandArgs& a) { return band_hull(a); }
Band band_flatten(const BandArgs& a) { return band_full(a); }

void tangent_concat(const TangentArgs& a) {
    const int64_t c_out = a.out.c, w_out = a.w_out;
    int64_t c0 = 0;
    for (size_t k = 0; k < a.in.size(); ++k) {
        const int64_t c_n = a.in[k].c, w_in = a.w_in[k];
        if (a.t_in[k])
            for (int64_t t = 0; t < a.count; ++t) {
                const int64_t shift = a.start_in[k][t] - a.start_out[t];
                for (int64_t c = 0; c < c_n; ++c) {
                    const float* src = a.t_in[k] + (t * c_n + c) * w_in;
                    float* dst = a.t_out + (t * c_out + c0 + c) * w_out;
                    for (int64_t r = 0; r < w_in; ++r) {
                        const int64_t j = r + shift;
                        if (j >= 0 && j < w_out) dst[j] = src[r];
                    }
                }
            }
        c0 += c_n;
    }
}

void tangent_flatten(const TangentArgs& a) {
    const int64_t channels = a.in[0].c, length = a.in[0].l, w_in = a.w_in[0], size = a.out.c;
    for (int64_t t = 0; t < a.count; ++t) {
        const int64_t s = a.start_in[0][t];
        for (int64_t c = 0; c < channels; ++c)
            for (int64_t r = 0; r < w_in && s + r < length; ++r)
                a.t_out[t * size + flat_index(a.node, c, s + r, channels, length)] = a.t_in[0][(t * channels + c) * w_in + r];
    }
}

}  // namespace tsviz::ops
