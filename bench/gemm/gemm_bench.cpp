// The engine's matrix product (tsviz::ops::tap_product) against BLAS libraries, on the engine's
// own shapes, in one process, at one thread count (run it once per count: the engine reads
// TSVIZ_NUM_THREADS once). See bench/README.md, "GEMM candidates".
//
// Each shape is C (M x N) = A (M x K) * B (K x N), K = channels * kernel, N = segments * cols:
// the engine gathers B from the source tensors by its tap rule as it packs (that gather is in
// its time); the libraries get B already im2col'ed (row-major, contiguous), which favours them,
// and so does "engine, B given", the engine's kernel reading that B (its time without the
// gather). Every candidate's C is checked against the engine's before it is timed.
//
// Timing: rounds of interleaved blocks (engine, candidate 1, candidate 2, ..., the order rotated
// each round); a block is one untimed warm-up call then n timed calls (n sized once to ~budget
// ms); the per-call time of a candidate is the median of its blocks. A candidate that has spent
// over --cap-s seconds on a shape sits out its remaining rounds (the table says how many it ran).
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "ops/gemm.hpp"
#include "parallel.hpp"

#ifdef TSVIZ_BENCH_EIGEN
namespace bench {
std::string eigen_version();
void eigen_threads(int n);
void eigen_gemm(int64_t m, int64_t n, int64_t k, const float* a, const float* b, float beta, float* c);
}  // namespace bench
#endif

namespace {

using tsviz::ops::Segment;
using tsviz::ops::TapProduct;

// One product of the engine: `segments` column segments of `cols` columns, each reading its own
// source (channels x src_len) with the tap rule (forward or transposed, stride 1, dilation 1,
// delta); accumulate as the input gradient does (the libraries then run with beta = 1).
struct Shape {
    std::string name;
    int64_t m, channels, kernel, src_len, cols, segments, delta;
    bool transposed, accumulate;
    int64_t k() const { return channels * kernel; }
    int64_t n() const { return cols * segments; }
    double flop() const { return 2.0 * static_cast<double>(m) * static_cast<double>(k()) * static_cast<double>(n()); }
};

// The FCN (Wang 2017) on GunPoint (T = 150, 'same' padding: kernel 8 pads 3 + 4), the paper's
// network (T = 50, 2 channels; pooled to 25 and 12), and the banded tangents of both (one per
// input point: a sample's C * T tangents, each a segment as wide as its band; band widths
// after each conv: FCN 8 / 12 / 14, paper net 5 / 7 / 6, read from bands of 1 / 8 / 12 and
// 1 / 3 / 4 after pooling).
std::vector<Shape> shapes() {
    std::vector<Shape> s;
    auto fwd = [&](const std::string& net, const std::string& layer, int64_t m, int64_t c, int64_t k, int64_t pad,
                   int64_t len, int64_t batch) {
        s.push_back({net + " " + layer + " forward, batch " + std::to_string(batch), m, c, k, len, len, batch, -pad, false,
                     false});
    };
    // Input gradient: M = input channels, K = filters * kernel, transposed taps over the output.
    auto grad = [&](const std::string& net, const std::string& layer, int64_t c_in, int64_t filters, int64_t k,
                    int64_t pad, int64_t len, int64_t batch) {
        s.push_back({net + " " + layer + " input grad, batch " + std::to_string(batch), c_in, filters, k, len, len,
                     batch, -pad, true, true});
    };
    auto tangent = [&](const std::string& net, const std::string& layer, int64_t m, int64_t c, int64_t k, int64_t w_in,
                       int64_t w_out, int64_t count, const std::string& what) {
        s.push_back({net + " " + layer + " tangents, " + what, m, c, k, w_in, w_out, count, -(k - 1), false, false});
    };
    for (int64_t b : {1, 64}) fwd("FCN", "conv1", 128, 1, 8, 3, 150, b);
    for (int64_t b : {1, 16, 64}) fwd("FCN", "conv2", 256, 128, 5, 2, 150, b);
    for (int64_t b : {1, 16, 64}) fwd("FCN", "conv3", 128, 256, 3, 1, 150, b);
    for (int64_t b : {1, 16, 64}) grad("FCN", "conv3", 256, 128, 3, 1, 150, b);
    for (int64_t b : {1, 16, 64}) grad("FCN", "conv2", 128, 256, 5, 2, 150, b);
    for (int64_t b : {1, 64}) grad("FCN", "conv1", 1, 128, 8, 3, 150, b);
    for (int64_t b : {64, 256}) fwd("paper", "conv1", 16, 2, 5, 2, 50, b);
    for (int64_t b : {64, 256}) fwd("paper", "conv2", 32, 16, 5, 2, 25, b);
    for (int64_t b : {64, 256}) fwd("paper", "conv3", 32, 32, 3, 1, 12, b);
    for (int64_t b : {64, 256}) grad("paper", "conv3", 32, 32, 3, 1, 12, b);
    for (int64_t b : {64, 256}) grad("paper", "conv2", 16, 32, 5, 2, 25, b);
    // The residual net (T = 96, 'same' padding): its 16- and 32-filter layers at 64 windows.
    fwd("resnet", "conv 16-16", 16, 16, 3, 1, 96, 64);
    fwd("resnet", "conv 16-32", 32, 16, 3, 1, 96, 64);
    fwd("resnet", "conv 32-32", 32, 32, 3, 1, 96, 64);
    grad("resnet", "conv 16-16", 16, 16, 3, 1, 96, 64);
    grad("resnet", "conv 16-32", 16, 32, 3, 1, 96, 64);
    grad("resnet", "conv 32-32", 32, 32, 3, 1, 96, 64);
    for (int64_t n : {1, 16}) {
        const std::string what = n == 1 ? "1 sample" : std::to_string(n) + " samples";
        tangent("FCN", "conv1", 128, 1, 8, 1, 8, 150 * n, what);
        tangent("FCN", "conv2", 256, 128, 5, 8, 12, 150 * n, what);
        tangent("FCN", "conv3", 128, 256, 3, 12, 14, 150 * n, what);
        tangent("paper", "conv1", 16, 2, 5, 1, 5, 100 * n, what);
        tangent("paper", "conv2", 32, 16, 5, 3, 7, 100 * n, what);
        tangent("paper", "conv3", 32, 32, 3, 4, 6, 100 * n, what);
    }
    return s;
}

// ---- libraries, loaded at run time -------------------------------------------------------

enum { kRowMajor = 101, kNoTrans = 111 };

// C = A * B + beta * C through a library; beta is 0 or 1.
using Gemm = std::function<void(int64_t m, int64_t n, int64_t k, const float* a, const float* b, float beta, float* c)>;

struct Candidate {
    std::string name;
    std::string version;
    Gemm gemm;
};

void* open_library(const std::string& path, std::string& why) {
    if (path.empty()) {
        why = "no path given";
        return nullptr;
    }
    void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) why = dlerror();
    return h;
}

