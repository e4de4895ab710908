// Bindings of tsviz::Trainer (tsviz/train.hpp). tsviz_native/analysis/finetune.py validates the
// data and runs the optimiser on the flat parameter vector; this layer takes C-contiguous
// float32 arrays and releases the GIL while the engine computes.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <string>
#include <tuple>
#include <vector>

#include "bindings.hpp"
#include "tsviz/error.hpp"
#include "tsviz/train.hpp"

namespace py = pybind11;

namespace tsviz::python {

namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

py::dict parameter_dict(const ParameterInfo& p) {
    py::dict d;
    d["layer"] = p.layer;
    d["onnx_node"] = p.onnx_node;
    d["onnx_op"] = p.onnx_op;
    d["weight_shape"] = p.weight_shape;
    d["weight_offset"] = p.weight_offset;
    d["bias_offset"] = p.bias_offset;
    d["n_filters"] = p.n_filters;
    d["weight_source"] = p.weight_source;
    d["bias_source"] = p.bias_source;
    d["weight_transposed"] = p.weight_transposed;
    d["weight_scale"] = p.weight_scale;
    d["bias_scale"] = p.bias_scale;
    py::list folded;
    for (const FoldedOp& f : p.folded) {
        py::dict o;
        o["onnx_node"] = f.onnx_node;
        o["onnx_op"] = f.onnx_op;
        o["scale"] = py::array_t<float>(static_cast<py::ssize_t>(f.scale.size()), f.scale.data());
        o["shift"] = py::array_t<float>(static_cast<py::ssize_t>(f.shift.size()), f.shift.data());
        folded.append(o);
    }
    d["folded"] = folded;
    return d;
}

std::vector<int64_t> sample_shape(const FloatArray& x) {
    if (x.ndim() < 2) throw ArgumentError("expected a batch array (N, ...)");
    return std::vector<int64_t>(x.shape() + 1, x.shape() + x.ndim());
}

}  // namespace

void bind_train(py::module_& m) {
    py::class_<Trainer>(m, "Trainer")
        .def(py::init([](const Model& model, const std::string& loss) { return Trainer(model, parse_loss(loss)); }),
             py::arg("model"), py::arg("loss"))
        .def_property_readonly("size", &Trainer::size)
        .def_property_readonly("loss", [](const Trainer& t) { return std::string(loss_name(t.loss())); })
        .def_property_readonly("parameters",
                               [](const Trainer& t) {
                                   py::list out;
                                   for (const auto& p : t.parameters()) out.append(parameter_dict(p));
                                   return out;
                               })
        .def("get",
             [](const Trainer& t) {
                 const std::vector<float> v = t.get();
                 return py::array_t<float>(static_cast<py::ssize_t>(v.size()), v.data());
             })
        .def("set",
             [](Trainer& t, const FloatArray& values) {
                 if (values.size() != t.size())
                     throw ArgumentError("expected " + std::to_string(t.size()) + " parameter values, got " +
                                         std::to_string(values.size()));
                 py::gil_scoped_release release;
                 t.set(values.data());
             })
        .def(
            "gradient",
            [](const Trainer& t, const FloatArray& x, const FloatArray& y, bool with_grad) {
                const std::vector<int64_t> shape = sample_shape(x);
                const int64_t n = x.shape(0);
                py::array_t<float> grad(with_grad ? t.size() : 0), per(n);
                double loss = 0;
                {
                    py::gil_scoped_release release;
                    loss = t.gradient(x.data(), y.data(), n, shape, with_grad ? grad.mutable_data() : nullptr,
                                      per.mutable_data());
                }
                return std::make_tuple(loss, per, grad);
            },
            py::arg("x"), py::arg("y"), py::arg("with_grad") = true,
            "(mean loss, per-sample losses, gradient of the mean loss (size,)) for a batch")
        .def(
            "predict",
            [](const Trainer& t, const FloatArray& x) {
                const std::vector<int64_t> shape = sample_shape(x);
                const int64_t n = x.shape(0);
                std::vector<float> y;
                {
                    py::gil_scoped_release release;
                    y = t.predict(x.data(), n, shape);
                }
                const int64_t k = static_cast<int64_t>(y.size()) / n;
                py::array_t<float> out({n, k});
                std::copy(y.begin(), y.end(), out.mutable_data());
                return out;
            },
            py::arg("x"))
        .def("model", &Trainer::model, "A model with the current parameters (the same graph).");
}

}  // namespace tsviz::python
