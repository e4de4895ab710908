#include "ops/gemm.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#ifdef __x86_64__
#include <immintrin.h>
#include <limits>
#endif
#include <type_traits>
#include <utility>

#include "ops/fast_math.hpp"
#include "ops/simd.hpp"
#include "parallel.hpp"

#if defined(__x86_64__) && defined(__GNUC__)
#define TSVIZ_X86_KERNELS 1
#endif

namespace tsviz::ops {

namespace {

typedef float v4 __attribute__((vector_size(16)));
typedef float v8 __attribute__((vector_size(32)));
typedef float v16 __attribute__((vector_size(64)));

constexpr int64_t kKc = 256;  // depth of one packed B block: kc x NR floats stay in L1
constexpr int64_t kNc = 512;  // columns of one packed B block

// Where column j of a block comes from and goes to.
struct Column {
    const Segment* seg;
    int64_t o;
};

// Length of the run of columns starting at cols[0] (at most n) that lie in one segment at
// consecutive positions.
inline int64_t run_length(const Column* cols, int64_t n) {
    int64_t len = 1;
    while (len < n && cols[len].seg == cols[0].seg && cols[len].o == cols[0].o + len) ++len;
    return len;
}

// Packs the kc x NR panel of B for columns cols[0 .. n) (n <= NR; the rest zero), run by run:
// with unit stride each row of a run is a stretch of one source row, copied whole where it
// lies inside the source.
template <int64_t NR>
inline void pack_panel(const TapProduct& g, const Column* cols, int64_t n, int64_t p0, int64_t kc, float* dst) {
    // A partial panel is zeroed whole, once (a fill per row compiles to a rep stos each).
    if (n < NR) std::memset(dst, 0, static_cast<size_t>(kc * NR) * sizeof(float));
    const int64_t k_n = g.kernel;
    for (int64_t j = 0; j < n;) {
        const int64_t len = run_length(cols + j, n - j);
        const Segment& s = *cols[j].seg;
        const int64_t o0 = cols[j].o;
        int64_t c = p0 / k_n, k = p0 % k_n;
        for (int64_t p = 0; p < kc; ++p) {
            float* row = dst + p * NR + j;
            const float* src = s.src + c * s.src_len;
            if (g.stride == 1) {
                const int64_t i0 = o0 + (g.transposed ? -s.delta - k * g.dilation : s.delta + k * g.dilation);
                if (len == NR && i0 >= 0 && i0 + NR <= s.src_len) {
                    // A whole panel row: a fixed-size copy, a few vector moves (a copy of
                    // variable length compiles to `rep movs`, whose start-up costs more).
                    std::memcpy(row, src + i0, NR * sizeof(float));
                } else if (i0 >= 0 && i0 + len <= s.src_len) {
                    for (int64_t t = 0; t < len; ++t) row[t] = src[i0 + t];
                } else {
                    for (int64_t t = 0; t < len; ++t) {
                        const int64_t i = i0 + t;
                        row[t] = i >= 0 && i < s.src_len ? src[i] : 0.f;
                    }
                }
            } else if (!g.transposed) {
                // Column t reads i0 + t * stride; the columns that land inside the source are
                // [ta, tb), found once instead of tested per element.
                const int64_t st = g.stride, i0 = o0 * st + s.delta + k * g.dilation;
                const int64_t ta = std::clamp<int64_t>(i0 >= 0 ? 0 : (-i0 + st - 1) / st, 0, len);
                const int64_t tb = std::clamp<int64_t>(s.src_len - i0 <= 0 ? 0 : (s.src_len - i0 + st - 1) / st, ta, len);
                for (int64_t t = 0; t < ta; ++t) row[t] = 0.f;
                for (int64_t t = ta; t < tb; ++t) row[t] = src[i0 + t * st];
                for (int64_t t = tb; t < len; ++t) row[t] = 0.f;
            } else {
                // Transposed: column t reads (q0 + t) / stride where q0 + t is a whole multiple
                // of the stride; the others are zero.
                const int64_t st = g.stride, q0 = o0 - s.delta - k * g.dilation;
                for (int64_t t = 0; t < len; ++t) row[t] = 0.f;
                int64_t t = q0 >= 0 ? (st - q0 % st) % st : -q0;
                for (; t < len; t += st) {
                    const int64_t i = (q0 + t) / st;
                    if (i >= s.src_len) break;
                    row[t] = src[i];
                }
            }
            if (++k == k_n) {
                k = 0;
                ++c;
            }
        }
        j += len;
    }
}

// acc (MR x 2 vectors) = A panel (kc x MR) * B panel (kc x 2W). Indexed: a B panel whose zero
// rows were left out (compact_panel), its row p meeting A's column rows[p]. Direct (indexed
// too): B's row p is not packed but lies at b + offs[p] (direct_rows32_avx512 lists them).
template <class V, int64_t MR, bool Indexed = false, bool Direct = false>
inline void micro_kernel(int64_t kc, const float* a, const float* b, V (&acc)[MR][2], const int32_t* rows = nullptr,
                         const int64_t* offs = nullptr) {
    static_assert(Indexed || !Direct, "a direct panel's rows are listed");
    constexpr int64_t w = sizeof(V) / sizeof(float);
    for (int64_t i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = V{};
    for (int64_t p = 0; p < kc; ++p) {
        V b0, b1;
        const float* bp = Direct ? b + offs[p] : b + p * 2 * w;
        std::memcpy(&b0, bp, sizeof(V));
        std::memcpy(&b1, bp + w, sizeof(V));
        const float* ap = a + (Indexed ? rows[p] : p) * MR;
        for (int64_t i = 0; i < MR; ++i) {
            const float ai = ap[i];
            acc[i][0] += ai * b0;
            acc[i][1] += ai * b1;
        }
    }
}

#ifdef TSVIZ_X86_KERNELS
// The rows of a kc x 32 panel that are not all zero, into rows; returns how many. Two vectors
// a row and no branch (the generic loop's reduction of 32 lanes was as dear as the few
// multiply-adds a short product saves per row).
__attribute__((target("avx512f"), noinline)) int64_t nonzero_rows32_avx512(const float* panel, int64_t kc,
                                                                           int32_t* rows) {
    const __m512i magnitude = _mm512_set1_epi32(0x7fffffff);  // -0 is zero too
    int64_t kept = 0;
    for (int64_t p = 0; p < kc; ++p) {
        const __m512i v = _mm512_or_si512(_mm512_loadu_si512(panel + p * 32), _mm512_loadu_si512(panel + p * 32 + 16));
        rows[kept] = static_cast<int32_t>(p);
        kept += _mm512_test_epi32_mask(v, magnitude) != 0;
    }
    return kept;
}
#endif

#ifdef TSVIZ_X86_KERNELS
// A whole 32-column panel of stride-1 taps (a forward convolution, or the transposed product of
// its input gradient) whose columns are consecutive positions of one segment: row p reads
// src[c, i0 + t] for t < 32, zero outside [0, src_len), as two loads, masked where the taps
// reach past the source's ends (masked-off lanes never fault). The generic loop took an
// element at a time there, and those edge rows (two of a sample's three panels, at every tap
// but the middle one) cost more than all whole rows together on the residual net.
// With `rows` set the zero rows are found on the way (as nonzero_rows32_avx512 finds them):
// only the others are written, packed to the front, their indices in rows; returns how many.
// Without, every row is written in place; returns kc. (run_columns reads such panels in place
// instead, direct_rows32_avx512 below, unless their taps reach over 64 positions.)
__attribute__((target("avx512f"), noinline)) int64_t pack_run32_avx512(const TapProduct& g,
                                                                                  const Segment& s, int64_t o0,
                                                                                  int64_t p0, int64_t kc,
                                                                                  float* dst, int32_t* rows) {
    const int64_t k_n = g.kernel, src_len = s.src_len, tap = g.transposed ? -g.dilation : g.dilation;
    const int64_t shift = o0 + (g.transposed ? -s.delta : s.delta);
    const __m512i magnitude = _mm512_set1_epi32(0x7fffffff);  // -0 is zero too
    int64_t c = p0 / k_n, k = p0 % k_n, kept = 0;
    for (int64_t p = 0; p < kc; ++p) {
        const int64_t i0 = shift + k * tap;
        const float* row_src = s.src + c * src_len;
        __m512 v0, v1;
        if (i0 >= 0 && i0 + 32 <= src_len) {
            v0 = _mm512_loadu_ps(row_src + i0);
            v1 = _mm512_loadu_ps(row_src + i0 + 16);
        } else {
            // Lanes t with 0 <= i0 + t < src_len.
            const int64_t lo = std::clamp<int64_t>(-i0, 0, 32), hi = std::clamp<int64_t>(src_len - i0, 0, 32);
            const uint64_t m = hi > lo ? ((uint64_t{1} << hi) - 1) & ~((uint64_t{1} << lo) - 1) : 0;
            // The loads start at the row's element i0, in or before the row: through an integer,
            // since a pointer before the array's start is not one C++ may form.
            const float* at = reinterpret_cast<const float*>(reinterpret_cast<uintptr_t>(row_src) +
                                                            static_cast<uintptr_t>(i0 * int64_t{sizeof(float)}));
            v0 = _mm512_maskz_loadu_ps(static_cast<__mmask16>(m), at);
            v1 = _mm512_maskz_loadu_ps(static_cast<__mmask16>(m >> 16), at + 16);
        }
        float* row = dst + (rows ? kept : p) * 32;
        _mm512_storeu_ps(row, v0);
        _mm512_storeu_ps(row + 16, v1);
        if (rows) {
            rows[kept] = static_cast<int32_t>(p);
            const __m512i any = _mm512_or_si512(_mm512_castps_si512(v0), _mm512_castps_si512(v1));
            kept += _mm512_test_epi32_mask(any, magnitude) != 0;
        }
        if (++k == k_n) {
            k = 0;
            ++c;
        }
    }
    return rows ? kept : kc;
}
// The rows of a 32-column panel of stride-1 taps, read where they lie (no packed copy): row p
// (channel c, tap k of the depth block from p0) is the 32 floats at base + (c - c0) * row_stride
// + start + k * tap. Its offset and index go to offs and rows, leaving out (with `scan`) the
// rows that are all zero; returns how many were kept.
__attribute__((target("avx512f"), noinline)) int64_t direct_rows32_avx512(const TapProduct& g, const float* base,
                                                                          int64_t c0, int64_t row_stride,
                                                                          int64_t start, int64_t p0, int64_t kc,
                                                                          int64_t* offs, int32_t* rows, bool scan) {
    const int64_t k_n = g.kernel, tap = g.transposed ? -g.dilation : g.dilation;
    const __m512i magnitude = _mm512_set1_epi32(0x7fffffff);  // -0 is zero too
    int64_t c = p0 / k_n, k = p0 % k_n, kept = 0;
    for (int64_t p = 0; p < kc; ++p) {
        const int64_t off = (c - c0) * row_stride + start + k * tap;
        rows[kept] = static_cast<int32_t>(p);
        offs[kept] = off;
        if (scan) {
            const __m512i any = _mm512_or_si512(_mm512_loadu_si512(base + off), _mm512_loadu_si512(base + off + 16));
            kept += _mm512_test_epi32_mask(any, magnitude) != 0;
        } else {
            ++kept;
        }
        if (++k == k_n) {
            k = 0;
            ++c;
        }
    }
    return kept;
}

// A panel whose taps reach past its segment's source: source positions [lo, lo + stride) of the
// depth block's channels, zero outside the source, copied into rows of `stride` floats (at most
// 64), each channel's non-zero positions noted as bits on the way; then the rows as
// direct_rows32_avx512 lists them (row (c, k) at (c - c0) * stride + start + k * tap), the zero
// test read from the bits: reading back what was just stored, at another alignment, waited on
// the stores.
__attribute__((target("avx512f"), noinline)) int64_t edge_rows32_avx512(const TapProduct& g, const Segment& s,
                                                                        int64_t lo, int64_t stride, int64_t start,
                                                                        int64_t p0, int64_t kc, float* mini,
                                                                        int64_t* offs, int32_t* rows, bool scan) {
    const int64_t k_n = g.kernel, tap = g.transposed ? -g.dilation : g.dilation;
    const int64_t c0 = p0 / k_n, c1 = (p0 + kc - 1) / k_n;
    const __m512i magnitude = _mm512_set1_epi32(0x7fffffff);  // -0 is zero too
    uint64_t bits[kKc + 2];
    // The lanes inside the source are the same for every channel: one 64-bit mask, made once.
    const int64_t in_lo = std::clamp<int64_t>(-lo, 0, 64), in_hi = std::clamp<int64_t>(s.src_len - lo, 0, 64);
    const uint64_t inside = in_lo >= in_hi ? 0
                            : ((in_hi == 64 ? ~uint64_t{0} : (uint64_t{1} << in_hi) - 1) & ~((uint64_t{1} << in_lo) - 1));
    const auto copy = [&](auto steps) __attribute__((target("avx512f"))) {
        constexpr int64_t n_steps = decltype(steps)::value;
        float* dst = mini;
        for (int64_t c = c0; c <= c1; ++c, dst += stride) {
            // Through an integer: the first lanes may lie before the row, a pointer C++ may not form.
            const uintptr_t at = reinterpret_cast<uintptr_t>(s.src + c * s.src_len) +
                                 static_cast<uintptr_t>(lo * int64_t{sizeof(float)});
            uint64_t nz = 0;
            for (int64_t v = 0; v < n_steps; ++v) {
                const __m512 x = _mm512_maskz_loadu_ps(static_cast<__mmask16>(inside >> (16 * v)),
                                                       reinterpret_cast<const float*>(at + 64 * v));
                _mm512_storeu_ps(dst + 16 * v, x);
                nz |= static_cast<uint64_t>(_mm512_test_epi32_mask(_mm512_castps_si512(x), magnitude)) << (16 * v);
            }
            bits[c - c0] = nz;
        }
    };
    switch (stride / 16) {  // 32 columns and the taps' reach, at most 64
        case 2: copy(std::integral_constant<int64_t, 2>{}); break;
        case 3: copy(std::integral_constant<int64_t, 3>{}); break;
        default: copy(std::integral_constant<int64_t, 4>{}); break;
    }
    int64_t c = c0, k = p0 % k_n, kept = 0;
    for (int64_t p = 0; p < kc; ++p) {
        const int64_t at = start + k * tap;
        rows[kept] = static_cast<int32_t>(p);
        offs[kept] = (c - c0) * stride + at;
        kept += !scan || ((bits[c - c0] >> at) & 0xFFFFFFFFu) != 0;
        if (++k == k_n) {
            k = 0;
            ++c;
        }
    }
    return kept;
}

// The same for AVX2's 16-column panels (maskload: masked-off lanes read 0 and never fault).
// Two functions rather than one template over padded_source's Steps16/Steps8: that version
// (a compare per vector for the zero test, the masks through bits) packed the residual net's
// panels 4-5% slower.
__attribute__((target("avx2"), noinline)) int64_t pack_run16_avx2(const TapProduct& g, const Segment& s, int64_t o0,
                                                                   int64_t p0, int64_t kc, float* dst, int32_t* rows) {
    const int64_t k_n = g.kernel, src_len = s.src_len, tap = g.transposed ? -g.dilation : g.dilation;
    const int64_t shift = o0 + (g.transposed ? -s.delta : s.delta);
    const __m256i magnitude = _mm256_set1_epi32(0x7fffffff);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), eight = _mm256_set1_epi32(8);
    int64_t c = p0 / k_n, k = p0 % k_n, kept = 0;
    for (int64_t p = 0; p < kc; ++p) {
        const int64_t i0 = shift + k * tap;
        const float* row_src = s.src + c * src_len;
        __m256 v0, v1;
        if (i0 >= 0 && i0 + 16 <= src_len) {
            v0 = _mm256_loadu_ps(row_src + i0);
            v1 = _mm256_loadu_ps(row_src + i0 + 8);
        } else {
            // Lanes t with lo <= t < hi, lo <= hi in [0, 16].
            const int64_t lo = std::clamp<int64_t>(-i0, 0, 16), hi = std::clamp<int64_t>(src_len - i0, lo, 16);
            const __m256i lo_v = _mm256_set1_epi32(static_cast<int>(lo)), hi_v = _mm256_set1_epi32(static_cast<int>(hi));
            const __m256i lane1 = _mm256_add_epi32(lane, eight);
            const __m256i m0 = _mm256_andnot_si256(_mm256_cmpgt_epi32(lo_v, lane), _mm256_cmpgt_epi32(hi_v, lane));
            const __m256i m1 = _mm256_andnot_si256(_mm256_cmpgt_epi32(lo_v, lane1), _mm256_cmpgt_epi32(hi_v, lane1));
            const float* at = reinterpret_cast<const float*>(reinterpret_cast<uintptr_t>(row_src) +
                                                            static_cast<uintptr_t>(i0 * int64_t{sizeof(float)}));
            v0 = _mm256_maskload_ps(at, m0);
            v1 = _mm256_maskload_ps(at + 8, m1);
        }
        float* row = dst + (rows ? kept : p) * 16;
        _mm256_storeu_ps(row, v0);
        _mm256_storeu_ps(row + 8, v1);
        if (rows) {
            rows[kept] = static_cast<int32_t>(p);
            const __m256i any = _mm256_or_si256(_mm256_castps_si256(v0), _mm256_castps_si256(v1));
            kept += _mm256_testz_si256(any, magnitude) == 0;
        }
        if (++k == k_n) {
            k = 0;
            ++c;
        }
    }
    return rows ? kept : kc;
}
#endif

// Zero rows of B (the channels of a ReLU that are off across a panel's columns) add nothing.
// When at least an eighth of a packed kc x NR panel's rows are zero (NaN counts as not zero),
// moves the others to its front, in order, with their indices into rows, and returns how many
// there are; otherwise returns kc and leaves the panel as it is (reading A through the indices
// costs more than the few products it saves).
template <int64_t NR>
inline int64_t compact_panel(float* panel, int64_t kc, int32_t* rows) {
    int64_t kept = 0;
#ifdef TSVIZ_X86_KERNELS
    if constexpr (NR == 32) {  // the AVX-512 kernels' panels
        kept = nonzero_rows32_avx512(panel, kc, rows);
    } else
#endif
    {
        for (int64_t p = 0; p < kc; ++p) {
            const float* row = panel + p * NR;
            uint32_t bits = 0;
            for (int64_t t = 0; t < NR; ++t) {
                uint32_t u;
                std::memcpy(&u, row + t, sizeof u);
                bits |= u & 0x7fffffffu;  // -0 is zero too
            }
            if (bits != 0) rows[kept++] = static_cast<int32_t>(p);
        }
    }
    if (kept * 8 > kc * 7) return kc;
    for (int64_t q = 0; q < kept; ++q)
        if (rows[q] != q) std::memcpy(panel + q * NR, panel + rows[q] * NR, NR * sizeof(float));
    return kept;
}

// Undoes the left-out rows of a panel packed without its zero rows (pack_run32_avx512,
// pack_run16_avx2) when too few were zero to pay for reading A through the indices (as
// compact_panel decides): each kept row back at its index, the others zero.
template <int64_t NR>
inline void expand_panel(float* panel, int64_t kc, int64_t kept, const int32_t* rows) {
    int64_t q = kept - 1;
    for (int64_t p = kc - 1; p >= 0; --p) {
        // Row q's place is rows[q] >= q: going down, no row is overwritten before it moves.
        if (q >= 0 && rows[q] == p) {
            if (q != p) std::memcpy(panel + p * NR, panel + q * NR, NR * sizeof(float));
            --q;
        } else {
            std::memset(panel + p * NR, 0, NR * sizeof(float));
        }
    }
}

// Writes the MR x NR block: rows [row0, row0 + m), columns cols[0 .. n).
template <class V, int64_t MR>
inline void store(const TapProduct& g, bool first, V (&acc)[MR][2], int64_t row0, int64_t m, const Column* cols,
                  int64_t n) {
    constexpr int64_t w = sizeof(V) / sizeof(float);
    constexpr int64_t nr = 2 * w;
    const bool overwrite = first && !g.accumulate;
    const Segment* s = cols[0].seg;
    if (n == nr && cols[nr - 1].seg == s && cols[nr - 1].o == cols[0].o + nr - 1) {
        for (int64_t i = 0; i < m; ++i) {
            float* dst = s->dst + (row0 + i) * g.ldd + cols[0].o;
            for (int64_t h = 0; h < 2; ++h) {
                V c;
                if (overwrite) {
                    const float b = g.bias ? g.bias[row0 + i] : 0.f;
                    c = V{} + b;
                } else {
                    std::memcpy(&c, dst + h * w, sizeof(V));
                }
                c += acc[i][h];
                std::memcpy(dst + h * w, &c, sizeof(V));
            }
        }
        return;
    }
    float tile[MR][nr];
    std::memcpy(tile, acc, sizeof(tile));
    for (int64_t j = 0; j < n;) {
        const int64_t len = run_length(cols + j, n - j);
        const Segment& sj = *cols[j].seg;
        for (int64_t i = 0; i < m; ++i) {
            float* dst = sj.dst + (row0 + i) * g.ldd + cols[j].o;
            const float* t = tile[i] + j;
            if (overwrite) {
                const float b = g.bias ? g.bias[row0 + i] : 0.f;
                for (int64_t q = 0; q < len; ++q) dst[q] = b + t[q];
            } else {
                for (int64_t q = 0; q < len; ++q) dst[q] += t[q];
            }
        }
        j += len;
    }
}

// Columns [c0, c1) of the whole column range, located through the segments.
// A dense layer (kernel 1 over sources of length 1, one column per sample or cotangent row) is
// a matrix-vector product per column: padding a few columns to a full NR-column panel would
// multiply the work by up to NR. Each column is the whole source, read straight from it. On
// the blocked kernels' machines every dense product takes this loop, whatever its number of
// columns: a column's sums must not depend on how many samples share its chunk (predict and
// explain cut batches differently, and explain's forward splits over the threads).
template <int64_t MR>
void few_dense_columns(const TapProduct& g, const Segment* segs, int64_t n_segs) {
    const PackedMatrix& a = *g.a;
    const int64_t depth = a.depth, m = a.rows, panels = (m + MR - 1) / MR;
    for (int64_t si = 0; si < n_segs; ++si) {
        const Segment& s = segs[si];
        if (s.cols == 0) continue;
        for (int64_t ip = 0; ip < panels; ++ip) {
            const float* ap = a.panel(ip);
            float acc[MR] = {};
            for (int64_t p = 0; p < depth; ++p) {
                const float x = s.src[p];
                for (int64_t i = 0; i < MR; ++i) acc[i] += ap[p * MR + i] * x;
            }
            for (int64_t i = 0; i < MR && ip * MR + i < m; ++i) {
                float* dst = s.dst + (ip * MR + i) * g.ldd;
                const float base = g.accumulate ? *dst : (g.bias ? g.bias[ip * MR + i] : 0.f);
                *dst = base + acc[i];
            }
        }
    }
}

inline bool is_dense_form(const TapProduct& g, const Segment* segs, int64_t n_segs) {
    if (g.kernel != 1 || g.stride != 1) return false;
    for (int64_t s = 0; s < n_segs; ++s)
        if (segs[s].src_len != 1 || segs[s].delta != 0 || segs[s].cols > 1) return false;
    return true;
}

// Positions [lo, lo + row_len) of every channel of a segment's source, zero outside the
// source, into buf (channels rows of row_len): what the kernels that read B straight from the
// source read where the taps reach past its ends.
// Not inlined: its memcpy calls would make the kernels that call it save their live vector
// registers around each one (a narrow kernel spilled two per channel copied).
__attribute__((noinline)) const float* padded_source(const TapProduct& g, const Segment& s, int64_t lo,
                                                     int64_t row_len, UninitVector<float>& buf) {
    assign_zeros(buf, static_cast<size_t>(g.channels * row_len));
    const int64_t from = std::max<int64_t>(lo, 0), to = std::min<int64_t>(lo + row_len, s.src_len);
    for (int64_t c = 0; c < g.channels && from < to; ++c)
        std::memcpy(buf.data() + c * row_len + (from - lo), s.src + c * s.src_len + from,
                    static_cast<size_t>(to - from) * sizeof(float));
    return buf.data();
}

// Calls body(segment, oa, ob) for every segment with columns [oa, ob) inside the product's
// columns [c0, c1) (a thread's part may cut segments).
template <class F>
inline void for_each_segment_part(const Segment* segs, int64_t n_segs, int64_t c0, int64_t c1, F&& body) {
    int64_t base = 0;
    for (int64_t si = 0; si < n_segs; base += segs[si++].cols) {
        const int64_t oa = std::max<int64_t>(c0 - base, 0), ob = std::min<int64_t>(c1 - base, segs[si].cols);
        if (oa < ob) body(segs[si], oa, ob);
    }
}

// A product of few rows (up to 8: the input gradient of a first layer over one or two input
// channels, the narrow convolutions of a TCN or an Inception module): packing B would cost more
// than the arithmetic it feeds, and an 8-row panel would be mostly padding. With unit stride
// each B row is a stretch of a source row, so the columns go in vector lanes: R rows by NV
// vectors of columns stay in registers while every (channel, tap) adds a source stretch times
// the rows' weights, read from a zero-padded copy of the segment's source.
constexpr int64_t kFewRows = 8;

// Sixteen vectors by name: GCC keeps an array of vectors in memory across a loop whose trip
// count is known at run time only (a load and a store of every accumulator at every step), but
// keeps a struct's fields in registers (clang does either). reg<I> is field I, chosen at
// compile time; folds over index sequences stand for the loops over them.
template <class V>
struct Regs {
    V r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, r14, r15;
};
template <size_t I, class V>
__attribute__((always_inline)) inline V& reg(Regs<V>& x) {
    static_assert(I < 16, "sixteen registers");
    if constexpr (I == 0) return x.r0;
    else if constexpr (I == 1) return x.r1;
    else if constexpr (I == 2) return x.r2;
    else if constexpr (I == 3) return x.r3;
    else if constexpr (I == 4) return x.r4;
    else if constexpr (I == 5) return x.r5;
    else if constexpr (I == 6) return x.r6;
    else if constexpr (I == 7) return x.r7;
    else if constexpr (I == 8) return x.r8;
    else if constexpr (I == 9) return x.r9;
    else if constexpr (I == 10) return x.r10;
    else if constexpr (I == 11) return x.r11;
    else if constexpr (I == 12) return x.r12;
    else if constexpr (I == 13) return x.r13;
    else if constexpr (I == 14) return x.r14;
    else return x.r15;
}

// NV vectors of B from b; acc[r * NV + v] += A(r, p) * B[v] for r < R (w = &A(0, p), rows
// depth apart).
template <class V, size_t... I>
TSVIZ_INLINE void load_vectors(Regs<V>& bv, const float* b, std::index_sequence<I...>) {
    ((std::memcpy(&reg<I>(bv), b + I * (sizeof(V) / sizeof(float)), sizeof(V))), ...);
}
template <int64_t NV, class V, size_t... I>
TSVIZ_INLINE void add_products(Regs<V>& acc, Regs<V>& bv, const float* w, int64_t depth, std::index_sequence<I...>) {
    ((reg<I>(acc) += w[static_cast<int64_t>(I) / NV * depth] * reg<I % NV>(bv)), ...);
}
template <int64_t NV, class V, size_t... I>
TSVIZ_INLINE void copy_out(Regs<V>& acc, V (*out)[NV], std::index_sequence<I...>) {
    ((out[I / NV][I % NV] = reg<I>(acc)), ...);
}

template <class V, int64_t R, int64_t NV>
inline void few_rows_block(const TapProduct& g, const float* src, int64_t row_len, int64_t tap, float* dst,
                           int64_t n, int64_t row0) {
    constexpr int64_t w = static_cast<int64_t>(sizeof(V) / sizeof(float));
    const PackedMatrix& a = *g.a;
    const int64_t k_n = g.kernel, depth = a.depth;
    static_assert(R * NV <= 16, "sixteen accumulators");
    Regs<V> regs{}, bv;
    const float* ar = a.plain.data() + row0 * depth;
    for (int64_t c = 0; c < g.channels; ++c)
        for (int64_t k = 0; k < k_n; ++k) {
            load_vectors(bv, src + c * row_len + k * tap, std::make_index_sequence<NV>{});
            add_products<NV>(regs, bv, ar + c * k_n + k, depth, std::make_index_sequence<R * NV>{});
        }
    V acc[R][NV];
    copy_out<NV>(regs, acc, std::make_index_sequence<R * NV>{});
    for (int64_t r = 0; r < R; ++r) {
        float out[NV * w];
        std::memcpy(out, acc[r], sizeof out);
        float* d = dst + (row0 + r) * g.ldd;
        if (g.accumulate) {
            for (int64_t j = 0; j < n; ++j) d[j] += out[j];
        } else {
            const float bias = g.bias ? g.bias[row0 + r] : 0.f;
            for (int64_t j = 0; j < n; ++j) d[j] = bias + out[j];
        }
    }
}

// Rows [row0, row0 + count) (count <= kFewRows) of columns [0, n) (n <= NV vectors).
template <class V, int64_t NV>
inline void few_rows_dispatch(int64_t count, const TapProduct& g, const float* src, int64_t row_len, int64_t tap,
                              float* dst, int64_t n, int64_t row0) {
    if constexpr (NV > 2) {  // four vectors of columns for one or two rows only
        if (count == 1) return few_rows_block<V, 1, NV>(g, src, row_len, tap, dst, n, row0);
        return few_rows_block<V, 2, NV>(g, src, row_len, tap, dst, n, row0);
    } else {
        switch (count) {
            case 1: return few_rows_block<V, 1, NV>(g, src, row_len, tap, dst, n, row0);
            case 2: return few_rows_block<V, 2, NV>(g, src, row_len, tap, dst, n, row0);
            case 3: return few_rows_block<V, 3, NV>(g, src, row_len, tap, dst, n, row0);
            case 4: return few_rows_block<V, 4, NV>(g, src, row_len, tap, dst, n, row0);
            case 5: return few_rows_block<V, 5, NV>(g, src, row_len, tap, dst, n, row0);
            case 6: return few_rows_block<V, 6, NV>(g, src, row_len, tap, dst, n, row0);
            case 7: return few_rows_block<V, 7, NV>(g, src, row_len, tap, dst, n, row0);
            default: return few_rows_block<V, 8, NV>(g, src, row_len, tap, dst, n, row0);
        }
    }
}

template <class V>
inline void few_rows(const TapProduct& g, const Segment* segs, int64_t n_segs, int64_t c0, int64_t c1) {
    constexpr int64_t w = static_cast<int64_t>(sizeof(V) / sizeof(float));
    // Four vectors of columns for up to two rows, two for more (at most 16 accumulators).
    const bool wide = g.a->rows <= 2;
    const int64_t block = (wide ? 4 : 2) * w;
    const int64_t k_n = g.kernel, rows = g.a->rows;
    const int64_t tap = g.transposed ? -g.dilation : g.dilation;
    // Per-thread scratch, kept between calls; bound once (in a shared library every access to a
    // thread_local is a call to __tls_get_addr).
    thread_local UninitVector<float> padded_scratch;
    UninitVector<float>& padded = padded_scratch;
    for_each_segment_part(segs, n_segs, c0, c1, [&](const Segment& s, int64_t oa, int64_t ob) {
        // Source positions read: i = o + shift + k * tap for o in [oa, oa + whole blocks).
        const int64_t shift = g.transposed ? -s.delta : s.delta;
        const int64_t span = (ob - oa + block - 1) / block * block;
        const int64_t lo = oa + shift + std::min<int64_t>(0, (k_n - 1) * tap);
        const int64_t row_len = span + (k_n - 1) * g.dilation;
        const float* source = padded_source(g, s, lo, row_len, padded);
        // Column o, tap k of channel c reads source[c * row_len + (o - oa) + k * tap + first_tap].
        const int64_t first_tap = -std::min<int64_t>(0, (k_n - 1) * tap);
        for (int64_t o = oa; o < ob; o += block) {
            const int64_t n = std::min(block, ob - o);
            const float* src = source + (o - oa) + first_tap;
            for (int64_t r0 = 0; r0 < rows; r0 += kFewRows) {
                const int64_t count = std::min(kFewRows, rows - r0);
                if (wide)
                    few_rows_dispatch<V, 4>(count, g, src, row_len, tap, s.dst + o, n, r0);
                else
                    few_rows_dispatch<V, 2>(count, g, src, row_len, tap, s.dst + o, n, r0);
            }
        }
    });
}

// Whether few_rows serves the product: unit stride, and one or two rows, or (with 32 vector
// registers, AVX-512) up to kFewRows rows over segments of 16 columns or more (narrower ones
// waste the vector lanes; the narrow-segment kernel takes them).
inline bool few_rows_fit(const TapProduct& g, const Segment* segs, int64_t n_segs, bool wide_registers) {
    if (g.stride != 1 || g.a->rows > kFewRows) return false;
    if (g.a->rows <= 2) return true;
    int64_t total = 0;
    for (int64_t s = 0; s < n_segs; ++s) total += segs[s].cols;
    return wide_registers && total >= 16 * n_segs;
}

template <class V, int64_t MR>
void run_columns(const TapProduct& g, const Segment* segs, int64_t n_segs, int64_t c0, int64_t c1) {
    if (is_dense_form(g, segs, n_segs)) {
        // A column per segment (or none): the segments whose column lies in [c0, c1).
        int64_t base = 0, first = -1, last = 0;
        for (int64_t si = 0; si < n_segs; base += segs[si++].cols)
            if (segs[si].cols > 0 && base >= c0 && base < c1) {
                if (first < 0) first = si;
                last = si + 1;
            }
        if (first >= 0) few_dense_columns<MR>(g, segs + first, last - first);
        return;
    }
    if (few_rows_fit(g, segs, n_segs, sizeof(V) == 64)) return few_rows<V>(g, segs, n_segs, c0, c1);
    constexpr int64_t nr = 2 * static_cast<int64_t>(sizeof(V) / sizeof(float));
    const PackedMatrix& a = *g.a;
    const int64_t depth = a.depth, m = a.rows, panels = (m + MR - 1) / MR;
    // Per-thread scratch, kept between calls so that a call allocates nothing.
    thread_local std::vector<Column> cols_scratch;
    thread_local UninitVector<float> bpack_scratch;
    std::vector<Column>& cols = cols_scratch;  // bound once: see few_rows
    UninitVector<float>& bpack = bpack_scratch;
    thread_local std::vector<int32_t> rows_scratch;
    thread_local std::vector<int64_t> offs_scratch;
    thread_local std::vector<const float*> direct_scratch;
    thread_local UninitVector<float> edge_scratch;
    thread_local std::vector<int64_t> kept_scratch;
    std::vector<int32_t>& rows = rows_scratch;
    std::vector<int64_t>& kept = kept_scratch;
    cols.reserve(static_cast<size_t>(kNc));
    bpack.resize(static_cast<size_t>(kKc * (kNc + nr)));
    rows.resize(static_cast<size_t>(kKc * (kNc / nr + 1)));
    kept.resize(static_cast<size_t>(kNc / nr + 1));
    // AVX-512 whole panels read in place: each panel's row offsets and where they point (the
    // source, or its zero-padded rows: 32 columns and the taps' reach, for the channels of one
    // depth block, when the taps reach past the source).
    std::vector<int64_t>& offs = offs_scratch;
    UninitVector<float>& edges = edge_scratch;
    std::vector<const float*>& direct = direct_scratch;
    const int64_t edge_stride = (32 + (g.kernel - 1) * g.dilation + 15) / 16 * 16;
    const int64_t edge_panel = ((kKc + g.kernel - 1) / g.kernel + 2) * edge_stride;
    if constexpr (nr == 32) {
        offs.resize(rows.size());
        direct.assign(kept.size(), nullptr);
        if (edges.size() < static_cast<size_t>(edge_panel * (kNc / nr + 1)))
            edges.resize(static_cast<size_t>(edge_panel * (kNc / nr + 1)));
    }
    // The segment holding column c0.
    int64_t si = 0, base = 0;
    while (si < n_segs && base + segs[si].cols <= c0) base += segs[si++].cols;
    constexpr int64_t kPanelsToTry = 4;
    int64_t panels_scanned = 0, rows_left_out = 0;
    for (int64_t j0 = c0; j0 < c1; j0 += kNc) {
        const int64_t nc = std::min(kNc, c1 - j0);
        // Segment by segment: the columns of one are a run of positions.
        cols.resize(static_cast<size_t>(nc));
        for (int64_t j = j0; j < j0 + nc;) {
            while (j - base >= segs[si].cols) base += segs[si++].cols;
            const int64_t o = j - base, count = std::min(segs[si].cols - o, j0 + nc - j);
            Column* out = cols.data() + (j - j0);
            for (int64_t q = 0; q < count; ++q) out[q] = {&segs[si], o + q};
            j += count;
        }
        const int64_t n_panels = (nc + nr - 1) / nr;
        for (int64_t p0 = 0; p0 < depth; p0 += kKc) {
            const int64_t kc = std::min(kKc, depth - p0);
            for (int64_t jp = 0; jp < n_panels; ++jp) {
                const int64_t n = std::min(nr, nc - jp * nr);
                float* bp = bpack.data() + jp * kc * nr;
                const Column* cj = cols.data() + jp * nr;
                // Zero rows left out when A is finite (0 times a NaN must stay NaN); the sums
                // are the same. Given up for the rest of the product when its first panels
                // have none (a network without ReLUs).
                const bool scan = a.finite && (panels_scanned < kPanelsToTry || rows_left_out > 0);
                int32_t* rows_jp = rows.data() + jp * kKc;
                kept[jp] = kc;
#ifdef TSVIZ_X86_KERNELS
                if constexpr (nr == 32) {
                    direct[jp] = nullptr;
                    // AVX-512, a whole panel of consecutive positions of one segment: B's rows
                    // read where they lie, in the source, or (where the taps reach past its
                    // ends) in a zero-padded copy of the positions the panel reads, one row per
                    // channel rather than one per channel and tap.
                    if (g.stride == 1 && edge_stride <= 64 && n == nr && cj[nr - 1].seg == cj[0].seg &&
                        cj[nr - 1].o == cj[0].o + nr - 1) {
                        const Segment& sg = *cj[0].seg;
                        const int64_t k_n = g.kernel, tap = g.transposed ? -g.dilation : g.dilation;
                        const int64_t shift = cj[0].o + (g.transposed ? -sg.delta : sg.delta);
                        const int64_t lo = shift + std::min<int64_t>(0, (k_n - 1) * tap);
                        const int64_t hi = shift + 31 + std::max<int64_t>(0, (k_n - 1) * tap);
                        int64_t* const offs_jp = offs.data() + jp * kKc;
                        if (lo >= 0 && hi < sg.src_len) {
                            kept[jp] =
                                direct_rows32_avx512(g, sg.src, 0, sg.src_len, shift, p0, kc, offs_jp, rows_jp, scan);
                            direct[jp] = sg.src;
                        } else {
                            float* const mini = edges.data() + jp * edge_panel;
                            kept[jp] = edge_rows32_avx512(g, sg, lo, edge_stride, shift - lo, p0, kc, mini, offs_jp,
                                                          rows_jp, scan);
                            direct[jp] = mini;
                        }
                        if (scan) {
                            ++panels_scanned;
                            rows_left_out += kc - kept[jp];
                        }
                        continue;
                    }
                }
                if constexpr (nr == 32 || nr == 16) {  // AVX-512, AVX2
                    if (g.stride == 1 && n == nr && cj[nr - 1].seg == cj[0].seg && cj[nr - 1].o == cj[0].o + nr - 1) {
                        int32_t* const keep = scan ? rows_jp : nullptr;
                        int64_t got;
                        if constexpr (nr == 32)
                            got = pack_run32_avx512(g, *cj[0].seg, cj[0].o, p0, kc, bp, keep);
                        else
                            got = pack_run16_avx2(g, *cj[0].seg, cj[0].o, p0, kc, bp, keep);
                        if (scan) {
                            ++panels_scanned;
                            if (got * 8 > kc * 7) {
                                if (got < kc) expand_panel<nr>(bp, kc, got, rows_jp);
                            } else {
                                kept[jp] = got;
                                rows_left_out += kc - got;
                            }
                        }
                        continue;
                    }
                }
#endif
                pack_panel<nr>(g, cj, n, p0, kc, bp);
                if (scan) {
                    kept[jp] = compact_panel<nr>(bp, kc, rows_jp);
                    ++panels_scanned;
                    rows_left_out += kc - kept[jp];
                }
            }
            for (int64_t jp = 0; jp < n_panels; ++jp) {
                const int64_t n = std::min(nr, nc - jp * nr);
                const float* bp = bpack.data() + jp * kc * nr;
                const int32_t* rows_jp = rows.data() + jp * kKc;
                for (int64_t ip = 0; ip < panels; ++ip) {
                    V acc[MR][2];
#ifdef TSVIZ_X86_KERNELS
                    if constexpr (nr == 32) {
                        if (direct[jp]) {
                            micro_kernel<V, MR, true, true>(kept[jp], a.panel(ip) + p0 * MR, direct[jp], acc,
                                                            rows_jp, offs.data() + jp * kKc);
                            store<V, MR>(g, p0 == 0, acc, ip * MR, std::min(MR, m - ip * MR), cols.data() + jp * nr, n);
                            continue;
                        }
                    }
#endif
                    if (kept[jp] == kc)
                        micro_kernel<V, MR>(kc, a.panel(ip) + p0 * MR, bp, acc);
                    else
                        micro_kernel<V, MR, true>(kept[jp], a.panel(ip) + p0 * MR, bp, acc, rows_jp);
                    store<V, MR>(g, p0 == 0, acc, ip * MR, std::min(MR, m - ip * MR), cols.data() + jp * nr, n);
                }
            }
        }
    }
}


#ifdef TSVIZ_X86_KERNELS
// --- Narrow segments ------------------------------------------------------------------------
// When segments are narrower than a panel (tangent bands a few positions wide, the cotangent
// rows of a short layer, the samples of a small net) a 32-column panel straddles several
// segments, and packing it is a gather of short runs that costs as much as the arithmetic. The
// other orientation needs no packing of B: the micro-kernel holds R x L rows of C (R packed
// L-row panels of A, one vector each) by up to a few columns of one segment, and reads each B
// element straight from the source as a broadcast, at src[c, o * step + k * tap] of a source
// row whose out-of-range positions are zero (a padded copy of the segment's source when the
// taps reach outside it). One template for both vector widths:
//   AVX-512 (v16): L = 16, 32 registers: two panels by up to 12 columns (24 accumulators), or
//                  one panel by up to 16;
//   AVX2 (v8):     L = 8, 16 registers: two panels by up to 6 columns (12 accumulators, two A
//                  vectors and a broadcast), or one panel by up to 12.
template <class V>
struct NarrowShape;
template <>
struct NarrowShape<v16> {
    static constexpr int64_t lanes = 16, pair_cols = 12, one_cols = 16;
};
template <>
struct NarrowShape<v8> {
    static constexpr int64_t lanes = 8, pair_cols = 6, one_cols = 12;
};

// The source channels a block reads, ascending.
struct Live {
    const int32_t* channel = nullptr;
    int64_t count = 0;
};

// Whether the narrow kernel serves this product: wide panels packed (AVX-512 or AVX2), a tap
// rule with a constant column step (every forward rule; transposed only at stride 1), and
// segments narrower than two of the AVX-512 blocked kernel's panels on average. Products that
// few_rows serves keep their own loops (wide_registers: as few_rows_fit). Dense products take
// it whatever their number of columns (one column per segment, each column's sums the same):
// see few_dense_columns.
inline bool narrow_fits(const TapProduct& g, const Segment* segs, int64_t n_segs, int64_t total,
                        bool wide_registers) {
    if (g.a->wide.empty() || (g.transposed && g.stride != 1) || few_rows_fit(g, segs, n_segs, wide_registers))
        return false;
    return total < 64 * n_segs;
}

// acc[r][j] = rows [L * (panel + r), + L) of column j, for N columns read from `src`.
// Unit: the column step is 1 (every transposed rule, stride 1), known to the compiler: each
// column's broadcast is then a fixed displacement from one pointer, where a step known only at
// run time takes a register per column, more than there are (GCC moved them through vector
// registers and the stack inside the loop: a third of its instructions).
// Only the source channels in `live` (ascending) are read: the others are zero rows of B.
template <class V, bool Unit, int64_t R, int64_t N>
__attribute__((always_inline)) inline void narrow_block(const TapProduct& g, const float* a0, const float* src,
                                                        int64_t row_len, int64_t tap, const Live& live,
                                                        V (&acc)[R][N]) {
    constexpr int64_t L = NarrowShape<V>::lanes;
    const int64_t depth = g.a->depth, k_n = g.kernel, step = Unit ? 1 : g.transposed ? 1 : g.stride;
    for (int64_t r = 0; r < R; ++r)
        for (int64_t j = 0; j < N; ++j) acc[r][j] = V{};
    // Channel c: A's columns from a, B's row from sc.
    auto channel = [&](const float* a, const float* sc) __attribute__((always_inline)) {
        for (int64_t k = 0; k < k_n; ++k, a += L) {
            V av[R];
            for (int64_t r = 0; r < R; ++r) std::memcpy(&av[r], a + r * depth * L, sizeof(V));
            const float* b = sc + k * tap;
            for (int64_t j = 0; j < N; ++j) {
                const float bj = b[j * step];
                for (int64_t r = 0; r < R; ++r) acc[r][j] += av[r] * bj;
            }
        }
    };
    if (live.count == g.channels) {  // every channel: the loop of a product without zero rows
        for (int64_t c = 0; c < g.channels; ++c) channel(a0 + c * k_n * L, src + c * row_len);
        return;
    }
    for (int64_t ci = 0; ci < live.count; ++ci) {
        const int64_t c = live.channel[ci];
        channel(a0 + c * k_n * L, src + c * row_len);
    }
}

// One stage of a 16 x 16 transpose in registers: exchanges D-lane blocks between vectors p and
// p + D. After the stages D = 8, 4, 2, 1, x[i][j] is the x[j][i] of before.
// With Count = 8 and D < 8 the stages D = 4, 2, 1 transpose each 256-bit half of x[0 .. 8) as
// an 8 x 8 block: the lanes a stage exchanges never cross a half.
template <int D, int Count = 16>
__attribute__((target("avx512f"), always_inline)) inline void transpose_stage(__m512 (&x)[16]) {
    static_assert(D < Count, "a stage exchanges vectors p and p + D of the first Count");
    alignas(64) int32_t lo[16], hi[16];
    for (int l = 0; l < 16; ++l) {
        lo[l] = (l & D) ? 16 + l - D : l;  // lane l of p: from p, or from p + D (index 16 +)
        hi[l] = (l & D) ? 16 + l : l + D;
    }
    const __m512i lo_v = _mm512_load_si512(lo), hi_v = _mm512_load_si512(hi);
    for (int p = 0; p < Count; ++p) {
        if (p & D) continue;
        const __m512 a = x[p], b = x[p + D];
        x[p] = _mm512_permutex2var_ps(a, lo_v, b);
        x[p + D] = _mm512_permutex2var_ps(a, hi_v, b);
    }
}

// Rows p and p + 8 of a (row stride ld), columns [0, 8) by `low`, in the low and high halves
// of one vector; the high row's lanes only when `upper` (it exists).
__attribute__((target("avx512f"), always_inline)) inline __m512 row_pair(const float* a, int64_t ld, int p, bool upper,
                                                                          __mmask16 low) {
    const __m512 v = _mm512_maskz_loadu_ps(low, a + p * ld);
    return upper ? _mm512_mask_loadu_ps(v, static_cast<__mmask16>(low << 8), a + (p + 8) * ld - 8) : v;
}

// Rows [row0, row0 + 16) of columns [o0, o0 + n) of one segment, column j of the tile in col[j]
// (n <= 16): transposed in registers so that each row of C is one masked vector store. One
// function for every tile shape, not inlined: its code (the transpose and the three kinds of
// epilogue) was repeated in each of the kernel's 64 tile shapes, 260 KB in all, and a call
// whose code had been evicted by other work fetched each shape's copy from memory.
// Up to 8 columns (the tangent bands of the first layers, the last tile of a short segment)
// take half the transpose: an 8 x 8 one in each 256-bit half leaves row p in the low half of
// x[p] and row p + 8 in its high half, stored by two masked stores, the high one at the
// address 8 floats before its row so that its lanes 8 .. 15 land on the row's columns.
// Every loop over the rows has a constant trip count (a row past `live` is skipped), so x
// stays in registers; with `live` as the bound GCC kept x on the stack.
__attribute__((target("avx512f"), noinline)) void narrow_store(const TapProduct& g, const Segment& s, int64_t row0,
                                                                int64_t o0, int64_t n, const v16* col) {
    const int64_t ldd = g.ldd, gate_ld = g.gate_ld, live = std::min<int64_t>(16, g.a->rows - row0);
    // The branches on what the product does are the same for every row, hoisted out of the
    // row loops below.
    float* dst = s.dst + row0 * ldd + o0;
    const float* gate = s.gate ? s.gate + row0 * gate_ld + o0 : nullptr;
    const bool accumulate = g.accumulate, bias = !accumulate && g.bias, relu = g.relu;
    __m512 x[16];
    if (n <= 8) {
#pragma GCC unroll 8
        for (int j = 0; j < 8; ++j) x[j] = j < n ? reinterpret_cast<const __m512&>(col[j]) : _mm512_setzero_ps();
        transpose_stage<4, 8>(x);
        transpose_stage<2, 8>(x);
        transpose_stage<1, 8>(x);
        const __mmask16 low = static_cast<__mmask16>((1u << n) - 1), high = static_cast<__mmask16>(low << 8);
#pragma GCC unroll 8
        for (int p = 0; p < 8; ++p) {
            if (p >= live) break;
            const bool upper = p + 8 < live;
            if (accumulate) {
                x[p] = _mm512_add_ps(x[p], row_pair(dst, ldd, p, upper, low));
            } else if (bias) {
                const __m512 b = _mm512_set1_ps(g.bias[row0 + p]);
                x[p] = _mm512_add_ps(x[p], upper ? _mm512_mask_mov_ps(b, high, _mm512_set1_ps(g.bias[row0 + p + 8])) : b);
            }
            if (relu) x[p] = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x[p], _mm512_setzero_ps(), _CMP_NLE_UQ), x[p]);
            if (gate)
                x[p] = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(row_pair(gate, gate_ld, p, upper, low), _mm512_setzero_ps(), _CMP_GT_OQ),
                                           x[p]);
            _mm512_mask_storeu_ps(dst + p * ldd, low, x[p]);
            if (upper) _mm512_mask_storeu_ps(dst + (p + 8) * ldd - 8, high, x[p]);
        }
        return;
    }
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) x[j] = j < n ? reinterpret_cast<const __m512&>(col[j]) : _mm512_setzero_ps();
    transpose_stage<8>(x);
    transpose_stage<4>(x);
    transpose_stage<2>(x);
    transpose_stage<1>(x);
    const __mmask16 cols = static_cast<__mmask16>((1u << n) - 1);
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) {
        if (i >= live) break;
        if (accumulate)
            x[i] = _mm512_add_ps(x[i], _mm512_maskz_loadu_ps(cols, dst + i * ldd));
        else if (bias)
            x[i] = _mm512_add_ps(x[i], _mm512_set1_ps(g.bias[row0 + i]));
        if (relu) x[i] = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x[i], _mm512_setzero_ps(), _CMP_NLE_UQ), x[i]);
        if (gate) {
            const __m512 gi = _mm512_maskz_loadu_ps(cols, gate + i * gate_ld);
            x[i] = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(gi, _mm512_setzero_ps(), _CMP_GT_OQ), x[i]);
        }
        _mm512_mask_storeu_ps(dst + i * ldd, cols, x[i]);
    }
}