template <class F>
F symbol(void* h, std::initializer_list<const char*> names) {
    for (const char* n : names)
        if (void* p = dlsym(h, n)) return reinterpret_cast<F>(p);
    return nullptr;
}

// OpenBLAS's cblas_sgemm with 32-bit (LP64) or 64-bit (ILP64) integers; `prefix`/`suffix`
// name the symbols of a renamed build (numpy's wheel: scipy_cblas_sgemm64_).
template <class Int>
bool add_openblas(std::vector<Candidate>& out, const std::string& label, const std::string& path, const char* prefix,
                  const char* suffix, int threads) {
    std::string why;
    void* h = open_library(path, why);
    if (!h) {
        std::printf("skipped %s: %s\n", label.c_str(), why.c_str());
        return false;
    }
    auto name = [&](const char* base) { return std::string(prefix) + base + suffix; };
    using Sgemm = void (*)(int, int, int, Int, Int, Int, float, const float*, Int, const float*, Int, float, float*, Int);
    const auto sgemm = symbol<Sgemm>(h, {name("cblas_sgemm").c_str()});
    const auto set_threads = symbol<void (*)(int)>(h, {name("openblas_set_num_threads").c_str()});
    const auto config = symbol<const char* (*)()>(h, {name("openblas_get_config").c_str()});
    const auto core = symbol<const char* (*)()>(h, {name("openblas_get_corename").c_str()});
    if (!sgemm || !set_threads) {
        std::printf("skipped %s: %s has no %s or %s\n", label.c_str(), path.c_str(), name("cblas_sgemm").c_str(),
                    name("openblas_set_num_threads").c_str());
        return false;
    }
    set_threads(threads);
    std::string version = config ? config() : "?";
    if (core) version += ", kernels for " + std::string(core());
    out.push_back({label, version, [sgemm](int64_t m, int64_t n, int64_t k, const float* a, const float* b, float beta,
                                           float* c) {
                       sgemm(kRowMajor, kNoTrans, kNoTrans, static_cast<Int>(m), static_cast<Int>(n),
                             static_cast<Int>(k), 1.f, a, static_cast<Int>(k), b, static_cast<Int>(n), beta, c,
                             static_cast<Int>(n));
                   }});
    return true;
}

