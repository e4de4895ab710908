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

struct OpRules {
    OpKind kind;
    const char* name;
    // Shape rule: throws ShapeError naming the node when the input does not fit.
    Resolved (*infer)(const Node& node, const std::vector<Shape>& in);
    void (*forward)(const ForwardArgs& args);
};

const OpRules& rules(OpKind kind);
const std::vector<OpRules>& all_rules();

// Family entry points, referenced by the registry table.
Resolved infer_conv(const Node&, const std::vector<Shape>&);
void forward_conv(const ForwardArgs&);
Resolved infer_dense(const Node&, const std::vector<Shape>&);
void forward_dense(const ForwardArgs&);
Resolved infer_max_pool(const Node&, const std::vector<Shape>&);
void forward_max_pool(const ForwardArgs&);
Resolved infer_avg_pool(const Node&, const std::vector<Shape>&);
void forward_avg_pool(const ForwardArgs&);
Resolved infer_global_pool(const Node&, const std::vector<Shape>&);
void forward_global_avg_pool(const ForwardArgs&);
void forward_global_max_pool(const ForwardArgs&);
Resolved infer_same(const Node&, const std::vector<Shape>&);
void forward_relu(const ForwardArgs&);
void forward_leaky_relu(const ForwardArgs&);
void forward_elu(const ForwardArgs&);
void forward_sigmoid(const ForwardArgs&);
void forward_tanh(const ForwardArgs&);
void forward_softmax(const ForwardArgs&);
void forward_affine(const ForwardArgs&);
Resolved infer_add(const Node&, const std::vector<Shape>&);
void forward_add(const ForwardArgs&);
Resolved infer_concat(const Node&, const std::vector<Shape>&);
void forward_concat(const ForwardArgs&);
Resolved infer_flatten(const Node&, const std::vector<Shape>&);
void forward_flatten(const ForwardArgs&);

// Sliding-window geometry shared by convolution and pooling (ONNX semantics).
struct Window {
    int64_t kernel, stride, dilation, pad_begin, pad_end;
};
// Resolves auto_pad for an input of length `length` into explicit pads.
void resolve_auto_pad(AutoPad mode, int64_t length, Window& w);
// Output length; ceil_mode drops a last window that would start in the end padding.
int64_t window_output_length(int64_t length, const Window& w, bool ceil_mode);

}  // namespace tsviz::ops
