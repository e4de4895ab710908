// Dense (fully connected) layers: ONNX Gemm (transA = 0, any transB, alpha, beta) and MatMul
// followed by a constant Add, lowered to y = W x + b with W (F, X). The input is (X, 1): the
// output of a Flatten or of global pooling. Each output unit is a filter of length 1.
#include <memory>
#include <string>
#include <vector>

#include "ops/gemm.hpp"
#include "onnx/lowering.hpp"
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
    Segment* segs = segment_scratch(n);
    for (int64_t i = 0; i < n; ++i) segs[i] = {src + i * src_step, 1, 1, 0, dst + i * dst_step};
    TapProduct p;
    p.a = &a;
    p.channels = channels;
    p.ldd = 1;
    p.bias = bias;
    p.accumulate = accumulate;
    tap_product(p, segs, n);
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

// --- ONNX lowering and registry entries ------------------------------------------------------

namespace {

using namespace ::tsviz::onnx;

void lower_gemm(Lowering& im) {
    Tensor a = im.tensor_input(0);
    const Const& b = im.float_input(1, "B");
    if (im.attr_int("transA", 0) != 0) im.fail_node("attribute 'transA': expected 0, got 1");
    const bool trans_b = im.attr_int("transB", 0) != 0;
    const float alpha = im.attr_float("alpha", 1.f), beta = im.attr_float("beta", 1.f);
    if (a.axes.size() != 2) im.fail_node("expects a 2-D input, got rank " + std::to_string(a.axes.size()));
    if (b.dims.size() != 2) im.fail_node("B has shape " + join(b.dims) + "; expected 2-D");
    const int64_t f = trans_b ? b.dims[0] : b.dims[1], x = trans_b ? b.dims[1] : b.dims[0];
    if (f < 1 || x < 1) im.fail_node("B has shape " + join(b.dims) + "; both dims must be >= 1");
    if (a.node == 0) im.decide_default();
    Node n = im.make(OpKind::Dense, a);
    n.channels = static_cast<int>(f);
    n.weight.resize(static_cast<size_t>(f * x));
    for (int64_t i = 0; i < f; ++i)
        for (int64_t j = 0; j < x; ++j)
            n.weight[i * x + j] = to_f32(static_cast<double>(alpha) * (trans_b ? b.v[i * x + j] : b.v[j * f + i]));
    n.bias.assign(static_cast<size_t>(f), 0.f);
    n.weight_source = im.cur_->input[1];
    n.weight_transposed = !trans_b;
    n.weight_scale = alpha;
    n.bias_scale = beta;
    if (im.has_input(2)) {
        const Const& c = im.float_input(2, "C");
        if (c.count() != f && c.count() != 1) im.fail_node("C has shape " + join(c.dims) + "; expected (" + std::to_string(f) + ",)");
        for (int64_t i = 0; i < f; ++i) n.bias[i] = to_f32(static_cast<double>(beta) * c.v[c.count() == 1 ? 0 : i]);
        n.bias_source = im.cur_->input[2];
    }
    Tensor out;
    out.node = im.add_node(std::move(n));
    out.axes = {Ax::N, Ax::C};
    im.set_tensor(out);
}

// The filter layer of a MatMul by a constant (X, F): its weight is the operand transposed, its
// bias 0, and the operand is recorded for writing trained weights back.
Node matmul_node(Lowering& im, OpKind kind, const Tensor& a, const Const& b) {
    const int64_t x = b.dims[0], f = b.dims[1];
    Node n = im.make(kind, a);
    n.channels = static_cast<int>(f);
    n.weight.resize(static_cast<size_t>(f * x));
    for (int64_t i = 0; i < f; ++i)
        for (int64_t j = 0; j < x; ++j) n.weight[i * x + j] = to_f32(b.v[j * f + i]);
    n.bias.assign(static_cast<size_t>(f), 0.f);
    n.weight_source = im.cur_->input[1];
    n.weight_transposed = true;
    return n;
}

void lower_matmul(Lowering& im) {
    Tensor a = im.tensor_input(0);
    const Const& b = im.float_input(1, "the second operand");
    if (b.dims.size() != 2) im.fail_node("second operand has shape " + join(b.dims) + "; expected 2-D");
    const int64_t x = b.dims[0], f = b.dims[1];
    if (f < 1 || x < 1) im.fail_node("second operand has shape " + join(b.dims) + "; both dims must be >= 1");
    const size_t rank = a.axes.size();
    if (rank == 2) {
        if (a.node == 0) im.decide_default();
        Node n = matmul_node(im, OpKind::Dense, a, b);
        Tensor out;
        out.node = im.add_node(std::move(n));
        out.axes = {Ax::N, Ax::C};
        im.set_tensor(out);
        return;
    }
    if (rank == 3) {
        // (N, T, C) @ (C, F): the same dense map at every time step, a 1 x 1 convolution.
        im.bind(a.axes[2], true);
        if (im.layout_ == Layout::Undecided) im.decide_default();
        if (im.kind(a.axes[0]) != Ax::N || im.kind(a.axes[2]) != Ax::C)
            im.fail_node("multiplies along an axis that is not the channel axis");
        if (im.channels_of(a) != x) im.fail_node("second operand has shape " + join(b.dims) + " for " + std::to_string(im.channels_of(a)) + " channels");
        Node n = matmul_node(im, OpKind::Conv, a, b);
        Tensor out = a;
        for (auto& ax : out.axes) ax = im.kind(ax);
        out.node = im.add_node(std::move(n));
        im.set_tensor(out);
        return;
    }
    im.fail_node("expects a 2-D or 3-D first operand, got rank " + std::to_string(rank));
}

}  // namespace

OpRules dense_rules() {
    OpRules r = TSVIZ_RULES(Dense, dense, infer_dense);
    r.prepare = prepare_dense;
    r.weight_backward = weight_backward_dense;
    r.onnx = {{"Gemm", lower_gemm}, {"MatMul", lower_matmul}};
    return r;
}

}  // namespace tsviz::ops
