// Function multiversioning for the elementwise and pooling loops. The library is built for
// the baseline (SSE2 on x86-64) so that it runs anywhere; a function marked TSVIZ_SIMD is
// also compiled for AVX2 and AVX-512, and the loader picks the best copy for the processor
// once (GNU ifunc). The matrix products choose their kernels at run time themselves
// (ops/gemm.cpp).
#pragma once

#if defined(__x86_64__) && defined(__ELF__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(TSVIZ_NO_MULTIVERSION)
#define TSVIZ_SIMD __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TSVIZ_SIMD
#endif

// For the loop templates that TSVIZ_SIMD functions call: a copy that is not inlined would be
// compiled for the baseline only, and its loop would run unvectorised (or SSE2) in every clone.
#if defined(__GNUC__) || defined(__clang__)
#define TSVIZ_INLINE inline __attribute__((always_inline))
#else
#define TSVIZ_INLINE inline
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include <algorithm>
#include <cstdint>

namespace tsviz::ops {
// The AVX-512 lane mask of the lanes of a vector starting at position p0 that lie in [0, len):
// its masked loads read 0 outside a row and never fault, its masked stores stay inside.
// Integer arithmetic only, so that a function of any target may call it.
inline __mmask16 lanes_inside(int64_t p0, int64_t len) {
    const int64_t lo = std::clamp<int64_t>(-p0, 0, 16), hi = std::clamp<int64_t>(len - p0, 0, 16);
    return lo >= hi ? 0 : static_cast<__mmask16>(((1u << hi) - 1u) & ~((1u << lo) - 1u));
}

// The same lanes for AVX2's eight, as the all-ones lanes that maskload takes (it reads 0 in
// the others and never faults there); stores of part of a vector go through store_span8.
__attribute__((target("avx2"), always_inline)) inline __m256i lanes_inside8(int64_t p0, int64_t len) {
    const int64_t lo = std::clamp<int64_t>(-p0, 0, 8), hi = std::clamp<int64_t>(len - p0, 0, 8);
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_and_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(hi)), iota),
                            _mm256_cmpgt_epi32(iota, _mm256_set1_epi32(static_cast<int>(lo) - 1)));
}

// Lanes [lo, hi) of v to the same lanes at p, by plain stores: the whole vector, or the span
// moved down to lane 0 (one permute) and stored in runs of 4, 2 and 1 lanes from registers.
// Not maskstore: AMD's Zen 2 and Zen 3 run a masked store as microcode, tens of cycles each
// (the narrow product's masked stores were 41% of a full analysis of the channels-last net on
// a Zen 3); nor a copy through the stack, whose narrower reloads of a wide store stalled (a
// quarter of that analysis). Every AVX2 store of a part of a vector goes through these.
__attribute__((target("avx2"), always_inline)) inline void store_span8(float* p, __m256 v, int64_t lo, int64_t hi) {
    if (lo == 0 && hi == 8) {
        _mm256_storeu_ps(p, v);
        return;
    }
    if (lo >= hi) return;
    if (lo > 0)
        v = _mm256_permutevar8x32_ps(v, _mm256_add_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                                          _mm256_set1_epi32(static_cast<int>(lo))));
    float* q = p + lo;
    const int64_t n = hi - lo;
    __m128 x = _mm256_castps256_ps128(v);
    if (n & 4) {
        _mm_storeu_ps(q, x);
        x = _mm256_extractf128_ps(v, 1);
        q += 4;
    }
    if (n & 2) {
        _mm_storel_pi(reinterpret_cast<__m64*>(q), x);
        x = _mm_movehl_ps(x, x);
        q += 2;
    }
    if (n & 1) _mm_store_ss(q, x);
}
__attribute__((target("avx2"), always_inline)) inline void store_span8(int32_t* p, __m256i v, int64_t lo, int64_t hi) {
    store_span8(reinterpret_cast<float*>(p), _mm256_castsi256_ps(v), lo, hi);
}
// The lanes of lanes_inside8(p0, len): those of the vector at position p0 inside [0, len).
__attribute__((target("avx2"), always_inline)) inline void store_inside8(float* p, __m256 v, int64_t p0, int64_t len) {
    store_span8(p, v, std::clamp<int64_t>(-p0, 0, 8), std::clamp<int64_t>(len - p0, 0, 8));
}
// The lanes whose bits are set in `bits`, one run of set bits (as lanes_inside makes them).
__attribute__((target("avx2"), always_inline)) inline void store_bits8(float* p, __m256 v, unsigned bits) {
    bits &= 0xFFu;
    if (bits) store_span8(p, v, __builtin_ctz(bits), 32 - __builtin_clz(bits));
}

// Lane indices for _mm512_permutex2var_ps(a, idx, b): the even and odd elements of the 32 in
// a and b (de-interleaving), and the low and high halves of a and b interleaved.
alignas(64) inline constexpr int32_t kEvenLanes[16] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
alignas(64) inline constexpr int32_t kOddLanes[16] = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};
alignas(64) inline constexpr int32_t kInterleaveLow[16] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23};
alignas(64) inline constexpr int32_t kInterleaveHigh[16] = {8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};

