// Bindings of tsviz::Explanation. Arrays that live in the explanation (the forward tensors,
// importance, output saliency) are returned as read-only views that keep it alive; computed
// results are moved into new arrays (keep, trace) or written into blocks that earlier saliency
// arrays handed back (BlockPool). The GIL is released while the engine computes.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <map>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <utility>

#include "bindings.hpp"
#include "tsviz/explain.hpp"
#include "tsviz/model.hpp"

namespace py = pybind11;

namespace tsviz::python {

namespace {

template <class T>
py::array view(const T* data, std::vector<py::ssize_t> shape, py::handle owner) {
    py::array a = py::array_t<T>(shape, data, owner);
    // Read-only, as numpy's setflags(write=False) would make it, without a Python call per view.
    py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
    return a;
}

template <class T>
py::array owned(std::vector<T>&& data, std::vector<py::ssize_t> shape) {
    auto* heap = new std::vector<T>(std::move(data));
    py::capsule free_when_done(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
    return py::array_t<T>(shape, heap->data(), free_when_done);
}

// Blocks for saliency arrays (N x F x C x T floats, megabytes for a batch), handed back by
// the arrays that held them when those die. A fresh block of that size is new pages, and their
// first-touch faults (some 2 us per 4 KiB here) were a sixth of a full analysis of 64 windows
// of the paper's network. A block serves a request of at least half its size; at most
// kKeptBytes stay kept, the rest goes back to the system.
class BlockPool {
public:
    static constexpr size_t kKeptBytes = size_t{256} << 20;

    // A block of at least n floats.
    std::pair<float*, size_t> take(size_t n) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            auto it = free_.lower_bound(n);
            if (it != free_.end() && it->first / 2 <= n) {
                const std::pair<float*, size_t> block{it->second, it->first};
                kept_ -= it->first * sizeof(float);
                free_.erase(it);
                return block;
            }
        }
        const size_t size = std::max<size_t>(n, 1);
        return {static_cast<float*>(::operator new(size * sizeof(float), std::align_val_t{64})), size};
    }

    void give(float* p, size_t size) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (kept_ + size * sizeof(float) <= kKeptBytes) {
                kept_ += size * sizeof(float);
                free_.emplace(size, p);
                return;
            }
        }
        ::operator delete(p, std::align_val_t{64});
    }

    static BlockPool& instance() {
        static BlockPool* pool = new BlockPool;  // never destroyed: arrays may die at exit
        return *pool;
    }

private:
    std::mutex mutex_;
    std::multimap<size_t, float*> free_;  // size in floats -> block
    size_t kept_ = 0;
};

// A new float array of the shape, its memory from the pool; fill writes every element.
template <class Fill>
py::array pooled(std::vector<py::ssize_t> shape, Fill&& fill) {
    size_t n = 1;
    for (py::ssize_t d : shape) n *= static_cast<size_t>(d);
    struct Block {
        float* data;
        size_t size;
    };
    const auto [data, size] = BlockPool::instance().take(n);
    auto* block = new Block{data, size};
    py::capsule give_back(block, [](void* p) {
        auto* b = static_cast<Block*>(p);
        BlockPool::instance().give(b->data, b->size);
        delete b;
    });
    py::array_t<float> a(shape, data, give_back);
    {
        py::gil_scoped_release release;
        fill(data);
    }
    return a;
}

}  // namespace

