// What a loaded Model holds, shared by model.cpp and explain.cpp.
#pragma once

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "engine.hpp"
#include "graph.hpp"
#include "parallel.hpp"
#include "tsviz/model.hpp"

namespace tsviz {

struct Model::Impl {
    Graph graph;
    // The ReLUs that predict, and an explain that keeps no tensors, run inside the convolution
    // or Add before them (fused_relus).
    std::vector<int> relu_fusion;
    InputInfo input;
    std::vector<LayerInfo> layers;
    std::vector<std::string> layer_names;  // layers' names, in order: what explanations hand out
    std::vector<NodeInfo> nodes;
    int64_t n_outputs = 0;
    int64_t n_parameters = 0;
    uint64_t max_memory = 0;  // LoadOptions::max_memory
    // Every weight, bias, scale and shift is finite: set by note_parameters(), at load and
    // whenever a trainer writes parameters.
    bool finite_parameters = true;
    void note_parameters();

    // Checks n samples x of a per-sample shape in the model's layout before anything is
    // allocated for them; returns the length T. ArgumentError for an empty batch or (unless
    // allow_nonfinite) NaN or infinity, naming the first sample and position; ShapeError naming
    // the shape given and the one expected (the declared one when a dim is fixed).
    int64_t check_input(const float* x, int64_t n, const std::vector<int64_t>& sample_shape,
                        bool allow_nonfinite) const;
    // Allocates the arena for samples [start, start + m) of x and copies them in channels-first;
    // ArgumentError, before allocating, when the arena would exceed max_memory.
    Activations load_input(const float* x, int64_t start, int64_t m, int64_t t) const;

    // Every node's resolved shapes at input length t (resolve), made on first use and kept: a
    // call resolves once per length, not once per check (ShapeError for a length the graph
    // cannot take, never kept).
    std::shared_ptr<const std::vector<ops::Resolved>> geometry(int64_t t) const;
    mutable std::map<int64_t, std::shared_ptr<const std::vector<ops::Resolved>>> geometries;  // under plan_mutex

    // Forward-mode saliency plans (explain.cpp), by input length: they depend on the shapes
    // only, and planning cost more than a small net's whole reverse pass. Returns the plan for
    // length t, made by make(plan) on first use.
    std::shared_ptr<const SaliencyPlan> saliency_plan(int64_t t, FunctionRef<void(SaliencyPlan&)> make) const;
    mutable std::mutex plan_mutex;
    mutable std::map<int64_t, std::shared_ptr<const SaliencyPlan>> saliency_plans;

    // The arena of the last explanation released, kept for the next one (data-set analysis
    // explains batch after batch of one size).
    FloatArena take_arena() const;
    void give_arena(FloatArena&& arena) const;
    mutable std::mutex arena_mutex;
    mutable FloatArena spare_arena;
    // Whether the last large explanation's tensors were asked for (Explanation::Impl::tensors):
    // then the next one keeps its tensors as it computes them, instead of streaming its chunks
    // and running the forward pass again when the same request comes.
    mutable std::atomic<bool> keep_tensors{false};
    // Blocks of floats explanations no longer need (forward-mode sums), kept for the next
    // explanation: a fresh block of megabytes is new pages, each faulting on first touch.
    // take_block returns a block of capacity n to 2n, or an empty one.
    std::vector<float> take_block(size_t n) const;
    void give_block(std::vector<float>&& block) const;
    mutable std::vector<std::vector<float>> spare_blocks;  // under arena_mutex
    // Copies samples [start, start + m) of x into the input slot of act, channels-first.
    void fill_input(Activations& act, const float* x, int64_t start, int64_t m, int64_t t) const;
    // Throws ArgumentError when m samples of length t need more activations than max_memory.
    void check_memory(int64_t m, int64_t t) const;

    // Runs body(act, first, m) on samples [first, first + m) of the n samples of x, copied into
    // act, in chunks of `chunk` spread over the engine's threads, each claiming the next chunk
    // when it is free (a thread the system is slow to run takes fewer). Each thread keeps its
    // arena between calls (one per kind of body), so a call on a small batch allocates nothing
    // for its tensors; a short last chunk uses the front of each slot.
    template <class F>
    void for_each_chunk(const float* x, int64_t n, int64_t t, int64_t chunk, F&& body) const {
        const int64_t chunks = (n + chunk - 1) / chunk;
        const int64_t parts = std::min<int64_t>(engine_threads(), chunks);
        std::atomic<int64_t> next{0};
        parallel_for(parts, [&](int64_t) {
            KeptActivations<F> kept(*geometry(t), chunk);
            Activations& act = kept.act;
            for (int64_t i; (i = next.fetch_add(1)) < chunks;) {
                const int64_t first = i * chunk, m = std::min(chunk, n - first);
                act.n = m;
                fill_input(act, x, first, m, t);
                body(act, first, m);
            }
        });
    }
};

}  // namespace tsviz
