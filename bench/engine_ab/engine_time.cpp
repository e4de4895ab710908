// Thread CPU time of the engine's own work on one model, through the public C++ API only (so
// that it builds against any revision of the library): predict, explain, or explain plus the
// saliency of every filter of every layer ("full"), repeated; prints the minimum and the
// median in ms. bench/engine_ab/run.sh builds it against two revisions and alternates them.
//
//   engine_time MODEL.onnx N MODE REPS [LENGTH]
//
// LENGTH stands for a free input length (default 150). Random normal input, seed 0; with the
// environment variable WINDOWS naming a file of float32 windows in the model's layout (the
// bench's real windows, written by windows.py), the first N of them. With THRASH set, a 64 MiB
// buffer is read before every call (cold caches).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "tsviz/explain.hpp"
#include "tsviz/model.hpp"

namespace {

double thread_ms() {
    timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) * 1e-6;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: %s MODEL.onnx N predict|explain|full REPS [LENGTH]\n", argv[0]);
        return 2;
    }
    const tsviz::Model model = tsviz::Model::load(argv[1]);
    const int64_t n = std::atol(argv[2]);
    const std::string mode = argv[3];
    const int reps = std::atoi(argv[4]);
    const int64_t length = argc > 5 ? std::atol(argv[5]) : 150;
    std::vector<int64_t> shape = model.input().sample_shape;
    int64_t size = n;
    for (int64_t& d : shape) {
        if (d < 0) d = length;
        size *= d;
    }
    std::vector<float> x(static_cast<size_t>(size));
    std::mt19937 gen(0);
    std::normal_distribution<float> normal;
    for (float& v : x) v = normal(gen);
    if (const char* path = std::getenv("WINDOWS")) {
        FILE* f = std::fopen(path, "rb");
        const size_t got = f ? std::fread(x.data(), sizeof(float), x.size(), f) : 0;
        if (f) std::fclose(f);
        if (got != x.size()) {
            std::fprintf(stderr, "%s: fewer than %lld windows of the model's shape\n", path, static_cast<long long>(n));
            return 1;
        }
    }
    std::vector<float> big(std::getenv("THRASH") ? size_t{16} << 20 : 0, 1.f);
    volatile float sink = 0;
    std::vector<double> ms;
    for (int i = 0; i < reps; ++i) {
        float s = 0;
        for (size_t j = 0; j < big.size(); j += 16) s += big[j];
        sink = sink + s;
        const double t0 = thread_ms();
        if (mode == "predict") {
            model.predict(x.data(), n, shape);
        } else {
            const tsviz::Explanation ex = model.explain(x.data(), n, shape);
            if (mode == "full")
                for (const std::string& layer : ex.layer_names()) ex.saliency(layer);
        }
        ms.push_back(thread_ms() - t0);
    }
    std::sort(ms.begin(), ms.end());
    std::printf("min %.4f median %.4f\n", ms.front(), ms[ms.size() / 2]);
    return 0;
}