// Rows [0, Rows) of an AVX2 block x (row i of C over w columns in x[i]) into dst: the epilogue
// (what dst holds or the bias, then the ReLU gate) and the stores. Rows a constant, so that x
// stays in registers (with a bound known at run time GCC kept x on the stack).
template <int64_t Rows>
__attribute__((target("avx2,fma"), always_inline)) inline void narrow_rows8(const TapProduct& g, __m256 (&x)[8],
                                                                           float* dst, const float* gate,
                                                                           int64_t row0, int64_t w) {
    const int64_t ldd = g.ldd, gate_ld = g.gate_ld;
    const __m256i cols = lanes_inside8(0, w);
    if (g.accumulate) {
        for (int64_t i = 0; i < Rows; ++i) x[i] = _mm256_add_ps(x[i], _mm256_maskload_ps(dst + i * ldd, cols));
    } else if (g.bias) {
        for (int64_t i = 0; i < Rows; ++i) x[i] = _mm256_add_ps(x[i], _mm256_set1_ps(g.bias[row0 + i]));
    }
    if (g.relu)
        for (int64_t i = 0; i < Rows; ++i)
            x[i] = _mm256_and_ps(x[i], _mm256_cmp_ps(x[i], _mm256_setzero_ps(), _CMP_NLE_UQ));
    if (gate) {
        for (int64_t i = 0; i < Rows; ++i) {
            const __m256 gi = _mm256_maskload_ps(gate + i * gate_ld, cols);
            x[i] = _mm256_and_ps(x[i], _mm256_cmp_ps(gi, _mm256_setzero_ps(), _CMP_GT_OQ));
        }
    }
    for (int64_t i = 0; i < Rows; ++i) store_span8(dst + i * ldd, x[i], 0, w);
}

