// Shared declarations of the binding files: one file per area, each registers into the module.
#pragma once

#include <pybind11/pybind11.h>

namespace tsviz::python {

void bind_model(pybind11::module_& m);

}  // namespace tsviz::python
