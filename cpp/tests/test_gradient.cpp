// Signed input gradients (Model::input_gradient), explanations of the loss and filters zeroed
// in predict, on committed test models with real windows: the signed gradients' absolute values
// are the explanation's saliencies (in the model's own layout, channels-last included), the
// loss gradient agrees with central differences of predict, and the options are checked.
// test_gradient
#include <cmath>
#include <string>
#include <vector>

#include "testing.hpp"

using tsviz::Explanation;
using tsviz::ExplainOptions;
using tsviz::GradientOf;
using tsviz::GradientOptions;
using tsviz::InputGradient;
using tsviz::Loss;
using tsviz::Model;

namespace {

constexpr int64_t kN = 6;

// Channels-first (C, T) index of element j of one sample in the model's layout.
int64_t channels_first(const Model& m, int64_t j, int64_t t) {
    const int64_t c = m.input().channels;
    return m.input().layout == "NTC" ? (j % c) * t + j / c : j;
}

void check_abs_is_saliency(const Model& m, const std::vector<float>& x, const std::vector<int64_t>& shape, int64_t t) {
    const Explanation ex = m.explain(x.data(), kN, shape);
    const int64_t size = m.input().channels * t;
    GradientOptions out_opts;
    const InputGradient g = m.input_gradient(x.data(), kN, shape, out_opts);
    bool same = true, signed_ = false;
    for (int64_t i = 0; i < kN; ++i)
        for (int64_t j = 0; j < size; ++j) {
            const float a = g.gradient[i * size + j], b = ex.output_saliency()[i * size + channels_first(m, j, t)];
            same = same && std::abs(std::abs(a) - b) <= 1e-6f * (1 + b);
            signed_ = signed_ || a < 0;
        }
    CHECK(same);
    CHECK(signed_);
    CHECK(testing::close(g.output, ex.output(), 1e-6));
    // One filter's position-summed activation: its absolute gradient is the filter's saliency.
    const std::string layer = ex.layer_names()[1];
    GradientOptions f_opts;
    f_opts.of = GradientOf::Filter;
    f_opts.layer = layer;
    f_opts.filter = 2;
    const InputGradient gf = m.input_gradient(x.data(), kN, shape, f_opts);
    const std::vector<float> sal = ex.saliency(layer, {2});
    same = true;
    for (int64_t i = 0; i < kN; ++i)
        for (int64_t j = 0; j < size; ++j) {
            const float b = sal[i * size + channels_first(m, j, t)];
            same = same && std::abs(std::abs(gf.gradient[i * size + j]) - b) <= 1e-5f * (1 + b);
        }
    CHECK(same);
}

// d loss / d x of a classifier against central differences of predict's -log p[c] (the
// cross-entropy of the logits), at points where two step sizes agree (no kink in between).
void check_loss_gradient(const Model& m, const std::vector<float>& x, const std::vector<int64_t>& shape, int64_t t) {
    const int64_t k = m.n_outputs(), size = m.input().channels * t;
    std::vector<float> y(kN);
    const std::vector<float> p = m.predict(x.data(), kN, shape);
    for (int64_t i = 0; i < kN; ++i) y[i] = p[i * k] > p[i * k + 1] ? 1.f : 0.f;  // the other class
    GradientOptions opts;
    opts.of = GradientOf::Loss;
    opts.loss = Loss::CrossEntropy;
    opts.y_true = y;
    const InputGradient g = m.input_gradient(x.data(), kN, shape, opts);
    ExplainOptions eo;
    eo.loss = Loss::CrossEntropy;
    eo.y_true = y;
    const Explanation ex = m.explain(x.data(), kN, shape, eo);
    CHECK(testing::close(ex.loss(), g.value, 1e-6));
    bool same = true;
    for (int64_t j = 0; j < kN * size; ++j)
        same = same && std::abs(std::abs(g.gradient[j]) - ex.output_saliency()[(j / size) * size +
                                                           channels_first(m, j % size, t)]) <= 1e-6f;
    CHECK(same);
    auto loss_at = [&](const std::vector<float>& z) {
        const std::vector<float> q = m.predict(z.data(), 1, shape);
        return -std::log(static_cast<double>(q[static_cast<int64_t>(y[0])]));
    };
    std::vector<float> one(x.begin(), x.begin() + size);
    int checked = 0;
    double worst = 0;
    for (int64_t j = 0; j < size; j += 7) {
        double fd[2];
        const float steps[2] = {2e-3f, 1e-3f};
        for (int s = 0; s < 2; ++s) {
            std::vector<float> up = one, down = one;
            up[j] += steps[s];
            down[j] -= steps[s];
            fd[s] = (loss_at(up) - loss_at(down)) / (static_cast<double>(up[j]) - down[j]);
        }
        if (std::abs(fd[0] - fd[1]) > 0.01 * std::abs(fd[1]) + 1e-4) continue;
        ++checked;
        worst = std::max(worst, std::abs(fd[1] - g.gradient[j]) / (std::abs(fd[1]) + 1e-2));
    }
    ::testing::record(checked > size / 14 && worst < 0.02, __FILE__, __LINE__,
                      "cross-entropy gradient vs finite differences: " + std::to_string(checked) + " points, worst " +
                          std::to_string(worst));
}

void check_zeroing(const Model& m, const std::vector<float>& x, const std::vector<int64_t>& shape) {
    const std::string layer = m.layers()[0].name;
    const int64_t f = m.layers()[0].n_filters, k = m.n_outputs();
    tsviz::PredictOptions none;
    none.zero_filters.push_back({layer, std::vector<uint8_t>(static_cast<size_t>(f), 0)});
    const std::vector<float> plain = m.predict(x.data(), kN, shape);
    CHECK(m.predict(x.data(), kN, shape, none) == plain);
    tsviz::PredictOptions shared, rows;
    shared.zero_filters.push_back({layer, std::vector<uint8_t>(static_cast<size_t>(f), 0)});
    shared.zero_filters[0].mask[1] = shared.zero_filters[0].mask[4] = 1;
    rows.zero_filters.push_back({layer, std::vector<uint8_t>(static_cast<size_t>(kN * f), 0)});
    for (int64_t i = 0; i < kN; i += 2) rows.zero_filters[0].mask[i * f + 1] = rows.zero_filters[0].mask[i * f + 4] = 1;
    const std::vector<float> a = m.predict(x.data(), kN, shape, shared), b = m.predict(x.data(), kN, shape, rows);
    bool ok = a != plain;
    for (int64_t i = 0; i < kN; ++i)
        for (int64_t u = 0; u < k; ++u)
            ok = ok && b[i * k + u] == (i % 2 == 0 ? a : plain)[i * k + u];
    CHECK(ok);
    tsviz::PredictOptions bad;
    bad.zero_filters.push_back({layer, std::vector<uint8_t>(3, 1)});
    CHECK_THROWS(m.predict(x.data(), kN, shape, bad), tsviz::ArgumentError, "the mask has 3 entries");
    bad.zero_filters[0].layer = "nope";
    CHECK_THROWS(m.predict(x.data(), kN, shape, bad), tsviz::ArgumentError, "no filter layer named 'nope'");
}

void check_errors(const Model& m, const std::vector<float>& x, const std::vector<int64_t>& shape) {
    ExplainOptions eo;
    eo.loss = Loss::CrossEntropy;
    eo.y_true = {0.f};
    CHECK_THROWS(m.explain(x.data(), 2, shape, eo), tsviz::ArgumentError, "needs 1 target value per sample (2 for 2");
    eo.y_true = {0.f, 1.f};
    eo.target = {0};
    CHECK_THROWS(m.explain(x.data(), 2, shape, eo), tsviz::ArgumentError, "does not apply to the loss");
    eo.target.clear();
    eo.output = tsviz::ExplainOutput::Prob;
    CHECK_THROWS(m.explain(x.data(), 2, shape, eo), tsviz::ArgumentError, "output='prob' does not apply");
    GradientOptions g;
    g.of = GradientOf::Filter;
    g.layer = m.layers()[0].name;
    g.filter = 100000;
    CHECK_THROWS(m.input_gradient(x.data(), 2, shape, g), tsviz::ArgumentError, "filter 100000 is out of range");
    g.layer = "nope";
    CHECK_THROWS(m.input_gradient(x.data(), 2, shape, g), tsviz::ArgumentError, "no filter layer named 'nope'");
}

}  // namespace

int main(int argc, char** argv) {
    const testing::Args a = testing::args(argc, argv);
    const std::vector<double> series = testing::b5m_standardised(a.b5m);
    try {
        for (const char* name : {"paper_net_op17", "keras_paper_net_op17"}) {
            const Model m = Model::load(a.model(name));
            std::vector<int64_t> shape;
            const std::vector<float> x = testing::windows(m, series, kN, 700, 977, shape);
            check_abs_is_saliency(m, x, shape, 50);
            check_zeroing(m, x, shape);
        }
        const Model fcn = Model::load(a.model("fcn_op17"));
        std::vector<int64_t> shape;
        const std::vector<float> x = testing::windows(fcn, series, kN, 300, 1500, shape, 64);
        check_abs_is_saliency(fcn, x, shape, 64);
        check_loss_gradient(fcn, x, shape, 64);
        check_errors(fcn, x, shape);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "unexpected exception: %s\n", e.what());
        return 1;
    }
    return testing::report("test_gradient");
}