// The same on AVX2 for rows [row0, row0 + 8) of n <= 12 columns: an 8 x 8 transpose per eight
// columns, each row of C stored by store_span8.
__attribute__((target("avx2,fma"), noinline)) void narrow_store(const TapProduct& g, const Segment& s, int64_t row0,
                                                                 int64_t o0, int64_t n, const v8* col) {
    const int64_t live = std::min<int64_t>(8, g.a->rows - row0);
    for (int64_t j0 = 0; j0 < n; j0 += 8) {
        const int64_t w = std::min<int64_t>(8, n - j0);
        __m256 x[8];
        for (int64_t j = 0; j < 8; ++j)
            x[j] = j < w ? reinterpret_cast<const __m256&>(col[j0 + j]) : _mm256_setzero_ps();
        transpose8(x);
        float* dst = s.dst + row0 * g.ldd + o0 + j0;
        const float* gate = s.gate ? s.gate + row0 * g.gate_ld + o0 + j0 : nullptr;
        switch (live) {
            case 8: narrow_rows8<8>(g, x, dst, gate, row0, w); break;
            case 7: narrow_rows8<7>(g, x, dst, gate, row0, w); break;
            case 6: narrow_rows8<6>(g, x, dst, gate, row0, w); break;
            case 5: narrow_rows8<5>(g, x, dst, gate, row0, w); break;
            case 4: narrow_rows8<4>(g, x, dst, gate, row0, w); break;
            case 3: narrow_rows8<3>(g, x, dst, gate, row0, w); break;
            case 2: narrow_rows8<2>(g, x, dst, gate, row0, w); break;
            default: narrow_rows8<1>(g, x, dst, gate, row0, w); break;
        }
    }
}

