// Convolution over time. ONNX Conv (opsets 1-22), 1-D, or 2-D with a 1 x k kernel that the
// importer has already reduced to 1-D. Attributes: strides, pads, dilations, auto_pad
// (NOTSET, VALID, SAME_UPPER, SAME_LOWER), group (any divisor of the channel count: ordinary,
// grouped and depthwise). Weights (F, C / group, K), bias (F). A BatchNormalization or a
// per-channel affine that follows is folded into the weights at import (SPEC.md: z^l is the
// output of the last folded op). Padding taps read zeros. Forward, input gradient and tangents
// are matrix products with the tap rules of ops/gemm.hpp, on weights packed at load.
#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TSVIZ_X86_CONV 1
#endif

#include "ops/gemm.hpp"
#include "onnx/lowering.hpp"
#include "ops/op.hpp"
#include "ops/simd.hpp"
#include "tsviz/error.hpp"

namespace tsviz::ops {

Resolved infer_conv(const Node& node, const std::vector<Shape>& in) {
    const Shape& x = in.at(0);
    const int64_t per_group = static_cast<int64_t>(node.weight.size()) / node.channels / node.kernel;
    if (x.c != per_group * node.group)
        throw ShapeError("node '" + node.onnx_node + "' (" + node.onnx_op + "): input has " +
                         std::to_string(x.c) + " channels; the weights expect " +
                         std::to_string(per_group * node.group));
    Window w{node.kernel, node.stride, node.dilation, node.pad_begin, node.pad_end};
    resolve_auto_pad(node.auto_pad, x.l, w);
    const int64_t out = window_output_length(x.l, w, false);
    if (out <= 0)
        throw ShapeError("node '" + node.onnx_node + "' (" + node.onnx_op + "): input length " +
                         std::to_string(x.l) + " is shorter than the kernel's reach " +
                         std::to_string((node.kernel - 1) * node.dilation + 1) + " (padding " +
                         std::to_string(w.pad_begin) + "+" + std::to_string(w.pad_end) + ")");
    Resolved r;
    r.out = {node.channels, out};
    r.pad_begin = w.pad_begin;
    r.pad_end = w.pad_end;
    return r;
}

namespace {

// The tap rule of one group of a convolution: forward reads x[c, o * s - pad + k * d].
TapProduct conv_taps(const Node& node, const PackedMatrix* a, int64_t channels, bool transposed, int64_t ldd) {
    TapProduct p;
    p.a = a;
    p.channels = channels;
    p.kernel = node.kernel;
    p.stride = node.stride;
    p.dilation = node.dilation;
    p.transposed = transposed;
    p.ldd = ldd;
    return p;
}

}  // namespace

void prepare_conv(Node& node) {
    const int64_t groups = node.group, filters_per_group = node.channels / groups;
    const int64_t depth = static_cast<int64_t>(node.weight.size()) / node.channels;  // C / group * K
    const int64_t per_group = depth / node.kernel;
    auto packed = std::make_shared<PackedWeights>();
    std::vector<float> wt(static_cast<size_t>(per_group * filters_per_group * node.kernel));
    for (int64_t g = 0; g < groups; ++g) {
        const float* w = node.weight.data() + g * filters_per_group * depth;
        packed->forward.push_back(pack_matrix(filters_per_group, depth, w, depth, 1));
        // The input gradient's A: (channel c, filter f * K + k) = W[f, c, k].
        for (int64_t c = 0; c < per_group; ++c)
            for (int64_t f = 0; f < filters_per_group; ++f)
                for (int64_t k = 0; k < node.kernel; ++k)
                    wt[(c * filters_per_group + f) * node.kernel + k] = w[(f * per_group + c) * node.kernel + k];
        packed->transposed.push_back(
            pack_matrix(per_group, filters_per_group * node.kernel, wt.data(), filters_per_group * node.kernel, 1));
        if (node.stride > 1) packed->columns.push_back(pack_matrix(depth, filters_per_group, w, 1, depth));
        for (int64_t f = 0; f < filters_per_group; ++f)
            packed->filters.push_back(pack_matrix(per_group, node.kernel, w + f * depth, node.kernel, 1));
    }
    node.packed = std::move(packed);
}

// z = W * x + b for every sample and group: one matrix product per group, the samples side by
// side as column segments.
void forward_conv(const ForwardArgs& a) {
    const Node& node = a.node;
    const ConstView& x = a.in[0];
    const View& y = a.out;
    const int64_t groups = node.group, per_group = x.c / groups, filters_per_group = y.c / groups;
    Segment* segs = segment_scratch(y.n);
    for (int64_t g = 0; g < groups; ++g) {
        for (int64_t n = 0; n < y.n; ++n)
            segs[n] = {x.sample(n) + g * per_group * x.l, x.l, y.l, -a.geo.pad_begin,
                       y.sample(n) + g * filters_per_group * y.l};
        TapProduct p = conv_taps(node, &node.packed->forward[g], per_group, false, y.l);
        p.bias = node.bias.data() + g * filters_per_group;
        p.relu = a.relu;
        tap_product(p, segs, y.n);
    }
}

}  // namespace tsviz::ops

