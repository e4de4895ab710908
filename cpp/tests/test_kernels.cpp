// The optimised kernels against plain references on random shapes: the tap-rule matrix product
// (forward and transposed taps, strides, dilations, several segments, edges of every size,
// accumulate or bias) against its loop definition, and convolution and dense layers (forward
// and input gradient; groups, padding, odd lengths, batches) against direct loops written here
// from the ONNX definition; row sums and Add's tangent against their plain loops. test_kernels
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "engine.hpp"
#include "graph.hpp"
#include "ops/fast_math.hpp"
#include "ops/gemm.hpp"
#include "ops/op.hpp"
#include "ops/simd.hpp"
#include "testing.hpp"

using namespace tsviz;

namespace {

std::mt19937 rng(12345);

int64_t pick(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }

std::vector<float> random_vector(int64_t n) {
    std::normal_distribution<float> d;
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = d(rng);
    return v;
}

// max |a - b| <= tol * max(1, max |b|)
bool close(const std::vector<float>& a, const std::vector<float>& b, double tol = 2e-5) {
    if (a.size() != b.size()) return false;
    double scale = 1, err = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        if (std::isnan(a[i]) != std::isnan(b[i])) return false;  // std::max would skip a NaN
        scale = std::max(scale, static_cast<double>(std::fabs(b[i])));
        err = std::max(err, static_cast<double>(std::fabs(a[i] - b[i])));
    }
    return err <= tol * scale;
}

// One random product: m rows, n_segs segments of up to max_cols columns each (sources of up to
// max_len positions), optionally gated; the fast path against the loop definition. same_shape:
// every segment has the same columns, source length and offset (each its own source), as the
// cotangent rows of a backward sweep, which the few-row kernel takes two at a time.
// band: forward-mode tangents through a convolution of `band` taps at stride 1: each segment
// a band of up to 14 source positions and the columns its taps reach (up to band - 1 more on
// either side), the reach cut on either side or not, as at the ends of a series.
void tap_product_case(int64_t m, int64_t n_segs, int64_t max_cols, int64_t max_len, int64_t min_channels,
                      int64_t max_channels, bool same_shape = false, int64_t band = 0) {
    ops::TapProduct p;
    p.channels = pick(min_channels, max_channels);
    p.kernel = band ? band : pick(1, 7);
    p.stride = band ? 1 : pick(1, 3);
    p.dilation = band ? 1 : pick(1, 3);
    p.transposed = band ? false : pick(0, 1) == 1;
    p.accumulate = pick(0, 1) == 1;
    p.relu = pick(0, 1) == 1;  // a convolution's ReLU fused into its stores
    const int64_t depth = p.channels * p.kernel;
    const std::vector<float> a = random_vector(m * depth);
    const std::vector<float> bias = random_vector(m);
    p.bias = pick(0, 1) ? bias.data() : nullptr;
    const ops::PackedMatrix packed = ops::pack_matrix(m, depth, a.data(), depth, 1);
    p.a = &packed;
    // Segments of different source lengths and column counts (a multiple of every
    // micro-kernel width, and not), offsets reaching into the padding on both sides; half
    // the products gated (a fused ReLU: kept where the gate is positive).
    p.ldd = pick(1, max_cols);
    const bool gated = pick(0, 1) == 1;
    p.gate_ld = p.ldd + pick(0, 3);
    std::vector<std::vector<float>> srcs;
    const std::vector<float> gates = random_vector(n_segs * m * p.gate_ld);
    std::vector<ops::Segment> segs(static_cast<size_t>(n_segs));
    std::vector<float> fast(static_cast<size_t>(n_segs * m * p.ldd)), slow;
    // In half the products some channel rows of a source are zero (a ReLU's channel that is
    // off): all along, or only around where some columns read.
    const bool zero_rows = pick(0, 1) == 1;
    const int64_t shared_len = pick(1, max_len), shared_cols = pick(0, p.ldd), shared_delta = pick(-10, 10);
    for (int64_t s = 0; s < n_segs; ++s) {
        const int64_t len = same_shape ? shared_len : pick(1, max_len);
        srcs.push_back(random_vector(p.channels * len));
        for (int64_t c = 0; zero_rows && c < p.channels; ++c) {
            if (pick(0, 2) == 0) continue;
            const int64_t from = pick(0, 1) ? 0 : pick(0, len), to = pick(0, 1) ? len : pick(from, len);
            std::fill(srcs.back().begin() + c * len + from, srcs.back().begin() + c * len + to, 0.f);
        }
        int64_t cols = same_shape ? shared_cols : pick(0, p.ldd), delta = same_shape ? shared_delta : pick(-10, 10);
        if (band) {  // columns [-(band - 1), len) of the reach, less `cut` at each end
            const int64_t cut_begin = pick(0, 1) ? pick(0, band - 1) : 0, cut_end = pick(0, 1) ? pick(0, band - 1) : 0;
            cols = std::min(p.ldd, std::max<int64_t>(0, len + band - 1 - cut_begin - cut_end));
            delta = cut_begin - (band - 1);
        }
        segs[s] = {srcs.back().data(), len, cols, delta, fast.data() + s * m * p.ldd,
                   gated ? gates.data() + s * m * p.gate_ld : nullptr};
    }
    const std::vector<float> start = random_vector(static_cast<int64_t>(fast.size()));
    fast = start;
    slow = start;
    std::vector<ops::Segment> slow_segs = segs;
    for (int64_t s = 0; s < n_segs; ++s) slow_segs[s].dst = slow.data() + s * m * p.ldd;
    ops::tap_product(p, segs.data(), n_segs);
    ops::tap_product_reference(p, a.data(), slow_segs.data(), n_segs);
    CHECK(close(fast, slow));
}

// TapProduct::relu as the ONNX Relu (forward_relu): NaN of either sign kept, -0 and -inf to +0,
// on every kernel's store (few rows, narrow segments, whole and partial panels). The source
// is zero, so each output is its row's bias: the special values go in there.
void check_relu_special_values() {
    const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
    const float specials[] = {nan, -nan, -inf, inf, -0.f, 0.f, -1.5f, 2.5f, -1e-40f, 1e-40f};
    for (const auto [m, cols, n_segs] : {std::array<int64_t, 3>{3, 40, 2}, {20, 10, 8}, {20, 100, 2}, {20, 70, 3}}) {
        ops::TapProduct p;
        p.channels = 4;
        p.kernel = 3;
        p.relu = true;
        const int64_t depth = p.channels * p.kernel;
        const std::vector<float> a = random_vector(m * depth);
        const ops::PackedMatrix packed = ops::pack_matrix(m, depth, a.data(), depth, 1);
        p.a = &packed;
        std::vector<float> bias(static_cast<size_t>(m));
        for (int64_t r = 0; r < m; ++r) bias[r] = specials[r % 10];
        p.bias = bias.data();
        p.ldd = cols;
        const std::vector<float> src(static_cast<size_t>(p.channels * cols), 0.f);
        std::vector<float> out(static_cast<size_t>(n_segs * m * cols), 7.f);
        std::vector<ops::Segment> segs(static_cast<size_t>(n_segs));
        for (int64_t s = 0; s < n_segs; ++s) segs[s] = {src.data(), cols, cols, -1, out.data() + s * m * cols};
        ops::tap_product(p, segs.data(), n_segs);
        for (int64_t s = 0; s < n_segs; ++s)
            for (int64_t r = 0; r < m; ++r)
                for (int64_t o = 0; o < cols; ++o) {
                    const float got = out[(s * m + r) * cols + o], b = bias[r] + 0.f;
                    if (std::isnan(b)) {
                        CHECK(std::isnan(got));
                    } else {
                        const float want = b > 0.f ? b : 0.f;
                        CHECK(std::memcmp(&got, &want, sizeof got) == 0);  // +0, not -0
                    }
                }
    }
}

