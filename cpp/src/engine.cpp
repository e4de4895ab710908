#include "engine.hpp"

#include <algorithm>
#include <stdexcept>
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

Activations allocate(const Graph& g, int64_t n, int64_t t, FloatArena storage) {
    return allocate(resolve(g, t), n, std::move(storage));
}

Activations allocate(const std::vector<ops::Resolved>& geo, int64_t n, FloatArena storage) {
    Activations act;
    act.arena = std::move(storage);
    lay_out(act, geo, n);
    return act;
}

void lay_out(Activations& act, const std::vector<ops::Resolved>& geo, int64_t n) {
    act.n = n;
    act.geo.assign(geo.begin(), geo.end());
    act.offset.resize(geo.size());
    act.aux_offset.resize(geo.size());
    int64_t total = 0, aux_total = 0;
    for (size_t v = 0; v < geo.size(); ++v) {
        act.aux_offset[v] = aux_total;
        aux_total += n * geo[v].aux_per_sample;
        if (geo[v].view_of >= 0) {  // the same elements as an earlier node's output
            act.offset[v] = act.offset[static_cast<size_t>(geo[v].view_of)];
            continue;
        }
        act.offset[v] = total;
        total += (n * geo[v].out.size() + ops::kLineFloats - 1) / ops::kLineFloats * ops::kLineFloats;
    }
    act.arena.resize(static_cast<size_t>(total));
    act.aux.resize(static_cast<size_t>(aux_total));
}

void forward_samples(const Graph& g, Activations& act, int64_t first, int64_t last,
                     const std::vector<ChannelZeroing>* zero, int64_t base, const std::vector<int>* fused) {
    const int64_t count = last - first;
    auto view = [&](int node) {
        const ops::Resolved& r = act.geo[node];
        return ops::View{act.arena.data() + act.offset[node] + first * r.out.size(), count, r.out.c, r.out.l};
    };
    if (fused && fused->size() != g.nodes.size()) throw std::logic_error("forward_samples: fusion plan of another graph");
    for (size_t i = 1; i < g.nodes.size(); ++i) {
        const int relu = fused ? (*fused)[i] : -1;
        if (relu == -2) continue;  // ran inside the node before it
        const int written = relu >= 0 ? relu : static_cast<int>(i);
        const Node& node = g.nodes[i];
        ops::ForwardArgs args{node, act.geo[i], {}, view(written),
                              act.aux.data() + act.aux_offset[i] + first * act.geo[i].aux_per_sample};
        args.relu = relu >= 0;
        for (int p : node.inputs) args.in.push_back(view(p));
        ops::rules(node.kind).forward(args);
        if (!zero) continue;
        for (const ChannelZeroing& z : *zero) {
            if (z.node != written) continue;
            const ops::View out = view(written);
            for (int64_t s = 0; s < count; ++s) {
                const uint8_t* m = z.mask.data() + (z.per_sample ? (base + first + s) * z.channels : 0);
                for (int64_t c = 0; c < out.c; ++c)
                    if (m[c]) std::fill_n(out.data + (s * out.c + c) * out.l, out.l, 0.f);
            }
        }
    }
}

std::vector<int> fused_relus(const Graph& g) {
    const int n = static_cast<int>(g.nodes.size());
    std::vector<int> readers(static_cast<size_t>(n), 0), reader(static_cast<size_t>(n), -1);
    for (int v = 0; v < n; ++v)
        for (int p : g.nodes[v].inputs) {
            ++readers[p];
            reader[p] = v;
        }
    std::vector<int> fused(static_cast<size_t>(n), -1);
    for (int v = 1; v < n; ++v) {
        const int r = reader[v];
        if (!ops::rules(g.nodes[v].kind).forward_relu || v == g.output || readers[v] != 1 ||
            g.nodes[r].kind != OpKind::Relu)
            continue;
        fused[v] = r;
        fused[r] = -2;
    }
    return fused;
}

