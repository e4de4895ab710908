// Passes over the lowered IR graph, run by the importer after the walk (onnx/import.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "graph.hpp"

namespace tsviz::onnx {

// Fuses the node patterns exporters write for one activation (each rule's fused_from: Gelu's
// Erf and tanh forms, x * Sigmoid(x), x * HardSigmoid(x), x * Tanh(Softplus(x))) into that activation,
// so that after a filter layer it is the layer's a^l (SPEC.md). Intermediate results that
// anything else reads keep the pattern unfused, which computes the same values.
void fuse_activations(Graph& g);
// Folds each Affine (BatchNorm, per-channel constant Mul/Add/Sub/Div) into the Conv or Dense
// before it when nothing else reads that layer's raw output.
void fold_affines(Graph& g);
// Removes nodes the output does not depend on, renumbering the rest; `lengths` (one per node)
// follows the renumbering.
void prune_unused(Graph& g, std::vector<int64_t>& lengths);

}  // namespace tsviz::onnx