// A NaN in A times a source row that is all zero is NaN: the kernels leave out zero rows only
// when A is finite. Rows over 8 and narrow segments (the narrow kernel on AVX-512), read in
// place (delta 0) and through the padded copy (delta -1), and wide ones (the blocked kernel);
// the NaN on the middle tap, which every column reads inside the source.
void check_zero_rows_keep_nan() {
    for (const auto [delta, cols, n_segs] : {std::array<int64_t, 3>{0, 10, 8}, {-1, 10, 8}, {-1, 100, 2}}) {
        ops::TapProduct p;
        p.channels = 6;
        p.kernel = 3;
        const int64_t m = 20, depth = p.channels * p.kernel;
        std::vector<float> a = random_vector(m * depth);
        a[7 * depth + 2 * p.kernel + 1] = std::nanf("");  // row 7, channel 2, tap 1
        const ops::PackedMatrix packed = ops::pack_matrix(m, depth, a.data(), depth, 1);
        CHECK(!packed.finite);
        p.a = &packed;
        p.ldd = cols;
        std::vector<float> src = random_vector(p.channels * (cols + 2));
        std::fill(src.begin() + 2 * (cols + 2), src.begin() + 3 * (cols + 2), 0.f);  // channel 2 zero
        std::vector<float> fast(static_cast<size_t>(n_segs * m * cols)), slow(fast.size());
        std::vector<ops::Segment> segs(static_cast<size_t>(n_segs)), slow_segs;
        for (int64_t s = 0; s < n_segs; ++s) segs[s] = {src.data(), cols + 2, cols, delta, fast.data() + s * m * cols};
        slow_segs = segs;
        for (int64_t s = 0; s < n_segs; ++s) slow_segs[s].dst = slow.data() + s * m * cols;
        ops::tap_product(p, segs.data(), n_segs);
        ops::tap_product_reference(p, a.data(), slow_segs.data(), n_segs);
        CHECK(std::isnan(fast[7 * cols + 3]));
        CHECK(close(fast, slow));
    }
}

// Narrow segments (the narrow kernel on AVX2 and AVX-512) with one long one among them, whose
// padded copy is over 128 positions (the AVX2 copy's own loop takes up to 16 vectors a row,
// longer rows the generic one), short ones reaching past either end, some channel rows zero.
void check_long_padded_row() {
    for (const bool transposed : {false, true}) {
        ops::TapProduct p;
        p.channels = 5;
        p.kernel = 7;
        p.transposed = transposed;
        const int64_t m = 12, depth = p.channels * p.kernel, n_segs = 8;
        const std::vector<float> a = random_vector(m * depth);
        const ops::PackedMatrix packed = ops::pack_matrix(m, depth, a.data(), depth, 1);
        p.a = &packed;
        p.ldd = 150;
        std::vector<std::vector<float>> srcs;
        std::vector<ops::Segment> segs(static_cast<size_t>(n_segs)), slow_segs;
        std::vector<float> fast(static_cast<size_t>(n_segs * m * p.ldd)), slow(fast.size());
        for (int64_t s = 0; s < n_segs; ++s) {
            const int64_t cols = s == 3 ? 150 : 10, len = s == 3 ? 150 : 12;
            srcs.push_back(random_vector(p.channels * len));
            std::fill(srcs.back().begin() + len, srcs.back().begin() + 2 * len, 0.f);  // channel 1 zero
            segs[s] = {srcs.back().data(), len, cols, s % 2 ? -3 : 2, fast.data() + s * m * p.ldd};
        }
        slow_segs = segs;
        for (int64_t s = 0; s < n_segs; ++s) slow_segs[s].dst = slow.data() + s * m * p.ldd;
        ops::tap_product(p, segs.data(), n_segs);
        ops::tap_product_reference(p, a.data(), slow_segs.data(), n_segs);
        CHECK(close(fast, slow));
    }
}

// Whole 32-column panels of one segment at stride 1 (the AVX-512 kernel packs their rows with
// masked loads, leaving out the zero rows on the way): taps reaching past either end of short
// and long sources, forward and transposed, and sources with no zero channel row, one in nine
// (too few to leave out: the panel is put back in place), and half. Each product runs after
// another whose packed panels left other values in the kernel's scratch.
void check_whole_panels() {
    int64_t cases = 0;
    // zero_channels: that many channels zero all along; -1: every other channel zero on a
    // stretch of 37 positions only, so that a panel's rows of one channel are zero at some taps
    // and not at others (the zero-row tests read windows of a channel's positions).
    for (const int64_t zero_channels : {0, 1, 4, -1})
        for (const bool transposed : {false, true})
            for (const int64_t kernel : {1, 3, 7})
                for (const int64_t src_len : {5, 31, 40, 100})
                    for (const int64_t delta : {-9, -1, 0, 2, 9}) {
                        ops::TapProduct p;
                        p.channels = zero_channels == 4 ? 8 : 9;
                        p.kernel = kernel;
                        p.dilation = 1 + (cases % 2);
                        p.transposed = transposed;
                        const int64_t m = 20, depth = p.channels * p.kernel, cols = 96 + 4 * (cases % 3);
                        const std::vector<float> a = random_vector(m * depth);
                        const ops::PackedMatrix packed = ops::pack_matrix(m, depth, a.data(), depth, 1);
                        p.a = &packed;
                        p.ldd = cols;
                        // The scratch first: a product over the same shapes without zero rows.
                        const std::vector<float> full = random_vector(p.channels * src_len);
                        std::vector<float> src = full;
                        for (int64_t c = 0; c < zero_channels; ++c)
                            std::fill(src.begin() + (2 * c + 1) * src_len, src.begin() + (2 * c + 2) * src_len, 0.f);
                        if (zero_channels < 0)
                            for (int64_t c = 0; c < p.channels; c += 2) {
                                const int64_t from = std::min<int64_t>(src_len, 3 + 11 * c / 2);
                                const int64_t to = std::min<int64_t>(src_len, from + 37);
                                std::fill(src.begin() + c * src_len + from, src.begin() + c * src_len + to, 0.f);
                            }
                        std::vector<float> fast(static_cast<size_t>(2 * m * cols)), slow(fast.size());
                        std::vector<ops::Segment> segs(2), slow_segs(2);
                        for (int64_t s = 0; s < 2; ++s) {
                            segs[s] = {full.data(), src_len, cols, delta + s, fast.data() + s * m * cols};
                            slow_segs[s] = {src.data(), src_len, cols, delta + s, slow.data() + s * m * cols};
                        }
                        ops::tap_product(p, segs.data(), 2);
                        for (int64_t s = 0; s < 2; ++s) segs[s].src = src.data();
                        ops::tap_product(p, segs.data(), 2);
                        ops::tap_product_reference(p, a.data(), slow_segs.data(), 2);
                        CHECK(close(fast, slow));
                        ++cases;
                    }
    CHECK(cases == 4 * 2 * 3 * 4 * 5);
}

