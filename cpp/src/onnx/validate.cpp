// The structural validator. It reads only the decoded protobuf messages (names, attributes,
// tensor headers), never a tensor's values, and runs before the importer decodes or allocates
// anything, so a hostile file is refused at the cost of its own size. Each check names the
// file, the node and op, and what is wrong:
//  - single assignment: every value has one producer (a node output, an initializer or a graph
//    input; an initializer may also be listed as a graph input, as older exporters do);
//  - no dangling inputs, no cycles; nodes out of topological order are put in order;
//  - attributes: only those the op defines at the model's opset, each once; auto_pad other
//    than NOTSET never together with explicit pads; strides, dilations, kernel sizes >= 1,
//    pads >= 0, group >= 1;
//  - tensors: non-negative dims whose product fits, data of exactly that many values, and
//    all weights together within the memory limit (LoadOptions::max_memory).
#include "onnx/validate.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <map>
#include <queue>
#include <set>
#include <unordered_map>
#include <vector>

#include "tsviz/error.hpp"

namespace tsviz::onnx {

namespace {

// The attributes each op supported by the importer defines, by the opset that introduced or
// removed them (ONNX Operators.md): {name, first opset, last opset}.
struct AttrSpec {
    const char* name;
    int64_t since;
    int64_t until;
};
constexpr int64_t kAny = std::numeric_limits<int64_t>::max();

const std::map<std::string, std::vector<AttrSpec>>& attribute_table() {
    static const std::map<std::string, std::vector<AttrSpec>> table = {
        {"Conv", {{"auto_pad", 1, kAny}, {"dilations", 1, kAny}, {"group", 1, kAny}, {"kernel_shape", 1, kAny},
                  {"pads", 1, kAny}, {"strides", 1, kAny}}},
        {"Relu", {}},
        {"LeakyRelu", {{"alpha", 1, kAny}}},
        {"Elu", {{"alpha", 1, kAny}}},
        {"Sigmoid", {}},
        {"Tanh", {}},
        {"Softmax", {{"axis", 1, kAny}}},
        {"MaxPool", {{"auto_pad", 1, kAny}, {"kernel_shape", 1, kAny}, {"pads", 1, kAny}, {"strides", 1, kAny},
                     {"storage_order", 8, kAny}, {"dilations", 10, kAny}, {"ceil_mode", 10, kAny}}},
        {"AveragePool", {{"auto_pad", 1, kAny}, {"kernel_shape", 1, kAny}, {"pads", 1, kAny}, {"strides", 1, kAny},
                         {"count_include_pad", 7, kAny}, {"ceil_mode", 10, kAny}, {"dilations", 19, kAny}}},
        {"GlobalAveragePool", {}},
        {"GlobalMaxPool", {}},
        {"ReduceMean", {{"axes", 1, 17}, {"keepdims", 1, kAny}, {"noop_with_empty_axes", 18, kAny}}},
        {"ReduceMax", {{"axes", 1, 17}, {"keepdims", 1, kAny}, {"noop_with_empty_axes", 18, kAny}}},
        {"BatchNormalization", {{"epsilon", 1, kAny}, {"momentum", 1, kAny}, {"spatial", 1, 8},
                                {"training_mode", 14, kAny}}},
        {"Gemm", {{"alpha", 1, kAny}, {"beta", 1, kAny}, {"transA", 1, kAny}, {"transB", 1, kAny},
                  {"broadcast", 1, 6}}},
        {"MatMul", {}},
        {"Flatten", {{"axis", 1, kAny}}},
        {"Reshape", {{"allowzero", 14, kAny}}},
        {"Squeeze", {{"axes", 1, 12}}},
        {"Unsqueeze", {{"axes", 1, 12}}},
        {"Transpose", {{"perm", 1, kAny}}},
        {"Add", {}},
        {"Sub", {}},
        {"Mul", {}},
        {"Div", {}},
        {"Neg", {}},
        {"Pow", {}},
        {"Concat", {{"axis", 1, kAny}}},
        {"Dropout", {{"ratio", 1, 11}, {"seed", 12, kAny}}},
        {"Identity", {}},
        {"Pad", {{"mode", 1, kAny}, {"pads", 1, 10}, {"value", 1, 10}}},
        {"Shape", {{"start", 15, kAny}, {"end", 15, kAny}}},
        {"Gather", {{"axis", 1, kAny}}},
        {"Cast", {{"to", 1, kAny}, {"saturate", 19, kAny}}},
        {"Slice", {{"starts", 1, 9}, {"ends", 1, 9}, {"axes", 1, 9}}},
        {"Constant", {{"value", 1, kAny}, {"sparse_value", 11, kAny}, {"value_float", 12, kAny},
                      {"value_floats", 12, kAny}, {"value_int", 12, kAny}, {"value_ints", 12, kAny},
                      {"value_string", 12, kAny}, {"value_strings", 12, kAny}}},
        {"ConstantOfShape", {{"value", 9, kAny}}},
    };
    return table;
}

int64_t element_size(int32_t type) {
    switch (type) {
        case kFloat: case kInt32: case kUint32: return 4;
        case kDouble: case kInt64: case kUint64: return 8;
        case kInt8: case kUint8: case kBool: return 1;
        case kInt16: case kUint16: case kFloat16: case kBfloat16: return 2;
        default: return 0;
    }
}

std::string dims_text(const std::vector<int64_t>& v) {
    constexpr size_t kShown = 16;  // a hostile tensor may have millions of dims
    std::string s = "(";
    for (size_t i = 0; i < v.size() && i < kShown; ++i) s += (i ? ", " : "") + std::to_string(v[i]);
    if (v.size() > kShown) s += ", ... " + std::to_string(v.size() - kShown) + " more";
    return s + (v.size() == 1 ? ",)" : ")");
}

class Validator {
public:
    Validator(const ModelProto& model, const std::string& source, int64_t opset, uint64_t max_memory)
        : graph_(model.graph), source_(source), opset_(opset), max_memory_(max_memory) {}

