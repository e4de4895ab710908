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

}  // namespace tsviz::ops