// The scan for zero rows (channels a ReLU has turned off along what a part of a segment reads)
// must look at every position the part reads: channels zero but at one position, that position
// moved over the whole range read (narrow parts of up to 32 positions are scanned in one or two
// vector steps, longer ones in a loop), on parts that read the source in place (taps inside
// it): the narrow kernel's and, up to 16 columns of 3 or 5 taps on AVX-512, the banded one's.
void check_zero_row_scan() {
    int64_t cases = 0;
    for (const int64_t cols : {6, 14, 15, 16, 20, 30, 40})
        for (const int64_t kernel : {3, 5}) {
            ops::TapProduct p;
            p.channels = 4;
            p.kernel = kernel;
            const int64_t m = 20, depth = p.channels * kernel, src_len = cols + kernel + 8, delta = 4;
            const int64_t reads = cols + kernel - 1;  // source positions [delta, delta + reads)
            const std::vector<float> a = random_vector(m * depth);
            const ops::PackedMatrix packed = ops::pack_matrix(m, depth, a.data(), depth, 1);
            p.a = &packed;
            p.ldd = cols;
            for (int64_t at = 0; at < reads; ++at) {
                // Channels 1 and 3 zero but at `at`; 0 and 2 whole. Segments of one shape, so
                // that the product is narrow (under 64 columns a segment).
                std::vector<float> src = random_vector(p.channels * src_len);
                for (const int64_t c : {1, 3}) {
                    float* row = src.data() + c * src_len;
                    const float kept = row[delta + at];
                    std::fill(row, row + src_len, 0.f);
                    row[delta + at] = kept;
                }
                const int64_t n_segs = 3;
                std::vector<float> fast(static_cast<size_t>(n_segs * m * cols)), slow(fast.size());
                std::vector<ops::Segment> segs(n_segs), slow_segs(n_segs);
                for (int64_t s = 0; s < n_segs; ++s) {
                    segs[s] = {src.data(), src_len, cols, delta, fast.data() + s * m * cols};
                    slow_segs[s] = {src.data(), src_len, cols, delta, slow.data() + s * m * cols};
                }
                ops::tap_product(p, segs.data(), n_segs);
                ops::tap_product_reference(p, a.data(), slow_segs.data(), n_segs);
                CHECK(close(fast, slow));
                ++cases;
            }
        }
    CHECK(cases == 2 * (6 + 14 + 15 + 16 + 20 + 30 + 40) + 7 * 6);
}

void check_tap_product() {
    // Few segments of any width: the blocked kernel and, on AVX-512, the narrow one.
    for (int trial = 0; trial < 300; ++trial) tap_product_case(pick(1, 40), pick(1, 6), 70, 80, 1, 24);
    // One to three rows, as the input gradient of a first layer over one to three channels.
    for (int trial = 0; trial < 150; ++trial) tap_product_case(pick(1, 3), pick(1, 6), 150, 160, 1, 24);
    // Many narrow segments, as forward-mode tangents and cotangent rows are.
    for (int trial = 0; trial < 100; ++trial) tap_product_case(pick(1, 40), pick(10, 60), 14, 20, 1, 24);
    // Segments of one shape, as the cotangent rows of a backward sweep: few rows (the input
    // gradient of a first layer over 1-8 channels) take them two at a time; odd counts leave
    // one alone; large products split over threads cut through the pairs.
    for (int trial = 0; trial < 200; ++trial) tap_product_case(pick(1, 12), pick(1, 9), 70, 80, 1, 24, true);
    for (int trial = 0; trial < 6; ++trial) tap_product_case(pick(1, 4), pick(200, 300), 64, 70, 48, 64, true);
    // Products large enough (over 4 MFLOP) to be split over threads, the split cutting through
    // segments.
    for (int trial = 0; trial < 6; ++trial) tap_product_case(pick(48, 64), pick(60, 80), 14, 20, 48, 64);
    // Forward-mode tangents, whole bands and bands cut at either end, 3, 5 and 7 taps: on
    // AVX-512 those of 3 and 5 taps and at most 16 columns take the banded kernel.
    for (int trial = 0; trial < 300; ++trial)
        tap_product_case(pick(1, 40), pick(1, 12), 20, 14, 1, 24, false, trial % 3 == 2 ? 7 : 3 + 2 * (trial % 3));
}

struct ConvCase {
    int64_t n, c, l, f, k, s, d, pb, pe, g;
};

Node conv_node(const ConvCase& cc) {
    Node node;
    node.kind = OpKind::Conv;
    node.name = node.onnx_node = "conv";
    node.onnx_op = "Conv";
    node.channels = static_cast<int>(cc.f);
    node.kernel = static_cast<int>(cc.k);
    node.stride = static_cast<int>(cc.s);
    node.dilation = static_cast<int>(cc.d);
    node.pad_begin = static_cast<int>(cc.pb);
    node.pad_end = static_cast<int>(cc.pe);
    node.group = static_cast<int>(cc.g);
    node.weight = random_vector(cc.f * (cc.c / cc.g) * cc.k);
    node.bias = random_vector(cc.f);
    ops::rules(OpKind::Conv).prepare(node);
    return node;
}

