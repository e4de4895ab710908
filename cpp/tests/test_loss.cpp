// The losses (tsviz/loss.hpp): gradients against central finite differences in double, the
// values against direct formulas, stability for large logits, and the errors for bad targets.
// test_loss
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "testing.hpp"
#include "tsviz/loss.hpp"

using tsviz::Loss;

namespace {

void check_gradient(Loss loss, int64_t n, int64_t k) {
    std::mt19937 rng(7);
    std::normal_distribution<float> d;
    std::vector<float> v(static_cast<size_t>(n * k)), y(static_cast<size_t>(n * tsviz::loss_target_columns(loss, k)));
    for (auto& x : v) x = d(rng);
    for (size_t i = 0; i < y.size(); ++i)
        y[i] = loss == Loss::Mse ? d(rng) : static_cast<float>(static_cast<int64_t>(i * 5 + 1) % k);
    std::vector<float> grad(v.size()), per(static_cast<size_t>(n));
    const double mean = tsviz::batch_loss(loss, v.data(), n, k, y.data(), grad.data(), per.data());
    double sum = 0;
    for (float p : per) sum += p;
    CHECK(std::abs(mean - sum / static_cast<double>(n)) < 1e-6);
    // d mean / d v_ij = grad_ij / n; the step is large enough for float inputs.
    double worst = 0;
    for (size_t j = 0; j < v.size(); ++j) {
        const float keep = v[j];
        const float h = 1e-2f;
        v[j] = keep + h;
        const double up = tsviz::batch_loss(loss, v.data(), n, k, y.data());
        v[j] = keep - h;
        const double down = tsviz::batch_loss(loss, v.data(), n, k, y.data());
        v[j] = keep;
        const double fd = (up - down) / (2.0 * h) * static_cast<double>(n);
        worst = std::max(worst, std::abs(fd - grad[j]));
    }
    ::testing::record(worst < 2e-3, __FILE__, __LINE__,
                      std::string(tsviz::loss_name(loss)) + " gradient vs finite differences: " +
                          std::to_string(worst));
}

}  // namespace

int main() {
    check_gradient(Loss::Mse, 5, 3);
    check_gradient(Loss::CrossEntropy, 6, 4);

    // mse of one sample by hand; cross-entropy of equal logits is log k.
    const float v[2] = {1.f, -2.f}, y[2] = {0.f, 0.f};
    CHECK(std::abs(tsviz::batch_loss(Loss::Mse, v, 1, 2, y) - 2.5) < 1e-9);
    const float eq[3] = {0.3f, 0.3f, 0.3f}, label[1] = {2.f};
    CHECK(std::abs(tsviz::batch_loss(Loss::CrossEntropy, eq, 1, 3, label) - std::log(3.0)) < 1e-6);

    // Logits far beyond exp's float range stay finite.
    const float big[2] = {1000.f, -1000.f}, first[1] = {0.f}, second[1] = {1.f};
    float g[2];
    CHECK(tsviz::batch_loss(Loss::CrossEntropy, big, 1, 2, first, g) < 1e-6);
    CHECK(std::abs(tsviz::batch_loss(Loss::CrossEntropy, big, 1, 2, second, g) - 2000.0) < 1e-3);
    CHECK(std::abs(g[0] - 1.f) < 1e-6 && std::abs(g[1] + 1.f) < 1e-6);

    // Bad targets name the sample and what is expected.
    const float bad_label[2] = {1.f, 2.5f};
    const float two[4] = {0, 0, 0, 0};
    CHECK_THROWS(tsviz::batch_loss(Loss::CrossEntropy, two, 2, 2, bad_label), tsviz::ArgumentError,
                      "target of sample 1 is 2.5");
    const float nan_target[2] = {0.f, NAN};
    CHECK_THROWS(tsviz::batch_loss(Loss::Mse, two, 1, 2, nan_target), tsviz::ArgumentError, "not finite");
    CHECK_THROWS(tsviz::parse_loss("l1"), tsviz::ArgumentError, "'mse', 'cross_entropy'");
    CHECK(tsviz::parse_loss("cross_entropy") == Loss::CrossEntropy);
    return testing::report("loss");
}
