// Elementwise activations and Softmax. ONNX Relu, LeakyRelu (alpha, default 0.01), Elu
// (alpha, default 1), Sigmoid, Tanh; Softmax over the channel axis or the time axis (opsets
// < 13 flatten from `axis`, which the importer accepts when that covers a single axis).
// SPEC.md: the gradient of ReLU at exactly 0 is 0 (eq. 8).
#include <algorithm>
#include <cmath>

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
    map(a, [](float v) { return v > 0.f ? v : 0.f; });
}

void forward_leaky_relu(const ForwardArgs& a) {
    const float alpha = a.node.alpha;
    map(a, [alpha](float v) { return v >= 0.f ? v : alpha * v; });
}

void forward_elu(const ForwardArgs& a) {
    const float alpha = a.node.alpha;
    map(a, [alpha](float v) { return v >= 0.f ? v : alpha * std::expm1(v); });
}

void forward_sigmoid(const ForwardArgs& a) {
    map(a, [](float v) {
        // Split by sign so exp never overflows.
        if (v >= 0.f) return 1.f / (1.f + std::exp(-v));
        const float e = std::exp(v);
        return e / (1.f + e);
    });
}

void forward_tanh(const ForwardArgs& a) {
    map(a, [](float v) { return std::tanh(v); });
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
