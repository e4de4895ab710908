// Lowering of a decoded ONNX model into the engine's IR (graph.hpp): the driver. It reads the
// model's input, checks that every node's op is claimed by a lowering rule (all unsupported
// ones listed at once), walks the nodes in order dispatching each to its rule, and runs the
// graph passes. The rules live beside each op's other rules (ops/*.cpp, listed in the
// registry) and, for ops that only fold constants or change views, in onnx/constant_folding.cpp
// and onnx/views.cpp; the state and helpers they share are onnx/lowering.hpp.
// Folded at the end: Affine (BatchNorm, per-channel Mul/Add/Sub/Div) into the Conv or Dense
// before it; a zero Pad into the Conv after it is done while walking.
#include "onnx/import.hpp"

#include <map>

#include "onnx/graph_passes.hpp"
#include "onnx/lowering.hpp"
#include "onnx/validate.hpp"

namespace tsviz::onnx {

namespace {

// ONNX ops that emit no IR op of their own: constant folding and view changes.
const std::vector<ops::OnnxForm>& importer_forms() {
    static const std::vector<ops::OnnxForm> forms = {
        {"Squeeze", [](Lowering& im) { im.squeeze(false); }},
        {"Unsqueeze", [](Lowering& im) { im.squeeze(true); }},
        {"Transpose", [](Lowering& im) { im.transpose(); }},
        {"Pad", [](Lowering& im) { im.pad(); }, true},
        {"Identity", [](Lowering& im) { im.pass_through(); }, true},
        {"Dropout", [](Lowering& im) { im.pass_through(); }, true},
        {"Cast", [](Lowering& im) { im.cast(); }, true},
        {"Shape", [](Lowering& im) { im.shape_of(); }},
        {"Constant", [](Lowering& im) { im.constant(); }},
        {"ConstantOfShape", [](Lowering& im) { im.constant_of_shape(); }},
    };
    return forms;
}

struct Claim {
    const ops::OnnxForm* form;
    const ops::OpRules* rules;  // null for the importer's own forms
};

// Every ONNX op type a rule claims; a name claimed twice is a bug the registry test catches.
const std::map<std::string, std::vector<Claim>>& claims() {
    static const std::map<std::string, std::vector<Claim>> table = [] {
        std::map<std::string, std::vector<Claim>> t;
        for (const ops::OpRules& r : ops::all_rules())
            for (const ops::OnnxForm& f : r.onnx) t[f.op].push_back({&f, &r});
        for (const ops::OnnxForm& f : importer_forms()) t[f.op].push_back({&f, nullptr});
        return t;
    }();
    return table;
}

bool valid_utf8(const std::string& s) {
    size_t i = 0;
    while (i < s.size()) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        size_t extra = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : (c >> 3) == 0x1E ? 3 : 4;
        if (extra == 4 || (extra > 0 && i + extra >= s.size())) return false;
        for (size_t k = 1; k <= extra; ++k)
            if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
        i += extra + 1;
    }
    return true;
}

class Importer : public Lowering {
public:
    using Lowering::Lowering;
    Graph run();

private:
    // The form that lowers `op` at the model's opset, or null.
    const ops::OnnxForm* form_of(const std::string& op) const {
        auto it = claims().find(op);
        if (it == claims().end()) return nullptr;
        for (const Claim& c : it->second)
            if (opset_ >= c.form->since_opset) return c.form;
        return nullptr;
    }
    void convert(const NodeProto& node) {
        cur_ = &node;
        if (node.output.empty()) fail_node("has no output");
        const ops::OnnxForm* form = form_of(node.op_type);
        // run() listed every unclaimed op before the walk; this cannot be reached.
        if (!form) fail_node("no lowering rule claims this op");
        form->lower(*this);
    }
};

Graph Importer::run() {
    g_.source = source_;
    g_.producer = model_.producer_name + (model_.producer_version.empty() ? "" : " " + model_.producer_version);
    if (!model_.has_graph) fail("not an ONNX model (no graph)");
    for (const auto& o : model_.opset_import)
        if (o.domain.empty() || o.domain == "ai.onnx") opset_ = o.version;
    if (opset_ == 0) fail("the model imports no version of the default ONNX opset");
    if (opset_ < 7 || opset_ > 23)
        fail("opset " + std::to_string(opset_) + " is not supported (supported: 7 to 23)");
    g_.opset = opset_;
    const std::vector<size_t> order = validate_model(model_, source_, opset_, max_memory_);
    const GraphProto& graph = model_.graph;
    if (graph.has_sparse_initializer) fail("sparse initializers are not supported");
    if (graph.node.empty()) fail("the graph has no nodes");
    auto check_name = [&](const std::string& name) {
        if (!valid_utf8(name)) fail("malformed ONNX: a name is not valid UTF-8");
    };
    for (const auto& node : graph.node) {
        check_name(node.name);
        check_name(node.op_type);
        check_name(node.domain);
        for (const auto& n : node.input) check_name(n);
        for (const auto& n : node.output) check_name(n);
    }
    for (const auto& v : graph.input) check_name(v.name);
    for (const auto& v : graph.output) check_name(v.name);
    for (const auto& t : graph.initializer) check_name(t.name);

    for (const auto& init : graph.initializer) {
        Value v;
        v.is_const = true;
        v.k = to_const(init);
        values_[init.name] = std::move(v);
    }
    // Older exporters list initializers among the inputs too; the model input is the rest.
    std::vector<const ValueInfoProto*> inputs;
    for (const auto& in : graph.input)
        if (!values_.count(in.name)) inputs.push_back(&in);
    if (inputs.size() != 1) {
        std::string names;
        for (const auto* in : inputs) names += (names.empty() ? "'" : ", '") + in->name + "'";
        fail("the model has " + std::to_string(inputs.size()) + " inputs" +
             (names.empty() ? "" : " (" + names + ")") + "; TSViz explains models with exactly one input");
    }
    if (graph.output.size() != 1)
        fail("the model has " + std::to_string(graph.output.size()) + " outputs; TSViz explains models with exactly one output");
    const ValueInfoProto& in = *inputs[0];
    g_.input_name = in.name;
    g_.output_name = graph.output[0].name;
    if (in.has_tensor_type && in.elem_type != kFloat)
        fail("input '" + in.name + "' has tensor type " + type_name(in.elem_type) + "; TSViz reads FLOAT (float32) inputs");
    if (!in.has_shape) fail("input '" + in.name + "' declares no shape; expected (N, C, T), (N, T, C) or (N, T)");
    const size_t rank = in.shape.size();
    if (rank != 2 && rank != 3)
        fail("input '" + in.name + "' has rank " + std::to_string(rank) + "; expected (N, C, T), (N, T, C) or (N, T)");
    Node input;
    input.kind = OpKind::Input;
    input.name = in.name;
    input.onnx_node = in.name;
    input.onnx_op = "Input";
    g_.nodes.push_back(input);
    len_.push_back(-1);
    Tensor x;
    x.node = 0;
    auto dim = [&](size_t i) {
        const Dimension& d = in.shape[i];
        if (d.has_value && (d.value < 1 || d.value > kMaxExtent))
            fail("input '" + in.name + "' declares dimension " + std::to_string(i) + " of size " +
                 std::to_string(d.value) + "; expected 1 to " + std::to_string(kMaxExtent) + " or a free dimension");
        return d.has_value ? d.value : int64_t{-1};
    };
    if (rank == 2) {
        layout_ = Layout::NCT;
        g_.layout = InputLayout::NT;
        g_.nodes[0].channels = 1;
        g_.input_channels = 1;
        g_.input_length = dim(1);
        len_[0] = dim(1);
        x.axes = {Ax::N, Ax::L};
    } else {
        in_dims_[0] = dim(1);
        in_dims_[1] = dim(2);
        x.axes = {Ax::N, Ax::In1, Ax::In2};
    }
    values_[in.name].t = x;

    for (const auto& node : graph.node)
        for (const auto& name : node.input)
            if (!name.empty()) ++uses_[name];
    for (const auto& o : graph.output) ++uses_[o.name];

    std::string unsupported;
    int count = 0;
    for (const auto& node : graph.node) {
        const bool default_domain = node.domain.empty() || node.domain == "ai.onnx";
        if (default_domain && form_of(node.op_type)) continue;
        if (++count <= 20) {
            const std::string name = node.name.empty() && !node.output.empty() ? node.output[0] : node.name;
            unsupported += std::string(count > 1 ? "; " : "") + "node '" + name + "' (" +
                           (default_domain ? "" : node.domain + ".") + node.op_type + ", opset " +
                           std::to_string(opset_) + ")";
        }
    }
    if (count)
        fail("unsupported op" + std::string(count > 1 ? "s" : "") + ": " + unsupported +
             (count > 20 ? "; and " + std::to_string(count - 20) + " more" : ""));

    for (size_t i : order) convert(graph.node[i]);

    auto it = values_.find(g_.output_name);
    if (it == values_.end()) fail("output '" + g_.output_name + "' is not produced by any node");
    if (it->second.is_const) fail("output '" + g_.output_name + "' does not depend on the input");
    if (it->second.is_greater) fail("output '" + g_.output_name + "' is a comparison (Greater); TSViz explains float outputs");
    const Tensor& out = it->second.t;
    if (out.pad_begin || out.pad_end) fail(out.pad_node + ": zero padding is supported only directly before a Conv");
    if (layout_ == Layout::Undecided) {
        cur_ = &graph.node.back();
        decide_default();
    }
    if (out.node == 0) fail("output '" + g_.output_name + "' is the input itself");
    g_.output = out.node;
    // An output viewed as (N, T) of a one-channel tensor (a Flatten or Squeeze that only
    // dropped the channel axis) is K = T values: make it (K, 1) like every other output.
    if (out.axes.size() == 2 && kind(out.axes[1]) == Ax::L && channels_of(out) == 1) {
        cur_ = &graph.node.back();
        Node& prev = g_.nodes[out.node];
        if (prev.name == g_.output_name) prev.name += " (before flatten)";
        Node n = make(OpKind::Flatten, out);
        const int flat = add_node(std::move(n));
        g_.nodes[flat].name = g_.output_name;
        g_.nodes[flat].onnx_node = g_.output_name;
        g_.output = flat;
    }
    fuse_activations(g_);
    fold_affines(g_);
    prune_unused(g_, len_);
    return g_;
}

}  // namespace

std::vector<OnnxOp> supported_ops() {
    std::vector<OnnxOp> out;
    for (const auto& [name, list] : claims())
        for (const Claim& c : list)
            out.push_back({name, c.rules ? c.rules->name : "", c.form->keeps_channels,
                           c.rules && c.rules->activation, c.form->since_opset});
    return out;
}

Graph import_model(const ModelProto& model, const std::string& source, const std::string& model_dir,
                   uint64_t max_memory) {
    return Importer(model, source, model_dir, max_memory).run();
}

}  // namespace tsviz::onnx
