// Runs the IR: one allocation plan per (batch, length), every node's output kept in one
// contiguous float32 arena so that explanations can read any tensor of the graph.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "graph.hpp"
#include "tsviz/explain.hpp"
#include "ops/buffer.hpp"
#include "ops/op.hpp"
#include "parallel.hpp"

namespace tsviz {

// Every op writes all of its output: the arena needs no zero fill before a forward pass.
using FloatArena = ops::UninitVector<float>;

struct Activations {
    int64_t n = 0;
    std::vector<ops::Resolved> geo;   // per node
    std::vector<int64_t> offset;      // per node, into arena
    std::vector<int64_t> aux_offset;  // per node, into aux
    FloatArena arena;
    ops::UninitVector<int32_t> aux;

    ops::View view(int node) {
        return {arena.data() + offset[node], n, geo[node].out.c, geo[node].out.l};
    }
    ops::ConstView view(int node) const {
        ops::View v{const_cast<float*>(arena.data()) + offset[node], n, geo[node].out.c,
                    geo[node].out.l};
        return v;
    }
};

// Shape rules of every node for input length t; throws ShapeError.
std::vector<ops::Resolved> resolve(const Graph& g, int64_t t);

// Lays out the arena for n samples. The input slot (node 0) is left for the caller to fill.
// `storage` is memory to reuse (its contents are overwritten), e.g. the arena of an earlier
// explanation: fresh pages cost a fault each on first touch.
Activations allocate(const Graph& g, int64_t n, int64_t t, FloatArena storage = {});
// The same for a geometry resolve() gave (a model keeps one per length: Model::Impl::geometry).
Activations allocate(const std::vector<ops::Resolved>& geo, int64_t n, FloatArena storage = {});
// Lays `act` out for n samples at the geometry, in the memory its vectors hold already.
void lay_out(Activations& act, const std::vector<ops::Resolved>& geo, int64_t n);

// Activations this thread keeps between calls (the arena, the argmax cache, the layout): taken
// from the thread's slot on construction and given back on destruction, so that repeated calls
// on batches of one size allocate nothing for them. Each Kind (the caller's own type) has its
// own slot.
template <class Kind>
struct KeptActivations {
    Activations act;
    KeptActivations(const std::vector<ops::Resolved>& geo, int64_t n) : act(std::move(slot())) { lay_out(act, geo, n); }
    ~KeptActivations() { slot() = std::move(act); }
    KeptActivations(const KeptActivations&) = delete;
    KeptActivations& operator=(const KeptActivations&) = delete;
    static Activations& slot() {
        thread_local Activations kept;
        return kept;
    }
};

// Channels of one node's output set to zero right after the node runs (removing filters
// without editing the model): mask holds `channels` entries for every sample alike, or one row
// of `channels` per sample of the whole batch when per_sample.
struct ChannelZeroing {
    int node = 0;
    int64_t channels = 0;
    bool per_sample = false;
    std::vector<uint8_t> mask;
};

// Runs every node after the input, in order; the batch is split over engine_threads().
void forward(const Graph& g, Activations& act);
// The same for samples [first, last) on the calling thread. `zero`, when given, zeroes its
// channels; slot i of act is sample base + i of the batch its per-sample masks cover.
// `fused`, when given (fused_relus), runs each ReLU it names inside the node before it, which
// then writes the ReLU's output and not its own: for a pass that never reads those nodes' own
// outputs (predict; an explanation that keeps no tensors).
void forward_samples(const Graph& g, Activations& act, int64_t first, int64_t last,
                     const std::vector<ChannelZeroing>* zero = nullptr, int64_t base = 0,
                     const std::vector<int>* fused = nullptr);

// The ReLUs a forward pass may fuse into the node before them (see forward_samples):
// for node i, the ReLU that is its only reader when i's rules honour ForwardArgs::relu and i
// is not the model output, and -1 for a node that runs as it is, or -2 for such a ReLU.
std::vector<int> fused_relus(const Graph& g);

// The node of a^l for the filter layer whose z^l is node z: the elementwise activation that is
// z's only consumer, else z itself (docs/definitions.md).
int activation_node(const Graph& g, int z);

// The node of the filter layer whose output tensor is named `name`; otherwise ArgumentError,
// "<context>no filter layer named '<name>'; the model has '<a>', '<b>', ...".
int filter_layer_node(const Graph& g, const std::string& name, const std::string& context = "");

// The zeroing of PredictOptions::zero_filters for n samples: ArgumentError naming the layer
// when no filter layer has that name or a mask has neither F nor n * F entries.
std::vector<ChannelZeroing> zeroing(const Graph& g, const std::vector<ops::Resolved>& geo,
                                    const std::vector<ZeroFilters>& zero, int64_t n);

// Cotangent buffers whose resize leaves new elements uninitialised, for buffers that a rule
// writes whole (BackwardArgs::overwrite): zeroing megabytes of cotangents that are overwritten
// next was a tenth of a backward pass.
using GradBuffer = ops::UninitVector<float>;

// Cotangents of a backward pass: `rows` rows per node, row r belonging to forward sample
// r / rep. grad[i] is empty for nodes not reached or not kept.
struct Cotangents {
    int64_t rows = 0;
    int64_t rep = 1;
    std::vector<GradBuffer> grad;
    // Buffers given back by nodes whose cotangent has been propagated (or by an earlier pass):
    // a node about to receive a cotangent takes the one given back last, so that a pass
    // touches its live set's buffers, not one per node.
    std::vector<GradBuffer> pool;
    // Node v's slot, given the pool's last buffer (its size and contents stale) when it has
    // none: for a seed or a first cotangent, which then sizes it.
    GradBuffer& buffer(int v);
    // Gives node v's buffer back to the pool; its slot is then empty.
    void release(int v);
    // The pass's bookkeeping, per node: reached from the start, readers within the pass.
    std::vector<bool> reach;
    std::vector<int> readers;
};

// Batched vector-Jacobian products from node `start` back to the input, for forward samples
// [first, first + count), rep cotangent rows each, seeded with ct.grad[start] (count * rep rows
// of start's size). A node's cotangent is given back to ct.pool once propagated unless
// keep[node], and every node's but start's when the pass begins: a Cotangents reused over
// chunks allocates only once. With `stop`
// > 0, only the nodes after it are propagated (ct.grad[stop] then holds its cotangent).
// A saliency sweep (`sweep`) takes the kernels made for many rows per sample sharing their
// argmaxes (ops::backward_conv_pooled) whatever rep is, so that a filter's row gives the same
// result asked alone or with others; other passes (rep 1) keep the rules' own.
void backward(const Graph& g, const Activations& act, int64_t first, int64_t count, int start, int64_t rep,
              const std::vector<bool>& keep, Cotangents& ct, int stop = 0, bool sweep = false);

// Forward mode over banded tangents (ops/op.hpp, TangentArgs): one tangent per input point
// (channel c, position p), tangent index p * C + c. Each tensor's tangents live on a band of
// positions that depends on p only: width[v] wide, from start[v][p].
struct BandPlan {
    std::vector<int64_t> width;               // per node; 0 where not reached
    std::vector<std::vector<int64_t>> start;  // per node, per input position
};
BandPlan plan_bands(const Graph& g, const std::vector<ops::Resolved>& geo, const std::vector<bool>& reach);

// How Explanation::saliency serves a model's layers at one input length: the band plan of the
// forward sweep, and the layers (by index) that the sweep serves when every filter of every
// layer is asked for; the others go in reverse mode.
struct SaliencyPlan {
    BandPlan bands;
    std::vector<bool> forward_layers;
};

// For forward samples [0, act.n) and every node v in `targets`:
//   out[k][((n * C_v + f) * C_in + c) * T + p] = d (sum_i y_v[f, i]) / d x[c, p]   (signed)
// The samples and chunks of tangents are split over the engine's threads.
void tangent_sums(const Graph& g, const Activations& act, const BandPlan& plan, const std::vector<int>& targets,
                  const std::vector<float*>& out);

// Nodes that `start` depends on, itself included.
std::vector<bool> ancestors(const Graph& g, int start);
// The same into `reach` (its memory reused).
void ancestors(const Graph& g, int start, std::vector<bool>& reach);
// Nodes that any of `starts` depends on, themselves included, into `reach`.
void ancestors(const Graph& g, const std::vector<int>& starts, std::vector<bool>& reach);

}  // namespace tsviz