    std::vector<size_t> run() {
        check_tensors();
        check_single_assignment();
        check_attributes();
        return topological_order();
    }

private:
    const GraphProto& graph_;
    const std::string& source_;
    int64_t opset_;
    uint64_t max_memory_;
    double weight_bytes_ = 0;
    // Who produces each value: -1 an initializer or a graph input, else the node index.
    std::unordered_map<std::string, long> producer_;

    [[noreturn]] void fail(const std::string& what) const { throw ModelError(source_ + ": " + what); }

    static std::string node_text(const NodeProto& n) {
        const std::string name = n.name.empty() && !n.output.empty() ? n.output[0] : n.name;
        return "node '" + name + "' (" + n.op_type + ")";
    }

    // One tensor's header: its dims multiply out to the number of values it holds, and the
    // decoded values (one double each in the importer) count against the memory limit.
    void check_tensor(const TensorProto& t, const std::string& where) {
        const std::string what = where + "tensor '" + t.name + "'";
        int64_t count = 1;
        for (int64_t d : t.dims) {
            if (d < 0) fail(what + ": negative dimension " + std::to_string(d));
            if (d != 0 && count > std::numeric_limits<int32_t>::max() / d)
                fail(what + ": its dims multiply out to more than 2^31 values");
            count *= d;
        }
        const int64_t elem = element_size(t.data_type);
        if (t.data_location == 1) {
            // External data: its length is checked against the file by the importer; only the
            // memory it will take is counted here.
        } else if (!t.raw_data.empty()) {
            if (elem && static_cast<int64_t>(t.raw_data.size()) != count * elem)
                fail(what + ": raw data of " + std::to_string(t.raw_data.size()) + " bytes does not fit shape " +
                     dims_text(t.dims) + " (" + std::to_string(count) + " values of " + std::to_string(elem) +
                     " bytes): the dims do not multiply out to the data");
        } else {
            const size_t held = t.float_data.size() + t.int32_data.size() + t.int64_data.size() +
                                t.double_data.size() + t.uint64_data.size();
            if (static_cast<int64_t>(held) != count && !(held == 0 && count == 0))
                fail(what + ": holds " + std::to_string(held) + " values; its shape " + dims_text(t.dims) +
                     " needs " + std::to_string(count));
        }
        weight_bytes_ += static_cast<double>(count) * sizeof(double);
        if (weight_bytes_ > static_cast<double>(max_memory_))
            fail("the weights need more than the memory limit of " + std::to_string(max_memory_ >> 20) +
                 " MiB (max_memory); " + what + " alone holds " + std::to_string(count) + " values");
    }