void add_mkl(std::vector<Candidate>& out, const std::string& path, int threads) {
    std::string why;
    // One OpenMP runtime in the process: the GNU one that oneDNN and Eigen use (unless set).
    setenv("MKL_THREADING_LAYER", "GNU", 0);
    void* h = open_library(path, why);
    if (!h) {
        std::printf("skipped MKL: %s\n", why.c_str());
        return;
    }
    using Sgemm = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
    const auto sgemm = symbol<Sgemm>(h, {"cblas_sgemm"});
    const auto set_threads = symbol<void (*)(int)>(h, {"MKL_Set_Num_Threads"});
    const auto version = symbol<void (*)(char*, int)>(h, {"MKL_Get_Version_String"});
    if (!sgemm || !set_threads) {
        std::printf("skipped MKL: %s has no cblas_sgemm or MKL_Set_Num_Threads\n", path.c_str());
        return;
    }
    set_threads(threads);
    char buf[256] = "?";
    if (version) version(buf, sizeof buf);
    std::string v = buf;
    v += std::string(", threading layer ") + std::getenv("MKL_THREADING_LAYER");
    out.push_back({"MKL", v, [sgemm](int64_t m, int64_t n, int64_t k, const float* a, const float* b, float beta,
                                      float* c) {
                       sgemm(kRowMajor, kNoTrans, kNoTrans, static_cast<int>(m), static_cast<int>(n),
                             static_cast<int>(k), 1.f, a, static_cast<int>(k), b, static_cast<int>(n), beta, c,
                             static_cast<int>(n));
                   }});
}

void add_dnnl(std::vector<Candidate>& out, const std::string& path, int threads) {
    std::string why;
    void* h = open_library(path, why);
    if (!h) {
        std::printf("skipped oneDNN: %s\n", why.c_str());
        return;
    }
    // dnnl_sgemm: row-major, 64-bit dimensions; returns a status (0: success).
    using Sgemm = int (*)(char, char, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                          float, float*, int64_t);
    struct Version {
        int major, minor, patch;
        const char* hash;
        unsigned cpu_runtime, gpu_runtime;
    };
    const auto sgemm = symbol<Sgemm>(h, {"dnnl_sgemm"});
    const auto version = symbol<const Version* (*)()>(h, {"dnnl_version"});
    // oneDNN's threads are OpenMP's (found through its dependencies).
    const auto omp_threads = symbol<void (*)(int)>(h, {"omp_set_num_threads"});
    if (!sgemm) {
        std::printf("skipped oneDNN: %s has no dnnl_sgemm\n", path.c_str());
        return;
    }
    std::string v = "?";
    if (version) {
        const Version* ver = version();
        v = std::to_string(ver->major) + "." + std::to_string(ver->minor) + "." + std::to_string(ver->patch);
        v += ver->cpu_runtime == 2 ? " (OpenMP)" : ver->cpu_runtime == 4 ? " (TBB)" : ver->cpu_runtime == 1 ? " (sequential)" : "";
    }
    if (omp_threads)
        omp_threads(threads);
    else
        v += ", thread count not set (no omp_set_num_threads)";
    out.push_back({"oneDNN", v, [sgemm](int64_t m, int64_t n, int64_t k, const float* a, const float* b, float beta,
                                         float* c) {
                       if (sgemm('N', 'N', m, n, k, 1.f, a, k, b, n, beta, c, n) != 0) {
                           std::fprintf(stderr, "dnnl_sgemm failed on %lld x %lld x %lld\n", static_cast<long long>(m),
                                        static_cast<long long>(k), static_cast<long long>(n));
                           std::exit(1);
                       }
                   }});
}

// ---- data ---------------------------------------------------------------------------------

