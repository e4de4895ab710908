// Two revisions of the engine in one process (run.sh --one-process): loads the shared objects
// OLD.so and NEW.so (engine_shim.cpp built against each, with their symbols kept to
// themselves), then alternates them in rounds on the same input, each round timing `reps`
// calls of one and then of the other (the order flipped every round). Prints the least time
// of each and the median over rounds of new / old with its quartiles: both sides see the
// machine as it is during that round, so a machine that slows down for a while (other
// tenants on a shared host) moves both, not the ratio.
//
//   engine_pair OLD.so NEW.so MODEL.onnx N predict|explain|full REPS ROUNDS [WINDOWS]
//
// Random normal input (seed 0, free lengths 150), or the first N windows of the float32 file
// WINDOWS (bench/engine_ab/windows.py).
#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

struct Side {
    void* (*load)(const char*, long, char*, long) = nullptr;
    long (*sample_size)(void*) = nullptr;
    int (*input)(void*, long, const char*, float*, char*, long) = nullptr;
    double (*time)(void*, const float*, long, int, int) = nullptr;
    int (*mode)(const char*) = nullptr;
    void* model = nullptr;
};

Side open_side(const char* so, const char* model) {
    // RTLD_DEEPBIND: each object binds to its own engine, not to the first one loaded.
    void* d = dlopen(so, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!d) {
        std::fprintf(stderr, "engine_pair: %s\n", dlerror());
        std::exit(1);
    }
    Side s;
    s.load = reinterpret_cast<decltype(s.load)>(dlsym(d, "shim_load"));
    s.sample_size = reinterpret_cast<decltype(s.sample_size)>(dlsym(d, "shim_sample_size"));
    s.input = reinterpret_cast<decltype(s.input)>(dlsym(d, "shim_input"));
    s.time = reinterpret_cast<decltype(s.time)>(dlsym(d, "shim_time"));
    s.mode = reinterpret_cast<decltype(s.mode)>(dlsym(d, "shim_mode"));
    if (!s.load || !s.sample_size || !s.input || !s.time || !s.mode) {
        std::fprintf(stderr, "engine_pair: %s is not an engine_shim build\n", so);
        std::exit(1);
    }
    char why[512] = "";
    s.model = s.load(model, 150, why, sizeof why);
    if (!s.model) {
        std::fprintf(stderr, "engine_pair: %s (with %s): %s\n", model, so, why);
        std::exit(1);
    }
    return s;
}

double quantile(std::vector<double> v, double q) {
    std::sort(v.begin(), v.end());
    return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5)];
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 8) {
        std::fprintf(stderr, "usage: %s OLD.so NEW.so MODEL.onnx N predict|explain|full REPS ROUNDS [WINDOWS]\n",
                     argv[0]);
        return 2;
    }
    const long n = std::atol(argv[4]);
    const int reps = std::atoi(argv[6]), rounds = std::atoi(argv[7]);
    Side old_side = open_side(argv[1], argv[3]), new_side = open_side(argv[2], argv[3]);
    const int mode = old_side.mode(argv[5]);
    if (mode < 0 || n < 1 || reps < 1 || rounds < 1) {
        std::fprintf(stderr, "engine_pair: N, REPS and ROUNDS must be positive, the mode predict, explain or full\n");
        return 2;
    }
    const long size = n * old_side.sample_size(old_side.model);
    if (new_side.sample_size(new_side.model) * n != size) {
        std::fprintf(stderr, "engine_pair: the two revisions read the model's input differently\n");
        return 1;
    }
    std::vector<float> x(static_cast<size_t>(size));
    char why[512] = "";
    if (!old_side.input(old_side.model, n, argc > 8 ? argv[8] : nullptr, x.data(), why, sizeof why)) {
        std::fprintf(stderr, "%s\n", why);
        return 1;
    }
    old_side.time(old_side.model, x.data(), n, mode, 2);  // warm-up: plans, pools, caches
    new_side.time(new_side.model, x.data(), n, mode, 2);
    std::vector<double> old_ms, new_ms, ratio;
    for (int r = 0; r < rounds; ++r) {
        double a, b;
        if (r % 2 == 0) {
            a = old_side.time(old_side.model, x.data(), n, mode, reps);
            b = new_side.time(new_side.model, x.data(), n, mode, reps);
        } else {
            b = new_side.time(new_side.model, x.data(), n, mode, reps);
            a = old_side.time(old_side.model, x.data(), n, mode, reps);
        }
        old_ms.push_back(a);
        new_ms.push_back(b);
        ratio.push_back(b / a);
    }
    std::printf("%.4f %.4f %.3f %.3f %.3f\n", *std::min_element(old_ms.begin(), old_ms.end()),
                *std::min_element(new_ms.begin(), new_ms.end()), quantile(ratio, 0.5), quantile(ratio, 0.25),
                quantile(ratio, 0.75));
    return 0;
}