// Rows [L * panel, L * (panel + R)) of columns [o0, o0 + N) of one segment: `src` points at
// the source element of column o0, tap 0, channel 0.
template <class V, bool Unit, int64_t R, int64_t N>
inline void narrow_tile(const TapProduct& g, int64_t panel, const float* src, int64_t row_len, int64_t tap,
                        const Live& live, const Segment& s, int64_t o0) {
    constexpr int64_t L = NarrowShape<V>::lanes;
    V acc[R][N];
    narrow_block<V, Unit, R, N>(g, g.a->wide.data() + panel * g.a->depth * L, src, row_len, tap, live, acc);
    for (int64_t r = 0; r < R; ++r) {
        const int64_t row0 = (panel + r) * L;
        if (row0 >= g.a->rows) return;
        narrow_store(g, s, row0, o0, N, acc[r]);
    }
}

template <class V, bool Unit, int64_t N>
inline void narrow_columns_of(const TapProduct& g, const float* src, int64_t row_len, int64_t tap, const Live& live,
                              const Segment& s, int64_t o0) {
    constexpr int64_t L = NarrowShape<V>::lanes;
    const int64_t panels = (g.a->rows + L - 1) / L;
    int64_t ip = 0;
    if constexpr (N <= NarrowShape<V>::pair_cols)  // wider tiles are for one panel (narrow_columns)
        for (; ip + 2 <= panels; ip += 2) narrow_tile<V, Unit, 2, N>(g, ip, src, row_len, tap, live, s, o0);
    if (ip < panels) narrow_tile<V, Unit, 1, N>(g, ip, src, row_len, tap, live, s, o0);
}

template <class V, bool Unit, int64_t... Ns>
inline void narrow_dispatch(int64_t n, const TapProduct& g, const float* src, int64_t row_len, int64_t tap,
                            const Live& live, const Segment& s, int64_t o0, std::integer_sequence<int64_t, Ns...>) {
    ((n == Ns + 1 ? narrow_columns_of<V, Unit, Ns + 1>(g, src, row_len, tap, live, s, o0) : void()), ...);
}

// padded_source in vector steps, each a masked load (lanes outside the source read 0, and
// never fault) and a masked store, the masks made once per step for every channel. The generic
// copy zero-filled the whole buffer and then called memcpy once per channel row (12-50 floats);
// those calls and the fill were a tenth of explaining 64 windows of the paper net.
// Each channel's lanes that are not zero (NaN included) are or-ed into nonzero[c].
// The steps of one instruction set: W lanes; Mask, a lane mask; mask(p0, len), the lanes from
// p0 inside [0, len); copy(from, to, read, write), one masked copy, returning its non-zero lanes
// as bits; nonzero(p, lanes), whether the lanes at p hold a value that is not zero.
struct Steps16 {
    static constexpr int64_t W = 16;
    using Mask = __mmask16;
    static Mask mask(int64_t p0, int64_t len) { return lanes_inside(p0, len); }
    __attribute__((target("avx512f"))) static uint32_t copy(const float* from, float* to, Mask read, Mask write) {
        const __m512 v = _mm512_maskz_loadu_ps(read, from);
        _mm512_mask_storeu_ps(to, write, v);
        return _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
    }
    __attribute__((target("avx512f"))) static uint32_t nonzero(const float* p, Mask lanes) {
        return _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(lanes, p), _mm512_setzero_ps(), _CMP_NEQ_UQ);
    }
};
struct Steps8 {  // lane masks as bits, so that no AVX vector crosses the templates' boundary
    static constexpr int64_t W = 8;
    using Mask = uint32_t;
    static Mask mask(int64_t p0, int64_t len) { return lanes_inside(p0, len) & 0xFFu; }
    __attribute__((target("avx2"))) static uint32_t copy(const float* from, float* to, Mask read, Mask write) {
        const __m256 v = _mm256_maskload_ps(from, bit_lanes8(read));
        store_bits8(to, v, write);
        return static_cast<uint32_t>(_mm256_movemask_ps(_mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_NEQ_UQ)));
    }
    // No nonzero(): the AVX2 scan is nonzero_source_avx2's own loop.
};

template <class Steps>
inline const float* padded_source_steps(const TapProduct& g, const Segment& s, int64_t lo, int64_t row_len,
                                        UninitVector<float>& buf, uint32_t* nonzero) {
    const size_t need = static_cast<size_t>(g.channels * row_len);
    if (buf.size() < need) buf.resize(need);
    for (int64_t p = 0; p < row_len; p += Steps::W) {
        // Source position lo + p + lane, read where it lies in [0, src_len); kept below row_len.
        const typename Steps::Mask read = Steps::mask(lo + p, s.src_len), write = Steps::mask(p, row_len);
        const float* from = s.src + lo + p;
        float* to = buf.data() + p;
        for (int64_t c = 0; c < g.channels; ++c, from += s.src_len, to += row_len)
            nonzero[c] |= Steps::copy(from, to, read, write);
    }
    return buf.data();
}

// The same marks for positions [lo, hi] of each channel of a source read in place.
template <class Steps>
inline void nonzero_source_steps(const TapProduct& g, const Segment& s, int64_t lo, int64_t hi, uint32_t* nonzero) {
    for (int64_t c = 0; c < g.channels; ++c) {
        const float* row = s.src + c * s.src_len;
        uint32_t any = 0;
        for (int64_t p = lo; p <= hi && !any; p += Steps::W) any = Steps::nonzero(row + p, Steps::mask(p - lo, hi - lo + 1));
        nonzero[c] = any;
    }
}

// On AVX-512 as on AVX2 (below): channel by channel, each row's read masks made once for all
// of them (and kept inside the row, so that the lanes past it load 0 and the marks are exact),
// whole vectors stored plainly (a row's last step runs into the next row, which then writes
// its own; the buffer has a step's room after the last), the non-zero bits or-ed in a register
// and tested once per row, where the generic steps or a mark into memory at every step. The
// copy is 7% of a full analysis of one window of the residual net on a Zen 4; this form took
// about a fiftieth of that analysis off, at the edge of what the engine A/B resolves there.
// Rows of over kRowSteps steps take the generic copy.
__attribute__((target("avx512f"), noinline, flatten)) const float* padded_source_avx512(
    const TapProduct& g, const Segment& s, int64_t lo, int64_t row_len, UninitVector<float>& buf, uint32_t* nonzero) {
    constexpr int64_t kRowSteps = 8;
    const int64_t steps = (row_len + 15) / 16;
    if (steps > kRowSteps) return padded_source_steps<Steps16>(g, s, lo, row_len, buf, nonzero);
    const size_t need = static_cast<size_t>(g.channels * row_len + 16);
    if (buf.size() < need) buf.resize(need);
    __mmask16 read[kRowSteps];
    for (int64_t i = 0; i < steps; ++i) read[i] = lanes_inside(lo + 16 * i, s.src_len) & lanes_inside(16 * i, row_len);
    const __m512i magnitude = _mm512_set1_epi32(0x7FFFFFFF);
    const float* from = s.src + lo;
    float* to = buf.data();
    const int64_t channels = g.channels, src_len = s.src_len;
    for (int64_t c = 0; c < channels; ++c, from += src_len, to += row_len) {
        __m512i bits = _mm512_setzero_si512();
        for (int64_t i = 0; i < steps; ++i) {
            const __m512 v = _mm512_maskz_loadu_ps(read[i], from + 16 * i);
            _mm512_storeu_ps(to + 16 * i, v);
            bits = _mm512_or_si512(bits, _mm512_castps_si512(v));
        }
        nonzero[c] |= _mm512_test_epi32_mask(bits, magnitude) != 0 ? 1u : 0u;
    }
    return buf.data();
}
// Ranges of up to 32 positions (a tangent's band and its taps' reach; a narrow segment's) in
// one or two masked loads a channel, the channel's mark set from their or-ed bits without a
// branch: the generic loop's test after each step, taken or not as the data fell, was
// mispredicted often enough to make the scan 8% of a full analysis of one window of the
// residual net, which this form takes down by a twentieth (A/B on a Zen 4).
__attribute__((target("avx512f"), noinline, flatten)) void nonzero_source_avx512(const TapProduct& g, const Segment& s,
                                                                                  int64_t lo, int64_t hi,
                                                                                  uint32_t* nonzero) {
    const int64_t len = hi - lo + 1;
    if (len > 32) return nonzero_source_steps<Steps16>(g, s, lo, hi, nonzero);
    const __mmask16 first = lanes_inside(0, len), second = lanes_inside(16, len);
    const __m512i magnitude = _mm512_set1_epi32(0x7FFFFFFF);  // -0 is a zero; NaN and infinity are not
    const float* row = s.src + lo;
    const int64_t channels = g.channels, src_len = s.src_len;
    if (len <= 16) {
        for (int64_t c = 0; c < channels; ++c, row += src_len)
            nonzero[c] = _mm512_test_epi32_mask(_mm512_castps_si512(_mm512_maskz_loadu_ps(first, row)), magnitude) != 0;
        return;
    }
    for (int64_t c = 0; c < channels; ++c, row += src_len) {
        const __m512i bits = _mm512_or_si512(_mm512_castps_si512(_mm512_loadu_ps(row)),
                                             _mm512_castps_si512(_mm512_maskz_loadu_ps(second, row + 16)));
        nonzero[c] = _mm512_test_epi32_mask(bits, magnitude) != 0;
    }
}
// On AVX2 channel by channel, each row's steps' masks made once for all of them: whole
// vectors stored plainly (a row's last step runs into the next row's first positions, which
// that row then writes; the buffer has a step's room after the last), loads masked only where
// the step reaches outside the source, and the non-zero bits or-ed in a register, tested once
// per row as nonzero_source_avx2 does (a mask per store, and a mark stored per step, had been
// most of the copy: 7% of explaining 64 windows of the paper net). Rows of over kRowSteps steps
// take the generic copy.
__attribute__((target("avx2"), noinline, flatten)) const float* padded_source_avx2(
    const TapProduct& g, const Segment& s, int64_t lo, int64_t row_len, UninitVector<float>& buf, uint32_t* nonzero) {
    constexpr int64_t kRowSteps = 16;
    const int64_t steps = (row_len + 7) / 8;
    if (steps > kRowSteps) return padded_source_steps<Steps8>(g, s, lo, row_len, buf, nonzero);
    const size_t need = static_cast<size_t>(g.channels * row_len + 8);
    if (buf.size() < need) buf.resize(need);
    __m256i read[kRowSteps];
    uint32_t masked = 0;  // bit i: step i reaches outside the source
    for (int64_t i = 0; i < steps; ++i) {
        const int64_t p0 = lo + 8 * i;
        read[i] = lanes_inside8(p0, s.src_len);
        if (p0 < 0 || p0 + 8 > s.src_len) masked |= 1u << i;
    }
    const __m256i magnitude = _mm256_set1_epi32(0x7FFFFFFF);
    const float* from = s.src + lo;
    float* to = buf.data();
    const int64_t channels = g.channels, src_len = s.src_len;
    for (int64_t c = 0; c < channels; ++c, from += src_len, to += row_len) {
        __m256i bits = _mm256_setzero_si256();
        for (int64_t i = 0; i < steps; ++i) {
            const __m256 v = (masked >> i) & 1u ? _mm256_maskload_ps(from + 8 * i, read[i]) : _mm256_loadu_ps(from + 8 * i);
            _mm256_storeu_ps(to + 8 * i, v);
            bits = _mm256_or_si256(bits, _mm256_castps_si256(v));
        }
        nonzero[c] |= _mm256_testz_si256(bits, magnitude) ? 0u : 1u;
    }
    return buf.data();
}
// On AVX2 the positions' bits are or-ed together, leaving out the sign (a -0 is a zero; a NaN
// or an infinity is not): whole steps load plainly, the last one through a lane mask, and the
// channel is tested after its first step and then once at its end (a test per step, and a
// lane mask per step before that, had been most of the scan; a channel that is zero all along
// is read whole, and one that is not usually shows it in its first step).
__attribute__((target("avx2"), noinline)) void nonzero_source_avx2(const TapProduct& g, const Segment& s, int64_t lo,
                                                                   int64_t hi, uint32_t* nonzero) {
    const int64_t len = hi - lo + 1, whole = len / 8 * 8;
    const __m256i tail = lanes_inside8(whole, len), magnitude = _mm256_set1_epi32(0x7FFFFFFF);
    for (int64_t c = 0; c < g.channels; ++c) {
        const __m256i* row = reinterpret_cast<const __m256i*>(s.src + c * s.src_len + lo);
        __m256i bits = whole > 0 ? _mm256_loadu_si256(row) : _mm256_setzero_si256();
        if (_mm256_testz_si256(bits, magnitude)) {
            for (int64_t p = 1; p < whole / 8; ++p) bits = _mm256_or_si256(bits, _mm256_loadu_si256(row + p));
            if (whole < len)
                bits = _mm256_or_si256(bits, _mm256_maskload_epi32(reinterpret_cast<const int*>(row + whole / 8), tail));
        }
        nonzero[c] = _mm256_testz_si256(bits, magnitude) ? 0u : 1u;
    }
}

