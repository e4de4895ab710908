// One build of the engine behind a C interface, compiled into a shared object per revision so
// that bench/engine_ab/engine_pair.cpp can load two revisions into one process and alternate
// them (run.sh --one-process). Public C++ API only, as engine_time.cpp, so that it builds
// against any revision of the library.
#include <algorithm>
#include <cstdint>
#include <ctime>
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

struct Loaded {
    tsviz::Model model;
    std::vector<int64_t> shape;  // one sample's, free lengths fixed
};

}  // namespace

extern "C" {

// The model at `path`, a free input length standing for `length`; null (and the reason in
// `why`, at most `why_len` bytes) when it does not load.
void* shim_load(const char* path, long length, char* why, long why_len) {
    try {
        auto* h = new Loaded{tsviz::Model::load(path), {}};
        h->shape = h->model.input().sample_shape;
        for (int64_t& d : h->shape)
            if (d < 0) d = length;
        return h;
    } catch (const std::exception& e) {
        const std::string w = e.what();
        const size_t n = std::min(w.size(), static_cast<size_t>(why_len > 0 ? why_len - 1 : 0));
        std::copy(w.begin(), w.begin() + static_cast<std::ptrdiff_t>(n), why);
        if (why_len > 0) why[n] = '\0';
        return nullptr;
    }
}

// Floats in one sample.
long shim_sample_size(void* h) {
    long size = 1;
    for (int64_t d : static_cast<Loaded*>(h)->shape) size *= static_cast<long>(d);
    return size;
}

// The least thread CPU time (ms) of `reps` calls on n samples at x: mode 0 predict, 1 explain,
// 2 explain and the saliency of every filter of every layer.
double shim_time(void* h, const float* x, long n, int mode, int reps) {
    const Loaded& l = *static_cast<Loaded*>(h);
    double best = 1e300;
    for (int i = 0; i < reps; ++i) {
        const double t0 = thread_ms();
        if (mode == 0) {
            l.model.predict(x, n, l.shape);
        } else {
            const tsviz::Explanation ex = l.model.explain(x, n, l.shape);
            if (mode == 2)
                for (const std::string& layer : ex.layer_names()) ex.saliency(layer);
        }
        best = std::min(best, thread_ms() - t0);
    }
    return best;
}

}  // extern "C"
