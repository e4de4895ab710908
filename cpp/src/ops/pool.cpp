// Pooling over time. ONNX MaxPool (opsets 1-22: kernel_shape, strides, pads, dilations,
// ceil_mode, auto_pad; storage_order must be 0 and the Indices output unused), AveragePool
// (the same plus count_include_pad), GlobalAveragePool, GlobalMaxPool, and ReduceMean /
// ReduceMax over the time axis, lowered to global pooling.
// SPEC.md: max-pooling scans its window with a strict `>`, so the first maximal element wins
// ties (lowest index), as ONNX Runtime and PyTorch do. Its argmax is cached per output element
// (an input position, -1 for a window wholly in padding) and serves the backward and the trace.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TSVIZ_X86_POOL 1
#endif

#include "onnx/lowering.hpp"
#include "ops/fast_math.hpp"
#include "ops/gemm.hpp"
#include "ops/op.hpp"
#include "ops/simd.hpp"
#include "tsviz/error.hpp"

namespace tsviz::ops {

namespace {

Resolved infer_window_pool(const Node& node, const std::vector<Shape>& in) {
    const Shape& x = in.at(0);
    Window w{node.kernel, node.stride, node.dilation, node.pad_begin, node.pad_end};
    resolve_auto_pad(node.auto_pad, x.l, w);
    const int64_t out = window_output_length(x.l, w, node.ceil_mode);
    if (out <= 0)
        throw ShapeError("node '" + node.onnx_node + "' (" + node.onnx_op + "): input length " +
                         std::to_string(x.l) + " is shorter than the pooling window " +
                         std::to_string((node.kernel - 1) * node.dilation + 1));
    Resolved r;
    r.out = {x.c, out};
    r.pad_begin = w.pad_begin;
    r.pad_end = w.pad_end;
    return r;
}

}  // namespace

namespace {

// Calls f(input position, 1 / divisor) for every in-range tap of output position o of average
// pooling, with the divisor the forward uses.
template <class F>
void avg_taps_at(const Node& node, const Resolved& geo, int64_t in_len, int64_t o, F f) {
    const int64_t padded_end = in_len + geo.pad_end;
    int64_t count = 0;
    for (int64_t k = 0; k < node.kernel; ++k) {
        const int64_t i = o * node.stride - geo.pad_begin + k * node.dilation;
        // count_include_pad counts taps in the declared padding, never those that ceil_mode
        // adds beyond it.
        if ((i >= 0 && i < in_len) || (node.count_include_pad && i < padded_end)) ++count;
    }
    if (count == 0) return;
    const float inv = 1.f / static_cast<float>(count);
    for (int64_t k = 0; k < node.kernel; ++k) {
        const int64_t i = o * node.stride - geo.pad_begin + k * node.dilation;
        if (i >= 0 && i < in_len) f(i, inv);
    }
}

// The same for every output position: f(output position, input position, 1 / divisor).
template <class F>
void avg_taps(const Node& node, const Resolved& geo, int64_t in_len, int64_t out_len, F f) {
    for (int64_t o = 0; o < out_len; ++o) avg_taps_at(node, geo, in_len, o, [&](int64_t i, float inv) { f(o, i, inv); });
}

}  // namespace

Resolved infer_max_pool(const Node& node, const std::vector<Shape>& in) {
    Resolved r = infer_window_pool(node, in);
    r.aux_per_sample = r.out.size();
    return r;
}

Resolved infer_avg_pool(const Node& node, const std::vector<Shape>& in) {
    return infer_window_pool(node, in);
}

namespace {

// inner_max_pool (below) for a stride other than 1: S when known at compile time (the stride
// of 2 of most nets, whose loads then vectorise as strided loads instead of lane by lane), 0:
// read from s.
template <int64_t S>
__attribute__((always_inline)) inline void strided_max_pool(const float* __restrict base, float* __restrict y,
                                                            int32_t* __restrict arg, int64_t lo, int64_t hi, int64_t s,
                                                            int64_t d, int64_t kernel, int64_t pb) {
    const int64_t st = S > 0 ? S : s;
    const auto pb32 = static_cast<int32_t>(pb), s32 = static_cast<int32_t>(st);
    if (kernel == 2) {
        const float* __restrict b1 = base + d;
        const auto d32 = static_cast<int32_t>(d);
        for (int64_t o = lo; o < hi; ++o) {
            const float v0 = base[o * st], v1 = b1[o * st];
            const bool better = v1 > v0;
            const int32_t at = static_cast<int32_t>(o) * s32 - pb32;
            y[o] = better ? v1 : v0;
            arg[o] = better ? at + d32 : at;
        }
        return;
    }
    for (int64_t o = lo; o < hi; ++o) {
        y[o] = base[o * st];
        arg[o] = static_cast<int32_t>(o) * s32 - pb32;
    }
    for (int64_t k = 1; k < kernel; ++k) {
        const float* __restrict bk = base + k * d;
        const auto off = static_cast<int32_t>(k * d - pb);
        for (int64_t o = lo; o < hi; ++o) {
            // Masks, not conditionals: GCC keeps these selects as a branch on the data.
            const float v = bk[o * st], cur = y[o];
            const int32_t better = -static_cast<int32_t>(v > cur);
            arg[o] = ((static_cast<int32_t>(o) * s32 + off) & better) | (arg[o] & ~better);
            y[o] = select(v > cur, v, cur);
        }
    }
}

// Max-pooling of windows [lo, hi) that lie inside the input (base = input - pad_begin): strict
// '>' as selects, so that the first maximum wins (SPEC.md), in loops over positions that
// vectorise; the common kernel of 2 in one pass.
__attribute__((always_inline)) inline void inner_max_pool(const float* __restrict base, float* __restrict y, int32_t* __restrict arg, int64_t lo,
                    int64_t hi, int64_t s, int64_t d, int64_t kernel, int64_t pb) {
    if (s == 1) {
        const auto pb32 = static_cast<int32_t>(pb);
        // Unit stride (the "same" pooling of Inception-style branches): contiguous loads and
        // int32 positions, where a run-time stride makes the vectoriser gather lane by lane.
        const auto lo32 = static_cast<int32_t>(lo), hi32 = static_cast<int32_t>(hi);
        const auto d32 = static_cast<int32_t>(d);
        if (kernel == 3) {
            // One pass, the running maximum in registers.
            const float* __restrict b1 = base + d;
            const float* __restrict b2 = base + 2 * d;
            for (int32_t o = lo32; o < hi32; ++o) {
                const float v0 = base[o], v1 = b1[o], v2 = b2[o];
                const bool first = v1 > v0;
                const float m = select(first, v1, v0);
                const int32_t at = first ? o - pb32 + d32 : o - pb32;
                const bool second = v2 > m;
                y[o] = select(second, v2, m);
                arg[o] = second ? o - pb32 + 2 * d32 : at;
            }
            return;
        }
        for (int32_t o = lo32; o < hi32; ++o) {
            y[o] = base[o];
            arg[o] = o - pb32;
        }
        for (int64_t k = 1; k < kernel; ++k) {
            const float* __restrict bk = base + k * d;
            const auto off = static_cast<int32_t>(k * d - pb);
            for (int32_t o = lo32; o < hi32; ++o) {
                const float v = bk[o], cur = y[o];
                const int32_t better = -static_cast<int32_t>(v > cur);
                arg[o] = ((o + off) & better) | (arg[o] & ~better);
                y[o] = select(v > cur, v, cur);
            }
        }
        return;
    }
    // (Kernel 2 is one pass either way, and measured faster with the stride read at run time.)
    if (s == 2 && kernel != 2) return strided_max_pool<2>(base, y, arg, lo, hi, s, d, kernel, pb);
    strided_max_pool<0>(base, y, arg, lo, hi, s, d, kernel, pb);
}

// One window by the general rule: bounds checks and the first-NaN rule. Strict '>' keeps the
// first maximum (SPEC.md, ties: lowest index); the first NaN of a window wins, so that NaN in
// gives NaN out (as PyTorch). For edge windows and every window of a channel with NaN.
inline void max_pool_window(const Node& node, int64_t pb, const float* xc, int64_t x_len, int64_t o, float* yc,
                            int32_t* arg) {
    float best = -std::numeric_limits<float>::infinity();
    int64_t best_at = -1;
    for (int64_t k = 0; k < node.kernel; ++k) {
        const int64_t i = o * node.stride - pb + k * node.dilation;
        if (i < 0 || i >= x_len) continue;
        if (best_at < 0 || xc[i] > best || (std::isnan(xc[i]) && !std::isnan(best))) {
            best = xc[i];
            best_at = i;
        }
    }
    yc[o] = best;
    arg[o] = static_cast<int32_t>(best_at);
}

// The windows [lo, hi) that lie wholly inside an input of x_len (no bounds checks needed).
inline std::pair<int64_t, int64_t> inner_windows(const Node& node, int64_t pb, int64_t x_len, int64_t y_len) {
    const int64_t s = node.stride, reach = (node.kernel - 1) * node.dilation;
    const int64_t lo = std::min(y_len, (pb + s - 1) / s);
    const int64_t last = x_len - 1 - reach + pb < 0 ? -1 : std::min(y_len - 1, (x_len - 1 - reach + pb) / s);
    return {lo, std::max(lo, last + 1)};
}

#ifdef TSVIZ_X86_POOL
// One AVX-512 step of n <= 16 windows of 2 at stride 2: their 2n inputs from p, de-interleaved
// in registers (even_at, odd_at: kEvenLanes, kOddLanes), each window's maximum to y and its
// argmax to arg (first: each window's first tap's index; the second where it is greater, the
// same strict '>' as the loops above), the lanes that read a NaN or-ed into nan (masked-off
// lanes hold 0).
__attribute__((target("avx512f"), always_inline)) inline void max_pool2_step16(const float* p, int64_t n, __m512i first,
                                                                            float* y, int32_t* arg, __m512i even_at,
                                                                            __m512i odd_at, __mmask16& nan) {
    const __m512 l0 = _mm512_maskz_loadu_ps(lanes_inside(0, 2 * n), p);
    const __m512 l1 = _mm512_maskz_loadu_ps(lanes_inside(16, 2 * n), p + 16);
    const __m512 even = _mm512_permutex2var_ps(l0, even_at, l1), odd = _mm512_permutex2var_ps(l0, odd_at, l1);
    nan |= _mm512_cmp_ps_mask(l0, l1, _CMP_UNORD_Q);
    const __mmask16 better = _mm512_cmp_ps_mask(odd, even, _CMP_GT_OQ);
    const __mmask16 m = lanes_inside(0, n);
    _mm512_mask_storeu_ps(y, m, _mm512_mask_blend_ps(better, even, odd));
    _mm512_mask_storeu_epi32(arg, m, _mm512_mask_add_epi32(first, better, first, _mm512_set1_epi32(1)));
}

// Windows of 2 at stride 2 (the most common pooling), o in [lo, hi), on AVX-512: 16 windows
// per step; rows of 12-50 windows end in masked steps instead of scalar loops.
// Returns whether an input it read was NaN (its windows then need the first-NaN rule).
__attribute__((target("avx512f"))) inline bool max_pool2_row_avx512(const float* base, float* y, int32_t* arg,
                                                                  int64_t lo, int64_t hi, int64_t pb) {
    __mmask16 nan = 0;
    const __m512i twice = _mm512_load_si512(kEvenLanes), odd_at = _mm512_load_si512(kOddLanes);
    for (int64_t o = lo; o < hi; o += 16)
        max_pool2_step16(base + 2 * o, std::min<int64_t>(16, hi - o),
                         _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(2 * o - pb)), twice), y + o, arg + o,
                         twice, odd_at, nan);
    return nan != 0;
}