void check_conv() {
    for (int trial = 0; trial < 200; ++trial) {
        ConvCase cc;
        cc.g = pick(1, 4);
        cc.c = cc.g * pick(1, 6);
        cc.f = cc.g * pick(1, 12);
        cc.k = pick(1, 6);
        cc.s = pick(1, 3);
        cc.d = pick(1, 3);
        cc.pb = pick(0, 4);
        cc.pe = pick(0, 4);
        cc.n = pick(1, 5);
        cc.l = (cc.k - 1) * cc.d + 1 + pick(0, 60);
        const Node node = conv_node(cc);
        const ops::Resolved geo = ops::infer_conv(node, {Shape{cc.c, cc.l}});
        const int64_t out_len = geo.out.l, pg = cc.c / cc.g, fg = cc.f / cc.g;
        CHECK(out_len == (cc.l + cc.pb + cc.pe - (cc.k - 1) * cc.d - 1) / cc.s + 1);
        const std::vector<float> x = random_vector(cc.n * cc.c * cc.l);
        std::vector<float> y(static_cast<size_t>(cc.n * cc.f * out_len)), want(y.size());
        ops::View yv{y.data(), cc.n, cc.f, out_len};
        ops::ConstView xv(ops::View{const_cast<float*>(x.data()), cc.n, cc.c, cc.l});
        ops::rules(OpKind::Conv).forward(ops::ForwardArgs{node, geo, {xv}, yv, nullptr});
        // The ONNX definition, directly.
        for (int64_t n = 0; n < cc.n; ++n)
            for (int64_t f = 0; f < cc.f; ++f)
                for (int64_t o = 0; o < out_len; ++o) {
                    double acc = node.bias[f];
                    const int64_t g = f / fg;
                    for (int64_t c = 0; c < pg; ++c)
                        for (int64_t k = 0; k < cc.k; ++k) {
                            const int64_t i = o * cc.s - cc.pb + k * cc.d;
                            if (i >= 0 && i < cc.l)
                                acc += static_cast<double>(node.weight[(f * pg + c) * cc.k + k]) *
                                       x[(n * cc.c + g * pg + c) * cc.l + i];
                        }
                    want[(n * cc.f + f) * out_len + o] = static_cast<float>(acc);
                }
        CHECK(close(y, want));

        // Input gradient, accumulated onto what is there, and written over garbage
        // (BackwardArgs::overwrite: every element set, positions no tap reaches to 0).
        const std::vector<float> gy = random_vector(cc.n * cc.f * out_len);
        std::vector<float> contrib(static_cast<size_t>(cc.n * cc.c * cc.l), 0.f);
        for (int64_t n = 0; n < cc.n; ++n)
            for (int64_t f = 0; f < cc.f; ++f)
                for (int64_t o = 0; o < out_len; ++o)
                    for (int64_t c = 0; c < pg; ++c)
                        for (int64_t k = 0; k < cc.k; ++k) {
                            const int64_t i = o * cc.s - cc.pb + k * cc.d;
                            if (i >= 0 && i < cc.l)
                                contrib[(n * cc.c + (f / fg) * pg + c) * cc.l + i] +=
                                    node.weight[(f * pg + c) * cc.k + k] * gy[(n * cc.f + f) * out_len + o];
                        }
        for (const bool overwrite : {false, true}) {
            std::vector<float> gx = random_vector(cc.n * cc.c * cc.l), gx_want = contrib;
            if (overwrite) std::fill(gx.begin(), gx.end(), std::nanf(""));
            else
                for (size_t i = 0; i < gx.size(); ++i) gx_want[i] += gx[i];
            ops::BackwardArgs b{node, geo, {xv}, ops::ConstView(yv), nullptr,
                                ops::ConstView(ops::View{const_cast<float*>(gy.data()), cc.n, cc.f, out_len}),
                                {ops::View{gx.data(), cc.n, cc.c, cc.l}}, 1};
            b.overwrite = overwrite;
            ops::rules(OpKind::Conv).backward(b);
            CHECK(close(gx, gx_want));
        }
    }
}

void check_dense() {
    for (int trial = 0; trial < 100; ++trial) {
        const int64_t n = pick(1, 40), features = pick(1, 300), units = pick(1, 50);
        Node node;
        node.kind = OpKind::Dense;
        node.name = node.onnx_node = "dense";
        node.onnx_op = "Gemm";
        node.channels = static_cast<int>(units);
        node.weight = random_vector(units * features);
        node.bias = random_vector(units);
        ops::rules(OpKind::Dense).prepare(node);
        const ops::Resolved geo = ops::infer_dense(node, {Shape{features, 1}});
        const std::vector<float> x = random_vector(n * features);
        std::vector<float> y(static_cast<size_t>(n * units)), want(y.size());
        ops::ConstView xv(ops::View{const_cast<float*>(x.data()), n, features, 1});
        ops::View yv{y.data(), n, units, 1};
        ops::rules(OpKind::Dense).forward(ops::ForwardArgs{node, geo, {xv}, yv, nullptr});
        for (int64_t i = 0; i < n; ++i)
            for (int64_t u = 0; u < units; ++u) {
                double acc = node.bias[u];
                for (int64_t q = 0; q < features; ++q)
                    acc += static_cast<double>(node.weight[u * features + q]) * x[i * features + q];
                want[i * units + u] = static_cast<float>(acc);
            }
        CHECK(close(y, want));
        const std::vector<float> gy = random_vector(n * units);
        std::vector<float> gx(static_cast<size_t>(n * features), 0.f), gx_want = gx;
        ops::BackwardArgs b{node, geo, {xv}, ops::ConstView(yv), nullptr,
                            ops::ConstView(ops::View{const_cast<float*>(gy.data()), n, units, 1}),
                            {ops::View{gx.data(), n, features, 1}}, 1};
        ops::rules(OpKind::Dense).backward(b);
        for (int64_t i = 0; i < n; ++i)
            for (int64_t u = 0; u < units; ++u)
                for (int64_t q = 0; q < features; ++q)
                    gx_want[i * features + q] += node.weight[u * features + q] * gy[i * units + u];
        CHECK(close(gx, gx_want));
    }
}

// The few-units / few-features product (dot and axpy forms) against loops: strided rows,
// bias or accumulation, every edge of the vector width.
void check_small_product() {
    for (int trial = 0; trial < 200; ++trial) {
        const int64_t n = pick(1, 20), u = pick(1, 40), d = pick(1, 70);
        const int64_t xs = d + pick(0, 3), ys = u + pick(0, 3);
        const bool accumulate = pick(0, 1) == 1, with_bias = pick(0, 1) == 1;
        const std::vector<float> w = random_vector(u * d), x = random_vector(n * xs), bias = random_vector(u);
        std::vector<float> w_t(static_cast<size_t>(d * u));
        for (int64_t j = 0; j < u; ++j)
            for (int64_t p = 0; p < d; ++p) w_t[p * u + j] = w[j * d + p];
        std::vector<float> y = random_vector(n * ys), want = y;
        ops::small_product(n, u, d, x.data(), xs, w.data(), w_t.data(), with_bias ? bias.data() : nullptr, accumulate,
                           y.data(), ys);
        for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < u; ++j) {
                double acc = accumulate ? want[i * ys + j] : (with_bias ? bias[j] : 0.f);
                for (int64_t p = 0; p < d; ++p) acc += static_cast<double>(w[j * d + p]) * x[i * xs + p];
                want[i * ys + j] = static_cast<float>(acc);
            }
        CHECK(close(y, want));
    }
}

