// The op table: one line per IR op kind.
#include <stdexcept>

#include "ops/op.hpp"

namespace tsviz::ops {

namespace {

Resolved infer_input(const Node&, const std::vector<Shape>&) { return {}; }
void forward_input(const ForwardArgs&) {}

const std::vector<OpRules> kTable = {
    {OpKind::Input, "Input", infer_input, forward_input},
    {OpKind::Conv, "Conv", infer_conv, forward_conv},
    {OpKind::Dense, "Dense", infer_dense, forward_dense},
    {OpKind::Affine, "Affine", infer_same, forward_affine},
    {OpKind::Relu, "Relu", infer_same, forward_relu},
    {OpKind::LeakyRelu, "LeakyRelu", infer_same, forward_leaky_relu},
    {OpKind::Elu, "Elu", infer_same, forward_elu},
    {OpKind::Sigmoid, "Sigmoid", infer_same, forward_sigmoid},
    {OpKind::Tanh, "Tanh", infer_same, forward_tanh},
    {OpKind::Softmax, "Softmax", infer_same, forward_softmax},
    {OpKind::MaxPool, "MaxPool", infer_max_pool, forward_max_pool},
    {OpKind::AvgPool, "AvgPool", infer_avg_pool, forward_avg_pool},
    {OpKind::GlobalAvgPool, "GlobalAvgPool", infer_global_pool, forward_global_avg_pool},
    {OpKind::GlobalMaxPool, "GlobalMaxPool", infer_global_pool, forward_global_max_pool},
    {OpKind::Add, "Add", infer_add, forward_add},
    {OpKind::Concat, "Concat", infer_concat, forward_concat},
    {OpKind::Flatten, "Flatten", infer_flatten, forward_flatten},
};

}  // namespace

const std::vector<OpRules>& all_rules() { return kTable; }

const OpRules& rules(OpKind kind) {
    for (const auto& r : kTable)
        if (r.kind == kind) return r;
    throw std::logic_error("op kind missing from the registry");
}

}  // namespace tsviz::ops

namespace tsviz {
const char* op_kind_name(OpKind kind) { return ops::rules(kind).name; }
}  // namespace tsviz
