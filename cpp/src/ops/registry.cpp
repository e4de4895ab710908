// The op table, made from the op list (ops/op_list.hpp): one entry per IR op kind, in the
// order of OpKind, each gathered from its family file.
#include <algorithm>
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

std::vector<OpRules> make_table() {
    std::vector<OpRules> table = {
#define TSVIZ_TABLE_ENTRY(kind, family) family##_rules(),
        TSVIZ_OP_LIST(TSVIZ_TABLE_ENTRY)
#undef TSVIZ_TABLE_ENTRY
    };
    // A family that returns another op's rules would make rules(kind) answer wrongly.
    for (size_t i = 0; i < table.size(); ++i)
        if (static_cast<size_t>(table[i].kind) != i) throw std::logic_error("op table out of order");
    return table;
}

}  // namespace

OpRules input_rules() { return TSVIZ_RULES(Input, input, infer_input); }

const std::vector<OpRules>& all_rules() {
    static const std::vector<OpRules> table = make_table();
    return table;
}

void prepare(Graph& graph) {
    for (Node& node : graph.nodes)
        if (const auto f = rules(node.kind).prepare) f(node);
}

const OpRules& rules(OpKind kind) {
    const auto& table = all_rules();
    const size_t i = static_cast<size_t>(kind);
    if (i >= table.size()) throw std::logic_error("op kind missing from the registry");
    return table[i];
}

void zero_if_overwrite(const BackwardArgs& a) {
    for (size_t k = 0; k < a.grad_in.size(); ++k) {
        const View& g = a.grad_in[k];
        if (g.data && a.fresh(k)) std::fill(g.data, g.data + g.n * g.c * g.l, 0.f);
    }
}

}  // namespace tsviz::ops

namespace tsviz {
const char* op_kind_name(OpKind kind) { return ops::rules(kind).name; }
}  // namespace tsviz