int activation_node(const Graph& g, int z) {
    int consumers = 0, consumer = -1;
    for (size_t i = 0; i < g.nodes.size(); ++i)
        for (int p : g.nodes[i].inputs)
            if (p == z) {
                ++consumers;
                consumer = static_cast<int>(i);
            }
    // SPEC.md: an activation (the registry's fact) after a filter layer gives its a^l.
    return consumers == 1 && ops::rules(g.nodes[consumer].kind).activation ? consumer : z;
}

int filter_layer_node(const Graph& g, const std::string& name, const std::string& context) {
    int z = -1;
    std::string valid;
    for (size_t i = 0; i < g.nodes.size(); ++i) {
        if (!g.nodes[i].is_filter_layer()) continue;
        if (g.nodes[i].name == name) z = static_cast<int>(i);
        valid += (valid.empty() ? "'" : ", '") + g.nodes[i].name + "'";
    }
    if (z < 0) throw ArgumentError(context + "no filter layer named '" + name + "'; the model has " + valid);
    return z;
}

std::vector<ChannelZeroing> zeroing(const Graph& g, const std::vector<ops::Resolved>& geo,
                                    const std::vector<ZeroFilters>& zero, int64_t n) {
    std::vector<ChannelZeroing> out;
    for (const ZeroFilters& zf : zero) {
        ChannelZeroing cz;
        cz.node = activation_node(g, filter_layer_node(g, zf.layer, "zero_filters: "));
        cz.channels = geo[cz.node].out.c;
        const auto size = static_cast<int64_t>(zf.mask.size());
        if (size != cz.channels && size != n * cz.channels)
            throw ArgumentError("zero_filters of layer '" + zf.layer + "': the mask has " + std::to_string(size) +
                                " entries; expected " + std::to_string(cz.channels) + " (one per filter) or " +
                                std::to_string(n * cz.channels) + " (one row per sample)");
        cz.per_sample = size != cz.channels;
        cz.mask = zf.mask;
        out.push_back(std::move(cz));
    }
    return out;
}

// Samples are independent all the way through the graph, so each thread runs every node on
// its own range of samples, writing disjoint parts of the arena.
void forward(const Graph& g, Activations& act) {
    parallel_ranges(act.n, [&](int64_t first, int64_t last) { forward_samples(g, act, first, last); });
}

std::vector<bool> ancestors(const Graph& g, int start) {
    std::vector<bool> reach;
    ancestors(g, start, reach);
    return reach;
}

namespace {
void mark_ancestors(const Graph& g, const int* starts, size_t n, std::vector<bool>& reach) {
    reach.assign(g.nodes.size(), false);
    int last = 0;
    for (size_t k = 0; k < n; ++k) {
        reach[starts[k]] = true;
        last = std::max(last, starts[k]);
    }
    for (int i = last; i > 0; --i)
        if (reach[i])
            for (int p : g.nodes[i].inputs) reach[p] = true;
}
}  // namespace

void ancestors(const Graph& g, int start, std::vector<bool>& reach) { mark_ancestors(g, &start, 1, reach); }

void ancestors(const Graph& g, const std::vector<int>& starts, std::vector<bool>& reach) {
    mark_ancestors(g, starts.data(), starts.size(), reach);
}

GradBuffer& Cotangents::buffer(int v) {
    GradBuffer& b = grad[static_cast<size_t>(v)];
    if (b.capacity() == 0 && !pool.empty()) {
        b = std::move(pool.back());
        pool.pop_back();
    }
    return b;
}

void Cotangents::release(int v) {
    GradBuffer& b = grad[static_cast<size_t>(v)];
    if (b.capacity() == 0) return;
    pool.push_back(std::move(b));
    b = GradBuffer();
}

