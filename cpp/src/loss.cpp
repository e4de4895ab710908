// The losses (tsviz/loss.hpp), accumulated in double: a batch of 10^4 samples sums without
// visible rounding, and log-softmax subtracts the maximum first so large logits do not overflow.
#include "tsviz/loss.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>

#include "tsviz/error.hpp"

namespace tsviz {

Loss parse_loss(const std::string& name) {
    if (name == "mse") return Loss::Mse;
    if (name == "cross_entropy") return Loss::CrossEntropy;
    throw ArgumentError("loss '" + name + "' is not one of 'mse', 'cross_entropy'");
}

const char* loss_name(Loss loss) { return loss == Loss::Mse ? "mse" : "cross_entropy"; }

int64_t loss_target_columns(Loss loss, int64_t k) { return loss == Loss::Mse ? k : 1; }

double batch_loss(Loss loss, const float* values, int64_t n, int64_t k, const float* y, float* grad,
                  float* per_sample) {
    if (n < 0 || k < 1) throw ArgumentError("a loss needs at least one output value per sample");
    const int64_t cols = loss_target_columns(loss, k);
    double total = 0;
    for (int64_t i = 0; i < n; ++i) {
        const float* v = values + i * k;
        const float* t = y + i * cols;
        float* g = grad ? grad + i * k : nullptr;
        double li = 0;
        if (loss == Loss::Mse) {
            for (int64_t j = 0; j < k; ++j) {
                if (!std::isfinite(t[j]))
                    throw ArgumentError("mse target of sample " + std::to_string(i) + " is not finite");
                const double d = static_cast<double>(v[j]) - t[j];
                li += d * d;
                if (g) g[j] = static_cast<float>(2 * d / static_cast<double>(k));
            }
            li /= static_cast<double>(k);
        } else {
            const double c = t[0];
            if (!(c >= 0 && c < static_cast<double>(k) && c == std::floor(c)))
            {
                std::ostringstream msg;
                msg << "cross_entropy target of sample " << i << " is " << c << "; expected a class index in [0, "
                    << k << ")";
                throw ArgumentError(msg.str());
            }
            const auto label = static_cast<int64_t>(c);
            double vmax = v[0];
            for (int64_t j = 1; j < k; ++j) vmax = std::max(vmax, static_cast<double>(v[j]));
            double z = 0;
            for (int64_t j = 0; j < k; ++j) z += std::exp(static_cast<double>(v[j]) - vmax);
            const double log_z = vmax + std::log(z);
            li = log_z - v[label];
            if (g)
                for (int64_t j = 0; j < k; ++j)
                    g[j] = static_cast<float>(std::exp(static_cast<double>(v[j]) - log_z) - (j == label ? 1.0 : 0.0));
        }
        if (per_sample) per_sample[i] = static_cast<float>(li);
        total += li;
    }
    return n > 0 ? total / static_cast<double>(n) : 0.0;
}

}  // namespace tsviz
