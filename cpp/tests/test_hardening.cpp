// What an embedded user gets for untrusted input, through the public API only: the input
// policy (NaN and infinity refused unless PredictOptions / ExplainOptions allow them, the
// declared length honoured, an empty batch named), the memory limit of LoadOptions, and the
// structural validator's named errors on the committed mutated seeds of the fuzz target
// (cpp/fuzz/seeds, written by make_seeds.py). test_hardening MODELS_DIR B5M.csv
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "testing.hpp"
#include "tsviz/model.hpp"

using testing::windows;
using tsviz::ArgumentError;
using tsviz::ExplainOptions;
using tsviz::LoadOptions;
using tsviz::Model;
using tsviz::ModelError;
using tsviz::PredictOptions;
using tsviz::ShapeError;

namespace {

void test_nonfinite(const testing::Args& a, const std::vector<double>& series) {
    const Model m = Model::load(a.model("paper_net_op17"));
    std::vector<int64_t> shape;
    std::vector<float> x = windows(m, series, 3, 500, 50, shape);
    const std::vector<float> clean = m.predict(x.data(), 3, shape);
    x[2 * 100 + 50 + 17] = std::numeric_limits<float>::quiet_NaN();  // sample 2, channel 1, t 17
    const std::string named = "input sample 2 has NaN at position (1, 17) of its per-sample shape (2, 50)";
    CHECK_THROWS(m.predict(x.data(), 3, shape), ArgumentError, named);
    CHECK_THROWS(m.explain(x.data(), 3, shape), ArgumentError, named);
    PredictOptions allow;
    allow.allow_nonfinite = true;
    const std::vector<float> y = m.predict(x.data(), 3, shape, allow);
    CHECK(std::isnan(y[2]));                       // NaN in, NaN out
    CHECK(y[0] == clean[0] && y[1] == clean[1]);   // the other samples are untouched
    ExplainOptions eo;
    eo.allow_nonfinite = true;
    CHECK(std::isnan(m.explain(x.data(), 3, shape, eo).output()[2]));
    x[5] = -std::numeric_limits<float>::infinity();
    CHECK_THROWS(m.predict(x.data(), 3, shape), ArgumentError, "input sample 0 has -inf at position (0, 5)");
}

void test_shapes(const testing::Args& a, const std::vector<double>& series) {
    const Model m = Model::load(a.model("paper_net_op17"));
    std::vector<int64_t> shape;
    const std::vector<float> x = windows(m, series, 1, 0, 0, shape);
    CHECK_THROWS(m.predict(x.data(), 0, shape), ArgumentError, "the batch is empty (0 samples)");
    CHECK_THROWS(m.predict(x.data(), -2, shape), ArgumentError, "batch size must be >= 1, got -2");
    CHECK_THROWS(m.predict(nullptr, 1, shape), ArgumentError, "null");
    // resnet declares (N, 1, 96) and pools globally: its graph would run at 80, its contract not.
    const Model resnet = Model::load(a.model("resnet_op17"));
    std::vector<float> x80(80, 0.25f);
    CHECK_THROWS(resnet.predict(x80.data(), 1, {1, 80}), ShapeError,
                 "input has per-sample shape (1, 80); the model expects (1, 96) (input 'x' declares (N, 1, 96); its length is fixed)");
    // fcn leaves T free: any length the graph supports.
    const Model fcn = Model::load(a.model("fcn_op17"));
    for (int64_t t : {40, 150, 400}) {
        std::vector<float> xt(static_cast<size_t>(t), 0.5f);
        CHECK(fcn.predict(xt.data(), 1, {1, t}).size() == 2);
    }
}

void test_memory_limit(const testing::Args& a, const std::vector<double>& series) {
    LoadOptions small;
    small.max_memory = uint64_t{1} << 20;
    CHECK_THROWS(Model::load(a.model("fcn_op17"), small), ModelError,
                 "fcn_op17.onnx: the weights need more than the memory limit of 1 MiB");
    LoadOptions sixteen;
    sixteen.max_memory = uint64_t{16} << 20;
    const Model fcn = Model::load(a.model("fcn_op17"), sixteen);
    std::vector<int64_t> shape;
    const std::vector<float> x = windows(fcn, series, 40, 0, 10, shape, 150);
    CHECK(fcn.predict(x.data(), 40, shape).size() == 80);  // chunked within the limit
    CHECK_THROWS(fcn.explain(x.data(), 40, shape), ArgumentError,
                 "40 samples of length 150 need");
    CHECK_THROWS(fcn.explain(x.data(), 40, shape), ArgumentError, "more than the memory limit of 16.0 MiB");
}

// The seeds that carry one defect each, and what the validator or importer names.
void test_validator_seeds(const testing::Args& a) {
    const std::string seeds = a.models + "/../../cpp/fuzz/seeds/";
    struct Case {
        const char* file;
        const char* message;
    };
    const Case cases[] = {
        {"dup_output.onnx", "dup_output.onnx: node 'r' (Tanh): output 'r' is already produced by node 'r' (Relu)"},
        {"cycle.onnx", "the graph has a cycle: node 'a' (Add) -> node 'b2' (Relu) -> node 'a' (Add)"},
        {"auto_pad_with_pads.onnx", "attribute 'auto_pad' is 'SAME_UPPER' and explicit 'pads' are given too"},
        {"int8_weights.onnx", "the weight ('w8') has type INT8; Conv on a FLOAT input takes FLOAT weights"},
        {"zero_stride.onnx", "node 'r' (Conv): attribute 'strides' has the value 0; each entry must be >= 1"},
        {"unknown_attribute.onnx", "node 'r' (Relu): attribute 'alpha' is not defined for Relu at opset 17"},
        {"long_kernel.onnx", "node 'r' (Conv): input length 16 is shorter than the kernel's reach 40"},
        {"external_data_from_bytes.onnx", "which a model given as bytes cannot reach"},
    };
    for (const Case& c : cases) {
        const std::string bytes = testing::read_file(seeds + c.file);
        CHECK_THROWS(Model::from_bytes(bytes.data(), bytes.size(), c.file), ModelError, c.message);
    }
    // The seeds without a defect load and run.
    for (const char* ok : {"conv_relu_gemm.onnx", "residual_concat.onnx", "shape_arith_reshape.onnx", "nt_input.onnx"}) {
        const Model m = Model::load(seeds + ok);
        CHECK(!m.layers().empty());
    }
}

}  // namespace

int main(int argc, char** argv) {
    const testing::Args a = testing::args(argc, argv);
    const std::vector<double> series = testing::b5m_standardised(a.b5m);
    try {
        test_nonfinite(a, series);
        test_shapes(a, series);
        test_memory_limit(a, series);
        test_validator_seeds(a);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "unexpected exception: %s\n", e.what());
        return 1;
    }
    return testing::report("test_hardening");
}