// A convolution's input gradient from a max-pooling's cotangent rows (pooled_tap_product)
// against its loop definition: filters, channels (around the 16-lane panels, and over 32, which
// no kernel serves), taps, dilations, padding, windows whose argmax is missing or whose gate is
// off (NaN in the gate, and NaN in such a window's value, which must not reach dx), overlapping
// windows (two with one argmax), rows around the row tiles, set and added. Weights with a NaN:
// not served (a zero window times a NaN is NaN in the dense product).
void check_pooled_tap_product() {
    int served = 0;
    for (int trial = 0; trial < 400; ++trial) {
        const int64_t filters = pick(1, 40);
        const int64_t channels = trial % 10 == 0 ? pick(33, 40) : trial % 3 == 0 ? pick(1, 4) : pick(1, 32);
        const int64_t k_n = pick(1, 7), dil = pick(1, 3), in_len = pick(1, 60), pad = pick(0, (k_n - 1) * dil);
        const int64_t out_len = std::max<int64_t>(1, in_len + 2 * pad - (k_n - 1) * dil), windows = pick(1, 30);
        const int64_t rows = pick(1, 40);
        std::vector<float> w = random_vector(channels * filters * k_n);  // (channel, filter * K + k)
        const bool poisoned = trial % 25 == 0;
        if (poisoned) w[static_cast<size_t>(pick(0, static_cast<int64_t>(w.size()) - 1))] = std::nanf("");
        const ops::PackedMatrix packed = ops::pack_matrix(channels, filters * k_n, w.data(), filters * k_n, 1);
        ops::TapProduct g;
        g.a = &packed;
        g.channels = filters;
        g.kernel = k_n;
        g.dilation = dil;
        g.transposed = true;
        g.ldd = in_len;
        g.accumulate = pick(0, 1) == 1;
        std::vector<int32_t> arg(static_cast<size_t>(filters * windows));
        for (int32_t& a : arg) a = pick(0, 9) == 0 ? -1 : static_cast<int32_t>(pick(0, out_len - 1));
        if (arg.size() > 1) arg[1] = arg[0];  // two windows, one argmax
        std::vector<float> gate = random_vector(filters * windows);
        gate[0] = std::nanf("");
        std::vector<float> gy = random_vector(rows * (filters * windows + 1));
        // A NaN in a window that the gate turns off (the first such), in every row.
        const bool gated = pick(0, 1) == 1;
        for (int64_t oj = 0; gated && oj < filters * windows; ++oj)
            if (!(gate[oj] > 0.f)) {
                for (int64_t r = 0; r < rows; ++r) gy[r * (filters * windows + 1) + oj] = std::nanf("");
                break;
            }
        const std::vector<float> start = random_vector(rows * (channels * in_len + 1) + 4);
        std::vector<float> got = start, want = start;
        ops::PooledRows p;
        p.arg = arg.data();
        p.gate = gated ? gate.data() : nullptr;
        p.windows = windows;
        p.pad = pad;
        p.gy = gy.data();
        p.gy_ld = filters * windows + 1;
        p.dx_ld = channels * in_len + 1;
        p.rows = rows;
        p.dx = got.data();
        const bool ran = ops::pooled_tap_product(g, p);
        if (poisoned || channels > 32 || ops::isa_level() < 1) {
            CHECK(!ran);
            CHECK(got == start);  // nothing written
            continue;
        }
        CHECK(ran);
        ++served;
        p.dx = want.data();
        ops::pooled_tap_product_reference(g, w.data(), p);
        CHECK(close(got, want));
        CHECK(std::equal(got.end() - 4, got.end(), start.end() - 4));  // nothing past the last row
    }
    CHECK(served > 0 || ops::isa_level() < 1);
}

// Row sums (global average pooling, forward-mode saliency's sums over positions) against the
// plain loop: every row count around the eight-row groups, lengths around the vector width.
void check_row_sums() {
    for (int trial = 0; trial < 300; ++trial) {
        const int64_t rows = pick(1, 30), len = pick(1, trial < 200 ? 40 : 300);
        const float scale = trial % 3 == 0 ? 1.f : 1.f / static_cast<float>(len);
        const std::vector<float> x = random_vector(rows * len);
        std::vector<float> got(static_cast<size_t>(rows) + 1, 7.f), want(static_cast<size_t>(rows) + 1, 7.f);
        ops::row_sums(x.data(), rows, len, scale, got.data());
        ops::row_sums_reference(x.data(), rows, len, scale, want.data());
        CHECK(close(got, want, 1e-6));
        CHECK(got[rows] == 7.f);  // nothing written past the last row
    }
}

// Band sums (forward-mode saliency's sums into the filter-major grid) against the plain loop:
// tangent counts around the eight-tangent groups, band widths around the vector width, rows
// spaced as a chunk's tangents of one input channel are (stride >= f_n * w); only the grid's
// cells are written.
void check_band_sums() {
    for (int trial = 0; trial < 300; ++trial) {
        const int64_t n = pick(1, 30), f_n = pick(1, 12), w = pick(1, trial < 200 ? 20 : 70);
        const int64_t stride = f_n * w * pick(1, 3), ld = n + pick(0, 5);
        const std::vector<float> x = random_vector((n - 1) * stride + f_n * w);
        std::vector<float> got(static_cast<size_t>(f_n * ld), 7.f), want(got);
        ops::band_sums(x.data(), n, stride, f_n, w, got.data(), ld);
        ops::band_sums_reference(x.data(), n, stride, f_n, w, want.data(), ld);
        CHECK(close(got, want, 1e-6));
        for (int64_t f = 0; f < f_n; ++f)
            for (int64_t j = n; j < ld; ++j) CHECK(got[static_cast<size_t>(f * ld + j)] == 7.f);
    }
}

// Add's tangent (forward-mode saliency through a residual sum) against its plain loops: bands
// of every width at random offsets inside the output's, a missing input, with and without the
// fused ReLU's gate (NaN in the forward sum included). The sum is the same (0 + p + q): equal
// values, up to the sign of a zero.
void check_tangent_add() {
    Node node;
    node.kind = OpKind::Add;
    for (int trial = 0; trial < 300; ++trial) {
        const int64_t count = pick(1, 4), c_n = pick(1, 20), w_out = pick(1, 40), len = w_out + pick(0, 20);
        const int64_t inputs = pick(1, 3);
        ops::Resolved geo;
        geo.out = {c_n, len};
        std::vector<float> forward = random_vector(c_n * len);
        if (trial % 5 == 0) forward[static_cast<size_t>(pick(0, c_n * len - 1))] = std::nanf("");
        std::vector<int64_t> start_out(static_cast<size_t>(count));
        for (int64_t& s : start_out) s = pick(0, len - w_out);
        std::vector<std::vector<float>> t_in(static_cast<size_t>(inputs));
        std::vector<std::vector<int64_t>> start_in(static_cast<size_t>(inputs));
        std::vector<int64_t> w_in(static_cast<size_t>(inputs));
        ops::TangentArgs args{node, geo, {}, ops::ConstView(ops::View{forward.data(), 1, c_n, len}), nullptr, count,
                              {}, {}, {}, nullptr, w_out, start_out.data(), trial % 2 == 0};
        for (int64_t k = 0; k < inputs; ++k) {
            w_in[k] = pick(1, w_out);
            t_in[k] = random_vector(count * c_n * w_in[k]);
            start_in[k].resize(static_cast<size_t>(count));
            for (int64_t t = 0; t < count; ++t) start_in[k][t] = start_out[t] + pick(0, w_out - w_in[k]);
            const bool missing = inputs > 1 && k == 1 && trial % 7 == 0;  // an input the tangent does not reach
            args.in.push_back(args.out);
            args.t_in.push_back(missing ? nullptr : t_in[k].data());
            args.w_in.push_back(w_in[k]);
            args.start_in.push_back(start_in[k].data());
        }
        std::vector<float> got(static_cast<size_t>(count * c_n * w_out) + 1, 7.f), want = got;
        args.t_out = got.data();
        ops::rules(OpKind::Add).tangent(args);
        args.t_out = want.data();
        ops::tangent_add_reference(args);
        CHECK(got == want);
    }
}

