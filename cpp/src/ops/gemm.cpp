// A register-blocked matrix product: a 6 x 2W block of C stays in twelve vector registers
// (W = 8 floats with AVX2, 16 with AVX-512) while the K loop streams one row of B and
// broadcasts six values of A per step, so every load feeds several multiply-adds. On x86-64
// the kernel is compiled for both and chosen at run time; elsewhere a plain loop runs.
#include "ops/gemm.hpp"

#include <algorithm>
#include <cstring>

namespace tsviz::ops {

namespace {

constexpr int64_t kMr = 6;
constexpr int64_t kKc = 256;  // K block: a 6 x 256 panel of A and a 256-row panel of B stay in cache

// W floats of one vector register; GCC and Clang map them to AVX or AVX-512 registers in the
// functions compiled for those targets.
typedef float v8 __attribute__((vector_size(32)));
typedef float v16 __attribute__((vector_size(64)));

// The 6 x (2 W) block of C in twelve vector accumulators.
template <class V>
inline void block(int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc) {
    constexpr int64_t w = sizeof(V) / sizeof(float);
    // Unaligned loads and stores go through memcpy: the vector type's own alignment is
    // larger than a float's, and attributes do not survive as template arguments.
    V acc[kMr][2] = {};
    for (int64_t p = 0; p < k; ++p) {
        V b0, b1;
        std::memcpy(&b0, b + p * ldb, sizeof(V));
        std::memcpy(&b1, b + p * ldb + w, sizeof(V));
        for (int64_t i = 0; i < kMr; ++i) {
            const float ai = a[i * lda + p];
            acc[i][0] += ai * b0;
            acc[i][1] += ai * b1;
        }
    }
    for (int64_t i = 0; i < kMr; ++i)
        for (int64_t h = 0; h < 2; ++h) {
            V ci;
            std::memcpy(&ci, c + i * ldc + h * w, sizeof(V));
            ci += acc[i][h];
            std::memcpy(c + i * ldc + h * w, &ci, sizeof(V));
        }
}

inline void edge(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                 float* c, int64_t ldc) {
    for (int64_t i = 0; i < m; ++i)
        for (int64_t p = 0; p < k; ++p) {
            const float ai = a[i * lda + p];
            const float* bp = b + p * ldb;
            float* ci = c + i * ldc;
            for (int64_t j = 0; j < n; ++j) ci[j] += ai * bp[j];
        }
}

template <class V>
inline void blocked(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
                    float* c, int64_t ldc) {
    constexpr int64_t nr = 2 * sizeof(V) / sizeof(float);
    for (int64_t p0 = 0; p0 < k; p0 += kKc) {
        const int64_t kc = std::min(kKc, k - p0);
        const float* ap = a + p0;
        const float* bp = b + p0 * ldb;
        // Column panels outside, row blocks inside: one kc x nr panel of B stays in L1 while
        // every row block of A passes over it.
        const int64_t m_full = m - m % kMr;
        int64_t j = 0;
        for (; j + nr <= n; j += nr)
            for (int64_t i = 0; i < m_full; i += kMr)
                block<V>(kc, ap + i * lda, lda, bp + j, ldb, c + i * ldc + j, ldc);
        if (j < n)
            for (int64_t i = 0; i < m_full; i += kMr)
                edge(kMr, n - j, kc, ap + i * lda, lda, bp + j, ldb, c + i * ldc + j, ldc);
        const int64_t i = m_full;
        if (i < m) edge(m - i, n, kc, ap + i * lda, lda, bp, ldb, c + i * ldc, ldc);
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#define TSVIZ_X86_KERNELS 1
// flatten: the templates above are compiled for each target inside these functions.
__attribute__((target("avx512f"), flatten)) void sgemm_avx512(int64_t m, int64_t n, int64_t k, const float* a,
                                                                 int64_t lda, const float* b, int64_t ldb, float* c,
                                                                 int64_t ldc) {
    blocked<v16>(m, n, k, a, lda, b, ldb, c, ldc);
}
__attribute__((target("avx2,fma"), flatten)) void sgemm_avx2(int64_t m, int64_t n, int64_t k, const float* a,
                                                                int64_t lda, const float* b, int64_t ldb, float* c,
                                                                int64_t ldc) {
    blocked<v8>(m, n, k, a, lda, b, ldb, c, ldc);
}
#endif

}  // namespace

void sgemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
           float* c, int64_t ldc) {
#ifdef TSVIZ_X86_KERNELS
    static const int level = __builtin_cpu_supports("avx512f")                                   ? 2
                             : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 1
                                                                                                  : 0;
    if (level == 2) return sgemm_avx512(m, n, k, a, lda, b, ldb, c, ldc);
    if (level == 1) return sgemm_avx2(m, n, k, a, lda, b, ldb, c, ldc);
    // Without AVX2 the wide vectors would be emulated; the plain loop is faster there.
    return edge(m, n, k, a, lda, b, ldb, c, ldc);
#else
    return blocked<v8>(m, n, k, a, lda, b, ldb, c, ldc);
#endif
}

}  // namespace tsviz::ops
