// The pybind11 module tsviz_native._native. The engine's error types become Python exceptions
// that subclass ValueError, with the engine's message unchanged. A std::logic_error (a broken
// invariant, e.g. an out-of-range index) also becomes a TSVizError, so that whatever a model
// or an argument provokes reaches the user as a TSViz error (exit status 2 from the CLI).
#include <pybind11/pybind11.h>

#include <cstring>
#include <stdexcept>
#include <string>

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
        } catch (const std::logic_error& e) {
            const std::string what = std::string("internal error in the engine: ") + e.what() +
                                     " (please report it, with the model that caused it)";
            raise(ex.error, what.c_str());
        }
    });
    // For the tests of the translation above: throws a C++ exception of the named kind.
    m.def("_throw_for_test", [](const std::string& kind) {
        if (kind == "logic_error") throw std::logic_error("op kind missing from the registry");
        if (kind == "out_of_range") throw std::out_of_range("vector::_M_range_check");
        if (kind == "argument") throw tsviz::ArgumentError("bad argument");
        throw std::runtime_error("unknown kind " + kind);
    });
    tsviz::python::bind_explain(m);
    tsviz::python::bind_model(m);
    tsviz::python::bind_loss(m);
    tsviz::python::bind_train(m);
}
