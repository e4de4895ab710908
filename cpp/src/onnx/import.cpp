// Lowering of a decoded ONNX model into the engine's IR (graph.hpp).
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
// Folded at the end: Affine (BatchNorm, per-channel Mul/Add/Sub/Div) into the Conv or Dense
// before it; a zero Pad into the Conv after it is done while walking.
#include "onnx/import.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>

#include "onnx/validate.hpp"
#include "ops/op.hpp"
#include "tsviz/error.hpp"

namespace tsviz::onnx {

namespace {

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
};

const char* type_name(int32_t t) {
    switch (t) {
        case kFloat: return "FLOAT";
        case kUint8: return "UINT8";
        case kInt8: return "INT8";
        case kUint16: return "UINT16";
        case kInt16: return "INT16";
        case kInt32: return "INT32";
        case kInt64: return "INT64";
        case kString: return "STRING";
        case kBool: return "BOOL";
        case kFloat16: return "FLOAT16";
        case kDouble: return "DOUBLE";
        case kUint32: return "UINT32";
        case kUint64: return "UINT64";
        case kBfloat16: return "BFLOAT16";
        default: return "UNDEFINED";
    }
}

// Protobuf strings must be UTF-8; a damaged file's may not be, and names end up in messages
// and in Python strings.
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

bool is_int_type(int32_t t) {
    return t == kUint8 || t == kInt8 || t == kUint16 || t == kInt16 || t == kInt32 ||
           t == kInt64 || t == kBool || t == kUint32 || t == kUint64;
}

// A shape or list of ints for a message; a hostile file can make one of millions of entries,
// so only the first few are spelled out (a fuzz finding: building such a message took minutes).
std::string join(const std::vector<int64_t>& v) {
    constexpr size_t kShown = 16;
    std::string s = "(";
    for (size_t i = 0; i < v.size() && i < kShown; ++i) s += (i ? ", " : "") + std::to_string(v[i]);
    if (v.size() > kShown) s += ", ... " + std::to_string(v.size() - kShown) + " more";
    return s + (v.size() == 1 ? ",)" : ")");
}

// Values are folded in double; narrowing one that float cannot hold is undefined behaviour
// in C++, where IEEE (and ONNX Runtime) give an infinity.
float to_f32(double v) {
    if (std::fabs(v) > static_cast<double>(std::numeric_limits<float>::max()) && std::isfinite(v))
        return v > 0 ? std::numeric_limits<float>::infinity() : -std::numeric_limits<float>::infinity();
    return static_cast<float>(v);
}

// Sizes, pads, strides and kernels beyond this are refused: far beyond any time series, and
// small enough that no sum or product of a few of them overflows int64 (or int, once stored).
constexpr int64_t kMaxExtent = int64_t{1} << 24;

// The ops the importer lowers; anything else is listed at once in one error.
const std::set<std::string>& supported_ops() {
    static const std::set<std::string> ops = {
        "Conv", "Relu", "LeakyRelu", "Elu", "Sigmoid", "Tanh", "Softmax", "MaxPool",
        "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "BatchNormalization", "Gemm",
        "MatMul", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Add", "Sub",
        "Mul", "Div", "Concat", "Dropout", "Identity", "Pad", "ReduceMean", "ReduceMax",
        "Shape", "Gather", "Cast", "Slice", "Constant", "ConstantOfShape"};
    return ops;
}

class Importer {
public:
    Importer(const ModelProto& model, std::string source, std::string model_dir, uint64_t max_memory)
        : model_(model), source_(std::move(source)), dir_(std::move(model_dir)), max_memory_(max_memory) {}

    Graph run();

private:
    const ModelProto& model_;
    std::string source_;
    std::string dir_;
    uint64_t max_memory_;
    Graph g_;
    std::vector<int64_t> len_;  // length of every IR node at the declared input length; -1 unknown
    std::unordered_map<std::string, Value> values_;
    std::unordered_map<std::string, int> uses_;  // how many node inputs read each name
    enum class Layout { Undecided, NCT, NTC } layout_ = Layout::Undecided;
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
                      std::to_string(max_memory_ >> 20) + " MiB (LoadOptions::max_memory)");
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
    void decide(Layout layout) {
        if (layout_ != Layout::Undecided) return;
        layout_ = layout;
        Node& input_node = g_.nodes[0];
        const int64_t c = layout == Layout::NCT ? in_dims_[0] : in_dims_[1];
        const int64_t t = layout == Layout::NCT ? in_dims_[1] : in_dims_[0];
        if (c <= 0)
            fail("input '" + g_.input_name + "': its channel axis has no fixed size");
        input_node.channels = static_cast<int>(c);
        g_.layout = layout == Layout::NCT ? InputLayout::NCT : InputLayout::NTC;
        g_.input_channels = c;
        g_.input_length = t;
        len_[0] = t;
    }
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

    // Adds an IR node and infers its length at the declared input length.
    int add_node(Node node) {
        for (int i : node.inputs)
            if (i == 0 && layout_ == Layout::Undecided) decide_default();
        node.onnx_node = cur_->name.empty() ? cur_->output.at(0) : cur_->name;
        node.onnx_op = cur_->op_type;
        node.name = cur_->output.at(0);
        g_.nodes.push_back(std::move(node));
        const Node& n = g_.nodes.back();
        int64_t length = -1;
        std::vector<Shape> in;
        bool known = true;
        for (int i : n.inputs) {
            if (len_[i] < 0 || g_.nodes[i].channels < 0) known = false;
            in.push_back({g_.nodes[i].channels, len_[i]});
        }
        if (known) {
            try {
                ops::Resolved r = ops::rules(n.kind).infer(n, in);
                length = r.out.l;
                if (n.kind == OpKind::Flatten) g_.nodes.back().channels = static_cast<int>(r.out.c);
            } catch (const ShapeError& e) {
                fail(std::string(e.what()) + " (at the model's declared input length " +
                     std::to_string(g_.input_length) + ")");
            }
        } else if (n.kind == OpKind::Dense || n.kind == OpKind::GlobalAvgPool ||
                   n.kind == OpKind::GlobalMaxPool) {
            length = 1;
        }
        len_.push_back(length);
        return static_cast<int>(g_.nodes.size()) - 1;
    }
    Node make(OpKind kind, const Tensor& from) {
        Node n;
        n.kind = kind;
        n.inputs = {from.node};
        if (from.node == 0 && layout_ == Layout::Undecided) decide_default();
        n.channels = channels_of(from);
        return n;
    }

