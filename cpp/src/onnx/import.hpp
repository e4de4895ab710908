// Lowers a decoded ONNX model into the engine's IR. Throws ModelError naming the file, the
// node and op, and what is wrong; lists every unsupported op at once.
#pragma once

#include <string>

#include "graph.hpp"
#include "onnx/proto.hpp"

namespace tsviz::onnx {

// `model_dir` is the folder of the model file, where external tensor data may lie; empty for
// a model given as bytes (external data is then refused). `max_memory` bounds the decoded
// weights and every constant folded at import (LoadOptions::max_memory).
Graph import_model(const ModelProto& model, const std::string& source, const std::string& model_dir,
                   uint64_t max_memory);

}  // namespace tsviz::onnx