// The indices of the non-zero marks among n, in order, into list (16 at a time); returns how
// many. Compressed in a register and stored by a mask of the first lanes: the compressing
// store (vpcompressd to memory) is microcoded on AMD's Zen 4, and took 7% of a full analysis
// of one window of the residual net there.
__attribute__((target("avx512f"), noinline)) int64_t marked_channels_avx512(const uint32_t* marks, int64_t n,
                                                                          int32_t* list) {
    const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    int64_t count = 0;
    for (int64_t c = 0; c < n; c += 16) {
        const __mmask16 in = lanes_inside(c, n);
        const __m512i v = _mm512_maskz_loadu_epi32(in, marks + c);
        const __mmask16 set = _mm512_mask_test_epi32_mask(in, v, v);
        const int found = __builtin_popcount(set);
        const __m512i packed = _mm512_maskz_compress_epi32(set, _mm512_add_epi32(iota, _mm512_set1_epi32(static_cast<int32_t>(c))));
        _mm512_mask_storeu_epi32(list + count, static_cast<__mmask16>((1u << found) - 1u), packed);
        count += found;
    }
    return count;
}


// Which source channels a segment's columns read are not all zero. The kernels that read B
// straight from the sources leave the others out: a ReLU's channel that is off along a sample,
// or along a tangent's band, adds nothing (the sums are the same). Only when A is finite: 0
// times a NaN must stay NaN. A kernel that copies a segment's source marks the rows as it
// copies (marks, then marked); one that reads in place scans them. Both are given up for the
// rest of the product when its first segments have no zero row.
template <class V>
class LiveChannels {
  public:
    explicit LiveChannels(const TapProduct& g)
        : g_(g), marks_(scratch<uint32_t, 0>()), list_(scratch<int32_t, 1>()), every_list_(scratch<int32_t, 2>()) {
        if (static_cast<int64_t>(every_list_.size()) < g.channels) {
            every_list_.resize(static_cast<size_t>(g.channels));
            for (int64_t c = 0; c < g.channels; ++c) every_list_[c] = static_cast<int32_t>(c);
        }
        list_.resize(std::max(list_.size(), static_cast<size_t>(g.channels)));
    }
    // One mark per channel for padded_source_avx512 (or _avx2): cleared when marked() will read
    // them.
    uint32_t* marks() {
        if (g_.a->finite && !given_up())
            marks_.assign(static_cast<size_t>(g_.channels), 0);
        else
            marks_.resize(std::max(marks_.size(), static_cast<size_t>(g_.channels)));
        return marks_.data();
    }
    Live marked() {
        if (!g_.a->finite || given_up()) return every();
        ++scans_;
        return collect();
    }
    // Every channel, in order.
    Live every() const { return {every_list_.data(), g_.channels}; }
    // Positions [lo, hi] of each channel of s (clipped to the source) read in place.
    Live scan(const Segment& s, int64_t lo, int64_t hi) {
        if (!g_.a->finite || given_up()) return every();
        ++scans_;
        marks_.assign(static_cast<size_t>(g_.channels), 0);
        lo = std::max<int64_t>(lo, 0);
        hi = std::min<int64_t>(hi, s.src_len - 1);
        if (lo > hi) return collect();
        if constexpr (NarrowShape<V>::lanes == 16)
            nonzero_source_avx512(g_, s, lo, hi, marks_.data());
        else
            nonzero_source_avx2(g_, s, lo, hi, marks_.data());
        return collect();
    }

  private:
    static constexpr int64_t kScansToTry = 4;
    template <class T, int I>
    static std::vector<T>& scratch() {
        thread_local std::vector<T> v;  // kept between calls
        return v;
    }
    // The first segments looked at had no zero row: the rest of the product is taken whole.
    bool given_up() const { return scans_ >= kScansToTry && skipped_ == 0; }
    Live collect() {
        int64_t n = 0;
        if constexpr (NarrowShape<V>::lanes == 16) {
            n = marked_channels_avx512(marks_.data(), g_.channels, list_.data());
        } else {
            for (int64_t c = 0; c < g_.channels; ++c) {
                list_[n] = static_cast<int32_t>(c);
                n += marks_[c] != 0;
            }
        }
        skipped_ += g_.channels - n;
        return {list_.data(), n};
    }
    const TapProduct& g_;
    std::vector<uint32_t>& marks_;
    std::vector<int32_t>& list_;
    std::vector<int32_t>& every_list_;
    int64_t scans_ = 0, skipped_ = 0;
};

// --- Banded tangents on AVX-512 ---------------------------------------------------------------
// A product at stride 1 without dilation, K taps, whose segments (up to 16 columns each) are
// the reach of a band of source positions: forward-mode saliency's tangents, each a band whose
// output reaches K - 1 positions past its input on either side. The tile kernel adds
// N * K products per channel, the K(K - 1) at the band's two ends times the zero-padded copy's
// zeros (a third of the products of the FCN's second layer, 12 columns from 8 positions by 5
// taps). Here the source is read in place, position by position: position u (source position
// lo + u, lo the columns' first read) adds to column u - k for each tap k, the column a
// constant once the loops are unrolled, so that the N accumulators stay in registers with the
// K weight vectors of the channel. It serves the products whose positions [K - 1, N) lie inside
// the source; those before and after are added only when inside it ([u_lo, u_hi]). Each column
// adds the tile kernel's products in its order (channel by channel, tap by tap), less the zeros.
template <int64_t N, int64_t Q>
__attribute__((target("avx512f"), always_inline)) inline void banded_add(v16 (&acc)[N], const v16& w, float b) {
    if constexpr (Q >= 0 && Q < N) acc[Q] += w * b;
}
template <int64_t N, int64_t U, size_t... Kk>
__attribute__((target("avx512f"), always_inline)) inline void banded_position(v16 (&acc)[N], const v16* w, float b,
                                                                              std::index_sequence<Kk...>) {
    (banded_add<N, U - static_cast<int64_t>(Kk)>(acc, w[Kk], b), ...);
}
template <int64_t K, int64_t N, size_t... U>
__attribute__((target("avx512f"), always_inline)) inline void banded_channel(v16 (&acc)[N], const v16* w,
                                                                             const float* row, int64_t lo,
                                                                             int64_t u_lo, int64_t u_hi,
                                                                             std::index_sequence<U...>) {
    ((((static_cast<int64_t>(U) >= K - 1 && static_cast<int64_t>(U) < N) ||
       (static_cast<int64_t>(U) >= u_lo && static_cast<int64_t>(U) <= u_hi))
          ? banded_position<N, static_cast<int64_t>(U)>(acc, w, row[lo + static_cast<int64_t>(U)],
                                                        std::make_index_sequence<K>{})
          : void()),
     ...);
}
template <int64_t K, int64_t N>
__attribute__((target("avx512f"), noinline)) void banded_tile(const TapProduct& g, const Segment& s, int64_t lo,
                                                              int64_t u_lo, int64_t u_hi, const Live& live,
                                                              int64_t o0) {
    const int64_t depth = g.a->depth, panels = (g.a->rows + 15) / 16;
    for (int64_t ip = 0; ip < panels; ++ip) {
        v16 acc[N] = {};
        const float* a0 = g.a->wide.data() + ip * depth * 16;
        for (int64_t ci = 0; ci < live.count; ++ci) {
            const int64_t c = live.channel[ci];
            v16 w[K];
            for (int64_t k = 0; k < K; ++k) std::memcpy(&w[k], a0 + (c * K + k) * 16, sizeof(v16));
            banded_channel<K, N>(acc, w, s.src + c * s.src_len, lo, u_lo, u_hi, std::make_index_sequence<N + K - 1>{});
        }
        narrow_store(g, s, ip * 16, o0, N, acc);
    }
}
template <int64_t K, int64_t... Ns>
__attribute__((target("avx512f"), always_inline)) inline void banded_dispatch(
    int64_t n, const TapProduct& g, const Segment& s, int64_t lo, int64_t u_lo, int64_t u_hi, const Live& live,
    int64_t o0, std::integer_sequence<int64_t, Ns...>) {
    ((n == Ns + 1 ? banded_tile<K, Ns + 1>(g, s, lo, u_lo, u_hi, live, o0) : void()), ...);
}
// Whether banded_tile serves segment s, and then does its columns [oa, ob) (reading source
// positions [lo, hi]). Whether it does is the segment's, not the part's: a product split over
// threads cuts segments where the threads' shares meet, and each column must come out the same
// wherever that is. A part's positions [K - 1, N) are then inside the source too.
__attribute__((target("avx512f"), noinline)) bool banded_part(const TapProduct& g, const Segment& s, int64_t oa,
                                                              int64_t ob, int64_t lo, int64_t hi,
                                                              LiveChannels<v16>& channels) {
    const int64_t k_n = g.kernel, cols = s.cols;
    if (g.transposed || g.stride != 1 || g.dilation != 1 || (k_n != 3 && k_n != 5) || cols < k_n || cols > 16)
        return false;
    // The whole segment's positions [K - 1, cols) (source positions from delta) in the source.
    if (std::max<int64_t>(0, -s.delta) > k_n - 1 || std::min<int64_t>(s.src_len - 1 - s.delta, cols + k_n - 2) < cols - 1)
        return false;
    const int64_t n = ob - oa, u_lo = std::max<int64_t>(0, -lo), u_hi = std::min<int64_t>(hi, s.src_len - 1) - lo;
    const Live live = channels.scan(s, lo, hi);
    if (k_n == 3)
        banded_dispatch<3>(n, g, s, lo, u_lo, u_hi, live, oa, std::make_integer_sequence<int64_t, 16>{});
    else
        banded_dispatch<5>(n, g, s, lo, u_lo, u_hi, live, oa, std::make_integer_sequence<int64_t, 16>{});
    return true;
}

template <class V>
void narrow_columns(const TapProduct& g, const Segment* segs, int64_t n_segs, int64_t c0, int64_t c1) {
    constexpr bool avx512 = NarrowShape<V>::lanes == 16;
    // Per-thread scratch, kept between calls; bound once (in a shared library every access to a
    // thread_local is a call to __tls_get_addr).
    thread_local UninitVector<float> padded_scratch;
    UninitVector<float>& padded = padded_scratch;
    LiveChannels<V> channels(g);
    const int64_t k_n = g.kernel, step = g.transposed ? 1 : g.stride;
    const int64_t tap = g.transposed ? -g.dilation : g.dilation;
    for_each_segment_part(segs, n_segs, c0, c1, [&](const Segment& s, int64_t oa, int64_t ob) {
        // Source positions the columns [oa, ob) read: i = o * step + shift + k * tap.
        const int64_t shift = g.transposed ? -s.delta : s.delta;
        const int64_t lo = oa * step + shift + std::min<int64_t>(0, (k_n - 1) * tap);
        const int64_t hi = (ob - 1) * step + shift + std::max<int64_t>(0, (k_n - 1) * tap);
        if constexpr (avx512)
            if (banded_part(g, s, oa, ob, lo, hi, channels)) return;
        const float* src = s.src;
        int64_t row_len = s.src_len, origin = 0;
        Live live;
        if (lo < 0 || hi >= s.src_len) {
            row_len = hi - lo + 1;
            origin = -lo;
            if constexpr (avx512)
                src = padded_source_avx512(g, s, lo, row_len, padded, channels.marks());
            else
                src = padded_source_avx2(g, s, lo, row_len, padded, channels.marks());
            live = channels.marked();
        } else {
            live = channels.scan(s, lo, hi);
        }
        // Tiles of at most pair_cols columns, as even as possible; up to one_cols for a single
        // panel of rows (as many accumulators, more chains of multiply-adds in flight).
        constexpr int64_t L = NarrowShape<V>::lanes, one = NarrowShape<V>::one_cols;
        const int64_t cols = g.a->rows <= L ? one : NarrowShape<V>::pair_cols;
        const int64_t tiles = (ob - oa + cols - 1) / cols;
        for (int64_t t = 0, o = oa; t < tiles; ++t) {
            const int64_t n = (ob - o) / (tiles - t);
            const float* first = src + origin + o * step + shift;
            if (step == 1)
                narrow_dispatch<V, true>(n, g, first, row_len, tap, live, s, o, std::make_integer_sequence<int64_t, one>{});
            else
                narrow_dispatch<V, false>(n, g, first, row_len, tap, live, s, o, std::make_integer_sequence<int64_t, one>{});
            o += n;
        }
    });
}

// --- Pooled cotangents (pooled_tap_product) ----------------------------------------------------
// The active windows of one sample (argmax present, gate on) sorted by argmax t, in order of
// t mod dilation, then t / dilation, then filter: the windows that reach input position i are
// then one run, those whose t = i + pad - k * dilation for a tap k, and tap k is
// (i + pad - t) / dilation. Per window: A's row o * K - t / dilation (in floats, or in wide
// panel rows of L floats), to which position i adds (i + pad) / dilation, and the window's
// values' offset in hT (the rows' values of window oj side by side at oj * stride).
struct PooledWindows {
    std::vector<int32_t> count;   // per sort key, then the keys' first slots
    std::vector<int32_t> key;     // per active window
    std::vector<int32_t> active;  // o * windows + w of the active windows, in graph order
    std::vector<int32_t> row;     // per active window: o * K - t / dilation
    std::vector<int32_t> a_row;   // per sorted window
    std::vector<int32_t> value;
    std::vector<int32_t> first, last, shift;  // per position: the run of windows, and its A offset
};

// The sort (a counting sort by key), A's offsets in units of `scale` floats.
inline void pooled_windows(const TapProduct& g, const PooledRows& p, PooledWindows& wd, int32_t scale,
                           int64_t stride) {
    const int64_t k_n = g.kernel, dil = g.dilation, len = g.ldd, windows = p.windows;
    const int64_t filters = g.channels, values = filters * windows;
    wd.active.resize(static_cast<size_t>(values));
    wd.key.resize(static_cast<size_t>(values));
    wd.row.resize(static_cast<size_t>(values));
    int64_t active = 0, t_max = -1;
    for (int64_t o = 0; o < filters; ++o)
        for (int64_t oj = o * windows; oj < (o + 1) * windows; ++oj) {
            const int64_t at = p.arg[oj];
            if (at < 0 || (p.gate && !(p.gate[oj] > 0.f))) continue;
            wd.active[active] = static_cast<int32_t>(oj);
            wd.key[active] = static_cast<int32_t>(at);
            wd.row[active++] = static_cast<int32_t>(o * k_n);
            t_max = std::max(t_max, at);
        }
    // Without dilation the key is t: no divisions, which cost more than the rest of the sort.
    const int64_t per = t_max / dil + 1, keys = dil * per;
    if (dil > 1)
        for (int64_t q = 0; q < active; ++q) {
            const int32_t at = wd.key[q];
            wd.key[q] = static_cast<int32_t>((at % dil) * per + at / dil);
            wd.row[q] -= static_cast<int32_t>(at / dil);
        }
    else
        for (int64_t q = 0; q < active; ++q) wd.row[q] -= wd.key[q];
    wd.count.assign(static_cast<size_t>(keys + 1), 0);
    for (int64_t q = 0; q < active; ++q) ++wd.count[static_cast<size_t>(wd.key[q] + 1)];
    for (int64_t k = 0; k < keys; ++k) wd.count[k + 1] += wd.count[k];
    wd.a_row.resize(static_cast<size_t>(active));
    wd.value.resize(static_cast<size_t>(active));
    for (int64_t q = 0; q < active; ++q) {
        const int32_t slot = wd.count[static_cast<size_t>(wd.key[q])]++;
        wd.a_row[slot] = wd.row[q] * scale;
        wd.value[slot] = static_cast<int32_t>(wd.active[q] * stride);
    }
    // count[key] is now the end of key's run: position i reads the keys of residue
    // (i + pad) mod dilation, t / dilation from (i + pad) / dilation - (K - 1) to (i + pad) / dilation.
    wd.first.resize(static_cast<size_t>(len));
    wd.last.resize(static_cast<size_t>(len));
    wd.shift.resize(static_cast<size_t>(len));
    for (int64_t i = 0; i < len; ++i) {
        const int64_t ip = i + p.pad, quo = dil > 1 ? ip / dil : ip, base = dil > 1 ? (ip - quo * dil) * per : 0;
        const int64_t hi = std::min(quo, per - 1), lo = std::max<int64_t>(0, quo - (k_n - 1));
        wd.first[i] = lo > hi ? 0 : (base + lo == 0 ? 0 : wd.count[static_cast<size_t>(base + lo - 1)]);
        wd.last[i] = lo > hi ? 0 : wd.count[static_cast<size_t>(base + hi)];
        wd.shift[i] = static_cast<int32_t>(quo * scale);
    }
}

// Per vector width: accumulators a tile may hold (32 registers on AVX-512, 16 on AVX2), and
// the input channels up to which the rows go in the lanes (four partial sums per channel).
template <class V>
struct PooledShape {
    static constexpr int64_t lanes = NarrowShape<V>::lanes;
    static constexpr int64_t accumulators = lanes == 16 ? 16 : 12;
    static constexpr int64_t few = accumulators / 4;
};

