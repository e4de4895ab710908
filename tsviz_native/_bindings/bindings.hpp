// Shared declarations of the binding files: one file per area, each registers into the module.
#pragma once

#include <pybind11/pybind11.h>

#include "tsviz/model.hpp"

namespace tsviz::python {

void bind_model(pybind11::module_& m);
void bind_explain(pybind11::module_& m);
void bind_loss(pybind11::module_& m);
void bind_model_graph(pybind11::module_& m, pybind11::class_<Model>& cls);
void bind_train(pybind11::module_& m);
void bind_model_explain(pybind11::class_<Model>& cls);

}  // namespace tsviz::python
