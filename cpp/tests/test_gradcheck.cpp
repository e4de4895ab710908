// Every op in the registry, three ways: its backward (reverse mode, a vector-Jacobian product),
// its tangent rule (forward mode on bands, the saliency of every output channel) and central
// finite differences in double precision on its forward. One small graph per op on random
// inputs kept away from kinks; the test walks the registry and fails for an op it has no case
// for, so a new op cannot land without its gradients checked. test_gradcheck
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "engine.hpp"
#include "graph.hpp"
#include "onnx/import.hpp"
#include "ops/op.hpp"
#include "testing.hpp"

using namespace tsviz;

namespace {

constexpr int64_t kChannels = 3, kLength = 12, kSamples = 2;

std::mt19937 rng(7);

std::vector<float> random_vector(int64_t n, float scale = 1.f) {
    std::normal_distribution<float> d(0.f, scale);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = d(rng);
    return v;
}

Node make(OpKind kind, std::vector<int> inputs, int channels) {
    Node n;
    n.kind = kind;
    n.name = n.onnx_node = std::string(op_kind_name(kind)) + "_" + std::to_string(inputs.empty() ? 0 : inputs[0]);
    n.onnx_op = op_kind_name(kind);
    n.inputs = std::move(inputs);
    n.channels = channels;
    return n;
}

// A graph whose last node exercises `kind` on the input (x: kChannels x kLength).
Graph case_for(OpKind kind) {
    Graph g;
    g.input_channels = kChannels;
    g.nodes.push_back(make(OpKind::Input, {}, kChannels));
    Node n = make(kind, {0}, kChannels);
    switch (kind) {
        case OpKind::Conv:
            n.channels = 4;
            n.kernel = 3;
            n.dilation = 2;
            n.pad_begin = 2;
            n.pad_end = 1;
            n.weight = random_vector(4 * kChannels * 3, 0.5f);
            n.bias = random_vector(4);
            break;
        case OpKind::Dense: {
            g.nodes.push_back(make(OpKind::Flatten, {0}, kChannels * kLength));
            n.inputs = {1};
            n.channels = 5;
            n.weight = random_vector(5 * kChannels * kLength, 0.3f);
            n.bias = random_vector(5);
            break;
        }
        case OpKind::Affine:
            n.scale = random_vector(kChannels);
            n.shift = random_vector(kChannels);
            break;
        case OpKind::LeakyRelu:
            n.alpha = 0.1f;
            break;
        case OpKind::Elu:
            n.alpha = 0.7f;
            break;
        case OpKind::Selu:
            n.alpha = 1.6f;
            n.beta = 1.1f;
            break;
        case OpKind::HardSigmoid:
            n.alpha = 0.3f;
            n.beta = 0.4f;
            break;
        case OpKind::Clip:
            n.alpha = -0.5f;
            n.beta = 0.8f;
            break;
        case OpKind::PRelu:
            n.scale = random_vector(kChannels);
            break;
        case OpKind::Slice:
            n.start = 2;
            n.end = -3;
            break;
        case OpKind::Softmax:
            n.axis = 1;  // over time: mixes positions (axis 0 is covered by the Add/Concat cases' inputs)
            break;
        case OpKind::MaxPool:
            n.kernel = 3;
            n.stride = 2;
            n.pad_begin = 1;
            n.pad_end = 1;
            break;
        case OpKind::AvgPool:
            n.kernel = 3;
            n.stride = 1;
            n.pad_begin = 1;
            n.pad_end = 1;
            break;
        case OpKind::Add:
        case OpKind::Mul:
        case OpKind::Sub:
        case OpKind::Div:
        case OpKind::Concat: {
            Node a = make(OpKind::Tanh, {0}, kChannels);
            Node b = make(OpKind::Softmax, {0}, kChannels);
            b.axis = 0;
            g.nodes.push_back(a);
            g.nodes.push_back(b);
            n.inputs = {1, 2};
            n.channels = kind == OpKind::Concat ? 2 * kChannels : kChannels;
            break;
        }
        case OpKind::Flatten:
            n.channels = kChannels * kLength;
            n.position_major = true;
            break;
        default:
            break;
    }
    g.nodes.push_back(n);
    g.output = static_cast<int>(g.nodes.size()) - 1;
    ops::prepare(g);
    return g;
}

// The forward output (all samples) for input x.
std::vector<double> run(const Graph& g, const std::vector<float>& x) {
    Activations act = allocate(g, kSamples, kLength);
    std::copy(x.begin(), x.end(), act.arena.begin() + act.offset[0]);
    forward(g, act);
    const ops::ConstView y = act.view(g.output);
    return std::vector<double>(y.data, y.data + y.n * y.c * y.l);
}

// max |a - b| <= tol * max(1, max |b|)
bool close(const std::vector<double>& a, const std::vector<double>& b, double tol, const char* what,
           const char* op) {
    double scale = 1, err = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        scale = std::max(scale, std::fabs(b[i]));
        err = std::max(err, std::fabs(a[i] - b[i]));
    }
    if (err > tol * scale) std::fprintf(stderr, "  %s: %s off by %.3g (scale %.3g)\n", op, what, err, scale);
    return a.size() == b.size() && err <= tol * scale;
}

