// Runs the IR: one allocation plan per (batch, length), every node's output kept in one
// contiguous float32 arena so that explanations can read any tensor of the graph.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "graph.hpp"
#include "ops/op.hpp"

namespace tsviz {

struct Activations {
    int64_t n = 0;
    std::vector<ops::Resolved> geo;   // per node
    std::vector<int64_t> offset;      // per node, into arena
    std::vector<int64_t> aux_offset;  // per node, into aux
    std::vector<float> arena;
    std::vector<int32_t> aux;

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
Activations allocate(const Graph& g, int64_t n, int64_t t);

// Runs every node after the input, in order; the batch is split over engine_threads().
void forward(const Graph& g, Activations& act);

// Threads the engine uses for a batch: TSVIZ_NUM_THREADS, else the processor count (at most 8).
int engine_threads();

// Calls f(first, last) on up to engine_threads() disjoint ranges covering [0, n), in parallel;
// rethrows the first exception a range threw.
void parallel_ranges(int64_t n, const std::function<void(int64_t, int64_t)>& f);

// Cotangents of a backward pass: `rows` rows per node, row r belonging to forward sample
// r / rep. grad[i] is empty for nodes not reached or not kept.
struct Cotangents {
    int64_t rows = 0;
    int64_t rep = 1;
    std::vector<std::vector<float>> grad;
};

// Batched vector-Jacobian products from node `start` back to the input, for forward samples
// [first, first + count), rep cotangent rows each, seeded with `seed` (count * rep rows of
// start's size). A node's cotangent is freed once propagated unless keep[node].
Cotangents backward(const Graph& g, const Activations& act, int64_t first, int64_t count, int start,
                    std::vector<float> seed, int64_t rep, const std::vector<bool>& keep);

// Nodes that `start` depends on, itself included.
std::vector<bool> ancestors(const Graph& g, int start);

}  // namespace tsviz
