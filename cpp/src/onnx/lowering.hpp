// The state and helpers of the ONNX lowering (the walk that onnx/import.cpp drives), shared by
// the importer's own files and the lowering rules of each op family (ops/*.cpp).
//
// Every ONNX value is one of two things while we walk the nodes in order:
//  - a constant (initializers, Constant nodes and everything computed from them alone,
//    including the shape arithmetic exporters put around Reshape: Shape, Gather, Cast, Slice,
//    Concat, Unsqueeze), folded here; shape entries that depend on the batch are symbolic;
//  - a tensor: an IR node plus a view that says which ONNX axis is the batch (N), the
//    channels (C), the time (L), or a size-1 axis. Unsqueeze, Squeeze, Transpose and Reshapes
//    that only move size-1 axes change the view and emit nothing, which is how the 2-D
//    convolutions with 1 x k kernels of a Keras export become 1-D layers.
// The model input's two axes stay undecided (In1, In2) until an op that needs to know which
// is the channel axis (a Conv, a pooling, a BatchNormalization) decides the layout: NCT or NTC.
// A channels-last model's leading Transpose is thereby absorbed.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <unordered_map>
#include <vector>

#include "graph.hpp"
#include "onnx/proto.hpp"
#include "ops/op.hpp"
#include "tsviz/error.hpp"

namespace tsviz::onnx {

enum class Ax : uint8_t { N, C, L, One, In1, In2 };

// Symbolic entries of a constant: the batch size, or something unknown at import.
enum : uint8_t { kKnown = 0, kBatch = 1, kUnknown = 2 };

struct Const {
    std::vector<int64_t> dims;
    std::vector<double> v;
    std::vector<uint8_t> sym;  // empty when every entry is known
    int32_t type = kFloat;
    int64_t count() const { return static_cast<int64_t>(v.size()); }
    bool known(size_t i) const { return sym.empty() || sym[i] == kKnown; }
    bool all_known() const {
        return std::all_of(sym.begin(), sym.end(), [](uint8_t s) { return s == kKnown; });
    }
};

struct Tensor {
    int node = -1;
    std::vector<Ax> axes;
    int64_t pad_begin = 0, pad_end = 0;  // pending zero padding of the time axis
    std::string pad_node;                // the Pad node it came from, for messages
};

struct Value {
    bool is_const = false;
    Const k;
    Tensor t;
    // A comparison t > threshold (ONNX Greater of a tensor and a constant), which only a Where
    // may read (PyTorch's Softplus threshold, ops/activation.cpp).
    bool is_greater = false;
    double threshold = 0;
};

enum class Layout { Undecided, NCT, NTC };

const char* type_name(int32_t t);
bool is_int_type(int32_t t);
// A shape or list of ints for a message; a hostile file can make one of millions of entries,
// so only the first few are spelled out (a fuzz finding: building such a message took minutes).
std::string join(const std::vector<int64_t>& v);
// Values are folded in double; narrowing one that float cannot hold is undefined behaviour
// in C++, where IEEE (and ONNX Runtime) give an infinity.
float to_f32(double v);

// Sizes, pads, strides and kernels beyond this are refused: far beyond any time series, and
// small enough that no sum or product of a few of them overflows int64 (or int, once stored).
constexpr int64_t kMaxExtent = int64_t{1} << 24;

class Lowering {
public:
    Lowering(const ModelProto& model, std::string source, std::string model_dir, uint64_t max_memory)
        : model_(model), source_(std::move(source)), dir_(std::move(model_dir)), max_memory_(max_memory) {}

    // The state of the walk, read and written by the lowering rules.
    const ModelProto& model_;
    std::string source_;
    std::string dir_;
    uint64_t max_memory_;
    Graph g_;
    std::vector<int64_t> len_;  // length of every IR node at the declared input length; -1 unknown
    std::unordered_map<std::string, Value> values_;
    std::unordered_map<std::string, int> uses_;  // how many node inputs read each name
    Layout layout_ = Layout::Undecided;
    int64_t in_dims_[2] = {-1, -1};  // declared sizes of input axes 1 and 2 (rank-3 input)
    int64_t opset_ = 0;
    int64_t const_values_ = 0;
    const NodeProto* cur_ = nullptr;

    [[noreturn]] void fail(const std::string& what) const {
        throw ModelError(source_ + ": " + what);
    }
    std::string where() const {
        std::string name = cur_->name.empty() && !cur_->output.empty() ? cur_->output[0]
                                                                        : cur_->name;
        return "node '" + name + "' (" + cur_->op_type + ")";
    }
    [[noreturn]] void fail_node(const std::string& what) const { fail(where() + ": " + what); }

