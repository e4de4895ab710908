// The matrix product under convolution and dense layers, their input gradients and their
// forward-mode tangents. A (M x K) is packed once into row panels; B (K x columns) is never
// materialised: its columns are gathered straight into packed panels from the tensors by a tap
// rule, so im2col, the batch (or the cotangent rows, or the tangents) folded into the column
// dimension, and packing are one pass. Columns come in segments, one per sample, row or
// tangent, each with its own source and destination.
//
// Blocking after BLIS: a kc x NR panel of B stays in L1 while every MR-row panel of A passes
// over it; the micro-kernel holds an MR x NR block of C in vector registers (AVX-512: 8 x 32
// in 16 zmm; AVX2 + FMA: 6 x 16 in 12 ymm; elsewhere 4 x 8), chosen once at run time.
// Edges are zero-padded in the packed panels and masked at the store, so odd shapes run the
// same kernel.
#pragma once

#include <cstdint>
#include <vector>

#include "buffer.hpp"

namespace tsviz::ops {

// A (rows x depth) in panels of mr rows: data[(panel * depth + p) * mr + i] = A(panel * mr + i, p),
// zero past the last row.
struct PackedMatrix {
    int64_t rows = 0;
    int64_t depth = 0;
    int64_t mr = 0;
    LineVector<float> data;
    LineVector<float> plain;  // A row-major, for products of very few rows (no panels)
    // Panels of wide_mr rows, as data, for the narrow-segment kernel: 16 on AVX-512 (a zmm
    // register each), 8 on AVX2 (a ymm); empty on the plain kernels.
    LineVector<float> wide;
    int64_t wide_mr = 0;
    // Every element is finite: a product may then leave out the source rows that are all zero
    // (0 times a NaN or an infinity would not be 0).
    bool finite = true;
    const float* panel(int64_t p) const { return data.data() + p * depth * mr; }
};

// Packs A with A(i, p) = a[i * row_stride + p * col_stride].
PackedMatrix pack_matrix(int64_t rows, int64_t depth, const float* a, int64_t row_stride, int64_t col_stride);

// Conv and Dense weights, per group: A for the forward (filters x channels * kernel) and for
// the input gradient (channels x filters * kernel).
struct PackedWeights {
    std::vector<PackedMatrix> forward;
    std::vector<PackedMatrix> transposed;
    // Strided convolutions: (channel c * kernel + tap k, filter f) = W[f, c, k], whose product
    // with the output gradient gives every tap's contribution, scattered into the input
    // gradient afterwards (col2im).
    std::vector<PackedMatrix> columns;
    // Conv, per filter f: (channel c of f's group, tap k) = W[f, c, k], the input gradient of a
    // cotangent that is zero outside filter f (reverse-mode saliency).
    std::vector<PackedMatrix> filters;
};

// One segment of columns: `cols` consecutive output columns o = 0 .. cols-1, read from `src`
// ((channels x src_len), row-major) and written to dst + row * ldd + o.
struct Segment {
    const float* src = nullptr;
    int64_t src_len = 0;
    int64_t cols = 0;
    int64_t delta = 0;
    float* dst = nullptr;
    // When set, a ReLU's tangent fused into the product: each result is kept where the gate
    // (the forward value at the same row and column, row stride TapProduct::gate_ld) is
    // positive, and 0 elsewhere.
    const float* gate = nullptr;
};

// B's row p = c * kernel + k at column o of a segment reads src[c, i] with
//   forward taps:    i = o * stride + delta + k * dilation                  (convolution, dense)
//   transposed taps: i = (o - delta - k * dilation) / stride, when whole   (its input gradient)
// and 0 when i falls outside [0, src_len).
struct TapProduct {
    const PackedMatrix* a = nullptr;  // (M x channels * kernel)
    int64_t channels = 0;
    int64_t kernel = 1;
    int64_t stride = 1;
    int64_t dilation = 1;
    bool transposed = false;
    int64_t ldd = 0;                  // destination row stride
    const float* bias = nullptr;      // per row, added when not accumulating; may be null
    bool accumulate = false;          // dst += A * B instead of dst = A * B + bias
    // The ONNX Relu of what is stored (after the bias or the sum), fused into the product's
    // stores, as ops::relu (ops/fast_math.hpp) defines it.
    bool relu = false;
    int64_t gate_ld = 0;              // row stride of the segments' gates
};

// Runs the product over all segments; splits large work over the engine's threads.
void tap_product(const TapProduct& p, const Segment* segments, int64_t n_segments);
// Room for n segments, the calling thread's, kept between calls so that building a product's
// segments allocates nothing; valid until the thread asks again (an op builds one product's
// segments at a time).
Segment* segment_scratch(int64_t n);

// The same result by plain loops, for tests and as the definition.
void tap_product_reference(const TapProduct& p, const float* a, const Segment* segments, int64_t n_segments);

// The input gradient of a stride-1 convolution for cotangent rows of one sample whose output
// cotangent is a max-pooling's backward: the pooled cotangent is zero but at each window's
// argmax (and where a ReLU between the two is off), so the product reads each window's value
// once instead of every position of the convolution's output. For row r < rows:
//   dx[r, c, i] (= or, with g.accumulate, +=) sum over windows (o, w) whose argmax
//   t = arg[o * windows + w] >= 0 (and gate[o * windows + w] > 0 when gate is set), and taps k
//   with i = t - pad + k * dilation in [0, ldd), of W[o, c, k] * gy[r * gy_ld + o * windows + w],
// g being the convolution's input-gradient product (transposed weights, channels = filters,
// its kernel and dilation, ldd = the input's length). With few input channels (4 on AVX-512,
// 3 on AVX2) the vector lanes hold rows, above them channels. Returns false, and does nothing,
// where no kernel serves it (neither AVX2 nor AVX-512, over 32 channels, weights not all
// finite: then a zero window would not be the zero it is in the dense product); the caller
// takes the dense path.
struct PooledRows {
    const int32_t* arg = nullptr;  // filters x windows: positions in the convolution's output
    const float* gate = nullptr;   // filters x windows, or null
    int64_t windows = 0;
    int64_t pad = 0;               // the convolution's padding before the input
    const float* gy = nullptr;     // rows x (filters x windows), row stride gy_ld
    int64_t gy_ld = 0;
    float* dx = nullptr;           // rows x (channels x ldd), row stride dx_ld
    int64_t dx_ld = 0;
    int64_t rows = 0;
};
bool pooled_tap_product(const TapProduct& g, const PooledRows& p);
// Whether pooled_tap_product serves g for up to p.rows rows (its other fields unread).
bool pooled_tap_product_serves(const TapProduct& g, const PooledRows& p);
// The same by plain loops, for tests and as the definition; a: the product's A (input channels
// x filters * kernel, row-major), as for tap_product_reference.
void pooled_tap_product_reference(const TapProduct& g, const float* a, const PooledRows& p);

// y (n x u, row stride y_step) = x (n x d, row stride x_step) * W^T, plus the bias (may be
// null), or added to y when accumulating; W is given both ways, w (u x d) and w_t (d x u),
// row-major. For dense layers with few units or few features (a regression head, a gradient
// through it), where padding to the blocked product's panels and packing a column per sample
// cost far more than the arithmetic: a row of x meets each row of W in a vector dot product,
// or (when u > d) adds rows of W^T scaled by its values.
void small_product(int64_t n, int64_t u, int64_t d, const float* x, int64_t x_step, const float* w,
                   const float* w_t, const float* bias, bool accumulate, float* y, int64_t y_step);
// Whether a dense product of u outputs over depth d takes small_product.
bool prefers_small_product(int64_t u, int64_t d);

// Row panel height of the micro-kernel this processor runs.
int64_t kernel_rows();

// The processor's kernels (2: AVX-512, 1: AVX2 + FMA, 0: plain), or fewer when the environment
// variable TSVIZ_KERNELS says "avx2" or "plain": the tests run every kernel on one machine.
int isa_level();

}  // namespace tsviz::ops
