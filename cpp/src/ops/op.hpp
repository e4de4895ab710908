// The contract every op family implements, and the registry (ops/registry.cpp) that maps an
// IR op kind to its rules. One table, one line per op; adding an op touches its family file
// and that line.
#pragma once

#include <cstdint>
#include <vector>

#include "graph.hpp"

namespace tsviz::ops {

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
};

struct ForwardArgs {
    const Node& node;
    const Resolved& geo;
    std::vector<ConstView> in;
    View out;
    int32_t* aux = nullptr;  // aux_per_sample * n values
};

// A batched vector-Jacobian product. Cotangent rows are grouped by sample: row r belongs to
// forward sample r / rep, whose cached values (inputs, output, argmax) the rule reads.
// Gradients are accumulated (+=) into grad_in; an entry with data == nullptr is not needed.
struct BackwardArgs {
    const Node& node;
    const Resolved& geo;
    std::vector<ConstView> in;  // forward inputs, all samples
    ConstView out;              // forward output, all samples
    const int32_t* aux = nullptr;
    ConstView grad_out;         // rows x (c, l)
    std::vector<View> grad_in;  // rows x (c, l) per input
    int64_t rep = 1;
};

// The receptive-field rule of the trace (SPEC.md, recursive highlighting) for one sample:
// marks in mask_in[k] (OR) the points of input k that produced the marked points of the
// output. With active_only, points whose local derivative is exactly 0 are not marked.
struct TraceArgs {
    const Node& node;
    const Resolved& geo;
    std::vector<ConstView> in;  // forward inputs, all samples
    ConstView out;
    const int32_t* aux = nullptr;
    int64_t sample = 0;
    const uint8_t* mask_out = nullptr;  // (c, l) of the output
    std::vector<uint8_t*> mask_in;      // (c, l) per input
    bool active_only = false;
};

// Forward mode (Jacobian-vector products) for the saliency of every filter at once: tangents
// of one input point only reach a band of positions in each tensor, so every tensor's tangent
// is kept as (channels, width) over positions [start, start + width). `count` tangents of one
// forward sample, each with its own starts; t_out is zeroed before the rule runs.
struct TangentArgs {
    const Node& node;
    const Resolved& geo;
    std::vector<ConstView> in;      // forward inputs of the sample (n = 1)
    ConstView out;                  // forward output of the sample
    const int32_t* aux = nullptr;   // the sample's cached values
    int64_t count = 0;
    std::vector<const float*> t_in;       // per input: count x (c, w_in)
    std::vector<int64_t> w_in;
    std::vector<const int64_t*> start_in;  // per input: count starts
    float* t_out = nullptr;                // count x (c, w_out)
    int64_t w_out = 0;
    const int64_t* start_out = nullptr;
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
    std::vector<Shape> in;      // input shapes
    std::vector<Band> in_band;  // per input
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
    // Gradients of the op's weights and bias; null for ops without parameters to train.
    void (*weight_backward)(const WeightGradArgs& args) = nullptr;
};

const OpRules& rules(OpKind kind);
// Runs every node's prepare rule; a model's graph is prepared once, before its first run.
void prepare(Graph& graph);
const std::vector<OpRules>& all_rules();

// Family entry points, referenced by the registry table.
#define TSVIZ_OP_RULES(op)                        \
    void forward_##op(const ForwardArgs&);        \
    void backward_##op(const BackwardArgs&);      \
    void trace_##op(const TraceArgs&);            \
    Band band_##op(const BandArgs&);              \
    void tangent_##op(const TangentArgs&);
TSVIZ_OP_RULES(conv)
TSVIZ_OP_RULES(dense)
TSVIZ_OP_RULES(max_pool)
TSVIZ_OP_RULES(avg_pool)
TSVIZ_OP_RULES(global_avg_pool)
TSVIZ_OP_RULES(global_max_pool)
TSVIZ_OP_RULES(relu)
TSVIZ_OP_RULES(leaky_relu)
TSVIZ_OP_RULES(elu)
TSVIZ_OP_RULES(sigmoid)
TSVIZ_OP_RULES(tanh)
TSVIZ_OP_RULES(softmax)
TSVIZ_OP_RULES(affine)
TSVIZ_OP_RULES(add)
TSVIZ_OP_RULES(concat)
TSVIZ_OP_RULES(flatten)
#undef TSVIZ_OP_RULES
void prepare_conv(Node&);
void prepare_dense(Node&);
void weight_backward_conv(const WeightGradArgs&);
void weight_backward_dense(const WeightGradArgs&);
// The same gradients by plain loops in double, for tests and as the definition.
void weight_backward_reference(const WeightGradArgs&);
Resolved infer_conv(const Node&, const std::vector<Shape>&);
Resolved infer_dense(const Node&, const std::vector<Shape>&);
Resolved infer_max_pool(const Node&, const std::vector<Shape>&);
Resolved infer_avg_pool(const Node&, const std::vector<Shape>&);
Resolved infer_global_pool(const Node&, const std::vector<Shape>&);
Resolved infer_same(const Node&, const std::vector<Shape>&);
Resolved infer_add(const Node&, const std::vector<Shape>&);
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