    // Identifies the channel axis (1) and the time axis among the spatial axes of a
    // convolution or pooling input, deciding the layout if needed. `kernel` has one entry per
    // spatial axis; axes other than time must have kernel 1. Returns the time axis index.
    size_t bind_spatial(const Tensor& t, const std::vector<int64_t>& kernel) {
        const size_t rank = t.axes.size();
        if (rank < 3) fail_node("expects an input of rank >= 3, got rank " + std::to_string(rank));
        if (kernel.size() != rank - 2)
            fail_node("kernel has " + std::to_string(kernel.size()) + " spatial dims; the input has " +
                      std::to_string(rank - 2));
        if (kind(t.axes[0]) != Ax::N) fail_node("axis 0 of its input is not the batch axis");
        std::vector<size_t> candidates;
        for (size_t i = 2; i < rank; ++i)
            if (kind(t.axes[i]) != Ax::One) candidates.push_back(i);
        size_t time_axis = rank - 1;
        if (candidates.size() == 1) {
            time_axis = candidates[0];
        } else if (candidates.size() > 1) {
            fail_node("convolves or pools over " + std::to_string(candidates.size()) +
                      " axes that are not of size 1; TSViz handles 1-D time series");
        } else {
            for (size_t i = 2; i < rank; ++i)
                if (kernel[i - 2] != 1) time_axis = i;
        }
        bind(t.axes[1], true);
        bind(t.axes[time_axis], false);
        if (layout_ == Layout::Undecided) decide_default();
        const Ax ck = kind(t.axes[1]);
        if (!(ck == Ax::C || (ck == Ax::One && channels_of(t) == 1)))
            fail_node("axis 1 of its input is not the channel axis of the model's tensor");
        const Ax tk = kind(t.axes[time_axis]);
        if (!(tk == Ax::L || tk == Ax::One))
            fail_node("its time axis is the channel axis of the model's tensor");
        if (tk == Ax::One && kind(t.axes[1]) == Ax::One && channels_of(t) != 1)
            fail_node("cannot tell the channel axis of its input");
        for (size_t i = 2; i < rank; ++i)
            if (i != time_axis && kernel[i - 2] != 1)
                fail_node("kernel " + join(kernel) + " spans an axis of size 1; only 1-D kernels are supported");
        return time_axis;
    }
    // 1-D window attributes (kernel, strides, pads, dilations, auto_pad) along the time axis;
    // every other spatial axis must be trivial.
    void window_attrs(Node& n, const std::vector<int64_t>& kernel, size_t time_axis, size_t rank,
                      bool has_dilations) {
        const size_t sp = rank - 2, ti = time_axis - 2;
        std::vector<int64_t> strides(sp, 1), dil(sp, 1), pads(2 * sp, 0);
        if (attr_ints("strides", strides) && strides.size() != sp)
            fail_node("attribute 'strides' has " + std::to_string(strides.size()) + " entries, expected " + std::to_string(sp));
        if (has_dilations && attr_ints("dilations", dil) && dil.size() != sp)
            fail_node("attribute 'dilations' has " + std::to_string(dil.size()) + " entries, expected " + std::to_string(sp));
        if (!has_dilations && attr("dilations"))
            fail_node("attribute 'dilations' is not supported for this op at opset " + std::to_string(opset_));
        if (attr_ints("pads", pads) && pads.size() != 2 * sp)
            fail_node("attribute 'pads' has " + std::to_string(pads.size()) + " entries, expected " + std::to_string(2 * sp));
        for (size_t i = 0; i < sp; ++i) {
            if (strides[i] > kMaxExtent || dil[i] > kMaxExtent || pads[i] > kMaxExtent || pads[i + sp] > kMaxExtent ||
                kernel[i] > kMaxExtent)
                fail_node("kernel, strides, dilations or pads larger than " + std::to_string(kMaxExtent) + " are not supported");
            if (strides[i] < 1) fail_node("attribute 'strides': " + join(strides) + " must be >= 1");
            if (dil[i] < 1) fail_node("attribute 'dilations': " + join(dil) + " must be >= 1");
            if (pads[i] < 0 || pads[i + sp] < 0) fail_node("attribute 'pads': negative padding " + join(pads));
            if (i != ti && (pads[i] || pads[i + sp]))
                fail_node("attribute 'pads' " + join(pads) + " pads an axis of size 1");
        }
        const std::string ap = attr_string("auto_pad", "NOTSET");
        if (ap == "NOTSET") n.auto_pad = AutoPad::NotSet;
        else if (ap == "VALID") n.auto_pad = AutoPad::Valid;
        else if (ap == "SAME_UPPER") n.auto_pad = AutoPad::SameUpper;
        else if (ap == "SAME_LOWER") n.auto_pad = AutoPad::SameLower;
        else fail_node("attribute 'auto_pad': unsupported value '" + ap + "'");
        for (size_t i = 0; i < sp; ++i)
            if (i != ti && (strides[i] != 1 || dil[i] != 1) && kernel[i] != 1)
                fail_node("strides or dilations on an axis of size 1 are not supported");
        n.kernel = static_cast<int>(kernel[ti]);
        n.stride = static_cast<int>(strides[ti]);
        n.dilation = static_cast<int>(dil[ti]);
        n.pad_begin = static_cast<int>(pads[ti]);
        n.pad_end = static_cast<int>(pads[ti + sp]);
        if (n.kernel < 1) fail_node("kernel size must be >= 1, got " + std::to_string(n.kernel));
    }

    // --- constants --------------------------------------------------------------------------
    Const to_const(const TensorProto& t) const;
    std::string read_external(const TensorProto& t, const std::string& what) const;
    Const fold_binary(const Const& a, const Const& b, const std::string& op);
    std::vector<int64_t> broadcast_dims(const std::vector<int64_t>& a, const std::vector<int64_t>& b) const;

    // --- ops --------------------------------------------------------------------------------
    void convert(const NodeProto& node);
    void conv();
    void activation(OpKind kind);
    void softmax();
    void pool(bool is_max);
    void global_pool(bool is_max);
    void reduce(bool is_max);
    void batch_norm();
    void binary();
    void affine_with_const(const Tensor& t, const Const& k, const std::string& op, bool const_first);
    void gemm();
    void matmul();
    void reshape_to(const Tensor& t, std::vector<int64_t> target, const std::vector<uint8_t>& sym);
    void reshape();
    void flatten();
    void squeeze(bool un);
    void transpose();
    void concat();
    void pad();
    void shape_of();
    void gather();
    void cast();
    void slice();
    void constant();
    void constant_of_shape();

    void fold_affines();
    void prune_unused();
};

// ---------------------------------------------------------------------------------------------

Const Importer::to_const(const TensorProto& t) const {
    const std::string what = "tensor '" + t.name + "'";
    if (t.has_segment) fail(what + ": segmented tensors are not supported");
    Const k;
    k.type = t.data_type;
    k.dims = t.dims;
    int64_t count = 1;
    for (int64_t d : t.dims) {
        if (d < 0) fail(what + ": negative dimension in " + join(t.dims));
        if (d != 0 && count > std::numeric_limits<int32_t>::max() / d)
            fail(what + ": too many elements " + join(t.dims));
        count *= d;
    }
    std::string external;
    const std::string* raw = &t.raw_data;
    if (t.data_location == 1) {
        external = read_external(t, what);
        raw = &external;
    } else if (t.data_location != 0) {
        fail(what + ": data_location " + std::to_string(t.data_location) + " is not defined by ONNX");
    }
    int elem = 0;
    switch (t.data_type) {
        case kFloat: case kInt32: case kUint32: elem = 4; break;
        case kDouble: case kInt64: case kUint64: elem = 8; break;
        case kInt8: case kUint8: case kBool: elem = 1; break;
        case kInt16: case kUint16: elem = 2; break;
        default: fail(what + ": tensor type " + std::string(type_name(t.data_type)) + " is not supported");
    }
    k.v.reserve(static_cast<size_t>(std::min<int64_t>(count, 1 << 26)));
    auto need = [&](int64_t have) {
        if (have != count)
            fail(what + ": holds " + std::to_string(have) + " values; its shape " + join(t.dims) +
                 " needs " + std::to_string(count));
    };
    if (!raw->empty() || (t.data_location == 1)) {
        if (static_cast<int64_t>(raw->size()) != count * elem)
            fail(what + ": raw data of " + std::to_string(raw->size()) + " bytes does not fit shape " +
                 join(t.dims) + " of " + type_name(t.data_type) + " (" + std::to_string(count * elem) + " bytes)");
        const char* p = raw->data();
        for (int64_t i = 0; i < count; ++i, p += elem) {
            switch (t.data_type) {
                case kFloat: { float f; std::memcpy(&f, p, 4); k.v.push_back(f); break; }
                case kDouble: { double d; std::memcpy(&d, p, 8); k.v.push_back(d); break; }
                case kInt32: { int32_t x; std::memcpy(&x, p, 4); k.v.push_back(x); break; }
                case kUint32: { uint32_t x; std::memcpy(&x, p, 4); k.v.push_back(x); break; }
                case kInt64: { int64_t x; std::memcpy(&x, p, 8); k.v.push_back(static_cast<double>(x)); break; }
                case kUint64: { uint64_t x; std::memcpy(&x, p, 8); k.v.push_back(static_cast<double>(x)); break; }
                case kInt16: { int16_t x; std::memcpy(&x, p, 2); k.v.push_back(x); break; }
                case kUint16: { uint16_t x; std::memcpy(&x, p, 2); k.v.push_back(x); break; }
                case kInt8: k.v.push_back(static_cast<int8_t>(*p)); break;
                default: k.v.push_back(static_cast<uint8_t>(*p)); break;
            }
        }
        return k;
    }
    switch (t.data_type) {
        case kFloat: need(static_cast<int64_t>(t.float_data.size())); k.v.assign(t.float_data.begin(), t.float_data.end()); break;
        case kDouble: need(static_cast<int64_t>(t.double_data.size())); k.v.assign(t.double_data.begin(), t.double_data.end()); break;
        case kInt64: need(static_cast<int64_t>(t.int64_data.size())); for (int64_t x : t.int64_data) k.v.push_back(static_cast<double>(x)); break;
        case kUint32: case kUint64: need(static_cast<int64_t>(t.uint64_data.size())); for (uint64_t x : t.uint64_data) k.v.push_back(static_cast<double>(x)); break;
        default: need(static_cast<int64_t>(t.int32_data.size())); k.v.assign(t.int32_data.begin(), t.int32_data.end()); break;
    }
    return k;
}

// A decimal integer of an external-data entry: digits only, no sign, no spaces, no overflow.
bool parse_decimal(const std::string& text, int64_t& out) {
    if (text.empty() || text.size() > 18) return false;
    out = 0;
    for (char ch : text) {
        if (ch < '0' || ch > '9') return false;
        out = out * 10 + (ch - '0');
    }
    return true;
}

