// The public C++ API of the TSViz engine: load an ONNX model (a path or the bytes of one) and
// run it. Plain C++17 value types; a Model is immutable after loading and safe to share
// between threads (every run allocates its own buffers).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tsviz/error.hpp"
#include "tsviz/explain.hpp"

namespace tsviz {

// A filter layer (docs/definitions.md): a convolution or a dense node; its filters are its output
// channels. Named by the ONNX name of its output tensor, after folding (a BatchNormalization
// or per-channel affine after a convolution makes the folded op's output the layer's name).
struct LayerInfo {
    std::string name;
    // A short display name, unique within the model: the kind, its number within the kind
    // (from 1), the kernel and filter count of a convolution ("conv 2 · k=5 · 32 filters") or
    // the unit count of a dense layer ("dense 1 · 2 units"). Tensor names can be long and, in
    // models exported from Keras, alike.
    std::string label;
    std::string op;          // "conv" or "dense"
    std::string onnx_node;   // the ONNX node (Conv, Gemm, MatMul) the layer came from
    std::string onnx_op;
    int64_t n_filters = 0;
    int64_t in_channels = 0; // input channels (conv) or input features (dense)
    int64_t out_length = 0;  // positions per filter at the model's declared length; -1 if free
    int64_t kernel = 1;
    int64_t stride = 1;
    int64_t dilation = 1;
    int64_t group = 1;
    int64_t node = 0;        // index in Model::nodes()
    // a^l (docs/definitions.md): the tensor of the elementwise activation that is the layer's
    // only consumer, or the layer's own tensor when none follows; and its index in nodes().
    std::string activation;
    int64_t activation_node = 0;
};

// One node of the engine's graph, as loading lowered and folded it (docs/engine.md): the
// tensor it outputs and the op that computes it. Node 0 is the model input.
struct NodeInfo {
    std::string name;                 // the ONNX name of the tensor it outputs
    std::string op;                   // the engine op (registered_ops()): "Conv", "Relu", "MaxPool", ...
    std::vector<int64_t> inputs;      // indices in Model::nodes() of the nodes it reads
    std::string onnx_node;            // the ONNX node it came from (the input: its own name)
    std::string onnx_op;
    int64_t channels = 0;             // per-sample shape (channels, length) of its tensor,
    int64_t length = -1;              // channels-first, at the declared input length; -1 if free
    int64_t kernel = 1;               // Conv and windowed pooling; 1 elsewhere
    int64_t stride = 1;
    int64_t dilation = 1;
    int64_t group = 1;
    int64_t layer = -1;               // index in Model::layers() of a filter layer, else -1
    bool is_filter_layer() const { return layer >= 0; }
};

// The index in `layers` of the filter layer that `key` names: its tensor name, its label, the
// label's first part ("conv 2"; case and spacing ignored) or its index as digits ("1"; a
// negative one counts from the end). The one lookup of a layer by name, for every front end.
// Throws ArgumentError listing every layer with its index, label and tensor name.
size_t find_layer(const std::vector<LayerInfo>& layers, const std::string& key);

// Limits applied while loading a model and while running it. Model files are untrusted input:
// nothing is allocated for them before it is checked against these.
struct LoadOptions {
    // Most bytes the weights may take once decoded, and the activations of one call (one
    // chunk of a predict batch, the whole batch of an explain). ModelError when the weights or
    // one sample at the declared input length exceed it; ArgumentError for a batch that does.
    uint64_t max_memory = uint64_t{4} << 30;
};

// Options of predict.
struct PredictOptions {
    // NaN or infinity in the input is an ArgumentError naming the first sample and position,
    // unless this is set; then they go through with IEEE semantics (NaN in, NaN out).
    bool allow_nonfinite = false;
    // Filters whose activation a^l is zeroed in this pass (tsviz/explain.hpp, ZeroFilters):
    // removing filters without editing the model (docs/definitions.md, "Faithfulness").
    std::vector<ZeroFilters> zero_filters;
};

// The model's input as ONNX declares it.
struct InputInfo {
    std::string name;
    std::string layout;               // "NCT" (channels-first), "NTC" (channels-last) or "NT"
    int64_t channels = 0;
    int64_t length = -1;              // declared length T; -1 when the ONNX input leaves it free
    std::vector<int64_t> sample_shape;  // per-sample dims in the model's layout; -1 = free
};

class Model {
public:
    // Throws ModelError naming the file and what is wrong.
    static Model load(const std::string& path, const LoadOptions& options = {});
    // `source` names the bytes in messages. External tensor data is refused (no folder).
    static Model from_bytes(const void* data, size_t size, const std::string& source = "<bytes>",
                            const LoadOptions& options = {});

    const InputInfo& input() const;
    const std::string& output_name() const;
    int64_t n_outputs() const;                 // K
    const std::vector<LayerInfo>& layers() const;
    // The filter layer `key` names (find_layer); ArgumentError listing the layers otherwise.
    const LayerInfo& layer(const std::string& key) const;
    // The lowered graph in topological order: what summary() prints, for any front end.
    const std::vector<NodeInfo>& nodes() const;
    int64_t opset() const;
    const std::string& producer() const;
    const std::string& source() const;
    int64_t n_parameters() const;
    std::string summary() const;

    // Runs n samples laid out as the model expects (per-sample dims `sample_shape`, in the
    // model's own layout, e.g. {C, T} or {T, C}); returns n * K outputs, row-major.
    // Throws ShapeError when the sample shape does not fit the model (a fixed declared dim
    // must match), ArgumentError for an empty batch or NaN / infinity in x (unless allowed).
    std::vector<float> predict(const float* x, int64_t n,
                               const std::vector<int64_t>& sample_shape,
                               const PredictOptions& options = {}) const;

    // Forward and backward passes over n samples (as predict takes them), keeping what the
    // explanation needs. Throws ShapeError for the input, ArgumentError for the options.
    Explanation explain(const float* x, int64_t n, const std::vector<int64_t>& sample_shape,
                        const ExplainOptions& options = {}) const;

    // Signed d value_i / d x_i of a batch (tsviz/explain.hpp, GradientOptions): one forward and
    // one backward pass per chunk of samples, nothing else kept. Throws as explain does.
    InputGradient input_gradient(const float* x, int64_t n, const std::vector<int64_t>& sample_shape,
                                 const GradientOptions& options = {}) const;

    struct Impl;  // opaque

private:
    friend class Trainer;  // tsviz/train.hpp: trains a copy of the graph
    std::shared_ptr<const Impl> impl_;
};

}  // namespace tsviz