// When the rows tile the tensor (no padding, an even length: 2 * y.l inputs per row), every
// window of every row in one pass, 16 windows per step across row ends; each lane's position
// in its row (for the argmax) is carried from step to step. Returns whether an input was NaN
// (the rows then go again by the first-NaN rule).
__attribute__((target("avx512f"))) bool max_pool2_flat_avx512(const float* x, float* y, int32_t* arg, int64_t total,
                                                              int64_t row) {
    alignas(64) int32_t start[16];
    for (int l = 0; l < 16; ++l) start[l] = static_cast<int32_t>(l % row);
    __m512i pos = _mm512_load_si512(start);  // each lane's window within its row
    const __m512i step = _mm512_set1_epi32(static_cast<int32_t>(16 % row)), len = _mm512_set1_epi32(static_cast<int32_t>(row));
    const __m512i even_at = _mm512_load_si512(kEvenLanes), odd_at = _mm512_load_si512(kOddLanes);
    __mmask16 nan = 0;
    for (int64_t o = 0; o < total; o += 16) {
        max_pool2_step16(x + 2 * o, std::min<int64_t>(16, total - o), _mm512_add_epi32(pos, pos), y + o, arg + o,
                         even_at, odd_at, nan);
        pos = _mm512_add_epi32(pos, step);
        pos = _mm512_mask_sub_epi32(pos, _mm512_cmpge_epi32_mask(pos, len), pos, len);
    }
    return nan != 0;
}

__attribute__((target("avx2"))) inline __m256 pick_lanes(__m256 l0, __m256 l1, bool odd) {
    const __m256 t = odd ? _mm256_shuffle_ps(l0, l1, _MM_SHUFFLE(3, 1, 3, 1)) : _mm256_shuffle_ps(l0, l1, _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), _MM_SHUFFLE(3, 1, 2, 0)));
}

// n windows of two taps from p (n = 8 on a whole step: plain loads and stores; else masked
// loads and the span's stores), first holding each window's first tap's index: their maxima to
// y, their argmaxes to arg, and the lanes with a NaN or-ed into nan.
template <bool whole>
__attribute__((target("avx2"), always_inline)) inline void max_pool2_step8(const float* p, __m256i first, float* y,
                                                                           int32_t* arg, int64_t n, int& nan) {
    const __m256 l0 = whole ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, lanes_inside8(0, 2 * n));
    const __m256 l1 = whole ? _mm256_loadu_ps(p + 8) : _mm256_maskload_ps(p + 8, lanes_inside8(8, 2 * n));
    const __m256 even = pick_lanes(l0, l1, false), odd = pick_lanes(l0, l1, true);
    nan |= _mm256_movemask_ps(_mm256_cmp_ps(l0, l1, _CMP_UNORD_Q));  // masked-off lanes hold 0
    const __m256 better = _mm256_cmp_ps(odd, even, _CMP_GT_OQ);
    const __m256 max = _mm256_blendv_ps(even, odd, better);
    // better is all ones (-1) where the odd tap wins: first - (-1) = first + 1.
    const __m256i at = _mm256_sub_epi32(first, _mm256_castps_si256(better));
    if constexpr (whole) {
        _mm256_storeu_ps(y, max);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(arg), at);
    } else {
        store_span8(y, max, 0, n);
        store_span8(arg, at, 0, n);
    }
}

// max_pool2_flat_avx512 on AVX2: 8 windows per step, their 16 inputs de-interleaved by a
// shuffle and a swap of 64-bit lanes; whole steps without lane masks (the masks of every step
// had been a third of the loop), the last with them.
__attribute__((target("avx2"))) bool max_pool2_flat_avx2(const float* x, float* y, int32_t* arg, int64_t total,
                                                         int64_t row) {
    alignas(32) int32_t start[8];
    for (int l = 0; l < 8; ++l) start[l] = static_cast<int32_t>(l % row);
    __m256i pos = _mm256_load_si256(reinterpret_cast<const __m256i*>(start));
    const __m256i step = _mm256_set1_epi32(static_cast<int32_t>(8 % row)), len = _mm256_set1_epi32(static_cast<int32_t>(row));
    const __m256i below = _mm256_set1_epi32(static_cast<int32_t>(row - 1));
    int nan = 0;
    const int64_t whole = total & ~int64_t{7};
    for (int64_t o = 0; o < whole; o += 8) {
        max_pool2_step8<true>(x + 2 * o, _mm256_add_epi32(pos, pos), y + o, arg + o, 8, nan);
        pos = _mm256_add_epi32(pos, step);
        pos = _mm256_sub_epi32(pos, _mm256_and_si256(_mm256_cmpgt_epi32(pos, below), len));
    }
    if (whole < total) max_pool2_step8<false>(x + 2 * whole, _mm256_add_epi32(pos, pos), y + whole, arg + whole, total - whole, nan);
    return nan != 0;
}

// max_pool2_row_avx512 on AVX2: 8 windows per step, as max_pool2_flat_avx2.
__attribute__((target("avx2"))) bool max_pool2_row_avx2(const float* base, float* y, int32_t* arg, int64_t lo,
                                                        int64_t hi, int64_t pb) {
    int nan = 0;
    const __m256i twice = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    auto first = [&](int64_t o) __attribute__((target("avx2"), always_inline)) {
        return _mm256_add_epi32(_mm256_set1_epi32(static_cast<int32_t>(2 * o - pb)), twice);
    };
    const int64_t whole = hi > lo ? lo + ((hi - lo) & ~int64_t{7}) : lo;
    for (int64_t o = lo; o < whole; o += 8) max_pool2_step8<true>(base + 2 * o, first(o), y + o, arg + o, 8, nan);
    if (whole < hi) max_pool2_step8<false>(base + 2 * whole, first(whole), y + whole, arg + whole, hi - whole, nan);
    return nan != 0;
}

