// Vectors whose blocks start on a cache line, for the engine's tensors, packed matrices and
// kernel scratch. Large blocks come from mmap 16 bytes into a page: every 64-byte vector load
// or store of such a block's rows straddled two lines, and the packed panels of the blocked
// product (ops/gemm.cpp) were written and read that way throughout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>
#include <vector>

namespace tsviz::ops {

// Uninit: resize() leaves new elements uninitialised (buffers that are written whole before
// they are read: a tensor arena needs no zero fill before a forward pass).
template <class T, bool Uninit = false>
struct LineAllocator {
    using value_type = T;
    static constexpr std::align_val_t kAlign{64};
    template <class U>
    struct rebind {
        using other = LineAllocator<U, Uninit>;
    };
    LineAllocator() = default;
    template <class U>
    LineAllocator(const LineAllocator<U, Uninit>&) {}  // NOLINT: converting, as std::allocator
    T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
    void deallocate(T* p, size_t) noexcept { ::operator delete(p, kAlign); }
    template <class U>
    void construct(U* p) {
        if constexpr (Uninit)
            ::new (static_cast<void*>(p)) U;
        else
            ::new (static_cast<void*>(p)) U();
    }
    template <class U, class... A>
    void construct(U* p, A&&... args) {
        ::new (static_cast<void*>(p)) U(std::forward<A>(args)...);
    }
    friend bool operator==(const LineAllocator&, const LineAllocator&) { return true; }
    friend bool operator!=(const LineAllocator&, const LineAllocator&) { return false; }
};

template <class T>
using LineVector = std::vector<T, LineAllocator<T>>;
template <class T>
using UninitVector = std::vector<T, LineAllocator<T, true>>;

// p[0, n) = 0 in the machine's widest vector stores (elementwise.cpp). Not memset: with glibc's
// memset (rep stosb above a few KiB) the AVX2 paper net's full analysis of 64 windows took 4-5%
// longer than with this loop, the AVX-512 rows the same; why was not pinned down.
void zero_floats(float* p, int64_t n);
// dst[0, n) = |src[0, n)| in the same vectors (the saliencies' last step); the two do not overlap.
void abs_floats(const float* src, int64_t n, float* dst);

// buf = n zeros. vector::assign(n, 0.f) fills through the allocator, element by element in
// 16-byte stores wherever GCC does not inline it (a sixth of the residual net's explanation
// went there).
inline void assign_zeros(UninitVector<float>& buf, size_t n) {
    buf.resize(n);
    zero_floats(buf.data(), static_cast<int64_t>(n));
}

// Floats per cache line: tensors laid out in one arena start on a line.
constexpr int64_t kLineFloats = 16;

}  // namespace tsviz::ops
