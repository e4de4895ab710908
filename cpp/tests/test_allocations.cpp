// How often a warm model allocates: every operator new of the program is counted here. A
// call on a model that has run before allocates for what it returns and a few bookkeeping
// blocks per filter layer, never per node, per sample or per chunk of samples: on small nets a
// few hundred small allocations, after other work has evicted malloc's lists from the caches,
// cost more than the arithmetic. Also SmallVector, whose in-place storage this rests on.
#include <atomic>
#include <cstdlib>
#include <new>
#include <stdexcept>

#include "small_vector.hpp"
#include "testing.hpp"
#include "tsviz/explain.hpp"

namespace {
std::atomic<long> g_allocations{0};

void* counted(size_t n, size_t align) {
    ++g_allocations;
    n = n ? n : 1;
    void* p = align > alignof(std::max_align_t) ? std::aligned_alloc(align, (n + align - 1) / align * align)
                                                : std::malloc(n);
    if (!p) throw std::bad_alloc();
    return p;
}
}  // namespace

void* operator new(size_t n) { return counted(n, 0); }
void* operator new[](size_t n) { return counted(n, 0); }
void* operator new(size_t n, std::align_val_t a) { return counted(n, static_cast<size_t>(a)); }
void* operator new[](size_t n, std::align_val_t a) { return counted(n, static_cast<size_t>(a)); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { std::free(p); }

namespace {

// Allocations of the last of four calls of f (the first three warm the model's and the
// threads' buffers up for this call's sizes).
template <class F>
long allocations(F&& f) {
    for (int i = 0; i < 3; ++i) f();
    const long before = g_allocations.load();
    f();
    return g_allocations.load() - before;
}

void check_small_vector() {
    tsviz::SmallVector<int64_t, 4> v;
    CHECK(v.empty());
    for (int64_t i = 0; i < 10; ++i) {
        v.push_back(i * i);
        bool same = static_cast<int64_t>(v.size()) == i + 1;
        for (int64_t j = 0; j <= i; ++j) same = same && v[j] == j * j && v.data()[j] == j * j;
        CHECK(same);  // in place up to 4, then every entry on the heap, in order
    }
    tsviz::SmallVector<int64_t, 4> copy = v;
    volatile size_t last = 9;  // not a constant: GCC would warn of index 9 into the 4 in place
    v[last] = -1;
    CHECK(copy[9] == 81 && copy.back() == 81 && copy.size() == 10);  // a copy of its own
    v.resize(3);  // back in place
    CHECK(v.size() == 3 && v[0] == 0 && v[1] == 1 && v[2] == 4);
    v.resize(6);  // value-initialised past the old end
    CHECK(v.size() == 6 && v[2] == 4 && v[3] == 0 && v[5] == 0);
    int64_t sum = 0;
    for (int64_t x : v) sum += x;
    CHECK(sum == 5);
    CHECK_THROWS(v.at(6), std::out_of_range, "SmallVector");
    v.clear();
    CHECK(v.empty());
    const tsviz::SmallVector<int64_t, 4> listed{7, 8, 9, 10, 11};
    CHECK(listed.size() == 5 && listed.front() == 7 && listed[4] == 11);
    // No allocation up to N entries.
    const long before = g_allocations.load();
    tsviz::SmallVector<int64_t, 4> small{1, 2, 3, 4};
    const long used = g_allocations.load() - before;
    CHECK(used == 0 && small.size() == 4);
}

void check_model(const testing::Args& a, const std::vector<double>& series, const std::string& name,
                 int64_t length = -1) {
    const tsviz::Model m = tsviz::Model::load(a.model(name));
    std::vector<int64_t> shape;
    const std::vector<float> x = testing::windows(m, series, 64, 100, 37, shape, length);
    const size_t layers = m.layers().size();
    std::vector<float> out;
    auto predict = [&](int64_t n) { return allocations([&] { (void)m.predict(x.data(), n, shape); }); };
    auto explain = [&](int64_t n) { return allocations([&] { (void)m.explain(x.data(), n, shape); }); };
    // Every filter of every layer, into the caller's buffer: what the engine itself allocates.
    auto full = [&](int64_t n) {
        return allocations([&] {
            const tsviz::Explanation e = m.explain(x.data(), n, shape);
            for (const std::string& layer : e.layer_names()) {
                out.resize(static_cast<size_t>(n * e.n_filters(layer) * e.input_channels() * e.input_length()));
                e.saliency(layer, {}, tsviz::SaliencyMethod::Auto, out.data());
            }
        });
    };
    const long p1 = predict(1), p64 = predict(64), e1 = explain(1), e64 = explain(64), f1 = full(1), f64 = full(64);
    std::printf("  %-22s %zu layers: predict %ld/%ld, explain %ld/%ld, full analysis %ld/%ld (1/64 windows)\n",
                name.c_str(), layers, p1, p64, e1, e64, f1, f64);
    // The output alone: the thread keeps its arena and its layout.
    CHECK(p1 == 1 && p64 == 1);
    // The explanation's record, its layers' importance, Taylor criterion, scaled importance
    // and dead filters, the output and its saliency, the arena's bookkeeping.
    CHECK(e1 <= 12 + 4 * static_cast<long>(layers) && e64 == e1);
    // Per layer: the filter list, the sweep's or the reverse pass's bookkeeping, the sums.
    CHECK(f1 - e1 <= 6 * static_cast<long>(layers) && f64 == f1);
}

}  // namespace

int main(int argc, char** argv) {
    const testing::Args a = testing::args(argc, argv);
    const std::vector<double> series = testing::b5m_standardised(a.b5m);
    try {
        check_small_vector();
        check_model(a, series, "paper_net_op17");
        check_model(a, series, "channels_last_op17");  // strided convolutions, tanh
        check_model(a, series, "fcn_op17", 150);
        check_model(a, series, "resnet_op17", 96);        // residual sums, forward-mode saliency
        check_model(a, series, "inception_op17", 128);    // concatenations of four branches
        check_model(a, series, "keras_tcn_op17", 128);    // dilated causal convolutions
        check_model(a, series, "depthwise_op17", 128);    // grouped convolutions
    } catch (const std::exception& e) {
        std::fprintf(stderr, "unexpected exception: %s\n", e.what());
        return 1;
    }
    return testing::report("test_allocations");
}
