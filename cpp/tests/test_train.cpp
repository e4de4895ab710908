// The Trainer (tsviz/train.hpp) through the public API: the gradient of the batch loss against
// central finite differences of the loss in double (on real B5M windows, through a whole
// model), the same gradient for the same inputs, set/get round trips, a model with the new
// parameters, and the errors. test_train MODELS_DIR B5M.csv
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "testing.hpp"
#include "tsviz/train.hpp"

using namespace tsviz;

namespace {

void check_model(const testing::Args& a, const std::string& name, Loss loss) {
    const Model model = Model::load(a.model(name));
    const std::vector<double> series = testing::b5m_standardised(a.b5m);
    std::vector<int64_t> shape;
    const int64_t n = 5;
    const std::vector<float> x = testing::windows(model, series, n, 100, 37, shape, 64);
    const int64_t k = model.n_outputs();
    std::vector<float> y(static_cast<size_t>(n * loss_target_columns(loss, k)));
    for (size_t i = 0; i < y.size(); ++i)
        y[i] = loss == Loss::Mse ? 0.1f * static_cast<float>(i % 7) - 0.3f : static_cast<float>(i % k);
    Trainer t(model, loss);
    CHECK(t.size() > 0);
    CHECK(static_cast<int64_t>(t.parameters().size()) == static_cast<int64_t>(model.layers().size()));
    std::vector<float> grad(static_cast<size_t>(t.size())), again(grad.size());
    const double value = t.gradient(x.data(), y.data(), n, shape, grad.data());
    CHECK(t.gradient(x.data(), y.data(), n, shape, again.data()) == value);
    CHECK(grad == again);
    // Finite differences on the largest gradient entries of each layer (smooth there unless a
    // ReLU or max-pool kink is crossed; the step is small against the windows' scale).
    std::vector<float> p = t.get();
    double worst = 0;
    for (const ParameterInfo& info : t.parameters()) {
        for (int64_t off : {info.weight_offset, info.bias_offset}) {
            const int64_t len = off == info.bias_offset ? info.n_filters : info.bias_offset - info.weight_offset;
            int64_t best = off;
            for (int64_t i = off; i < off + len; ++i)
                if (std::fabs(grad[i]) > std::fabs(grad[best])) best = i;
            const float keep = p[best], h = 1e-3f * std::max(1.f, std::fabs(keep));
            p[best] = keep + h;
            t.set(p.data());
            const double up = t.gradient(x.data(), y.data(), n, shape, nullptr);
            p[best] = keep - h;
            t.set(p.data());
            const double down = t.gradient(x.data(), y.data(), n, shape, nullptr);
            p[best] = keep;
            t.set(p.data());
            const double fd = (up - down) / (2.0 * static_cast<double>(h));
            const double err = std::fabs(fd - grad[best]) / std::max(1e-3, std::fabs(fd));
            worst = std::max(worst, err);
        }
    }
    if (worst > 2e-2) std::fprintf(stderr, "  %s: worst relative error %.3g\n", name.c_str(), worst);
    CHECK(worst <= 2e-2);
    // A model with other parameters: the trainer's predictions, and the original unchanged.
    for (float& v : p) v *= 0.5f;
    t.set(p.data());
    const std::vector<float> before = model.predict(x.data(), n, shape);
    const Model tuned = t.model();
    CHECK(tuned.predict(x.data(), n, shape) == t.predict(x.data(), n, shape));
    CHECK(tuned.predict(x.data(), n, shape) != before);
    CHECK(model.predict(x.data(), n, shape) == before);
    CHECK(t.get() == p);
}

}  // namespace

int main(int argc, char** argv) {
    const testing::Args a = testing::args(argc, argv);
    check_model(a, "paper_net_op17", Loss::Mse);
    check_model(a, "fcn_op13", Loss::CrossEntropy);
    check_model(a, "resnet_op17_bn", Loss::CrossEntropy);
    check_model(a, "channels_last_op17", Loss::Mse);
    check_model(a, "keras_strided_op17", Loss::Mse);

    const Model model = Model::load(a.model("paper_net_op17"));
    Trainer t(model, Loss::Mse);
    std::vector<float> p = t.get();
    p[3] = std::nanf("");
    CHECK_THROWS(t.set(p.data()), ArgumentError, "is NaN; training diverged");
    std::vector<int64_t> shape{2, 50};
    std::vector<float> x(100, 0.f), y(1, std::nanf(""));
    CHECK_THROWS(t.gradient(x.data(), y.data(), 1, shape, nullptr), ArgumentError, "sample 0");
    shape = {2, 49};
    CHECK_THROWS(t.gradient(x.data(), y.data(), 1, shape, nullptr), ShapeError, "the model expects (2, 50)");
    return testing::report("train");
}