void check(OpKind kind) {
    const char* name = op_kind_name(kind);
    const Graph g = case_for(kind);
    // Inputs at least 0.05 from 0 and from each other within a row: no ReLU kink and no
    // max-pool tie is crossed by the finite-difference step.
    std::vector<float> x = random_vector(kSamples * kChannels * kLength);
    for (size_t i = 0; i < x.size(); ++i) x[i] = (x[i] < 0 ? -0.05f : 0.05f) + x[i] + 0.07f * static_cast<float>(i % 7);
    Activations act = allocate(g, kSamples, kLength);
    std::copy(x.begin(), x.end(), act.arena.begin() + act.offset[0]);
    forward(g, act);
    const Shape out = act.geo[g.output].out;
    const int64_t out_size = out.c * out.l, in_size = kChannels * kLength;

    // Reverse: for each output channel f, the cotangent 1 on every position of f.
    std::vector<double> reverse(static_cast<size_t>(kSamples * out.c * in_size));
    std::vector<bool> keep(g.nodes.size(), false);
    keep[0] = true;
    Cotangents ct;
    ct.grad.resize(g.nodes.size());
    std::vector<float>& seed = ct.grad[g.output];
    seed.assign(static_cast<size_t>(kSamples * out.c * out_size), 0.f);
    for (int64_t s = 0; s < kSamples; ++s)
        for (int64_t f = 0; f < out.c; ++f)
            for (int64_t i = 0; i < out.l; ++i) seed[((s * out.c + f) * out.c + f) * out.l + i] = 1.f;
    backward(g, act, 0, kSamples, g.output, out.c, keep, ct);
    for (size_t i = 0; i < reverse.size(); ++i) reverse[i] = ct.grad[0][i];

    // Forward mode over bands: the same numbers, d (sum_i y[f, i]) / d x[c, p].
    const BandPlan plan = plan_bands(g, act.geo, ancestors(g, g.output));
    std::vector<float> sums(static_cast<size_t>(kSamples * out.c * in_size));
    tangent_sums(g, act, plan, {g.output}, {sums.data()});
    const std::vector<double> forward_mode(sums.begin(), sums.end());

    // Finite differences of sum_i y[f, i], in double on the float forward, step 1e-3.
    std::vector<double> fd(reverse.size());
    const float h = 1e-3f;
    for (int64_t s = 0; s < kSamples; ++s)
        for (int64_t q = 0; q < in_size; ++q) {
            std::vector<float> up = x, down = x;
            up[s * in_size + q] += h;
            down[s * in_size + q] -= h;
            const std::vector<double> yu = run(g, up), yd = run(g, down);
            for (int64_t f = 0; f < out.c; ++f) {
                double du = 0, dd = 0;
                for (int64_t i = 0; i < out.l; ++i) {
                    du += yu[(s * out.c + f) * out.l + i];
                    dd += yd[(s * out.c + f) * out.l + i];
                }
                fd[(s * out.c + f) * in_size + q] = (du - dd) / (2.0 * static_cast<double>(h));
            }
        }
    CHECK(close(reverse, fd, 2e-2, "backward vs finite differences", name));
    CHECK(close(forward_mode, reverse, 1e-5, "tangent rule vs backward", name));
}

// The registry's own invariants: each op's entry sits at its kind, has every rule, and lowers
// from at least one ONNX op; each ONNX op type is claimed by one rule only.
void check_registry() {
    const auto& table = ops::all_rules();
    for (size_t i = 0; i < table.size(); ++i) {
        const ops::OpRules& r = table[i];
        CHECK(static_cast<size_t>(r.kind) == i);
        CHECK(r.infer && r.forward && r.backward && r.trace && r.band && r.tangent);
        if (r.kind != OpKind::Input && r.onnx.empty() && !r.fused_from)
            std::fprintf(stderr, "  %s: lowers from no ONNX op\n", r.name);
        CHECK(r.kind == OpKind::Input || !r.onnx.empty() || r.fused_from);
        for (const ops::OnnxForm& f : r.onnx) CHECK(f.lower != nullptr);
        // An activation is elementwise, so its own ONNX op keeps channels (PRelu's per-channel
        // slope is pruned with them, tsviz_native/analysis/pruning.py).
        CHECK(!r.activation || r.onnx.empty() || r.onnx[0].keeps_channels || r.kind == OpKind::PRelu);
    }
    std::map<std::string, int> claimed;
    for (const onnx::OnnxOp& o : onnx::supported_ops()) ++claimed[o.op];
    for (const auto& [op, n] : claimed) {
        if (n != 1) std::fprintf(stderr, "  ONNX op %s is claimed %d times\n", op.c_str(), n);
        CHECK(n == 1);
    }
    CHECK(claimed.count("Conv") && claimed.count("Reshape") && claimed.count("Shape"));
}

}  // namespace

int main() {
    check_registry();
    int checked = 0;
    for (const ops::OpRules& r : ops::all_rules()) {
        if (r.kind == OpKind::Input) continue;
        check(r.kind);
        ++checked;
    }
    CHECK(checked >= 16);
    std::printf("gradcheck: %d ops\n", checked);
    return testing::report("gradcheck");
}
