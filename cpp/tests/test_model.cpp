// tsviz::Model through the public API: loading from a path and from bytes, predict against
// explain's output, batches against single samples, and the error hierarchy with messages
// that name what is wrong. test_model MODELS_DIR B5M.csv
#include <string>
#include <type_traits>
#include <vector>

#include "testing.hpp"
#include "tsviz/model.hpp"

using testing::windows;
using tsviz::ArgumentError;
using tsviz::ExplainOptions;
using tsviz::ExplainOutput;
using tsviz::Model;
using tsviz::ModelError;
using tsviz::ShapeError;

static_assert(std::is_base_of_v<std::runtime_error, tsviz::Error>);
static_assert(std::is_base_of_v<tsviz::Error, ModelError>);
static_assert(std::is_base_of_v<tsviz::Error, ShapeError>);
static_assert(std::is_base_of_v<tsviz::Error, ArgumentError>);

namespace {

// Load from the path and from the bytes: the same model, the same outputs.
void test_load(const testing::Args& a, const std::vector<double>& series) {
    for (const char* name : {"paper_net_op17", "keras_paper_net_op17", "fcn_op17"}) {
        const std::string path = a.model(name);
        const Model m = Model::load(path);
        const std::string bytes = testing::read_file(path);
        const Model b = Model::from_bytes(bytes.data(), bytes.size(), "copy.onnx");
        CHECK(m.source() == std::string(name) + ".onnx");
        CHECK(b.source() == "copy.onnx");
        CHECK(m.layers().size() == b.layers().size());
        CHECK(m.input().sample_shape == b.input().sample_shape);
        CHECK(m.n_outputs() == b.n_outputs() && m.n_outputs() > 0);
        CHECK(m.n_parameters() == b.n_parameters() && m.n_parameters() > 0);
        CHECK(testing::contains(m.summary(), name));
        std::vector<int64_t> shape;
        const std::vector<float> x = windows(m, series, 3, 100, 37, shape, 150);
        CHECK(m.predict(x.data(), 3, shape) == b.predict(x.data(), 3, shape));
    }
    const Model def = Model::from_bytes(testing::read_file(a.model("paper_net_op17")).data(),
                                        testing::read_file(a.model("paper_net_op17")).size());
    CHECK(def.source() == "<bytes>");
}

// predict == explain().output (predict runs each ReLU inside the convolution or Add before it,
// explain keeps both tensors: the residual net has both); a batch of 4 == 4 single samples;
// free-length models at two lengths; an empty batch.
void test_predict(const testing::Args& a, const std::vector<double>& series) {
    for (const char* name : {"paper_net_op17", "keras_paper_net_op17", "fcn_op17", "resnet_op17"}) {
        const Model m = Model::load(a.model(name));
        for (int64_t length : {150, 96}) {
            if (m.input().length > 0 && length != 150) continue;
            std::vector<int64_t> shape;
            const std::vector<float> x = windows(m, series, 4, 2000, 211, shape, length);
            const std::vector<float> y = m.predict(x.data(), 4, shape);
            const int64_t k = m.n_outputs();
            CHECK(static_cast<int64_t>(y.size()) == 4 * k);
            const tsviz::Explanation ex = m.explain(x.data(), 4, shape);
            CHECK_CLOSE(ex.output(), y, 1e-6);
            CHECK(ex.n_samples() == 4 && ex.n_outputs() == k);
            const int64_t per = static_cast<int64_t>(x.size()) / 4;
            std::vector<float> singles;
            for (int64_t i = 0; i < 4; ++i) {
                const std::vector<float> yi = m.predict(x.data() + i * per, 1, shape);
                singles.insert(singles.end(), yi.begin(), yi.end());
            }
            CHECK_CLOSE(singles, y, 1e-6);
            // Different windows give different outputs (the data reaches the model).
            CHECK(std::vector<float>(y.begin(), y.begin() + k) != std::vector<float>(y.begin() + k, y.begin() + 2 * k));
        }
        std::vector<int64_t> shape;
        const std::vector<float> x = windows(m, series, 1, 0, 0, shape, 150);
        CHECK_THROWS(m.predict(x.data(), 0, shape), tsviz::ArgumentError, "the batch is empty");
    }
}

void test_errors(const testing::Args& a, const std::vector<double>& series) {
    // The file or the graph: ModelError, naming the file and what is wrong.
    CHECK_THROWS(Model::load(a.models + "/no_such_model.onnx"), ModelError, "no_such_model.onnx: no such file");
    CHECK_THROWS(Model::load(a.models), ModelError, "is a folder");
    CHECK_THROWS(Model::load(a.b5m), ModelError, "B5M.csv");
    const std::string bytes = testing::read_file(a.model("paper_net_op17"));
    CHECK_THROWS(Model::from_bytes(bytes.data(), bytes.size() / 2, "half.onnx"), ModelError, "half.onnx: truncated");
    CHECK_THROWS(Model::from_bytes(bytes.data(), 0, "empty.onnx"), ModelError, "empty.onnx");
    // An unsupported op (the same bytes with the op type renamed): every such node, its op.
    std::string renamed = bytes;
    for (size_t at = renamed.find("MaxPool"); at != std::string::npos; at = renamed.find("MaxPool", at))
        renamed.replace(at, 7, "MaxPooX");
    CHECK_THROWS(Model::from_bytes(renamed.data(), renamed.size(), "renamed.onnx"), ModelError,
                 "node '/features/features.2/MaxPooX' (MaxPooX, opset 17)");
    CHECK_THROWS(Model::from_bytes(renamed.data(), renamed.size(), "renamed.onnx"), ModelError,
                 "node '/features/features.5/MaxPooX' (MaxPooX, opset 17)");

    // The input: ShapeError, naming the shape given, the one expected and the node that fails.
    const Model m = Model::load(a.model("paper_net_op17"));
    std::vector<int64_t> shape;
    const std::vector<float> x = windows(m, series, 2, 0, 50, shape);
    std::vector<float> longer(2 * 52, 0.5f);
    CHECK_THROWS(m.predict(longer.data(), 1, {2, 52}), ShapeError,
                 "input has per-sample shape (2, 52); the model expects (2, 50) (node '/fc/Gemm' (Gemm)");
    CHECK_THROWS(m.explain(longer.data(), 1, {2, 52}), ShapeError, "node '/fc/Gemm' (Gemm)");
    CHECK_THROWS(m.predict(x.data(), 1, {1, 50}), ShapeError, "the model expects (2, 50)");
    CHECK_THROWS(m.predict(x.data(), 1, {50, 2}), ShapeError, "(50, 2)");
    CHECK_THROWS(m.predict(x.data(), 1, {100}), ShapeError, "(100,)");
    const Model keras = Model::load(a.model("keras_paper_net_op17"));
    CHECK_THROWS(keras.predict(x.data(), 1, {2, 50}), ShapeError, "the model expects (50, 2)");
    const Model fcn = Model::load(a.model("fcn_op17"));
    CHECK_THROWS(fcn.predict(x.data(), 1, {1, 0}), ShapeError, "(1, 0)");

    // The arguments: ArgumentError.
    auto explain_options = [](std::vector<int64_t> target, ExplainOutput output) {
        ExplainOptions o;
        o.target = std::move(target);
        o.output = output;
        return o;
    };
    CHECK_THROWS(m.explain(x.data(), 1, shape, explain_options({1}, ExplainOutput::Logit)), ArgumentError,
                 "target 1 is out of range for a model with 1 output");
    CHECK_THROWS(m.explain(x.data(), 1, shape, explain_options({-1}, ExplainOutput::Logit)), ArgumentError, "target -1");
    CHECK_THROWS(m.explain(x.data(), 2, shape, explain_options({0, 0, 0}, ExplainOutput::Logit)), ArgumentError,
                 "target has 3 entries for 2 samples");
    CHECK_THROWS(m.explain(x.data(), 1, shape, explain_options({}, ExplainOutput::Prob)), ArgumentError, "Softmax");
    CHECK_THROWS(m.explain(x.data(), 0, shape), ArgumentError, "at least one sample");
    CHECK_THROWS(m.predict(x.data(), -1, shape), ArgumentError, "batch size");
    std::vector<int64_t> fshape;
    const std::vector<float> fx = windows(fcn, series, 1, 0, 0, fshape, 150);
    CHECK_THROWS(fcn.explain(fx.data(), 1, fshape, explain_options({2}, ExplainOutput::Prob)), ArgumentError,
                 "target 2 is out of range for a model with 2 outputs");
    const tsviz::Explanation ex = m.explain(x.data(), 2, shape);
    CHECK_THROWS(ex.importance("nope"), ArgumentError,
                 "no filter layer named 'nope'; give a number 0..3, a label or a tensor name: "
                 "0 = 'conv 1 \xc2\xb7 k=5 \xc2\xb7 16 filters' ('/features");
    CHECK_THROWS(ex.saliency("y", {1}), ArgumentError, "filter 1 is out of range for layer 'y' with 1 filters");
    CHECK_THROWS(ex.keep("y", 101), ArgumentError, "percentile");
    CHECK_THROWS(ex.trace("y", 0, 0, 2), ArgumentError, "sample 2");
    CHECK_THROWS(ex.trace("y", 0, 1), ArgumentError, "position 1");

    // Every one of them is a tsviz::Error and a std::runtime_error.
    try {
        Model::load("");
        CHECK(false);
    } catch (const tsviz::Error& e) {
        CHECK(std::string(e.what()).size() > 0);
    }
}

}  // namespace

int main(int argc, char** argv) {
    const testing::Args a = testing::args(argc, argv);
    const std::vector<double> series = testing::b5m_standardised(a.b5m);
    try {
        test_load(a, series);
        test_predict(a, series);
        test_errors(a, series);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "unexpected exception: %s\n", e.what());
        return 1;
    }
    return testing::report("test_model");
}
