// Explanations of one batch (docs/definitions.md: importance, saliency, the percentile filter, the trace):
// filter importance, input saliency of any filter, the output saliency, the percentile
// filter and the trace of an activation, all from one forward pass whose caches the
// backward passes reuse.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tsviz/loss.hpp"

namespace tsviz {

class Model;

// What the target unit a^L is for a model that ends in Softmax (docs/definitions.md): its
// input, the logit (the default), or the probability itself. Python: output="logit" / "prob".
enum class ExplainOutput { Logit, Prob };

struct ExplainOptions {
    // Target unit a^L: empty for the default (argmax for a classifier, 0 for K == 1), one
    // value for every sample, or one value per sample.
    std::vector<int64_t> target;
    // Prob explains the Softmax probability instead of the logit (the Softmax input); only
    // for models that end in Softmax, else an ArgumentError.
    ExplainOutput output = ExplainOutput::Logit;
    // Let NaN and infinity in the input through (IEEE semantics) instead of refusing them
    // with an ArgumentError, as PredictOptions::allow_nonfinite.
    bool allow_nonfinite = false;
    // Explain the loss instead of an output unit (docs/definitions.md, "Influence on the
    // loss"): the backward pass starts from d loss_i / d v_i (tsviz/loss.hpp) at v, the output
    // for mse, the logits (the Softmax input when the model ends in Softmax) for cross_entropy.
    // y_true holds loss_target_columns(loss, K) values per sample, row-major. Excludes target
    // and output.
    std::optional<Loss> loss;
    std::vector<float> y_true;
};

// What Model::input_gradient differentiates, per sample:
//   Output: the target unit a^L, chosen as ExplainOptions::target / output choose it;
//   Loss:   loss_i against y_true (as ExplainOptions::loss);
//   Filter: sum_i a^l[filter, i] of the filter layer `layer`.
enum class GradientOf { Output, Loss, Filter };

struct GradientOptions {
    GradientOf of = GradientOf::Output;
    std::vector<int64_t> target;  // Output
    ExplainOutput output = ExplainOutput::Logit;  // Output
    Loss loss = Loss::Mse;        // Loss
    std::vector<float> y_true;    // Loss
    std::string layer;            // Filter
    int64_t filter = 0;           // Filter
    bool allow_nonfinite = false;
};

// The signed gradient of a batch: what attacks and inverse optimisation step along.
struct InputGradient {
    std::vector<float> output;    // (N, K) the model's output
    std::vector<float> value;     // (N) the differentiated quantity
    std::vector<float> gradient;  // (N, sample shape) d value_i / d x_i, in the model's layout
};

// Filters of one layer zeroed in a forward pass (PredictOptions::zero_filters): a^l[f, :] is
// set to 0 right after it is computed, for every f with mask[f] != 0 (F entries, every sample
// alike) or mask[i * F + f] != 0 (N * F entries, one row per sample).
struct ZeroFilters {
    std::string layer;
    std::vector<uint8_t> mask;
};

// How Explanation::saliency computes: reverse mode pushes one cotangent per filter from the
// layer back to the input; forward mode pushes one tangent per input point up through every
// layer at once, each kept on the band of positions it can reach (the receptive field), and
// gives every filter of every layer in one pass. Both give the same numbers (to float
// rounding). Auto picks by a FLOP count of each, and copies output_saliency() for a layer whose
// activation is the explained unit (a regression head, its one filter asked for).
enum class SaliencyMethod { Auto, Reverse, Forward };

// A boolean mask over one tensor of one sample, (channels, length).
struct TraceMask {
    int64_t channels = 0;
    int64_t length = 0;
    std::vector<uint8_t> mask;
};

class Explanation {
public:
    int64_t n_samples() const;
    int64_t n_outputs() const;
    int64_t input_channels() const;   // C of the input, channels-first
    int64_t input_length() const;     // T

    const std::vector<float>& output() const;        // (N, K) the model's output
    // (N) the unit explained; when explaining the loss, the class index of y_true for
    // cross_entropy and -1 for mse (every output unit enters the loss).
    const std::vector<int64_t>& target() const;
    const std::vector<std::string>& layer_names() const;  // filter layers, topological order

    int64_t n_filters(const std::string& layer) const;
    int64_t layer_length(const std::string& layer) const;       // positions L per filter
    // z^l and a^l (N, F, L). An explanation of more samples than fit in cache may run its
    // forward pass chunk by chunk without keeping the tensors (docs/engine.md); the first call
    // that needs them (these two, saliency, trace) then runs it again into memory the
    // explanation keeps. Thread-safe, as every const method.
    const float* preactivations(const std::string& layer) const;  // z^l (N, F, L)
    const float* activations(const std::string& layer) const;     // a^l (N, F, L)
    const std::string& activation_name(const std::string& layer) const;  // tensor of a^l
    const std::vector<float>& importance_raw(const std::string& layer) const;  // (N, F)
    const std::vector<float>& importance(const std::string& layer) const;      // (N, F)
    // The first-order Taylor criterion of Molchanov et al. (2017), with the target a^L in place
    // of the loss: |sum_i z^l[f, i] * d a^L / d z^l[f, i]| (N, F); its square is their 2019 variant.
    const std::vector<float>& taylor(const std::string& layer) const;
    // (N, F): 1 where the filter is dead on the sample, its a^l 0 at every position (it passes
    // nothing on; docs/definitions.md).
    const std::vector<uint8_t>& dead(const std::string& layer) const;
    const std::vector<float>& output_saliency() const;   // (N, C, T)
    // loss_i of each sample when explaining the loss (ExplainOptions::loss), else empty.
    const std::vector<float>& loss() const;

    // |d sum_i a^l[f, i] / d x| for the given filters (all when empty): (N, F', C, T).
    // Forward mode computes every layer it covers at once and keeps them for later calls.
    std::vector<float> saliency(const std::string& layer, const std::vector<int64_t>& filters = {},
                                SaliencyMethod method = SaliencyMethod::Auto) const;
    // The same into the caller's memory, N * F' * C * T floats: for callers that reuse their
    // buffers (a fresh block of megabytes costs a page fault per 4 KiB on first touch).
    void saliency(const std::string& layer, const std::vector<int64_t>& filters, SaliencyMethod method,
                  float* out) const;

    // importance >= its numpy-style linear-interpolated percentile p, per sample: (N, F).
    std::vector<uint8_t> keep(const std::string& layer, double percentile) const;

    // The points of every tensor from the input up to `name` (a filter layer, whose
    // activation a^l is traced, or any tensor of the graph) that produced
    // name[filter, position] of one sample. Keyed by tensor name; the input is (C, T).
    std::map<std::string, TraceMask> trace(const std::string& name, int64_t filter, int64_t position,
                                           int64_t sample = 0, bool active_only = false) const;

    struct Impl;  // opaque
    explicit Explanation(std::shared_ptr<const Impl> impl);

private:
    std::shared_ptr<const Impl> impl_;
};

}  // namespace tsviz