    void check_tensors() {
        for (const auto& t : graph_.initializer) check_tensor(t, "");
        for (const auto& n : graph_.node)
            for (const auto& a : n.attribute)
                for (const auto& t : a.t) check_tensor(t, node_text(n) + ": attribute '" + a.name + "': ");
    }

    void check_single_assignment() {
        std::set<std::string> initializers;
        for (const auto& t : graph_.initializer) {
            if (t.name.empty()) fail("an initializer has no name");
            if (!initializers.insert(t.name).second)
                fail("initializer '" + t.name + "' is defined twice; ONNX values are assigned once");
            producer_[t.name] = -1;
        }
        std::set<std::string> inputs;
        for (const auto& in : graph_.input) {
            if (!inputs.insert(in.name).second) fail("graph input '" + in.name + "' is declared twice");
            producer_[in.name] = -1;  // an input that is also an initializer: its default value
        }
        for (size_t i = 0; i < graph_.node.size(); ++i) {
            const NodeProto& n = graph_.node[i];
            for (const std::string& out : n.output) {
                if (out.empty()) continue;  // an optional output left out
                auto it = producer_.find(out);
                if (it != producer_.end()) {
                    if (it->second >= 0)
                        fail(node_text(n) + ": output '" + out + "' is already produced by " +
                             node_text(graph_.node[static_cast<size_t>(it->second)]) +
                             "; ONNX values are assigned once");
                    fail(node_text(n) + ": output '" + out + "' is also " +
                         (initializers.count(out) ? "an initializer" : "a graph input") +
                         "; ONNX values are assigned once");
                }
                producer_[out] = static_cast<long>(i);
            }
        }
        for (const auto& n : graph_.node)
            for (const std::string& in : n.input)
                if (!in.empty() && !producer_.count(in))
                    fail(node_text(n) + ": input '" + in + "' is not produced by any node, initializer or graph input");
        for (const auto& o : graph_.output)
            if (!producer_.count(o.name)) fail("output '" + o.name + "' is not produced by any node");
    }

    void check_window(const NodeProto& n) {
        const AttributeProto* auto_pad = nullptr;
        const AttributeProto* pads = nullptr;
        for (const auto& a : n.attribute) {
            if (a.name == "auto_pad") auto_pad = &a;
            if (a.name == "pads") pads = &a;
            const bool positive = a.name == "strides" || a.name == "dilations" || a.name == "kernel_shape";
            if (positive)
                for (int64_t v : a.ints)
                    if (v < 1)
                        fail(node_text(n) + ": attribute '" + a.name + "' has the value " + std::to_string(v) +
                             "; each entry must be >= 1");
            if (a.name == "pads")
                for (int64_t v : a.ints)
                    if (v < 0) fail(node_text(n) + ": attribute 'pads' has the value " + std::to_string(v) + "; padding must be >= 0");
            if (a.name == "group" && a.i < 1)
                fail(node_text(n) + ": attribute 'group' is " + std::to_string(a.i) + "; it must be >= 1");
        }
        // A pooling window entirely in the padding has no value to take (MaxPool gave -inf,
        // AveragePool 0/0): ONNX Runtime refuses pads that are not smaller than the kernel.
        if (n.op_type != "Conv" && pads) {
            const AttributeProto* ks = nullptr;
            for (const auto& a : n.attribute)
                if (a.name == "kernel_shape") ks = &a;
            const size_t sp = ks ? ks->ints.size() : 0;
            if (ks && pads->ints.size() == 2 * sp)
                for (size_t i = 0; i < 2 * sp; ++i)
                    if (pads->ints[i] >= ks->ints[i % sp])
                        fail(node_text(n) + ": attribute 'pads' " + dims_text(pads->ints) +
                             " pads by as much as the kernel " + dims_text(ks->ints) +
                             "; a window would lie entirely in the padding");
        }
        // ONNX: "pads ... cannot be used simultaneously with auto_pad".
        if (auto_pad && pads && !auto_pad->s.empty() && auto_pad->s != "NOTSET")
            fail(node_text(n) + ": attribute 'auto_pad' is '" + auto_pad->s +
                 "' and explicit 'pads' are given too; ONNX allows one or the other");
    }

