// The timed work of the engine A/B tools behind a C interface, through the public C++ API only
// (so that it builds against any revision of the library): loading a model, its input (random
// or the bench's real windows), and the thread CPU time of predict, explain, or explain plus the
// saliency of every filter of every layer ("full"). engine_time.cpp links it with one revision;
// run.sh --one-process builds it into a shared object per revision, which engine_pair.cpp loads
// two at a time.
#include <algorithm>
#include <cstdint>
#include <cstdio>
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

struct Loaded {
    tsviz::Model model;
    std::vector<int64_t> shape;  // one sample's, free lengths fixed
    // Where "full" puts each layer's saliency, kept between calls as the Python binding keeps
    // its blocks: a fresh vector per layer of a 64-window analysis cost page faults and a
    // zero fill (4% of the residual net's), which no caller through Python pays.
    std::vector<float> saliency;
};

void set_why(const std::string& w, char* why, long why_len) {
    if (why_len <= 0) return;
    const size_t n = std::min(w.size(), static_cast<size_t>(why_len - 1));
    std::copy(w.begin(), w.begin() + static_cast<std::ptrdiff_t>(n), why);
    why[n] = '\0';
}

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
        set_why(e.what(), why, why_len);
        return nullptr;
    }
}

// Floats in one sample.
long shim_sample_size(void* h) {
    long size = 1;
    for (int64_t d : static_cast<Loaded*>(h)->shape) size *= static_cast<long>(d);
    return size;
}

// n samples into x: random normal (seed 0), or with `windows` (a file of float32 windows in the
// model's layout, written by windows.py) its first n. 0 (and the reason in `why`) when the file
// holds fewer.
int shim_input(void* h, long n, const char* windows, float* x, char* why, long why_len) {
    const size_t size = static_cast<size_t>(n * shim_sample_size(h));
    std::mt19937 gen(0);
    std::normal_distribution<float> normal;
    for (size_t i = 0; i < size; ++i) x[i] = normal(gen);
    if (!windows) return 1;
    FILE* f = std::fopen(windows, "rb");
    const size_t got = f ? std::fread(x, sizeof(float), size, f) : 0;
    if (f) std::fclose(f);
    if (got == size) return 1;
    set_why(std::string(windows) + ": fewer than " + std::to_string(n) + " windows of the model's shape", why, why_len);
    return 0;
}

// The thread CPU time (ms) of one call on n samples at x: mode 0 predict, 1 explain, 2 explain
// and the saliency of every filter of every layer.
double shim_call(void* h, const float* x, long n, int mode) {
    Loaded& l = *static_cast<Loaded*>(h);
    const double t0 = thread_ms();
    if (mode == 0) {
        l.model.predict(x, n, l.shape);
    } else {
        const tsviz::Explanation ex = l.model.explain(x, n, l.shape);
        if (mode == 2)
            for (const std::string& layer : ex.layer_names()) {
                // (N, F, C, T): importance is (N, F), a sample shim_sample_size floats.
                const size_t size = ex.importance(layer).size() * static_cast<size_t>(shim_sample_size(h));
                if (l.saliency.size() < size) l.saliency.resize(size);
                ex.saliency(layer, {}, tsviz::SaliencyMethod::Auto, l.saliency.data());
            }
    }
    return thread_ms() - t0;
}

// The least of `reps` calls' times.
double shim_time(void* h, const float* x, long n, int mode, int reps) {
    double best = 1e300;
    for (int i = 0; i < reps; ++i) best = std::min(best, shim_call(h, x, n, mode));
    return best;
}

// The mode's number for shim_call, or -1.
int shim_mode(const char* name) {
    const std::string m = name;
    return m == "predict" ? 0 : m == "explain" ? 1 : m == "full" ? 2 : -1;
}

}  // extern "C"
