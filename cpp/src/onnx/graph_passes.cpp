// Passes over the lowered IR graph: folding per-channel affines into the filter layer before
// them, and removing what the output does not depend on.
#include "onnx/graph_passes.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace tsviz::onnx {

// A Conv or Dense followed by a per-channel affine, when nothing else reads the layer's raw
// output, absorbs it: SPEC.md makes z^l the output of the last folded op, and the layer takes
// that op's output name.
void fold_affines(Graph& g) {
    std::vector<int> consumers(g.nodes.size(), 0);
    for (const Node& n : g.nodes)
        for (int i : n.inputs) ++consumers[i];
    std::vector<int> forward(g.nodes.size());
    for (size_t i = 0; i < g.nodes.size(); ++i) forward[i] = static_cast<int>(i);
    for (size_t i = 0; i < g.nodes.size(); ++i) {
        Node& n = g.nodes[i];
        for (int& in : n.inputs) in = forward[in];
        if (n.kind != OpKind::Affine) continue;
        Node& p = g.nodes[n.inputs[0]];
        if (!p.is_filter_layer() || consumers[n.inputs[0]] != 1 || n.inputs[0] == g.output) continue;
        const size_t f = static_cast<size_t>(p.channels);
        const size_t per = p.weight.size() / f;
        for (size_t c = 0; c < f; ++c) {
            for (size_t j = 0; j < per; ++j) p.weight[c * per + j] *= n.scale[c];
            p.bias[c] = p.bias[c] * n.scale[c] + n.shift[c];
        }
        p.folded.push_back({n.onnx_node, n.onnx_op, n.scale, n.shift});
        p.name = n.name;
        forward[i] = n.inputs[0];
        consumers[n.inputs[0]] = consumers[i];
        if (g.output == static_cast<int>(i)) g.output = n.inputs[0];
        n.kind = OpKind::Input;  // marks it dead; prune_unused removes it
        n.inputs.clear();
    }
}

// Removes nodes the output does not depend on, renumbering the rest in their order.
void prune_unused(Graph& g, std::vector<int64_t>& lengths) {
    std::vector<bool> live(g.nodes.size(), false);
    live[0] = true;
    live[g.output] = true;
    for (size_t i = g.nodes.size(); i-- > 1;)
        if (live[i])
            for (int in : g.nodes[i].inputs) live[in] = true;
    std::vector<int> index(g.nodes.size(), -1);
    std::vector<Node> kept;
    std::vector<int64_t> lens;
    for (size_t i = 0; i < g.nodes.size(); ++i) {
        if (!live[i] || (i > 0 && g.nodes[i].kind == OpKind::Input)) continue;
        index[i] = static_cast<int>(kept.size());
        kept.push_back(std::move(g.nodes[i]));
        lens.push_back(lengths[i]);
    }
    for (Node& n : kept)
        for (int& in : n.inputs) in = index[in];
    g.output = index[g.output];
    g.nodes = std::move(kept);
    lengths = std::move(lens);
}

namespace {

// Every channel's scale is `s` and shift is `b` (to float rounding of the exporter's constant).
bool uniform_affine(const Node& n, float s, float b) {
    if (n.kind != OpKind::Affine) return false;
    for (size_t c = 0; c < n.scale.size(); ++c)
        if (std::fabs(n.scale[c] - s) > 1e-6f * std::fabs(s) || std::fabs(n.shift[c] - b) > 1e-6f * std::max(1.f, std::fabs(b)))
            return false;
    return true;
}


// The nodes of sqrt(2 / pi) * (x + 0.044715 * x * (x * x)) ending at `scaled`, each read once,
// or nothing when `scaled` is not that of x.
std::vector<int> tanh_gelu_chain(const Graph& g, const std::vector<int>& consumers, int scaled, int x) {
    auto once = [&](int j, OpKind k) { return g.nodes[j].kind == k && consumers[j] == 1; };
    auto operands = [&](int j, int a, int& other) {  // a Mul or Add of a and `other`, either order
        const std::vector<int>& in = g.nodes[j].inputs;
        if (in.size() != 2 || (in[0] != a && in[1] != a)) return false;
        other = in[0] == a ? in[1] : in[0];
        return true;
    };
    if (consumers[scaled] != 1 || !uniform_affine(g.nodes[scaled], 0.7978845608f, 0.f)) return {};
    const int sum = g.nodes[scaled].inputs[0];
    int cubic = -1, cube = -1, square = -1, again = -1;
    if (!once(sum, OpKind::Add) || !operands(sum, x, cubic)) return {};
    if (consumers[cubic] != 1 || !uniform_affine(g.nodes[cubic], 0.044715f, 0.f)) return {};
    cube = g.nodes[cubic].inputs[0];
    if (!once(cube, OpKind::Mul) || !operands(cube, x, square)) return {};
    if (!once(square, OpKind::Mul) || !operands(square, x, again) || again != x) return {};
    return {scaled, sum, cubic, cube, square};
}
}  // namespace

