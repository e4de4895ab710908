// Single-precision matrix product for the convolution and dense kernels.
#pragma once

#include <cstdint>

namespace tsviz::ops {

// C[M x N] += A[M x K] * B[K x N], all row-major with leading dimensions lda, ldb, ldc.
void sgemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
           float* c, int64_t ldc);

}  // namespace tsviz::ops