// B (K x N) as the engine's tap rule defines it (ops/gemm.hpp), for the libraries.
void im2col(const Shape& s, const std::vector<float>& src, std::vector<float>& b) {
    const int64_t n = s.n();
    b.assign(static_cast<size_t>(s.k() * n), 0.f);
    for (int64_t g = 0; g < s.segments; ++g) {
        const float* x = src.data() + g * s.channels * s.src_len;
        for (int64_t c = 0; c < s.channels; ++c)
            for (int64_t t = 0; t < s.kernel; ++t)
                for (int64_t o = 0; o < s.cols; ++o) {
                    const int64_t i = s.transposed ? o - s.delta - t : o + s.delta + t;
                    if (i >= 0 && i < s.src_len) b[(c * s.kernel + t) * n + g * s.cols + o] = x[c * s.src_len + i];
                }
    }
}

struct Args {
    int threads = 1;
    double budget_ms = 8;
    double cap_s = 1.0;  // seconds one candidate may spend on one shape before it stops early
    int rounds = 9;
    std::string only;
    std::string openblas = "libopenblas.so.0";
    std::string openblas_numpy;
    std::string mkl;
    std::string dnnl = "libdnnl.so.2";
    std::string libs = "openblas,numpy,mkl,onednn,eigen";
    bool wants(const char* lib) const { return ("," + libs + ",").find("," + std::string(lib) + ",") != std::string::npos; }
};

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string cell(double gflops, double ratio, bool engine) {
    char buf[64];
    if (engine)
        std::snprintf(buf, sizeof buf, "%.1f", gflops);
    else
        std::snprintf(buf, sizeof buf, "%.1f (%.2f)", gflops, ratio);
    return buf;
}

std::string micros(double seconds) {
    char buf[32];
    std::snprintf(buf, sizeof buf, seconds < 1e-4 ? "%.1f" : "%.0f", seconds * 1e6);
    return buf;
}

