#include "engine.hpp"

#include <algorithm>
#include <string>

#include "tsviz/error.hpp"

namespace tsviz {

std::vector<ops::Resolved> resolve(const Graph& g, int64_t t) {
    std::vector<ops::Resolved> geo(g.nodes.size());
    geo[0].out = {g.input_channels, t};
    std::vector<Shape> in;
    for (size_t i = 1; i < g.nodes.size(); ++i) {
        const Node& n = g.nodes[i];
        in.clear();
        for (int p : n.inputs) in.push_back(geo[p].out);
        geo[i] = ops::rules(n.kind).infer(n, in);
    }
    return geo;
}

std::vector<Shape> Graph::infer_shapes(int64_t t) const {
    std::vector<Shape> out;
    for (const auto& r : resolve(*this, t)) out.push_back(r.out);
    return out;
}

Activations allocate(const Graph& g, int64_t n, int64_t t) {
    Activations act;
    act.n = n;
    act.geo = resolve(g, t);
    int64_t total = 0, aux_total = 0;
    for (const auto& r : act.geo) {
        act.offset.push_back(total);
        act.aux_offset.push_back(aux_total);
        total += n * r.out.size();
        aux_total += n * r.aux_per_sample;
    }
    act.arena.resize(static_cast<size_t>(total));
    act.aux.resize(static_cast<size_t>(aux_total));
    return act;
}

void forward_samples(const Graph& g, Activations& act, int64_t first, int64_t last) {
    const int64_t count = last - first;
    auto view = [&](int node) {
        const ops::Resolved& r = act.geo[node];
        return ops::View{act.arena.data() + act.offset[node] + first * r.out.size(), count, r.out.c, r.out.l};
    };
    for (size_t i = 1; i < g.nodes.size(); ++i) {
        const Node& node = g.nodes[i];
        ops::ForwardArgs args{node, act.geo[i], {}, view(static_cast<int>(i)),
                              act.aux.data() + act.aux_offset[i] + first * act.geo[i].aux_per_sample};
        for (int p : node.inputs) args.in.push_back(view(p));
        ops::rules(node.kind).forward(args);
    }
}

// Samples are independent all the way through the graph, so each thread runs every node on
// its own range of samples, writing disjoint parts of the arena.
void forward(const Graph& g, Activations& act) {
    parallel_ranges(act.n, [&](int64_t first, int64_t last) { forward_samples(g, act, first, last); });
}

std::vector<bool> ancestors(const Graph& g, int start) {
    std::vector<bool> reach(g.nodes.size(), false);
    reach[start] = true;
    for (int i = start; i > 0; --i)
        if (reach[i])
            for (int p : g.nodes[i].inputs) reach[p] = true;
    return reach;
}

Cotangents backward(const Graph& g, const Activations& act, int64_t first, int64_t count, int start,
                    std::vector<float> seed, int64_t rep, const std::vector<bool>& keep) {
    Cotangents ct;
    ct.rep = rep;
    ct.rows = count * rep;
    ct.grad.resize(g.nodes.size());
    ct.grad[start] = std::move(seed);
    // The forward cache of samples [first, first + count).
    auto fwd = [&](int node) {
        const ops::Resolved& r = act.geo[node];
        return ops::ConstView(ops::View{const_cast<float*>(act.arena.data()) + act.offset[node] + first * r.out.size(),
                                        count, r.out.c, r.out.l});
    };
    auto grad = [&](int node) {
        const ops::Resolved& r = act.geo[node];
        return ops::View{ct.grad[node].data(), ct.rows, r.out.c, r.out.l};
    };
    const std::vector<bool> reach = ancestors(g, start);
    for (int i = start; i > 0; --i) {
        if (!reach[i] || ct.grad[i].empty()) continue;
        const Node& node = g.nodes[i];
        ops::BackwardArgs args{node, act.geo[i], {}, fwd(i),
                               act.aux.data() + act.aux_offset[i] + first * act.geo[i].aux_per_sample,
                               ops::ConstView(grad(i)), {}, rep};
        for (int p : node.inputs) {
            args.in.push_back(fwd(p));
            std::vector<float>& gp = ct.grad[p];
            if (gp.empty()) gp.assign(static_cast<size_t>(ct.rows * act.geo[p].out.size()), 0.f);
            args.grad_in.push_back(grad(p));
        }
        ops::rules(node.kind).backward(args);
        if (!keep[i]) std::vector<float>().swap(ct.grad[i]);
    }
    return ct;
}

}  // namespace tsviz