// 16 pairs (even[i], odd[i]) interleaved into the 32 floats at p: lanes `lo` of p[0, 16) and
// `hi` of p[16, 32) are stored, or added to what p holds unless `set`. low and high are
// kInterleaveLow and kInterleaveHigh, loaded once by the caller.
__attribute__((target("avx512f"), always_inline)) inline void store_interleaved(float* p, __m512 even, __m512 odd,
                                                                                __mmask16 lo, __mmask16 hi, bool set,
                                                                                __m512i low, __m512i high) {
    __m512 d0 = _mm512_permutex2var_ps(even, low, odd), d1 = _mm512_permutex2var_ps(even, high, odd);
    if (!set) {
        d0 = _mm512_add_ps(d0, _mm512_maskz_loadu_ps(lo, p));
        d1 = _mm512_add_ps(d1, _mm512_maskz_loadu_ps(hi, p + 16));
    }
    _mm512_mask_storeu_ps(p, lo, d0);
    _mm512_mask_storeu_ps(p + 16, hi, d1);
}

// The lanes of an AVX2 vector whose bits are set in `bits`, as maskload and and take them
// (all ones or zero).
__attribute__((target("avx2"), always_inline)) inline __m256i bit_lanes8(unsigned bits) {
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(static_cast<int>(bits)), bit), bit);
}

// store_interleaved on AVX2: 8 pairs (even[i], odd[i]) interleaved into the 16 floats at p by
// an unpack and a swap of 128-bit halves; lanes `lo` of p[0, 8) and `hi` of p[8, 16) (bits,
// one run each) are stored, or added to what p holds unless `set`.
__attribute__((target("avx2"), always_inline)) inline void store_interleaved8(float* p, __m256 even, __m256 odd,
                                                                            unsigned lo, unsigned hi, bool set) {
    const __m256 a = _mm256_unpacklo_ps(even, odd), b = _mm256_unpackhi_ps(even, odd);
    __m256 d0 = _mm256_permute2f128_ps(a, b, 0x20), d1 = _mm256_permute2f128_ps(a, b, 0x31);
    if (!set) {
        d0 = _mm256_add_ps(d0, _mm256_maskload_ps(p, bit_lanes8(lo)));
        d1 = _mm256_add_ps(d1, _mm256_maskload_ps(p + 8, bit_lanes8(hi)));
    }
    store_bits8(p, d0, lo);
    store_bits8(p + 8, d1, hi);
}

// An 8 x 8 transpose in registers: unpack, shuffle, swap of 128-bit halves.
__attribute__((target("avx2"), always_inline)) inline void transpose8(__m256 (&x)[8]) {
    __m256 t[8], u[8];
    for (int p = 0; p < 4; ++p) {
        t[2 * p] = _mm256_unpacklo_ps(x[2 * p], x[2 * p + 1]);
        t[2 * p + 1] = _mm256_unpackhi_ps(x[2 * p], x[2 * p + 1]);
    }
    for (int p = 0; p < 2; ++p) {
        u[4 * p] = _mm256_shuffle_ps(t[4 * p], t[4 * p + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * p + 1] = _mm256_shuffle_ps(t[4 * p], t[4 * p + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[4 * p + 2] = _mm256_shuffle_ps(t[4 * p + 1], t[4 * p + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * p + 3] = _mm256_shuffle_ps(t[4 * p + 1], t[4 * p + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int p = 0; p < 4; ++p) {
        x[p] = _mm256_permute2f128_ps(u[p], u[p + 4], 0x20);
        x[p + 4] = _mm256_permute2f128_ps(u[p], u[p + 4], 0x31);
    }
}

// Eight rows' partial sums v[0..7] (each row's in 8 lanes) into one vector, row r's total in
// lane r: one tree of horizontal adds. Each row's lanes are added in the same order whatever
// its place among the eight.
__attribute__((target("avx2"), always_inline)) inline __m256 row_totals8(const __m256* v) {
    const __m256 t0 = _mm256_hadd_ps(v[0], v[1]), t1 = _mm256_hadd_ps(v[2], v[3]);
    const __m256 t2 = _mm256_hadd_ps(v[4], v[5]), t3 = _mm256_hadd_ps(v[6], v[7]);
    const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

// The two 8-lane halves of v added. The zero-masked extracts: the plain one (and the cast to
// the lower half) trip GCC 12's uninitialised-use warning in its own header.
__attribute__((target("avx512f"), always_inline)) inline __m256 halves_added(__m512 v) {
    return _mm256_add_ps(_mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xf, _mm512_castps_pd(v), 0)),
                         _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xf, _mm512_castps_pd(v), 1)));
}
}  // namespace tsviz::ops
#endif