void bind_explain(py::module_& m) {
    py::class_<Explanation>(m, "Explanation")
        .def_property_readonly("n_samples", &Explanation::n_samples)
        .def_property_readonly("layer_names", &Explanation::layer_names)
        .def("output",
             [](py::object self) {
                 const auto& e = self.cast<const Explanation&>();
                 return view(e.output().data(), {e.n_samples(), e.n_outputs()}, self);
             })
        .def("target",
             [](py::object self) {
                 const auto& e = self.cast<const Explanation&>();
                 return view(e.target().data(), {e.n_samples()}, self);
             })
        .def("preactivations",
             [](py::object self, const std::string& layer) {
                 const auto& e = self.cast<const Explanation&>();
                 const float* data = nullptr;
                 {
                     py::gil_scoped_release release;  // the first call runs the forward pass
                     data = e.preactivations(layer);
                 }
                 return view(data, {e.n_samples(), e.n_filters(layer), e.layer_length(layer)}, self);
             })
        .def("activations",
             [](py::object self, const std::string& layer) {
                 const auto& e = self.cast<const Explanation&>();
                 const float* data = nullptr;
                 {
                     py::gil_scoped_release release;  // the first call runs the forward pass
                     data = e.activations(layer);
                 }
                 return view(data, {e.n_samples(), e.n_filters(layer), e.layer_length(layer)}, self);
             })
        .def("activation_name", &Explanation::activation_name)
        .def("importance_raw",
             [](py::object self, const std::string& layer) {
                 const auto& e = self.cast<const Explanation&>();
                 return view(e.importance_raw(layer).data(), {e.n_samples(), e.n_filters(layer)}, self);
             })
        .def("taylor",
             [](py::object self, const std::string& layer) {
                 const auto& e = self.cast<const Explanation&>();
                 return view(e.taylor(layer).data(), {e.n_samples(), e.n_filters(layer)}, self);
             })
        .def("dead",
             [](py::object self, const std::string& layer) {
                 const auto& e = self.cast<const Explanation&>();
                 return view(e.dead(layer).data(), {e.n_samples(), e.n_filters(layer)}, self).attr("view")("bool");
             })
        .def("importance",
             [](py::object self, const std::string& layer) {
                 const auto& e = self.cast<const Explanation&>();
                 return view(e.importance(layer).data(), {e.n_samples(), e.n_filters(layer)}, self);
             })
        .def("output_saliency",
             [](py::object self) {
                 const auto& e = self.cast<const Explanation&>();
                 return view(e.output_saliency().data(), {e.n_samples(), e.input_channels(), e.input_length()}, self);
             })
        .def("loss",
             [](py::object self) -> py::object {
                 const auto& e = self.cast<const Explanation&>();
                 if (e.loss().empty()) return py::none();
                 return view(e.loss().data(), {e.n_samples()}, self);
             })
        // What the Python Explanation is built from, in one call: each call into the module
        // costs microseconds when its code is out of cache, as after other work. The layer
        // names are the model's, which the Python Model keeps.
        .def("parts",
             [](py::object self) {
                 const auto& e = self.cast<const Explanation&>();
                 py::object loss = py::none();
                 if (!e.loss().empty()) loss = view(e.loss().data(), {e.n_samples()}, self);
                 return py::make_tuple(
                     view(e.output().data(), {e.n_samples(), e.n_outputs()}, self),
                     view(e.target().data(), {e.n_samples()}, self),
                     view(e.output_saliency().data(), {e.n_samples(), e.input_channels(), e.input_length()}, self),
                     loss);
             })
        .def(
            "saliency",
            [](const Explanation& e, const std::string& layer, std::vector<int64_t> filters,
               const std::string& method) {
                tsviz::SaliencyMethod m;
                if (method == "auto") {
                    m = tsviz::SaliencyMethod::Auto;
                } else if (method == "reverse") {
                    m = tsviz::SaliencyMethod::Reverse;
                } else if (method == "forward") {
                    m = tsviz::SaliencyMethod::Forward;
                } else {
                    throw tsviz::ArgumentError("method must be 'auto', 'reverse' or 'forward', got '" + method + "'");
                }
                const py::ssize_t count = filters.empty() ? e.n_filters(layer) : static_cast<py::ssize_t>(filters.size());
                return pooled({e.n_samples(), count, e.input_channels(), e.input_length()},
                              [&](float* out) { e.saliency(layer, filters, m, out); });
            },
            py::arg("layer"), py::arg("filters"), py::arg("method") = "auto")
        .def(
            "keep",
            [](const Explanation& e, const std::string& layer, double percentile) {
                std::vector<uint8_t> k = e.keep(layer, percentile);
                py::array a = owned(std::move(k), {e.n_samples(), e.n_filters(layer)});
                return a.attr("view")("bool");
            },
            py::arg("layer"), py::arg("percentile"))
        .def(
            "trace",
            [](const Explanation& e, const std::string& name, int64_t filter, int64_t position, int64_t sample,
               bool active_only) {
                std::map<std::string, TraceMask> masks;
                {
                    py::gil_scoped_release release;
                    masks = e.trace(name, filter, position, sample, active_only);
                }
                py::dict out;
                for (auto& [key, m] : masks) {
                    py::array a = owned(std::move(m.mask), {m.channels, m.length});
                    out[py::str(key)] = a.attr("view")("bool");
                }
                return out;
            },
            py::arg("name"), py::arg("filter"), py::arg("position"), py::arg("sample"), py::arg("active_only"));
}