// The vectorisable exp, tanh and logistic function against the C library on a dense grid:
// within 4e-7 of the value relative to max(1, |value|) for tanh and the logistic function,
// 4e-7 relative for exp.
void check_fast_math() {
    double worst_exp = 0, worst_tanh = 0, worst_sigmoid = 0;
    for (int i = -2000000; i <= 2000000; ++i) {
        const float x = static_cast<float>(i) * 4.3e-5f;  // [-86, 86]
        const double e = std::exp(static_cast<double>(x));
        worst_exp = std::max(worst_exp, std::fabs(ops::fast_exp(x) - e) / e);
        const float v = x / 4.f;  // [-21.5, 21.5]
        const double t = std::tanh(static_cast<double>(v));
        worst_tanh = std::max(worst_tanh, std::fabs(ops::fast_tanh(v) - t) / std::max(1e-30, std::fabs(t)));
        const double s = 1.0 / (1.0 + std::exp(-static_cast<double>(v)));
        worst_sigmoid = std::max(worst_sigmoid, std::fabs(ops::fast_sigmoid(v) - s) / s);
    }
    CHECK(worst_exp <= 4e-7);
    CHECK(worst_tanh <= 4e-7);
    CHECK(worst_sigmoid <= 4e-7);
    const float nan = std::nanf("");
    CHECK(std::isnan(ops::fast_tanh(nan)));
    CHECK(std::isnan(ops::fast_sigmoid(nan)));
    CHECK(ops::fast_tanh(0.f) == 0.f && ops::fast_tanh(30.f) == 1.f && ops::fast_tanh(-30.f) == -1.f);
    CHECK(ops::fast_sigmoid(-200.f) >= 0.f && ops::fast_sigmoid(200.f) == 1.f);
    // expm1 on x <= 0.
    double worst_expm1 = 0;
    for (int i = 0; i <= 2000000; ++i) {
        const float x = -static_cast<float>(i) * 4.3e-5f;  // [-86, 0]
        const double e = std::expm1(static_cast<double>(x));
        worst_expm1 = std::max(worst_expm1, std::fabs(ops::fast_expm1_neg(x) - e) / std::max(1e-2, std::fabs(e)));
    }
    CHECK(worst_expm1 <= 4e-7);
    CHECK(std::isnan(ops::fast_expm1_neg(nan)) && ops::fast_expm1_neg(0.f) == 0.f);
    std::printf("fast math: worst relative error exp %.2g, tanh %.2g, logistic %.2g, expm1 %.2g\n", worst_exp,
                worst_tanh, worst_sigmoid, worst_expm1);
}

// softplus, erf, Mish's factors and log(1 + u) on [0, 1] against the C library in double on
// dense grids and at the extremes. Relative error wherever the value is a normal float (the
// vectorised exp flushes below e^-87, about 1.6e-38, to 0: absolute error under 1.7e-38 there).
void check_fast_smooth() {
    const float inf = std::numeric_limits<float>::infinity(), nan = std::nanf("");
    const double tiny = 1.7e-38;
    auto rel = [](double got, double want) { return std::fabs(got - want) / std::fabs(want); };
    double worst_log1p = 0, worst_softplus = 0, worst_softplus_abs = 0, worst_erf = 0;
    double worst_mish = 0, worst_mish_abs = 0, worst_mish_one_minus = 0, worst_mish_sigmoid = 0, worst_gelu = 0;
    for (int i = 1; i <= 2000000; ++i) {
        const float u = static_cast<float>(i) * 5e-7f;  // (0, 1]
        worst_log1p = std::max(worst_log1p, rel(ops::fast_log1p_unit(u), std::log1p(static_cast<double>(u))));
    }
    for (int e = -149; e <= -1; ++e) {  // tiny u, denormals included: log(1 + u) = u
        const float u = std::ldexp(1.f, e) * 1.3f;
        worst_log1p = std::max(worst_log1p, rel(ops::fast_log1p_unit(u), std::log1p(static_cast<double>(u))));
    }
    for (int i = -3000000; i <= 3000000; ++i) {
        const float x = static_cast<float>(i) * 3.3e-5f;  // [-99, 99]
        const double xd = x;
        // log(1 + e^x), in double without overflow.
        const double sp = xd > 0 ? xd + std::log1p(std::exp(-xd)) : std::log1p(std::exp(xd));
        const float got = ops::fast_softplus(x);
        if (sp >= tiny)
            worst_softplus = std::max(worst_softplus, rel(got, sp));
        else
            worst_softplus_abs = std::max(worst_softplus_abs, std::fabs(got - sp));
        const double t = std::tanh(sp);
        const ops::MishParts m = ops::fast_mish_parts(x);
        // Below -87, where e^x is flushed, x tanh(softplus x) = x e^x is under 2e-36.
        if (x >= -87.f)
            worst_mish = std::max(worst_mish, rel(x * m.tanh_sp, xd * t));
        else
            worst_mish_abs = std::max(worst_mish_abs, std::fabs(x * m.tanh_sp - xd * t));
        // 1 - tanh(s) = 2 / (e^{2s} + 1), without the cancellation; 2 e^{-2x} for large x, a
        // normal float up to x = 43.
        const double one_minus = 2.0 / (std::exp(2.0 * sp) + 1.0);
        if (one_minus >= tiny)
            worst_mish_one_minus = std::max(worst_mish_one_minus, rel(m.one_minus, one_minus));
        else
            worst_mish_abs = std::max(worst_mish_abs, std::fabs(m.one_minus - one_minus));
        const double s = 1.0 / (1.0 + std::exp(-xd));
        if (s >= tiny) worst_mish_sigmoid = std::max(worst_mish_sigmoid, rel(m.sigmoid, s));
        const float v = x / 16.f;  // [-6.2, 6.2]
        const double vd = v;
        if (v != 0.f) worst_erf = std::max(worst_erf, rel(ops::fast_erf(v), std::erf(vd)));
        // GELU as the engine writes it, 0.5 v (1 + erf(v / sqrt 2)): error relative to max(1, |value|),
        // since 1 + erf cancels for negative v (in the C library's erf as well).
        const double gelu = 0.5 * vd * std::erfc(-vd / std::sqrt(2.0));
        const float gelu_fast = 0.5f * v * (1.f + ops::fast_erf(v * 0.70710678118654752f));
        worst_gelu = std::max(worst_gelu, std::fabs(gelu_fast - gelu) / std::max(1.0, std::fabs(gelu)));
    }
    for (int e = -125; e <= -1; ++e) {  // erf(x) = 2x / sqrt(pi) for tiny x
        const float x = std::ldexp(1.f, e) * 1.7f;
        worst_erf = std::max(worst_erf, rel(ops::fast_erf(x), std::erf(static_cast<double>(x))));
        worst_erf = std::max(worst_erf, rel(ops::fast_erf(-x), std::erf(-static_cast<double>(x))));
    }
    CHECK(worst_log1p <= 2e-7);
    CHECK(worst_softplus <= 2e-7);
    CHECK(worst_softplus_abs <= tiny);
    CHECK(worst_erf <= 2.5e-7);
    CHECK(worst_mish <= 4e-7);
    CHECK(worst_mish_abs <= 2e-36);
    CHECK(worst_mish_one_minus <= 4e-7);
    CHECK(worst_mish_sigmoid <= 4e-7);
    CHECK(worst_gelu <= 2e-7);
    // The extremes as the C library has them; NaN in, NaN out.
    CHECK(ops::fast_log1p_unit(0.f) == 0.f && ops::fast_log1p_unit(1.f) == static_cast<float>(std::log(2.0)));
    CHECK(ops::fast_softplus(inf) == inf && ops::fast_softplus(-inf) == 0.f && ops::fast_softplus(1e30f) == 1e30f);
    CHECK(ops::fast_softplus(-200.f) == 0.f && std::isnan(ops::fast_softplus(nan)));
    CHECK(ops::fast_erf(inf) == 1.f && ops::fast_erf(-inf) == -1.f && ops::fast_erf(4.f) == 1.f);
    CHECK(ops::fast_erf(-1e30f) == -1.f && ops::fast_erf(0.f) == 0.f && std::signbit(ops::fast_erf(-0.f)));
    CHECK(std::isnan(ops::fast_erf(nan)));
    CHECK(ops::fast_exp0(-inf) == 0.f && ops::fast_exp0(-88.f) == 0.f);
    const ops::MishParts hi = ops::fast_mish_parts(inf), lo = ops::fast_mish_parts(-inf);
    CHECK(hi.tanh_sp == 1.f && hi.one_minus == 0.f && hi.sigmoid == 1.f);
    CHECK(lo.tanh_sp == 0.f && lo.one_minus == 1.f && lo.sigmoid == 0.f);
    std::printf("fast math: worst relative error log1p %.2g, softplus %.2g (absolute %.2g below 1.7e-38), erf %.2g, "
                "mish %.2g (absolute %.2g in the tails), 1 - tanh(softplus) %.2g, its logistic %.2g; gelu %.2g of "
                "max(1, |value|)\n",
                worst_log1p, worst_softplus, worst_softplus_abs, worst_erf, worst_mish, worst_mish_abs, worst_mish_one_minus,
                worst_mish_sigmoid, worst_gelu);
}

}  // namespace

