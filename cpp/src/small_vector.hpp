// A vector of trivially copyable values that holds its first N in place and goes to the heap
// only beyond them. The ops' argument structs carry one entry per input of a node, and the
// engine builds them for every node of every pass: with std::vector that was a few hundred
// allocations per full analysis of one window, each a trip through malloc's lists, which after
// other work has evicted them cost more than the small nets' arithmetic.
#pragma once

#include <array>
#include <cstddef>
#include <initializer_list>
#include <stdexcept>
#include <type_traits>
#include <vector>

namespace tsviz {

template <class T, size_t N>
class SmallVector {
    static_assert(std::is_trivially_copyable_v<T>, "SmallVector holds trivially copyable values");

public:
    SmallVector() = default;
    SmallVector(std::initializer_list<T> values) {
        for (const T& v : values) push_back(v);
    }

    void push_back(const T& v) {
        if (size_ < N) {
            inline_[size_] = v;
        } else {
            if (size_ == N) heap_.assign(inline_.begin(), inline_.end());  // spill the first N
            heap_.push_back(v);
        }
        ++size_;
    }
    // Value-initialised entries past the old size.
    void resize(size_t n) {
        if (n > N) {
            if (size_ <= N) heap_.assign(inline_.begin(), inline_.begin() + size_);
            heap_.resize(n, T{});
        } else {
            if (size_ > N) {
                for (size_t i = 0; i < n; ++i) inline_[i] = heap_[i];
                heap_.clear();
            }
            for (size_t i = size_; i < n; ++i) inline_[i] = T{};
        }
        size_ = n;
    }
    void clear() {
        heap_.clear();
        size_ = 0;
    }

    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    T* data() { return size_ > N ? heap_.data() : inline_.data(); }
    const T* data() const { return size_ > N ? heap_.data() : inline_.data(); }
    T& operator[](size_t i) { return data()[i]; }
    const T& operator[](size_t i) const { return data()[i]; }
    const T& at(size_t i) const {
        if (i >= size_) throw std::out_of_range("SmallVector::at");
        return data()[i];
    }
    T& front() { return data()[0]; }
    const T& front() const { return data()[0]; }
    T& back() { return data()[size_ - 1]; }
    const T& back() const { return data()[size_ - 1]; }
    T* begin() { return data(); }
    T* end() { return data() + size_; }
    const T* begin() const { return data(); }
    const T* end() const { return data() + size_; }

private:
    std::array<T, N> inline_{};
    std::vector<T> heap_;  // every entry once there are more than N
    size_t size_ = 0;
};

}  // namespace tsviz