// One tile of R rows (hT + its first row): for every position i, acc[r][panel] = sum over i's
// windows of A's panel vector times row r's value of the window (a broadcast: the rows of a
// window lie side by side in hT), into t[(r * NC + panel) * len + i].
template <class V, int64_t NC, int64_t R, size_t... I>
TSVIZ_INLINE void pooled_tile_sums(const float* a0, int64_t panel_stride, const PooledWindows& wd, const float* h,
                                   V* t, int64_t len, std::index_sequence<I...>) {
    const int32_t* a_row = wd.a_row.data();
    const int32_t* value = wd.value.data();
    for (int64_t i = 0; i < len; ++i) {
        Regs<V> acc{};
        const float* ai = a0 + wd.shift[i];
        for (int32_t e = wd.first[i]; e < wd.last[i]; ++e) {
            const float* ap = ai + a_row[e];
            const float* hp = h + value[e];
            V av[NC];
            for (int64_t c = 0; c < NC; ++c) std::memcpy(&av[c], ap + c * panel_stride, sizeof(V));
            ((reg<I>(acc) += hp[I / NC] * av[I % NC]), ...);
        }
        ((t[static_cast<int64_t>(I) * len + i] = reg<I>(acc)), ...);
    }
}
// Tiles of up to accumulators / NC rows, the last one as many as are left.
template <class V, int64_t NC>
TSVIZ_INLINE void pooled_tile(int64_t rows, const float* a0, int64_t panel_stride, const PooledWindows& wd,
                              const float* h, V* t, int64_t len) {
    auto run = [&](auto r) __attribute__((always_inline)) {
        constexpr int64_t R = decltype(r)::value;
        if constexpr (NC * R <= PooledShape<V>::accumulators)
            pooled_tile_sums<V, NC, R>(a0, panel_stride, wd, h, t, len, std::make_index_sequence<NC * R>{});
    };
    switch (rows) {
        case 1: return run(std::integral_constant<int64_t, 1>{});
        case 2: return run(std::integral_constant<int64_t, 2>{});
        case 3: return run(std::integral_constant<int64_t, 3>{});
        case 4: return run(std::integral_constant<int64_t, 4>{});
        case 5: return run(std::integral_constant<int64_t, 5>{});
        case 6: return run(std::integral_constant<int64_t, 6>{});
        case 7: return run(std::integral_constant<int64_t, 7>{});
        case 8: return run(std::integral_constant<int64_t, 8>{});
        case 9: return run(std::integral_constant<int64_t, 9>{});
        case 10: return run(std::integral_constant<int64_t, 10>{});
        case 11: return run(std::integral_constant<int64_t, 11>{});
        case 12: return run(std::integral_constant<int64_t, 12>{});
        case 13: return run(std::integral_constant<int64_t, 13>{});
        case 14: return run(std::integral_constant<int64_t, 14>{});
        case 15: return run(std::integral_constant<int64_t, 15>{});
        default: return run(std::integral_constant<int64_t, 16>{});
    }
}

// With few input channels (a first layer's, over one or two) the channel lanes would be mostly
// empty, so the lanes hold L rows: for every position i and channel c < C, acc = sum over i's
// windows of W[o, c, k] (a broadcast) times the L rows' values of the window (a vector of hT),
// in U = 4 interleaved partial sums (C chains alone would wait on the multiply-add latency),
// added in a fixed order. Into t[c * len + i], a vector of L rows each.
template <class V, int64_t C, size_t... I>
TSVIZ_INLINE void pooled_rows_sums(const float* w, int64_t depth, const PooledWindows& wd, const float* h, V* t,
                                   int64_t len, std::index_sequence<I...>) {
    constexpr int64_t U = 4;
    const int32_t* a_row = wd.a_row.data();
    const int32_t* value = wd.value.data();
    for (int64_t i = 0; i < len; ++i) {
        Regs<V> acc{};
        const float* wi = w + wd.shift[i];
        const int32_t last = wd.last[i];
        int32_t e = wd.first[i];
        auto step = [&](int32_t at, auto u) __attribute__((always_inline)) {
            V hv;
            std::memcpy(&hv, h + value[at], sizeof hv);
            const float* wp = wi + a_row[at];
            ((static_cast<int64_t>(I) % U == decltype(u)::value
                  ? (void)(reg<I>(acc) += wp[static_cast<int64_t>(I) / U * depth] * hv)
                  : (void)0),
             ...);
        };
        for (; e + U <= last; e += U) {
            step(e, std::integral_constant<int64_t, 0>{});
            step(e + 1, std::integral_constant<int64_t, 1>{});
            step(e + 2, std::integral_constant<int64_t, 2>{});
            step(e + 3, std::integral_constant<int64_t, 3>{});
        }
        if (e < last) step(e++, std::integral_constant<int64_t, 0>{});
        if (e < last) step(e++, std::integral_constant<int64_t, 1>{});
        if (e < last) step(e++, std::integral_constant<int64_t, 2>{});
        // Channel c's sum: (p0 + p1) + (p2 + p3).
        ((static_cast<int64_t>(I) % U == 0
              ? (void)(t[static_cast<int64_t>(I) / U * len + i] =
                           (reg<I>(acc) + reg<(I + 1) % 16>(acc)) + (reg<(I + 2) % 16>(acc) + reg<(I + 3) % 16>(acc)))
              : (void)0),
         ...);
    }
}
template <class V>
TSVIZ_INLINE void pooled_rows(int64_t channels, const float* w, int64_t depth, const PooledWindows& wd,
                              const float* h, V* t, int64_t len) {
    auto run = [&](auto c) __attribute__((always_inline)) {
        constexpr int64_t C = decltype(c)::value;
        if constexpr (C <= PooledShape<V>::few)
            pooled_rows_sums<V, C>(w, depth, wd, h, t, len, std::make_index_sequence<C * 4>{});
    };
    switch (channels) {
        case 1: return run(std::integral_constant<int64_t, 1>{});
        case 2: return run(std::integral_constant<int64_t, 2>{});
        case 3: return run(std::integral_constant<int64_t, 3>{});
        default: return run(std::integral_constant<int64_t, 4>{});
    }
}

// Scratch of one thread for pooled_tap_product, kept between calls.
struct PooledScratch {
    PooledWindows windows;
    UninitVector<float> values;
    UninitVector<float> tiles;  // on a cache line: narrow_store reads the tiles' vectors aligned
    template <class V>
    V* tile(size_t vectors) {
        if (tiles.size() < vectors * (sizeof(V) / sizeof(float))) tiles.resize(vectors * (sizeof(V) / sizeof(float)));
        return reinterpret_cast<V*>(tiles.data());
    }
};
inline PooledScratch& pooled_scratch() {
    thread_local PooledScratch scratch;
    return scratch;
}

// hT from the rows: 16 x 16 blocks transposed in registers (rows past the last read as 0).
__attribute__((target("avx512f"))) void pooled_values_avx512(const PooledRows& p, int64_t values, int64_t stride,
                                                              float* hT) {
    for (int64_t r0 = 0; r0 < p.rows; r0 += 16)
        for (int64_t b = 0; b < values; b += 16) {
            const __mmask16 cols = lanes_inside(b, values);
            __m512 x[16];
            for (int64_t j = 0; j < 16; ++j)
                x[j] = r0 + j < p.rows ? _mm512_maskz_loadu_ps(cols, p.gy + (r0 + j) * p.gy_ld + b) : _mm512_setzero_ps();
            transpose_stage<8>(x);
            transpose_stage<4>(x);
            transpose_stage<2>(x);
            transpose_stage<1>(x);
            for (int64_t j = 0; j < 16 && b + j < values; ++j) _mm512_storeu_ps(hT + (b + j) * stride + r0, x[j]);
        }
}

// The same on AVX2 in 8 x 8 blocks, every row of hT up to its stride (zero past the last row).
// The plain loop's column reads were 14% of a full analysis of 64 windows of the paper's network.
__attribute__((target("avx2"))) void pooled_values_avx2(const PooledRows& p, int64_t values, int64_t stride,
                                                         float* hT) {
    for (int64_t r0 = 0; r0 < stride; r0 += 8)
        for (int64_t b = 0; b < values; b += 8) {
            const __m256i cols = lanes_inside8(b, values);
            __m256 x[8];
            for (int64_t j = 0; j < 8; ++j)
                x[j] = r0 + j < p.rows ? _mm256_maskload_ps(p.gy + (r0 + j) * p.gy_ld + b, cols) : _mm256_setzero_ps();
            transpose8(x);
            for (int64_t j = 0; j < 8 && b + j < values; ++j) _mm256_storeu_ps(hT + (b + j) * stride + r0, x[j]);
        }
}

// The rows-in-lanes tile's t (channel c, position i: 16 rows) into dx: 16 x 16 blocks
// transposed, each row one masked store (or add).
__attribute__((target("avx512f"))) void pooled_rows_store_avx512(const TapProduct& g, const PooledRows& p, int64_t r0,
                                                                  int64_t channels, const v16* t) {
    const int64_t len = g.ldd, rows = std::min<int64_t>(16, p.rows - r0);
    for (int64_t c = 0; c < channels; ++c)
        for (int64_t i0 = 0; i0 < len; i0 += 16) {
            const int64_t n = std::min<int64_t>(16, len - i0);
            const __mmask16 cols = lanes_inside(0, n);
            __m512 x[16];
            for (int64_t j = 0; j < 16; ++j) x[j] = j < n ? reinterpret_cast<const __m512&>(t[c * len + i0 + j]) : _mm512_setzero_ps();
            transpose_stage<8>(x);
            transpose_stage<4>(x);
            transpose_stage<2>(x);
            transpose_stage<1>(x);
            float* dst = p.dx + r0 * p.dx_ld + c * len + i0;
            for (int64_t r = 0; r < rows; ++r, dst += p.dx_ld) {
                const __m512 v = g.accumulate ? _mm512_add_ps(x[r], _mm512_maskz_loadu_ps(cols, dst)) : x[r];
                _mm512_mask_storeu_ps(dst, cols, v);
            }
        }
}

// pooled_rows_store_avx512 without the transposes, for AVX2: dx by a plain loop (the few-row
// case only; a small part of the products it serves).
template <class V>
inline void pooled_rows_store_plain(const TapProduct& g, const PooledRows& p, int64_t r0, int64_t channels, const V* t) {
    constexpr int64_t L = NarrowShape<V>::lanes;
    const int64_t len = g.ldd, rows = std::min<int64_t>(L, p.rows - r0);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < channels; ++c) {
            float* dst = p.dx + (r0 + r) * p.dx_ld + c * len;
            for (int64_t i = 0; i < len; ++i) dst[i] = (g.accumulate ? dst[i] : 0.f) + t[c * len + i][r];
        }
}

// pooled_tap_product on one instruction set: V its vector, Avx512 whether the 16 x 16
// transposes serve hT (else AVX2's 8 x 8) and the rows-in-lanes stores.
template <class V, bool Avx512>
TSVIZ_INLINE void pooled_columns(const TapProduct& g, const PooledRows& p) {
    constexpr int64_t L = NarrowShape<V>::lanes;
    const PackedMatrix& a = *g.a;
    const int64_t channels = a.rows, nc = (channels + L - 1) / L, len = g.ldd, values = g.channels * p.windows;
    const bool few = channels <= PooledShape<V>::few;
    PooledScratch& scratch = pooled_scratch();
    // hT rows in whole 16-row blocks (the AVX-512 transposes write 16 at a time).
    const int64_t stride = (p.rows + 15) / 16 * 16;
    pooled_windows(g, p, scratch.windows, few ? 1 : static_cast<int32_t>(L), stride);
    const PooledWindows& wd = scratch.windows;
    if (scratch.values.size() < static_cast<size_t>(values * stride)) scratch.values.resize(static_cast<size_t>(values * stride));
    float* const hT = scratch.values.data();
    if constexpr (Avx512)
        pooled_values_avx512(p, values, stride, hT);
    else
        pooled_values_avx2(p, values, stride, hT);
    if (few) {
        V* const t = scratch.tile<V>(static_cast<size_t>(channels * len));
        for (int64_t r0 = 0; r0 < p.rows; r0 += L) {
            pooled_rows<V>(channels, a.plain.data(), a.depth, wd, hT + r0, t, len);
            if constexpr (Avx512)
                pooled_rows_store_avx512(g, p, r0, channels, reinterpret_cast<const v16*>(t));
            else
                pooled_rows_store_plain<V>(g, p, r0, channels, t);
        }
        return;
    }
    const int64_t tile = PooledShape<V>::accumulators / nc, panel_stride = a.depth * L;
    V* const t = scratch.tile<V>(static_cast<size_t>(tile * nc * len));
    Segment seg;
    for (int64_t r0 = 0; r0 < p.rows; r0 += tile) {
        const int64_t n = std::min(tile, p.rows - r0);
        switch (nc) {
            case 1: pooled_tile<V, 1>(n, a.wide.data(), panel_stride, wd, hT + r0, t, len); break;
            case 2: pooled_tile<V, 2>(n, a.wide.data(), panel_stride, wd, hT + r0, t, len); break;
            case 3: pooled_tile<V, 3>(n, a.wide.data(), panel_stride, wd, hT + r0, t, len); break;
            default: pooled_tile<V, 4>(n, a.wide.data(), panel_stride, wd, hT + r0, t, len); break;
        }
        // Row r's panel c of positions [i0, i0 + L): vectors of t, transposed into rows of dx.
        for (int64_t r = 0; r < n; ++r) {
            seg.dst = p.dx + (r0 + r) * p.dx_ld;
            for (int64_t c = 0; c < nc; ++c)
                for (int64_t i0 = 0; i0 < len; i0 += L)
                    narrow_store(g, seg, c * L, i0, std::min<int64_t>(L, len - i0), t + (r * nc + c) * len + i0);
        }
    }
}
__attribute__((target("avx512f"), flatten)) void pooled_avx512(const TapProduct& g, const PooledRows& p) {
    pooled_columns<v16, true>(g, p);
}
__attribute__((target("avx2,fma"), flatten)) void pooled_avx2(const TapProduct& g, const PooledRows& p) {
    pooled_columns<v8, false>(g, p);
}

#endif  // TSVIZ_X86_KERNELS

// y = x * W^T for dense layers with few units or few features (docs in gemm.hpp): the dot
// form, with four units sharing each load of x, when the depth is the longer side; the
// axpy form, a row of W^T added per input value, when the output row is.
// (By reference and memcpy throughout: vectors passed by value change the ABI per target.)
template <class V>
inline float horizontal_sum(const V& v) {
    constexpr int64_t w = sizeof(V) / sizeof(float);
    float lanes_[w];
    std::memcpy(lanes_, &v, sizeof v);
    float s = 0.f;
    for (int64_t i = 0; i < w; ++i) s += lanes_[i];
    return s;
}

template <class V>
inline void load_to(V& v, const float* p) {
    std::memcpy(&v, p, sizeof v);
}

template <class V>
void small_product_impl(int64_t n, int64_t u, int64_t d, const float* x, int64_t x_step, const float* wr,
                        const float* wt, const float* bias, bool accumulate, float* y, int64_t y_step) {
    constexpr int64_t w = sizeof(V) / sizeof(float);
    if (d >= u) {
        for (int64_t i = 0; i < n; ++i) {
            const float* xi = x + i * x_step;
            float* yi = y + i * y_step;
            int64_t j = 0;
            for (; j < u; j += 4) {
                const int64_t q_n = std::min<int64_t>(4, u - j);
                const float* w0 = wr + j * d;
                const float* w1 = q_n > 1 ? w0 + d : w0;
                const float* w2 = q_n > 2 ? w0 + 2 * d : w0;
                const float* w3 = q_n > 3 ? w0 + 3 * d : w0;
                V a0{}, a1{}, a2{}, a3{};
                int64_t p = 0;
                for (; p + w <= d; p += w) {
                    V xv, v0, v1, v2, v3;
                    load_to(xv, xi + p);
                    load_to(v0, w0 + p);
                    load_to(v1, w1 + p);
                    load_to(v2, w2 + p);
                    load_to(v3, w3 + p);
                    a0 += xv * v0;
                    a1 += xv * v1;
                    a2 += xv * v2;
                    a3 += xv * v3;
                }
                float sum[4] = {horizontal_sum(a0), horizontal_sum(a1), horizontal_sum(a2), horizontal_sum(a3)};
                for (; p < d; ++p) {
                    sum[0] += xi[p] * w0[p];
                    sum[1] += xi[p] * w1[p];
                    sum[2] += xi[p] * w2[p];
                    sum[3] += xi[p] * w3[p];
                }
                for (int64_t q = 0; q < q_n; ++q) {
                    const float base = accumulate ? yi[j + q] : (bias ? bias[j + q] : 0.f);
                    yi[j + q] = base + sum[q];
                }
            }
        }
        return;
    }
    for (int64_t i = 0; i < n; ++i) {
        const float* xi = x + i * x_step;
        float* yi = y + i * y_step;
        if (!accumulate)
            for (int64_t j = 0; j < u; ++j) yi[j] = bias ? bias[j] : 0.f;
        for (int64_t p = 0; p < d; ++p) {
            const float xp = xi[p];
            const float* row = wt + p * u;
            int64_t j = 0;
            for (; j + w <= u; j += w) {
                V acc, r;
                load_to(acc, yi + j);
                load_to(r, row + j);
                acc += xp * r;
                std::memcpy(yi + j, &acc, sizeof acc);
            }
            for (; j < u; ++j) yi[j] += xp * row[j];
        }
    }
}

#ifdef TSVIZ_X86_KERNELS
// --- Few rows on AVX-512 ----------------------------------------------------------------------
// few_rows without the zero-padded copy of each segment's source: a B vector whose positions
// reach past the source is a masked load (lanes outside read 0, and never fault), and the
// results go out in masked stores. The copy was 40% of the input gradient of a first layer
// over many short cotangent rows (16 channels x 50 positions copied per 8000 multiply-adds).
// The same sums in the same order as few_rows.
constexpr int64_t kMaskedTaps = 64;