namespace tsviz::ops {

namespace {

// One cotangent row of a strided convolution's input gradient, after the product: tap k of
// channel c adds cols[c * K + k, o] to dx[c, o * s + shift_k]. The taps of one phase
// (shift_k mod s) land on the same positions phase + s * m; their sum over m is contiguous
// (o = m - delta_k). set: dx is written whole (BackwardArgs::overwrite), else added to.
TSVIZ_SIMD void add_phase_sums(const float* cols, int64_t channels, int64_t k_n, int64_t len, int64_t st,
                               const int64_t* tap_phase, const int64_t* tap_delta, float* dx, int64_t dx_l,
                               std::vector<float>& phase_sum, std::vector<const float*>& phase_rows, bool set) {
    // Every phase's sums of a channel, then one pass over dx that writes (or adds) each
    // position once: a phase no tap lands on is 0. At stride 2 that pass interleaves two rows
    // of sums, where a strided add per phase after zeroing dx went element by element.
    const int64_t m_max = (dx_l + st - 1) / st;
    phase_sum.resize(static_cast<size_t>((st + 1) * m_max));
    float* __restrict zeros = phase_sum.data() + st * m_max;
    std::fill(zeros, zeros + m_max, 0.f);
    phase_rows.resize(static_cast<size_t>(st));
    const float** rows = phase_rows.data();
    for (int64_t c = 0; c < channels; ++c) {
        float* __restrict dx_c = dx + c * dx_l;
        for (int64_t phase = 0; phase < st; ++phase) {
            float* __restrict sum = phase_sum.data() + phase * m_max;
            const int64_t m_n = phase < dx_l ? (dx_l - phase + st - 1) / st : 0;  // phase + s * m in [0, dx_l)
            rows[phase] = zeros;
            for (int64_t k = 0; k < k_n; ++k) {
                if (tap_phase[k] != phase) continue;
                const int64_t delta = tap_delta[k];
                const float* __restrict col = cols + (c * k_n + k) * len - delta;
                const int64_t m0 = std::max<int64_t>(0, delta), m1 = std::min(m_n, delta + len);
                if (rows[phase] == zeros) std::fill(sum, sum + m_n, 0.f);
                rows[phase] = sum;
                for (int64_t m = m0; m < m1; ++m) sum[m] += col[m];
            }
        }
        if (st == 2) {
            const float* __restrict r0 = rows[0];
            const float* __restrict r1 = rows[1];
            const int64_t pairs = dx_l / 2;
            if (set)
                for (int64_t m = 0; m < pairs; ++m) dx_c[2 * m] = r0[m], dx_c[2 * m + 1] = r1[m];
            else
                for (int64_t m = 0; m < pairs; ++m) dx_c[2 * m] += r0[m], dx_c[2 * m + 1] += r1[m];
            if (dx_l % 2) dx_c[dx_l - 1] = (set ? 0.f : dx_c[dx_l - 1]) + r0[pairs];
            continue;
        }
        for (int64_t i = 0; i < dx_l; ++i) {
            const float v = rows[i % st][i / st];
            dx_c[i] = set ? v : dx_c[i] + v;
        }
    }
}

// Tap k of a strided convolution adds to input positions o * s + shift_k (shift_k = k * d -
// pad): phase shift_k mod s, positions phase + s * m with m = o + delta_k.
struct TapPhases {
    std::vector<int64_t> phase, delta;
};

// The calling thread's, kept between calls (a call allocates nothing); valid until it asks again.
const TapPhases& tap_phases(const Node& node, int64_t pad) {
    thread_local TapPhases kept;
    std::vector<int64_t>& phase = kept.phase;
    std::vector<int64_t>& delta = kept.delta;
    const int64_t st = node.stride;
    phase.resize(static_cast<size_t>(node.kernel));
    delta.resize(static_cast<size_t>(node.kernel));
    for (int64_t k = 0; k < node.kernel; ++k) {
        const int64_t shift = k * node.dilation - pad;
        phase[k] = ((shift % st) + st) % st;
        delta[k] = (shift - phase[k]) / st;  // exact
    }
    return kept;
}

#ifdef TSVIZ_X86_CONV
// add_phase_sums at stride 2 on AVX-512 (W = 16) and AVX2 (W = 8), for every channel of one
// cotangent row: the two phases' sums of W positions m held in registers, then interleaved
// into 2W positions of dx. The loads are planned once per call (Stride2Plan); each is a masked
// load of one tap's row, whose lanes outside the row read 0 where the loops' bounds skip them.
// Each phase adds its taps in the same order from 0, so the sums are those of add_phase_sums
// bit for bit, but for the sign of a zero (a masked lane adds +0).
template <int W>
struct Stride2Plan {
    struct Load {
        int64_t k, o;  // tap k's row (of cols, or its weight times dz), from column o
        uint16_t lanes;
    };
    std::vector<Load> loads;                    // per block of W m: phase 0's taps, then phase 1's
    std::vector<int64_t> first, split;          // per block: its first load, its first of phase 1
    std::vector<uint16_t> store_lo, store_hi;   // per block: dx's lanes at 2W m and 2W m + W