int usage() {
    std::fprintf(stderr,
                 "usage: gemm_bench --threads T [--budget-ms MS] [--rounds R] [--cap-s S] [--only TEXT]\n"
                 "                  [--libs openblas,numpy,mkl,onednn,eigen]\n"
                 "                  [--openblas PATH] [--openblas-numpy PATH] [--mkl PATH] [--dnnl PATH]\n"
                 "Run with TSVIZ_NUM_THREADS=T (the engine reads it once). An empty PATH skips that library.\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    Args args;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (i + 1 >= argc) return usage();
        const std::string v = argv[++i];
        if (a == "--threads") args.threads = std::atoi(v.c_str());
        else if (a == "--budget-ms") args.budget_ms = std::atof(v.c_str());
        else if (a == "--rounds") args.rounds = std::atoi(v.c_str());
        else if (a == "--cap-s") args.cap_s = std::atof(v.c_str());
        else if (a == "--only") args.only = v;
        else if (a == "--openblas") args.openblas = v;
        else if (a == "--openblas-numpy") args.openblas_numpy = v;
        else if (a == "--mkl") args.mkl = v;
        else if (a == "--dnnl") args.dnnl = v;
        else if (a == "--libs") args.libs = v;
        else return usage();
    }
    if (args.threads < 1 || args.rounds < 1 || args.budget_ms <= 0) return usage();
    if (tsviz::engine_threads() != args.threads) {
        std::fprintf(stderr, "gemm_bench: the engine runs %d threads, --threads asks for %d: set TSVIZ_NUM_THREADS=%d\n",
                     tsviz::engine_threads(), args.threads, args.threads);
        return 2;
    }

    // The engine's kernel on the libraries' terms: B given im2col'ed, read as a (K x N) tensor
    // with one tap (kernel 1): what is left of the engine's time without its gather.
    const tsviz::ops::PackedMatrix* current_a = nullptr;  // the shape's A, packed
    std::vector<Candidate> libs;
    libs.push_back({"engine, B given", "tap_product over B as (K x N), kernel 1",
                    [&current_a](int64_t m, int64_t n, int64_t k, const float*, const float* b, float beta, float* c) {
                        TapProduct q;
                        q.a = current_a;
                        q.channels = k;
                        q.ldd = n;
                        q.accumulate = beta != 0.f;
                        const Segment whole{b, n, n, 0, c};
                        (void)m;
                        tsviz::ops::tap_product(q, &whole, 1);
                    }});
    // Only the libraries asked for are loaded (OpenBLAS starts its threads when loaded).
    if (args.wants("openblas")) add_openblas<int>(libs, "OpenBLAS", args.openblas, "", "", args.threads);
    if (args.wants("numpy"))
        add_openblas<int64_t>(libs, "OpenBLAS (numpy)", args.openblas_numpy, "scipy_", "64_", args.threads);
    if (args.wants("mkl")) add_mkl(libs, args.mkl, args.threads);
    if (args.wants("onednn")) add_dnnl(libs, args.dnnl, args.threads);
#ifdef TSVIZ_BENCH_EIGEN
    if (args.wants("eigen")) {
        bench::eigen_threads(args.threads);
        libs.push_back({"Eigen", bench::eigen_version(), bench::eigen_gemm});
    }
#else
    if (args.wants("eigen")) std::printf("skipped Eigen: not found when the benchmark was built (Debian: libeigen3-dev)\n");
#endif
    std::printf("\n%d thread%s. engine: tsviz::ops::tap_product, micro-kernel %lld rows\n", args.threads,
                args.threads == 1 ? "" : "s", static_cast<long long>(tsviz::ops::kernel_rows()));
    for (const Candidate& c : libs) std::printf("%s: %s\n", c.name.c_str(), c.version.c_str());

    // Table: GFLOP/s of the engine, then of each other candidate with candidate/engine in brackets.
    std::string header = "\n| shape | M x K x N | engine µs | engine |", rule = "|---|---|---:|---:|";
    for (const Candidate& c : libs) {
        header += " " + c.name + " |";
        rule += "---:|";
    }
    std::printf("%s\n%s\n", header.c_str(), rule.c_str());
    std::fflush(stdout);

    // Geometric means of candidate / engine: over every shape, over the large ones (M >= 64 and
    // K >= 256: the FCN's conv2 and conv3, where the roof target applies) and over the
    // rest (small depth, few rows or narrow segments).
    const size_t nl = libs.size();
    std::vector<double> log_all(nl, 0.0), log_large(nl, 0.0), log_small(nl, 0.0);
    std::vector<int> n_all(nl, 0), n_large(nl, 0), n_small(nl, 0);
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> uni(-1.f, 1.f);
    int wrong = 0;
    for (const Shape& s : shapes()) {
        if (!args.only.empty() && s.name.find(args.only) == std::string::npos) continue;
        const int64_t m = s.m, k = s.k(), n = s.n();
        std::vector<float> a(static_cast<size_t>(m * k)), src(static_cast<size_t>(s.segments * s.channels * s.src_len));
        for (float& v : a) v = uni(rng);
        for (float& v : src) v = uni(rng);
        const tsviz::ops::PackedMatrix packed = tsviz::ops::pack_matrix(m, k, a.data(), k, 1);
        current_a = &packed;
        std::vector<float> b;
        im2col(s, src, b);
        // The engine writes each segment's block where the engine's own tensors keep it: its
        // M rows of `cols` columns together (a sample, a cotangent row, a tangent).
        std::vector<float> c_engine(static_cast<size_t>(m * n)), c_lib(static_cast<size_t>(m * n));
        std::vector<Segment> segs(static_cast<size_t>(s.segments));
        for (int64_t g = 0; g < s.segments; ++g)
            segs[g] = {src.data() + g * s.channels * s.src_len, s.src_len, s.cols, s.delta, c_engine.data() + g * m * s.cols};
        TapProduct p;
        p.a = &packed;
        p.channels = s.channels;
        p.kernel = s.kernel;
        p.transposed = s.transposed;
        p.ldd = s.cols;
        p.accumulate = s.accumulate;
        const float beta = s.accumulate ? 1.f : 0.f;

        // Check every library against the engine (from zero: the accumulating ones add to C).
        std::fill(c_engine.begin(), c_engine.end(), 0.f);
        tsviz::ops::tap_product(p, segs.data(), s.segments);
        double scale = 0;
        for (float v : c_engine) scale = std::max(scale, std::fabs(static_cast<double>(v)));
        std::vector<bool> ok(libs.size(), true);
        for (size_t l = 0; l < libs.size(); ++l) {
            std::fill(c_lib.begin(), c_lib.end(), 0.f);
            libs[l].gemm(m, n, k, a.data(), b.data(), beta, c_lib.data());
            double err = 0;
            for (int64_t g = 0; g < s.segments; ++g)
                for (int64_t r = 0; r < m; ++r)
                    for (int64_t o = 0; o < s.cols; ++o)
                        err = std::max(err, std::fabs(static_cast<double>(c_lib[r * n + g * s.cols + o]) -
                                                      c_engine[(g * m + r) * s.cols + o]));
            if (err > 1e-4 * std::max(scale, 1.0)) {
                std::printf("WRONG: %s on %s differs from the engine by %g (largest value %g)\n", libs[l].name.c_str(),
                            s.name.c_str(), err, scale);
                ok[l] = false;
                ++wrong;
            }
        }

        // Candidate 0 is the engine.
        std::vector<std::function<void()>> calls;
        calls.push_back([&] { tsviz::ops::tap_product(p, segs.data(), s.segments); });
        for (const Candidate& c : libs)
            calls.push_back([&, gemm = c.gemm] { gemm(m, n, k, a.data(), b.data(), beta, c_lib.data()); });
        const size_t nc = calls.size();
        std::vector<int64_t> reps(nc, 0);
        std::vector<std::vector<double>> per_call(nc);
        std::vector<double> spent(nc, 0.0);
        for (int r = 0; r < args.rounds; ++r)
            for (size_t q = 0; q < nc; ++q) {
                const size_t ci = (q + static_cast<size_t>(r)) % nc;
                if (spent[ci] > args.cap_s) continue;  // a very slow candidate: fewer rounds
                const double t0 = now_s();
                calls[ci]();  // warm-up: caches, and other candidates' threads back to sleep
                const double warm = now_s() - t0;
                if (reps[ci] == 0)
                    reps[ci] = std::clamp<int64_t>(static_cast<int64_t>(args.budget_ms * 1e-3 / std::max(warm, 1e-7)), 1, 100000);
                const double t1 = now_s();
                for (int64_t i = 0; i < reps[ci]; ++i) calls[ci]();
                per_call[ci].push_back((now_s() - t1) / static_cast<double>(reps[ci]));
                spent[ci] += now_s() - t0;
            }
        std::vector<double> med(nc);
        for (size_t ci = 0; ci < nc; ++ci) {
            std::vector<double>& v = per_call[ci];
            std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
            med[ci] = v[v.size() / 2];
        }
        char dims[64];
        std::snprintf(dims, sizeof dims, "%lld x %lld x %lld", static_cast<long long>(m), static_cast<long long>(k),
                      static_cast<long long>(n));
        const double engine_gf = s.flop() / med[0] * 1e-9;
        std::string row = "| " + s.name + " | " + dims + " | " + micros(med[0]) + " | " +
                          cell(engine_gf, 1, true) + " |";
        for (size_t l = 0; l < libs.size(); ++l) {
            const double gf = s.flop() / med[l + 1] * 1e-9;
            std::string text = ok[l] ? cell(gf, gf / engine_gf, false) : std::string("wrong");
            if (ok[l]) {
                const double lr = std::log(gf / engine_gf);
                const bool large = s.m >= 64 && s.k() >= 256;
                log_all[l] += lr;
                ++n_all[l];
                (large ? log_large : log_small)[l] += lr;
                ++(large ? n_large : n_small)[l];
            }
            if (static_cast<int>(per_call[l + 1].size()) < args.rounds)
                text += " [" + std::to_string(per_call[l + 1].size()) + " rounds]";
            row += " " + text + " |";
        }
        std::printf("%s\n", row.c_str());
        std::fflush(stdout);
    }
    auto means = [&](const std::string& label, const std::vector<double>& logs, const std::vector<int>& counts) {
        std::string line = "| geometric mean of candidate / engine, " + label + " | | | |";
        for (size_t l = 0; l < nl; ++l) {
            char buf[32] = " - |";  // no shape of that kind was run
            if (counts[l]) std::snprintf(buf, sizeof buf, " %.2f |", std::exp(logs[l] / counts[l]));
            line += buf;
        }
        std::printf("%s\n", line.c_str());
    };
    means("every shape", log_all, n_all);
    means("large (M >= 64, K >= 256: FCN conv2, conv3)", log_large, n_large);
    means("the rest (small K or M, narrow segments)", log_small, n_small);
    if (wrong) {
        std::printf("\n%d product(s) differed from the engine's (see WRONG above)\n", wrong);
        return 1;
    }
    return 0;
}
