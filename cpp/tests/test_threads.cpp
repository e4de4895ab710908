// One loaded tsviz::Model shared by 8 threads: concurrent predict and explain calls (and
// concurrent saliency calls on one shared Explanation, the first of them computing its
// tensors) give results bit-identical to a sequential run. The Model is immutable after
// loading and every call allocates its own buffers; build with -fsanitize=thread to have the
// race detector check the same.
// test_threads MODELS_DIR B5M.csv
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "testing.hpp"
#include "tsviz/explain.hpp"
#include "tsviz/model.hpp"

using tsviz::Explanation;
using tsviz::Model;

namespace {

constexpr int kThreads = 8;
constexpr int kRounds = 2;

// Everything an explanation computes, flattened, for exact comparison.
struct Result {
    std::vector<float> predicted, output, importance, saliency;
    std::vector<int64_t> target;
    bool operator==(const Result& o) const {
        return predicted == o.predicted && output == o.output && importance == o.importance &&
               saliency == o.saliency && target == o.target;
    }
};

Result run(const Model& m, const std::vector<float>& x, const std::vector<int64_t>& shape) {
    Result r;
    r.predicted = m.predict(x.data(), 1, shape);
    const Explanation ex = m.explain(x.data(), 1, shape);
    r.output = ex.output();
    r.target = ex.target();
    for (const std::string& layer : ex.layer_names()) {
        const std::vector<float>& raw = ex.importance_raw(layer);
        const std::vector<float>& imp = ex.importance(layer);
        r.importance.insert(r.importance.end(), raw.begin(), raw.end());
        r.importance.insert(r.importance.end(), imp.begin(), imp.end());
    }
    r.saliency = ex.output_saliency();
    const std::vector<float> s = ex.saliency(ex.layer_names().front(), {0, 1});
    r.saliency.insert(r.saliency.end(), s.begin(), s.end());
    return r;
}

void check_model(const testing::Args& a, const std::vector<double>& series, const std::string& name) {
    std::printf("%s\n", name.c_str());
    const Model m = Model::load(a.model(name));
    // kThreads different real windows, one per task.
    std::vector<std::vector<float>> inputs;
    std::vector<int64_t> shape;
    for (int i = 0; i < kThreads; ++i) inputs.push_back(testing::windows(m, series, 1, 3000 + 977 * i, 0, shape, 150));

    std::vector<Result> sequential;
    for (const auto& x : inputs) sequential.push_back(run(m, x, shape));
    CHECK(!(sequential[0] == sequential[1]));  // the windows differ, so do the results

    // Every thread runs every input, each starting at a different one, kRounds times.
    std::vector<std::vector<Result>> concurrent(kThreads);
    std::atomic<int> errors{0};
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int tid = 0; tid < kThreads; ++tid)
        threads.emplace_back([&, tid] {
            ++ready;
            while (ready.load() < kThreads) std::this_thread::yield();  // start together
            try {
                for (int round = 0; round < kRounds; ++round)
                    for (int j = 0; j < kThreads; ++j)
                        concurrent[tid].push_back(run(m, inputs[(tid + j) % kThreads], shape));
            } catch (...) {
                ++errors;
            }
        });
    for (auto& t : threads) t.join();
    CHECK(errors.load() == 0);
    bool identical = true;
    for (int tid = 0; tid < kThreads; ++tid) {
        CHECK(concurrent[tid].size() == static_cast<size_t>(kRounds * kThreads));
        for (size_t k = 0; k < concurrent[tid].size(); ++k)
            identical = identical && concurrent[tid][k] == sequential[(tid + k) % kThreads];
    }
    CHECK(identical);

    // One Explanation shared between threads: its const methods run their own backward passes.
    const Explanation ex = m.explain(inputs[0].data(), 1, shape);
    const std::string layer = ex.layer_names()[ex.layer_names().size() > 1 ? 1 : 0];
    const std::vector<float> want = ex.saliency(layer);
    const auto want_trace = ex.trace(layer, 0, 0);
    std::vector<int> same(kThreads, 0);
    threads.clear();
    for (int tid = 0; tid < kThreads; ++tid)
        threads.emplace_back([&, tid] {
            try {
                same[tid] = ex.saliency(layer) == want &&
                            ex.trace(layer, 0, 0).at(m.input().name).mask == want_trace.at(m.input().name).mask;
            } catch (...) {
                same[tid] = 0;
            }
        });
    for (auto& t : threads) t.join();
    CHECK(std::all_of(same.begin(), same.end(), [](int v) { return v == 1; }));

    // An explanation of more windows than fit in cache keeps no tensors; the threads' first
    // calls race to compute them once (Impl::tensors), and all see the same values.
    constexpr int64_t kMany = 80;
    const std::vector<float> many = testing::windows(m, series, kMany, 500, 37, shape, 150);
    // (Both explained before any tensor is asked for: after that, the model's next large
    // explanation keeps its tensors.)
    const Explanation shared = m.explain(many.data(), kMany, shape);
    const Explanation alone = m.explain(many.data(), kMany, shape);
    const int64_t size = kMany * alone.n_filters(layer) * alone.layer_length(layer);
    const std::vector<float> want_acts(alone.activations(layer), alone.activations(layer) + size);
    const std::vector<float> want_many = alone.saliency(layer);
    std::fill(same.begin(), same.end(), 0);
    threads.clear();
    for (int tid = 0; tid < kThreads; ++tid)
        threads.emplace_back([&, tid] {
            try {
                const bool acts_first = tid % 2 == 0;  // half start with the tensors, half with a sweep
                std::vector<float> sal;
                if (!acts_first) sal = shared.saliency(layer);
                const float* acts = shared.activations(layer);
                if (acts_first) sal = shared.saliency(layer);
                same[tid] = std::equal(want_acts.begin(), want_acts.end(), acts) && sal == want_many;
            } catch (...) {
                same[tid] = 0;
            }
        });
    for (auto& t : threads) t.join();
    CHECK(std::all_of(same.begin(), same.end(), [](int v) { return v == 1; }));
}

}  // namespace

int main(int argc, char** argv) {
    const testing::Args a = testing::args(argc, argv);
    const std::vector<double> series = testing::b5m_standardised(a.b5m);
    try {
        check_model(a, series, "paper_net_op17");
        check_model(a, series, "keras_paper_net_op17");
        check_model(a, series, "fcn_op17");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "unexpected exception: %s\n", e.what());
        return 1;
    }
    return testing::report("test_threads");
}