void bind_model_explain(py::class_<Model>& cls) {
    cls.def(
        "explain",
        [](const Model& m, py::array_t<float, py::array::c_style> x, std::vector<int64_t> target,
           const std::string& output, bool allow_nonfinite, std::optional<std::string> loss,
           std::vector<float> y_true) {
            if (x.ndim() < 2) throw ArgumentError("explain expects a batch array (N, ...)");
            if (output != "logit" && output != "prob")
                throw ArgumentError("output must be 'logit' or 'prob', got '" + output + "'");
            std::vector<int64_t> sample(x.shape() + 1, x.shape() + x.ndim());
            ExplainOptions options;
            options.target = std::move(target);
            options.output = output == "prob" ? ExplainOutput::Prob : ExplainOutput::Logit;
            options.allow_nonfinite = allow_nonfinite;
            if (loss) options.loss = parse_loss(*loss);
            options.y_true = std::move(y_true);
            py::gil_scoped_release release;
            return m.explain(x.data(), x.shape(0), sample, options);
        },
        py::arg("x"), py::arg("target"), py::arg("output"), py::arg("allow_nonfinite") = false,
        py::arg("loss") = py::none(), py::arg("y_true") = std::vector<float>{});
    cls.def(
        "input_gradient",
        [](const Model& m, py::array_t<float, py::array::c_style> x, const std::string& of,
           std::vector<int64_t> target, const std::string& output, const std::string& loss, std::vector<float> y_true,
           const std::string& layer, int64_t filter, bool allow_nonfinite) {
            if (x.ndim() < 2) throw ArgumentError("input_gradient expects a batch array (N, ...)");
            std::vector<int64_t> sample(x.shape() + 1, x.shape() + x.ndim());
            GradientOptions options;
            if (of == "output") {
                options.of = GradientOf::Output;
            } else if (of == "loss") {
                options.of = GradientOf::Loss;
            } else if (of == "filter") {
                options.of = GradientOf::Filter;
            } else {
                throw ArgumentError("of must be 'output', 'loss' or 'filter', got '" + of + "'");
            }
            options.target = std::move(target);
            if (output != "logit" && output != "prob")
                throw ArgumentError("output must be 'logit' or 'prob', got '" + output + "'");
            options.output = output == "prob" ? ExplainOutput::Prob : ExplainOutput::Logit;
            options.loss = parse_loss(loss);
            options.y_true = std::move(y_true);
            options.layer = layer;
            options.filter = filter;
            options.allow_nonfinite = allow_nonfinite;
            InputGradient g;
            {
                py::gil_scoped_release release;
                g = m.input_gradient(x.data(), x.shape(0), sample, options);
            }
            std::vector<py::ssize_t> shape(x.shape(), x.shape() + x.ndim());
            const py::ssize_t n = x.shape(0);
            return py::make_tuple(owned(std::move(g.value), {n}), owned(std::move(g.gradient), shape),
                                  owned(std::move(g.output), {n, static_cast<py::ssize_t>(m.n_outputs())}));
        },
        py::arg("x"), py::arg("of"), py::arg("target"), py::arg("output"), py::arg("loss"), py::arg("y_true"),
        py::arg("layer"), py::arg("filter"), py::arg("allow_nonfinite") = false,
        "(value (N,), signed d value / d x in x's layout, output (N, K)) of tsviz::Model::input_gradient");
    cls.def(
        "predict_zeroed",
        [](const Model& m, py::array_t<float, py::array::c_style> x,
           const std::map<std::string, py::array_t<uint8_t, py::array::c_style | py::array::forcecast>>& zero,
           bool allow_nonfinite) {
            if (x.ndim() < 2) throw ArgumentError("predict expects a batch array (N, ...)");
            const int64_t n = x.shape(0);
            std::vector<int64_t> sample(x.shape() + 1, x.shape() + x.ndim());
            PredictOptions options;
            options.allow_nonfinite = allow_nonfinite;
            for (const auto& [layer, mask] : zero)
                options.zero_filters.push_back({layer, std::vector<uint8_t>(mask.data(), mask.data() + mask.size())});
            std::vector<float> y;
            {
                py::gil_scoped_release release;
                y = m.predict(x.data(), n, sample, options);
            }
            return owned(std::move(y), {n, static_cast<py::ssize_t>(m.n_outputs())});
        },
        py::arg("x"), py::arg("zero"), py::arg("allow_nonfinite") = false,
        "predict with the filters of PredictOptions::zero_filters zeroed: {layer: mask (F,) or (N, F)}");
}

}  // namespace tsviz::python
