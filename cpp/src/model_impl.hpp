// What a loaded Model holds, shared by model.cpp and explain.cpp.
#pragma once

#include <mutex>
#include <vector>

#include "engine.hpp"
#include "graph.hpp"
#include "tsviz/model.hpp"

namespace tsviz {

struct Model::Impl {
    Graph graph;
    InputInfo input;
    std::vector<LayerInfo> layers;
    std::vector<NodeInfo> nodes;
    int64_t n_outputs = 0;
    int64_t n_parameters = 0;
    uint64_t max_memory = 0;  // LoadOptions::max_memory

    // Checks n samples x of a per-sample shape in the model's layout before anything is
    // allocated for them; returns the length T. ArgumentError for an empty batch or (unless
    // allow_nonfinite) NaN or infinity, naming the first sample and position; ShapeError naming
    // the shape given and the one expected (the declared one when a dim is fixed).
    int64_t check_input(const float* x, int64_t n, const std::vector<int64_t>& sample_shape,
                        bool allow_nonfinite) const;
    // Allocates the arena for samples [start, start + m) of x and copies them in channels-first;
    // ArgumentError, before allocating, when the arena would exceed max_memory.
    Activations load_input(const float* x, int64_t start, int64_t m, int64_t t) const;

    // The arena of the last explanation released, kept for the next one (data-set analysis
    // explains batch after batch of one size).
    FloatArena take_arena() const;
    void give_arena(FloatArena&& arena) const;
    mutable std::mutex arena_mutex;
    mutable FloatArena spare_arena;
    // Copies samples [start, start + m) of x into the input slot of act, channels-first.
    void fill_input(Activations& act, const float* x, int64_t start, int64_t m, int64_t t) const;
    // Throws ArgumentError when m samples of length t need more activations than max_memory.
    void check_memory(int64_t m, int64_t t) const;
};

}  // namespace tsviz
