// Elementwise activations and Softmax. ONNX Relu, LeakyRelu (alpha, default 0.01), Elu
// (alpha, default 1), Sigmoid, Tanh; Softmax over the channel axis or the time axis (opsets
// < 13 flatten from `axis`, which the importer accepts when that covers a single axis).
// SPEC.md: the gradient of ReLU at exactly 0 is 0 (eq. 8).
#include <algorithm>
#include <cmath>

#include "ops/fast_math.hpp"
#include "onnx/lowering.hpp"
#include "ops/op.hpp"

namespace tsviz::ops {

Resolved infer_same(const Node&, const std::vector<Shape>& in) {
    Resolved r;
    r.out = in.at(0);
    return r;
}

namespace {

template <class F>
void map(const ForwardArgs& a, F f) {
    const int64_t total = a.out.n * a.out.c * a.out.l;
    const float* x = a.in[0].data;
    float* y = a.out.data;
    for (int64_t i = 0; i < total; ++i) y[i] = f(x[i]);
}

}  // namespace

void forward_relu(const ForwardArgs& a) {
    // NaN passes through, as in ONNX Runtime (an input NaN must not become a plausible 0).
    map(a, [](float v) { return v > 0.f || v != v ? v : 0.f; });
}

void forward_leaky_relu(const ForwardArgs& a) {
    const float alpha = a.node.alpha;
    const int64_t total = a.out.n * a.out.c * a.out.l;
    const float* __restrict x = a.in[0].data;
    float* __restrict y = a.out.data;
    for (int64_t i = 0; i < total; ++i) {
        const float v = x[i], scaled = alpha * v;
        y[i] = v >= 0.f ? v : scaled;
    }
}

void forward_elu(const ForwardArgs& a) {
    const float alpha = a.node.alpha;
    map(a, [alpha](float v) { return v >= 0.f ? v : alpha * std::expm1(v); });
}

void forward_sigmoid(const ForwardArgs& a) {
    const int64_t total = a.out.n * a.out.c * a.out.l;
    const float* __restrict x = a.in[0].data;
    float* __restrict y = a.out.data;
    for (int64_t i = 0; i < total; ++i) y[i] = fast_sigmoid(x[i]);
}

void forward_tanh(const ForwardArgs& a) {
    const int64_t total = a.out.n * a.out.c * a.out.l;
    const float* __restrict x = a.in[0].data;
    float* __restrict y = a.out.data;
    for (int64_t i = 0; i < total; ++i) y[i] = fast_tanh(x[i]);
}

void forward_softmax(const ForwardArgs& a) {
    const ConstView& x = a.in[0];
    const View& y = a.out;
    // Over channels: stride l between members, one group per position; over time: contiguous.
    const bool channels = a.node.axis == 0;
    const int64_t members = channels ? x.c : x.l;
    const int64_t groups = channels ? x.l : x.c;
    const int64_t step = channels ? x.l : 1;
    const int64_t group_step = channels ? 1 : x.l;
    for (int64_t n = 0; n < x.n; ++n) {
        for (int64_t g = 0; g < groups; ++g) {
            const float* xs = x.sample(n) + g * group_step;
            float* ys = y.sample(n) + g * group_step;
            float m = xs[0];
            for (int64_t i = 1; i < members; ++i) m = std::max(m, xs[i * step]);
            float sum = 0.f;
            for (int64_t i = 0; i < members; ++i) {
                ys[i * step] = std::exp(xs[i * step] - m);
                sum += ys[i * step];
            }
            for (int64_t i = 0; i < members; ++i) ys[i * step] /= sum;
        }
    }
}

}  // namespace tsviz::ops