// B's NV vectors of one (channel, tap), lanes outside the source read as 0, into registers
// Off, Off + 1, ...
template <size_t Off, size_t... V>
__attribute__((target("avx512f"), always_inline)) inline void load_masked(Regs<v16>& bv, const float* b,
                                                                          const __mmask16* masks,
                                                                          std::index_sequence<V...>) {
    ((reg<Off + V>(bv) = (v16)_mm512_maskz_loadu_ps(masks[V], b + V * 16)), ...);
}
// Row r, vector v of the block (accumulator Off + r * NV + v) to dst (+= when accumulating,
// else + bias), columns below n.
template <int64_t NV, size_t Off, size_t... I>
__attribute__((target("avx512f"), always_inline)) inline void store_block(const TapProduct& g, Regs<v16>& acc, float* d,
                                                                          int64_t row0, int64_t n,
                                                                          std::index_sequence<I...>) {
    auto one = [&](int64_t i, const v16& x) __attribute__((target("avx512f"))) {
        const int64_t r = i / NV, v = i % NV;
        float* p = d + (row0 + r) * g.ldd + v * 16;
        const __mmask16 m = lanes_inside(v * 16, n);  // columns [v * 16, +16) below n
        const __m512 prev = g.accumulate ? _mm512_maskz_loadu_ps(m, p)
                                         : _mm512_set1_ps(g.bias ? g.bias[row0 + r] : 0.f);
        _mm512_mask_storeu_ps(p, m, _mm512_add_ps(prev, (__m512)x));
    };
    (one(static_cast<int64_t>(I), reg<Off + I>(acc)), ...);
}

// S segments at once: one, or two of one shape (columns, source length and offset: the
// cotangent rows of a backward sweep), accumulators [0, R * NV) the first's and
// [R * NV, 2 R * NV) the second's. Two share each (channel, tap)'s weights and double the
// chains of multiply-adds that hide their latency (three rows by two vectors left six). Each
// segment's sums are the same, in the same order, either way.
template <int64_t R, int64_t NV, size_t... I>
__attribute__((target("avx512f"), always_inline)) inline void add_segment_products(Regs<v16>& acc, Regs<v16>& bv,
                                                                                   const float* w, int64_t depth,
                                                                                   std::index_sequence<I...>) {
    constexpr size_t block = static_cast<size_t>(R * NV);  // one segment's accumulators
    ((reg<I>(acc) += w[static_cast<int64_t>(I % block) / NV * depth] * reg<I / block * NV + I % NV>(bv)), ...);
}

template <int64_t R, int64_t NV, int64_t S>
__attribute__((target("avx512f"), noinline)) void few_rows_masked_block(
    const TapProduct& g, const Segment& s0, const Segment& s1, const __mmask16* masks, int64_t first, int64_t o,
    int64_t n, int64_t row0) {
    static_assert(S * R * NV <= 16, "sixteen accumulators");
    const PackedMatrix& a = *g.a;
    const int64_t k_n = g.kernel, depth = a.depth;
    Regs<v16> acc{}, bv;
    const float* ar = a.plain.data() + row0 * depth;
    const int64_t tap = g.transposed ? -g.dilation : g.dilation;
    // Tap by tap, so that its lane masks stay in mask registers over the channels.
    for (int64_t k = 0; k < k_n; ++k) {
        const float* b0 = s0.src + first + k * tap;
        const float* b1 = s1.src + first + k * tap;
        const __mmask16* mk = masks + k * NV;
        for (int64_t c = 0; c < g.channels; ++c, b0 += s0.src_len, b1 += s1.src_len) {
            load_masked<0>(bv, b0, mk, std::make_index_sequence<NV>{});
            if constexpr (S == 2) load_masked<NV>(bv, b1, mk, std::make_index_sequence<NV>{});
            add_segment_products<R, NV>(acc, bv, ar + c * k_n + k, depth, std::make_index_sequence<S * R * NV>{});
        }
    }
    store_block<NV, 0>(g, acc, s0.dst + o, row0, n, std::make_index_sequence<R * NV>{});
    if constexpr (S == 2) store_block<NV, R * NV>(g, acc, s1.dst + o, row0, n, std::make_index_sequence<R * NV>{});
}

// Rows [row0, row0 + count) of S segments: one or two rows by four vectors of columns (wide),
// or up to kFewRows rows by two; two segments together where both fit in sixteen accumulators
// (up to two rows by four vectors, four rows by two), else one after the other.
template <int64_t S>
__attribute__((target("avx512f"), always_inline)) inline void few_rows_masked_dispatch(
    bool wide, int64_t count, const TapProduct& g, const Segment& s0, const Segment& s1, const __mmask16* masks,
    int64_t first, int64_t o, int64_t n, int64_t row0) {
    if (wide) {
        if (count == 1) return few_rows_masked_block<1, 4, S>(g, s0, s1, masks, first, o, n, row0);
        return few_rows_masked_block<2, 4, S>(g, s0, s1, masks, first, o, n, row0);
    }
    switch (count) {
        case 1: return few_rows_masked_block<1, 2, S>(g, s0, s1, masks, first, o, n, row0);
        case 2: return few_rows_masked_block<2, 2, S>(g, s0, s1, masks, first, o, n, row0);
        case 3: return few_rows_masked_block<3, 2, S>(g, s0, s1, masks, first, o, n, row0);
        case 4: return few_rows_masked_block<4, 2, S>(g, s0, s1, masks, first, o, n, row0);
    }
    if constexpr (S == 2) {
        few_rows_masked_dispatch<1>(false, count, g, s0, s0, masks, first, o, n, row0);
        few_rows_masked_dispatch<1>(false, count, g, s1, s1, masks, first, o, n, row0);
    } else {
        switch (count) {
            case 5: return few_rows_masked_block<5, 2, 1>(g, s0, s0, masks, first, o, n, row0);
            case 6: return few_rows_masked_block<6, 2, 1>(g, s0, s0, masks, first, o, n, row0);
            case 7: return few_rows_masked_block<7, 2, 1>(g, s0, s0, masks, first, o, n, row0);
            default: return few_rows_masked_block<8, 2, 1>(g, s0, s0, masks, first, o, n, row0);
        }
    }
}

__attribute__((target("avx512f"))) void few_rows_avx512(const TapProduct& g, const Segment* segs, int64_t n_segs,
                                                        int64_t c0, int64_t c1) {
    const bool wide = g.a->rows <= 2;  // as few_rows: four vectors of columns for one or two rows
    const int64_t nv = wide ? 4 : 2, block = nv * 16, k_n = g.kernel, rows = g.a->rows;
    const int64_t tap = g.transposed ? -g.dilation : g.dilation;
    __mmask16 masks[kMaskedTaps * 4];
    // The segments' parts inside columns [c0, c1), as for_each_segment_part (a lambda would not
    // be compiled for AVX-512); two whole segments of one shape at a time where they follow
    // each other.
    int64_t base = 0;
    for (int64_t si = 0; si < n_segs;) {
        const Segment& s = segs[si];
        const int64_t oa = std::max<int64_t>(c0 - base, 0), ob = std::min<int64_t>(c1 - base, s.cols);
        const Segment* twin = nullptr;
        if (si + 1 < n_segs && oa == 0 && ob == s.cols) {
            const Segment& t = segs[si + 1];
            if (t.cols == s.cols && t.src_len == s.src_len && t.delta == s.delta && c1 - (base + s.cols) >= t.cols)
                twin = &t;
        }
        const int64_t shift = g.transposed ? -s.delta : s.delta;
        for (int64_t o = oa; o < ob; o += block) {
            const int64_t n = std::min(block, ob - o), first = o + shift;
            // Column o + j, tap k reads source position first + j + k * tap.
            for (int64_t k = 0; k < k_n; ++k)
                for (int64_t v = 0; v < nv; ++v) masks[k * nv + v] = lanes_inside(first + k * tap + v * 16, s.src_len);
            for (int64_t r0 = 0; r0 < rows; r0 += kFewRows) {
                const int64_t count = std::min(kFewRows, rows - r0);
                if (twin)
                    few_rows_masked_dispatch<2>(wide, count, g, s, *twin, masks, first, o, n, r0);
                else
                    few_rows_masked_dispatch<1>(wide, count, g, s, s, masks, first, o, n, r0);
            }
        }
        base += s.cols;
        si += 1;
        if (twin) {
            base += twin->cols;
            si += 1;
        }
    }
}

// --- Few rows on AVX2 ---------------------------------------------------------------------
// The one- and two-row products of few_rows_avx512 (the input gradient of a first layer over
// one or two input channels, in every reverse sweep of a univariate net) on AVX2: two rows by
// four vectors of 8 columns in registers, B read by masked loads instead of the zero-padded
// copy of each segment's source that few_rows makes (the copy and its zero fill were over a
// quarter of these products' time). Tap by tap, then channel by channel, as few_rows_avx512.
template <size_t... V>
__attribute__((target("avx2"), always_inline)) inline void load_masked8(Regs<v8>& bv, const float* b,
                                                                        const __m256i* masks,
                                                                        std::index_sequence<V...>) {
    ((reg<V>(bv) = (v8)_mm256_maskload_ps(b + V * 8, masks[V])), ...);
}
template <int64_t NV, size_t Vi, size_t... Rs>
__attribute__((target("avx2,fma"), always_inline)) inline void column_products8(Regs<v8>& acc, const v8& bv,
                                                                             const v8* wr, std::index_sequence<Rs...>) {
    ((reg<Rs * NV + Vi>(acc) += wr[Rs] * bv), ...);
}
template <int64_t R, int64_t NV, size_t... V>
__attribute__((target("avx2,fma"), always_inline)) inline void products_by_column8(Regs<v8>& acc, const float* b,
                                                                                const __m256i* masks, const float* w,
                                                                                int64_t depth, std::index_sequence<V...>) {
    // Each weight broadcast from memory: `v8{} + w` had been a scalar add (0 + w is not w
    // for w = -0, so the compiler may not drop it) and a broadcast between registers, a
    // chain of two operations before the multiply-adds.
    v8 wr[R];
    for (int64_t r = 0; r < R; ++r) wr[r] = (v8)_mm256_broadcast_ss(w + r * depth);
    (column_products8<NV, V>(acc, (v8)_mm256_maskload_ps(b + V * 8, masks[V]), wr, std::make_index_sequence<R>{}), ...);
}
template <int64_t NV, size_t... I>
__attribute__((target("avx2"), always_inline)) inline void store_block8(const TapProduct& g, Regs<v8>& acc, float* d,
                                                                        int64_t row0, int64_t n,
                                                                        std::index_sequence<I...>) {
    auto one = [&](int64_t i, const v8& x) __attribute__((target("avx2"))) {
        const int64_t r = i / NV, v = i % NV;
        float* p = d + (row0 + r) * g.ldd + v * 8;
        const __m256i m = lanes_inside8(v * 8, n);  // columns [v * 8, +8) below n
        const __m256 prev = g.accumulate ? _mm256_maskload_ps(p, m) : _mm256_set1_ps(g.bias ? g.bias[row0 + r] : 0.f);
        store_inside8(p, _mm256_add_ps(prev, (__m256)x), v * 8, n);
    };
    (one(static_cast<int64_t>(I), reg<I>(acc)), ...);
}

// Rows [row0, row0 + R) by NV vectors of columns (R * NV <= 12 accumulators; with NV vectors of
// B and a broadcast beside them where those fit AVX2's 16 registers, else the R broadcasts and
// one vector of B at a time).
template <int64_t R, int64_t NV>
__attribute__((target("avx2,fma"), noinline)) void few_rows_masked_block8(const TapProduct& g, const Segment& s,
                                                                          const __m256i* masks, int64_t first,
                                                                          int64_t o, int64_t n, int64_t row0,
                                                                          const Live& live, const int64_t* off) {
    static_assert(R * NV <= 12, "twelve accumulators");
    const PackedMatrix& a = *g.a;
    const int64_t k_n = g.kernel, depth = a.depth;
    Regs<v8> acc{}, bv;
    const float* ar = a.plain.data() + row0 * depth;
    const int64_t tap = g.transposed ? -g.dilation : g.dilation;
    // Channel c's stretch of the source from bc, times the rows' weights of (c, k) from w.
    auto channel = [&](const float* bc, const __m256i* mk, const float* w) __attribute__((target("avx2,fma"),
                                                                                         always_inline)) {
        if constexpr (R * NV + NV + 1 > 16) {
            // Too many for the registers with every B vector loaded first (GCC kept an
            // accumulator on the stack): the rows' broadcasts first, then each B vector loaded
            // just before its multiply-adds.
            products_by_column8<R, NV>(acc, bc, mk, w, depth, std::make_index_sequence<NV>{});
        } else {
            load_masked8(bv, bc, mk, std::make_index_sequence<NV>{});
            add_products<NV>(acc, bv, w, depth, std::make_index_sequence<R * NV>{});
        }
    };
    if (live.count == g.channels) {  // every channel: the loop of a product without zero rows
        for (int64_t k = 0; k < k_n; ++k) {
            const float* b = s.src + first + k * tap;
            for (int64_t c = 0; c < g.channels; ++c, b += s.src_len) channel(b, masks + k * NV, ar + c * k_n + k);
        }
    } else {
        // Live channel ci's source row at off[2 * ci] from the first channel's, its weights at
        // off[2 * ci + 1] (the multiplies by the row length and by the taps, per channel and
        // tap, had been a third of the loop's instructions).
        for (int64_t k = 0; k < k_n; ++k) {
            const float* b = s.src + first + k * tap;
            const float* w = ar + k;
            const __m256i* mk = masks + k * NV;
            for (int64_t ci = 0; ci < live.count; ++ci) channel(b + off[2 * ci], mk, w + off[2 * ci + 1]);
        }
    }
    store_block8<NV>(g, acc, s.dst + o, row0, n, std::make_index_sequence<R * NV>{});
}

// Columns [c0, c1) of the segments, in blocks of nv vectors: four vectors for one to three
// rows, else two vectors by up to six rows at a time. Each block's lane masks (per tap and
// vector: the source positions it reads inside the source) depend only on where the block
// starts in its source and the source's length: those of a segment's first kKeptBlocks blocks
// are kept and made again only when these change, so the segments of one shape (a sweep's
// cotangent rows, a batch's samples) share them (making them had been 7% of a full analysis
// of the channels-last net, whose 32-column segments are one block each).
template <int64_t nv>
__attribute__((target("avx2,fma"), always_inline)) inline void few_rows_parts8(const TapProduct& g, const Segment* segs,
                                                                               int64_t n_segs, int64_t c0, int64_t c1) {
    constexpr int64_t block = nv * 8, kKeptBlocks = 8;
    const int64_t k_n = g.kernel, tap = g.transposed ? -g.dilation : g.dilation, rows = g.a->rows;
    const int64_t per_block = k_n * nv;
    thread_local UninitVector<float> kept_scratch;  // kept between calls, on a cache line
    UninitVector<float>& kept = kept_scratch;      // bound once: a thread_local access is a call
    thread_local std::vector<int64_t> offsets_scratch;
    std::vector<int64_t>& offsets = offsets_scratch;
    kept.resize(static_cast<size_t>(kKeptBlocks * per_block * 8));
    int64_t kept_first[kKeptBlocks], kept_len[kKeptBlocks];
    std::fill(kept_len, kept_len + kKeptBlocks, int64_t{-1});  // no source has length -1
    __m256i own[kMaskedTaps * nv];
    LiveChannels<v8> channels(g);
    auto part = [&](const Segment& s, int64_t oa, int64_t ob) __attribute__((target("avx2,fma"), always_inline)) {
        const int64_t shift = g.transposed ? -s.delta : s.delta;
        // The source channels that are not zero where the part's columns read: a ReLU's channel
        // that is off along a whole sample adds nothing (two fifths of the residual net's, on
        // real windows: its explanation and forward of 64 windows 9% and 8% faster). Not for
        // one to three rows, where the skipped work is too little to pay for the scan.
        const Live live = rows > 3 ? channels.scan(s, oa + shift + std::min<int64_t>(0, (k_n - 1) * tap),
                                        ob - 1 + shift + std::max<int64_t>(0, (k_n - 1) * tap)) : channels.every();
        const int64_t* off = nullptr;
        if (live.count < g.channels) {
            offsets.resize(static_cast<size_t>(2 * live.count));
            for (int64_t ci = 0; ci < live.count; ++ci) {
                offsets[2 * ci] = live.channel[ci] * s.src_len;
                offsets[2 * ci + 1] = live.channel[ci] * k_n;
            }
            off = offsets.data();
        }
        for (int64_t o = oa, b = 0; o < ob; o += block, ++b) {
            const int64_t n = std::min(block, ob - o), first = o + shift;
            __m256i* masks = own;
            bool make = true;
            if (b < kKeptBlocks) {
                masks = reinterpret_cast<__m256i*>(kept.data()) + b * per_block;
                make = kept_first[b] != first || kept_len[b] != s.src_len;
                kept_first[b] = first;
                kept_len[b] = s.src_len;
            }
            // Column o + j, tap k reads source position first + j + k * tap.
            if (make)
                for (int64_t k = 0; k < k_n; ++k)
                    for (int64_t v = 0; v < nv; ++v) masks[k * nv + v] = lanes_inside8(first + k * tap + v * 8, s.src_len);
            if constexpr (nv == 4) {
                if (rows == 1)
                    few_rows_masked_block8<1, 4>(g, s, masks, first, o, n, 0, live, off);
                else if (rows == 2)
                    few_rows_masked_block8<2, 4>(g, s, masks, first, o, n, 0, live, off);
                else
                    few_rows_masked_block8<3, 4>(g, s, masks, first, o, n, 0, live, off);
            } else {
                // Blocks of rows as even as possible (16 rows: 6 + 5 + 5, not 6 + 6 + 4): fewer
                // than 10 accumulators leave the multiply-adds' latency showing.
                const int64_t blocks = (rows + 5) / 6;
                for (int64_t rb = 0, r0 = 0, count = 0; rb < blocks; ++rb, r0 += count) {
                    count = (rows - r0 + blocks - rb - 1) / (blocks - rb);
                    switch (count) {
                        case 1: few_rows_masked_block8<1, 2>(g, s, masks, first, o, n, r0, live, off); break;
                        case 2: few_rows_masked_block8<2, 2>(g, s, masks, first, o, n, r0, live, off); break;
                        case 3: few_rows_masked_block8<3, 2>(g, s, masks, first, o, n, r0, live, off); break;
                        case 4: few_rows_masked_block8<4, 2>(g, s, masks, first, o, n, r0, live, off); break;
                        case 5: few_rows_masked_block8<5, 2>(g, s, masks, first, o, n, r0, live, off); break;
                        default: few_rows_masked_block8<6, 2>(g, s, masks, first, o, n, r0, live, off); break;
                    }
                }
            }
        }
    };
    int64_t base = 0;  // for_each_segment_part's loop, here to inline `part` with its target
    for (int64_t si = 0; si < n_segs; base += segs[si++].cols) {
        const int64_t oa = std::max<int64_t>(c0 - base, 0), ob = std::min<int64_t>(c1 - base, segs[si].cols);
        if (oa < ob) part(segs[si], oa, ob);
    }
}
__attribute__((target("avx2,fma"), noinline)) void few_rows_avx2(const TapProduct& g, const Segment* segs,
                                                              int64_t n_segs, int64_t c0, int64_t c1) {
    if (g.a->rows <= 3)
        few_rows_parts8<4>(g, segs, n_segs, c0, c1);
    else
        few_rows_parts8<2>(g, segs, n_segs, c0, c1);
}