// Every row of at most 16 windows over an input row one longer than they cover (no padding; the
// paper net's 25 positions to 12): one step per row, in one loop over the rows (the windows'
// first taps are the even lanes in every row; the step's masks, the same for every row, are
// made once by the compiler). Returns whether an input it read was NaN.
__attribute__((target("avx512f"))) inline bool max_pool2_short_avx512(const float* x, float* y, int32_t* arg,
                                                                    int64_t rows, int64_t windows, int64_t x_l) {
    const __m512i even_at = _mm512_load_si512(kEvenLanes), odd_at = _mm512_load_si512(kOddLanes);
    __mmask16 nan = 0;
    for (int64_t r = 0; r < rows; ++r, x += x_l, y += windows, arg += windows)
        max_pool2_step16(x, windows, even_at, y, arg, even_at, odd_at, nan);
    return nan != 0;
}

// Every row of the op: one call, not one per row of 12-50 windows; in one pass when the rows
// tile the tensor, else row by row between the padded ends. Flat and Row are one instruction
// set's kernels, inlined into its entry point below (flatten).
template <bool (*Flat)(const float*, float*, int32_t*, int64_t, int64_t),
          bool (*Row)(const float*, float*, int32_t*, int64_t, int64_t, int64_t)>
inline void max_pool2_rows(const ForwardArgs& a) {
    const ConstView& x = a.in[0];
    const View& y = a.out;
    const int64_t pb = a.geo.pad_begin;
    if (pb == 0 && y.l > 0 && x.l == 2 * y.l && !Flat(x.data, y.data, a.aux, y.n * y.c * y.l, y.l)) return;
    const auto [lo, hi] = inner_windows(a.node, pb, x.l, y.l);
    for (int64_t r = 0; r < y.n * y.c; ++r) {
        const float* xc = x.data + r * x.l;
        float* yc = y.data + r * y.l;
        int32_t* arg = a.aux + r * y.l;
        for (int64_t o = 0; o < lo; ++o) max_pool_window(a.node, pb, xc, x.l, o, yc, arg);
        // A window with NaN goes again by the first-NaN rule.
        if (Row(xc - pb, yc, arg, lo, hi, pb))
            for (int64_t o = lo; o < hi; ++o) max_pool_window(a.node, pb, xc, x.l, o, yc, arg);
        for (int64_t o = hi; o < y.l; ++o) max_pool_window(a.node, pb, xc, x.l, o, yc, arg);
    }
}
__attribute__((target("avx512f"), flatten)) void max_pool2_avx512(const ForwardArgs& a) {
    const ConstView& x = a.in[0];
    const View& y = a.out;
    // A NaN anywhere sends every row through the general loop, which has the first-NaN rule.
    if (a.geo.pad_begin == 0 && y.l > 0 && y.l <= 16 && x.l == 2 * y.l + 1 &&
        !max_pool2_short_avx512(x.data, y.data, a.aux, y.n * y.c, y.l, x.l))
        return;
    max_pool2_rows<max_pool2_flat_avx512, max_pool2_row_avx512>(a);
}
__attribute__((target("avx2"), flatten)) void max_pool2_avx2(const ForwardArgs& a) {
    max_pool2_rows<max_pool2_flat_avx2, max_pool2_row_avx2>(a);
}

// Its backward: each window's gradient goes to the tap of its argmax, the other tap gets 0; the
// two taps' values are interleaved back in registers. The kernels of one instruction set:
//   flat:    every window of every row in one pass when the rows tile the tensor (as
//            max_pool2_flat_*), the argmax's tap its parity; total windows from g, gate, arg;
//   windows: windows [lo, hi) of one row, which lie inside the input.
// gate: the forward output when a ReLU is fused in (BackwardArgs::relu_gate), else null. set:
// store instead of add.
__attribute__((target("avx512f"))) inline void max_pool2_backward_flat_avx512(const float* g, const float* gate,
                                                                              const int32_t* arg, float* dst,
                                                                              int64_t total, bool set) {
    const __m512i low = _mm512_load_si512(kInterleaveLow), high = _mm512_load_si512(kInterleaveHigh);
    const __m512i one = _mm512_set1_epi32(1);
    for (int64_t o = 0; o < total; o += 16) {
        const int64_t n = std::min<int64_t>(16, total - o);
        __mmask16 m = lanes_inside(0, n);
        if (gate) m &= _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(m, gate + o), _mm512_setzero_ps(), _CMP_GT_OQ);
        const __m512 v = _mm512_maskz_loadu_ps(m, g + o);
        const __mmask16 second = _mm512_test_epi32_mask(_mm512_maskz_loadu_epi32(m, arg + o), one);
        const __m512 v0 = _mm512_maskz_mov_ps(static_cast<__mmask16>(~second), v), v1 = _mm512_maskz_mov_ps(second, v);
        store_interleaved(dst + 2 * o, v0, v1, lanes_inside(0, 2 * n), lanes_inside(16, 2 * n), set, low, high);
    }
}
// One step of n <= 16 windows whose taps' indices start at `first` (per lane): the pooled
// gradients from g (gated by the pooled values when gate is set) go to the argmax's tap, 0 to
// the other, the 2n values interleaved into dst (low, high: kInterleaveLow, kInterleaveHigh).
__attribute__((target("avx512f"), always_inline)) inline void max_pool2_backward_step16(
    const float* g, const float* gate, const int32_t* arg, float* dst, int64_t n, __m512i first, bool set, __m512i low,
    __m512i high) {
    __mmask16 m = lanes_inside(0, n);
    if (gate) m &= _mm512_cmp_ps_mask(_mm512_maskz_loadu_ps(m, gate), _mm512_setzero_ps(), _CMP_GT_OQ);
    const __m512 v = _mm512_maskz_loadu_ps(m, g);
    const __mmask16 at_first = _mm512_cmpeq_epi32_mask(_mm512_maskz_loadu_epi32(m, arg), first);
    store_interleaved(dst, _mm512_maskz_mov_ps(at_first, v), _mm512_maskz_mov_ps(static_cast<__mmask16>(~at_first), v),
                      lanes_inside(0, 2 * n), lanes_inside(16, 2 * n), set, low, high);
}
__attribute__((target("avx512f"))) inline void max_pool2_backward_windows_avx512(const float* g, const float* gate,
                                                                                 const int32_t* arg, float* dst,
                                                                                 int64_t lo, int64_t hi, int64_t pb,
                                                                                 bool set) {
    const __m512i twice = _mm512_load_si512(kEvenLanes), low = _mm512_load_si512(kInterleaveLow), high = _mm512_load_si512(kInterleaveHigh);
    for (int64_t o = lo; o < hi; o += 16)
        max_pool2_backward_step16(g + o, gate ? gate + o : nullptr, arg + o, dst + 2 * o - pb, std::min<int64_t>(16, hi - o),
                                  _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(2 * o - pb)), twice), set, low,
                                  high);
}

// Every row of at most 16 windows over an input row one longer than they cover (no padding;
// the small nets' pooling of 25 positions to 12): one step per row, in one loop over the rows
// (a row's bookkeeping in max_pool2_backward_rows had cost four times its step); `set` also
// zeroes each row's last position, which no window covers. rows: (sample, channel) rows of
// `windows` windows each.
__attribute__((target("avx512f"))) inline void max_pool2_backward_short_avx512(const float* g, const float* gate,
                                                                               const int32_t* arg, float* dst,
                                                                               int64_t rows, int64_t windows, bool set) {
    const __m512i first = _mm512_load_si512(kEvenLanes), low = _mm512_load_si512(kInterleaveLow),
                  high = _mm512_load_si512(kInterleaveHigh);
    const int64_t x_l = 2 * windows + 1;
    for (int64_t r = 0; r < rows; ++r, g += windows, arg += windows, dst += x_l) {
        max_pool2_backward_step16(g, gate ? gate + r * windows : nullptr, arg, dst, windows, first, set, low, high);
        if (set) dst[2 * windows] = 0.f;
    }
}

