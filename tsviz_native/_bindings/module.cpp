// The pybind11 module tsviz_native._native. The engine's error types become Python exceptions
// that subclass ValueError, with the engine's message unchanged.
#include <pybind11/pybind11.h>

#include <cstring>

#include "bindings.hpp"
#include "tsviz/error.hpp"

namespace py = pybind11;

namespace {

struct Exceptions {
    py::object error, model, shape, argument;
};

}  // namespace

PYBIND11_MODULE(_native, m) {
    m.doc() = "TSViz engine: ONNX reader, forward and backward passes for 1-D conv nets";
    PYBIND11_CONSTINIT static py::gil_safe_call_once_and_store<Exceptions> storage;
    storage.call_once_and_store_result([&]() {
        Exceptions e;
        e.error = py::exception<tsviz::Error>(m, "TSVizError", PyExc_ValueError);
        e.model = py::exception<tsviz::ModelError>(m, "ModelError", e.error.ptr());
        e.shape = py::exception<tsviz::ShapeError>(m, "ShapeError", e.error.ptr());
        e.argument = py::exception<tsviz::ArgumentError>(m, "ArgumentError", e.error.ptr());
        return e;
    });
    // Messages quote names read from the file, which a damaged file may not encode as UTF-8;
    // undecodable bytes are replaced rather than turning the error into a UnicodeDecodeError.
    py::register_exception_translator([](std::exception_ptr p) {
        const Exceptions& ex = storage.get_stored();
        auto raise = [](const py::object& type, const char* what) {
            PyObject* message =
                PyUnicode_DecodeUTF8(what, static_cast<Py_ssize_t>(std::strlen(what)), "replace");
            PyErr_SetObject(type.ptr(), message);
            Py_XDECREF(message);
        };
        try {
            if (p) std::rethrow_exception(p);
        } catch (const tsviz::ModelError& e) {
            raise(ex.model, e.what());
        } catch (const tsviz::ShapeError& e) {
            raise(ex.shape, e.what());
        } catch (const tsviz::ArgumentError& e) {
            raise(ex.argument, e.what());
        } catch (const tsviz::Error& e) {
            raise(ex.error, e.what());
        }
    });
    tsviz::python::bind_explain(m);
    tsviz::python::bind_model(m);
}
