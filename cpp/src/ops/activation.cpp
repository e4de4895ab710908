// Elementwise activations and Softmax. ONNX Relu, LeakyRelu (alpha, default 0.01), Elu
// (alpha, default 1), Sigmoid, Tanh; Softmax over the channel axis or the time axis (opsets
// < 13 flatten from `axis`, which the importer accepts when that covers a single axis).
// SPEC.md: the gradient of ReLU at exactly 0 is 0 (eq. 8).
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "ops/fast_math.hpp"
#include "ops/simd.hpp"
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
TSVIZ_INLINE void map(const ForwardArgs& a, F f) {
    const int64_t total = a.out.n * a.out.c * a.out.l;
    const float* x = a.in[0].data;
    float* y = a.out.data;
    for (int64_t i = 0; i < total; ++i) y[i] = f(x[i]);
}

}  // namespace

TSVIZ_SIMD void forward_relu(const ForwardArgs& a) {
    map(a, [](float v) { return relu(v); });  // NaN passes through, as in ONNX Runtime
}

TSVIZ_SIMD void forward_leaky_relu(const ForwardArgs& a) {
    const float alpha = a.node.alpha;
    const int64_t total = a.out.n * a.out.c * a.out.l;
    const float* __restrict x = a.in[0].data;
    float* __restrict y = a.out.data;
    for (int64_t i = 0; i < total; ++i) {
        const float v = x[i], scaled = alpha * v;
        y[i] = v >= 0.f ? v : scaled;
    }
}

TSVIZ_SIMD void forward_elu(const ForwardArgs& a) {
    const float alpha = a.node.alpha;
    // The negative side only: e^x - 1 of a large x would overflow, for nothing.
    map(a, [alpha](float v) { return select(v >= 0.f, v, alpha * fast_expm1_neg(select(v > 0.f, 0.f, v))); });
}

TSVIZ_SIMD void forward_sigmoid(const ForwardArgs& a) {
    const int64_t total = a.out.n * a.out.c * a.out.l;
    const float* __restrict x = a.in[0].data;
    float* __restrict y = a.out.data;
    for (int64_t i = 0; i < total; ++i) y[i] = fast_sigmoid(x[i]);
}

