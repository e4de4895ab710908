// The pybind11 module tsviz_native._native. The engine's error types become Python exceptions
// that subclass ValueError, with the engine's message unchanged.
#include <pybind11/pybind11.h>

#include "bindings.hpp"
#include "tsviz/error.hpp"

namespace py = pybind11;

PYBIND11_MODULE(_native, m) {
    m.doc() = "TSViz engine: ONNX reader, forward and backward passes for 1-D conv nets";
    static py::exception<tsviz::Error> error(m, "TSVizError", PyExc_ValueError);
    static py::exception<tsviz::ModelError> model_error(m, "ModelError", error.ptr());
    static py::exception<tsviz::ShapeError> shape_error(m, "ShapeError", error.ptr());
    static py::exception<tsviz::ArgumentError> argument_error(m, "ArgumentError", error.ptr());
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const tsviz::ModelError& e) {
            py::set_error(model_error, e.what());
        } catch (const tsviz::ShapeError& e) {
            py::set_error(shape_error, e.what());
        } catch (const tsviz::ArgumentError& e) {
            py::set_error(argument_error, e.what());
        } catch (const tsviz::Error& e) {
            py::set_error(error, e.what());
        }
    });
    tsviz::python::bind_model(m);
}