// Whether few_rows_avx2 serves a product on AVX2: one or two rows (as few_rows_fit), or up
// to kShallowRows rows over a depth (channels times taps) of at most max_depth (three rows at
// any depth: the narrow kernel would leave five of its eight lanes empty), segments of 8
// columns or more on average. In place of the blocked kernel at any depth (it reads B where it
// lies, where the blocked kernel packs it: resnet explain and predict of 64 windows 8-10%
// faster on a Zen 3); in place of the narrow kernel at a depth of at most kShallowDepth, where
// its transposes and stores cost more than its few multiply-adds (the input gradient of a
// strided first layer, depth 8, was a fifth of a full analysis of the channels-last net);
// deeper, the narrow kernel keeps the tangent bands (it skips their zero channels).
constexpr int64_t kShallowRows = 32, kShallowDepth = 16, kAnyDepth = std::numeric_limits<int64_t>::max();
inline bool few_rows8_fit(const TapProduct& g, const Segment* segs, int64_t n_segs, int64_t max_depth = kShallowDepth) {
    if (g.kernel > kMaskedTaps || g.stride != 1 || is_dense_form(g, segs, n_segs)) return false;
    if (g.a->rows <= 2) return true;
    if (g.a->rows > kShallowRows || (g.a->rows > 3 && g.channels * g.kernel > max_depth)) return false;
    int64_t total = 0;
    for (int64_t s = 0; s < n_segs; ++s) total += segs[s].cols;
    return total >= 8 * n_segs;
}

// flatten: the templates are compiled for each target inside these functions.
__attribute__((target("avx512f"), flatten)) void run_avx512(const TapProduct& g, const Segment* s, int64_t n,
                                                               int64_t c0, int64_t c1) {
    if (g.kernel <= kMaskedTaps && few_rows_fit(g, s, n, true) && !is_dense_form(g, s, n))
        return few_rows_avx512(g, s, n, c0, c1);
    run_columns<v16, 8>(g, s, n, c0, c1);
}
__attribute__((target("avx512f"), flatten)) void small_avx512(int64_t n, int64_t u, int64_t d, const float* x,
                                                                 int64_t xs, const float* wr, const float* wt,
                                                                 const float* b, bool acc, float* y, int64_t ys) {
    small_product_impl<v16>(n, u, d, x, xs, wr, wt, b, acc, y, ys);
}
__attribute__((target("avx2,fma"), flatten)) void small_avx2(int64_t n, int64_t u, int64_t d, const float* x,
                                                                int64_t xs, const float* wr, const float* wt,
                                                                const float* b, bool acc, float* y, int64_t ys) {
    small_product_impl<v8>(n, u, d, x, xs, wr, wt, b, acc, y, ys);
}
__attribute__((target("avx2,fma"), flatten)) void run_avx2(const TapProduct& g, const Segment* s, int64_t n,
                                                              int64_t c0, int64_t c1) {
    if (few_rows8_fit(g, s, n, kAnyDepth)) return few_rows_avx2(g, s, n, c0, c1);
    run_columns<v8, 6>(g, s, n, c0, c1);
}
__attribute__((target("avx512f"), flatten)) void narrow_avx512(const TapProduct& g, const Segment* s,
                                                                           int64_t n, int64_t c0, int64_t c1) {
    narrow_columns<v16>(g, s, n, c0, c1);
}
__attribute__((target("avx2,fma"), flatten)) void narrow_avx2(const TapProduct& g, const Segment* s, int64_t n,
                                                                 int64_t c0, int64_t c1) {
    narrow_columns<v8>(g, s, n, c0, c1);
}
#endif
void run_plain(const TapProduct& g, const Segment* s, int64_t n, int64_t c0, int64_t c1) {
    run_columns<v4, 4>(g, s, n, c0, c1);
}
void small_plain(int64_t n, int64_t u, int64_t d, const float* x, int64_t xs, const float* wr, const float* wt,
                 const float* b, bool acc, float* y, int64_t ys) {
    small_product_impl<v4>(n, u, d, x, xs, wr, wt, b, acc, y, ys);
}

// dst = gate > 0 ? dst : 0 over every segment that has a gate.
void apply_gates(const TapProduct& g, const Segment* segs, int64_t n_segs) {
    for (int64_t si = 0; si < n_segs; ++si) {
        const Segment& s = segs[si];
        if (!s.gate) continue;
        for (int64_t r = 0; r < g.a->rows; ++r) {
            float* dst = s.dst + r * g.ldd;
            const float* gate = s.gate + r * g.gate_ld;
            for (int64_t o = 0; o < s.cols; ++o) dst[o] = select(gate[o] > 0.f, dst[o], 0.f);
        }
    }
}

// The product's ReLU (TapProduct::relu, ops::relu) over what the blocked and few-row kernels
// wrote, in place while it is in cache. Their stores stay as they were: a ReLU in the blocked
// kernel's store made the residual net's explanation 3-6% slower, whose products have none
// (its code moved).
TSVIZ_SIMD void apply_relu(const TapProduct& g, const Segment* segs, int64_t n_segs) {
    for (int64_t si = 0; si < n_segs; ++si) {
        const Segment& s = segs[si];
        for (int64_t r = 0; r < g.a->rows; ++r) {
            float* __restrict dst = s.dst + r * g.ldd;
            for (int64_t o = 0; o < s.cols; ++o) dst[o] = relu(dst[o]);
        }
    }
}

}  // namespace

int isa_level() {
#ifdef TSVIZ_X86_KERNELS
    static const int level = [] {
        const int hardware = __builtin_cpu_supports("avx512f")                                   ? 2
                             : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 1
                                                                                                  : 0;
        const char* asked = std::getenv("TSVIZ_KERNELS");
        if (asked && std::strcmp(asked, "plain") == 0) return 0;
        if (asked && std::strcmp(asked, "avx2") == 0) return std::min(hardware, 1);
        return hardware;
    }();
    return level;
#else
    return 0;
#endif
}

int64_t kernel_rows() {
    const int level = isa_level();
    return level == 2 ? 8 : level == 1 ? 6 : 4;
}

PackedMatrix pack_matrix(int64_t rows, int64_t depth, const float* a, int64_t row_stride, int64_t col_stride) {
    PackedMatrix pm;
    pm.rows = rows;
    pm.depth = depth;
    pm.mr = kernel_rows();
    const int64_t panels = (rows + pm.mr - 1) / pm.mr;
    pm.data.assign(static_cast<size_t>(panels * depth * pm.mr), 0.f);
    pm.plain.resize(static_cast<size_t>(rows * depth));
    for (int64_t i = 0; i < rows; ++i)
        for (int64_t p = 0; p < depth; ++p) pm.plain[i * depth + p] = a[i * row_stride + p * col_stride];
    for (int64_t ip = 0; ip < panels; ++ip)
        for (int64_t p = 0; p < depth; ++p)
            for (int64_t i = 0; i < pm.mr && ip * pm.mr + i < rows; ++i)
                pm.data[(ip * depth + p) * pm.mr + i] = a[(ip * pm.mr + i) * row_stride + p * col_stride];
    pm.finite = std::all_of(pm.plain.begin(), pm.plain.end(), [](float v) { return std::isfinite(v); });
    if (isa_level() >= 1) {
        const int64_t w = isa_level() == 2 ? 16 : 8, wide_panels = (rows + w - 1) / w;
        pm.wide_mr = w;
        pm.wide.assign(static_cast<size_t>(wide_panels * depth * w), 0.f);
        for (int64_t i = 0; i < rows; ++i)
            for (int64_t p = 0; p < depth; ++p)
                pm.wide[((i / w) * depth + p) * w + i % w] = a[i * row_stride + p * col_stride];
    }
    return pm;
}

Segment* segment_scratch(int64_t n) {
    thread_local std::vector<Segment> kept;
    if (kept.size() < static_cast<size_t>(n)) kept.resize(static_cast<size_t>(n));
    return kept.data();
}

void tap_product(const TapProduct& g, const Segment* segs, int64_t n_segs) {
    int64_t total = 0;
    for (int64_t s = 0; s < n_segs; ++s) total += segs[s].cols;
    if (total == 0 || g.a->rows == 0) return;
    void (*run)(const TapProduct&, const Segment*, int64_t, int64_t, int64_t) = run_plain;
    bool gated = false;  // whether the kernel applies the segments' gates itself
#ifdef TSVIZ_X86_KERNELS
    if (isa_level() == 2) run = run_avx512;
    if (isa_level() == 1) run = run_avx2;
    if (isa_level() == 2 && narrow_fits(g, segs, n_segs, total, true)) {
        run = narrow_avx512;
        gated = true;
    }
    if (isa_level() == 1 && narrow_fits(g, segs, n_segs, total, false) && !few_rows8_fit(g, segs, n_segs)) {
        run = narrow_avx2;
        gated = true;
    }
#endif
    // Column blocks are independent (every output element is computed by one of them, with
    // the same arithmetic whatever the split, and the kernel is chosen for the whole product),
    // so large products are split over threads, in parts of whole 32-column panels (a multiple
    // of every kernel's NR): one sample of the FCN, 150 columns, splits 96 + 54.
    constexpr int64_t kGrain = 32;
    const double flops = 2.0 * static_cast<double>(g.a->rows) * static_cast<double>(g.a->depth) * total;
    const int64_t parts = flops < 4e6 ? 1 : std::min<int64_t>((total + kGrain - 1) / kGrain, engine_threads());
    if (parts <= 1) {
        run(g, segs, n_segs, 0, total);
    } else {
        const int64_t per = ((total + parts - 1) / parts + kGrain - 1) / kGrain * kGrain;
        parallel_for(parts, [&](int64_t t) {
            const int64_t c0 = t * per, c1 = std::min(total, c0 + per);
            if (c0 < c1) run(g, segs, n_segs, c0, c1);
        });
    }
    // The narrow kernel applies the ReLU and the gates as it stores; the others leave them
    // to these passes.
    if (!gated && g.relu) apply_relu(g, segs, n_segs);
    if (!gated) apply_gates(g, segs, n_segs);
}

bool prefers_small_product(int64_t u, int64_t d) { return std::min(u, d) <= 8; }

void small_product(int64_t n, int64_t u, int64_t d, const float* x, int64_t x_step, const float* w,
                   const float* w_t, const float* bias, bool accumulate, float* y, int64_t y_step) {
    if (n == 0 || u == 0) return;
    auto run = small_plain;
#ifdef TSVIZ_X86_KERNELS
    if (isa_level() == 2) run = small_avx512;
    if (isa_level() == 1) run = small_avx2;
#endif
    // Rows are independent; large batches are split over threads (each row computed the same
    // way whatever the split).
    const double flops = 2.0 * static_cast<double>(n) * static_cast<double>(u) * static_cast<double>(d);
    const int64_t parts = flops < 4e6 ? 1 : std::min<int64_t>(n, engine_threads());
    if (parts <= 1) return run(n, u, d, x, x_step, w, w_t, bias, accumulate, y, y_step);
    const int64_t per = (n + parts - 1) / parts;
    parallel_for(parts, [&](int64_t t) {
        const int64_t i0 = t * per, i1 = std::min(n, i0 + per);
        if (i0 < i1) run(i1 - i0, u, d, x + i0 * x_step, x_step, w, w_t, bias, accumulate, y + i0 * y_step, y_step);
    });
}

void tap_product_reference(const TapProduct& g, const float* a, const Segment* segs, int64_t n_segs) {
    const int64_t m = g.a ? g.a->rows : 0, depth = g.channels * g.kernel;
    for (int64_t si = 0; si < n_segs; ++si) {
        const Segment& s = segs[si];
        for (int64_t o = 0; o < s.cols; ++o)
            for (int64_t r = 0; r < m; ++r) {
                double acc = 0;
                for (int64_t c = 0; c < g.channels; ++c)
                    for (int64_t k = 0; k < g.kernel; ++k) {
                        int64_t i;
                        if (!g.transposed) {
                            i = o * g.stride + s.delta + k * g.dilation;
                        } else {
                            const int64_t q = o - s.delta - k * g.dilation;
                            if (q < 0 || q % g.stride != 0) continue;
                            i = q / g.stride;
                        }
                        if (i < 0 || i >= s.src_len) continue;
                        acc += static_cast<double>(a[r * depth + c * g.kernel + k]) * s.src[c * s.src_len + i];
                    }
                float* dst = s.dst + r * g.ldd + o;
                const float base = g.accumulate ? *dst : (g.bias ? g.bias[r] : 0.f);
                *dst = base + static_cast<float>(acc);
                if (g.relu) *dst = relu(*dst);
                if (s.gate && !(s.gate[r * g.gate_ld + o] > 0.f)) *dst = 0.f;
            }
    }
}


bool pooled_tap_product_serves(const TapProduct& g, const PooledRows& p) {
#ifdef TSVIZ_X86_KERNELS
    // The kernel's offsets are 32-bit: the rows' window values (whole 16-row blocks of every
    // window) and A's panels must stay below 2^31 floats.
    const int64_t values = g.channels * p.windows, stride = (p.rows + 15) / 16 * 16;
    const bool small = values * std::max<int64_t>(stride, 16) < (int64_t{1} << 31) &&
                       (g.a->rows + 15) / 16 * g.a->depth * 16 < (int64_t{1} << 31);
    const int level = isa_level();
    return level >= 1 && g.a->rows <= 32 && g.a->finite && g.a->wide_mr == (level == 2 ? 16 : 8) && !g.bias &&
           g.transposed && small;
#else
    (void)g;
    (void)p;
    return false;
#endif
}

bool pooled_tap_product(const TapProduct& g, const PooledRows& p) {
    if (!pooled_tap_product_serves(g, p)) return false;
#ifdef TSVIZ_X86_KERNELS
    if (p.rows > 0 && isa_level() == 2) pooled_avx512(g, p);
    if (p.rows > 0 && isa_level() == 1) pooled_avx2(g, p);
#endif
    return true;
}

void pooled_tap_product_reference(const TapProduct& g, const float* a, const PooledRows& p) {
    const int64_t channels = g.a->rows, depth = g.channels * g.kernel;
    for (int64_t r = 0; r < p.rows; ++r)
        for (int64_t c = 0; c < channels; ++c)
            for (int64_t i = 0; i < g.ldd; ++i) {
                double acc = 0;
                for (int64_t oj = 0; oj < g.channels * p.windows; ++oj) {
                    const int64_t at = p.arg[oj];
                    if (at < 0 || (p.gate && !(p.gate[oj] > 0.f))) continue;
                    for (int64_t k = 0; k < g.kernel; ++k)
                        if (at - p.pad + k * g.dilation == i)
                            acc += static_cast<double>(a[c * depth + (oj / p.windows) * g.kernel + k]) *
                                   p.gy[r * p.gy_ld + oj];
                }
                float* dst = p.dx + r * p.dx_ld + c * g.ldd + i;
                *dst = (g.accumulate ? *dst : 0.f) + static_cast<float>(acc);
            }
}

}  // namespace tsviz::ops
