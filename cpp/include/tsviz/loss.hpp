// The losses of fine-tuning and of explanations with respect to the loss (docs/definitions.md,
// "Losses"). One definition, used by the trainer, by explain(wrt loss) and by the bindings.
//   mse:            loss_i = mean_k (v_ik - y_ik)^2,   v: the model's output, y: K targets
//   cross_entropy:  loss_i = -log softmax(v_i)[c_i],   v: the logits (the Softmax input when
//                   the model ends in Softmax, else the output), y: one class index c_i
// A batch's loss is the mean of loss_i over its samples.
#pragma once

#include <cstdint>
#include <string>

namespace tsviz {

enum class Loss { Mse, CrossEntropy };

// "mse" or "cross_entropy"; anything else is an ArgumentError that lists both.
Loss parse_loss(const std::string& name);
const char* loss_name(Loss loss);

// Columns of y per sample: k for mse, 1 (the class index) for cross_entropy.
int64_t loss_target_columns(Loss loss, int64_t k);

// The mean loss of n samples of k values (row-major (n, k)) against y (n, loss_target_columns).
// grad, when not null, receives (n, k) with each sample's own d loss_i / d v_i (not divided by
// n); per_sample, when not null, receives the n values loss_i. Refuses (ArgumentError) a
// non-finite target, or a class index that is not an integer in [0, k), naming the sample.
double batch_loss(Loss loss, const float* values, int64_t n, int64_t k, const float* y, float* grad = nullptr,
                  float* per_sample = nullptr);

}  // namespace tsviz
