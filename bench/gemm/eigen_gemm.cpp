// Eigen's product for the GEMM benchmark, in its own file: only this file is compiled for the
// build machine's processor (-march=native), so that Eigen gets its best vector path while
// the rest of the program (and the engine) keeps the engine's own flags.
#include <Eigen/Core>
#include <cstdint>
#include <string>

namespace bench {

std::string eigen_version() {
    std::string v = std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
                    std::to_string(EIGEN_MINOR_VERSION);
#ifdef _OPENMP
    v += " (OpenMP";
#else
    v += " (no OpenMP: 1 thread";
#endif
    v += std::string(", ") + Eigen::SimdInstructionSetsInUse() + ")";
    return v;
}

void eigen_threads(int n) { Eigen::setNbThreads(n); }

// C (m x n) = A (m x k) * B (k x n) + beta * C, all row-major and contiguous; beta is 0 or 1.
void eigen_gemm(int64_t m, int64_t n, int64_t k, const float* a, const float* b, float beta, float* c) {
    using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    Eigen::Map<const Mat> A(a, m, k);
    Eigen::Map<const Mat> B(b, k, n);
    Eigen::Map<Mat> C(c, m, n);
    if (beta == 0.f)
        C.noalias() = A * B;
    else
        C.noalias() += A * B;
}

}  // namespace bench
