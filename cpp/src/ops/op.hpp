// The contract every op family implements, and the registry (ops/registry.cpp) that maps an
// IR op kind to its rules. Each family file defines, for each of its ops, every rule side by
// side and gathers them in `OpRules <family>_rules()`; ops/op_list.hpp has one line per op.
// Adding an op touches its family file and that line.
#pragma once

#include <cstdint>
#include <vector>

#include "graph.hpp"
#include "small_vector.hpp"

namespace tsviz::onnx {
class Lowering;  // onnx/lowering.hpp: the importer's state while it walks the ONNX nodes
}

namespace tsviz::ops {

// One entry per input of a node, in place for the usual one or two (a concatenation may have
// more): the engine builds these lists for every node of every pass.
template <class T>
using PerInput = SmallVector<T, 4>;

// One tensor of a batch: n samples of (c, l) floats, contiguous.
struct View {
    float* data = nullptr;
    int64_t n = 0, c = 0, l = 0;
    float* sample(int64_t i) const { return data + i * c * l; }
};

struct ConstView {
    const float* data = nullptr;
    int64_t n = 0, c = 0, l = 0;
    ConstView() = default;
    ConstView(const View& v) : data(v.data), n(v.n), c(v.c), l(v.l) {}  // NOLINT: views convert
    const float* sample(int64_t i) const { return data + i * c * l; }
};

// What shape inference resolves for one node at one input length.
struct Resolved {
    Shape out;
    int64_t pad_begin = 0;   // window ops: padding after auto_pad is resolved
    int64_t pad_end = 0;
    int64_t aux_per_sample = 0;  // int32 values the forward caches for the backward (argmax)
    // The node whose output this one is, element for element as it lies in memory (a
    // channel-major Flatten): the arena gives it that node's storage, and its forward writes
    // nothing. -1: an output of its own.
    int view_of = -1;
};

struct ForwardArgs {
    const Node& node;
    const Resolved& geo;
    PerInput<ConstView> in;
    View out;
    int32_t* aux = nullptr;  // aux_per_sample * n values
    // Set by the engine, for ops whose rules say they honour it (OpRules::forward_relu), in a
    // pass that never reads the node's own output (predict; an explanation that keeps no
    // tensors): the ReLU that is the node's only reader is fused in, and `out` is its output.
    bool relu = false;
};

// A batched vector-Jacobian product. Cotangent rows are grouped by sample: row r belongs to
// forward sample r / rep, whose cached values (inputs, output, argmax) the rule reads.
// Gradients are accumulated (+=) into grad_in; an entry with data == nullptr is not needed.
struct BackwardArgs {
    const Node& node;
    const Resolved& geo;
    PerInput<ConstView> in;  // forward inputs, all samples
    ConstView out;           // forward output, all samples
    const int32_t* aux = nullptr;
    ConstView grad_out;         // rows x (c, l)
    PerInput<View> grad_in;     // rows x (c, l) per input
    int64_t rep = 1;
    // Set by the engine for rules with OpRules::backward_writes_all: bit k when grad_in[k]
    // holds no values yet (this node is that input's first reader to pass a gradient back):
    // the rule sets its every element (=) instead of adding to it (+=), and the engine skips
    // zeroing it. Rules of one input test it as a whole.
    uint32_t overwrite = 0;
    static constexpr size_t kFreshBits = 32;  // inputs past these are never fresh
    // Whether grad_in[k] holds no values yet (its bit in `overwrite`).
    bool fresh(size_t k) const { return k < kFreshBits && (overwrite >> k & 1u); }
    // MaxPool only, set by the engine when the ReLU before it has no other reader: grad_in is
    // the ReLU's input's gradient, passed where the pooled value is positive (there the
    // argmax's input is positive), as the ReLU's rule would pass it; 0 elsewhere.
    bool relu_gate = false;
};

// For backward rules that add into their input's gradient in scattered places: zeroes it
// first when the engine passes it uninitialised (BackwardArgs::overwrite).
void zero_if_overwrite(const BackwardArgs& a);

// The receptive-field rule of the trace (SPEC.md, recursive highlighting) for one sample:
// marks in mask_in[k] (OR) the points of input k that produced the marked points of the
// output. With active_only, points whose local derivative is exactly 0 are not marked.
struct TraceArgs {
    const Node& node;
    const Resolved& geo;
    PerInput<ConstView> in;  // forward inputs, all samples
    ConstView out;
    const int32_t* aux = nullptr;
    int64_t sample = 0;
    const uint8_t* mask_out = nullptr;  // (c, l) of the output
    PerInput<uint8_t*> mask_in;         // (c, l) per input
    bool active_only = false;
};

// Forward mode (Jacobian-vector products) for the saliency of every filter at once: tangents
// of one input point only reach a band of positions in each tensor, so every tensor's tangent
// is kept as (channels, width) over positions [start, start + width). `count` tangents of one
// forward sample, each with its own starts; t_out is zeroed before the rule runs.
struct TangentArgs {
    const Node& node;
    const Resolved& geo;
    PerInput<ConstView> in;         // forward inputs of the sample (n = 1)
    ConstView out;                  // forward output of the sample
    const int32_t* aux = nullptr;   // the sample's cached values
    int64_t count = 0;
    PerInput<const float*> t_in;          // per input: count x (c, w_in)
    PerInput<int64_t> w_in;
    PerInput<const int64_t*> start_in;     // per input: count starts
    float* t_out = nullptr;                // count x (c, w_out)
    int64_t w_out = 0;
    const int64_t* start_out = nullptr;
    // Set by the engine, for ops whose rules say they honour it (OpRules::tangent_relu_gate),
    // when the ReLU that is the node's only reader is fused in: the tangent is kept where the
    // forward output is positive, and 0 elsewhere.
    bool relu_gate = false;
};

// The positions [lo, hi] of a node's output that depend on input positions in[k] of each of
// its inputs (an empty band has hi < lo). A band may be wider than the exact dependence.
struct Band {
    int64_t lo = 0, hi = -1;
    bool empty() const { return hi < lo; }
};
struct BandArgs {
    const Node& node;
    const Resolved& geo;
    PerInput<Shape> in;      // input shapes
    PerInput<Band> in_band;  // per input
};

// Gradients with respect to a filter layer's own parameters, for training: from the cotangent of
// its output (one row per forward sample) and its forward input, accumulated (+=) into
// grad_weight (the layout of Node::weight) and grad_bias (F).
struct WeightGradArgs {
    const Node& node;
    const Resolved& geo;
    ConstView in;        // forward input, n samples
    ConstView grad_out;  // n rows x (c, l)
    float* grad_weight = nullptr;
    float* grad_bias = nullptr;
};

// An ONNX op an IR op lowers from. The importer dispatches each ONNX node to the one form that
// claims its op type (at the model's opset); a node no form claims is reported, never dropped.
struct OnnxForm {
    const char* op;                  // ONNX op type, default domain
    void (*lower)(onnx::Lowering&);  // reads the current node's attributes and inputs, emits IR
    // Channel c of the output reads only channel c of input 0, on the same axis: pruning a
    // filter of the layer before passes through this op (tsviz_native/analysis/pruning.py).
    bool keeps_channels = false;
    int64_t since_opset = 1;         // the first opset that defines the op
};

struct OpRules {
    OpKind kind;
    const char* name;
    // Shape rule: throws ShapeError naming the node when the input does not fit.
    Resolved (*infer)(const Node& node, const std::vector<Shape>& in);
    void (*forward)(const ForwardArgs& args);
    void (*backward)(const BackwardArgs& args);
    void (*trace)(const TraceArgs& args);
    Band (*band)(const BandArgs& args);
    void (*tangent)(const TangentArgs& args);
    // Work done once when the model is built (packing weights); null when there is none.
    void (*prepare)(Node& node) = nullptr;
    std::vector<OnnxForm> onnx;  // the ONNX ops it lowers from; empty only for the input
    // Applied elementwise with a derivative of its own: after a filter layer it makes that
    // layer's a^l (SPEC.md), and importance and saliency go through its exact derivative.
    bool activation = false;
    // The ONNX pattern a graph pass fuses into this op (onnx/graph_passes.cpp), for ops that
    // exporters write as several nodes; an op with no ONNX op of its own must have one.
    const char* fused_from = nullptr;
    // Gradients of the op's weights and bias; null for ops without parameters to train.
    void (*weight_backward)(const WeightGradArgs& args) = nullptr;
    // The tangent rule writes every element of its output band, so the engine need not zero
    // the buffer first.
    bool tangent_writes_all = false;
    // The tangent rule honours TangentArgs::relu_gate: a ReLU that is the node's only reader
    // is fused into it.
    bool tangent_relu_gate = false;
    // The backward rule honours BackwardArgs::overwrite.
    bool backward_writes_all = false;
    // The forward rule honours ForwardArgs::relu: a ReLU that is the node's only reader is
    // fused into it when nothing else needs the node's own output (forward_samples' plan).
    bool forward_relu = false;
};

// The mandatory rules of an op, in the order of OpRules: a family whose op lacks one of
// forward_op, backward_op, trace_op, band_op, tangent_op does not compile.
#define TSVIZ_RULES(kind, op, infer) \
    OpRules { OpKind::kind, #kind, infer, forward_##op, backward_##op, trace_##op, band_##op, tangent_##op, nullptr, {}, false, nullptr, nullptr }


const OpRules& rules(OpKind kind);
// Runs every node's prepare rule; a model's graph is prepared once, before its first run.
void prepare(Graph& graph);
const std::vector<OpRules>& all_rules();

// Each family's rules, gathered by the registry from ops/op_list.hpp.
#define TSVIZ_DECLARE_RULES(kind, family) OpRules family##_rules();
TSVIZ_OP_LIST(TSVIZ_DECLARE_RULES)
#undef TSVIZ_DECLARE_RULES
// out[r] = scale * the sum of row r, for `rows` rows of `len` floats one after another
// (pool.cpp): global average pooling, forward and tangent, and forward-mode saliency's sums
// over positions. Each row's sum is the same whatever the other rows.
// AVX2 vectors where the processor has them (ops::isa_level), AVX-512's for rows of 32 or
// more, eight rows' totals at a time;
// row_sums_reference is the plain loop, the definition the tests hold them to.
void row_sums(const float* x, int64_t rows, int64_t len, float scale, float* out);
void row_sums_reference(const float* x, int64_t rows, int64_t len, float scale, float* out);
// Forward-mode saliency's sums over the bands of n tangents, into a filter-major grid: tangent
// j's f_n rows of w floats lie one after another from x + j * stride, and
// out[f * ld + j] = the sum of row f of tangent j (pool.cpp). On AVX2 each row's sum is
// row_sums's, in the same order, and eight tangents' totals are stored side by side;
// band_sums_reference is the plain loop.
void band_sums(const float* x, int64_t n, int64_t stride, int64_t f_n, int64_t w, float* out, int64_t ld);
void band_sums_reference(const float* x, int64_t n, int64_t stride, int64_t f_n, int64_t w, float* out, int64_t ld);

// Add's tangent by plain loops (elementwise.cpp), the definition its vector paths are held to.
void tangent_add_reference(const TangentArgs& a);

// A convolution's input gradient for cotangent rows that are zero outside one filter each
// (reverse-mode saliency, where filter f's row of a^l is the cotangent): dx[c, o * s - pad +
// k * d] = sum over k of W[f, c, k] dz[o] for the channels c of f's group, 0 for the others;
// every element of dx (input channels x input length) is written. 1 / F of the dense product.
struct FilterRow {
    int64_t filter;
    const float* dz;  // the output length
    float* dx;        // input channels x input length
};
void conv_filter_input_grad(const Node& node, const Resolved& geo, const Shape& in, const FilterRow* rows,
                            int64_t count);
// The input gradient of a convolution whose output reaches the cotangent only through a
// max-pooling, with a ReLU between or not (a reverse sweep's conv -> ReLU -> MaxPool): the
// pooling's output cotangent rows go straight to the convolution's input (gemm.hpp,
// pooled_tap_product) without the pooled cotangent, zero but at each window's argmax where
// the ReLU is on, being formed and read whole. For a saliency sweep's rows (rep per sample:
// the argmaxes are worked out once per sample), stride 1, one group, up to 32 input channels
// (backward_conv_pooled_serves; where it does not apply the engine runs both rules).
struct PooledConvArgs {
    const Node& conv;
    const Resolved& conv_geo;
    const int32_t* arg;   // the pooling's argmaxes, per sample (filters x windows)
    ConstView pooled;     // the pooling's forward output where a ReLU is between (its gate), else no data
    ConstView grad_out;   // the pooling's output cotangent, rows x (filters, windows)
    View grad_in;         // the convolution input's gradient, rows x (channels, length)
    int64_t rep = 1;
    bool overwrite = false;  // grad_in holds no values yet: set, not add
};
// Whether it applies (reads the node and the shapes only: grad_in may have no data yet); the
// pass itself, where it does.
bool backward_conv_pooled_serves(const PooledConvArgs& a);
void backward_conv_pooled(const PooledConvArgs& a);
// Weight gradients of the filter layers (conv.cpp, dense.cpp), and the same by plain loops in
// double, for tests and as the definition.
void weight_backward_conv(const WeightGradArgs&);
void weight_backward_dense(const WeightGradArgs&);
void weight_backward_reference(const WeightGradArgs&);
Resolved infer_conv(const Node&, const std::vector<Shape>&);
Resolved infer_dense(const Node&, const std::vector<Shape>&);
Resolved infer_max_pool(const Node&, const std::vector<Shape>&);
Resolved infer_avg_pool(const Node&, const std::vector<Shape>&);
Resolved infer_global_pool(const Node&, const std::vector<Shape>&);
Resolved infer_same(const Node&, const std::vector<Shape>&);
Resolved infer_add(const Node&, const std::vector<Shape>&);
Resolved infer_mul(const Node&, const std::vector<Shape>&);
Resolved infer_sub(const Node&, const std::vector<Shape>&);
Resolved infer_div(const Node&, const std::vector<Shape>&);
Resolved infer_slice(const Node&, const std::vector<Shape>&);
Resolved infer_concat(const Node&, const std::vector<Shape>&);
Resolved infer_flatten(const Node&, const std::vector<Shape>&);

// Band rules shared by many ops: the same positions (elementwise ops), the hull of the
// inputs' bands (sums, concatenations), every position (ops that mix all positions).
Band band_same(const BandArgs&);
Band band_hull(const BandArgs&);
Band band_full(const BandArgs&);
// Output positions of a sliding window (stride, dilation, resolved padding) that read input
// positions in `in`.
Band window_band(const Node& node, const Resolved& geo, int64_t out_len, Band in);

// Sliding-window geometry shared by convolution and pooling (ONNX semantics).
struct Window {
    int64_t kernel, stride, dilation, pad_begin, pad_end;
};
// Resolves auto_pad for an input of length `length` into explicit pads.
void resolve_auto_pad(AutoPad mode, int64_t length, Window& w);
// Output length; ceil_mode drops a last window that would start in the end padding.
int64_t window_output_length(int64_t length, const Window& w, bool ceil_mode);

}  // namespace tsviz::ops
