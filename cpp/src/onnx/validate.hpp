// The structural validator: checks a decoded ONNX model before the importer decodes a tensor
// or allocates anything for it. Throws ModelError naming the file, the node and op.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "onnx/proto.hpp"

namespace tsviz::onnx {

// Returns the nodes in a topological order (their own order when the file has one).
std::vector<size_t> validate_model(const ModelProto& model, const std::string& source, int64_t opset,
                                   uint64_t max_memory);

}  // namespace tsviz::onnx
