// Dense (fully connected) layers: ONNX Gemm (transA = 0, any transB, alpha, beta) and MatMul
// followed by a constant Add, lowered to y = W x + b with W (F, X). The input is (X, 1): the
// output of a Flatten or of global pooling. Each output unit is a filter of length 1.
#include <string>

#include "ops/op.hpp"
#include "tsviz/error.hpp"

namespace tsviz::ops {

Resolved infer_dense(const Node& node, const std::vector<Shape>& in) {
    const Shape& x = in.at(0);
    const int64_t features = static_cast<int64_t>(node.weight.size()) / node.channels;
    if (x.size() != features)
        throw ShapeError("node '" + node.onnx_node + "' (" + node.onnx_op + "): expects " +
                         std::to_string(features) + " input features, got " +
                         (x.l == 1 ? std::to_string(x.c)
                                   : std::to_string(x.c) + " x " + std::to_string(x.l) + " = " +
                                         std::to_string(x.size())));
    Resolved r;
    r.out = {node.channels, 1};
    return r;
}

void forward_dense(const ForwardArgs& a) {
    const Node& node = a.node;
    const ConstView& x = a.in[0];
    const int64_t features = x.c * x.l, units = a.out.c;
    for (int64_t n = 0; n < x.n; ++n) {
        const float* xs = x.sample(n);
        float* ys = a.out.sample(n);
        for (int64_t f = 0; f < units; ++f) {
            const float* wf = node.weight.data() + f * features;
            float acc = 0.f;
            for (int64_t i = 0; i < features; ++i) acc += wf[i] * xs[i];
            ys[f] = acc + node.bias[f];
        }
    }
}

}  // namespace tsviz::ops

namespace tsviz::ops {

void backward_dense(const BackwardArgs& a) {
    const View& gx = a.grad_in[0];
    if (!gx.data) return;
    const int64_t features = gx.c * gx.l, units = a.grad_out.c;
    for (int64_t r = 0; r < a.grad_out.n; ++r) {
        const float* gy = a.grad_out.sample(r);
        float* gxs = gx.sample(r);
        for (int64_t f = 0; f < units; ++f) {
            const float g = gy[f];
            if (g == 0.f) continue;
            const float* wf = a.node.weight.data() + f * features;
            for (int64_t i = 0; i < features; ++i) gxs[i] += g * wf[i];
        }
    }
}

// Every input of a marked unit; with active_only, only those with a non-zero weight.
void trace_dense(const TraceArgs& a) {
    const int64_t features = a.in[0].c * a.in[0].l, units = a.out.c;
    for (int64_t f = 0; f < units; ++f) {
        if (!a.mask_out[f]) continue;
        const float* wf = a.node.weight.data() + f * features;
        for (int64_t i = 0; i < features; ++i)
            if (!a.active_only || wf[i] != 0.f) a.mask_in[0][i] = 1;
    }
}

}  // namespace tsviz::ops