void fuse_activations(Graph& g) {
    const size_t count = g.nodes.size();
    std::vector<int> consumers(count, 0);
    auto recount = [&] {
        std::fill(consumers.begin(), consumers.end(), 0);
        for (const Node& n : g.nodes)
            for (int i : n.inputs) ++consumers[static_cast<size_t>(i)];
        ++consumers[static_cast<size_t>(g.output)];
    };
    recount();
    // Node j, read only by the node being fused, is of kind k.
    auto only = [&](int j, OpKind k) { return g.nodes[j].kind == k && consumers[j] == 1; };
    auto kill = [&](int j) {
        g.nodes[j].kind = OpKind::Input;  // marks it dead; prune_unused removes it
        g.nodes[j].inputs.clear();
    };
    auto fuse = [&](size_t at, OpKind kind, int x) {
        Node& n = g.nodes[at];
        n.kind = kind;
        n.inputs = {x};
        n.scale.clear();
        n.shift.clear();
        recount();
    };
    constexpr float kInvSqrt2 = 0.70710678118654752f;
    for (size_t i = 0; i < count; ++i) {
        const Node& m = g.nodes[i];
        // HardSigmoid as Keras writes it (tf2onnx): Mul(Clip(Add(x, b), 0, 1 / a), a), i.e.
        // clip(a * x + a * b, 0, 1): Keras 3's hard_sigmoid is relu6(x + 3) / 6. Fused before the
        // Mul that reads it, so x * hard_sigmoid(x) (Keras' hard_silu) becomes HardSwish below.
        if (m.kind == OpKind::Affine && !m.scale.empty() && only(m.inputs[0], OpKind::Clip)) {
            const float a = m.scale[0];
            const Node& clip = g.nodes[m.inputs[0]];
            const int add = clip.inputs[0];
            if (a > 0.f && uniform_affine(m, a, 0.f) && clip.alpha == 0.f &&
                std::fabs(clip.beta * a - 1.f) < 1e-6f && consumers[add] == 1 &&
                g.nodes[add].kind == OpKind::Affine && !g.nodes[add].shift.empty() &&
                uniform_affine(g.nodes[add], 1.f, g.nodes[add].shift[0])) {
                const int x = g.nodes[add].inputs[0];
                const float b = g.nodes[add].shift[0];
                kill(add);
                kill(m.inputs[0]);
                fuse(i, OpKind::HardSigmoid, x);
                g.nodes[i].alpha = a;
                g.nodes[i].beta = a * b;
                continue;
            }
        }
        // PRelu as Keras writes it (tf2onnx): Add(Relu(x), Mul(Relu(Neg(x)), -slope)), the slope
        // one value or one per channel.
        if (m.kind == OpKind::Add) {
            for (int side = 0; side < 2; ++side) {
                const int pos = m.inputs[side], neg = m.inputs[1 - side];
                if (!only(pos, OpKind::Relu) || consumers[neg] != 1 || g.nodes[neg].kind != OpKind::Affine) continue;
                const int x = g.nodes[pos].inputs[0];
                const Node& scaled = g.nodes[neg];
                if (!only(scaled.inputs[0], OpKind::Relu)) continue;
                const int flip = g.nodes[scaled.inputs[0]].inputs[0];
                if (consumers[flip] != 1 || !uniform_affine(g.nodes[flip], -1.f, 0.f) || g.nodes[flip].inputs[0] != x)
                    continue;
                bool no_shift = true;
                for (float v : scaled.shift) no_shift = no_shift && v == 0.f;
                if (!no_shift) continue;
                std::vector<float> slope(scaled.scale.size());
                for (size_t c = 0; c < slope.size(); ++c) slope[c] = -scaled.scale[c];
                for (int j : {pos, neg, scaled.inputs[0], flip}) kill(j);
                fuse(i, OpKind::PRelu, x);
                g.nodes[i].scale = slope;
                break;
            }
            continue;
        }
        // x * f(x): Silu (Sigmoid), HardSwish (HardSigmoid 1/6, 1/2), Mish (Tanh of Softplus);
        // and Gelu with its tanh approximation as Keras writes it (tf2onnx):
        // Mul(Mul(x, 0.5), Add(Tanh(sqrt(2 / pi) * (x + 0.044715 * Pow(x, 3))), 1)).
        if (m.kind == OpKind::Mul) {
            bool fused = false;
            for (int side = 0; side < 2 && !fused; ++side) {
                const int half = m.inputs[side], plus = m.inputs[1 - side];
                if (consumers[half] != 1 || !uniform_affine(g.nodes[half], 0.5f, 0.f) || consumers[plus] != 1 ||
                    !uniform_affine(g.nodes[plus], 1.f, 1.f) || !only(g.nodes[plus].inputs[0], OpKind::Tanh))
                    continue;
                const int x = g.nodes[half].inputs[0], inner = g.nodes[plus].inputs[0];
                const std::vector<int> chain = tanh_gelu_chain(g, consumers, g.nodes[inner].inputs[0], x);
                if (chain.empty()) continue;
                for (int j : chain) kill(j);
                for (int j : {half, plus, inner}) kill(j);
                fuse(i, OpKind::Gelu, x);
                g.nodes[i].approximate = true;
                fused = true;
            }
            if (fused) continue;
            for (int side = 0; side < 2; ++side) {
                const int x = m.inputs[side], f = m.inputs[1 - side];
                const Node& fn = g.nodes[f];
                if (consumers[f] != 1 || fn.inputs.empty()) continue;
                if (fn.kind == OpKind::Sigmoid && fn.inputs[0] == x) {
                    kill(f);
                    fuse(i, OpKind::Silu, x);
                    break;
                }
                if (fn.kind == OpKind::HardSigmoid && fn.inputs[0] == x && std::fabs(fn.alpha - 1.f / 6.f) < 1e-6f &&
                    std::fabs(fn.beta - 0.5f) < 1e-6f) {
                    kill(f);
                    fuse(i, OpKind::HardSwish, x);
                    break;
                }
                if (fn.kind == OpKind::Tanh && only(fn.inputs[0], OpKind::Softplus) &&
                    g.nodes[fn.inputs[0]].inputs[0] == x) {
                    kill(fn.inputs[0]);
                    kill(f);
                    fuse(i, OpKind::Mish, x);
                    break;
                }
            }
            continue;
        }
        // Gelu as PyTorch writes it before opset 20: (x * (erf(x / sqrt 2) + 1)) * 0.5, or with
        // approximate="tanh" (x * (tanh(sqrt(2 / pi) * (x + 0.044715 * x * (x * x))) + 1)) * 0.5.
        if (uniform_affine(m, 0.5f, 0.f) && only(m.inputs[0], OpKind::Mul)) {
            const int mul = m.inputs[0];
            for (int side = 0; side < 2; ++side) {
                const int x = g.nodes[mul].inputs[side], plus = g.nodes[mul].inputs[1 - side];
                if (consumers[plus] != 1 || !uniform_affine(g.nodes[plus], 1.f, 1.f)) continue;
                const int inner = g.nodes[plus].inputs[0];
                if (only(inner, OpKind::Erf)) {
                    const int scaled = g.nodes[inner].inputs[0];
                    if (consumers[scaled] != 1 || !uniform_affine(g.nodes[scaled], kInvSqrt2, 0.f) ||
                        g.nodes[scaled].inputs[0] != x)
                        continue;
                    for (int j : {mul, plus, inner, scaled}) kill(j);
                    fuse(i, OpKind::Gelu, x);
                    break;
                }
                if (!only(inner, OpKind::Tanh)) continue;
                const std::vector<int> chain = tanh_gelu_chain(g, consumers, g.nodes[inner].inputs[0], x);
                if (chain.empty()) continue;
                for (int j : chain) kill(j);
                for (int j : {mul, plus, inner}) kill(j);
                fuse(i, OpKind::Gelu, x);
                g.nodes[i].approximate = true;
                break;
            }
        }
    }
}

}  // namespace tsviz::onnx