namespace {
// Node p's first cotangent: a pooled buffer of `size` floats, uninitialised (grown without
// copying what it held).
GradBuffer& first_cotangent(Cotangents& ct, int p, size_t size) {
    GradBuffer& b = ct.buffer(p);
    if (b.capacity() < size) b.clear();
    b.resize(size);
    return b;
}
}  // namespace

void backward(const Graph& g, const Activations& act, int64_t first, int64_t count, int start, int64_t rep,
              const std::vector<bool>& keep, Cotangents& ct, int stop, bool sweep) {
    ct.rep = rep;
    ct.rows = count * rep;
    ct.grad.resize(g.nodes.size());
    for (size_t i = 0; i < ct.grad.size(); ++i)
        if (static_cast<int>(i) != start) ct.release(static_cast<int>(i));
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
    std::vector<bool>& reach = ct.reach;
    ancestors(g, start, reach);
    // A ReLU whose only reader in this pass is a max-pooling goes into the pooling's rule
    // (BackwardArgs::relu_gate), and its own pass over the rows goes.
    std::vector<int>& readers = ct.readers;
    readers.assign(g.nodes.size(), 0);
    for (int v = 1; v <= start; ++v)
        if (reach[v])
            for (int q : g.nodes[v].inputs) ++readers[q];
    for (int i = start; i > std::max(stop, 0); --i) {
        if (!reach[i] || ct.grad[i].empty()) continue;
        const Node& node = g.nodes[i];
        ops::BackwardArgs args{node, act.geo[i], {}, fwd(i),
                               act.aux.data() + act.aux_offset[i] + first * act.geo[i].aux_per_sample,
                               ops::ConstView(grad(i)), {}, rep};
        const bool may_overwrite = ops::rules(node.kind).backward_writes_all;
        const int relu = node.kind == OpKind::MaxPool ? node.inputs[0] : -1;
        args.relu_gate = relu > stop && g.nodes[relu].kind == OpKind::Relu && readers[relu] == 1 && !keep[relu];
        // In a sweep, a convolution whose output only this pooling reads (through that ReLU or
        // directly) takes the pooling's cotangent rows straight to its input
        // (ops::backward_conv_pooled), and the two rules' passes go.
        const int conv = relu < 0 ? -1 : args.relu_gate ? g.nodes[relu].inputs[0] : relu;
        if (sweep && conv > stop && g.nodes[conv].kind == OpKind::Conv && readers[conv] == 1 && !keep[conv]) {
            const int p = g.nodes[conv].inputs[0];
            GradBuffer& gp = ct.grad[p];
            ops::PooledConvArgs pooled{g.nodes[conv], act.geo[conv], args.aux,
                                       args.relu_gate ? args.out : ops::ConstView{}, args.grad_out, grad(p), rep,
                                       gp.empty()};
            if (ops::backward_conv_pooled_serves(pooled)) {
                if (pooled.overwrite) {  // left uninitialised: the pass sets every element
                    first_cotangent(ct, p, static_cast<size_t>(ct.rows * act.geo[p].out.size()));
                    pooled.grad_in = grad(p);
                }
                ops::backward_conv_pooled(pooled);
                if (!keep[i]) ct.release(i);
                continue;
            }
        }
        // A residual sum passes its cotangent on unchanged (d (x + y) / dx = 1): when the pass
        // keeps no cotangent of the sum, its first input that has none yet takes the sum's
        // buffer itself, and the rule writes the other inputs only. The copy it replaces was 2%
        // of explaining 64 windows of the residual net.
        int handed = -1;
        if (node.kind == OpKind::Add && !keep[i] && node.inputs.size() == 2 && node.inputs[0] != node.inputs[1])
            for (int k = 0; k < 2 && handed < 0; ++k) {
                const int p = node.inputs[static_cast<size_t>(k)];
                if (ct.grad[p].empty() && act.geo[p].out.size() == act.geo[i].out.size()) {
                    std::swap(ct.grad[p], ct.grad[i]);
                    handed = k;
                }
            }
        for (size_t k = 0; k < node.inputs.size(); ++k) {
            int p = node.inputs[k];
            args.in.push_back(fwd(p));
            if (static_cast<int>(k) == handed) {  // holds the cotangent already
                args.grad_in.push_back(ops::View{nullptr, ct.rows, act.geo[p].out.c, act.geo[p].out.l});
                continue;
            }
            if (args.relu_gate) p = g.nodes[p].inputs[0];  // the gradient goes past the ReLU
            if (ct.grad[p].empty()) {
                const auto size = static_cast<size_t>(ct.rows * act.geo[p].out.size());
                GradBuffer& gp = first_cotangent(ct, p, size);
                if (may_overwrite && k < ops::BackwardArgs::kFreshBits) {
                    // Left uninitialised: the rule writes every element. An input read twice
                    // (x + x) is fresh for its first slot only: the buffer is not empty after.
                    args.overwrite |= 1u << k;
                } else {
                    ops::zero_floats(gp.data(), static_cast<int64_t>(size));
                }
            }
            args.grad_in.push_back(grad(p));
        }
        ops::rules(node.kind).backward(args);
        if (!keep[i]) ct.release(i);
    }
}