// The same on AVX2: 8 windows per step, the two taps' values interleaved back by an unpack and
// a swap of 128-bit halves.
__attribute__((target("avx2"), always_inline)) inline __m256i gated_lanes8(int64_t n, const float* gate) {
    const __m256i m = lanes_inside8(0, n);
    if (!gate) return m;
    return _mm256_and_si256(m, _mm256_castps_si256(_mm256_cmp_ps(_mm256_maskload_ps(gate, m), _mm256_setzero_ps(), _CMP_GT_OQ)));
}
// The pooled gradients of n windows from g (zero where the fused ReLU's gate is off) and their
// argmaxes: whole steps (n = 8) by plain loads and the gate as an and, the last step by masked
// loads (the masks of every step had been a third of the loops below).
template <bool whole>
__attribute__((target("avx2"), always_inline)) inline void pooled_grads8(const float* g, const float* gate,
                                                                         const int32_t* arg, int64_t n, __m256& v,
                                                                         __m256i& at) {
    if constexpr (whole) {
        v = _mm256_loadu_ps(g);
        if (gate) v = _mm256_and_ps(v, _mm256_cmp_ps(_mm256_loadu_ps(gate), _mm256_setzero_ps(), _CMP_GT_OQ));
        at = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(arg));
    } else {
        const __m256i m = gated_lanes8(n, gate);
        v = _mm256_maskload_ps(g, m);
        at = _mm256_maskload_epi32(arg, m);
    }
}
__attribute__((target("avx2"))) inline void max_pool2_backward_flat_avx2(const float* g, const float* gate,
                                                                         const int32_t* arg, float* dst, int64_t total,
                                                                         bool set) {
    const __m256i one = _mm256_set1_epi32(1);
    auto windows = [&](int64_t o, int64_t n, auto whole) __attribute__((target("avx2"), always_inline)) {
        __m256 v;
        __m256i at;
        pooled_grads8<whole>(g + o, gate ? gate + o : nullptr, arg + o, n, v, at);
        const __m256 second = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(at, one), one));
        store_interleaved8(dst + 2 * o, _mm256_andnot_ps(second, v), _mm256_and_ps(second, v),
                           whole ? 0xFFu : lanes_inside(0, 2 * n), whole ? 0xFFu : lanes_inside(8, 2 * n), set);
    };
    const int64_t whole = total & ~int64_t{7};
    for (int64_t o = 0; o < whole; o += 8) windows(o, 8, std::true_type{});
    if (whole < total) windows(whole, total - whole, std::false_type{});
}
__attribute__((target("avx2"))) inline void max_pool2_backward_windows_avx2(const float* g, const float* gate,
                                                                            const int32_t* arg, float* dst, int64_t lo,
                                                                            int64_t hi, int64_t pb, bool set) {
    const __m256i twice = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    auto windows = [&](int64_t o, int64_t n, auto whole) __attribute__((target("avx2"), always_inline)) {
        const __m256i first = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int32_t>(2 * o - pb)), twice);
        __m256 v;
        __m256i at;
        pooled_grads8<whole>(g + o, gate ? gate + o : nullptr, arg + o, n, v, at);
        const __m256 at_first = _mm256_castsi256_ps(_mm256_cmpeq_epi32(at, first));
        store_interleaved8(dst + 2 * o - pb, _mm256_and_ps(at_first, v), _mm256_andnot_ps(at_first, v),
                           whole ? 0xFFu : lanes_inside(0, 2 * n), whole ? 0xFFu : lanes_inside(8, 2 * n), set);
    };
    const int64_t whole = hi > lo ? lo + ((hi - lo) & ~int64_t{7}) : lo;
    for (int64_t o = lo; o < whole; o += 8) windows(o, 8, std::true_type{});
    if (whole < hi) windows(whole, hi - whole, std::false_type{});
}

// Every row and channel through one instruction set's kernels (inlined into its entry point
// below): in one pass when the rows tile the tensor, else the inner windows [lo, hi) of each
// row by the kernel and those that reach into the padding one by one; set also zeroes what no
// inner window covers.
template <void (*Flat)(const float*, const float*, const int32_t*, float*, int64_t, bool),
          void (*Windows)(const float*, const float*, const int32_t*, float*, int64_t, int64_t, int64_t, bool)>
inline void max_pool2_backward_rows(const BackwardArgs& a, int64_t lo, int64_t hi, bool set) {
    const View& gx = a.grad_in[0];
    const ConstView& gy = a.grad_out;
    const int64_t pb = a.geo.pad_begin;
    if (pb == 0 && gx.l == 2 * gy.l && a.rep == 1)
        return Flat(gy.data, a.relu_gate ? a.out.data : nullptr, a.aux, gx.data, gy.n * gy.c * gy.l, set);
    const int64_t inner_lo = std::clamp<int64_t>(2 * lo - pb, 0, gx.l);
    const int64_t inner_hi = std::clamp<int64_t>(2 * hi - pb, inner_lo, gx.l);
    for (int64_t r = 0; r < gy.n; ++r) {
        const int32_t* arg_r = a.aux + (r / a.rep) * gy.c * gy.l;
        const float* pooled = a.relu_gate ? a.out.sample(r / a.rep) : nullptr;
        for (int64_t c = 0; c < gy.c; ++c) {
            const int32_t* arg = arg_r + c * gy.l;
            const float* g = gy.sample(r) + c * gy.l;
            const float* gate = pooled ? pooled + c * gy.l : nullptr;
            float* dst = gx.sample(r) + c * gx.l;
            if (set) {
                std::fill(dst, dst + inner_lo, 0.f);
                std::fill(dst + inner_hi, dst + gx.l, 0.f);
            }
            Windows(g, gate, arg, dst, lo, hi, pb, set);
            // Windows that reach into the padding.
            auto scatter = [&](int64_t o) {
                const int32_t i = arg[o];
                if (i >= 0 && (!gate || gate[o] > 0.f)) dst[i] += g[o];
            };
            for (int64_t o = 0; o < lo; ++o) scatter(o);
            for (int64_t o = hi; o < gy.l; ++o) scatter(o);
        }
    }
}
__attribute__((target("avx512f"), flatten)) void max_pool2_backward_avx512(const BackwardArgs& a, int64_t lo,
                                                                           int64_t hi, bool set) {
    const View& gx = a.grad_in[0];
    const ConstView& gy = a.grad_out;
    if (a.geo.pad_begin == 0 && a.rep == 1 && gy.l <= 16 && gx.l == 2 * gy.l + 1)
        return max_pool2_backward_short_avx512(gy.data, a.relu_gate ? a.out.data : nullptr, a.aux, gx.data,
                                               gy.n * gy.c, gy.l, set);
    max_pool2_backward_rows<max_pool2_backward_flat_avx512, max_pool2_backward_windows_avx512>(a, lo, hi, set);
}
__attribute__((target("avx2"), flatten)) void max_pool2_backward_avx2(const BackwardArgs& a, int64_t lo, int64_t hi,
                                                                      bool set) {
    max_pool2_backward_rows<max_pool2_backward_flat_avx2, max_pool2_backward_windows_avx2>(a, lo, hi, set);
}

// Several cotangent rows per sample (a saliency sweep: BackwardArgs::rep > 1) through windows
// that tile the input (kernel = stride, no dilation). The rows share their sample's argmaxes
// and ReLU gate, so which input position takes which window's gradient is worked out once per
// sample, as a lane mask per W positions of the flat (channel, position) row. Each row is then
// one permute per W positions, with no per-channel bookkeeping: on rows of 12-50 windows the
// bookkeeping of the loops above cost more than moving the values. W = 16 on AVX-512, 8 on
// AVX2.
// Per W input positions (a chunk), fixed by the shapes: the first window any of them belongs
// to (base, flat over channels), each lane's window as an offset from it (idx, below W), and
// which windows from base on exist (the load's lanes).
template <int W>
struct TiledPlan {
    int64_t c = -1, in_len = 0, out_len = 0, kernel = 0, pb = 0;
    std::vector<int32_t> base;
    std::vector<uint8_t> idx;      // W per chunk
    std::vector<uint16_t> load;    // lane bits
    std::vector<uint16_t> lanes;   // per chunk, for one sample: the positions that are argmaxes
    bool ok = false;               // every chunk's windows span at most W

    void build(int64_t c_n, int64_t x_l, int64_t y_l, int64_t k, int64_t pad) {
        c = c_n, in_len = x_l, out_len = y_l, kernel = k, pb = pad;
        const int64_t total = c * in_len, chunks = (total + W - 1) / W, windows = c * out_len;
        base.assign(static_cast<size_t>(chunks), 0);
        idx.assign(static_cast<size_t>(chunks * W), 0);
        load.assign(static_cast<size_t>(chunks), 0);
        lanes.resize(static_cast<size_t>(chunks));
        ok = true;
        int64_t ch = 0, pos = 0, first = -1;  // position p = ch * in_len + pos
        for (int64_t p = 0; p < total; ++p) {
            const int64_t q = p / W;
            if (p % W == 0) first = -1;
            const int64_t o = (pos + pb) / kernel;
            if (o < out_len) {  // else no window covers the position
                const int64_t w = ch * out_len + o;
                if (first < 0) {
                    first = w;
                    base[static_cast<size_t>(q)] = static_cast<int32_t>(w);
                    load[static_cast<size_t>(q)] = static_cast<uint16_t>(lanes_inside(0, std::min<int64_t>(W, windows - w)));
                }
                ok = ok && w - first < W;
                idx[static_cast<size_t>(p)] = static_cast<uint8_t>((w - first) & (W - 1));
            }
            if (++pos == in_len) pos = 0, ++ch;
        }
    }

