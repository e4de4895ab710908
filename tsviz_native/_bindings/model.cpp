// Bindings of tsviz::Model. Python validates and converts user input (tsviz_native/model.py);
// this layer takes C-contiguous float32 arrays without copying and releases the GIL while the
// engine computes.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <string>

#include "bindings.hpp"
#include "tsviz/model.hpp"
#include "tsviz/ops.hpp"

namespace py = pybind11;

namespace tsviz::python {

namespace {

py::dict layer_dict(const LayerInfo& l) {
    py::dict d;
    d["name"] = l.name;
    d["label"] = l.label;
    d["op"] = l.op;
    d["onnx_node"] = l.onnx_node;
    d["onnx_op"] = l.onnx_op;
    d["n_filters"] = l.n_filters;
    d["in_channels"] = l.in_channels;
    d["out_length"] = l.out_length;
    d["kernel"] = l.kernel;
    d["stride"] = l.stride;
    d["dilation"] = l.dilation;
    d["group"] = l.group;
    d["activation"] = l.activation;
    return d;
}

py::dict node_dict(const NodeInfo& n) {
    py::dict d;
    d["name"] = n.name;
    d["op"] = n.op;
    d["inputs"] = n.inputs;
    d["onnx_node"] = n.onnx_node;
    d["onnx_op"] = n.onnx_op;
    d["channels"] = n.channels;
    d["length"] = n.length;
    d["kernel"] = n.kernel;
    d["stride"] = n.stride;
    d["dilation"] = n.dilation;
    d["group"] = n.group;
    d["layer"] = n.layer;
    return d;
}

// The facts the engine keeps per ONNX op it lowers, for Python code that works on ONNX graphs
// (pruning) and must agree with the engine.
void bind_onnx_ops(py::module_& m) {
    m.def("onnx_ops", [] {
        py::dict out;
        for (const OnnxOpInfo& o : onnx_ops()) {
            py::dict d;
            d["ir_op"] = o.ir_op;
            d["keeps_channels"] = o.keeps_channels;
            d["activation"] = o.activation;
            d["since_opset"] = o.since_opset;
            out[py::str(o.op)] = d;
        }
        return out;
    }, "ONNX op type -> {'ir_op', 'keeps_channels', 'activation', 'since_opset'} for every op the importer lowers.");
}

}  // namespace

void bind_model(py::module_& m) {
    bind_onnx_ops(m);
    m.def("registered_ops", &registered_ops,
          "The IR ops of the engine's registry, each with forward, backward and trace rules.");
    m.def("activation_ops", &activation_ops,
          "The registry's activations: after a filter layer one gives that layer's a^l.");
    py::class_<Model> cls(m, "Model");
    cls
        .def_static(
            "load",
            [](const std::string& path, uint64_t max_memory) {
                LoadOptions options;
                options.max_memory = max_memory;
                return Model::load(path, options);
            },
            py::arg("path"), py::arg("max_memory") = LoadOptions{}.max_memory,
            py::call_guard<py::gil_scoped_release>())
        .def_static(
            "from_bytes",
            [](py::bytes data, const std::string& source, uint64_t max_memory) {
                std::string_view view = data;
                LoadOptions options;
                options.max_memory = max_memory;
                py::gil_scoped_release release;
                return Model::from_bytes(view.data(), view.size(), source, options);
            },
            py::arg("data"), py::arg("source") = "<bytes>", py::arg("max_memory") = LoadOptions{}.max_memory)
        .def_property_readonly("input_name", [](const Model& m) { return m.input().name; })
        .def_property_readonly("layout", [](const Model& m) { return m.input().layout; })
        .def_property_readonly("input_channels", [](const Model& m) { return m.input().channels; })
        .def_property_readonly("input_length", [](const Model& m) { return m.input().length; })
        .def_property_readonly("sample_shape", [](const Model& m) { return m.input().sample_shape; })
        .def_property_readonly("output_name", &Model::output_name)
        .def_property_readonly("n_outputs", &Model::n_outputs)
        .def_property_readonly("opset", &Model::opset)
        .def_property_readonly("producer", &Model::producer)
        .def_property_readonly("source", &Model::source)
        .def_property_readonly("n_parameters", &Model::n_parameters)
        .def_property_readonly("layers",
                               [](const Model& m) {
                                   py::list out;
                                   for (const auto& l : m.layers()) out.append(layer_dict(l));
                                   return out;
                               })
        .def("summary", &Model::summary)
        .def(
            "predict",
            [](const Model& m, py::array_t<float, py::array::c_style> x, bool allow_nonfinite) {
                if (x.ndim() < 2) throw ArgumentError("predict expects a batch array (N, ...)");
                const int64_t n = x.shape(0);
                std::vector<int64_t> sample(x.shape() + 1, x.shape() + x.ndim());
                PredictOptions options;
                options.allow_nonfinite = allow_nonfinite;
                std::vector<float> y;
                {
                    py::gil_scoped_release release;
                    y = m.predict(x.data(), n, sample, options);
                }
                const int64_t k = m.n_outputs();
                py::array_t<float> out({n, k});
                std::copy(y.begin(), y.end(), out.mutable_data());
                return out;
            },
            py::arg("x"), py::arg("allow_nonfinite") = false);
    bind_model_graph(m, cls);
    bind_model_explain(cls);
}

// The structured description of the lowered graph (tsviz::NodeInfo), which the Python
// summary, the CLI and the viewer read, and the one lookup of a filter layer by name.
void bind_model_graph(py::module_& m, py::class_<Model>& cls) {
    m.def(
        "find_layer",
        [](const std::vector<std::pair<std::string, std::string>>& layers, const std::string& key) {
            std::vector<LayerInfo> infos(layers.size());
            for (size_t i = 0; i < layers.size(); ++i) {
                infos[i].name = layers[i].first;
                infos[i].label = layers[i].second;
            }
            return find_layer(infos, key);
        },
        py::arg("layers"), py::arg("key"),
        "The index of the filter layer `key` names among (tensor name, label) pairs (tsviz::find_layer).");
    cls.def_property_readonly("nodes", [](const Model& m) {
        py::list out;
        for (const auto& n : m.nodes()) out.append(node_dict(n));
        return out;
    });
}

}  // namespace tsviz::python