    void check_attributes() {
        const auto& table = attribute_table();
        for (const auto& n : graph_.node) {
            auto spec = table.find(n.op_type);
            const bool default_domain = n.domain.empty() || n.domain == "ai.onnx";
            if (!default_domain || spec == table.end()) continue;  // refused as unsupported later
            std::set<std::string> seen;
            for (const auto& a : n.attribute) {
                if (!seen.insert(a.name).second)
                    fail(node_text(n) + ": attribute '" + a.name + "' is given twice");
                const auto& defined = spec->second;
                auto it = std::find_if(defined.begin(), defined.end(),
                                       [&](const AttrSpec& s) { return a.name == s.name; });
                if (it == defined.end() || opset_ < it->since || opset_ > it->until) {
                    std::string valid;
                    for (const AttrSpec& s : defined)
                        if (opset_ >= s.since && opset_ <= s.until) valid += (valid.empty() ? "" : ", ") + std::string(s.name);
                    fail(node_text(n) + ": attribute '" + a.name + "' is not defined for " + n.op_type +
                         " at opset " + std::to_string(opset_) +
                         (valid.empty() ? " (it takes no attributes)" : " (it takes " + valid + ")"));
                }
            }
            if (n.op_type == "Conv" || n.op_type == "MaxPool" || n.op_type == "AveragePool") check_window(n);
        }
    }

    // Kahn's algorithm, taking the lowest-numbered ready node first, so that a graph already in
    // order keeps its order; what is left over lies on or behind a cycle.
    std::vector<size_t> topological_order() const {
        const size_t count = graph_.node.size();
        std::vector<std::vector<size_t>> consumers(count);
        std::vector<size_t> waiting(count, 0);
        for (size_t i = 0; i < count; ++i) {
            std::set<long> from;
            for (const std::string& in : graph_.node[i].input) {
                if (in.empty()) continue;
                const long p = producer_.at(in);
                if (p >= 0) from.insert(p);
            }
            for (long p : from) consumers[static_cast<size_t>(p)].push_back(i);
            waiting[i] = from.size();
        }
        std::priority_queue<size_t, std::vector<size_t>, std::greater<size_t>> ready;
        for (size_t i = 0; i < count; ++i)
            if (waiting[i] == 0) ready.push(i);
        std::vector<size_t> order;
        while (!ready.empty()) {
            const size_t i = ready.top();
            ready.pop();
            order.push_back(i);
            for (size_t c : consumers[i])
                if (--waiting[c] == 0) ready.push(c);
        }
        if (order.size() == count) return order;
        // Walk back from a node still waiting through producers still waiting until one repeats.
        size_t at = 0;
        while (waiting[at] == 0) ++at;
        std::vector<size_t> path;
        std::vector<long> seen_at(count, -1);
        while (seen_at[at] < 0) {
            seen_at[at] = static_cast<long>(path.size());
            path.push_back(at);
            for (const std::string& in : graph_.node[at].input) {
                if (in.empty()) continue;
                const long p = producer_.at(in);
                if (p >= 0 && waiting[static_cast<size_t>(p)] > 0) {
                    at = static_cast<size_t>(p);
                    break;
                }
            }
        }
        // path[k + 1] produces an input of path[k]: read backwards it is the data flow.
        std::string cycle = node_text(graph_.node[at]) + " -> ";
        for (size_t k = path.size(); k-- > static_cast<size_t>(seen_at[at]) + 1;)
            cycle += node_text(graph_.node[path[k]]) + " -> ";
        fail("the graph has a cycle: " + cycle + node_text(graph_.node[at]));
    }
};

}  // namespace

std::vector<size_t> validate_model(const ModelProto& model, const std::string& source, int64_t opset,
                                   uint64_t max_memory) {
    return Validator(model, source, opset, max_memory).run();
}

}  // namespace tsviz::onnx