    // The sample's argmax positions (the lanes), gated by the fused ReLU (its pooled value is
    // positive); without branches, which the gate would mispredict half the time.
    void mark(const int32_t* arg, const float* pooled, int64_t c_n, int64_t x_l, int64_t y_l) {
        std::fill(lanes.begin(), lanes.end(), static_cast<uint16_t>(0));
        for (int64_t ch = 0; ch < c_n; ++ch)
            for (int64_t o = 0; o < y_l; ++o) {
                const int64_t w = ch * y_l + o;
                const unsigned on = static_cast<unsigned>(arg[w] >= 0) & static_cast<unsigned>(!pooled || pooled[w] > 0.f);
                const int64_t p = ch * x_l + std::max(arg[w], 0);
                lanes[static_cast<size_t>(p / W)] = static_cast<uint16_t>(lanes[static_cast<size_t>(p / W)] | (on << (p % W)));
            }
    }
};

// The plans of the last few shapes a thread met (a sweep alternates between its poolings).
template <int W>
TiledPlan<W>& tiled_plan(int64_t c, int64_t x_l, int64_t y_l, int64_t k, int64_t pb) {
    constexpr int kPlans = 4;
    thread_local TiledPlan<W> plans[kPlans];
    thread_local int next = 0;
    for (TiledPlan<W>& p : plans)
        if (p.c == c && p.in_len == x_l && p.out_len == y_l && p.kernel == k && p.pb == pb) return p;
    TiledPlan<W>& p = plans[next];
    next = (next + 1) % kPlans;
    p.build(c, x_l, y_l, k, pb);
    return p;
}

// One cotangent row g into dst through a sample's plan (its lanes marked): chunk q is the
// windows from base[q] (the load's lanes), permuted by idx, kept on the argmax lanes; the last
// chunk stores its `tail` positions only.
__attribute__((target("avx512f"))) inline void tiled_row_avx512(const TiledPlan<16>& plan, const float* g, float* dst,
                                                                int64_t total, bool set) {
    const int64_t chunks = (total + 15) / 16;
    const __mmask16 tail = lanes_inside(0, total - 16 * (chunks - 1));
    // Plain pointers: the vector stores below may alias anything, the vectors' own pointers too.
    const int32_t* base = plan.base.data();
    const uint8_t* idx = plan.idx.data();
    const uint16_t* load = plan.load.data();
    const uint16_t* lanes = plan.lanes.data();
    for (int64_t q = 0; q < chunks; ++q) {
        const __m512 v = _mm512_maskz_loadu_ps(load[q], g + base[q]);
        // maskz: GCC 12 warns that the unmasked form's source may be uninitialised.
        const __m512i at =
            _mm512_maskz_cvtepu8_epi32(0xFFFF, _mm_loadu_si128(reinterpret_cast<const __m128i*>(idx + 16 * q)));
        __m512 d = _mm512_maskz_permutexvar_ps(lanes[q], at, v);
        const __mmask16 m = q + 1 < chunks ? static_cast<__mmask16>(0xFFFF) : tail;
        if (!set) d = _mm512_add_ps(d, _mm512_maskz_loadu_ps(m, dst + 16 * q));
        _mm512_mask_storeu_ps(dst + 16 * q, m, d);
    }
}
__attribute__((target("avx2"))) inline void tiled_row_avx2(const TiledPlan<8>& plan, const float* g, float* dst,
                                                           int64_t total, bool set) {
    const int64_t chunks = (total + 7) / 8;
    const int64_t tail = total - 8 * (chunks - 1);
    // Plain pointers: the vector stores below may alias anything, the vectors' own pointers too.
    const int32_t* base = plan.base.data();
    const uint8_t* idx = plan.idx.data();
    const uint16_t* load = plan.load.data();
    const uint16_t* lanes = plan.lanes.data();
    for (int64_t q = 0; q < chunks; ++q) {
        const __m256 v = _mm256_maskload_ps(g + base[q], bit_lanes8(load[q]));
        const __m256i at = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(idx + 8 * q)));
        __m256 d = _mm256_and_ps(_mm256_permutevar8x32_ps(v, at), _mm256_castsi256_ps(bit_lanes8(lanes[q])));
        const int64_t n = q + 1 < chunks ? 8 : tail;
        if (!set) d = _mm256_add_ps(d, _mm256_maskload_ps(dst + 8 * q, lanes_inside8(0, n)));
        store_span8(dst + 8 * q, d, 0, n);
    }
}

// Every sample's rows: its plan's lanes marked once, then each row by one instruction set's
// Row kernel (inlined into its entry point below).
template <int W, void (*Row)(const TiledPlan<W>&, const float*, float*, int64_t, bool)>
inline void tiled_max_pool_backward_rows(const BackwardArgs& a, TiledPlan<W>& plan, bool set) {
    const View& gx = a.grad_in[0];
    const ConstView& gy = a.grad_out;
    const int64_t windows = gy.c * gy.l;
    for (int64_t s = 0; s * a.rep < gy.n; ++s) {
        plan.mark(a.aux + s * windows, a.relu_gate ? a.out.sample(s) : nullptr, gy.c, gx.l, gy.l);
        const int64_t last = std::min(gy.n, (s + 1) * a.rep);
        for (int64_t r = s * a.rep; r < last; ++r) Row(plan, gy.sample(r), gx.sample(r), gx.c * gx.l, set);
    }
}
__attribute__((target("avx512f"), flatten)) void tiled_max_pool_backward_rows_avx512(const BackwardArgs& a,
                                                                                     TiledPlan<16>& plan, bool set) {
    tiled_max_pool_backward_rows<16, tiled_row_avx512>(a, plan, set);
}
__attribute__((target("avx2"), flatten)) void tiled_max_pool_backward_rows_avx2(const BackwardArgs& a,
                                                                                TiledPlan<8>& plan, bool set) {
    tiled_max_pool_backward_rows<8, tiled_row_avx2>(a, plan, set);
}
#endif

}  // namespace

TSVIZ_SIMD void forward_max_pool(const ForwardArgs& a) {
    const Node& node = a.node;
    const ConstView& x = a.in[0];
    const View& y = a.out;
    const int64_t s = node.stride, d = node.dilation, pb = a.geo.pad_begin;
#ifdef TSVIZ_X86_POOL
    if (s == 2 && node.kernel == 2 && d == 1 && isa_level() == 2) return max_pool2_avx512(a);
    if (s == 2 && node.kernel == 2 && d == 1 && isa_level() == 1) return max_pool2_avx2(a);
#endif
    const auto [inner_lo, inner_hi] = inner_windows(node, pb, x.l, y.l);
    for (int64_t n = 0; n < y.n; ++n) {
        for (int64_t c = 0; c < y.c; ++c) {
            const float* xc = x.sample(n) + c * x.l;
            float* yc = y.sample(n) + c * y.l;
            int32_t* arg = a.aux + (n * y.c + c) * y.l;
            // Windows wholly inside the input skip the bounds checks, and, when the channel
            // holds no NaN (the engine refuses NaN input unless asked), the NaN rule too: a
            // plain strict '>' with selects, which the first-NaN rule would turn into a chain
            // through integer registers.
            int nan_seen = 0;  // an int, not a bool: an OR over ints vectorises
            for (int64_t i = 0; i < x.l; ++i) nan_seen |= static_cast<int>(xc[i] != xc[i]);
            const int64_t lo = nan_seen ? y.l : inner_lo, hi = nan_seen ? y.l : inner_hi;
            for (int64_t o = 0; o < lo; ++o) max_pool_window(node, pb, xc, x.l, o, yc, arg);
            // Inner windows, tap by tap over all positions: the same strict '>' as selects, in
            // loops over positions that vectorise.
            inner_max_pool(xc - pb, yc, arg, lo, hi, s, d, node.kernel, pb);
            for (int64_t o = hi; o < y.l; ++o) max_pool_window(node, pb, xc, x.l, o, yc, arg);
        }
    }
}

namespace {

// Average pooling of windows [lo, hi) that lie inside the input (base = input - pad_begin),
// tap by tap over all positions, in loops that vectorise: y = 0 + x_0 / K + x_1 / K + ..., the
// sums of the general rule (avg_taps) in its order. S: the stride when known at compile time
// (0: read from s).
template <int64_t S>
void inner_avg_pool(const float* __restrict base, float* __restrict y, int64_t lo, int64_t hi, int64_t s,
                    int64_t d, int64_t kernel) {
    const int64_t st = S > 0 ? S : s;
    const float inv = 1.f / static_cast<float>(kernel);
    for (int64_t o = lo; o < hi; ++o) y[o] = 0.f + base[o * st] * inv;
    for (int64_t k = 1; k < kernel; ++k) {
        const float* __restrict bk = base + k * d;
        for (int64_t o = lo; o < hi; ++o) y[o] += bk[o * st] * inv;
    }
}

}  // namespace

