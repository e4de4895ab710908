// exp, tanh, the logistic function, softplus and erf from arithmetic and selects only, so that
// the loops of the elementwise ops vectorise (the C library's are calls, one element at a
// time: tanh was half of a forward pass of the channels-last test net, the C library's tanh,
// log1p and erf over half of one of the activation test nets). Cephes' range reductions and
// polynomials (erf's fitted here), within a few units in the last place of the C library's
// results; cpp/tests/test_kernels.cpp checks them against it on a dense grid. NaN in gives NaN
// out.
#pragma once

#include <cstdint>
#include <cstring>

#include "ops/simd.hpp"

namespace tsviz::ops {

// c ? a : b by bit masks: GCC keeps a conditional whose arm holds a division as a branch when
// AVX is on, and a branch stops the loop from vectorising.
TSVIZ_INLINE float select(bool c, float a, float b) {
    const int32_t mask = -static_cast<int32_t>(c);
    int32_t ia, ib;
    std::memcpy(&ia, &a, sizeof ia);
    std::memcpy(&ib, &b, sizeof ib);
    const int32_t r = (ia & mask) | (ib & ~mask);
    float out;
    std::memcpy(&out, &r, sizeof out);
    return out;
}

// The ONNX Relu: v above 0, or NaN (an input NaN must not become a plausible 0), stays v;
// everything else, -0 and -inf included, is +0. One definition for the Relu op, the ReLUs fused
// into a convolution or an Add (TapProduct::relu, ForwardArgs::relu) and their references.
TSVIZ_INLINE float relu(float v) { return v > 0.f || v != v ? v : 0.f; }

// c0 x^n + c1 x^(n-1) + ... + cn by Horner's rule, p = p * x + c in that order (the same
// operations, and roundings, as writing the steps out).
template <class... C>
TSVIZ_INLINE float horner(float x, float c0, C... c) {
    float p = c0;
    ((p = p * x + c), ...);
    return p;
}

// e^x for x in [-87, 88] (clamped outside; NaN is clamped too, callers select it back).
TSVIZ_INLINE float fast_exp(float x) {
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

TSVIZ_INLINE float fast_tanh(float x) {
    const float ax = x < 0.f ? -x : x;
    // |x| < 0.625: an odd polynomial; above, 1 - 2 / (e^{2|x|} + 1), exact to rounding there.
    const float z = x * x;
    const float p =
        horner(z, -5.70498872745e-3f, 2.06390887954e-2f, -5.37397155531e-2f, 1.33314422036e-1f, -3.33332819422e-1f);
    const float small = x + x * z * p;
    const float large = 1.f - 2.f / (fast_exp(2.f * ax) + 1.f);
    const float signed_large = select(x < 0.f, -large, large);
    return select(ax >= 0.625f, signed_large, small);  // NaN takes the polynomial: NaN out
}

TSVIZ_INLINE float fast_sigmoid(float v) {
    const float e = fast_exp(v < 0.f ? v : -v);  // e^{-|v|}, never overflows
    const float s = select(v >= 0.f, 1.f, e) / (1.f + e);
    return select(v != v, v, s);
}

// e^x - 1 for x <= 0 (the negative side of ELU and SELU): a Taylor polynomial near 0, where
// e^x - 1 would lose the digits, else fast_exp(x) - 1. Within 2e-7 of the value relative to
// max(1e-2, |value|) (test_kernels); NaN in, NaN out.
TSVIZ_INLINE float fast_expm1_neg(float x) {
    const float p = horner(x, 1.f / 40320.f, 1.f / 5040.f, 1.f / 720.f, 1.f / 120.f, 1.f / 24.f, 1.f / 6.f, 0.5f);
    const float near = x + x * x * p;
    return select(x != x, x, select(x > -0.5f, near, fast_exp(x) - 1.f));
}

// e^x, 0 below -87 where e^x is under the smallest normal float (fast_exp clamps there
// instead): for the tails of softplus, Mish and the Gaussian factors of the GELU and erf
// derivatives, so that -inf gives 0 as in the C library.
TSVIZ_INLINE float fast_exp0(float x) { return select(x < -87.f, 0.f, fast_exp(x)); }

// log(1 + u) for u in [0, 1], the softplus tail log(1 + e^{-|x|}). 1 + u lies in [1, 2], so
// no exponent needs extracting: below sqrt 2 it is 1 + f with f = u itself (exact), above it
// 2 (1 + f) with f = (u - 1) / 2; Cephes' polynomial for log(1 + f), |f| <= sqrt 2 - 1.
TSVIZ_INLINE float fast_log1p_unit(float u) {
    const bool high = u > 0.41421356f;
    const float f = select(high, (u - 1.f) * 0.5f, u);
    const float k = select(high, 1.f, 0.f);
    const float z = f * f;
    const float p = horner(f, 7.0376836292e-2f, -1.1514610310e-1f, 1.1676998740e-1f, -1.2420140846e-1f, 1.4249322787e-1f,
                           -1.6668057665e-1f, 2.0000714765e-1f, -2.4999993993e-1f, 3.3333331174e-1f);
    const float y = f * z * p - 0.5f * z - k * 2.12194440e-4f;
    return f + y + k * 0.693359375f;
}

// log(1 + e^x) = max(x, 0) + log(1 + e^{-|x|}); NaN in, NaN out.
TSVIZ_INLINE float fast_softplus(float x) {
    const float ax = select(x < 0.f, -x, x);
    const float r = select(x > 0.f, x, 0.f) + fast_log1p_unit(fast_exp0(-ax));
    return select(x != x, x, r);
}

// erf: x P(x^2) for |x| < 1.25; above, 1 - e^{Q(|x|)} with Q a polynomial for log erfc on
// [1.25, 3.9375] (|x| clamped to it: erf rounds to 1 in float from 3.9 on). Both fitted
// for this file by weighted least squares (the error of Q weighted by erfc / erf, as it reaches
// erf). NaN in, NaN out.
TSVIZ_INLINE float fast_erf(float x) {
    const float t = x * x;
    const float p = horner(t, -7.572962204e-06f, 1.039387644e-04f, -8.339569904e-04f, 5.209016148e-03f, -2.686024830e-02f,
                           1.128367484e-01f, -3.761262894e-01f, 1.128379107e+00f);
    const float small = x * p;
    const float ax = select(x < 0.f, -x, x);
    const float z = select(ax < 3.9375f, ax, 3.9375f) - 2.59375f;
    const float q = horner(z, 1.546715939e-04f, -1.982151152e-04f, 2.145469887e-03f, -1.002398785e-02f, -9.468446970e-01f,
                           -5.529948711e+00f, -8.316934586e+00f);
    const float large = 1.f - fast_exp(q);
    const float signed_large = select(x < 0.f, -large, large);
    return select(ax >= 1.25f, signed_large, small);  // NaN takes the polynomial: NaN out
}

// tanh(softplus(x)), Mish's factor, and the logistic function of x, from one exponential
// u = e^{-|x|}. With e = e^x, tanh(log(1 + e)) = n / (n + 2), n = e (e + 2); for x <= 0 that is
// a / (a + b) with a = u (u + 2), b = 2, for x > 0 (dividing by e^2) a = 1 + 2u, b = 2u^2, so
// that nothing overflows; 1 - tanh = b / (a + b) keeps its digits where tanh nears 1.
struct MishParts {
    float tanh_sp, one_minus, sigmoid;
};
TSVIZ_INLINE MishParts fast_mish_parts(float x) {
    const float u = fast_exp0(x < 0.f ? x : -x);
    const bool pos = x > 0.f;
    const float a = select(pos, 1.f + 2.f * u, u * (u + 2.f));
    const float b = select(pos, 2.f * u * u, 2.f);
    const float inv = 1.f / (a + b);
    const float s = select(pos, 1.f, u) / (1.f + u);
    return {a * inv, b * inv, s};
}

}  // namespace tsviz::ops