namespace tsviz::ops {

namespace {

// Elementwise backward: grad_in += grad_out * d(x, y), where x is the forward input and y
// the output of the row's sample.
template <class D>
void elementwise_backward(const BackwardArgs& a, D d) {
    const View& gx = a.grad_in[0];
    if (!gx.data) return;
    const int64_t size = gx.c * gx.l;
    for (int64_t r = 0; r < gx.n; ++r) {
        const float* x = a.in[0].sample(r / a.rep);
        const float* y = a.out.sample(r / a.rep);
        const float* g = a.grad_out.sample(r);
        float* dst = gx.sample(r);
        for (int64_t i = 0; i < size; ++i) dst[i] += g[i] * d(x[i], y[i]);
    }
}

// Elementwise trace: the same position; with active_only, only where the local derivative
// is not exactly 0 (a dead ReLU passes nothing).
template <class D>
void elementwise_trace(const TraceArgs& a, D d) {
    const int64_t size = a.out.c * a.out.l;
    const float* x = a.in[0].sample(a.sample);
    const float* y = a.out.sample(a.sample);
    for (int64_t i = 0; i < size; ++i)
        if (a.mask_out[i] && (!a.active_only || d(x[i], y[i]) != 0.f)) a.mask_in[0][i] = 1;
}

// SPEC.md eq. 8: the gradient of ReLU is 1 where x > 0 and 0 elsewhere, 0 included.
// Local derivatives d(x, y) from the forward input x and output y, as function objects so
// that the elementwise loops inline them.
constexpr auto d_relu = [](float x, float) { return x > 0.f ? 1.f : 0.f; };
constexpr auto d_sigmoid = [](float, float y) { return y * (1.f - y); };
constexpr auto d_tanh = [](float, float y) { return 1.f - y * y; };
// As PyTorch: slope 1 for x > 0, alpha for x <= 0.
auto d_leaky_relu(float alpha) {
    return [alpha](float x, float) { return x > 0.f ? 1.f : alpha; };
}
// As PyTorch: 1 for x > 0, else y + alpha (= alpha * exp(x)).
auto d_elu(float alpha) {
    return [alpha](float x, float y) { return x > 0.f ? 1.f : y + alpha; };
}

}  // namespace

// The gradient of ReLU (slope 0 below) and LeakyRelu (slope alpha below): as
// elementwise_backward with d_relu or d_leaky_relu, written as a select so that it vectorises.
static void gated_backward(const BackwardArgs& a, float alpha) {
    const View& gx = a.grad_in[0];
    if (!gx.data) return;
    const int64_t size = gx.c * gx.l;
    for (int64_t r = 0; r < gx.n; ++r) {
        const float* __restrict x = a.in[0].sample(r / a.rep);
        const float* __restrict g = a.grad_out.sample(r);
        float* __restrict dst = gx.sample(r);
        for (int64_t i = 0; i < size; ++i) {
            const float v = g[i], below = alpha * v;
            dst[i] += x[i] > 0.f ? v : below;
        }
    }
}

void backward_relu(const BackwardArgs& a) { gated_backward(a, 0.f); }
void trace_relu(const TraceArgs& a) { elementwise_trace(a, d_relu); }

void backward_leaky_relu(const BackwardArgs& a) { gated_backward(a, a.node.alpha); }
void trace_leaky_relu(const TraceArgs& a) { elementwise_trace(a, d_leaky_relu(a.node.alpha)); }
void backward_elu(const BackwardArgs& a) { elementwise_backward(a, d_elu(a.node.alpha)); }
void trace_elu(const TraceArgs& a) { elementwise_trace(a, d_elu(a.node.alpha)); }

void backward_sigmoid(const BackwardArgs& a) { elementwise_backward(a, d_sigmoid); }
void trace_sigmoid(const TraceArgs& a) { elementwise_trace(a, d_sigmoid); }
void backward_tanh(const BackwardArgs& a) { elementwise_backward(a, d_tanh); }
void trace_tanh(const TraceArgs& a) { elementwise_trace(a, d_tanh); }

void backward_softmax(const BackwardArgs& a) {
    const View& gx = a.grad_in[0];
    if (!gx.data) return;
    const bool channels = a.node.axis == 0;
    const int64_t members = channels ? gx.c : gx.l;
    const int64_t groups = channels ? gx.l : gx.c;
    const int64_t step = channels ? gx.l : 1;
    const int64_t group_step = channels ? 1 : gx.l;
    for (int64_t r = 0; r < gx.n; ++r)
        for (int64_t grp = 0; grp < groups; ++grp) {
            const float* y = a.out.sample(r / a.rep) + grp * group_step;
            const float* g = a.grad_out.sample(r) + grp * group_step;
            float* dst = gx.sample(r) + grp * group_step;
            float dot = 0.f;
            for (int64_t i = 0; i < members; ++i) dot += g[i * step] * y[i * step];
            for (int64_t i = 0; i < members; ++i) dst[i * step] += y[i * step] * (g[i * step] - dot);
        }
}

// Each output of a softmax depends on every member of its group.
void trace_softmax(const TraceArgs& a) {
    const int64_t c_n = a.out.c, len = a.out.l;
    for (int64_t c = 0; c < c_n; ++c)
        for (int64_t i = 0; i < len; ++i) {
            if (!a.mask_out[c * len + i]) continue;
            if (a.node.axis == 0)
                for (int64_t k = 0; k < c_n; ++k) a.mask_in[0][k * len + i] = 1;
            else
                std::fill(a.mask_in[0] + c * len, a.mask_in[0] + (c + 1) * len, uint8_t{1});
        }
}


namespace {

// Forward mode of an elementwise op: the tangent times the local derivative, on the band
// (an elementwise op's band is its input's, so starts and widths agree).
template <class D>
void elementwise_tangent(const TangentArgs& a, D d) {
    const int64_t c_n = a.out.c, len = a.out.l, w = a.w_out;
    for (int64_t t = 0; t < a.count; ++t) {
        const int64_t s = a.start_out[t];
        for (int64_t c = 0; c < c_n; ++c) {
            const float* __restrict src = a.t_in[0] + (t * c_n + c) * w;
            float* __restrict dst = a.t_out + (t * c_n + c) * w;
            const float* __restrict xc = a.in[0].data + c * len + s;
            const float* __restrict yc = a.out.data + c * len + s;
            for (int64_t j = 0; j < w; ++j) dst[j] = src[j] * d(xc[j], yc[j]);
        }
    }
}

}  // namespace

Band band_relu(const BandArgs& a) { return band_same(a); }
Band band_leaky_relu(const BandArgs& a) { return band_same(a); }
Band band_elu(const BandArgs& a) { return band_same(a); }
Band band_sigmoid(const BandArgs& a) { return band_same(a); }
Band band_tanh(const BandArgs& a) { return band_same(a); }
// Over channels a softmax keeps positions apart; over time it mixes them all.
Band band_softmax(const BandArgs& a) { return a.node.axis == 0 ? band_same(a) : band_full(a); }

// The tangent passes where x > 0 (SPEC.md eq. 8). Both values are loaded before the select so
// that the loop vectorises instead of branching on the data.
void tangent_relu(const TangentArgs& a) {
    const int64_t c_n = a.out.c, len = a.out.l, w = a.w_out;
    for (int64_t t = 0; t < a.count; ++t)
        for (int64_t c = 0; c < c_n; ++c) {
            const float* __restrict src = a.t_in[0] + (t * c_n + c) * w;
            float* __restrict dst = a.t_out + (t * c_n + c) * w;
            const float* __restrict xc = a.in[0].data + c * len + a.start_out[t];
            for (int64_t j = 0; j < w; ++j) {
                const float v = src[j];
                dst[j] = xc[j] > 0.f ? v : 0.f;
            }
        }
}
void tangent_leaky_relu(const TangentArgs& a) { elementwise_tangent(a, d_leaky_relu(a.node.alpha)); }
void tangent_elu(const TangentArgs& a) { elementwise_tangent(a, d_elu(a.node.alpha)); }
void tangent_sigmoid(const TangentArgs& a) { elementwise_tangent(a, d_sigmoid); }
void tangent_tanh(const TangentArgs& a) { elementwise_tangent(a, d_tanh); }

// y * (t - sum(y * t)) over each softmax group.
void tangent_softmax(const TangentArgs& a) {
    const int64_t c_n = a.out.c, len = a.out.l, w_in = a.w_in[0], w_out = a.w_out;
    const float* y = a.out.data;
    for (int64_t t = 0; t < a.count; ++t) {
        const float* src = a.t_in[0] + t * c_n * w_in;
        float* dst = a.t_out + t * c_n * w_out;
        if (a.node.axis == 0) {
            const int64_t s = a.start_out[t];
            for (int64_t j = 0; j < w_out; ++j) {
                float dot = 0.f;
                for (int64_t c = 0; c < c_n; ++c) dot += y[c * len + s + j] * src[c * w_in + j];
                for (int64_t c = 0; c < c_n; ++c) dst[c * w_out + j] = y[c * len + s + j] * (src[c * w_in + j] - dot);
            }
        } else {
            // The output band is every position (start 0, width len).
            const int64_t s_in = a.start_in[0][t];
            for (int64_t c = 0; c < c_n; ++c) {
                const float* yc = y + c * len;
                float dot = 0.f;
                for (int64_t r = 0; r < w_in; ++r) dot += yc[s_in + r] * src[c * w_in + r];
                for (int64_t i = 0; i < len; ++i) {
                    const int64_t r = i - s_in;
                    const float ti = r >= 0 && r < w_in ? src[c * w_in + r] : 0.f;
                    dst[c * w_out + i] = yc[i] * (ti - dot);
                }
            }
        }
    }
}

// --- ONNX lowering and registry entries ------------------------------------------------------

namespace {

using namespace ::tsviz::onnx;

// An elementwise op on one tensor; `attrs` reads the node's attributes into the IR node.
template <class F>
void lower_unary(Lowering& im, OpKind k, F attrs) {
    Tensor x = im.tensor_input(0);
    Node n = im.make(k, x);
    attrs(n);
    x.node = im.add_node(std::move(n));
    im.set_tensor(x);
}

void lower_no_attributes(Lowering& im) {
    for (const OpRules& r : all_rules())
        for (const OnnxForm& f : r.onnx)
            if (r.activation && f.op == im.cur_->op_type) return lower_unary(im, r.kind, [](Node&) {});
}

void lower_softmax(Lowering& im) {
    Tensor x = im.tensor_input(0);
    const int64_t rank = static_cast<int64_t>(x.axes.size());
    const int64_t axis = im.norm_axis(im.attr_int("axis", im.opset_ < 13 ? 1 : -1), rank);
    // Before opset 13 Softmax normalises over all axes from `axis` on, flattened.
    const int64_t last = im.opset_ < 13 ? rank - 1 : axis;
    int which = -1;
    for (int64_t i = axis; i <= last; ++i) {
        const Ax k = im.kind(x.axes[i]);
        if (k == Ax::One) continue;
        if (k == Ax::N) im.fail_node("normalises over the batch axis");
        if (which >= 0) im.fail_node("normalises over channels and time together; not supported");
        which = static_cast<int>(i);
    }
    if (which < 0) im.fail_node("normalises over an axis of size 1");
    if (x.axes[which] == Ax::In1 || x.axes[which] == Ax::In2) im.decide_default();
    Node n = im.make(OpKind::Softmax, x);
    n.axis = im.kind(x.axes[which]) == Ax::C ? 0 : 1;
    x.node = im.add_node(std::move(n));
    im.set_tensor(x);
}

}  // namespace

namespace {

// An elementwise activation, lowered from the ONNX op of its own name; it keeps channels.
OpRules activation(OpRules r, void (*lower)(Lowering&) = lower_no_attributes) {
    r.onnx = {{r.name, lower, true}};
    r.activation = true;
    return r;
}

}  // namespace

OpRules relu_rules() { return activation(TSVIZ_RULES(Relu, relu, infer_same)); }
OpRules leaky_relu_rules() {
    return activation(TSVIZ_RULES(LeakyRelu, leaky_relu, infer_same), [](Lowering& im) {
        lower_unary(im, OpKind::LeakyRelu, [&](Node& n) { n.alpha = im.attr_float("alpha", 0.01f); });
    });
}
OpRules elu_rules() {
    return activation(TSVIZ_RULES(Elu, elu, infer_same), [](Lowering& im) {
        lower_unary(im, OpKind::Elu, [&](Node& n) { n.alpha = im.attr_float("alpha", 1.0f); });
    });
}
OpRules sigmoid_rules() { return activation(TSVIZ_RULES(Sigmoid, sigmoid, infer_same)); }
OpRules tanh_rules() { return activation(TSVIZ_RULES(Tanh, tanh, infer_same)); }

OpRules softmax_rules() {
    OpRules r = TSVIZ_RULES(Softmax, softmax, infer_same);
    r.onnx = {{"Softmax", lower_softmax}};
    return r;
}

}  // namespace tsviz::ops
