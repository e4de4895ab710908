// Every op in the registry, three ways: its backward (reverse mode, a vector-Jacobian product),
// its tangent rule (forward mode on bands, the saliency of every output channel) and central
// finite differences in double precision on its forward. One small graph per op on random
// inputs kept away from kinks; the test walks the registry and fails for an op it has no case
// for, so a new op cannot land without its gradients checked. Ops with parameters to train
// (weight_backward) have their weight and bias gradients checked the same way, over strides,
// dilations, groups and every padding mode, and the fast rule against the plain reference on
// random shapes. test_gradcheck
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
            if (kind == OpKind::Add) {
                // A residual: the convolution's band is wider than the Tanh's and starts
                // earlier, so the two tangents are added at an offset.
                b = make(OpKind::Conv, {0}, kChannels);
                b.kernel = 3;
                b.pad_begin = 2;
                b.pad_end = 0;
                b.weight = random_vector(kChannels * kChannels * 3, 0.5f);
                b.bias = random_vector(kChannels);
            }
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

void check_graph(const Graph& g, const char* name) {
    // Inputs at least 0.05 from 0 and from each other within a row: no ReLU kink and no
    // max-pool tie is crossed by the finite-difference step.
    std::vector<float> x = random_vector(kSamples * kChannels * kLength);
    for (size_t i = 0; i < x.size(); ++i) {
        x[i] += 0.07f * static_cast<float>(i % 7);
        x[i] += x[i] < 0 ? -0.05f : 0.05f;  // after the offset, which could bring it back near 0
    }
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
    GradBuffer& seed = ct.grad[g.output];
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

void check(OpKind kind) { check_graph(case_for(kind), op_kind_name(kind)); }

// Add's backward copies the cotangent into an input's first gradient and adds it to one that
// holds values already: the same tensor on both sides (tanh(x) + tanh(x): its second slot adds
// to what the first set), and an input that another node also passes a gradient to
// (tanh(x) + x: x's gradient set by the Add, then added to by the Tanh).
void check_add_reuse() {
    for (const bool twice : {true, false}) {
        Graph g;
        g.input_channels = kChannels;
        g.nodes.push_back(make(OpKind::Input, {}, kChannels));
        g.nodes.push_back(make(OpKind::Tanh, {0}, kChannels));
        g.nodes.push_back(make(OpKind::Add, twice ? std::vector<int>{1, 1} : std::vector<int>{1, 0}, kChannels));
        g.output = 2;
        ops::prepare(g);
        check_graph(g, twice ? "Add(tanh(x), tanh(x))" : "Add(tanh(x), x)");
    }
}

// Max-pooling's special paths: windows that tile the input (kernel = stride, the vectorised
// and AVX-512 kernels), with padding at either end, and a ReLU before it that the backward
// fuses into the pooling (BackwardArgs::relu_gate), alone and after a convolution that nothing
// else reads (its product then overwrites its input's gradient).
void check_pooling() {
    struct PoolCase {
        int kernel, stride, pad_begin, pad_end;
        bool relu, conv;
        const char* label;
        bool twice = false;  // two poolings read the input, concatenated: the second adds
    };
    const PoolCase cases[] = {
        {2, 2, 0, 0, false, false, "max-pool 2/2"},
        {2, 2, 1, 1, false, false, "max-pool 2/2, pads 1+1"},
        {3, 3, 0, 0, false, false, "max-pool 3/3"},
        {3, 3, 2, 1, false, false, "max-pool 3/3, pads 2+1"},
        {2, 2, 0, 0, true, false, "relu, max-pool 2/2"},
        {2, 2, 1, 0, true, false, "relu, max-pool 2/2, pad 1+0"},
        {3, 2, 1, 1, true, false, "relu, max-pool 3/2, pads 1+1"},
        {2, 2, 0, 0, true, true, "conv, relu, max-pool 2/2"},
        {3, 3, 1, 1, true, true, "conv, relu, max-pool 3/3, pads 1+1"},
        {2, 2, 1, 0, true, false, "relu, two max-pools 2/2, pad 1+0", true},
        {3, 3, 0, 0, false, true, "conv, two max-pools 3/3", true},
    };
    for (const PoolCase& k : cases) {
        Graph g;
        g.input_channels = kChannels;
        g.nodes.push_back(make(OpKind::Input, {}, kChannels));
        if (k.conv) {
            Node c = make(OpKind::Conv, {0}, kChannels);
            c.kernel = 3;
            c.pad_begin = c.pad_end = 1;
            c.weight = random_vector(kChannels * kChannels * 3, 0.5f);
            c.bias = random_vector(kChannels, 0.1f);
            g.nodes.push_back(c);
        }
        if (k.relu) g.nodes.push_back(make(OpKind::Relu, {static_cast<int>(g.nodes.size()) - 1}, kChannels));
        Node n = make(OpKind::MaxPool, {static_cast<int>(g.nodes.size()) - 1}, kChannels);
        n.kernel = k.kernel;
        n.stride = k.stride;
        n.pad_begin = k.pad_begin;
        n.pad_end = k.pad_end;
        g.nodes.push_back(n);
        if (k.twice) {
            n.name = n.onnx_node = n.name + "_b";
            g.nodes.push_back(n);
            Node cat = make(OpKind::Concat, {static_cast<int>(g.nodes.size()) - 2, static_cast<int>(g.nodes.size()) - 1},
                            2 * kChannels);
            g.nodes.push_back(cat);
        }
        g.output = static_cast<int>(g.nodes.size()) - 1;
        ops::prepare(g);
        check_graph(g, k.label);
    }
}



// --- weight gradients ------------------------------------------------------------------------

struct ConvCase {
    int in_c, filters, kernel, stride, dilation, group, pad_begin, pad_end;
    AutoPad auto_pad;
    int length;
};

// A graph input -> node (Conv, or Flatten -> Dense) with random parameters.
Graph weight_case(OpKind kind, const ConvCase& k, std::mt19937& gen) {
    Graph g;
    g.input_channels = k.in_c;
    g.nodes.push_back(make(OpKind::Input, {}, k.in_c));
    std::normal_distribution<float> d(0.f, 0.5f);
    Node n = make(kind, {0}, k.filters);
    if (kind == OpKind::Conv) {
        n.kernel = k.kernel;
        n.stride = k.stride;
        n.dilation = k.dilation;
        n.group = k.group;
        n.pad_begin = k.pad_begin;
        n.pad_end = k.pad_end;
        n.auto_pad = k.auto_pad;
        n.weight.resize(static_cast<size_t>(k.filters * k.in_c / k.group * k.kernel));
    } else {
        g.nodes.push_back(make(OpKind::Flatten, {0}, k.in_c * k.length));
        n.inputs = {1};
        n.weight.resize(static_cast<size_t>(k.filters * k.in_c * k.length));
    }
    for (float& w : n.weight) w = d(gen);
    n.bias.resize(static_cast<size_t>(k.filters));
    for (float& b : n.bias) b = d(gen);
    g.nodes.push_back(n);
    g.output = static_cast<int>(g.nodes.size()) - 1;
    ops::prepare(g);
    return g;
}

// sum(r * y) for the forward of x.
double weighted_output(const Graph& g, const std::vector<float>& x, int64_t n, int64_t t, const std::vector<float>& r) {
    Activations act = allocate(g, n, t);
    std::copy(x.begin(), x.end(), act.arena.begin() + act.offset[0]);
    forward(g, act);
    const ops::ConstView y = act.view(g.output);
    double s = 0;
    for (int64_t i = 0; i < y.n * y.c * y.l; ++i) s += static_cast<double>(r[i]) * y.data[i];
    return s;
}

void check_weights(OpKind kind, const ConvCase& k, const char* label) {
    std::mt19937 gen(11);
    Graph g = weight_case(kind, k, gen);
    const int64_t n = 2, t = k.length;
    std::normal_distribution<float> d(0.f, 1.f);
    std::vector<float> x(static_cast<size_t>(n * k.in_c * t));
    for (float& v : x) v = d(gen);
    Activations act = allocate(g, n, t);
    std::copy(x.begin(), x.end(), act.arena.begin() + act.offset[0]);
    forward(g, act);
    const int node = g.output;
    const ops::ConstView y = act.view(node);
    std::vector<float> r(static_cast<size_t>(y.n * y.c * y.l));
    for (float& v : r) v = d(gen);
    Node& layer = g.nodes[node];
    std::vector<float> gw(layer.weight.size(), 0.f), gb(layer.bias.size(), 0.f);
    std::vector<float> rw(gw.size(), 0.f), rb(gb.size(), 0.f);
    const ops::ConstView in = act.view(layer.inputs[0]);
    const ops::ConstView gy(ops::View{r.data(), y.n, y.c, y.l});
    const ops::OpRules& rules = ops::rules(kind);
    CHECK(rules.weight_backward != nullptr);
    rules.weight_backward({layer, act.geo[node], in, gy, gw.data(), gb.data()});
    ops::weight_backward_reference({layer, act.geo[node], in, gy, rw.data(), rb.data()});
    // Finite differences of sum(r * y) in each parameter; the op is linear in them, so the
    // only error is rounding.
    std::vector<double> fw(gw.size()), fb(gb.size());
    const float h = 1e-2f;
    auto fd = [&](std::vector<float>& params, size_t i) {
        const float keep = params[i];
        params[i] = keep + h;
        ops::prepare(g);
        const double up = weighted_output(g, x, n, t, r);
        params[i] = keep - h;
        ops::prepare(g);
        const double down = weighted_output(g, x, n, t, r);
        params[i] = keep;
        ops::prepare(g);
        return (up - down) / (2.0 * static_cast<double>(h));
    };
    for (size_t i = 0; i < gw.size(); ++i) fw[i] = fd(layer.weight, i);
    for (size_t i = 0; i < gb.size(); ++i) fb[i] = fd(layer.bias, i);
    const std::vector<double> w(gw.begin(), gw.end()), b(gb.begin(), gb.end());
    const std::vector<double> ref_w(rw.begin(), rw.end()), ref_b(rb.begin(), rb.end());
    CHECK(close(w, fw, 2e-3, "weight gradient vs finite differences", label));
    CHECK(close(b, fb, 2e-3, "bias gradient vs finite differences", label));
    CHECK(close(w, ref_w, 1e-5, "weight gradient vs the plain reference", label));
    CHECK(close(b, ref_b, 1e-5, "bias gradient vs the plain reference", label));
}

// The fast weight gradient against the plain loops on random shapes, large enough to take
// the packed kernels' full panels and edges.
void check_weights_random(std::mt19937& gen) {
    std::uniform_int_distribution<int> pick(0, 1 << 20);
    for (int trial = 0; trial < 40; ++trial) {
        ConvCase k{};
        k.group = 1 + pick(gen) % 3;
        k.in_c = k.group * (1 + pick(gen) % 5);
        k.filters = k.group * (1 + pick(gen) % 11);
        k.kernel = 1 + pick(gen) % 6;
        k.stride = 1 + pick(gen) % 3;
        k.dilation = 1 + pick(gen) % 3;
        k.pad_begin = pick(gen) % 4;
        k.pad_end = pick(gen) % 4;
        k.auto_pad = AutoPad::NotSet;
        k.length = (k.kernel - 1) * k.dilation + 1 + pick(gen) % 60;
        const OpKind kind = trial % 4 == 3 ? OpKind::Dense : OpKind::Conv;
        Graph g = weight_case(kind, k, gen);
        const int64_t n = 1 + pick(gen) % 5;
        Activations act = allocate(g, n, k.length);
        std::normal_distribution<float> d(0.f, 1.f);
        for (int64_t i = 0; i < n * k.in_c * k.length; ++i) act.arena[act.offset[0] + i] = d(gen);
        forward(g, act);
        const int node = g.output;
        const ops::ConstView y = act.view(node);
        std::vector<float> r(static_cast<size_t>(y.n * y.c * y.l));
        for (float& v : r) v = d(gen);
        const Node& layer = g.nodes[node];
        std::vector<float> gw(layer.weight.size(), 0.5f), gb(layer.bias.size(), 0.5f), rw = gw, rb = gb;
        const ops::ConstView gy(ops::View{r.data(), y.n, y.c, y.l});
        const ops::WeightGradArgs fast{layer, act.geo[node], act.view(layer.inputs[0]), gy, gw.data(), gb.data()};
        ops::rules(kind).weight_backward(fast);
        ops::weight_backward_reference({layer, act.geo[node], act.view(layer.inputs[0]), gy, rw.data(), rb.data()});
        const std::string label = std::string(kind == OpKind::Conv ? "conv" : "dense") + " random trial " +
                                  std::to_string(trial);
        CHECK(close(std::vector<double>(gw.begin(), gw.end()), std::vector<double>(rw.begin(), rw.end()), 1e-4,
                    "accumulated weight gradient vs reference", label.c_str()));
        CHECK(close(std::vector<double>(gb.begin(), gb.end()), std::vector<double>(rb.begin(), rb.end()), 1e-4,
                    "accumulated bias gradient vs reference", label.c_str()));
    }
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

// Reverse-mode saliency's one-hot step (ops::conv_filter_input_grad) against its definition
// by plain loops in double, over strides, dilations, groups and padding.
void check_filter_input_grad() {
    std::mt19937 gen(3);
    const AutoPad none = AutoPad::NotSet;
    const ConvCase cases[] = {
        {3, 8, 5, 1, 1, 1, 2, 2, none, 20}, {4, 8, 3, 2, 1, 1, 1, 0, none, 17}, {4, 6, 3, 1, 2, 2, 2, 2, none, 15},
        {6, 6, 3, 3, 2, 3, 0, 1, none, 19}, {2, 4, 4, 1, 1, 1, 0, 0, none, 9},
        // Stride 2 over several blocks of 32 positions, odd and even lengths, taps of one
        // phase only (dilation 2), and padding past the kernel's reach.
        {3, 8, 5, 2, 1, 1, 2, 2, none, 64}, {2, 6, 4, 2, 1, 2, 1, 2, none, 77},
        {4, 4, 3, 2, 2, 1, 3, 0, none, 70}, {2, 3, 2, 2, 1, 1, 5, 4, none, 33},
    };
    for (const ConvCase& k : cases) {
        const Graph g = weight_case(OpKind::Conv, k, gen);
        const Activations act = allocate(g, 1, k.length);
        const ops::Resolved& geo = act.geo[1];
        const Shape in = act.geo[0].out;
        const int64_t rows = 2 * k.filters, in_size = in.c * in.l;
        std::vector<float> dz = random_vector(rows * geo.out.l);
        std::vector<float> dx(static_cast<size_t>(rows * in_size), 123.f);  // written whole
        std::vector<double> want(dx.size(), 0.0);
        std::vector<ops::FilterRow> steps;
        const Node& conv = g.nodes[1];
        const int64_t per_group = in.c / conv.group, filters_per_group = conv.channels / conv.group;
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t f = (r * 5 + 1) % k.filters;  // every filter, in a shuffled order
            steps.push_back({f, dz.data() + r * geo.out.l, dx.data() + r * in_size});
            const int64_t c0 = (f / filters_per_group) * per_group;
            for (int64_t c = 0; c < per_group; ++c)
                for (int64_t kk = 0; kk < conv.kernel; ++kk)
                    for (int64_t o = 0; o < geo.out.l; ++o) {
                        const int64_t i = o * conv.stride - geo.pad_begin + kk * conv.dilation;
                        if (i < 0 || i >= in.l) continue;
                        want[r * in_size + (c0 + c) * in.l + i] +=
                            static_cast<double>(conv.weight[(f * per_group + c) * conv.kernel + kk]) * dz[r * geo.out.l + o];
                    }
        }
        ops::conv_filter_input_grad(conv, geo, in, steps.data(), rows);
        CHECK(close(std::vector<double>(dx.begin(), dx.end()), want, 1e-5, "one-hot step vs plain loops", "Conv"));
    }
}

int main() {
    int weighted = 0;
    for (const ops::OpRules& r : ops::all_rules()) {
        if (!r.weight_backward) continue;
        ++weighted;
        if (r.kind == OpKind::Conv) {
            const AutoPad none = AutoPad::NotSet;
            check_weights(r.kind, {3, 4, 3, 1, 1, 1, 0, 0, none, 12}, "conv plain");
            check_weights(r.kind, {3, 4, 3, 2, 1, 1, 1, 2, none, 13}, "conv stride 2, pads 1+2");
            check_weights(r.kind, {3, 5, 3, 1, 2, 1, 2, 1, none, 12}, "conv dilation 2, pads 2+1");
            check_weights(r.kind, {4, 6, 3, 3, 2, 2, 1, 0, none, 17}, "conv groups 2, stride 3, dilation 2");
            check_weights(r.kind, {4, 4, 5, 1, 1, 4, 0, 0, AutoPad::SameUpper, 12}, "conv depthwise, SAME_UPPER");
            check_weights(r.kind, {3, 2, 4, 2, 1, 1, 0, 0, AutoPad::SameLower, 11}, "conv SAME_LOWER, stride 2");
            check_weights(r.kind, {3, 2, 3, 1, 1, 1, 0, 0, AutoPad::Valid, 9}, "conv VALID");
        } else if (r.kind == OpKind::Dense) {
            check_weights(r.kind, {3, 5, 1, 1, 1, 1, 0, 0, AutoPad::NotSet, 4}, "dense");
        } else {
            std::fprintf(stderr, "  %s has weight gradients but no case here\n", r.name);
            CHECK(false);
        }
    }
    CHECK(weighted == 2);
    std::mt19937 gen(5);
    check_weights_random(gen);
    check_registry();
    check_pooling();
    check_filter_input_grad();
    int checked = 0;
    for (const ops::OpRules& r : ops::all_rules()) {
        if (r.kind == OpKind::Input) continue;
        check(r.kind);
        ++checked;
    }
    CHECK(checked >= 16);
    check_add_reuse();  // after the registry's cases, whose random inputs it would change
    std::printf("gradcheck: %d ops\n", checked);
    return testing::report("gradcheck");
}
