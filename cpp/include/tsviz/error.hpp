// The error hierarchy of the TSViz engine. Every refusal is one of these, never an abort.
//   Error         base of all, derives from std::runtime_error
//   ModelError    the file or the graph: not ONNX, truncated, unsupported op/attribute/type
//   ShapeError    the input given to a model does not fit it
//   ArgumentError an argument of an API call is out of range (layer, filter, position, target)
// The Python module maps them to tsviz_native.ModelError / ShapeError / ArgumentError, which
// subclass ValueError and carry the same message.
#pragma once

#include <stdexcept>
#include <string>

namespace tsviz {

class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class ModelError : public Error {
public:
    using Error::Error;
};

class ShapeError : public Error {
public:
    using Error::Error;
};

class ArgumentError : public Error {
public:
    using Error::Error;
};

}  // namespace tsviz
