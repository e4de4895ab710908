// The engine's own IR. ONNX is decoded once and lowered into this (src/onnx/import.cpp);
// nothing downstream sees protobuf. Every tensor is, per sample, (C, L) channels-first:
// C channels of L positions; a dense layer's output is (D, 1). The batch size N is free and
// so is the input length T where the graph allows it, so shapes are inferred per run.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ops/op_list.hpp"

namespace tsviz {

namespace ops {
struct PackedWeights;  // ops/gemm.hpp: weights packed once for the matrix-product kernel
}

// One kind per entry of the op list (ops/op_list.hpp).
enum class OpKind {
#define TSVIZ_OP_KIND(kind, family) kind,
    TSVIZ_OP_LIST(TSVIZ_OP_KIND)
#undef TSVIZ_OP_KIND
};

const char* op_kind_name(OpKind kind);

enum class AutoPad { NotSet, Valid, SameUpper, SameLower };

// A per-channel affine (BatchNormalization, constant Mul/Add/Sub/Div) that the importer folded
// into the filter layer before it, in the order applied: y = x * scale[c] + shift[c].
struct FoldedAffine {
    std::string onnx_node;
    std::string onnx_op;
    std::vector<float> scale;
    std::vector<float> shift;
};

struct Node {
    OpKind kind = OpKind::Input;
    std::string name;       // the ONNX name of the tensor this node outputs
    std::string onnx_node;  // name of the ONNX node it came from (the filter node when folded)
    std::string onnx_op;    // its op type
    std::vector<int> inputs;  // indices of producer nodes

    int channels = 0;       // output channels, known at import

    // Conv, pooling
    int kernel = 1;
    int stride = 1;
    int dilation = 1;
    int pad_begin = 0;
    int pad_end = 0;
    AutoPad auto_pad = AutoPad::NotSet;
    int group = 1;
    bool ceil_mode = false;
    bool count_include_pad = false;

    // LeakyRelu, Elu, Selu, HardSigmoid: alpha; Selu: gamma in beta; HardSigmoid: beta;
    // Clip: the bounds [alpha, beta]
    float alpha = 0.f;
    float beta = 0.f;
    // Gelu: the tanh approximation instead of erf
    bool approximate = false;
    // Slice: positions [start, end) of the time axis, negative counting from the end (ONNX)
    int64_t start = 0;
    int64_t end = 0;
    // Softmax: 0 = over channels, 1 = over positions
    int axis = 0;
    // Flatten: true when positions are the outer index (out[l * C + c]), as after a
    // channels-last Transpose; false for out[c * L + l]
    bool position_major = false;

    // Conv: (F, C / group, K); Dense: (F, X)
    std::vector<float> weight;
    std::vector<float> bias;    // (F), zeros when the model has none
    // Conv, Dense: where weight and bias come from in the ONNX file, for writing trained
    // values back. weight = weight_scale * op(operand weight_source), op the identity or, when
    // weight_transposed, the transpose of an (X, F) operand (Gemm transB = 0, MatMul);
    // bias = bias_scale * bias_source (Gemm beta; "" when the node has none); then every
    // affine in `folded` applied in turn.
    std::string weight_source;
    std::string bias_source;
    bool weight_transposed = false;
    float weight_scale = 1.f;
    float bias_scale = 1.f;
    std::vector<FoldedAffine> folded;
    // Affine; PRelu: the slope of each channel
    std::vector<float> scale;   // (C)
    std::vector<float> shift;   // (C)
    // Conv, Dense: the weights packed per group for the forward and the input gradient,
    // made by ops::prepare when the model is built.
    std::shared_ptr<const ops::PackedWeights> packed;

    bool is_filter_layer() const { return kind == OpKind::Conv || kind == OpKind::Dense; }
};

// The per-sample shape of one tensor.
struct Shape {
    int64_t c = 0;
    int64_t l = 0;
    int64_t size() const { return c * l; }
};

enum class InputLayout { NCT, NTC, NT };

struct Graph {
    std::vector<Node> nodes;   // topological order; nodes[0] is the input
    int output = -1;           // node whose value is the model output
    InputLayout layout = InputLayout::NCT;
    int64_t input_channels = 0;
    int64_t input_length = -1;  // the length the ONNX input declares; -1 when free
    std::string input_name;
    std::string output_name;
    std::string source;         // file name or "<bytes>", for messages
    int64_t opset = 0;
    std::string producer;

    // Shapes of every node for an input of length t; throws ShapeError naming the node and
    // the length the model expects when t does not fit.
    std::vector<Shape> infer_shapes(int64_t t) const;
};

}  // namespace tsviz
