// exp, tanh and the logistic function from arithmetic and selects only, so that the loops of
// the elementwise ops vectorise (the C library's are calls, one element at a time: tanh was
// half of a forward pass of the channels-last test net). Cephes' range reductions and
// polynomials, within a few units in the last place of the C library's results;
// cpp/tests/test_kernels.cpp checks them against it on a dense grid. NaN in gives NaN out.
#pragma once

#include <cstdint>
#include <cstring>

namespace tsviz::ops {

// c ? a : b by bit masks: GCC keeps a conditional whose arm holds a division as a branch when
// AVX is on, and a branch stops the loop from vectorising.
inline float select(bool c, float a, float b) {
    const int32_t mask = -static_cast<int32_t>(c);
    int32_t ia, ib;
    std::memcpy(&ia, &a, sizeof ia);
    std::memcpy(&ib, &b, sizeof ib);
    const int32_t r = (ia & mask) | (ib & ~mask);
    float out;
    std::memcpy(&out, &r, sizeof out);
    return out;
}

// e^x for x in [-87, 88] (clamped outside; NaN is clamped too, callers select it back).
inline float fast_exp(float x) {
    x = select(x > -87.f, x, -87.f);
    x = select(x < 88.f, x, 88.f);
    // n = round(x / ln 2) without floor(): a truncation, corrected for negative values.
    const float t = x * 1.44269504088896341f + 0.5f;
    float n = static_cast<float>(static_cast<int32_t>(t));
    n -= static_cast<float>(n > t);
    const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    const float z = r * r;
    float y = 1.9875691500e-4f;
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * z + r + 1.f;
    const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;  // 2^n, n in [-126, 127]
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return y * scale;
}

inline float fast_tanh(float x) {
    const float ax = x < 0.f ? -x : x;
    // |x| < 0.625: an odd polynomial; above, 1 - 2 / (e^{2|x|} + 1), exact to rounding there.
    const float z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    const float small = x + x * z * p;
    const float large = 1.f - 2.f / (fast_exp(2.f * ax) + 1.f);
    const float signed_large = select(x < 0.f, -large, large);
    return select(ax >= 0.625f, signed_large, small);  // NaN takes the polynomial: NaN out
}

inline float fast_sigmoid(float v) {
    const float e = fast_exp(v < 0.f ? v : -v);  // e^{-|v|}, never overflows
    const float s = select(v >= 0.f, 1.f, e) / (1.f + e);
    return select(v != v, v, s);
}

// e^x - 1 for x <= 0 (the negative side of ELU and SELU): a Taylor polynomial near 0, where
// e^x - 1 would lose the digits, else fast_exp(x) - 1. Within 2e-7 of the value relative to
// max(1e-2, |value|) (test_kernels); NaN in, NaN out.
inline float fast_expm1_neg(float x) {
    float p = 1.f / 40320.f;
    p = p * x + 1.f / 5040.f;
    p = p * x + 1.f / 720.f;
    p = p * x + 1.f / 120.f;
    p = p * x + 1.f / 24.f;
    p = p * x + 1.f / 6.f;
    p = p * x + 0.5f;
    const float near = x + x * x * p;
    return select(x != x, x, select(x > -0.5f, near, fast_exp(x) - 1.f));
}

}  // namespace tsviz::ops