void forward_avg_pool(const ForwardArgs& a) {
    const Node& node = a.node;
    const ConstView& x = a.in[0];
    const View& y = a.out;
    const int64_t s = node.stride, d = node.dilation, pb = a.geo.pad_begin;
    // Windows wholly inside the input have every tap counted, whatever count_include_pad says.
    const int64_t reach = (node.kernel - 1) * d;
    const int64_t lo = std::min(y.l, (pb + s - 1) / s);
    const int64_t hi = x.l - 1 - reach + pb < 0 ? lo : std::max(lo, std::min(y.l - 1, (x.l - 1 - reach + pb) / s) + 1);
    for (int64_t n = 0; n < y.n; ++n)
        for (int64_t c = 0; c < y.c; ++c) {
            const float* xc = x.sample(n) + c * x.l;
            float* yc = y.sample(n) + c * y.l;
            // Edge windows by the general rule.
            auto edge = [&](int64_t o) {
                yc[o] = 0.f;
                avg_taps_at(node, a.geo, x.l, o, [&](int64_t i, float inv) { yc[o] += xc[i] * inv; });
            };
            for (int64_t o = 0; o < lo; ++o) edge(o);
            if (s == 1) inner_avg_pool<1>(xc - pb, yc, lo, hi, s, d, node.kernel);
            else if (s == 2) inner_avg_pool<2>(xc - pb, yc, lo, hi, s, d, node.kernel);
            else inner_avg_pool<0>(xc - pb, yc, lo, hi, s, d, node.kernel);
            for (int64_t o = hi; o < y.l; ++o) edge(o);
        }
}

Resolved infer_global_pool(const Node& node, const std::vector<Shape>& in) {
    Resolved r;
    r.out = {in.at(0).c, 1};
    if (node.kind == OpKind::GlobalMaxPool) r.aux_per_sample = in.at(0).c;
    return r;
}

namespace {
#ifdef TSVIZ_X86_POOL
// Eight rows at a time: each row's sum in 8 lanes (whole steps, then its end in one masked
// step whose lanes are the same for every row), the eight totals from one tree of horizontal
// adds (row_totals8), scaled and stored together. AVX2's 8 lanes on AVX-512 too for rows under
// 32 positions (forward-mode bands, mostly 5-20), for which a 16-lane step and the adding of its
// halves cost more than they save. The sums over positions had been a scalar add per element,
// a tenth of a full analysis of the residual net.
// One row's sum in 8 lanes: its end (from `whole`, the lanes `end`) by a masked load, then its
// whole steps added in order.
__attribute__((target("avx2"), always_inline)) inline __m256 row_lanes8(const float* row, int64_t whole, __m256i end) {
    __m256 s = _mm256_maskload_ps(row + whole, end);
    for (int64_t p = 0; p < whole; p += 8) s = _mm256_add_ps(s, _mm256_loadu_ps(row + p));
    return s;
}
__attribute__((target("avx2"))) void row_sums_avx2(const float* x, int64_t rows, int64_t len, float scale,
                                                    float* out) {
    const int64_t whole = len & ~int64_t{7};
    const __m256i end = lanes_inside8(whole, len);
    const __m256 k = _mm256_set1_ps(scale);
    __m256 v[8];
    for (int64_t r0 = 0; r0 < rows; r0 += 8) {
        const int64_t n = std::min<int64_t>(8, rows - r0);
#pragma GCC unroll 8
        for (int64_t i = 0; i < 8; ++i)  // unrolled: v stays in registers
            v[i] = row_lanes8(x + std::min(r0 + i, rows - 1) * len, whole, end);  // past the last: any row
        const __m256 totals = _mm256_mul_ps(row_totals8(v), k);
        store_span8(out + r0, totals, 0, n);
    }
}

// Rows of 32 positions or more on AVX-512 (global average pooling's, the length of the
// series): as row_sums_avx2, each row's sum in 16 lanes, its two halves added (halves_added)
// before the tree. Eight rows at a time keep eight chains of adds in flight. Its loop is
// row_sums_avx2's: a template shared by the two could not inline this lane function, whose
// target (AVX-512) is wider than the template's.
__attribute__((target("avx512f"), always_inline)) inline __m256 row_lanes16(const float* row, int64_t whole,
                                                                            __mmask16 end) {
    __m512 s = _mm512_maskz_loadu_ps(end, row + whole);
    for (int64_t p = 0; p < whole; p += 16) s = _mm512_add_ps(s, _mm512_loadu_ps(row + p));
    return halves_added(s);
}
__attribute__((target("avx512f"))) void row_sums_avx512(const float* x, int64_t rows, int64_t len, float scale,
                                                         float* out) {
    const int64_t whole = len & ~int64_t{15};
    const __mmask16 end = static_cast<__mmask16>((1u << (len - whole)) - 1);
    const __m256 k = _mm256_set1_ps(scale);
    __m256 v[8];
    for (int64_t r0 = 0; r0 < rows; r0 += 8) {
        const int64_t n = std::min<int64_t>(8, rows - r0);
#pragma GCC unroll 8
        for (int64_t i = 0; i < 8; ++i)  // unrolled: v stays in registers
            v[i] = row_lanes16(x + std::min(r0 + i, rows - 1) * len, whole, end);  // past the last: any row
        store_span8(out + r0, _mm256_mul_ps(row_totals8(v), k), 0, n);
    }
}

// band_sums: for each filter, eight tangents' rows summed as row_sums_avx2 sums a row
// (row_lanes8), their totals stored side by side in the filter's row of the grid. (A sum per
// row and then a scalar store per (tangent, filter) into the grid had been a tenth of a full
// analysis of the residual net.)
__attribute__((target("avx2"))) void band_sums_avx2(const float* x, int64_t n, int64_t stride, int64_t f_n,
                                                     int64_t w, float* out, int64_t ld) {
    const int64_t whole = w & ~int64_t{7};
    const __m256i end = lanes_inside8(whole, w);
    __m256 v[8];
    for (int64_t j0 = 0; j0 < n; j0 += 8) {
        const int64_t m = std::min<int64_t>(8, n - j0);
        for (int64_t f = 0; f < f_n; ++f) {
#pragma GCC unroll 8
            for (int64_t i = 0; i < 8; ++i)  // unrolled: v stays in registers; past the last: any tangent
                v[i] = row_lanes8(x + std::min(j0 + i, n - 1) * stride + f * w, whole, end);
            store_span8(out + f * ld + j0, row_totals8(v), 0, m);
        }
    }
}
#endif
}  // namespace

void band_sums_reference(const float* x, int64_t n, int64_t stride, int64_t f_n, int64_t w, float* out,
                         int64_t ld) {
    for (int64_t j = 0; j < n; ++j)
        for (int64_t f = 0; f < f_n; ++f) {
            const float* row = x + j * stride + f * w;
            float sum = 0.f;
            for (int64_t i = 0; i < w; ++i) sum += row[i];
            out[f * ld + j] = sum;
        }
}

void band_sums(const float* x, int64_t n, int64_t stride, int64_t f_n, int64_t w, float* out, int64_t ld) {
#ifdef TSVIZ_X86_POOL
    if (isa_level() >= 1) return band_sums_avx2(x, n, stride, f_n, w, out, ld);
#endif
    band_sums_reference(x, n, stride, f_n, w, out, ld);
}

void row_sums_reference(const float* x, int64_t rows, int64_t len, float scale, float* out) {
    for (int64_t r = 0; r < rows; ++r, x += len) {
        float sum = 0.f;
        for (int64_t i = 0; i < len; ++i) sum += x[i];
        out[r] = sum * scale;
    }
}

void row_sums(const float* x, int64_t rows, int64_t len, float scale, float* out) {
#ifdef TSVIZ_X86_POOL
    if (isa_level() == 2 && len >= 32) return row_sums_avx512(x, rows, len, scale, out);
    if (isa_level() >= 1) return row_sums_avx2(x, rows, len, scale, out);
#endif
    row_sums_reference(x, rows, len, scale, out);
}

// The mean of each row: row_sums, which the forward-mode tangents use too (every row's sum in
// the same order whatever the batch).
void forward_global_avg_pool(const ForwardArgs& a) {
    const ConstView& x = a.in[0];
    row_sums(x.data, x.n * x.c, x.l, 1.f / static_cast<float>(x.l), a.out.data);
}