// A channel-major Flatten is its input as it lies: the arena lays both out on the same memory
// and its forward copies nothing; a position-major one (after a channels-last Transpose)
// reorders, into storage of its own. Both give their definitions' values.
void check_flatten_views() {
    Graph g;
    g.input_channels = 3;
    auto node = [&](OpKind kind, std::vector<int> inputs, bool position_major) {
        Node n;
        n.kind = kind;
        n.inputs = std::move(inputs);
        n.position_major = position_major;
        n.name = n.onnx_node = "node" + std::to_string(g.nodes.size());
        g.nodes.push_back(n);
    };
    node(OpKind::Input, {}, false);
    node(OpKind::Relu, {0}, false);
    node(OpKind::Flatten, {1}, false);
    node(OpKind::Flatten, {1}, true);
    g.output = 3;
    const int64_t n = 5, c = 3, t = 7;
    Activations act = allocate(g, n, t);
    CHECK(act.geo[2].view_of == 1 && act.geo[3].view_of == -1);
    CHECK(act.offset[2] == act.offset[1]);
    CHECK(act.offset[3] >= act.offset[1] + n * c * t);
    // input, ReLU, reordered Flatten; each tensor on a cache line of its own
    const int64_t lined = (n * c * t + ops::kLineFloats - 1) / ops::kLineFloats * ops::kLineFloats;
    CHECK(static_cast<int64_t>(act.arena.size()) == 3 * lined);
    CHECK(reinterpret_cast<uintptr_t>(act.arena.data()) % 64 == 0);
    for (const int64_t offset : act.offset) CHECK(offset % ops::kLineFloats == 0);
    const std::vector<float> x = random_vector(n * c * t);
    std::copy(x.begin(), x.end(), act.arena.data() + act.offset[0]);
    forward(g, act);
    bool channel_major = true, position_major = true;
    for (int64_t s = 0; s < n; ++s)
        for (int64_t ch = 0; ch < c; ++ch)
            for (int64_t l = 0; l < t; ++l) {
                const float want = std::max(x[(s * c + ch) * t + l], 0.f);
                channel_major = channel_major && act.arena[act.offset[2] + s * c * t + ch * t + l] == want;
                position_major = position_major && act.arena[act.offset[3] + s * c * t + l * c + ch] == want;
            }
    CHECK(channel_major);
    CHECK(position_major);
}

// A position-major Flatten (channels-last nets) and its gradient against their definition:
// shapes around the 8 x 8 blocks of the transposes (whole and partial blocks of rows and
// columns), the gradient written over garbage and added onto what is there.
void check_flatten_transposes() {
    for (int trial = 0; trial < 200; ++trial) {
        const int64_t n = pick(1, 3), c = pick(1, 40), l = pick(1, 40);
        Node node;
        node.kind = OpKind::Flatten;
        node.name = node.onnx_node = "flatten";
        node.position_major = true;
        const ops::Resolved geo = ops::infer_flatten(node, {Shape{c, l}});
        CHECK(geo.out.c == c * l && geo.out.l == 1);
        const std::vector<float> x = random_vector(n * c * l);
        std::vector<float> y(static_cast<size_t>(n * c * l), std::nanf(""));
        ops::ConstView xv(ops::View{const_cast<float*>(x.data()), n, c, l});
        ops::View yv{y.data(), n, c * l, 1};
        ops::rules(OpKind::Flatten).forward(ops::ForwardArgs{node, geo, {xv}, yv, nullptr});
        bool same = true;
        for (int64_t s = 0; s < n; ++s)
            for (int64_t ch = 0; ch < c; ++ch)
                for (int64_t p = 0; p < l; ++p) same = same && y[s * c * l + p * c + ch] == x[(s * c + ch) * l + p];
        CHECK(same);
        const std::vector<float> gy = random_vector(n * c * l);
        for (const bool overwrite : {false, true}) {
            std::vector<float> gx = random_vector(n * c * l), want = gx;
            if (overwrite) std::fill(gx.begin(), gx.end(), std::nanf(""));
            for (int64_t s = 0; s < n; ++s)
                for (int64_t ch = 0; ch < c; ++ch)
                    for (int64_t p = 0; p < l; ++p) {
                        const float v = gy[s * c * l + p * c + ch];
                        float& w = want[(s * c + ch) * l + p];
                        w = overwrite ? v : w + v;
                    }
            ops::BackwardArgs b{node, geo, {xv}, ops::ConstView(yv), nullptr,
                                ops::ConstView(ops::View{const_cast<float*>(gy.data()), n, c * l, 1}),
                                {ops::View{gx.data(), n, c, l}}, 1};
            b.overwrite = overwrite;
            ops::rules(OpKind::Flatten).backward(b);
            CHECK(gx == want);
        }
    }
}