// The external-data entry of a tensor (onnx/external_data_helper.py): `location` a file inside
// the model's folder, `offset` and `length` decimal byte counts within it. Every field is
// checked before the file is opened, and the file before anything is allocated for it.
std::string Importer::read_external(const TensorProto& t, const std::string& what) const {
    namespace fs = std::filesystem;
    std::string location;
    bool has_location = false;
    int64_t offset = 0, length = -1;
    std::set<std::string> keys;
    for (const auto& e : t.external_data) {
        if (!keys.insert(e.key).second) fail(what + ": external data key '" + e.key + "' is given twice");
        if (e.key == "location") {
            location = e.value;
            has_location = true;
        } else if (e.key == "offset" || e.key == "length") {
            int64_t v = 0;
            if (!parse_decimal(e.value, v))
                fail(what + ": external data " + e.key + " '" + e.value + "' is not a decimal byte count");
            (e.key == "offset" ? offset : length) = v;
        } else if (e.key != "checksum" && e.key != "basepath") {
            fail(what + ": external data key '" + e.key + "' is not defined by ONNX");
        }
    }
    if (!has_location || location.empty()) fail(what + ": its data is external, but the entry names no location");
    if (dir_.empty())
        fail(what + ": its data is stored in an external file ('" + location +
             "'), which a model given as bytes cannot reach; load the model from its path");
    const std::string quoted = "external data location '" + location + "'";
    if (location.find('\0') != std::string::npos) fail(what + ": " + quoted + " contains a NUL byte");
    if (location.find('\\') != std::string::npos)
        fail(what + ": " + quoted + " contains a backslash; use a relative path with '/'");
    const fs::path rel(location);
    if (rel.is_absolute() || rel.has_root_name() || rel.has_root_directory())
        fail(what + ": " + quoted + " is an absolute path; it must be relative to the model's folder");
    for (const auto& part : rel) {
        if (part == "..") fail(what + ": " + quoted + " contains '..'; it must lie inside the model's folder");
    }
    if (rel.filename().empty() || rel.filename() == "." )
        fail(what + ": " + quoted + " names a folder, not a file");
    std::error_code ec;
    const fs::path base = fs::canonical(fs::path(dir_), ec);
    if (ec) fail(what + ": the model's folder cannot be resolved (" + ec.message() + ")");
    const fs::path joined = base / rel;
    if (!fs::exists(joined, ec)) fail(what + ": cannot open external data file '" + location + "': no such file");
    // Symbolic links are followed, and the result must still lie inside the model's folder.
    const fs::path file = fs::canonical(joined, ec);
    if (ec) fail(what + ": cannot open external data file '" + location + "' (" + ec.message() + ")");
    const fs::path inside = file.lexically_relative(base);
    if (inside.empty() || *inside.begin() == ".." || inside == ".")
        fail(what + ": external data file '" + location + "' lies outside the model's folder (it links to " +
             file.string() + ")");
    if (!fs::is_regular_file(file, ec)) fail(what + ": " + quoted + " is not a regular file");
    const uintmax_t file_size = fs::file_size(file, ec);
    if (ec) fail(what + ": cannot read the size of external data file '" + location + "'");
    const int64_t size = static_cast<int64_t>(file_size);
    if (offset > size)
        fail(what + ": external data offset " + std::to_string(offset) + " lies past the end of '" + location +
             "' (" + std::to_string(size) + " bytes)");
    if (length < 0) length = size - offset;
    if (length > size - offset)
        fail(what + ": external data range runs past the end of '" + location + "' (offset " +
             std::to_string(offset) + " + length " + std::to_string(length) + " > " + std::to_string(size) + " bytes)");
    if (static_cast<double>(length) > static_cast<double>(max_memory_))
        fail(what + ": its external data of " + std::to_string(length) + " bytes exceeds the memory limit");
    std::ifstream in(file, std::ios::binary);
    if (!in) fail(what + ": cannot open external data file '" + location + "'");
    std::string bytes(static_cast<size_t>(length), '\0');
    in.seekg(offset);
    in.read(bytes.data(), length);
    if (in.gcount() != length) fail(what + ": cannot read " + std::to_string(length) + " bytes of '" + location + "'");
    return bytes;
}

std::vector<int64_t> Importer::broadcast_dims(const std::vector<int64_t>& a, const std::vector<int64_t>& b) const {
    const size_t r = std::max(a.size(), b.size());
    std::vector<int64_t> out(r, 1);
    for (size_t i = 0; i < r; ++i) {
        const int64_t x = i + a.size() >= r ? a[i + a.size() - r] : 1;
        const int64_t y = i + b.size() >= r ? b[i + b.size() - r] : 1;
        if (x != y && x != 1 && y != 1)
            fail_node("cannot broadcast shapes " + join(a) + " and " + join(b));
        out[i] = x == 1 ? y : x;
    }
    return out;
}

