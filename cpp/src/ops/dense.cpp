// Dense (fully connected) layers: ONNX Gemm (transA = 0, any transB, alpha, beta) and MatMul
// followed by a constant Add, lowered to y = W x + b with W (F, X). The input is (X, 1): the
// output of a Flatten or of global pooling. Each output unit is a filter of length 1.
#include <memory>
#include <string>
#include <vector>

#include "ops/gemm.hpp"
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

void prepare_dense(Node& node) {
    const int64_t units = node.channels, features = static_cast<int64_t>(node.weight.size()) / units;
    auto packed = std::make_shared<PackedWeights>();
    packed->forward.push_back(pack_matrix(units, features, node.weight.data(), features, 1));
    packed->transposed.push_back(pack_matrix(features, units, node.weight.data(), 1, features));
    node.packed = std::move(packed);
}

namespace {

// A dense layer is a convolution of kernel 1 over an input of length 1 whose channels are the
// features: one column per sample (or cotangent row).
void dense_product(const PackedMatrix& a, const PackedMatrix& a_t, int64_t channels, const float* bias,
                   bool accumulate, const float* src, int64_t src_step, float* dst, int64_t dst_step, int64_t n) {
    if (prefers_small_product(a.rows, channels))
        return small_product(n, a.rows, channels, src, src_step, a.plain.data(), a_t.plain.data(), bias, accumulate,
                             dst, dst_step);
    std::vector<Segment> segs(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) segs[i] = {src + i * src_step, 1, 1, 0, dst + i * dst_step};
    TapProduct p;
    p.a = &a;
    p.channels = channels;
    p.ldd = 1;
    p.bias = bias;
    p.accumulate = accumulate;
    tap_product(p, segs.data(), n);
}

}  // namespace

void forward_dense(const ForwardArgs& a) {
    const ConstView& x = a.in[0];
    const PackedWeights& w = *a.node.packed;
    dense_product(w.forward[0], w.transposed[0], x.c * x.l, a.node.bias.data(), false, x.data, x.c * x.l, a.out.data,
                  a.out.c, x.n);
}

}  // namespace tsviz::ops

namespace tsviz::ops {

void backward_dense(const BackwardArgs& a) {
    const View& gx = a.grad_in[0];
    if (!gx.data) return;
    const int64_t units = a.grad_out.c;
    const PackedWeights& w = *a.node.packed;
    dense_product(w.transposed[0], w.forward[0], units, nullptr, true, a.grad_out.data, units, gx.data, gx.c * gx.l,
                  a.grad_out.n);
}

// Weight gradient: dW += dz^T x over the samples, a matrix product (units x samples) *
// (samples x features) whose B is the inputs read as one row: depth n, column j reads x[n * X + j]
// (the forward tap rule with kernel = samples, dilation = X); db += sum over samples of dz.
void weight_backward_dense(const WeightGradArgs& a) {
    const ConstView& x = a.in;
    const ConstView& gy = a.grad_out;
    const int64_t units = gy.c, features = x.c * x.l;
    if (a.grad_bias)
        for (int64_t n = 0; n < gy.n; ++n)
            for (int64_t f = 0; f < units; ++f) a.grad_bias[f] += gy.data[n * units + f];
    if (!a.grad_weight) return;
    const PackedMatrix dz = pack_matrix(units, gy.n, gy.data, 1, units);
    Segment seg{x.data, gy.n * features, features, 0, a.grad_weight};
    TapProduct p;
    p.a = &dz;
    p.channels = 1;
    p.kernel = gy.n;
    p.dilation = features;
    p.ldd = features;
    p.accumulate = true;
    tap_product(p, &seg, 1);
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


// Forward mode: every tangent is one column; a dense layer mixes all positions.
Band band_dense(const BandArgs& a) { return band_full(a); }

void tangent_dense(const TangentArgs& a) {
    const int64_t features = a.in[0].c * a.w_in[0];
    const PackedWeights& w = *a.node.packed;
    dense_product(w.forward[0], w.transposed[0], features, nullptr, false, a.t_in[0], features, a.t_out, a.out.c,
                  a.count);
}

}  // namespace tsviz::ops
