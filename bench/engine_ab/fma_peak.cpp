// The roof the engine's GFLOP/s are read against: the fused multiply-adds one core retires per
// second, with twelve independent chains in registers (more than a multiply-add's latency
// times its issue rate on the processors measured, so the loop is bound by issue, not latency),
// on each vector width this processor has. No memory is touched: a real kernel reaches a
// fraction of this. The bench's rates count dense FLOPs (bench/README.md), so a kernel that
// leaves out a ReLU's zero rows can read above it.
//
//   c++ -O2 -std=c++17 bench/engine_ab/fma_peak.cpp -o fma_peak && ./fma_peak
//
// Run it on a quiet machine; it takes about a second per width, best of three.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace {

constexpr long kSteps = 100'000'000;

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Twelve chains a := a * one + tiny, kSteps steps, best of three rounds; V, FMA and ADD the
// width's vector type and operations. The chains' sum is printed when it is an unlikely value,
// so that none of them is left out.
#define TSVIZ_FMA_PEAK(V, SET1, FMA, ADD, STORE)                                                   \
    double best = 0;                                                                               \
    for (int round = 0; round < 3; ++round) {                                                      \
        const V one = SET1(1.0000001f), tiny = SET1(1e-7f);                                        \
        V a0 = SET1(0.f), a1 = SET1(1.f), a2 = SET1(2.f), a3 = SET1(3.f), a4 = SET1(4.f),          \
          a5 = SET1(5.f), a6 = SET1(6.f), a7 = SET1(7.f), a8 = SET1(8.f), a9 = SET1(9.f),          \
          a10 = SET1(10.f), a11 = SET1(11.f); /* distinct, or the compiler merges the chains */    \
        const auto t0 = std::chrono::steady_clock::now();                                          \
        for (long k = 0; k < kSteps; ++k) {                                                        \
            a0 = FMA(a0, one, tiny), a1 = FMA(a1, one, tiny), a2 = FMA(a2, one, tiny);             \
            a3 = FMA(a3, one, tiny), a4 = FMA(a4, one, tiny), a5 = FMA(a5, one, tiny);             \
            a6 = FMA(a6, one, tiny), a7 = FMA(a7, one, tiny), a8 = FMA(a8, one, tiny);             \
            a9 = FMA(a9, one, tiny), a10 = FMA(a10, one, tiny), a11 = FMA(a11, one, tiny);         \
        }                                                                                          \
        const double s = seconds_since(t0);                                                        \
        const V all = ADD(ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7))),       \
                          ADD(ADD(a8, a9), ADD(a10, a11)));                                        \
        alignas(64) float v[sizeof(V) / sizeof(float)];                                            \
        STORE(v, all);                                                                             \
        if (v[0] == 12345.f) std::printf(" ");                                                     \
        best = std::max(best, 12.0 * kSteps * (sizeof(V) / sizeof(float)) * 2 / s / 1e9);          \
    }                                                                                              \
    return best

__attribute__((target("avx512f"))) double avx512() {
    TSVIZ_FMA_PEAK(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_store_ps);
}

__attribute__((target("avx2,fma"))) double avx2() {
    TSVIZ_FMA_PEAK(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_store_ps);
}

}  // namespace

int main() {
    if (__builtin_cpu_supports("avx512f")) std::printf("AVX-512: %.1f GFLOP/s on one core\n", avx512());
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        std::printf("AVX2 + FMA: %.1f GFLOP/s on one core\n", avx2());
    return 0;
}