Const Importer::fold_binary(const Const& a, const Const& b, const std::string& op) {
    Const out;
    out.dims = broadcast_dims(a.dims, b.dims);
    out.type = a.type;
    int64_t count = 1;
    for (int64_t d : out.dims) count = checked_mul(count, d, "the broadcast result " + join(out.dims));
    reserve_const(count);
    const size_t r = out.dims.size();
    auto strides = [&](const Const& k) {
        std::vector<int64_t> s(r, 0);
        int64_t acc = 1;
        for (size_t i = 0; i < k.dims.size(); ++i) {
            const size_t j = k.dims.size() - 1 - i, o = r - 1 - i;
            s[o] = k.dims[j] == 1 ? 0 : acc;
            acc *= k.dims[j];
        }
        return s;
    };
    const auto sa = strides(a), sb = strides(b);
    const bool symbolic = !a.sym.empty() || !b.sym.empty();
    if (symbolic) out.sym.assign(static_cast<size_t>(count), kKnown);
    std::vector<int64_t> idx(r, 0);
    for (int64_t i = 0; i < count; ++i) {
        int64_t ia = 0, ib = 0;
        for (size_t d = 0; d < r; ++d) {
            ia += idx[d] * sa[d];
            ib += idx[d] * sb[d];
        }
        const double x = a.v[ia], y = b.v[ib];
        double z = 0;
        if (op == "Add") z = x + y;
        else if (op == "Sub") z = x - y;
        else if (op == "Mul") z = x * y;
        else {
            if (is_int_type(a.type)) z = y == 0 ? 0 : std::trunc(x / y);
            else z = x / y;
        }
        out.v.push_back(z);
        if (symbolic && (!a.known(ia) || !b.known(ib))) out.sym[i] = kUnknown;
        for (size_t d = r; d-- > 0;) {
            if (++idx[d] < out.dims[d]) break;
            idx[d] = 0;
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------------

void Importer::conv() {
    Tensor x = tensor_input(0, true);
    const Const& w = float_input(1, "the weight");
    const size_t rank = x.axes.size();
    if (w.dims.size() != rank)
        fail_node("weight has shape " + join(w.dims) + "; expected rank " + std::to_string(rank));
    for (int64_t d : w.dims)
        if (d < 1) fail_node("weight has shape " + join(w.dims) + "; every dim must be >= 1 (filters, channels, kernel)");
    std::vector<int64_t> kernel(w.dims.begin() + 2, w.dims.end());
    std::vector<int64_t> ks;
    if (attr_ints("kernel_shape", ks) && ks != kernel)
        fail_node("attribute 'kernel_shape' " + join(ks) + " does not match the weight shape " + join(w.dims));
    const size_t time_axis = bind_spatial(x, kernel);
    Node n = make(OpKind::Conv, x);
    window_attrs(n, kernel, time_axis, rank, true);
    const int64_t group = attr_int("group", 1);
    const int64_t in_c = channels_of(x), filters = w.dims[0];
    if (group < 1 || in_c % group != 0 || filters % group != 0 || w.dims[1] * group != in_c)
        fail_node("weight shape " + join(w.dims) + " with group " + std::to_string(group) +
                  " does not fit an input of " + std::to_string(in_c) + " channels");
    if (x.pad_begin || x.pad_end) {
        if (n.auto_pad != AutoPad::NotSet)
            fail(x.pad_node + ": zero padding before a Conv with auto_pad is not supported");
        if (x.pad_begin > kMaxExtent || x.pad_end > kMaxExtent)
            fail(x.pad_node + ": padding larger than " + std::to_string(kMaxExtent) + " is not supported");
        n.pad_begin += static_cast<int>(x.pad_begin);
        n.pad_end += static_cast<int>(x.pad_end);
    }
    n.group = static_cast<int>(group);
    n.channels = static_cast<int>(filters);
    n.weight = floats(w);
    n.weight_source = cur_->input[1];
    n.bias.assign(static_cast<size_t>(filters), 0.f);
    if (has_input(2)) {
        const Const& b = float_input(2, "the bias");
        if (b.count() != filters) fail_node("bias has shape " + join(b.dims) + "; expected (" + std::to_string(filters) + ",)");
        n.bias = floats(b);
        n.bias_source = cur_->input[2];
    }
    Tensor out;
    out.axes = x.axes;
    out.node = add_node(std::move(n));
    for (auto& a : out.axes) a = kind(a);
    out.axes[1] = Ax::C;
    out.axes[time_axis] = Ax::L;
    set_tensor(out);
}

void Importer::activation(OpKind k) {
    Tensor x = tensor_input(0);
    Node n = make(k, x);
    if (k == OpKind::LeakyRelu) n.alpha = attr_float("alpha", 0.01f);
    if (k == OpKind::Elu) n.alpha = attr_float("alpha", 1.0f);
    x.node = add_node(std::move(n));
    set_tensor(x);
}

void Importer::softmax() {
    Tensor x = tensor_input(0);
    const int64_t rank = static_cast<int64_t>(x.axes.size());
    const int64_t axis = norm_axis(attr_int("axis", opset_ < 13 ? 1 : -1), rank);
    // Before opset 13 Softmax normalises over all axes from `axis` on, flattened.
    const int64_t last = opset_ < 13 ? rank - 1 : axis;
    int which = -1;
    for (int64_t i = axis; i <= last; ++i) {
        const Ax k = kind(x.axes[i]);
        if (k == Ax::One) continue;
        if (k == Ax::N) fail_node("normalises over the batch axis");
        if (which >= 0) fail_node("normalises over channels and time together; not supported");
        which = static_cast<int>(i);
    }
    if (which < 0) fail_node("normalises over an axis of size 1");
    if (x.axes[which] == Ax::In1 || x.axes[which] == Ax::In2) decide_default();
    Node n = make(OpKind::Softmax, x);
    n.axis = kind(x.axes[which]) == Ax::C ? 0 : 1;
    x.node = add_node(std::move(n));
    set_tensor(x);
}

void Importer::pool(bool is_max) {
    Tensor x = tensor_input(0);
    std::vector<int64_t> kernel;
    if (!attr_ints("kernel_shape", kernel)) fail_node("attribute 'kernel_shape' is missing");
    const size_t rank = x.axes.size();
    const size_t time_axis = bind_spatial(x, kernel);
    Node n = make(is_max ? OpKind::MaxPool : OpKind::AvgPool, x);
    const bool dilations = is_max ? opset_ >= 10 : opset_ >= 19;
    window_attrs(n, kernel, time_axis, rank, dilations);
    n.ceil_mode = attr_int("ceil_mode", 0) != 0;
    if (is_max) {
        expect_attr("storage_order", 0, 0);
        refuse_extra_outputs(1);
    } else {
        n.count_include_pad = attr_int("count_include_pad", 0) != 0;
    }
    x.node = add_node(std::move(n));
    for (auto& a : x.axes) a = kind(a);
    set_tensor(x);
}

void Importer::global_pool(bool is_max) {
    Tensor x = tensor_input(0);
    std::vector<int64_t> ones(x.axes.size() >= 2 ? x.axes.size() - 2 : 0, 1);
    bind_spatial(x, ones);
    Node n = make(is_max ? OpKind::GlobalMaxPool : OpKind::GlobalAvgPool, x);
    x.node = add_node(std::move(n));
    for (size_t i = 2; i < x.axes.size(); ++i) x.axes[i] = Ax::One;
    x.axes[1] = Ax::C;
    set_tensor(x);
}

void Importer::reduce(bool is_max) {
    const Value& v = input(0);
    if (v.is_const) fail_node("reducing a constant is not supported");
    Tensor x = tensor_input(0);
    const int64_t rank = static_cast<int64_t>(x.axes.size());
    std::vector<int64_t> axes;
    const bool have_axes = axes_arg(1, axes);
    const bool keep = attr_int("keepdims", 1) != 0;
    if (!have_axes || axes.empty()) {
        if (attr_int("noop_with_empty_axes", 0)) { set_tensor(x); return; }
        fail_node("reduces over every axis, the batch too; TSViz needs one output per sample");
    }
    std::vector<bool> reduced(static_cast<size_t>(rank), false);
    int time_axis = -1;
    for (int64_t a : axes) {
        const int64_t i = norm_axis(a, rank);
        reduced[i] = true;
        const Ax k = kind(x.axes[i]);
        if (k == Ax::N || k == Ax::C) fail_node("reduces over the " + std::string(k == Ax::N ? "batch" : "channel") + " axis; only reductions over time are supported");
        if (k != Ax::One) {
            if (time_axis >= 0) fail_node("reduces over two axes that are not of size 1");
            time_axis = static_cast<int>(i);
        }
    }
    Tensor out;
    if (time_axis < 0) {
        out = x;  // only size-1 axes: a view change
    } else {
        bind(x.axes[time_axis], false);
        if (kind(x.axes[time_axis]) != Ax::L) fail_node("reduces over the channel axis; only reductions over time are supported");
        Node n = make(is_max ? OpKind::GlobalMaxPool : OpKind::GlobalAvgPool, x);
        out.node = add_node(std::move(n));
        out.axes = x.axes;
        for (auto& a : out.axes) a = kind(a);
    }
    std::vector<Ax> axes_out;
    for (int64_t i = 0; i < rank; ++i) {
        if (!reduced[i]) axes_out.push_back(out.axes[i]);
        else if (keep) axes_out.push_back(Ax::One);
    }
    out.axes = axes_out;
    set_tensor(out);
}

void Importer::batch_norm() {
    Tensor x = tensor_input(0);
    if (attr_int("training_mode", 0) != 0) fail_node("attribute 'training_mode': expected 0, got 1");
    if (opset_ < 9) expect_attr("spatial", 1, 1);
    refuse_extra_outputs(1);
    const float eps = attr_float("epsilon", 1e-5f);
    if (x.axes.size() < 2) fail_node("expects an input of rank >= 2");
    bind(x.axes[1], true);
    if (layout_ == Layout::Undecided) decide_default();
    const Ax ck = kind(x.axes[1]);
    if (!(ck == Ax::C || (ck == Ax::One && channels_of(x) == 1)))
        fail_node("axis 1 of its input is not the channel axis");
    const int64_t c = channels_of(x);
    const char* names[] = {"scale", "bias", "mean", "var"};
    std::vector<const Const*> p;
    for (int i = 0; i < 4; ++i) {
        p.push_back(&float_input(i + 1, names[i]));
        if (p.back()->count() != c)
            fail_node(std::string("'") + names[i] + "' has shape " + join(p.back()->dims) +
                      "; expected (" + std::to_string(c) + ",)");
    }
    Node n = make(OpKind::Affine, x);
    for (int64_t i = 0; i < c; ++i) {
        const double s = p[0]->v[i] / std::sqrt(p[3]->v[i] + static_cast<double>(eps));
        n.scale.push_back(to_f32(s));
        n.shift.push_back(to_f32(p[1]->v[i] - p[2]->v[i] * s));
    }
    x.node = add_node(std::move(n));
    set_tensor(x);
}

void Importer::affine_with_const(const Tensor& t, const Const& k, const std::string& op, bool const_first) {
    if (!k.all_known()) fail_node("a constant operand depends on the batch size");
    if (k.type != kFloat)
        fail_node("constant operand ('" + cur_->input[const_first ? 0 : 1] + "') has type " + type_name(k.type) +
                  "; " + op + " with a FLOAT tensor takes a FLOAT constant");
    const size_t rank = t.axes.size();
    if (k.dims.size() > rank)
        fail_node("constant of shape " + join(k.dims) + " has a higher rank than the tensor (" + std::to_string(rank) + ")");
    bool varies = false;
    size_t varying_axis = 0;
    for (size_t j = 0; j < k.dims.size(); ++j) {
        if (k.dims[j] == 1) continue;
        const size_t i = rank - k.dims.size() + j;
        if (varies) fail_node("constant of shape " + join(k.dims) + " varies along more than one axis; only per-channel constants are supported");
        varies = true;
        varying_axis = i;
    }
    if (varies) bind(t.axes[varying_axis], true);
    if (layout_ == Layout::Undecided) decide_default();
    const int64_t channels = channels_of(t);
    std::vector<double> per(static_cast<size_t>(channels), 0.0);
    if (varies) {
        const Ax kk = kind(t.axes[varying_axis]);
        if (kk != Ax::C)
            fail_node("constant of shape " + join(k.dims) + " varies along the " +
                      std::string(kk == Ax::L ? "time" : "batch") + " axis; only per-channel constants are supported");
        if (k.count() != channels)
            fail_node("constant has " + std::to_string(k.count()) + " values for " + std::to_string(channels) + " channels");
        per = k.v;
    } else {
        std::fill(per.begin(), per.end(), k.v.empty() ? 0.0 : k.v[0]);
        if (k.v.empty()) fail_node("constant operand is empty");
    }
    Node n = make(OpKind::Affine, t);
    n.scale.assign(static_cast<size_t>(channels), 1.f);
    n.shift.assign(static_cast<size_t>(channels), 0.f);
    for (int64_t c = 0; c < channels; ++c) {
        const double v = per[c];
        if (op == "Add") n.shift[c] = to_f32(v);
        else if (op == "Mul") n.scale[c] = to_f32(v);
        else if (op == "Sub") {
            if (const_first) { n.scale[c] = -1.f; n.shift[c] = to_f32(v); }
            else n.shift[c] = to_f32(-v);
        } else {
            if (const_first) fail_node("divides a constant by a tensor; not supported");
            n.scale[c] = to_f32(1.0 / v);
        }
    }
    Tensor out = t;
    out.node = add_node(std::move(n));
    set_tensor(out);
}

void Importer::binary() {
    const std::string& op = cur_->op_type;
    const Value& a = input(0);
    const Value& b = input(1);
    if (a.is_const && b.is_const) {
        set_const(fold_binary(a.k, b.k, op));
        return;
    }
    if (!a.is_const && !b.is_const) {
        if (op != "Add") fail_node(op + " of two tensors computed from the input is not supported (only Add, for residual connections)");
        Tensor p = tensor_input(0), q = tensor_input(1);
        if (p.axes.size() != q.axes.size()) fail_node("adds tensors of different ranks");
        for (size_t i = 0; i < p.axes.size(); ++i)
            if (kind(p.axes[i]) != kind(q.axes[i]) && size_of(p, i) != 1 && size_of(q, i) != 1)
                fail_node("adds tensors whose axes do not line up");
        if (p.node == 0 || q.node == 0) decide_default();
        Node n = make(OpKind::Add, p);
        n.inputs.push_back(q.node);
        p.node = add_node(std::move(n));
        set_tensor(p);
        return;
    }
    const bool const_first = a.is_const;
    affine_with_const(tensor_input(const_first ? 1 : 0), const_first ? a.k : b.k, op, const_first);
}

void Importer::gemm() {
    Tensor a = tensor_input(0);
    const Const& b = float_input(1, "B");
    if (attr_int("transA", 0) != 0) fail_node("attribute 'transA': expected 0, got 1");
    const bool trans_b = attr_int("transB", 0) != 0;
    const float alpha = attr_float("alpha", 1.f), beta = attr_float("beta", 1.f);
    if (a.axes.size() != 2) fail_node("expects a 2-D input, got rank " + std::to_string(a.axes.size()));
    if (b.dims.size() != 2) fail_node("B has shape " + join(b.dims) + "; expected 2-D");
    const int64_t f = trans_b ? b.dims[0] : b.dims[1], x = trans_b ? b.dims[1] : b.dims[0];
    if (f < 1 || x < 1) fail_node("B has shape " + join(b.dims) + "; both dims must be >= 1");
    if (a.node == 0) decide_default();
    Node n = make(OpKind::Dense, a);
    n.channels = static_cast<int>(f);
    n.weight.resize(static_cast<size_t>(f * x));
    for (int64_t i = 0; i < f; ++i)
        for (int64_t j = 0; j < x; ++j)
            n.weight[i * x + j] = to_f32(static_cast<double>(alpha) * (trans_b ? b.v[i * x + j] : b.v[j * f + i]));
    n.bias.assign(static_cast<size_t>(f), 0.f);
    n.weight_source = cur_->input[1];
    n.weight_transposed = !trans_b;
    n.weight_scale = alpha;
    n.bias_scale = beta;
    if (has_input(2)) {
        const Const& c = float_input(2, "C");
        if (c.count() != f && c.count() != 1) fail_node("C has shape " + join(c.dims) + "; expected (" + std::to_string(f) + ",)");
        for (int64_t i = 0; i < f; ++i) n.bias[i] = to_f32(static_cast<double>(beta) * c.v[c.count() == 1 ? 0 : i]);
        n.bias_source = cur_->input[2];
    }
    Tensor out;
    out.node = add_node(std::move(n));
    out.axes = {Ax::N, Ax::C};
    set_tensor(out);
}

void Importer::matmul() {
    Tensor a = tensor_input(0);
    const Const& b = float_input(1, "the second operand");
    if (b.dims.size() != 2) fail_node("second operand has shape " + join(b.dims) + "; expected 2-D");
    const int64_t x = b.dims[0], f = b.dims[1];
    if (f < 1 || x < 1) fail_node("second operand has shape " + join(b.dims) + "; both dims must be >= 1");
    const size_t rank = a.axes.size();
    if (rank == 2) {
        if (a.node == 0) decide_default();
        Node n = make(OpKind::Dense, a);
        n.channels = static_cast<int>(f);
        n.weight.resize(static_cast<size_t>(f * x));
        for (int64_t i = 0; i < f; ++i)
            for (int64_t j = 0; j < x; ++j) n.weight[i * x + j] = to_f32(b.v[j * f + i]);
        n.bias.assign(static_cast<size_t>(f), 0.f);
        n.weight_source = cur_->input[1];
        n.weight_transposed = true;
        Tensor out;
        out.node = add_node(std::move(n));
        out.axes = {Ax::N, Ax::C};
        set_tensor(out);
        return;
    }
    if (rank == 3) {
        // (N, T, C) @ (C, F): the same dense map at every time step, a 1 x 1 convolution.
        bind(a.axes[2], true);
        if (layout_ == Layout::Undecided) decide_default();
        if (kind(a.axes[0]) != Ax::N || kind(a.axes[2]) != Ax::C)
            fail_node("multiplies along an axis that is not the channel axis");
        if (channels_of(a) != x) fail_node("second operand has shape " + join(b.dims) + " for " + std::to_string(channels_of(a)) + " channels");
        Node n = make(OpKind::Conv, a);
        n.channels = static_cast<int>(f);
        n.weight.resize(static_cast<size_t>(f * x));
        for (int64_t i = 0; i < f; ++i)
            for (int64_t j = 0; j < x; ++j) n.weight[i * x + j] = to_f32(b.v[j * f + i]);
        n.bias.assign(static_cast<size_t>(f), 0.f);
        n.weight_source = cur_->input[1];
        n.weight_transposed = true;
        Tensor out = a;
        for (auto& ax : out.axes) ax = kind(ax);
        out.node = add_node(std::move(n));
        set_tensor(out);
        return;
    }
    fail_node("expects a 2-D or 3-D first operand, got rank " + std::to_string(rank));
}

void Importer::reshape_to(const Tensor& t, std::vector<int64_t> target, const std::vector<uint8_t>& sym) {
    const size_t rank = t.axes.size();
    if (kind(t.axes[0]) != Ax::N) fail_node("its input's axis 0 is not the batch axis");
    // Per-sample sizes of the input's non-batch axes.
    int64_t total = 1;
    bool total_known = true;
    for (size_t i = 1; i < rank; ++i) {
        const int64_t s = size_of(t, i);
        if (s < 0) total_known = false; else total *= s;
    }
    const bool allow_zero = attr_int("allowzero", 0) != 0;
    if (target.empty()) fail_node("reshapes to a scalar");
    for (size_t i = 0; i < target.size(); ++i) {
        if (!sym.empty() && sym[i] == kBatch) { target[i] = -2; continue; }  // -2: the batch
        if (!sym.empty() && sym[i] != kKnown) fail_node("target shape has an entry that depends on the input length");
        if (target[i] == 0 && !allow_zero) {
            if (i >= rank) fail_node("target shape copies axis " + std::to_string(i) + " that the input lacks");
            target[i] = i == 0 ? -2 : size_of(t, i);
            if (target[i] < 0 && i != 0) fail_node("target shape copies an axis of unknown size");
        }
    }
    if (target[0] != -2 && target[0] != -1)
        fail_node("target shape " + join(target) + " fixes the batch size; TSViz needs a free batch axis");
    std::vector<int64_t> sample(target.begin() + 1, target.end());
    int infer = -1;
    int64_t prod = 1;
    for (size_t i = 0; i < sample.size(); ++i) {
        if (sample[i] == -2) fail_node("target shape moves the batch axis");
        if (sample[i] == -1) {
            if (infer >= 0 || target[0] == -1) fail_node("target shape has more than one -1");
            infer = static_cast<int>(i);
        } else if (sample[i] < 0) {
            fail_node("target shape " + join(target) + " has a negative entry");
        } else {
            prod = checked_mul(prod, sample[i], "target shape " + join(target));
        }
    }
    if (target[0] == -1 && total_known && prod != total)
        fail_node("target shape " + join(target) + " does not keep the per-sample size " + std::to_string(total));
    if (infer >= 0 && total_known) {
        if (prod == 0 || total % prod) fail_node("cannot infer -1 in target shape " + join(target));
        sample[infer] = total / prod;
    }
    // The input's axes that are not of size 1, and the target's.
    std::vector<size_t> in_axes;
    for (size_t i = 1; i < rank; ++i)
        if (size_of(t, i) != 1) in_axes.push_back(i);
    std::vector<size_t> out_pos;
    for (size_t i = 0; i < sample.size(); ++i)
        if (sample[i] != 1) out_pos.push_back(i);
    bool same = in_axes.size() == out_pos.size();
    for (size_t i = 0; same && i < in_axes.size(); ++i) {
        const int64_t s = size_of(t, in_axes[i]);
        same = sample[out_pos[i]] == s || (s < 0 && sample[out_pos[i]] == -1);
    }
    Tensor out = t;
    if (same) {
        out.axes.assign(sample.size() + 1, Ax::One);
        out.axes[0] = Ax::N;
        for (size_t i = 0; i < in_axes.size(); ++i) out.axes[out_pos[i] + 1] = t.axes[in_axes[i]];
        if ((t.pad_begin || t.pad_end)) {
            bool keeps_time = false;
            for (Ax a : out.axes) keeps_time |= kind(a) == Ax::L || a == Ax::In1 || a == Ax::In2;
            if (!keeps_time) fail(t.pad_node + ": zero padding is supported only directly before a Conv; it feeds " + where());
        }
        set_tensor(out);
        return;
    }
    if (sample.size() == 1 && (sample[0] == -1 || !total_known || sample[0] == total)) {
        if (t.pad_begin || t.pad_end) fail(t.pad_node + ": zero padding is supported only directly before a Conv; it feeds " + where());
        // A flatten: channel-major unless time comes first in the view (channels-last).
        int ci = -1, li = -1;
        for (size_t i : in_axes) {
            bind(t.axes[i], ci < 0 && li < 0);
            if (layout_ == Layout::Undecided) decide_default();
            const Ax k = kind(t.axes[i]);
            if (k == Ax::C) ci = static_cast<int>(i);
            if (k == Ax::L) li = static_cast<int>(i);
        }
        Node n = make(OpKind::Flatten, t);
        n.position_major = li >= 0 && ci >= 0 && li < ci;
        out.node = add_node(std::move(n));
        out.axes = {Ax::N, Ax::C};
        set_tensor(out);
        return;
    }
    std::vector<int64_t> in_shape;
    for (size_t i = 1; i < rank; ++i) in_shape.push_back(size_of(t, i));
    fail_node("reshapes a tensor of per-sample shape " + join(in_shape) + " to " + join(sample) +
              "; only flattening and adding or removing size-1 axes are supported");
}

void Importer::reshape() {
    const Value& d = input(0);
    const Const& shape = const_input(1, "the target shape");
    if (d.is_const) {
        Const k = d.k;
        std::vector<int64_t> target = const_ints(shape, "the target shape");
        int infer = -1;
        int64_t prod = 1;
        for (size_t i = 0; i < target.size(); ++i) {
            if (target[i] == 0 && !attr_int("allowzero", 0)) target[i] = i < k.dims.size() ? k.dims[i] : 1;
            if (target[i] < -1) fail_node("target shape " + join(target) + " has a negative entry");
            if (target[i] == -1) {
                if (infer >= 0) fail_node("target shape " + join(target) + " has more than one -1");
                infer = static_cast<int>(i);
            } else {
                prod = checked_mul(prod, target[i], "target shape " + join(target));
            }
        }
        if (infer >= 0) target[infer] = prod ? k.count() / prod : 0;
        int64_t total = 1;
        for (int64_t d : target) total = checked_mul(total, d, "target shape " + join(target));
        if (total != k.count())
            fail_node("reshapes a constant of shape " + join(k.dims) + " (" + std::to_string(k.count()) +
                      " values) to " + join(target) + "; the dims do not multiply out");
        k.dims = target;
        set_const(k);
        return;
    }
    std::vector<int64_t> raw;
    for (double v : shape.v) raw.push_back(to_int(v, "the target shape"));
    reshape_to(tensor_input(0, true), raw, shape.sym);
}

void Importer::flatten() {
    const Value& d = input(0);
    const int64_t axis_attr = attr_int("axis", 1);
    if (d.is_const) {
        Const k = d.k;
        const int64_t r = static_cast<int64_t>(k.dims.size());
        const int64_t axis = axis_attr < 0 ? axis_attr + r : axis_attr;
        int64_t outer = 1;
        for (int64_t i = 0; i < axis && i < r; ++i) outer *= k.dims[i];
        k.dims = {outer, outer ? k.count() / outer : 0};
        set_const(k);
        return;
    }
    Tensor t = tensor_input(0);
    const int64_t axis = norm_axis(axis_attr, static_cast<int64_t>(t.axes.size()) + 1);
    if (axis != 1) fail_node("attribute 'axis': expected 1 (flatten each sample), got " + std::to_string(axis_attr));
    reshape_to(t, {0, -1}, {});
}

void Importer::squeeze(bool un) {
    const Value& d = input(0);
    std::vector<int64_t> axes;
    const bool have = axes_arg(1, axes);
    if (un && !have) fail_node("has no axes");
    if (d.is_const) {
        Const k = d.k;
        std::vector<int64_t> dims;
        if (un) {
            const int64_t r = static_cast<int64_t>(k.dims.size() + axes.size());
            std::vector<bool> ins(static_cast<size_t>(r), false);
            for (int64_t a : axes) mark_axis(ins, norm_axis(a, r));
            size_t j = 0;
            for (int64_t i = 0; i < r; ++i) dims.push_back(ins[i] ? 1 : k.dims[j++]);
        } else {
            const int64_t r = static_cast<int64_t>(k.dims.size());
            std::vector<bool> drop(static_cast<size_t>(r), false);
            for (int64_t a : axes) {
                const int64_t i = norm_axis(a, r);
                if (k.dims[i] != 1) fail_node("squeezes axis " + std::to_string(a) + ", which is not of size 1");
                mark_axis(drop, i);
            }
            for (int64_t i = 0; i < r; ++i)
                if (!(have ? drop[i] : k.dims[i] == 1)) dims.push_back(k.dims[i]);
        }
        k.dims = dims;
        set_const(k);
        return;
    }
    Tensor t = tensor_input(0, true);
    std::vector<Ax> out;
    if (un) {
        const int64_t r = static_cast<int64_t>(t.axes.size() + axes.size());
        std::vector<bool> ins(static_cast<size_t>(r), false);
        for (int64_t a : axes) mark_axis(ins, norm_axis(a, r));
        size_t j = 0;
        for (int64_t i = 0; i < r; ++i) out.push_back(ins[i] ? Ax::One : t.axes[j++]);
    } else {
        const int64_t r = static_cast<int64_t>(t.axes.size());
        std::vector<bool> drop(static_cast<size_t>(r), false);
        for (int64_t a : axes) {
            const int64_t i = norm_axis(a, r);
            if (kind(t.axes[i]) == Ax::N) fail_node("squeezes the batch axis");
            if (size_of(t, static_cast<size_t>(i)) != 1)
                fail_node("squeezes axis " + std::to_string(a) + ", which is not of size 1");
            mark_axis(drop, i);
        }
        for (int64_t i = 0; i < r; ++i) {
            const bool d1 = have ? drop[i] : (kind(t.axes[i]) != Ax::N && size_of(t, static_cast<size_t>(i)) == 1);
            if (!d1) out.push_back(t.axes[i]);
        }
    }
    t.axes = out;
    set_tensor(t);
}

void Importer::transpose() {
    const Value& d = input(0);
    std::vector<int64_t> perm;
    const size_t rank = d.is_const ? d.k.dims.size() : d.t.axes.size();
    if (!attr_ints("perm", perm))
        for (size_t i = 0; i < rank; ++i) perm.push_back(static_cast<int64_t>(rank - 1 - i));
    if (perm.size() != rank) fail_node("attribute 'perm' " + join(perm) + " does not fit rank " + std::to_string(rank));
    std::vector<bool> seen(rank, false);
    for (int64_t p : perm) {
        if (p < 0 || p >= static_cast<int64_t>(rank) || seen[p]) fail_node("attribute 'perm' " + join(perm) + " is not a permutation");
        seen[p] = true;
    }
    if (d.is_const) {
        const Const& k = d.k;
        Const out = k;
        out.dims.clear();
        for (int64_t p : perm) out.dims.push_back(k.dims[p]);
        std::vector<int64_t> in_stride(rank, 1);
        for (size_t i = rank; i-- > 1;) in_stride[i - 1] = in_stride[i] * k.dims[i];
        std::vector<int64_t> idx(rank, 0);
        for (int64_t i = 0; i < k.count(); ++i) {
            int64_t src = 0;
            for (size_t j = 0; j < rank; ++j) src += idx[j] * in_stride[perm[j]];
            out.v[i] = k.v[src];
            if (!k.sym.empty()) out.sym[i] = k.sym[src];
            for (size_t j = rank; j-- > 0;) {
                if (++idx[j] < out.dims[j]) break;
                idx[j] = 0;
            }
        }
        set_const(out);
        return;
    }
    Tensor t = tensor_input(0, true);
    if (perm[0] != 0) fail_node("attribute 'perm' " + join(perm) + " moves the batch axis");
    std::vector<Ax> out;
    for (int64_t p : perm) out.push_back(t.axes[p]);
    t.axes = out;
    set_tensor(t);
}

void Importer::concat() {
    const int64_t axis_attr = attr_int("axis", 0);
    bool all_const = true, any_const = false;
    for (size_t i = 0; i < cur_->input.size(); ++i) {
        const bool c = input(i).is_const;
        all_const &= c;
        any_const |= c;
    }
    if (all_const) {
        Const out = input(0).k;
        const int64_t r = static_cast<int64_t>(out.dims.size());
        const int64_t axis = norm_axis(axis_attr, r);
        // Outer blocks along `axis`: copy each input's slab in turn.
        int64_t outer = 1;
        for (int64_t i = 0; i < axis; ++i) outer *= out.dims[i];
        Const res;
        res.type = out.type;
        res.dims = out.dims;
        res.dims[axis] = 0;
        bool symbolic = false;
        for (size_t j = 0; j < cur_->input.size(); ++j) {
            const Const& k = input(j).k;
            if (static_cast<int64_t>(k.dims.size()) != r) fail_node("concatenates constants of different ranks");
            for (int64_t d = 0; d < r; ++d)
                if (d != axis && k.dims[d] != out.dims[d])
                    fail_node("concatenates constants of shapes " + join(out.dims) + " and " + join(k.dims) +
                              ", which differ off the axis " + std::to_string(axis));
            res.dims[axis] += k.dims[axis];
            symbolic |= !k.sym.empty();
        }
        for (int64_t o = 0; o < outer; ++o)
            for (size_t j = 0; j < cur_->input.size(); ++j) {
                const Const& k = input(j).k;
                const int64_t slab = outer ? k.count() / outer : 0;
                for (int64_t i = 0; i < slab; ++i) {
                    res.v.push_back(k.v[o * slab + i]);
                    if (symbolic) res.sym.push_back(k.sym.empty() ? static_cast<uint8_t>(kKnown) : k.sym[o * slab + i]);
                }
            }
        set_const(res);
        return;
    }
    if (any_const) fail_node("concatenates constants with tensors computed from the input; not supported");
    Tensor first = tensor_input(0);
    const int64_t axis = norm_axis(axis_attr, static_cast<int64_t>(first.axes.size()));
    bind(first.axes[axis], true);
    if (layout_ == Layout::Undecided) decide_default();
    Node n = make(OpKind::Concat, first);
    n.channels = 0;
    for (size_t i = 0; i < cur_->input.size(); ++i) {
        Tensor t = tensor_input(i);
        if (t.axes.size() != first.axes.size()) fail_node("concatenates tensors of different ranks");
        const Ax k = kind(t.axes[axis]);
        if (!(k == Ax::C || (k == Ax::One && channels_of(t) == 1)))
            fail_node("concatenates along an axis that is not the channel axis; only channel concatenation is supported");
        if (i) n.inputs.push_back(t.node);
        n.channels += channels_of(t);
    }
    first.node = add_node(std::move(n));
    for (auto& a : first.axes) a = kind(a);
    first.axes[axis] = Ax::C;
    set_tensor(first);
}

void Importer::pad() {
    Tensor t = tensor_input(0, true);
    const std::string mode = attr_string("mode", "constant");
    if (mode != "constant") fail_node("attribute 'mode': only 'constant' (zero) padding is supported, got '" + mode + "'");
    std::vector<int64_t> pads;
    double fill = 0;
    if (opset_ < 11) {
        if (!attr_ints("pads", pads)) fail_node("attribute 'pads' is missing");
        fill = attr_float("value", 0.f);
    } else {
        pads = const_ints(const_input(1, "pads"), "pads");
        if (has_input(2)) {
            const Const& v = const_input(2, "the constant value");
            if (v.count() > 0) fill = v.v[0];
        }
    }
    if (fill != 0) fail_node("pads with the value " + std::to_string(fill) + "; only zero padding is supported");
    const size_t rank = t.axes.size();
    std::vector<int64_t> axes;
    if (has_input(3)) {
        for (int64_t a : const_ints(const_input(3, "axes"), "axes")) axes.push_back(norm_axis(a, static_cast<int64_t>(rank)));
    } else {
        for (size_t i = 0; i < rank; ++i) axes.push_back(static_cast<int64_t>(i));
    }
    if (pads.size() != 2 * axes.size()) fail_node("'pads' " + join(pads) + " does not fit rank " + std::to_string(rank));
    for (size_t j = 0; j < axes.size(); ++j) {
        const int64_t b = pads[j], e = pads[j + axes.size()];
        if (!b && !e) continue;
        if (b < 0 || e < 0) fail_node("negative padding " + join(pads) + " (cropping) is not supported");
        if (b > kMaxExtent || e > kMaxExtent || t.pad_begin + b > kMaxExtent || t.pad_end + e > kMaxExtent)
            fail_node("'pads' " + join(pads) + ": padding larger than " + std::to_string(kMaxExtent) + " is not supported");
        const Ax a = t.axes[axes[j]];
        bind(a, false);
        if (kind(a) != Ax::L) fail_node("'pads' " + join(pads) + " pads an axis other than time; not supported");
        t.pad_begin += b;
        t.pad_end += e;
    }
    t.pad_node = where();
    set_tensor(t);
}

void Importer::shape_of() {
    const Value& d = input(0);
    Const k;
    k.type = kInt64;
    if (d.is_const) {
        for (int64_t x : d.k.dims) k.v.push_back(static_cast<double>(x));
    } else {
        for (size_t i = 0; i < d.t.axes.size(); ++i) {
            const int64_t s = size_of(d.t, i);
            k.v.push_back(static_cast<double>(s));
            k.sym.push_back(kind(d.t.axes[i]) == Ax::N ? kBatch : (s < 0 ? kUnknown : kKnown));
        }
    }
    const int64_t r = k.count();
    int64_t start = attr_int("start", 0), end = attr_int("end", r);
    if (start < 0) start += r;
    if (end < 0) end += r;
    start = std::clamp<int64_t>(start, 0, r);
    end = std::clamp<int64_t>(end, start, r);
    k.v = std::vector<double>(k.v.begin() + start, k.v.begin() + end);
    if (!k.sym.empty()) k.sym = std::vector<uint8_t>(k.sym.begin() + start, k.sym.begin() + end);
    k.dims = {end - start};
    set_const(k);
}

void Importer::gather() {
    const Value& d = input(0);
    if (!d.is_const) fail_node("gathers from a tensor computed from the input; only constant shape arithmetic is supported");
    const Const& data = d.k;
    const Const& idx = const_input(1, "indices");
    const int64_t r = static_cast<int64_t>(data.dims.size());
    const int64_t axis = norm_axis(attr_int("axis", 0), r);
    if (axis != 0 || r != 1) fail_node("gathers from a constant of shape " + join(data.dims) + "; only 1-D constants are supported");
    Const out;
    out.type = data.type;
    out.dims = idx.dims;
    for (int64_t i = 0; i < idx.count(); ++i) {
        int64_t j = to_int(idx.v[i], "an index");
        if (j < 0) j += data.count();
        if (j < 0 || j >= data.count()) fail_node("index " + std::to_string(j) + " is out of range");
        out.v.push_back(data.v[j]);
        if (!data.sym.empty()) {
            out.sym.resize(static_cast<size_t>(i), kKnown);
            out.sym.push_back(data.sym[j]);
        }
    }
    set_const(out);
}

void Importer::cast() {
    const Value& d = input(0);
    const int64_t to = attr_int("to", 0);
    if (!d.is_const) {
        if (to != kFloat && to != kDouble)
            fail_node("casts a tensor to " + std::string(type_name(static_cast<int32_t>(to))) + "; not supported");
        set_tensor(tensor_input(0, true));
        return;
    }
    Const k = d.k;
    k.type = static_cast<int32_t>(to);
    if (is_int_type(k.type))
        for (double& v : k.v) v = std::trunc(v);
    if (to == kFloat)
        for (double& v : k.v) v = to_f32(v);
    set_const(k);
}

void Importer::slice() {
    const Value& d = input(0);
    if (!d.is_const) fail_node("slices a tensor computed from the input; only constant shape arithmetic is supported");
    const Const& data = d.k;
    const int64_t rank = static_cast<int64_t>(data.dims.size());
    std::vector<int64_t> starts, ends, axes, steps;
    if (opset_ < 10) {
        attr_ints("starts", starts);
        attr_ints("ends", ends);
        attr_ints("axes", axes);
    } else {
        starts = const_ints(const_input(1, "starts"), "starts");
        ends = const_ints(const_input(2, "ends"), "ends");
        if (has_input(3)) axes = const_ints(const_input(3, "axes"), "axes");
        if (has_input(4)) steps = const_ints(const_input(4, "steps"), "steps");
    }
    if (starts.size() != ends.size()) fail_node("'starts' and 'ends' differ in length");
    if (axes.empty())
        for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    if (steps.empty()) steps.assign(starts.size(), 1);
    if (axes.size() != starts.size() || steps.size() != starts.size())
        fail_node("'axes' or 'steps' do not match 'starts'");
    // Per axis: first index, step and count, with ONNX's clamping rules.
    std::vector<int64_t> first(static_cast<size_t>(rank), 0), step(static_cast<size_t>(rank), 1), count(data.dims);
    for (size_t j = 0; j < axes.size(); ++j) {
        const int64_t a = norm_axis(axes[j], rank), n = data.dims[a], st = steps[j];
        if (st == 0) fail_node("'steps' contains 0");
        int64_t s = starts[j] < 0 ? starts[j] + n : starts[j];
        int64_t e = ends[j] < 0 ? ends[j] + n : ends[j];
        if (st > 0) {
            s = std::clamp<int64_t>(s, 0, n);
            e = std::clamp<int64_t>(e, 0, n);
            count[a] = e > s ? (e - s - 1) / st + 1 : 0;
        } else {
            s = std::clamp<int64_t>(s, -1, n - 1);
            e = std::clamp<int64_t>(e, -1, n - 1);
            count[a] = s > e ? (s - e - 1) / -st + 1 : 0;
        }
        first[a] = s;
        step[a] = st;
    }
    std::vector<int64_t> stride(static_cast<size_t>(rank), 1);
    for (int64_t i = rank - 1; i > 0; --i) stride[i - 1] = stride[i] * data.dims[i];
    Const out;
    out.type = data.type;
    out.dims = count;
    int64_t total = 1;
    for (int64_t c : count) total *= c;
    std::vector<int64_t> idx(static_cast<size_t>(rank), 0);
    for (int64_t i = 0; i < total; ++i) {
        int64_t src = 0;
        for (int64_t a = 0; a < rank; ++a) src += (first[a] + idx[a] * step[a]) * stride[a];
        out.v.push_back(data.v[src]);
        if (!data.sym.empty()) out.sym.push_back(data.sym[src]);
        for (int64_t a = rank; a-- > 0;) {
            if (++idx[a] < count[a]) break;
            idx[a] = 0;
        }
    }
    set_const(out);
}

void Importer::constant() {
    if (cur_->attribute.size() != 1) fail_node("expects exactly one attribute");
    const AttributeProto& a = cur_->attribute[0];
    Const k;
    if (a.name == "value") {
        if (a.t.empty()) fail_node("attribute 'value' holds no tensor");
        k = to_const(a.t[0]);
    } else if (a.name == "value_float") {
        k.v = {a.f};
    } else if (a.name == "value_floats") {
        k.v.assign(a.floats.begin(), a.floats.end());
        k.dims = {k.count()};
    } else if (a.name == "value_int") {
        k.type = kInt64;
        k.v = {static_cast<double>(a.i)};
    } else if (a.name == "value_ints") {
        k.type = kInt64;
        for (int64_t v : a.ints) k.v.push_back(static_cast<double>(v));
        k.dims = {k.count()};
    } else {
        fail_node("attribute '" + a.name + "' is not supported");
    }
    set_const(k);
}

void Importer::constant_of_shape() {
    const std::vector<int64_t> dims = const_ints(const_input(0, "the shape"), "the shape");
    Const k;
    k.dims = dims;
    int64_t count = 1;
    for (int64_t d : dims) {
        if (d < 0 || (d && count > (1 << 24) / d)) fail_node("shape " + join(dims) + " is too large");
        count *= d;
    }
    double fill = 0;
    if (const AttributeProto* a = attr("value")) {
        if (a->t.empty()) fail_node("attribute 'value' holds no tensor");
        Const v = to_const(a->t[0]);
        if (v.count() != 1) fail_node("attribute 'value' must hold one value");
        fill = v.v[0];
        k.type = v.type;
    }
    reserve_const(count);
    k.v.assign(static_cast<size_t>(count), fill);
    set_const(k);
}

void Importer::convert(const NodeProto& node) {
    cur_ = &node;
    if (node.output.empty()) fail_node("has no output");
    const std::string& op = node.op_type;
    if (op == "Conv") conv();
    else if (op == "Relu") activation(OpKind::Relu);
    else if (op == "LeakyRelu") activation(OpKind::LeakyRelu);
    else if (op == "Elu") activation(OpKind::Elu);
    else if (op == "Sigmoid") activation(OpKind::Sigmoid);
    else if (op == "Tanh") activation(OpKind::Tanh);
    else if (op == "Softmax") softmax();
    else if (op == "MaxPool") pool(true);
    else if (op == "AveragePool") pool(false);
    else if (op == "GlobalAveragePool") global_pool(false);
    else if (op == "GlobalMaxPool") global_pool(true);
    else if (op == "ReduceMean") reduce(false);
    else if (op == "ReduceMax") reduce(true);
    else if (op == "BatchNormalization") batch_norm();
    else if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") binary();
    else if (op == "Gemm") gemm();
    else if (op == "MatMul") matmul();
    else if (op == "Reshape") reshape();
    else if (op == "Flatten") flatten();
    else if (op == "Squeeze") squeeze(false);
    else if (op == "Unsqueeze") squeeze(true);
    else if (op == "Transpose") transpose();
    else if (op == "Concat") concat();
    else if (op == "Pad") pad();
    else if (op == "Shape") shape_of();
    else if (op == "Gather") gather();
    else if (op == "Cast") cast();
    else if (op == "Slice") slice();
    else if (op == "Constant") constant();
    else if (op == "ConstantOfShape") constant_of_shape();
    else if (op == "Identity" || op == "Dropout") {
        if (op == "Dropout") {
            refuse_extra_outputs(1);
            if (has_input(2)) {
                const Const& training = const_input(2, "training_mode");
                if (training.count() && training.v[0] != 0) fail_node("runs in training mode");
            }
        }
        set_output(0, input(0));
    }
}

// A Conv or Dense followed by a per-channel affine, when nothing else reads the layer's raw
// output, absorbs it: SPEC.md makes z^l the output of the last folded op, and the layer takes
// that op's output name.
void Importer::fold_affines() {
    std::vector<int> consumers(g_.nodes.size(), 0);
    for (const Node& n : g_.nodes)
        for (int i : n.inputs) ++consumers[i];
    std::vector<int> forward(g_.nodes.size());
    for (size_t i = 0; i < g_.nodes.size(); ++i) forward[i] = static_cast<int>(i);
    for (size_t i = 0; i < g_.nodes.size(); ++i) {
        Node& n = g_.nodes[i];
        for (int& in : n.inputs) in = forward[in];
        if (n.kind != OpKind::Affine) continue;
        Node& p = g_.nodes[n.inputs[0]];
        if (!p.is_filter_layer() || consumers[n.inputs[0]] != 1 || n.inputs[0] == g_.output) continue;
        const size_t f = static_cast<size_t>(p.channels);
        const size_t per = p.weight.size() / f;
        for (size_t c = 0; c < f; ++c) {
            for (size_t j = 0; j < per; ++j) p.weight[c * per + j] *= n.scale[c];
            p.bias[c] = p.bias[c] * n.scale[c] + n.shift[c];
        }
        p.folded.push_back({n.onnx_node, n.onnx_op, n.scale, n.shift});
        p.name = n.name;
        forward[i] = n.inputs[0];
        consumers[n.inputs[0]] = consumers[i];
        if (g_.output == static_cast<int>(i)) g_.output = n.inputs[0];
        n.kind = OpKind::Input;  // marks it dead; prune_unused removes it
        n.inputs.clear();
    }
}

// Removes nodes the output does not depend on, renumbering the rest in their order.
void Importer::prune_unused() {
    std::vector<bool> live(g_.nodes.size(), false);
    live[0] = true;
    live[g_.output] = true;
    for (size_t i = g_.nodes.size(); i-- > 1;)
        if (live[i])
            for (int in : g_.nodes[i].inputs) live[in] = true;
    std::vector<int> index(g_.nodes.size(), -1);
    std::vector<Node> kept;
    std::vector<int64_t> lens;
    for (size_t i = 0; i < g_.nodes.size(); ++i) {
        if (!live[i] || (i > 0 && g_.nodes[i].kind == OpKind::Input)) continue;
        index[i] = static_cast<int>(kept.size());
        kept.push_back(std::move(g_.nodes[i]));
        lens.push_back(len_[i]);
    }
    for (Node& n : kept)
        for (int& in : n.inputs) in = index[in];
    g_.output = index[g_.output];
    g_.nodes = std::move(kept);
    len_ = std::move(lens);
}

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
        if (default_domain && supported_ops().count(node.op_type)) continue;
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
    fold_affines();
    prune_unused();
    return g_;
}

}  // namespace

Graph import_model(const ModelProto& model, const std::string& source, const std::string& model_dir,
                   uint64_t max_memory) {
    return Importer(model, source, model_dir, max_memory).run();
}

}  // namespace tsviz::onnx
