// The ops of the engine's registry, for front ends and tests: their names as NodeInfo::op
// writes them (docs/engine.md lists the ONNX ops each lowers from).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tsviz {

// Every op of the registry that a graph can hold, in registry order (the model input is not
// an op): each has its forward, backward and trace rules.
std::vector<std::string> registered_ops();
// The ops of the registry that are activations: after a filter layer (as its only consumer)
// one gives that layer's a^l (docs/definitions.md).
std::vector<std::string> activation_ops();

// One ONNX op type the importer lowers, and what the rest of the code needs to know of it.
struct OnnxOpInfo {
    std::string op;           // ONNX op type (default domain)
    std::string ir_op;        // the engine op whose rules lower it; empty for constant folding and views
    bool keeps_channels;      // output channel c reads only channel c of input 0: pruning passes through
    bool activation;          // an elementwise activation: after a filter layer it gives that layer's a^l
    int64_t since_opset;      // the first opset that defines it
};
// Every ONNX op type the importer lowers, sorted by name.
std::vector<OnnxOpInfo> onnx_ops();

}  // namespace tsviz