BandPlan plan_bands(const Graph& g, const std::vector<ops::Resolved>& geo, const std::vector<bool>& reach) {
    const size_t nodes = g.nodes.size();
    const int64_t t_len = geo[0].out.l;
    BandPlan plan;
    plan.width.assign(nodes, 0);
    plan.start.assign(nodes, std::vector<int64_t>(static_cast<size_t>(t_len), 0));
    std::vector<std::vector<ops::Band>> bands(nodes, std::vector<ops::Band>(static_cast<size_t>(t_len)));
    for (int64_t p = 0; p < t_len; ++p) {
        bands[0][p] = {p, p};
        for (size_t v = 1; v < nodes; ++v) {
            if (!reach[v]) continue;
            const Node& node = g.nodes[v];
            ops::BandArgs args{node, geo[v], {}, {}};
            for (int q : node.inputs) {
                args.in.push_back(geo[q].out);
                args.in_band.push_back(bands[q][p]);
            }
            bands[v][p] = ops::rules(node.kind).band(args);
        }
    }
    for (size_t v = 0; v < nodes; ++v) {
        if (v > 0 && !reach[v]) continue;
        const int64_t len = geo[v].out.l;
        int64_t w = 1;
        for (const ops::Band& b : bands[v])
            if (!b.empty()) w = std::max(w, b.hi - b.lo + 1);
        w = std::min(w, len);
        plan.width[v] = w;
        // The window [start, start + w) holds the band and stays inside the tensor.
        for (int64_t p = 0; p < t_len; ++p)
            plan.start[v][p] = bands[v][p].empty() ? 0 : std::clamp<int64_t>(bands[v][p].lo, 0, len - w);
    }
    return plan;
}