    // --- attributes -------------------------------------------------------------------------
    const AttributeProto* attr(const char* name) const {
        for (const auto& a : cur_->attribute)
            if (a.name == name) return &a;
        return nullptr;
    }
    void expect_type(const AttributeProto& a, int32_t type, const char* what) const {
        if (!a.ref_attr_name.empty())
            fail_node("attribute '" + a.name + "' refers to a function attribute; not supported");
        if (a.type != 0 && a.type != type)
            fail_node("attribute '" + a.name + "': expected " + what);
    }
    int64_t attr_int(const char* name, int64_t def) const {
        const AttributeProto* a = attr(name);
        if (!a) return def;
        expect_type(*a, kAttrInt, "an int");
        return a->i;
    }
    float attr_float(const char* name, float def) const {
        const AttributeProto* a = attr(name);
        if (!a) return def;
        expect_type(*a, kAttrFloat, "a float");
        return a->f;
    }
    std::string attr_string(const char* name, const std::string& def) const {
        const AttributeProto* a = attr(name);
        if (!a) return def;
        expect_type(*a, kAttrString, "a string");
        return a->s;
    }
    bool attr_ints(const char* name, std::vector<int64_t>& out) const {
        const AttributeProto* a = attr(name);
        if (!a) return false;
        expect_type(*a, kAttrInts, "a list of ints");
        out = a->ints;
        return true;
    }
    void expect_attr(const char* name, int64_t want, int64_t def) const {
        const int64_t got = attr_int(name, def);
        if (got != want)
            fail_node("attribute '" + std::string(name) + "': expected " + std::to_string(want) +
                      ", got " + std::to_string(got));
    }

    // --- values -----------------------------------------------------------------------------
    bool has_input(size_t i) const { return cur_->input.size() > i && !cur_->input[i].empty(); }
    const Value& value(const std::string& name) const {
        auto it = values_.find(name);
        if (it == values_.end()) fail_node("input '" + name + "' is not produced by any node");
        return it->second;
    }
    const Value& input(size_t i) const {
        if (!has_input(i)) fail_node("missing input " + std::to_string(i));
        return value(cur_->input[i]);
    }
    const Const& const_input(size_t i, const char* what) const {
        const Value& v = input(i);
        if (!v.is_const)
            fail_node(std::string(what) + " (input '" + cur_->input[i] +
                      "') must be a constant; it is computed from the model input");
        return v.k;
    }
    // A tensor operand; pending padding is only allowed where `allow_pad` (a Conv).
    Tensor tensor_input(size_t i, bool allow_pad = false) const {
        const Value& v = input(i);
        if (v.is_const) fail_node("input '" + cur_->input[i] + "' is a constant; expected a tensor computed from the model input");
        if (v.is_greater)
            fail_node("input '" + cur_->input[i] + "' is a comparison (Greater); only Where(Greater(x, c), x, Softplus(x)) is supported");
        if (!allow_pad && (v.t.pad_begin || v.t.pad_end))
            fail(v.t.pad_node + ": zero padding is supported only directly before a Conv; it feeds " +
                 where());
        return v.t;
    }
    void set_output(size_t i, Value v) {
        if (cur_->output.size() <= i || cur_->output[i].empty()) return;
        values_[cur_->output[i]] = std::move(v);
    }
    void set_tensor(Tensor t, size_t i = 0) {
        Value v;
        v.t = std::move(t);
        set_output(i, std::move(v));
    }
    void set_const(Const k, size_t i = 0) {
        Value v;
        v.is_const = true;
        v.k = std::move(k);
        set_output(i, std::move(v));
    }
    void refuse_extra_outputs(size_t keep) const {
        for (size_t i = keep; i < cur_->output.size(); ++i)
            if (!cur_->output[i].empty() && uses_.count(cur_->output[i]))
                fail_node("output " + std::to_string(i) + " ('" + cur_->output[i] +
                          "') is used; only output 0 is supported");
    }
    std::vector<int64_t> const_ints(const Const& k, const char* what) const {
        std::vector<int64_t> out;
        for (int64_t i = 0; i < k.count(); ++i) {
            if (!k.known(i)) fail_node(std::string(what) + " depends on the batch size");
            out.push_back(to_int(k.v[i], what));
        }
        return out;
    }
    // An integer read from a folded constant: NaN is refused, and values are saturated at
    // +-2^62 (exporters write INT64_MAX for "to the end"), so later arithmetic cannot overflow.
    int64_t to_int(double v, const std::string& what) const {
        if (std::isnan(v)) fail_node(what + " holds NaN where an integer is expected");
        constexpr double lim = 4611686018427387904.0;  // 2^62
        if (v >= lim) return int64_t{1} << 62;
        if (v <= -lim) return -(int64_t{1} << 62);
        return static_cast<int64_t>(v);
    }
    // a * b for sizes, refusing a product beyond kMaxExtent^2 rather than overflowing.
    int64_t checked_mul(int64_t a, int64_t b, const std::string& what) const {
        if (a != 0 && (std::llabs(b) > kMaxExtent * kMaxExtent / std::llabs(a)))
            fail_node(what + " is too large");
        return a * b;
    }
    // Every constant folded at import counts against the memory limit, as the weights do.
    void reserve_const(int64_t count) {
        const_values_ += count;
        if (count > std::numeric_limits<int32_t>::max() ||
            static_cast<double>(const_values_) * sizeof(double) > static_cast<double>(max_memory_))
            fail_node("folding constants would take more than the memory limit of " +
                      std::to_string(max_memory_ >> 20) + " MiB (max_memory)");
    }
    // Weights and other constant operands of a float op must be FLOAT, as the op's input is:
    // ONNX types X and W alike, and no dequantisation (DequantizeLinear) is implemented.
    const Const& float_input(size_t i, const char* what) const {
        const Const& k = const_input(i, what);
        if (k.type != kFloat)
            fail_node(std::string(what) + " ('" + cur_->input[i] + "') has type " + type_name(k.type) + "; " +
                      cur_->op_type + " on a FLOAT input takes FLOAT " +
                      "weights, and TSViz implements no dequantisation of integer weights");
        return k;
    }
    std::vector<float> floats(const Const& k) const {
        std::vector<float> out(k.v.size());
        std::transform(k.v.begin(), k.v.end(), out.begin(), to_f32);
        return out;
    }

