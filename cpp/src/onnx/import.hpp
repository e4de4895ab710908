// Lowers a decoded ONNX model into the engine's IR. Throws ModelError naming the file, the
// node and op, and what is wrong; lists every unsupported op at once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "graph.hpp"
#include "onnx/proto.hpp"

namespace tsviz::onnx {

// `model_dir` is the folder of the model file, where external tensor data may lie; empty for
// a model given as bytes (external data is then refused). `max_memory` bounds the decoded
// weights and every constant folded at import (LoadOptions::max_memory).
Graph import_model(const ModelProto& model, const std::string& source, const std::string& model_dir,
                   uint64_t max_memory);

// An ONNX op type the importer lowers, and the facts other code asks about it.
struct OnnxOp {
    std::string op;          // ONNX op type (default domain)
    std::string ir_op;       // the IR op whose rules lower it; empty for constant folding and views
    bool keeps_channels;     // output channel c reads only channel c of input 0 (pruning passes)
    bool activation;         // an elementwise activation: a filter layer's a^l (SPEC.md)
    int64_t since_opset;
};
// Every ONNX op type a lowering rule claims, sorted by name.
std::vector<OnnxOp> supported_ops();

}  // namespace tsviz::onnx