TSVIZ_SIMD void forward_tanh(const ForwardArgs& a) {
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
TSVIZ_INLINE void elementwise_backward(const BackwardArgs& a, D d) {
    const View& gx = a.grad_in[0];
    if (!gx.data) return;
    const int64_t size = gx.c * gx.l;
    for (int64_t r = 0; r < gx.n; ++r) {
        const float* x = a.in[0].sample(r / a.rep);
        const float* y = a.out.sample(r / a.rep);
        const float* g = a.grad_out.sample(r);
        float* dst = gx.sample(r);
        if (a.overwrite)
            for (int64_t i = 0; i < size; ++i) dst[i] = g[i] * d(x[i], y[i]);
        else
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
// The gate reads the op's input x, or for ReLU its output y (by_output): y > 0 exactly where
// x > 0, NaN and -0 included, and a pass that runs the ReLU inside the node before it
// (forward_samples' fusion plan) writes y only.
TSVIZ_SIMD static void gated_backward(const BackwardArgs& a, float alpha, bool by_output) {
    const View& gx = a.grad_in[0];
    if (!gx.data) return;
    const int64_t size = gx.c * gx.l;
    for (int64_t r = 0; r < gx.n; ++r) {
        const float* __restrict x = by_output ? a.out.sample(r / a.rep) : a.in[0].sample(r / a.rep);
        const float* __restrict g = a.grad_out.sample(r);
        float* __restrict dst = gx.sample(r);
        if (a.overwrite) {
            for (int64_t i = 0; i < size; ++i) {
                const float v = g[i], below = alpha * v;
                dst[i] = x[i] > 0.f ? v : below;
            }
            continue;
        }
        for (int64_t i = 0; i < size; ++i) {
            const float v = g[i], below = alpha * v;
            dst[i] += x[i] > 0.f ? v : below;
        }
    }
}

void backward_relu(const BackwardArgs& a) { gated_backward(a, 0.f, true); }
void trace_relu(const TraceArgs& a) { elementwise_trace(a, d_relu); }

void backward_leaky_relu(const BackwardArgs& a) { gated_backward(a, a.node.alpha, false); }
void trace_leaky_relu(const TraceArgs& a) { elementwise_trace(a, d_leaky_relu(a.node.alpha)); }
void backward_elu(const BackwardArgs& a) { elementwise_backward(a, d_elu(a.node.alpha)); }
void trace_elu(const TraceArgs& a) { elementwise_trace(a, d_elu(a.node.alpha)); }

TSVIZ_SIMD void backward_sigmoid(const BackwardArgs& a) { elementwise_backward(a, d_sigmoid); }
void trace_sigmoid(const TraceArgs& a) { elementwise_trace(a, d_sigmoid); }
TSVIZ_SIMD void backward_tanh(const BackwardArgs& a) { elementwise_backward(a, d_tanh); }
void trace_tanh(const TraceArgs& a) { elementwise_trace(a, d_tanh); }

void backward_softmax(const BackwardArgs& a) {
    const View& gx = a.grad_in[0];
    if (!gx.data) return;
    zero_if_overwrite(a);
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
TSVIZ_INLINE void elementwise_tangent(const TangentArgs& a, D d) {
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
TSVIZ_SIMD void tangent_leaky_relu(const TangentArgs& a) { elementwise_tangent(a, d_leaky_relu(a.node.alpha)); }
TSVIZ_SIMD void tangent_elu(const TangentArgs& a) { elementwise_tangent(a, d_elu(a.node.alpha)); }
TSVIZ_SIMD void tangent_sigmoid(const TangentArgs& a) { elementwise_tangent(a, d_sigmoid); }
TSVIZ_SIMD void tangent_tanh(const TangentArgs& a) { elementwise_tangent(a, d_tanh); }

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

// --- Smooth and piecewise-linear activations of recent nets ----------------------------------
// ONNX Gelu (opset 20; `approximate` "none" or "tanh"), Erf (opset 9), Softplus, Selu (alpha,
// gamma), HardSigmoid (alpha, beta), HardSwish (opset 14), Mish (opset 18), Softsign, Clip (bounds as
// attributes before opset 11, as constant inputs from 11), PRelu (a constant slope per channel
// or one for all). Silu has no ONNX op: x * Sigmoid(x) is fused into it, as are the
// decompositions of Gelu, HardSwish and Mish that exporters write (onnx/graph_passes.cpp), so
// that after a filter layer each is that layer's a^l (SPEC.md).
// Each op is its value f(x) and its exact derivative d(x, y), the latter shared by backward,
// tangent and trace. Piecewise-linear ops follow PyTorch at the kinks: Clip and HardSigmoid
// pass the gradient strictly inside the bounds, HardSwish has slope x / 3 + 1/2 on [-3, 3].

namespace {

constexpr float kSqrtHalf = 0.70710678118654752f;       // 1 / sqrt(2)
constexpr float kInvSqrt2Pi = 0.39894228040143268f;     // 1 / sqrt(2 pi)
constexpr float kTwoInvSqrtPi = 1.12837916709551257f;   // 2 / sqrt(pi)
constexpr float kSqrt2OverPi = 0.79788456080286536f;    // sqrt(2 / pi)
constexpr float kGeluCubic = 0.044715f;

float clamp01(float v) { return v < 0.f ? 0.f : v > 1.f ? 1.f : v; }

// Gelu's two forms as separate functions, chosen once per call (forward_gelu and the others below), so that each
// loop is free of branches and vectorises.
struct GeluErf {
    float operator()(float x) const { return 0.5f * x * (1.f + fast_erf(x * kSqrtHalf)); }
    float operator()(float x, float) const {
        return 0.5f * (1.f + fast_erf(x * kSqrtHalf)) + x * fast_exp0(-0.5f * x * x) * kInvSqrt2Pi;
    }
};

struct GeluTanh {
    float operator()(float x) const {
        return 0.5f * x * (1.f + fast_tanh(kSqrt2OverPi * (x + kGeluCubic * x * x * x)));
    }
    float operator()(float x, float) const {
        const float t = fast_tanh(kSqrt2OverPi * (x + kGeluCubic * x * x * x));
        return 0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * kSqrt2OverPi * (1.f + 3.f * kGeluCubic * x * x);
    }
};

struct Erf {
    explicit Erf(const Node&) {}
    float operator()(float x) const { return fast_erf(x); }
    float operator()(float x, float) const { return kTwoInvSqrtPi * fast_exp0(-x * x); }
};

struct Silu {
    explicit Silu(const Node&) {}
    float operator()(float x) const { return x * fast_sigmoid(x); }
    float operator()(float x, float) const {
        const float s = fast_sigmoid(x);
        return s * (1.f + x * (1.f - s));
    }
};

struct Softplus {
    explicit Softplus(const Node&) {}
    float operator()(float x) const { return fast_softplus(x); }
    float operator()(float x, float) const { return fast_sigmoid(x); }
};

struct Mish {
    explicit Mish(const Node&) {}
    float operator()(float x) const { return x * fast_mish_parts(x).tanh_sp; }
    // 1 - t^2 as (1 - t)(1 + t), the first factor not from a difference.
    float operator()(float x, float) const {
        const MishParts m = fast_mish_parts(x);
        return m.tanh_sp + x * (m.one_minus * (1.f + m.tanh_sp)) * m.sigmoid;
    }
};

struct Selu {
    float alpha, gamma;
    explicit Selu(const Node& n) : alpha(n.alpha), gamma(n.beta) {}
    float operator()(float x) const {
        return select(x > 0.f, gamma * x, gamma * alpha * fast_expm1_neg(select(x > 0.f, 0.f, x)));
    }
    float operator()(float x, float y) const { return x > 0.f ? gamma : y + gamma * alpha; }
};

struct HardSigmoid {
    float alpha, beta;
    explicit HardSigmoid(const Node& n) : alpha(n.alpha), beta(n.beta) {}
    float operator()(float x) const { return clamp01(alpha * x + beta); }
    float operator()(float x, float) const {
        const float v = alpha * x + beta;
        return v > 0.f && v < 1.f ? alpha : 0.f;
    }
};

struct HardSwish {
    explicit HardSwish(const Node&) {}
    float operator()(float x) const { return x * clamp01(x * (1.f / 6.f) + 0.5f); }
    float operator()(float x, float) const { return x < -3.f ? 0.f : x <= 3.f ? x * (1.f / 3.f) + 0.5f : 1.f; }
};

struct Softsign {
    explicit Softsign(const Node&) {}
    float operator()(float x) const { return x / (1.f + std::fabs(x)); }
    float operator()(float x, float) const {
        const float d = 1.f + std::fabs(x);
        return 1.f / (d * d);
    }
};

struct Clip {
    float lo, hi;
    explicit Clip(const Node& n) : lo(n.alpha), hi(n.beta) {}
    // NaN passes through, as in ONNX Runtime.
    float operator()(float x) const { return x < lo ? lo : x > hi ? hi : x; }
    float operator()(float x, float) const { return x > lo && x < hi ? 1.f : 0.f; }
};

}  // namespace

// Every rule of an elementwise activation F (value and derivative), side by side.
#define TSVIZ_ELEMENTWISE_RULES(op, F)                                                                 \
    TSVIZ_SIMD void forward_##op(const ForwardArgs& a) { map(a, F(a.node)); }                           \
    TSVIZ_SIMD void backward_##op(const BackwardArgs& a) { elementwise_backward(a, F(a.node)); }        \
    void trace_##op(const TraceArgs& a) { elementwise_trace(a, F(a.node)); }                            \
    Band band_##op(const BandArgs& a) { return band_same(a); }                                         \
    TSVIZ_SIMD void tangent_##op(const TangentArgs& a) { elementwise_tangent(a, F(a.node)); }
TSVIZ_ELEMENTWISE_RULES(erf, Erf)
TSVIZ_ELEMENTWISE_RULES(silu, Silu)
TSVIZ_ELEMENTWISE_RULES(softplus, Softplus)
TSVIZ_ELEMENTWISE_RULES(mish, Mish)
TSVIZ_ELEMENTWISE_RULES(selu, Selu)
TSVIZ_ELEMENTWISE_RULES(hard_sigmoid, HardSigmoid)
TSVIZ_ELEMENTWISE_RULES(hard_swish, HardSwish)
TSVIZ_ELEMENTWISE_RULES(clip, Clip)
TSVIZ_ELEMENTWISE_RULES(softsign, Softsign)
#undef TSVIZ_ELEMENTWISE_RULES

TSVIZ_SIMD void forward_gelu(const ForwardArgs& a) {
    if (a.node.approximate)
        map(a, GeluTanh{});
    else
        map(a, GeluErf{});
}
TSVIZ_SIMD void backward_gelu(const BackwardArgs& a) {
    if (a.node.approximate)
        elementwise_backward(a, GeluTanh{});
    else
        elementwise_backward(a, GeluErf{});
}
void trace_gelu(const TraceArgs& a) {
    if (a.node.approximate)
        elementwise_trace(a, GeluTanh{});
    else
        elementwise_trace(a, GeluErf{});
}
Band band_gelu(const BandArgs& a) { return band_same(a); }
TSVIZ_SIMD void tangent_gelu(const TangentArgs& a) {
    if (a.node.approximate)
        elementwise_tangent(a, GeluTanh{});
    else
        elementwise_tangent(a, GeluErf{});
}

// PRelu: slope[c] below 0 on channel c; the gradient is 1 for x > 0, slope[c] for x <= 0 (as
// PyTorch).
void forward_prelu(const ForwardArgs& a) {
    const ConstView& x = a.in[0];
    for (int64_t n = 0; n < x.n; ++n)
        for (int64_t c = 0; c < x.c; ++c) {
            const float s = a.node.scale[c];
            const float* xc = x.sample(n) + c * x.l;
            float* yc = a.out.sample(n) + c * x.l;
            for (int64_t i = 0; i < x.l; ++i) yc[i] = xc[i] < 0.f ? s * xc[i] : xc[i];
        }
}

void backward_prelu(const BackwardArgs& a) {
    const View& gx = a.grad_in[0];
    if (!gx.data) return;
    zero_if_overwrite(a);
    for (int64_t r = 0; r < gx.n; ++r)
        for (int64_t c = 0; c < gx.c; ++c) {
            const float s = a.node.scale[c];
            const float* x = a.in[0].sample(r / a.rep) + c * gx.l;
            const float* g = a.grad_out.sample(r) + c * gx.l;
            float* dst = gx.sample(r) + c * gx.l;
            for (int64_t i = 0; i < gx.l; ++i) dst[i] += x[i] > 0.f ? g[i] : s * g[i];
        }
}

void trace_prelu(const TraceArgs& a) {
    const int64_t len = a.out.l;
    const float* x = a.in[0].sample(a.sample);
    for (int64_t c = 0; c < a.out.c; ++c)
        for (int64_t i = 0; i < len; ++i) {
            const int64_t k = c * len + i;
            if (a.mask_out[k] && (!a.active_only || x[k] > 0.f || a.node.scale[c] != 0.f)) a.mask_in[0][k] = 1;
        }
}

Band band_prelu(const BandArgs& a) { return band_same(a); }

void tangent_prelu(const TangentArgs& a) {
    const int64_t c_n = a.out.c, len = a.out.l, w = a.w_out;
    for (int64_t t = 0; t < a.count; ++t)
        for (int64_t c = 0; c < c_n; ++c) {
            const float s = a.node.scale[c];
            const float* src = a.t_in[0] + (t * c_n + c) * w;
            float* dst = a.t_out + (t * c_n + c) * w;
            const float* xc = a.in[0].data + c * len + a.start_out[t];
            for (int64_t j = 0; j < w; ++j) dst[j] = xc[j] > 0.f ? src[j] : s * src[j];
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
    r.backward_writes_all = true;  // every activation's backward rule honours `overwrite`
    return r;
}

}  // namespace

OpRules relu_rules() {
    OpRules r = activation(TSVIZ_RULES(Relu, relu, infer_same));
    r.tangent_writes_all = true;
    return r;
}
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
OpRules gelu_rules() {
    OpRules r = activation(TSVIZ_RULES(Gelu, gelu, infer_same), [](Lowering& im) {
        lower_unary(im, OpKind::Gelu, [&](Node& n) {
            const std::string form = im.attr_string("approximate", "none");
            if (form != "none" && form != "tanh")
                im.fail_node("attribute 'approximate': expected 'none' or 'tanh', got '" + form + "'");
            n.approximate = form == "tanh";
        });
    });
    r.onnx[0].since_opset = 20;
    r.fused_from = "Mul(Mul(x, Add(Erf(Div(x, sqrt 2)), 1)), 0.5), and its tanh approximation";
    return r;
}
OpRules erf_rules() {
    OpRules r = activation(TSVIZ_RULES(Erf, erf, infer_same));
    r.onnx[0].since_opset = 9;
    return r;
}
OpRules silu_rules() {
    OpRules r = activation(TSVIZ_RULES(Silu, silu, infer_same));
    r.onnx.clear();  // no ONNX op of its own
    r.fused_from = "Mul(x, Sigmoid(x))";
    return r;
}
// PyTorch's softplus is x above a threshold (20); the dynamo exporter writes that as
// Where(Greater(x, 20), x, Softplus(x)). Above 17, softplus(x) rounds to x in float, so that
// Where is Softplus itself; these two forms lower only that pattern.
void lower_greater(Lowering& im) {
    const Value& a = im.input(0);
    const Value& b = im.input(1);
    if (a.is_const || a.is_greater || !b.is_const || b.k.count() != 1 || !b.k.all_known())
        im.fail_node("compares values; only Where(Greater(x, c), x, Softplus(x)), PyTorch's Softplus threshold, is supported");
    Value v;
    v.t = im.tensor_input(0);
    v.is_greater = true;
    v.threshold = b.k.v[0];
    im.set_output(0, std::move(v));
}

void lower_where(Lowering& im) {
    const Value& cond = im.input(0);
    const Value& x = im.input(1);
    const Value& s = im.input(2);
    const auto& nodes = im.g_.nodes;
    const bool pattern = cond.is_greater && !x.is_const && !x.is_greater && x.t.node == cond.t.node && !s.is_const &&
                         !s.is_greater && nodes[static_cast<size_t>(s.t.node)].kind == OpKind::Softplus &&
                         nodes[static_cast<size_t>(s.t.node)].inputs.at(0) == cond.t.node && cond.threshold >= 17;
    if (!pattern)
        im.fail_node("selects between tensors; only Where(Greater(x, c), x, Softplus(x)) with c >= 17, PyTorch's "
                     "Softplus threshold, is supported");
    im.set_tensor(im.tensor_input(2));
}

OpRules softplus_rules() {
    OpRules r = activation(TSVIZ_RULES(Softplus, softplus, infer_same));
    r.onnx.push_back({"Greater", lower_greater, false, 9});
    r.onnx.push_back({"Where", lower_where, false, 9});
    return r;
}
OpRules mish_rules() {
    OpRules r = activation(TSVIZ_RULES(Mish, mish, infer_same));
    r.onnx[0].since_opset = 18;
    r.fused_from = "Mul(x, Tanh(Softplus(x)))";
    return r;
}
OpRules selu_rules() {
    return activation(TSVIZ_RULES(Selu, selu, infer_same), [](Lowering& im) {
        lower_unary(im, OpKind::Selu, [&](Node& n) {
            n.alpha = im.attr_float("alpha", 1.67326319217681884765625f);
            n.beta = im.attr_float("gamma", 1.05070102214813232421875f);
        });
    });
}
OpRules hard_sigmoid_rules() {
    return activation(TSVIZ_RULES(HardSigmoid, hard_sigmoid, infer_same), [](Lowering& im) {
        lower_unary(im, OpKind::HardSigmoid, [&](Node& n) {
            n.alpha = im.attr_float("alpha", 0.2f);
            n.beta = im.attr_float("beta", 0.5f);
        });
    });
}
OpRules hard_swish_rules() {
    OpRules r = activation(TSVIZ_RULES(HardSwish, hard_swish, infer_same));
    r.onnx[0].since_opset = 14;
    r.fused_from = "Mul(x, HardSigmoid(x, alpha 1/6, beta 1/2))";
    return r;
}
OpRules softsign_rules() { return activation(TSVIZ_RULES(Softsign, softsign, infer_same)); }
// ReLU6 and other clamps: bounds are attributes before opset 11, optional constant inputs from 11.
OpRules clip_rules() {
    return activation(TSVIZ_RULES(Clip, clip, infer_same), [](Lowering& im) {
        lower_unary(im, OpKind::Clip, [&](Node& n) {
            float bound[2] = {std::numeric_limits<float>::lowest(), std::numeric_limits<float>::max()};
            const char* names[2] = {"min", "max"};
            for (size_t i = 0; i < 2; ++i) {
                if (im.opset_ < 11) {
                    bound[i] = im.attr_float(names[i], bound[i]);
                } else if (im.has_input(i + 1)) {
                    const Const& k = im.float_input(i + 1, names[i]);
                    if (k.count() != 1) im.fail_node(std::string("'") + names[i] + "' has shape " + join(k.dims) + "; expected one value");
                    bound[i] = to_f32(k.v[0]);
                }
            }
            if (!(bound[0] <= bound[1]))
                im.fail_node("clips to [" + std::to_string(bound[0]) + ", " + std::to_string(bound[1]) + "], which is empty");
            n.alpha = bound[0];
            n.beta = bound[1];
        });
    });
}
// The slope is a constant: one value, or one per channel (PyTorch writes (C, 1) for 1-D nets).
// Pruning prunes a per-channel slope with the channels, so it does not simply pass through.
OpRules prelu_rules() {
    OpRules r = activation(TSVIZ_RULES(PRelu, prelu, infer_same), [](Lowering& im) {
        Tensor x = im.tensor_input(0);
        const Const& k = im.float_input(1, "the slope");
        const size_t rank = x.axes.size();
        if (k.dims.size() > rank || k.count() < 1)
            im.fail_node("slope of shape " + join(k.dims) + " does not fit an input of rank " + std::to_string(rank));
        int varying = -1;
        for (size_t j = 0; j < k.dims.size(); ++j)
            if (k.dims[j] != 1) {
                if (varying >= 0) im.fail_node("slope of shape " + join(k.dims) + " varies along more than one axis; only per-channel or scalar slopes are supported");
                varying = static_cast<int>(rank - k.dims.size() + j);
            }
        if (varying >= 0) im.bind(x.axes[static_cast<size_t>(varying)], true);
        Node n = im.make(OpKind::PRelu, x);
        const int64_t channels = n.channels;
        if (varying >= 0 && (im.kind(x.axes[static_cast<size_t>(varying)]) != Ax::C || k.count() != channels))
            im.fail_node("slope of shape " + join(k.dims) + " is not one value per channel of the input's " +
                         std::to_string(channels) + " channels; only per-channel or scalar slopes are supported");
        for (int64_t c = 0; c < channels; ++c) n.scale.push_back(to_f32(k.v[varying >= 0 ? c : 0]));
        x.node = im.add_node(std::move(n));
        im.set_tensor(x);
    });
    r.onnx[0].keeps_channels = false;
    return r;
}

OpRules softmax_rules() {
    OpRules r = TSVIZ_RULES(Softmax, softmax, infer_same);
    r.onnx = {{"Softmax", lower_softmax}};
    return r;
}

}  // namespace tsviz::ops