// Max-pooling, forward and backward with one cotangent row per sample (an explanation's
// pass), against their definitions. Forward: each window's maximum over the taps inside the
// input and the first tap that holds it, a NaN winning over numbers (some trials put NaN in).
// Backward: each window's gradient goes to its argmax (the forward's aux), gated by the
// pooled value when a ReLU is fused in (relu_gate); written over garbage or added onto what
// is there. Windows of 2 and 3 that tile the input, with and without padding, rows of 1-40
// windows on inputs of an even and of an odd length (the last position in no window): the
// flat pass, the row-by-row one and the one for rows of at most 16 windows.
void check_max_pool() {
    for (int trial = 0; trial < 400; ++trial) {
        // Every fifth: windows of 2 over an odd length, at most 16 to a row (the short rows' path).
        const bool short_rows = trial % 5 == 0;
        const int64_t n = pick(1, 3), c = pick(1, 24), k = short_rows ? 2 : pick(2, 3),
                      windows = pick(1, short_rows ? 16 : 40);
        Node node;
        node.kind = OpKind::MaxPool;
        node.name = node.onnx_node = "pool";
        node.kernel = node.stride = k;
        node.pad_begin = !short_rows && pick(0, 2) == 0 ? 1 : 0;
        node.pad_end = 0;
        const int64_t x_l = k * windows + (short_rows ? 1 : pick(0, k - 1)) - node.pad_begin;
        if (x_l < k) continue;
        const ops::Resolved geo = ops::infer_max_pool(node, {Shape{c, x_l}});
        const int64_t y_l = geo.out.l;
        std::vector<float> x = random_vector(n * c * x_l);
        if (trial % 4 == 0)
            for (int64_t i = 0; i < 1 + n * c * x_l / 16; ++i) x[static_cast<size_t>(pick(0, n * c * x_l - 1))] = std::nanf("");
        std::vector<float> y(static_cast<size_t>(n * c * y_l));
        std::vector<int32_t> arg(static_cast<size_t>(n * geo.aux_per_sample));
        ops::ConstView xv(ops::View{const_cast<float*>(x.data()), n, c, x_l});
        ops::View yv{y.data(), n, c, y_l};
        ops::rules(OpKind::MaxPool).forward(ops::ForwardArgs{node, geo, {xv}, yv, arg.data()});
        bool forward_ok = true;
        for (int64_t w = 0; w < n * c * y_l; ++w) {
            const int64_t row = w / y_l, o = w % y_l;
            const float* xr = x.data() + row * x_l;
            int64_t at = -1;
            for (int64_t j = 0; j < k; ++j) {
                const int64_t i = o * k - node.pad_begin + j;
                if (i < 0 || i >= x_l) continue;
                if (at < 0 || xr[i] > xr[at] || (std::isnan(xr[i]) && !std::isnan(xr[at]))) at = i;
            }
            const float got = y[static_cast<size_t>(w)];
            forward_ok = forward_ok && arg[static_cast<size_t>(w)] == at &&
                         (std::isnan(xr[at]) ? std::isnan(got) : got == xr[at]);
        }
        CHECK(forward_ok);
        const std::vector<float> gy = random_vector(n * c * y_l);
        for (const bool gate : {false, true})
            for (const bool overwrite : {false, true}) {
                std::vector<float> gx = random_vector(n * c * x_l), want = gx;
                if (overwrite) {
                    std::fill(gx.begin(), gx.end(), std::nanf(""));
                    std::fill(want.begin(), want.end(), 0.f);
                }
                for (int64_t w = 0; w < n * c * y_l; ++w) {
                    const int64_t row = w / y_l, at = arg[static_cast<size_t>(w)];
                    if (at >= 0 && (!gate || y[static_cast<size_t>(w)] > 0.f)) want[static_cast<size_t>(row * x_l + at)] += gy[static_cast<size_t>(w)];
                }
                ops::BackwardArgs b{node, geo, {xv}, ops::ConstView(yv), arg.data(),
                                    ops::ConstView(ops::View{const_cast<float*>(gy.data()), n, c, y_l}),
                                    {ops::View{gx.data(), n, c, x_l}}, 1};
                b.overwrite = overwrite;
                b.relu_gate = gate;
                ops::rules(OpKind::MaxPool).backward(b);
                CHECK(gx == want);
            }
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// The AVX2 stores of part of a vector (store_span8 and the helpers on it; they stand in for
// maskstore): every span of lanes [lo, hi), float and int32 lanes, at an unaligned address,
// writes exactly those lanes and leaves the neighbours alone.
__attribute__((target("avx2"))) void check_partial_stores_avx2() {
    const __m256 v = _mm256_setr_ps(1, 2, 3, 4, 5, 6, 7, 8);
    const __m256i vi = _mm256_setr_epi32(11, 12, 13, 14, 15, 16, 17, 18);
    bool floats = true, ints = true, inside = true, bits = true;
    for (int64_t lo = 0; lo <= 8; ++lo)
        for (int64_t hi = 0; hi <= 8; ++hi) {
            float f[11];
            int32_t k[11];
            std::fill(f, f + 11, -1.f);
            std::fill(k, k + 11, -1);
            ops::store_span8(f + 1, v, lo, hi);
            ops::store_span8(k + 1, vi, lo, hi);
            for (int64_t i = 0; i < 11; ++i) {
                const bool in = i - 1 >= lo && i - 1 < hi;
                floats = floats && f[i] == (in ? static_cast<float>(i) : -1.f);
                ints = ints && k[i] == (in ? static_cast<int32_t>(10 + i) : -1);
            }
            // store_inside8(p0, len): the lanes whose positions p0 + lane lie in [0, len)
            const int64_t p0 = -lo, len = hi - lo;
            std::fill(f, f + 11, -1.f);
            ops::store_inside8(f + 1, v, p0, len);
            for (int64_t i = 0; i < 11; ++i) {
                const bool in = i - 1 >= lo && i - 1 < std::max(lo, hi);
                inside = inside && f[i] == (in ? static_cast<float>(i) : -1.f);
            }
            // store_bits8: the same lanes as bits
            const unsigned mask = lo < hi ? ((1u << hi) - 1u) & ~((1u << lo) - 1u) : 0u;
            std::fill(f, f + 11, -1.f);
            ops::store_bits8(f + 1, v, mask);
            for (int64_t i = 0; i < 11; ++i) {
                const bool in = i - 1 >= lo && i - 1 < hi;
                bits = bits && f[i] == (in ? static_cast<float>(i) : -1.f);
            }
        }
    CHECK(floats);
    CHECK(ints);
    CHECK(inside);
    CHECK(bits);
}
void check_partial_stores() {
    if (__builtin_cpu_supports("avx2")) check_partial_stores_avx2();
}
#else
void check_partial_stores() {}
#endif

int main() {
    check_partial_stores();
    check_flatten_views();
    check_flatten_transposes();
    check_max_pool();
    check_fast_math();
    check_fast_smooth();
    check_tap_product();
    check_zero_rows_keep_nan();
    check_relu_special_values();
    check_long_padded_row();
    check_whole_panels();
    check_zero_row_scan();
    check_conv();
    check_dense();
    check_small_product();
    check_row_sums();
    check_band_sums();
    check_tangent_add();
    check_pooled_tap_product();
    return testing::report("kernels");
}