void forward_global_max_pool(const ForwardArgs& a) {
    const ConstView& x = a.in[0];
    for (int64_t n = 0; n < x.n; ++n)
        for (int64_t c = 0; c < x.c; ++c) {
            const float* xc = x.sample(n) + c * x.l;
            int64_t best_at = 0;
            for (int64_t i = 1; i < x.l; ++i)
                if (xc[i] > xc[best_at] || (std::isnan(xc[i]) && !std::isnan(xc[best_at]))) best_at = i;
            a.out.sample(n)[c] = xc[best_at];
            a.aux[n * x.c + c] = static_cast<int32_t>(best_at);
        }
}

}  // namespace tsviz::ops

namespace tsviz::ops {

namespace {

// Windows that tile the input (kernel = stride = K, no dilation) and lie inside it, o in
// [lo, hi): each input position belongs to one window, so every tap adds a select and the
// loop vectorises, where the scatter to the argmax would go element by element.
// Set: the windows' positions are written (=), not added to.
// gate: the pooled values when a ReLU is fused in (BackwardArgs::relu_gate), else null.
template <int K, bool Set>
TSVIZ_INLINE void tiled_max_pool_backward(const int32_t* __restrict arg, const float* __restrict g,
                                          const float* __restrict gate, float* __restrict dst, int64_t lo,
                                          int64_t hi, int64_t pb) {
    float* __restrict base = dst - pb;
    for (int64_t o = lo; o < hi; ++o) {
        const float v = gate ? select(gate[o] > 0.f, g[o], 0.f) : g[o];
        // The argmax's tap in the window, as a mask per tap (a select, not a branch).
        const int32_t tap = arg[o] - static_cast<int32_t>(o * K - pb);
        for (int k = 0; k < K; ++k) {
            const float add = select(tap == k, v, 0.f);
            base[o * K + k] = Set ? add : base[o * K + k] + add;
        }
    }
}

}  // namespace

// SPEC.md: the gradient goes to the cached argmax only (the first maximum of the window).
TSVIZ_SIMD void backward_max_pool(const BackwardArgs& a) {
    const View& gx = a.grad_in[0];
    if (!gx.data) return;
    const ConstView& gy = a.grad_out;
    const Node& node = a.node;
    const int64_t pb = a.geo.pad_begin, k_n = node.kernel;
    const bool tiled = node.dilation == 1 && node.stride == k_n && (k_n == 2 || k_n == 3);
    // Overwriting: the tiled windows set their positions, the rest of each row is zeroed.
    const bool set = a.overwrite && tiled;
    if (a.overwrite && !tiled) zero_if_overwrite(a);
    // The windows wholly inside the input: o * K - pb >= 0 and o * K - pb + K <= gx.l.
    const int64_t lo = tiled ? std::min(gy.l, (pb + k_n - 1) / k_n) : 0;
    const int64_t hi = tiled ? std::max(lo, std::min(gy.l, (gx.l + pb) / k_n)) : 0;
#ifdef TSVIZ_X86_POOL
    if (tiled && a.rep > 1 && isa_level() == 2) {
        TiledPlan<16>& plan = tiled_plan<16>(gx.c, gx.l, gy.l, k_n, pb);
        if (plan.ok) return tiled_max_pool_backward_rows_avx512(a, plan, set);
    }
    if (tiled && a.rep > 1 && isa_level() == 1) {
        TiledPlan<8>& plan = tiled_plan<8>(gx.c, gx.l, gy.l, k_n, pb);
        if (plan.ok) return tiled_max_pool_backward_rows_avx2(a, plan, set);
    }
    if (tiled && k_n == 2 && isa_level() == 2) return max_pool2_backward_avx512(a, lo, hi, set);
    if (tiled && k_n == 2 && isa_level() == 1) return max_pool2_backward_avx2(a, lo, hi, set);
#endif
    for (int64_t r = 0; r < gy.n; ++r) {
        const int32_t* arg = a.aux + (r / a.rep) * gy.c * gy.l;
        const float* g = gy.sample(r);
        const float* pooled = a.relu_gate ? a.out.sample(r / a.rep) : nullptr;
        float* dst = gx.sample(r);
        for (int64_t c = 0; c < gy.c; ++c) {
            const int32_t* arg_c = arg + c * gy.l;
            const float* g_c = g + c * gy.l;
            const float* gate = pooled ? pooled + c * gy.l : nullptr;
            float* dst_c = dst + c * gx.l;
            auto scatter = [&](int64_t o) {
                const int32_t i = arg_c[o];
                if (i >= 0 && (!gate || gate[o] > 0.f)) dst_c[i] += g_c[o];
            };
            if (set) {
                const int64_t inner_lo = std::clamp<int64_t>(lo * k_n - pb, 0, gx.l);
                std::fill(dst_c, dst_c + inner_lo, 0.f);
                std::fill(dst_c + std::clamp<int64_t>(hi * k_n - pb, inner_lo, gx.l), dst_c + gx.l, 0.f);
            }
            for (int64_t o = 0; o < lo; ++o) scatter(o);
            if (k_n == 2) {
                if (set) tiled_max_pool_backward<2, true>(arg_c, g_c, gate, dst_c, lo, hi, pb);
                else tiled_max_pool_backward<2, false>(arg_c, g_c, gate, dst_c, lo, hi, pb);
            } else if (k_n == 3) {
                if (set) tiled_max_pool_backward<3, true>(arg_c, g_c, gate, dst_c, lo, hi, pb);
                else tiled_max_pool_backward<3, false>(arg_c, g_c, gate, dst_c, lo, hi, pb);
            }
            for (int64_t o = hi; o < gy.l; ++o) scatter(o);
        }
    }
}

// SPEC.md: through max-pooling only the argmax element of each window.
void trace_max_pool(const TraceArgs& a) {
    const int64_t c_n = a.out.c, out_len = a.out.l, in_len = a.in[0].l;
    const int32_t* arg = a.aux + a.sample * c_n * out_len;
    for (int64_t c = 0; c < c_n; ++c)
        for (int64_t o = 0; o < out_len; ++o) {
            if (!a.mask_out[c * out_len + o]) continue;
            const int32_t i = arg[c * out_len + o];
            if (i >= 0) a.mask_in[0][c * in_len + i] = 1;
        }
}


void backward_avg_pool(const BackwardArgs& a) {
    const View& gx = a.grad_in[0];
    if (!gx.data) return;
    const ConstView& gy = a.grad_out;
    for (int64_t r = 0; r < gy.n; ++r)
        for (int64_t c = 0; c < gy.c; ++c) {
            const float* g = gy.sample(r) + c * gy.l;
            float* dst = gx.sample(r) + c * gx.l;
            avg_taps(a.node, a.geo, gx.l, gy.l, [&](int64_t o, int64_t i, float inv) { dst[i] += g[o] * inv; });
        }
}

// SPEC.md: through average pooling, the whole window (taps in the padding dropped).
void trace_avg_pool(const TraceArgs& a) {
    const int64_t in_len = a.in[0].l, out_len = a.out.l;
    for (int64_t c = 0; c < a.out.c; ++c) {
        const uint8_t* m = a.mask_out + c * out_len;
        uint8_t* dst = a.mask_in[0] + c * in_len;
        avg_taps(a.node, a.geo, in_len, out_len, [&](int64_t o, int64_t i, float) {
            if (m[o]) dst[i] = 1;
        });
    }
}

TSVIZ_SIMD void backward_global_avg_pool(const BackwardArgs& a) {
    const View& gx = a.grad_in[0];
    if (!gx.data) return;
    const float inv = 1.f / static_cast<float>(gx.l);
    const bool set = a.fresh(0);  // the first cotangent: written, not added (no zero fill first)
    for (int64_t r = 0; r < gx.n; ++r)
        for (int64_t c = 0; c < gx.c; ++c) {
            const float g = a.grad_out.sample(r)[c] * inv;
            float* __restrict dst = gx.sample(r) + c * gx.l;
            if (set)
                for (int64_t i = 0; i < gx.l; ++i) dst[i] = g;
            else
                for (int64_t i = 0; i < gx.l; ++i) dst[i] += g;
        }
}

// SPEC.md: global pooling, the whole channel.
void trace_global_avg_pool(const TraceArgs& a) {
    const int64_t in_len = a.in[0].l;
    for (int64_t c = 0; c < a.out.c; ++c)
        if (a.mask_out[c]) std::fill(a.mask_in[0] + c * in_len, a.mask_in[0] + (c + 1) * in_len, uint8_t{1});
}

void backward_global_max_pool(const BackwardArgs& a) {
    const View& gx = a.grad_in[0];
    if (!gx.data) return;
    for (int64_t r = 0; r < gx.n; ++r) {
        const int32_t* arg = a.aux + (r / a.rep) * gx.c;
        for (int64_t c = 0; c < gx.c; ++c) gx.sample(r)[c * gx.l + arg[c]] += a.grad_out.sample(r)[c];
    }
}

// Global max-pooling is max-pooling over one window, the whole channel; like max-pooling it
// keeps only the argmax, since the suppressed values had no effect (SPEC.md, the trace).
void trace_global_max_pool(const TraceArgs& a) {
    const int64_t in_len = a.in[0].l;
    const int32_t* arg = a.aux + a.sample * a.out.c;
    for (int64_t c = 0; c < a.out.c; ++c)
        if (a.mask_out[c]) a.mask_in[0][c * in_len + arg[c]] = 1;
}


// Forward mode. Max-pooling passes the tangent of the cached argmax (SPEC.md: the first
// maximum), average pooling the mean of its window's tangents.
Band band_max_pool(const BandArgs& a) { return window_band(a.node, a.geo, a.geo.out.l, a.in_band.at(0)); }
Band band_avg_pool(const BandArgs& a) { return window_band(a.node, a.geo, a.geo.out.l, a.in_band.at(0)); }
Band band_global_avg_pool(const BandArgs& a) { return band_full(a); }
Band band_global_max_pool(const BandArgs& a) { return band_full(a); }

void tangent_max_pool(const TangentArgs& a) {
    const int64_t c_n = a.out.c, out_len = a.out.l, w_in = a.w_in[0], w_out = a.w_out;
    for (int64_t t = 0; t < a.count; ++t)
        for (int64_t c = 0; c < c_n; ++c) {
            const float* src = a.t_in[0] + (t * c_n + c) * w_in;
            float* dst = a.t_out + (t * c_n + c) * w_out;
            const int32_t* arg = a.aux + c * out_len + a.start_out[t];
            for (int64_t j = 0; j < w_out; ++j) {
                const int64_t r = arg[j] - a.start_in[0][t];
                if (arg[j] >= 0 && r >= 0 && r < w_in) dst[j] = src[r];
            }
        }
}

void tangent_avg_pool(const TangentArgs& a) {
    const int64_t c_n = a.out.c, in_len = a.in[0].l, w_in = a.w_in[0], w_out = a.w_out;
    for (int64_t t = 0; t < a.count; ++t) {
        const int64_t s_in = a.start_in[0][t], s_out = a.start_out[t];
        for (int64_t c = 0; c < c_n; ++c) {
            const float* src = a.t_in[0] + (t * c_n + c) * w_in;
            float* dst = a.t_out + (t * c_n + c) * w_out;
            for (int64_t j = 0; j < w_out; ++j)
                avg_taps_at(a.node, a.geo, in_len, s_out + j, [&](int64_t i, float inv) {
                    if (i - s_in >= 0 && i - s_in < w_in) dst[j] += src[i - s_in] * inv;
                });
        }
    }
}

void tangent_global_avg_pool(const TangentArgs& a) {
    // Each tangent's rows (c, w_in) lie one after another, as t_out's (c) do.
    row_sums(a.t_in[0], a.count * a.out.c, a.w_in[0], 1.f / static_cast<float>(a.in[0].l), a.t_out);
}

void tangent_global_max_pool(const TangentArgs& a) {
    const int64_t c_n = a.out.c, w_in = a.w_in[0];
    for (int64_t t = 0; t < a.count; ++t)
        for (int64_t c = 0; c < c_n; ++c) {
            const int64_t r = a.aux[c] - a.start_in[0][t];
            if (r >= 0 && r < w_in) a.t_out[t * c_n + c] = a.t_in[0][(t * c_n + c) * w_in + r];
        }
}

// --- ONNX lowering and registry entries ------------------------------------------------------

namespace {

using namespace ::tsviz::onnx;

void lower_pool(Lowering& im, bool is_max) {
    Tensor x = im.tensor_input(0);
    std::vector<int64_t> kernel;
    if (!im.attr_ints("kernel_shape", kernel)) im.fail_node("attribute 'kernel_shape' is missing");
    const size_t rank = x.axes.size();
    const size_t time_axis = im.bind_spatial(x, kernel);
    Node n = im.make(is_max ? OpKind::MaxPool : OpKind::AvgPool, x);
    const bool dilations = is_max ? im.opset_ >= 10 : im.opset_ >= 19;
    im.window_attrs(n, kernel, time_axis, rank, dilations);
    n.ceil_mode = im.attr_int("ceil_mode", 0) != 0;
    if (is_max) {
        im.expect_attr("storage_order", 0, 0);
        im.refuse_extra_outputs(1);
    } else {
        n.count_include_pad = im.attr_int("count_include_pad", 0) != 0;
    }
    x.node = im.add_node(std::move(n));
    for (auto& a : x.axes) a = im.kind(a);
    im.set_tensor(x);
}

void lower_global_pool(Lowering& im, bool is_max) {
    Tensor x = im.tensor_input(0);
    std::vector<int64_t> ones(x.axes.size() >= 2 ? x.axes.size() - 2 : 0, 1);
    im.bind_spatial(x, ones);
    Node n = im.make(is_max ? OpKind::GlobalMaxPool : OpKind::GlobalAvgPool, x);
    x.node = im.add_node(std::move(n));
    for (size_t i = 2; i < x.axes.size(); ++i) x.axes[i] = Ax::One;
    x.axes[1] = Ax::C;
    im.set_tensor(x);
}

void lower_reduce(Lowering& im, bool is_max) {
    const Value& v = im.input(0);
    if (v.is_const) im.fail_node("reducing a constant is not supported");
    Tensor x = im.tensor_input(0);
    const int64_t rank = static_cast<int64_t>(x.axes.size());
    std::vector<int64_t> axes;
    const bool have_axes = im.axes_arg(1, axes);
    const bool keep = im.attr_int("keepdims", 1) != 0;
    if (!have_axes || axes.empty()) {
        if (im.attr_int("noop_with_empty_axes", 0)) { im.set_tensor(x); return; }
        im.fail_node("reduces over every axis, the batch too; TSViz needs one output per sample");
    }
    std::vector<bool> reduced(static_cast<size_t>(rank), false);
    int time_axis = -1;
    for (int64_t a : axes) {
        const int64_t i = im.norm_axis(a, rank);
        reduced[i] = true;
        const Ax k = im.kind(x.axes[i]);
        if (k == Ax::N || k == Ax::C) im.fail_node("reduces over the " + std::string(k == Ax::N ? "batch" : "channel") + " axis; only reductions over time are supported");
        if (k != Ax::One) {
            if (time_axis >= 0) im.fail_node("reduces over two axes that are not of size 1");
            time_axis = static_cast<int>(i);
        }
    }
    Tensor out;
    if (time_axis < 0) {
        out = x;  // only size-1 axes: a view change
    } else {
        im.bind(x.axes[time_axis], false);
        if (im.kind(x.axes[time_axis]) != Ax::L) im.fail_node("reduces over the channel axis; only reductions over time are supported");
        Node n = im.make(is_max ? OpKind::GlobalMaxPool : OpKind::GlobalAvgPool, x);
        out.node = im.add_node(std::move(n));
        out.axes = x.axes;
        for (auto& a : out.axes) a = im.kind(a);
    }
    std::vector<Ax> axes_out;
    for (int64_t i = 0; i < rank; ++i) {
        if (!reduced[i]) axes_out.push_back(out.axes[i]);
        else if (keep) axes_out.push_back(Ax::One);
    }
    out.axes = axes_out;
    im.set_tensor(out);
}

}  // namespace

OpRules max_pool_rules() {
    OpRules r = TSVIZ_RULES(MaxPool, max_pool, infer_max_pool);
    r.backward_writes_all = true;
    r.onnx = {{"MaxPool", [](Lowering& im) { lower_pool(im, true); }, true}};
    return r;
}

OpRules avg_pool_rules() {
    OpRules r = TSVIZ_RULES(AvgPool, avg_pool, infer_avg_pool);
    r.onnx = {{"AveragePool", [](Lowering& im) { lower_pool(im, false); }, true}};
    return r;
}

// ReduceMean and ReduceMax over time are global poolings too; they may drop the reduced axis,
// so pruning does not pass through them.
OpRules global_avg_pool_rules() {
    OpRules r = TSVIZ_RULES(GlobalAvgPool, global_avg_pool, infer_global_pool);
    r.backward_writes_all = true;
    r.onnx = {{"GlobalAveragePool", [](Lowering& im) { lower_global_pool(im, false); }, true},
              {"ReduceMean", [](Lowering& im) { lower_reduce(im, false); }}};
    return r;
}

OpRules global_max_pool_rules() {
    OpRules r = TSVIZ_RULES(GlobalMaxPool, global_max_pool, infer_global_pool);
    r.onnx = {{"GlobalMaxPool", [](Lowering& im) { lower_global_pool(im, true); }, true},
              {"ReduceMax", [](Lowering& im) { lower_reduce(im, true); }}};
    return r;
}

}  // namespace tsviz::ops
