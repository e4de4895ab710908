// Thread CPU time of the engine's own work on one model (engine_shim.cpp, built with it):
// predict, explain, or explain plus the saliency of every filter of every layer ("full"),
// repeated; prints the minimum and the median in ms. bench/engine_ab/run.sh builds it against
// two revisions and alternates them; profile.sh records it.
//
//   engine_time MODEL.onnx N MODE REPS [LENGTH]
//
// LENGTH stands for a free input length (default 150). Random normal input, seed 0; with the
// environment variable WINDOWS naming a file of float32 windows in the model's layout (the
// bench's real windows, written by windows.py), the first N of them. With THRASH set, a 64 MiB
// buffer is read before every call (cold caches). With FOOTPRINT set (under valgrind's
// callgrind, started with --collect-atstart=no: profile.sh --footprint), REPS warm calls, then
// 256 MiB written and read (more than the simulated last-level cache), then one call collected:
// the code and data one call touches from cold caches.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>
#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define HAVE_CALLGRIND 1
#endif
#endif

extern "C" {
void* shim_load(const char* path, long length, char* why, long why_len);
long shim_sample_size(void* h);
int shim_input(void* h, long n, const char* windows, float* x, char* why, long why_len);
double shim_call(void* h, const float* x, long n, int mode);
int shim_mode(const char* name);
}

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: %s MODEL.onnx N predict|explain|full REPS [LENGTH]\n", argv[0]);
        return 2;
    }
    const long n = std::atol(argv[2]);
    const int mode = shim_mode(argv[3]);
    const int reps = std::atoi(argv[4]);
    if (mode < 0 || n < 1 || reps < 1) {
        std::fprintf(stderr, "engine_time: N and REPS must be positive, the mode predict, explain or full\n");
        return 2;
    }
    char why[512] = "";
    void* model = shim_load(argv[1], argc > 5 ? std::atol(argv[5]) : 150, why, sizeof why);
    if (!model) {
        std::fprintf(stderr, "engine_time: %s\n", why);
        return 1;
    }
    std::vector<float> x(static_cast<size_t>(n * shim_sample_size(model)));
    if (!shim_input(model, n, std::getenv("WINDOWS"), x.data(), why, sizeof why)) {
        std::fprintf(stderr, "%s\n", why);
        return 1;
    }
    if (std::getenv("FOOTPRINT")) {
#ifdef HAVE_CALLGRIND
        for (int i = 0; i < reps; ++i) shim_call(model, x.data(), n, mode);
        {
            std::vector<char> sweep(size_t{256} << 20, 1);
            volatile long sum = 0;
            for (size_t j = 0; j < sweep.size(); j += 64) sum = sum + sweep[j];
        }
        CALLGRIND_TOGGLE_COLLECT;
        shim_call(model, x.data(), n, mode);
        CALLGRIND_TOGGLE_COLLECT;
        return 0;
#else
        std::fprintf(stderr, "engine_time: FOOTPRINT needs valgrind's headers (valgrind/callgrind.h) at build time\n");
        return 2;
#endif
    }
    std::vector<float> big(std::getenv("THRASH") ? size_t{16} << 20 : 0, 1.f);
    volatile float sink = 0;
    std::vector<double> ms;
    for (int i = 0; i < reps; ++i) {
        float s = 0;
        for (size_t j = 0; j < big.size(); j += 16) s += big[j];
        sink = sink + s;
        ms.push_back(shim_call(model, x.data(), n, mode));
    }
    std::sort(ms.begin(), ms.end());
    std::printf("min %.4f median %.4f\n", ms.front(), ms[ms.size() / 2]);
    return 0;
}