void tangent_sums(const Graph& g, const Activations& act, const BandPlan& plan, const std::vector<int>& targets,
                  const std::vector<float*>& out) {
    int last = 0;
    for (int v : targets) last = std::max(last, v);
    std::vector<bool> reach;
    ancestors(g, targets, reach);
    // Readers of each node among the reached ones: a fused ReLU must be its convolution's only one.
    std::vector<int> readers(g.nodes.size(), 0);
    for (int v = 1; v <= last; ++v)
        if (reach[v])
            for (int q : g.nodes[v].inputs) ++readers[q];
    std::vector<int> target_slot(g.nodes.size(), -1);
    for (size_t k = 0; k < targets.size(); ++k) target_slot[targets[k]] = static_cast<int>(k);
    // A ReLU over a convolution or a sum (a residual block's) that nothing else reads is fused
    // into that node's tangent (it keeps each value where the forward output is positive, as
    // the ReLU's rule would), and the ReLU's tangent is then that node's buffer.
    std::vector<bool> gated(g.nodes.size(), false), fused(g.nodes.size(), false);
    for (int v = 1; v <= last; ++v) {
        if (!reach[v] || g.nodes[v].kind != OpKind::Relu) continue;
        const int q = g.nodes[v].inputs[0];
        if (ops::rules(g.nodes[q].kind).tangent_relu_gate && readers[q] == 1 && target_slot[q] < 0 &&
            plan.width[q] == plan.width[v] && plan.start[q] == plan.start[v])
            gated[q] = fused[v] = true;
    }

    // The last node (in order) that reads each node's tangent: after it, the buffer goes back
    // to the thread's pool for a later node (a fused ReLU takes its input's buffer over).
    std::vector<int> last_reader(g.nodes.size(), -1);
    for (int v = 1; v <= last; ++v)
        if (reach[v])
            for (int q : g.nodes[v].inputs) last_reader[q] = v;

    const int64_t c_in = act.geo[0].out.c, t_len = act.geo[0].out.l, tangents = c_in * t_len;
    int64_t per_tangent = 0;
    for (int v = 0; v <= last; ++v)
        if (reach[v]) per_tangent += act.geo[v].out.c * plan.width[v];
    // Chunks of tangents whose buffers (every node's) stay in cache, and enough of them to feed
    // the threads: 256 KiB, a quarter of the L2 of the machines measured. Against 4 MiB chunks
    // (every tangent of a sample in one) the same when caches are warm, and a tenth faster after
    // other work has evicted them (residual net, one window: 0.34 -> 0.30 ms with 64 MiB read
    // before each call), when the first chunk's buffers are all that comes from memory.
    constexpr int64_t kTangentChunkFloats = int64_t{1} << 16;
    int64_t chunk = std::clamp<int64_t>(kTangentChunkFloats / std::max<int64_t>(per_tangent, 1), 1, tangents);
    const int64_t want = (engine_threads() + act.n - 1) / act.n;
    chunk = std::min(chunk, std::max<int64_t>(1, (tangents + want - 1) / want));
    const int64_t chunks = (tangents + chunk - 1) / chunk;

    // Each thread runs a range of (sample, chunk) items, reusing its tangent buffers.
    parallel_ranges(act.n * chunks, [&](int64_t item_begin, int64_t item_end) {
      // Kept per thread between calls (at most a chunk's worth): fresh pages cost more than
      // the arithmetic on small models.
      thread_local std::vector<ops::UninitVector<float>> tan_scratch, pool_scratch;
      thread_local std::vector<std::vector<int64_t>> starts_scratch;
      thread_local std::vector<int64_t> at_scratch;
      // Bound once: in a shared library every thread_local access is a call.
      std::vector<ops::UninitVector<float>>& tan = tan_scratch;
      std::vector<ops::UninitVector<float>>& pool = pool_scratch;
      std::vector<std::vector<int64_t>>& starts = starts_scratch;
      std::vector<int64_t>& at = at_scratch;
      // Node v's tangent buffer: the pool's last one (the most recently given back, likely in
      // cache), grown without copying what it held. Given back after v's last reader ran, so
      // the nodes share a few buffers instead of one each.
      auto take = [&](int v, size_t size) {
          ops::UninitVector<float>& b = tan[v];
          if (b.capacity() == 0 && !pool.empty()) {
              b = std::move(pool.back());
              pool.pop_back();
          }
          if (b.capacity() < size) b.clear();
          b.resize(size);
      };
      auto give_back = [&](int v) {
          if (tan[v].capacity() == 0) return;
          pool.push_back(std::move(tan[v]));
          tan[v] = ops::UninitVector<float>();
      };
      for (size_t v = 0; v < tan.size(); ++v) give_back(static_cast<int>(v));  // from an earlier call
      tan.resize(g.nodes.size());
      starts.resize(g.nodes.size());
      for (int64_t item = item_begin; item < item_end; ++item) {
        const int64_t n = item / chunks, t0 = (item % chunks) * chunk, count = std::min(chunk, tangents - t0);
        auto sample_view = [&](int v) {
            const ops::Resolved& r = act.geo[v];
            return ops::ConstView(ops::View{const_cast<float*>(act.arena.data()) + act.offset[v] + n * r.out.size(), 1,
                                            r.out.c, r.out.l});
        };
        // Tangent t of the chunk is input point (c, p): at c * t_len + p of a filter's saliency
        // (at[t]), at position p = at_p[t]; worked out once per item, not per node.
        at.resize(static_cast<size_t>(2 * count));
        int64_t* const at_p = at.data() + count;
        for (int64_t t = 0; t < count; ++t) {
            at_p[t] = (t0 + t) / c_in;
            at[t] = ((t0 + t) % c_in) * t_len + at_p[t];
        }
        auto starts_of = [&](int v) {
            std::vector<int64_t>& s = starts[v];
            s.resize(static_cast<size_t>(count));
            const int64_t* start = plan.start[v].data();
            for (int64_t t = 0; t < count; ++t) s[t] = start[at_p[t]];
        };
        // The input's tangents: a 1 at (c, p), a band of width 1 at p.
        take(0, static_cast<size_t>(count * c_in));
        ops::assign_zeros(tan[0], static_cast<size_t>(count * c_in));
        for (int64_t t = 0; t < count; ++t) tan[0][t * c_in + (t0 + t) % c_in] = 1.f;
        starts_of(0);
        for (int v = 1; v <= last; ++v) {
            if (!reach[v]) continue;
            const Node& node = g.nodes[v];
            const ops::Resolved& geo = act.geo[v];
            const size_t size = static_cast<size_t>(count * geo.out.c * plan.width[v]);
            starts_of(v);
            if (fused[v]) {
                std::swap(tan[v], tan[node.inputs[0]]);
            } else {
                take(v, size);  // no fill where the rule writes it all
                if (!ops::rules(node.kind).tangent_writes_all) ops::assign_zeros(tan[v], size);
                ops::TangentArgs args{node, geo, {}, sample_view(v),
                                      act.aux.data() + act.aux_offset[v] + n * geo.aux_per_sample,
                                      count, {}, {}, {}, nullptr, 0, nullptr, gated[v]};
                for (int q : node.inputs) {
                    args.in.push_back(sample_view(q));
                    args.t_in.push_back(tan[q].data());
                    args.w_in.push_back(plan.width[q]);
                    args.start_in.push_back(starts[q].data());
                }
                args.t_out = tan[v].data();
                args.w_out = plan.width[v];
                args.start_out = starts[v].data();
                ops::rules(node.kind).tangent(args);
            }
            if (target_slot[v] >= 0) {
                // Each (tangent, filter) row's sum over its band, put in place: tangent (c, p)
                // of the chunk goes to (f, c, p) of the sample. The chunk's tangents of input
                // channel c are every c_in-th, at consecutive positions p: side by side in each
                // filter's row of c_in * t_len, from at[] of the first.
                const int64_t f_n = geo.out.c, w = plan.width[v];
                float* dst = out[target_slot[v]] + n * f_n * tangents;
                for (int64_t c = 0; c < c_in; ++c) {
                    const int64_t first = ((c - t0) % c_in + c_in) % c_in;  // (t0 + first) % c_in == c
                    if (first >= count) continue;
                    ops::band_sums(tan[v].data() + first * f_n * w, (count - first + c_in - 1) / c_in,
                                   c_in * f_n * w, f_n, w, dst + at[first], tangents);
                }
            }
            for (int q : node.inputs)
                if (last_reader[q] == v) give_back(q);
            if (last_reader[v] < 0) give_back(v);
        }
        give_back(0);
        for (int v = 1; v <= last; ++v) give_back(v);
      }
    });
}

}  // namespace tsviz
