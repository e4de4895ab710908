// The losses (tsviz/loss.hpp) for Python: tsviz_native.loss() validates the arrays and calls this.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <tuple>

#include "bindings.hpp"
#include "tsviz/error.hpp"
#include "tsviz/loss.hpp"

namespace py = pybind11;

namespace tsviz::python {

void bind_loss(py::module_& m) {
    m.def(
        "batch_loss",
        [](const std::string& name, py::array_t<float, py::array::c_style | py::array::forcecast> values,
           py::array_t<float, py::array::c_style | py::array::forcecast> y) {
            const Loss loss = parse_loss(name);
            if (values.ndim() != 2) throw ArgumentError("loss values must be (samples, outputs)");
            const int64_t n = values.shape(0), k = values.shape(1);
            const int64_t cols = loss_target_columns(loss, k);
            if (y.size() != n * cols)
                throw ArgumentError(std::string(loss_name(loss)) + " needs " + std::to_string(cols) +
                                    " target value(s) per sample: " + std::to_string(n * cols) + " in all, got " +
                                    std::to_string(y.size()));
            py::array_t<float> grad({n, k}), per(n);
            double mean = 0;
            {
                py::gil_scoped_release release;
                mean = batch_loss(loss, values.data(), n, k, y.data(), grad.mutable_data(), per.mutable_data());
            }
            return std::make_tuple(mean, per, grad);
        },
        py::arg("loss"), py::arg("values"), py::arg("y"),
        "(mean, per-sample losses (N,), d loss_i / d values_i (N, K)) of tsviz/loss.hpp");
}

}  // namespace tsviz::python
