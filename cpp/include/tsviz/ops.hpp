// The ops of the engine's registry, for front ends and tests: their names as NodeInfo::op
// writes them (docs/engine.md lists the ONNX ops each lowers from).
#pragma once

#include <string>
#include <vector>

namespace tsviz {

// Every op of the registry that a graph can hold, in registry order (the model input is not
// an op): each has its forward, backward and trace rules.
std::vector<std::string> registered_ops();

}  // namespace tsviz