    // Axes from the attribute (older opsets) or from input `index` (newer ones).
    bool axes_arg(size_t index, std::vector<int64_t>& axes) const {
        if (attr_ints("axes", axes)) return true;
        if (has_input(index)) {
            axes = const_ints(const_input(index, "axes"), "axes");
            return true;
        }
        return false;
    }
    void mark_axis(std::vector<bool>& marks, int64_t i) const {
        if (marks[static_cast<size_t>(i)]) fail_node("axis " + std::to_string(i) + " is listed twice");
        marks[static_cast<size_t>(i)] = true;
    }
    int64_t norm_axis(int64_t a, int64_t rank) const {
        if (a < -rank || a >= rank)
            fail_node("axis " + std::to_string(a) + " is out of range for rank " + std::to_string(rank));
        return a < 0 ? a + rank : a;
    }

    // --- layout and sizes -------------------------------------------------------------------
    Ax kind(Ax a) const {
        if (a != Ax::In1 && a != Ax::In2) return a;
        if (layout_ == Layout::Undecided) return a;
        const bool first_is_channel = layout_ == Layout::NCT;
        return (a == Ax::In1) == first_is_channel ? Ax::C : Ax::L;
    }
    void decide(Layout layout);
    // Decides the layout, if still open, from the fact that axis `a` is the channel axis
    // (channel = true) or the time axis.
    void bind(Ax a, bool channel) {
        if (a == Ax::In1) decide(channel ? Layout::NCT : Layout::NTC);
        if (a == Ax::In2) decide(channel ? Layout::NTC : Layout::NCT);
    }
    void decide_default() { decide(Layout::NCT); }
    int64_t size_of(const Tensor& t, size_t i) const {
        switch (kind(t.axes[i])) {
            case Ax::N: return -1;
            case Ax::One: return 1;
            case Ax::C: return g_.nodes[t.node].channels;
            case Ax::L: return len_[t.node];
            case Ax::In1: return in_dims_[0];
            case Ax::In2: return in_dims_[1];
        }
        return -1;
    }
    int channels_of(const Tensor& t) const { return g_.nodes[t.node].channels; }

    int add_node(Node node);
    Node make(OpKind kind, const Tensor& from) {
        Node n;
        n.kind = kind;
        n.inputs = {from.node};
        if (from.node == 0 && layout_ == Layout::Undecided) decide_default();
        n.channels = channels_of(from);
        return n;
    }

    size_t bind_spatial(const Tensor& t, const std::vector<int64_t>& kernel);
    void window_attrs(Node& n, const std::vector<int64_t>& kernel, size_t time_axis, size_t rank,
                      bool has_dilations);

    // --- constants --------------------------------------------------------------------------
    Const to_const(const TensorProto& t) const;
    std::string read_external(const TensorProto& t, const std::string& what) const;
    Const fold_binary(const Const& a, const Const& b, const std::string& op);
    std::vector<int64_t> broadcast_dims(const std::vector<int64_t>& a, const std::vector<int64_t>& b) const;

    // --- shape arithmetic and views (onnx/constant_folding.cpp, onnx/views.cpp) -------------
    void reshape_to(const Tensor& t, std::vector<int64_t> target, const std::vector<uint8_t>& sym);
    void squeeze(bool un);
    void transpose();
    void pad();
    void pass_through();
    void shape_of();
    void gather();
    void cast();
    // Slice's starts, ends, axes and steps (attributes before opset 10, constant inputs from 10),
    // checked to agree in length; axes default to 0, 1, ... and steps to 1.
    void slice_args(std::vector<int64_t>& starts, std::vector<int64_t>& ends, std::vector<int64_t>& axes,
                    std::vector<int64_t>& steps) const;
    void slice();
    void constant();
    void constant_of_shape();
};


}  // namespace tsviz::onnx