    // The same read through plain pointers, taken once per call: a kernel's vector stores may
    // alias anything, and the vectors' own pointers would be read again after each of them.
    struct Blocks {
        const Load* loads;
        const int64_t *first, *split;
        const uint16_t *store_lo, *store_hi;
        int64_t count;
    };
    Blocks blocks() const {
        return {loads.data(), first.data(), split.data(), store_lo.data(), store_hi.data(),
                static_cast<int64_t>(split.size())};
    }
};

// The calling thread's, kept between calls; valid until it asks again.
template <int W>
const Stride2Plan<W>& plan_stride2(int64_t k_n, int64_t len, const TapPhases& taps, int64_t dx_l) {
    thread_local Stride2Plan<W> plan;
    const int64_t* tap_phase = taps.phase.data();
    const int64_t* tap_delta = taps.delta.data();
    plan.loads.clear();
    plan.first.clear();
    plan.split.clear();
    plan.store_lo.clear();
    plan.store_hi.clear();
    // The lanes of W positions from p0 that lie in [0, n).
    auto lanes = [](int64_t p0, int64_t n) {
        return static_cast<uint16_t>(lanes_inside(p0, n) & ((1u << W) - 1u));
    };
    const int64_t m_max = (dx_l + 1) / 2;
    for (int64_t m = 0; m < m_max; m += W) {
        plan.first.push_back(static_cast<int64_t>(plan.loads.size()));
        for (int64_t phase = 0; phase < 2; ++phase) {
            if (phase == 1) plan.split.push_back(static_cast<int64_t>(plan.loads.size()));
            for (int64_t k = 0; k < k_n; ++k) {
                const int64_t o = m - tap_delta[k];  // position m of the phase reads column o
                const uint16_t in = lanes(o, len);
                if (tap_phase[k] == phase && in) plan.loads.push_back({k, o, in});
            }
        }
        plan.store_lo.push_back(lanes(2 * m, dx_l));
        plan.store_hi.push_back(lanes(2 * m + W, dx_l));
    }
    plan.first.push_back(static_cast<int64_t>(plan.loads.size()));
    return plan;
}

// One block b of a Stride2Plan: the two phases' sums of its W positions m, each a sum over the
// block's planned loads of src[k * src_ld + o] (times w[k] when Weighted, by multiply-add),
// interleaved into dx[2 W b, + 2 W), stored or (unless set) added. The same sums in the same
// order on both instruction sets.
template <bool Weighted>
__attribute__((target("avx512f"))) inline void phase_block_avx512(const Stride2Plan<16>::Blocks& plan, int64_t b,
                                                                               const float* src, int64_t src_ld,
                                                                               const float* w, float* dx, bool set) {
    const __m512i low = _mm512_load_si512(kInterleaveLow), high = _mm512_load_si512(kInterleaveHigh);
    const Stride2Plan<16>::Load* loads = plan.loads;
    auto phase = [&](int64_t j0, int64_t j1) __attribute__((target("avx512f"), always_inline)) {
        __m512 sum = _mm512_setzero_ps();
        for (int64_t j = j0; j < j1; ++j) {
            const __m512 v = _mm512_maskz_loadu_ps(loads[j].lanes, src + loads[j].k * src_ld + loads[j].o);
            sum = Weighted ? _mm512_fmadd_ps(_mm512_set1_ps(w[loads[j].k]), v, sum) : _mm512_add_ps(sum, v);
        }
        return sum;
    };
    const __m512 s0 = phase(plan.first[b], plan.split[b]), s1 = phase(plan.split[b], plan.first[b + 1]);
    store_interleaved(dx + 32 * b, s0, s1, plan.store_lo[b], plan.store_hi[b], set, low, high);
}
template <bool Weighted>
__attribute__((target("avx2,fma"))) inline void phase_block_avx2(const Stride2Plan<8>::Blocks& plan, int64_t b,
                                                                              const float* src, int64_t src_ld,
                                                                              const float* w, float* dx, bool set) {
    const Stride2Plan<8>::Load* loads = plan.loads;
    auto phase = [&](int64_t j0, int64_t j1) __attribute__((target("avx2,fma"), always_inline)) {
        __m256 sum = _mm256_setzero_ps();
        for (int64_t j = j0; j < j1; ++j) {
            const float* at = src + loads[j].k * src_ld + loads[j].o;  // a whole load plainly
            const __m256 v = loads[j].lanes == 0xFFu ? _mm256_loadu_ps(at) : _mm256_maskload_ps(at, bit_lanes8(loads[j].lanes));
            sum = Weighted ? _mm256_fmadd_ps(_mm256_set1_ps(w[loads[j].k]), v, sum) : _mm256_add_ps(sum, v);
        }
        return sum;
    };
    const __m256 s0 = phase(plan.first[b], plan.split[b]), s1 = phase(plan.split[b], plan.first[b + 1]);
    store_interleaved8(dx + 16 * b, s0, s1, plan.store_lo[b], plan.store_hi[b], set);
}

// A single-phase input gradient at stride 2 spread over dx: dx[phase + 2 m] = from[m] for
// m < len, 16 pairs a step (the pair's other element 0 when setting; left as it is when adding).
__attribute__((target("avx512f"))) void spread_phase2_avx512(const float* from, int64_t len, int64_t phase,
                                                              float* dx, int64_t dx_l, bool set) {
    const __m512i low = _mm512_load_si512(kInterleaveLow), high = _mm512_load_si512(kInterleaveHigh);
    const __m512 zero = _mm512_setzero_ps();
    const __mmask16 mine = set ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>(phase ? 0xAAAA : 0x5555);
    for (int64_t m = 0; 2 * m < dx_l; m += 16) {
        const __m512 v = _mm512_maskz_loadu_ps(lanes_inside(m, len), from + m);
        store_interleaved(dx + 2 * m, phase ? zero : v, phase ? v : zero, lanes_inside(2 * m, dx_l) & mine,
                          lanes_inside(2 * m + 16, dx_l) & mine, set, low, high);
    }
}

// The same on AVX2, 8 pairs a step; whole steps that set dx take a plain load and two plain
// stores (the masks and the partial stores had been most of its time). Adding, the other
// phase's elements of dx gain +0 (its stores write one run of lanes, not every other one), so
// they are unchanged but for the sign of a zero.
__attribute__((target("avx2"))) void spread_phase2_avx2(const float* from, int64_t len, int64_t phase, float* dx,
                                                       int64_t dx_l, bool set) {
    const __m256 zero = _mm256_setzero_ps();
    int64_t m = 0;
    if (set)  // whole steps: a plain load and two plain stores
        for (; m + 8 <= len && 2 * m + 16 <= dx_l; m += 8) {
            const __m256 v = _mm256_loadu_ps(from + m), e = phase ? zero : v, o = phase ? v : zero;
            const __m256 a = _mm256_unpacklo_ps(e, o), b = _mm256_unpackhi_ps(e, o);
            _mm256_storeu_ps(dx + 2 * m, _mm256_permute2f128_ps(a, b, 0x20));
            _mm256_storeu_ps(dx + 2 * m + 8, _mm256_permute2f128_ps(a, b, 0x31));
        }
    for (; 2 * m < dx_l; m += 8) {
        const __m256 v = _mm256_maskload_ps(from + m, lanes_inside8(m, len));
        store_interleaved8(dx + 2 * m, phase ? zero : v, phase ? v : zero, lanes_inside(2 * m, dx_l) & 0xFFu,
                           lanes_inside(2 * m + 8, dx_l) & 0xFFu, set);
    }
}

// add_phase_sums at stride 2 for every channel of one cotangent row: channel c's taps are the
// rows of cols[c * K + k, 0 .. len). Block: one instruction set's phase_block.
template <int W, void (*Block)(const typename Stride2Plan<W>::Blocks&, int64_t, const float*, int64_t, const float*,
                               float*, bool)>
inline void add_phase_sums2(const Stride2Plan<W>& plan, const float* cols, int64_t channels, int64_t k_n, int64_t len,
                            float* dx, int64_t dx_l, bool set) {
    const typename Stride2Plan<W>::Blocks blocks = plan.blocks();
    for (int64_t c = 0; c < channels; ++c)
        for (int64_t b = 0; b < blocks.count; ++b) Block(blocks, b, cols + c * k_n * len, len, nullptr, dx + c * dx_l, set);
}
__attribute__((target("avx512f"), flatten)) void add_phase_sums2_avx512(const Stride2Plan<16>& plan, const float* cols,
                                                                         int64_t channels, int64_t k_n, int64_t len,
                                                                         float* dx, int64_t dx_l, bool set) {
    add_phase_sums2<16, phase_block_avx512<false>>(plan, cols, channels, k_n, len, dx, dx_l, set);
}
__attribute__((target("avx2,fma"), flatten)) void add_phase_sums2_avx2(const Stride2Plan<8>& plan, const float* cols,
                                                                        int64_t channels, int64_t k_n, int64_t len,
                                                                        float* dx, int64_t dx_l, bool set) {
    add_phase_sums2<8, phase_block_avx2<false>>(plan, cols, channels, k_n, len, dx, dx_l, set);
}
#endif

}  // namespace

// dx += W^T * dz with transposed taps: dx[c, i] = sum over f, k of W[f, c, k] dz[f, o] where
// i = o * s - pad + k * d; one product per group, the cotangent rows side by side. With a
// stride, most transposed taps fall between the inputs (a product of zeros); there the product
// gives each tap's contribution cols[c * K + k, o] = sum over f of W[f, c, k] dz[f, o], added to
// dx[c, o * s - pad + k * d] afterwards.
void backward_conv(const BackwardArgs& a) {
    const Node& node = a.node;
    const View& gx = a.grad_in[0];
    if (!gx.data) return;
    const ConstView& gy = a.grad_out;
    const int64_t groups = node.group, per_group = gx.c / groups, filters_per_group = gy.c / groups;
    Segment* segs = segment_scratch(gy.n);
    if (node.stride > 1 && (node.kernel == 1 || node.dilation % node.stride == 0)) {
        // Every tap lands on one phase of the input, phi = -pad mod s (a dilation that is a
        // multiple of the stride, or one tap): dx[c, phi + s * m] = sum over f, k of
        // W[f, c, k] dz[f, m + shift - k * d / s] with shift = (phi + pad) / s, a stride-1
        // transposed product on that phase's positions, then spread over dx (the other
        // phases 0). No per-tap columns to sum afterwards: on a Zen 3 (AVX2) the channels-last
        // test net's full analysis of 64 windows took 0.88 of the time of the columns' path,
        // its product of 3 rows taken by the few-row kernel's 3 x 4 vector block.
        const int64_t st = node.stride, pad = a.geo.pad_begin, phase = ((-pad) % st + st) % st;
        const int64_t shift = (phase + pad) / st, len = phase < gx.l ? (gx.l - phase + st - 1) / st : 0;
        thread_local std::vector<float> phase_scratch;  // kept between calls
        std::vector<float>& compact = phase_scratch;   // bound once: a thread_local access is a call
        compact.resize(static_cast<size_t>(gy.n * per_group * std::max<int64_t>(len, 1)));
        for (int64_t g = 0; g < groups; ++g) {
            for (int64_t r = 0; r < gy.n; ++r)
                segs[r] = {gy.sample(r) + g * filters_per_group * gy.l, gy.l, len, -shift,
                           compact.data() + r * per_group * len};
            TapProduct p = conv_taps(node, &node.packed->transposed[g], filters_per_group, true, len);
            p.stride = 1;
            p.dilation = node.dilation / st;
            tap_product(p, segs, gy.n);
            for (int64_t r = 0; r < gy.n; ++r)
                for (int64_t c = 0; c < per_group; ++c) {
                    const float* from = compact.data() + (r * per_group + c) * len;
                    float* dx = gx.sample(r) + (g * per_group + c) * gx.l;
#ifdef TSVIZ_X86_CONV
                    if (st == 2 && isa_level() == 2) {
                        spread_phase2_avx512(from, len, phase, dx, gx.l, a.overwrite);
                        continue;
                    }
                    if (st == 2 && isa_level() == 1) {
                        spread_phase2_avx2(from, len, phase, dx, gx.l, a.overwrite);
                        continue;
                    }
#endif
                    if (a.overwrite) {
                        for (int64_t i = 0; i < gx.l; ++i) dx[i] = 0.f;
                        for (int64_t m = 0; m < len; ++m) dx[phase + m * st] = from[m];
                    } else {
                        for (int64_t m = 0; m < len; ++m) dx[phase + m * st] += from[m];
                    }
                }
        }
        return;
    }
    if (node.stride > 1) {
        // Tap k adds cols[c * K + k, o] to dx[c, o * s + shift_k] (shift_k = k * d - pad). The
        // taps of one phase (shift_k mod s) land on the same positions i = phase + s * m: their
        // sum over m is contiguous (o = m - delta_k), then one pass writes (or, when dx holds
        // values already, adds) every position of dx.
        const int64_t k_n = node.kernel, rows = per_group * k_n, len = gy.l, st = node.stride;
        const TapPhases& taps = tap_phases(node, a.geo.pad_begin);
        // Blocks of cotangent rows whose columns stay in cache between the product and the scatter.
        const int64_t block = std::clamp<int64_t>((int64_t{1} << 14) / std::max<int64_t>(1, rows * len), 1, gy.n);
        thread_local std::vector<float> cols_scratch, sum_scratch;  // kept between calls
        thread_local std::vector<const float*> rows_scratch;
        std::vector<float>& cols = cols_scratch;  // bound once: a thread_local access is a call
        std::vector<float>& phase_sum = sum_scratch;  // in a shared library
        std::vector<const float*>& phase_rows = rows_scratch;
        cols.resize(static_cast<size_t>(block * rows * len));
#ifdef TSVIZ_X86_CONV
        const bool stride2 = st == 2 && isa_level() == 2, stride2_avx2 = st == 2 && isa_level() == 1;
        const Stride2Plan<16>* plan = stride2 ? &plan_stride2<16>(k_n, len, taps, gx.l) : nullptr;
        const Stride2Plan<8>* plan8 = stride2_avx2 ? &plan_stride2<8>(k_n, len, taps, gx.l) : nullptr;
#endif
        for (int64_t g = 0; g < groups; ++g)
            for (int64_t r0 = 0; r0 < gy.n; r0 += block) {
                const int64_t nr = std::min(block, gy.n - r0);
                for (int64_t r = 0; r < nr; ++r)
                    segs[r] = {gy.sample(r0 + r) + g * filters_per_group * len, len, len, 0, cols.data() + r * rows * len};
                TapProduct p = conv_taps(node, &node.packed->columns[g], filters_per_group, false, len);
                p.kernel = p.stride = p.dilation = 1;
                tap_product(p, segs, nr);
                for (int64_t r = 0; r < nr; ++r) {
                    const float* c_r = cols.data() + r * rows * len;
                    float* dx = gx.sample(r0 + r) + g * per_group * gx.l;
#ifdef TSVIZ_X86_CONV
                    if (stride2) {
                        add_phase_sums2_avx512(*plan, c_r, per_group, k_n, len, dx, gx.l, a.overwrite);
                        continue;
                    }
                    if (stride2_avx2) {
                        add_phase_sums2_avx2(*plan8, c_r, per_group, k_n, len, dx, gx.l, a.overwrite);
                        continue;
                    }
#endif
                    add_phase_sums(c_r, per_group, k_n, len, st, taps.phase.data(), taps.delta.data(), dx, gx.l,
                                   phase_sum, phase_rows, a.overwrite);
                }
            }
        return;
    }
    for (int64_t g = 0; g < groups; ++g) {
        for (int64_t r = 0; r < gy.n; ++r)
            segs[r] = {gy.sample(r) + g * filters_per_group * gy.l, gy.l, gx.l, -a.geo.pad_begin,
                       gx.sample(r) + g * per_group * gx.l};
        TapProduct p = conv_taps(node, &node.packed->transposed[g], filters_per_group, true, gx.l);
        p.accumulate = !a.overwrite;  // the product stores every column of every row
        tap_product(p, segs, gy.n);
    }
}

// The rows of each filter f are one product of its packed (channel, tap) weights with their
// cotangents under the transposed tap rule, as backward_conv with one filter per group.
namespace {

// With a stride, most transposed taps fall between the inputs, and the product would gather B
// column by column. Here dz is spread onto the input's positions instead (up[o * s] = dz[o],
// zeros between, zero-padded at both ends), and every input position is one loop over taps
// that vectorises: dx[c, t] = sum over k of W[f, c, k] up[t + pad - k * d]. The zero taps cost
// arithmetic, not gathers.
TSVIZ_SIMD void strided_filter_input_grad(const Node& node, const Resolved& geo, const Shape& in,
                                          const FilterRow* rows, int64_t count) {
    const int64_t per_group = in.c / node.group, filters_per_group = geo.out.c / node.group;
    const int64_t k_n = node.kernel, st = node.stride, dil = node.dilation, out_l = geo.out.l, in_l = in.l;
    const int64_t pad = geo.pad_begin, reach = (k_n - 1) * dil, off = std::max<int64_t>(0, reach - pad);
    // up[j + off] for j in [-off, in_l + pad): every index t + pad - k * d reads.
    const int64_t size = in_l + pad + off;
    thread_local std::vector<float> up_scratch;  // kept between calls
    std::vector<float>& up = up_scratch;         // bound once: a thread_local access is a call
    up.resize(static_cast<size_t>(size));
    for (int64_t r = 0; r < count; ++r) {
        const FilterRow& row = rows[r];
        const int64_t c0 = (row.filter / filters_per_group) * per_group;
        std::fill(row.dx, row.dx + c0 * in_l, 0.f);
        std::fill(row.dx + (c0 + per_group) * in_l, row.dx + in.c * in_l, 0.f);
        std::fill(up.begin(), up.end(), 0.f);
        for (int64_t o = 0; o < out_l && o * st + off < size; ++o) up[o * st + off] = row.dz[o];
        const float* base = up.data() + pad + off;
        const float* w = node.weight.data() + row.filter * per_group * k_n;
        for (int64_t c = 0; c < per_group; ++c) {
            float* __restrict dx = row.dx + (c0 + c) * in_l;
            const float w0 = w[c * k_n];
            for (int64_t t = 0; t < in_l; ++t) dx[t] = w0 * base[t];
            for (int64_t k = 1; k < k_n; ++k) {
                const float* __restrict src = base - k * dil;
                const float wk = w[c * k_n + k];
                for (int64_t t = 0; t < in_l; ++t) dx[t] += wk * src[t];
            }
        }
    }
}

#ifdef TSVIZ_X86_CONV
// The same at stride 2 on AVX-512 and AVX2, without the spread: each phase of dx is the sum over
// its taps of W[f, c, k] dz[m - delta_k], W positions m at a time in registers (the loads
// planned as for backward_conv), then interleaved into 2W positions of dx. Half the products
// of the loop above, whose spread taps of every other position multiply zeros. Block is one
// instruction set's phase_block (inlined into its entry point below).
template <int W, void (*Block)(const typename Stride2Plan<W>::Blocks&, int64_t, const float*, int64_t, const float*,
                               float*, bool)>
inline void strided2_filter_input_grad(const Node& node, const Resolved& geo, const Shape& in, const FilterRow* rows,
                                       int64_t count) {
    const int64_t per_group = in.c / node.group, filters_per_group = geo.out.c / node.group;
    const int64_t k_n = node.kernel, in_l = in.l;
    const typename Stride2Plan<W>::Blocks plan = plan_stride2<W>(k_n, geo.out.l, tap_phases(node, geo.pad_begin), in_l).blocks();
    for (int64_t r = 0; r < count; ++r) {
        const FilterRow& row = rows[r];
        const int64_t c0 = (row.filter / filters_per_group) * per_group;
        std::fill(row.dx, row.dx + c0 * in_l, 0.f);
        std::fill(row.dx + (c0 + per_group) * in_l, row.dx + in.c * in_l, 0.f);
        const float* w = node.weight.data() + row.filter * per_group * k_n;
        for (int64_t c = 0; c < per_group; ++c)
            for (int64_t b = 0; b < plan.count; ++b) Block(plan, b, row.dz, 0, w + c * k_n, row.dx + (c0 + c) * in_l, true);
    }
}
__attribute__((target("avx512f"), flatten)) void strided2_filter_input_grad_avx512(const Node& node, const Resolved& geo,
                                                                                   const Shape& in, const FilterRow* rows,
                                                                                   int64_t count) {
    strided2_filter_input_grad<16, phase_block_avx512<true>>(node, geo, in, rows, count);
}
__attribute__((target("avx2,fma"), flatten)) void strided2_filter_input_grad_avx2(const Node& node, const Resolved& geo,
                                                                                  const Shape& in, const FilterRow* rows,
                                                                                  int64_t count) {
    strided2_filter_input_grad<8, phase_block_avx2<true>>(node, geo, in, rows, count);
}
#endif

}  // namespace

void conv_filter_input_grad(const Node& node, const Resolved& geo, const Shape& in, const FilterRow* rows,
                            int64_t count) {
#ifdef TSVIZ_X86_CONV
    if (node.stride == 2 && isa_level() == 2) return strided2_filter_input_grad_avx512(node, geo, in, rows, count);
    if (node.stride == 2 && isa_level() == 1) return strided2_filter_input_grad_avx2(node, geo, in, rows, count);
#endif
    if (node.stride > 1) return strided_filter_input_grad(node, geo, in, rows, count);
    const int64_t per_group = in.c / node.group, filters_per_group = geo.out.c / node.group;
    thread_local std::vector<int64_t> order_scratch;  // kept between calls
    std::vector<int64_t>& order = order_scratch;  // bound once: a thread_local access is a call
    order.resize(static_cast<size_t>(count));
    for (int64_t r = 0; r < count; ++r) order[r] = r;
    // By filter, rows of one filter in their given order (std::stable_sort would allocate).
    std::sort(order.begin(), order.end(), [&](int64_t p, int64_t q) {
        return rows[p].filter < rows[q].filter || (rows[p].filter == rows[q].filter && p < q);
    });
    Segment* segs = segment_scratch(count);
    for (int64_t r0 = 0; r0 < count;) {
        const int64_t f = rows[order[r0]].filter, c0 = (f / filters_per_group) * per_group;
        int64_t r1 = r0;
        for (; r1 < count && rows[order[r1]].filter == f; ++r1) {
            const FilterRow& row = rows[order[r1]];
            if (node.group > 1) {
                std::fill(row.dx, row.dx + c0 * in.l, 0.f);
                std::fill(row.dx + (c0 + per_group) * in.l, row.dx + in.c * in.l, 0.f);
            }
            segs[r1 - r0] = {row.dz, geo.out.l, in.l, -geo.pad_begin, row.dx + c0 * in.l};
        }
        TapProduct p = conv_taps(node, &node.packed->filters[f], 1, true, in.l);
        tap_product(p, segs, r1 - r0);
        r0 = r1;
    }
}

namespace {
// backward_conv_pooled's product and the rows of its first sample's shape (no data read).
std::pair<TapProduct, PooledRows> pooled_conv_product(const PooledConvArgs& a) {
    const Node& node = a.conv;
    TapProduct p = conv_taps(node, &node.packed->transposed[0], a.grad_out.c, true, a.grad_in.l);
    p.accumulate = !a.overwrite;
    PooledRows rows;
    rows.windows = a.grad_out.l;
    rows.pad = a.conv_geo.pad_begin;
    rows.gy_ld = a.grad_out.c * a.grad_out.l;
    rows.dx_ld = a.grad_in.c * a.grad_in.l;
    rows.rows = a.rep;
    return {p, rows};
}
}  // namespace

bool backward_conv_pooled_serves(const PooledConvArgs& a) {
    if (a.conv.stride != 1 || a.conv.group != 1) return false;
    const auto [p, rows] = pooled_conv_product(a);
    return pooled_tap_product_serves(p, rows);
}

void backward_conv_pooled(const PooledConvArgs& a) {
    const ConstView& gy = a.grad_out;
    auto [p, rows] = pooled_conv_product(a);
    for (int64_t s = 0; s * a.rep < gy.n; ++s) {
        const int64_t r0 = s * a.rep;
        rows.arg = a.arg + s * rows.gy_ld;
        rows.gate = a.pooled.data ? a.pooled.sample(s) : nullptr;
        rows.gy = gy.sample(r0);
        rows.dx = a.grad_in.sample(r0);
        rows.rows = std::min(gy.n, r0 + a.rep) - r0;
        pooled_tap_product(p, rows);
    }
}

// Weight gradient: dW[f, c, k] += sum over samples n and positions t of dz[n, f, t] x[n, c, i]
// with i = t * s - pad + k * d (padding taps read 0), and db[f] += sum dz[n, f, t]. Per sample
// and group this is a matrix product (filters x positions) * (positions x channels * taps) whose
// B is the input read with the roles of stride and dilation swapped: column k of channel c at
// depth t reads x[c, k * d + t * s - pad], the forward tap rule with kernel = positions,
// stride = d and dilation = s. One segment per input channel writes dW[:, c, :].
void weight_backward_conv(const WeightGradArgs& a) {
    const Node& node = a.node;
    const ConstView& x = a.in;
    const ConstView& gy = a.grad_out;
    const int64_t groups = node.group, per_group = x.c / groups, filters_per_group = gy.c / groups;
    const int64_t depth = per_group * node.kernel;
    if (a.grad_bias)
        for (int64_t n = 0; n < gy.n; ++n)
            for (int64_t f = 0; f < gy.c; ++f) {
                const float* row = gy.sample(n) + f * gy.l;
                float sum = 0.f;
                for (int64_t t = 0; t < gy.l; ++t) sum += row[t];
                a.grad_bias[f] += sum;
            }
    if (!a.grad_weight) return;
    Segment* segs = segment_scratch(per_group);
    for (int64_t n = 0; n < gy.n; ++n)
        for (int64_t g = 0; g < groups; ++g) {
            const PackedMatrix dz =
                pack_matrix(filters_per_group, gy.l, gy.sample(n) + g * filters_per_group * gy.l, gy.l, 1);
            float* dw = a.grad_weight + g * filters_per_group * depth;
            for (int64_t c = 0; c < per_group; ++c)
                segs[c] = {x.sample(n) + (g * per_group + c) * x.l, x.l, node.kernel, -a.geo.pad_begin,
                           dw + c * node.kernel};
            TapProduct p;
            p.a = &dz;
            p.channels = 1;
            p.kernel = gy.l;
            p.stride = node.dilation;
            p.dilation = node.stride;
            p.ldd = depth;
            p.accumulate = true;
            tap_product(p, segs, per_group);
        }
}

void weight_backward_reference(const WeightGradArgs& a) {
    const Node& node = a.node;
    const ConstView& x = a.in;
    const ConstView& gy = a.grad_out;
    const bool conv = node.kind == OpKind::Conv;
    const int64_t groups = conv ? node.group : 1, kernel = conv ? node.kernel : 1;
    const int64_t per_group = conv ? x.c / groups : x.c * x.l, filters_per_group = gy.c / groups;
    const int64_t out_len = conv ? gy.l : 1, in_len = conv ? x.l : 1;
    for (int64_t f = 0; f < gy.c; ++f) {
        const int64_t g = f / filters_per_group;
        double bias = 0;
        for (int64_t n = 0; n < gy.n; ++n)
            for (int64_t t = 0; t < out_len; ++t) bias += gy.sample(n)[f * out_len + t];
        if (a.grad_bias) a.grad_bias[f] += static_cast<float>(bias);
        if (!a.grad_weight) continue;
        for (int64_t c = 0; c < per_group; ++c)
            for (int64_t k = 0; k < kernel; ++k) {
                double acc = 0;
                for (int64_t n = 0; n < gy.n; ++n)
                    for (int64_t t = 0; t < out_len; ++t) {
                        const int64_t i = conv ? t * node.stride - a.geo.pad_begin + k * node.dilation : 0;
                        if (i < 0 || i >= in_len) continue;
                        acc += static_cast<double>(gy.sample(n)[f * out_len + t]) *
                               x.sample(n)[(g * per_group + c) * in_len + i];
                    }
                a.grad_weight[(f * per_group + c) * kernel + k] += static_cast<float>(acc);
            }
    }
}

// The receptive window of each marked output: every input channel of its group, every tap,
// with stride, padding and dilation; taps in the padding are dropped. With active_only, taps
// whose weight is exactly 0 contribute nothing and are dropped too. An input point (c, i) is
// marked when, for some tap k, the output o it feeds is marked in some filter f of the group
// (with a non-zero W[f, c, k] under active_only): the filters are ORed first, so the cost is
// filters x positions plus channels x taps x positions, not their product.
void trace_conv(const TraceArgs& a) {
    const Node& node = a.node;
    const ConstView& x = a.in[0];
    const int64_t filters = a.out.c, out_len = a.out.l, in_len = x.l;
    const int64_t per_group = x.c / node.group, filters_per_group = filters / node.group;
    uint8_t* mask = a.mask_in[0];
    std::vector<uint8_t> any(static_cast<size_t>(out_len));
    auto mark = [&](int64_t channel, int64_t k) {
        for (int64_t o = 0; o < out_len; ++o) {
            if (!any[o]) continue;
            const int64_t i = o * node.stride - a.geo.pad_begin + k * node.dilation;
            if (i >= 0 && i < in_len) mask[channel * in_len + i] = 1;
        }
    };
    for (int64_t g = 0; g < node.group; ++g) {
        const int64_t f0 = g * filters_per_group, first_channel = g * per_group;
        if (!a.active_only) {
            std::fill(any.begin(), any.end(), uint8_t{0});
            for (int64_t f = f0; f < f0 + filters_per_group; ++f)
                for (int64_t o = 0; o < out_len; ++o) any[o] |= a.mask_out[f * out_len + o];
            for (int64_t c = 0; c < per_group; ++c)
                for (int64_t k = 0; k < node.kernel; ++k) mark(first_channel + c, k);
            continue;
        }
        for (int64_t c = 0; c < per_group; ++c)
            for (int64_t k = 0; k < node.kernel; ++k) {
                std::fill(any.begin(), any.end(), uint8_t{0});
                for (int64_t f = f0; f < f0 + filters_per_group; ++f) {
                    if (node.weight[(f * per_group + c) * node.kernel + k] == 0.f) continue;
                    for (int64_t o = 0; o < out_len; ++o) any[o] |= a.mask_out[f * out_len + o];
                }
                mark(first_channel + c, k);
            }
    }
}

// Forward mode: the tangents of one sample convolved like the forward (no bias), each tangent a
// column segment over its band; the band offsets go into the tap rule's delta.
Band band_conv(const BandArgs& a) { return window_band(a.node, a.geo, a.geo.out.l, a.in_band.at(0)); }

void tangent_conv(const TangentArgs& a) {
    const Node& node = a.node;
    const int64_t in_c = a.in[0].c, out_c = a.out.c, w_in = a.w_in[0], w_out = a.w_out;
    const int64_t groups = node.group, per_group = in_c / groups, filters_per_group = out_c / groups;
    Segment* segs = segment_scratch(a.count);
    for (int64_t g = 0; g < groups; ++g) {
        for (int64_t t = 0; t < a.count; ++t)
            segs[t] = {a.t_in[0] + (t * in_c + g * per_group) * w_in, w_in, w_out,
                       a.start_out[t] * node.stride - a.geo.pad_begin - a.start_in[0][t],
                       a.t_out + (t * out_c + g * filters_per_group) * w_out,
                       a.relu_gate ? a.out.data + g * filters_per_group * a.out.l + a.start_out[t] : nullptr};
        TapProduct p = conv_taps(node, &node.packed->forward[g], per_group, false, w_out);
        p.gate_ld = a.out.l;
        tap_product(p, segs, a.count);
    }
}

// --- ONNX lowering and registry entries ------------------------------------------------------

namespace {

using namespace ::tsviz::onnx;

void lower_conv(Lowering& im) {
    Tensor x = im.tensor_input(0, true);
    const Const& w = im.float_input(1, "the weight");
    const size_t rank = x.axes.size();
    if (w.dims.size() != rank)
        im.fail_node("weight has shape " + join(w.dims) + "; expected rank " + std::to_string(rank));
    for (int64_t d : w.dims)
        if (d < 1) im.fail_node("weight has shape " + join(w.dims) + "; every dim must be >= 1 (filters, channels, kernel)");
    std::vector<int64_t> kernel(w.dims.begin() + 2, w.dims.end());
    std::vector<int64_t> ks;
    if (im.attr_ints("kernel_shape", ks) && ks != kernel)
        im.fail_node("attribute 'kernel_shape' " + join(ks) + " does not match the weight shape " + join(w.dims));
    const size_t time_axis = im.bind_spatial(x, kernel);
    Node n = im.make(OpKind::Conv, x);
    im.window_attrs(n, kernel, time_axis, rank, true);
    const int64_t group = im.attr_int("group", 1);
    const int64_t in_c = im.channels_of(x), filters = w.dims[0];
    if (group < 1 || in_c % group != 0 || filters % group != 0 || w.dims[1] * group != in_c)
        im.fail_node("weight shape " + join(w.dims) + " with group " + std::to_string(group) +
                  " does not fit an input of " + std::to_string(in_c) + " channels");
    if (x.pad_begin || x.pad_end) {
        if (n.auto_pad != AutoPad::NotSet)
            im.fail(x.pad_node + ": zero padding before a Conv with auto_pad is not supported");
        if (x.pad_begin > kMaxExtent || x.pad_end > kMaxExtent)
            im.fail(x.pad_node + ": padding larger than " + std::to_string(kMaxExtent) + " is not supported");
        n.pad_begin += static_cast<int>(x.pad_begin);
        n.pad_end += static_cast<int>(x.pad_end);
    }
    n.group = static_cast<int>(group);
    n.channels = static_cast<int>(filters);
    n.weight = im.floats(w);
    n.weight_source = im.cur_->input[1];
    n.bias.assign(static_cast<size_t>(filters), 0.f);
    if (im.has_input(2)) {
        const Const& b = im.float_input(2, "the bias");
        if (b.count() != filters) im.fail_node("bias has shape " + join(b.dims) + "; expected (" + std::to_string(filters) + ",)");
        n.bias = im.floats(b);
        n.bias_source = im.cur_->input[2];
    }
    Tensor out;
    out.axes = x.axes;
    out.node = im.add_node(std::move(n));
    for (auto& a : out.axes) a = im.kind(a);
    out.axes[1] = Ax::C;
    out.axes[time_axis] = Ax::L;
    im.set_tensor(out);
}

}  // namespace

OpRules conv_rules() {
    OpRules r = TSVIZ_RULES(Conv, conv, infer_conv);
    r.prepare = prepare_conv;
    r.weight_backward = weight_backward_conv;
    r.tangent_writes_all = true;  // the product stores every column of every row
    r.tangent_relu_gate = true;   // the product's gate (Segment::gate)
    r.forward_relu = true;        // TapProduct::relu
    r.backward_writes_all = true;
    r.onnx = {{"Conv", lower_conv}};
    return r;
}

}  // namespace tsviz::ops
