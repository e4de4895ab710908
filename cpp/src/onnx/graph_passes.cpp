// Passes over the lowered IR graph: folding per-channel affines into the filter layer before
// them, and removing what the output does not depend on.
#include "onnx/graph_passes.hpp"

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

}  // namespace tsviz::onnx
