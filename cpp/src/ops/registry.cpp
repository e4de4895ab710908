// The op table: one line per IR op kind.
#include <stdexcept>

#include "ops/op.hpp"

namespace tsviz::ops {

namespace {

Resolved infer_input(const Node&, const std::vector<Shape>&) { return {}; }
void forward_input(const ForwardArgs&) {}
void backward_input(const BackwardArgs&) {}
void trace_input(const TraceArgs&) {}
Band band_input(const BandArgs&) { return {}; }
void tangent_input(const TangentArgs&) {}

#define TSVIZ_OP(kind, name, infer, op) \
    {OpKind::kind, name, infer, forward_##op, backward_##op, trace_##op, band_##op, tangent_##op, nullptr}
#define TSVIZ_WEIGHTED_OP(kind, name, infer, op) \
    {OpKind::kind, name, infer, forward_##op, backward_##op, trace_##op, band_##op, tangent_##op, prepare_##op, \
     weight_backward_##op}

const std::vector<OpRules> kTable = {
    TSVIZ_OP(Input, "Input", infer_input, input),
    TSVIZ_WEIGHTED_OP(Conv, "Conv", infer_conv, conv),
    TSVIZ_WEIGHTED_OP(Dense, "Dense", infer_dense, dense),
    TSVIZ_OP(Affine, "Affine", infer_same, affine),
    TSVIZ_OP(Relu, "Relu", infer_same, relu),
    TSVIZ_OP(LeakyRelu, "LeakyRelu", infer_same, leaky_relu),
    TSVIZ_OP(Elu, "Elu", infer_same, elu),
    TSVIZ_OP(Sigmoid, "Sigmoid", infer_same, sigmoid),
    TSVIZ_OP(Tanh, "Tanh", infer_same, tanh),
    TSVIZ_OP(Softmax, "Softmax", infer_same, softmax),
    TSVIZ_OP(MaxPool, "MaxPool", infer_max_pool, max_pool),
    TSVIZ_OP(AvgPool, "AvgPool", infer_avg_pool, avg_pool),
    TSVIZ_OP(GlobalAvgPool, "GlobalAvgPool", infer_global_pool, global_avg_pool),
    TSVIZ_OP(GlobalMaxPool, "GlobalMaxPool", infer_global_pool, global_max_pool),
    TSVIZ_OP(Add, "Add", infer_add, add),
    TSVIZ_OP(Concat, "Concat", infer_concat, concat),
    TSVIZ_OP(Flatten, "Flatten", infer_flatten, flatten),
};

#undef TSVIZ_OP
#undef TSVIZ_WEIGHTED_OP

}  // namespace

const std::vector<OpRules>& all_rules() { return kTable; }

void prepare(Graph& graph) {
    for (Node& node : graph.nodes)
        if (const auto f = rules(node.kind).prepare) f(node);
}

const OpRules& rules(OpKind kind) {
    for (const auto& r : kTable)
        if (r.kind == kind) return r;
    throw std::logic_error("op kind missing from the registry");
}

}  // namespace tsviz::ops

namespace tsviz {
const char* op_kind_name(OpKind kind) { return ops::rules(kind).name; }
}  // namespace tsviz
