#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <tsviz/model.hpp>

int main(int argc, char** argv) {
    try {
        const tsviz::Model model = tsviz::Model::load(argc > 1 ? argv[1] : "tests/models/paper_net_op17.onnx");
        const std::vector<int64_t> shape = model.input().sample_shape;  // (C, T) = (2, 50) here
        std::vector<float> x(2 * 50);                                   // one window, channels-first
        for (int t = 0; t < 50; ++t) {
            x[t] = std::sin(0.2f * t);                       // channel 0: the signal
            x[50 + t] = t > 0 ? x[t] - x[t - 1] : 0.f;       // channel 1: its first difference
        }
        const std::vector<float> y = model.predict(x.data(), 1, shape);  // (N, K) row-major
        const tsviz::Explanation ex = model.explain(x.data(), 1, shape);
        std::printf("prediction %g, explaining output %lld\n", y[0], static_cast<long long>(ex.target()[0]));
        for (const std::string& layer : ex.layer_names()) {
            const std::vector<float>& importance = ex.importance(layer);  // (N, F), scaled to [0, 1]
            const auto best = std::max_element(importance.begin(), importance.end()) - importance.begin();
            std::printf("%-40s filter %3td  importance raw %g\n", layer.c_str(), best,
                        ex.importance_raw(layer)[best]);
        }
    } catch (const tsviz::Error& e) {  // ModelError, ShapeError or ArgumentError
        std::fprintf(stderr, "%s\n", e.what());
        return 2;
    }
}
