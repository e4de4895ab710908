// The fuzz target: untrusted bytes into the ONNX reader (tsviz::Model::from_bytes) and, when a
// model loads, predict, explain, saliency and trace on a small input of the right shape.
// A finding is anything but a tsviz::Error: a crash, a sanitizer report (the target is built
// with AddressSanitizer and UndefinedBehaviorSanitizer), another exception type, or a model
// that loads but cannot run at the input shape it declares (load must have refused it).
//
// Built by -DTSVIZ_FUZZ=ON (cpp/fuzz/CMakeLists.txt): with clang, a libFuzzer binary; with
// another compiler, the same target behind replay_main.cpp, which runs given files once.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <string>
#include <vector>

#include "tsviz/error.hpp"
#include "tsviz/explain.hpp"
#include "tsviz/model.hpp"

namespace {

[[noreturn]] void finding(const char* stage, const char* what) {
    std::fprintf(stderr, "fuzz finding in %s: %s\n", stage, what);
    std::abort();
}

// One window of a deterministic, non-trivial signal in the model's own layout.
std::vector<float> window(const tsviz::InputInfo& in, int64_t n, int64_t t, std::vector<int64_t>& shape) {
    const int64_t c = in.channels;
    shape = in.layout == "NT" ? std::vector<int64_t>{t} : in.layout == "NTC" ? std::vector<int64_t>{t, c}
                                                                          : std::vector<int64_t>{c, t};
    std::vector<float> x(static_cast<size_t>(n * c * t));
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i)) + 0.1f * static_cast<float>(i % 7);
    return x;
}

// NaN and infinity let through (allow_nonfinite) must give NaN, never a crash: they reach
// every op and the sort of the percentile filter.
void exercise_nonfinite(const tsviz::Model& model, int64_t t) {
    std::vector<int64_t> shape;
    std::vector<float> x = window(model.input(), 2, t, shape);
    x[x.size() / 3] = std::numeric_limits<float>::quiet_NaN();
    x[x.size() - 1] = std::numeric_limits<float>::infinity();
    tsviz::PredictOptions po;
    po.allow_nonfinite = true;
    (void)model.predict(x.data(), 2, shape, po);
    tsviz::ExplainOptions eo;
    eo.allow_nonfinite = true;
    const tsviz::Explanation ex = model.explain(x.data(), 2, shape, eo);
    for (const std::string& layer : ex.layer_names()) (void)ex.keep(layer, 30.0);
    if (!ex.layer_names().empty()) (void)ex.trace(ex.layer_names().back(), 0, 0, 0, true);
}

// The graph description holds together: nodes in topological order, each filter layer a
// node, found again by its tensor name, its label and its index.
void check_description(const tsviz::Model& model) {
    const std::vector<tsviz::NodeInfo>& nodes = model.nodes();
    if (nodes.empty() || nodes[0].op != "Input") finding("nodes", "the first node is not the input");
    for (size_t i = 0; i < nodes.size(); ++i)
        for (int64_t p : nodes[i].inputs)
            if (p < 0 || p >= static_cast<int64_t>(i)) finding("nodes", "an input index out of order");
    const std::vector<tsviz::LayerInfo>& layers = model.layers();
    for (size_t l = 0; l < layers.size(); ++l) {
        const tsviz::LayerInfo& info = layers[l];
        if (info.node < 0 || info.node >= static_cast<int64_t>(nodes.size()) ||
            nodes[info.node].layer != static_cast<int64_t>(l) || info.activation_node < info.node ||
            info.activation_node >= static_cast<int64_t>(nodes.size()))
            finding("layers", "a filter layer that is not its node");
        if (tsviz::find_layer(layers, info.label) != l || &model.layer(std::to_string(l)) != &info)
            finding("layers", "a layer not found by its label or index");
    }
    try {
        (void)model.layer("-" + std::string(40, '9'));
        finding("layers", "a huge index accepted");
    } catch (const tsviz::ArgumentError&) {
    }
}

void exercise(const tsviz::Model& model) {
    const tsviz::InputInfo& in = model.input();
    if (in.channels < 1) finding("load", "a model without input channels accepted");
    check_description(model);
    // A free length is tried at a few sizes; a model whose graph fits none of them is fine.
    std::vector<int64_t> lengths = in.length > 0 ? std::vector<int64_t>{in.length} : std::vector<int64_t>{16, 64};
    for (int64_t t : lengths) {
        std::vector<int64_t> shape;
        const int64_t n = 2;
        const std::vector<float> x = window(in, n, t, shape);
        try {
            const std::vector<float> y = model.predict(x.data(), n, shape);
            if (static_cast<int64_t>(y.size()) != n * model.n_outputs()) finding("predict", "wrong output size");
            const tsviz::Explanation ex = model.explain(x.data(), n, shape);
            for (const std::string& layer : ex.layer_names()) {
                (void)ex.importance(layer);
                (void)ex.keep(layer, 50.0);
            }
            if (!ex.layer_names().empty()) {
                const std::string& first = ex.layer_names().front();
                const std::string& last = ex.layer_names().back();
                (void)ex.saliency(first, {0});
                (void)ex.saliency(last);
                (void)ex.trace(last, 0, 0, 1);
                (void)ex.trace(first, ex.n_filters(first) - 1, ex.layer_length(first) - 1, 0, true);
            }
            (void)model.summary();
            exercise_nonfinite(model, t);
            return;
        } catch (const tsviz::ShapeError& e) {
            if (in.length > 0) finding("run at the declared shape (ShapeError)", e.what());
        } catch (const tsviz::ArgumentError& e) {
            // Only the memory limit may refuse a correct call.
            if (std::string(e.what()).find("memory limit") == std::string::npos) finding("run (ArgumentError)", e.what());
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    tsviz::LoadOptions options;
    options.max_memory = uint64_t{16} << 20;  // keeps every run small; the limit itself is under test
    try {
        const tsviz::Model model = tsviz::Model::from_bytes(data, size, "<fuzz>", options);
        exercise(model);
    } catch (const tsviz::ModelError&) {
        return 0;
    } catch (const tsviz::Error& e) {
        finding("load (not a ModelError)", e.what());
    } catch (const std::exception& e) {
        finding("a non-TSViz exception", e.what());
    } catch (...) {
        finding("an unknown exception", "");
    }
    return 0;
}
