// Per-channel affine maps and tensor combinations. Affine is what a BatchNormalization
// (inference) or a Mul/Add/Sub/Div by a per-channel or scalar constant becomes; after a
// convolution or dense layer it is folded into the weights at import. Add sums two tensors of
// one shape (ONNX Add of two activations: residual connections). Concat joins along channels.
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
        if (!a.node.position_major) {
            for (int64_t i = 0; i < x.c * x.l; ++i) dst[i] = src[i];
        } else {
            for (int64_t c = 0; c < x.c; ++c)
                for (int64_t l = 0; l < x.l; ++l) dst[l * x.c + c] = src[c * x.l + l];
        }
    }
}

}  // namespace tsviz::ops
