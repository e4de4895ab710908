// Training the parameters of a model's filter layers (fine-tuning, e.g. after pruning):
// the loss (tsviz/loss.hpp) of a batch and its gradient with respect to every weight and bias,
// from a batched forward pass, a backward pass seeded with the loss gradient, and each
// layer's weight VJP. The optimiser (Adam) runs in Python on the flat parameter vector.
// A layer with a BatchNormalization or another per-channel affine folded in trains the folded
// weights (docs/definitions.md, "Fine-tuning"); each parameter records where it comes from in
// the ONNX file so that trained values can be written back into the same graph.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tsviz/loss.hpp"
#include "tsviz/model.hpp"

namespace tsviz {

// A per-channel affine folded into a layer at import, in the order applied (y = x * scale + shift).
struct FoldedOp {
    std::string onnx_node;
    std::string onnx_op;  // BatchNormalization, Add, Sub, Mul or Div
    std::vector<float> scale;
    std::vector<float> shift;
};

// One filter layer's parameters in the flat vector, and their provenance:
//   weight = weight_scale * op(ONNX tensor weight_source), op = transpose when weight_transposed
//   bias   = bias_scale * (ONNX tensor bias_source), 0 when bias_source is empty
// then the folded affines in turn.
struct ParameterInfo {
    std::string layer;       // the layer's name (LayerInfo::name)
    std::string onnx_node;   // the Conv, Gemm or MatMul node
    std::string onnx_op;
    std::vector<int64_t> weight_shape;  // engine layout: (F, C / group, K) or (F, X)
    int64_t weight_offset = 0;          // into the flat vector
    int64_t bias_offset = 0;            // F values
    int64_t n_filters = 0;
    std::string weight_source;
    std::string bias_source;
    bool weight_transposed = false;
    float weight_scale = 1.f;
    float bias_scale = 1.f;
    std::vector<FoldedOp> folded;
};

// The loss and gradient of a batch, with the model's current parameters.
class Trainer {
public:
    // Takes a copy of the model's graph; the model itself is not changed.
    Trainer(const Model& model, Loss loss);

    Loss loss() const { return loss_; }
    const std::vector<ParameterInfo>& parameters() const { return params_; }
    int64_t size() const { return size_; }  // floats in the flat vector
    std::vector<float> get() const;
    // Sets every parameter from `size()` floats; ArgumentError for a non-finite value.
    void set(const float* values);

    // The mean loss of n samples x (laid out as Model::predict takes them) against targets y
    // (n x loss_target_columns), and when grad is not null its gradient (size() floats,
    // overwritten). The batch is split into engine_threads() parts; each part's partial
    // gradient is summed in part order, so the result depends only on the inputs and the
    // thread count. per_sample, when not null, receives the n losses.
    double gradient(const float* x, const float* y, int64_t n, const std::vector<int64_t>& sample_shape,
                    float* grad, float* per_sample = nullptr) const;

    // The outputs (n x K) with the current parameters.
    std::vector<float> predict(const float* x, int64_t n, const std::vector<int64_t>& sample_shape) const;

    // A model with the current parameters (same graph).
    Model model() const;

private:
    std::shared_ptr<Model::Impl> impl_;
    Loss loss_;
    int loss_node_ = 0;  // the logits for cross-entropy when the graph ends in Softmax
    std::vector<ParameterInfo> params_;
    std::vector<int> nodes_;  // graph node of each entry of params_
    int64_t size_ = 0;
};

}  // namespace tsviz
