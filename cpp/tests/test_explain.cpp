// tsviz::Explanation through the public API, on real B5M windows: importance scaling, saliency
// shapes, the saliency of the last dense layer against the output saliency, trace masks, the
// percentile filter, and an explanation outliving its model. test_explain MODELS_DIR B5M.csv
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "testing.hpp"
#include "tsviz/explain.hpp"
#include "tsviz/model.hpp"

using tsviz::Explanation;
using tsviz::Model;

namespace {

constexpr int64_t kN = 3;

void check_importance(const Explanation& ex) {
    const int64_t n = ex.n_samples();
    for (const std::string& layer : ex.layer_names()) {
        const int64_t f_n = ex.n_filters(layer);
        const std::vector<float>& imp = ex.importance(layer);
        const std::vector<float>& raw = ex.importance_raw(layer);
        CHECK(static_cast<int64_t>(imp.size()) == n * f_n);
        CHECK(raw.size() == imp.size());
        for (int64_t i = 0; i < n; ++i) {
            const float* r = raw.data() + i * f_n;
            const float* s = imp.data() + i * f_n;
            const auto [lo, hi] = std::minmax_element(r, r + f_n);
            CHECK(*lo >= 0.f);
            bool in_unit = true;
            for (int64_t f = 0; f < f_n; ++f) in_unit = in_unit && s[f] >= 0.f && s[f] <= 1.f;
            CHECK(in_unit);
            if (*hi > *lo) {
                // min-max scaling: a 1 where raw is largest, a 0 where it is smallest.
                CHECK(s[hi - r] == 1.f);
                CHECK(s[lo - r] == 0.f);
                bool ordered = true;
                for (int64_t f = 0; f < f_n; ++f)
                    for (int64_t g = 0; g < f_n; ++g) ordered = ordered && (r[f] < r[g]) <= (s[f] <= s[g]);
                CHECK(ordered);
            } else {
                // All equal: 1 when they matter, 0 when the whole layer is dead.
                const float want = *hi > 0.f ? 1.f : 0.f;
                CHECK(std::all_of(s, s + f_n, [want](float v) { return v == want; }));
            }
        }
    }
}

// Dead filters (computed in explain's own pass) against the rule on the activations (which an
// explanation of more samples than one chunk runs the forward pass again for).
void check_dead(const Explanation& ex) {
    const int64_t n = ex.n_samples();
    for (const std::string& layer : ex.layer_names()) {
        const int64_t f_n = ex.n_filters(layer), len = ex.layer_length(layer);
        const std::vector<uint8_t>& dead = ex.dead(layer);
        const float* a = ex.activations(layer);
        CHECK(static_cast<int64_t>(dead.size()) == n * f_n);
        bool same = true;
        for (int64_t r = 0; r < n * f_n && r < static_cast<int64_t>(dead.size()); ++r)
            same = same && (dead[r] != 0) == std::all_of(a + r * len, a + (r + 1) * len, [](float v) { return v == 0.f; });
        CHECK(same);
    }
}

void check_saliency(const Model& m, const Explanation& ex) {
    const int64_t n = ex.n_samples(), c = ex.input_channels(), t = ex.input_length();
    CHECK(c == m.input().channels);
    CHECK(static_cast<int64_t>(ex.output_saliency().size()) == n * c * t);
    for (const std::string& layer : ex.layer_names()) {
        const int64_t f_n = ex.n_filters(layer);
        // Every filter of small layers and of the first layer (cheap); a few filters of the
        // wide inner layers of the FCN, whose full saliency is a long batched backward pass.
        const bool every = f_n <= 64 || layer == ex.layer_names().front();
        std::vector<int64_t> chosen;
        if (!every) chosen = {0, 1, f_n / 2, f_n - 1};
        const std::vector<float> all = ex.saliency(layer, chosen);
        const int64_t f_all = every ? f_n : static_cast<int64_t>(chosen.size());
        CHECK(static_cast<int64_t>(all.size()) == n * f_all * c * t);
        CHECK(std::all_of(all.begin(), all.end(), [](float v) { return v >= 0.f; }));
        // One filter, and two in reverse order: the matching slices of all of them.
        const int64_t f = f_n - 1, slot_f = every ? f : f_all - 1;
        const std::vector<float> one = ex.saliency(layer, {f});
        const std::vector<float> two = ex.saliency(layer, {f, 0});
        CHECK(static_cast<int64_t>(one.size()) == n * c * t);
        CHECK(static_cast<int64_t>(two.size()) == n * 2 * c * t);
        std::vector<float> want_one, want_two;
        for (int64_t i = 0; i < n; ++i) {
            auto slice = [&](int64_t slot) {
                return std::vector<float>(all.begin() + (i * f_all + slot) * c * t,
                                          all.begin() + (i * f_all + slot + 1) * c * t);
            };
            const std::vector<float> sf = slice(slot_f), s0 = slice(0);
            want_one.insert(want_one.end(), sf.begin(), sf.end());
            want_two.insert(want_two.end(), sf.begin(), sf.end());
            want_two.insert(want_two.end(), s0.begin(), s0.end());
        }
        CHECK_CLOSE(one, want_one, 1e-6);
        CHECK_CLOSE(two, want_two, 1e-6);
        // Reverse mode (a cotangent per filter) and forward mode (banded tangents per input
        // point) agree with each other and with the automatic choice.
        const std::vector<float> rev = ex.saliency(layer, chosen, tsviz::SaliencyMethod::Reverse);
        const std::vector<float> fwd = ex.saliency(layer, chosen, tsviz::SaliencyMethod::Forward);
        CHECK_CLOSE(rev, all, 1e-5);
        CHECK_CLOSE(fwd, all, 1e-5);
        // Into the caller's memory (NaN before): every element written, the same bits as the
        // returned vector, in each mode and for a subset.
        for (auto method : {tsviz::SaliencyMethod::Auto, tsviz::SaliencyMethod::Reverse, tsviz::SaliencyMethod::Forward})
            for (const std::vector<int64_t>& which : {chosen, std::vector<int64_t>{f, 0}}) {
                const std::vector<float> want = ex.saliency(layer, which, method);
                std::vector<float> into(want.size(), std::nanf(""));
                ex.saliency(layer, which, method, into.data());
                CHECK(std::memcmp(into.data(), want.data(), want.size() * sizeof(float)) == 0);
            }
    }
    // The last filter layer is the dense layer whose output is the explained unit (the output,
    // or the logits before a Softmax): the saliency of the target filter is the output saliency.
    const std::string last = ex.layer_names().back();
    CHECK(ex.layer_length(last) == 1);
    CHECK(ex.n_filters(last) == m.n_outputs());
    std::vector<float> target_saliency;
    for (int64_t i = 0; i < n; ++i) {
        const std::vector<float> all = ex.saliency(last, {ex.target()[i]});
        target_saliency.insert(target_saliency.end(), all.begin() + i * c * t, all.begin() + (i + 1) * c * t);
    }
    CHECK_CLOSE(target_saliency, ex.output_saliency(), 1e-6);
    CHECK(std::any_of(target_saliency.begin(), target_saliency.end(), [](float v) { return v > 0.f; }));
}

void check_trace(const Model& m, const Explanation& ex) {
    const int64_t c = ex.input_channels(), t = ex.input_length();
    for (const std::string& layer : ex.layer_names()) {
        const int64_t f = ex.n_filters(layer) / 2, p = ex.layer_length(layer) / 2;
        const auto masks = ex.trace(layer, f, p, ex.n_samples() - 1);
        bool sizes = true;
        for (const auto& [name, mask] : masks)
            sizes = sizes && static_cast<int64_t>(mask.mask.size()) == mask.channels * mask.length;
        CHECK(sizes);
        const auto in = masks.find(m.input().name);
        CHECK(in != masks.end());
        if (in != masks.end()) {
            CHECK(in->second.channels == c && in->second.length == t);
            CHECK(std::count(in->second.mask.begin(), in->second.mask.end(), 1) > 0);
        }
        const auto start = masks.find(ex.activation_name(layer));
        CHECK(start != masks.end());
        if (start != masks.end()) {
            const tsviz::TraceMask& s = start->second;
            CHECK(s.channels == ex.n_filters(layer) && s.length == ex.layer_length(layer));
            CHECK(std::count(s.mask.begin(), s.mask.end(), 1) == 1);
            CHECK(s.mask[static_cast<size_t>(f * s.length + p)] == 1);
        }
        // Only what reaches the traced point's sources is in the trace; active_only keeps a
        // subset of the input points.
        const auto active = ex.trace(layer, f, p, ex.n_samples() - 1, true);
        const auto ain = active.find(m.input().name);
        CHECK(ain != active.end());
        if (ain != active.end() && in != masks.end()) {
            bool subset = ain->second.mask.size() == in->second.mask.size();
            for (size_t i = 0; subset && i < ain->second.mask.size(); ++i)
                subset = !ain->second.mask[i] || in->second.mask[i];
            CHECK(subset);
        }
    }
}

void check_keep(const Explanation& ex) {
    for (const std::string& layer : ex.layer_names()) {
        const int64_t f_n = ex.n_filters(layer);
        const std::vector<uint8_t> all = ex.keep(layer, 0.0);
        CHECK(static_cast<int64_t>(all.size()) == ex.n_samples() * f_n);
        CHECK(std::all_of(all.begin(), all.end(), [](uint8_t v) { return v == 1; }));
        const std::vector<uint8_t> half = ex.keep(layer, 50.0), top = ex.keep(layer, 100.0);
        for (int64_t i = 0; i < ex.n_samples(); ++i) {
            const auto kept = [&](const std::vector<uint8_t>& k) {
                return std::count(k.begin() + i * f_n, k.begin() + (i + 1) * f_n, 1);
            };
            CHECK(kept(top) >= 1);
            CHECK(kept(half) >= kept(top) && kept(half) <= f_n);
            if (f_n > 1 && ex.importance_raw(layer)[i * f_n] != ex.importance_raw(layer)[i * f_n + 1]) {
                CHECK(kept(top) < f_n);
            }
        }
    }
}

void check_model(const testing::Args& a, const std::vector<double>& series, const std::string& name,
                 int64_t length) {
    std::printf("%s (T = %lld)\n", name.c_str(), static_cast<long long>(length));
    std::unique_ptr<Model> m = std::make_unique<Model>(Model::load(a.model(name)));
    std::vector<int64_t> shape;
    const std::vector<float> x = testing::windows(*m, series, kN, 500, 1234, shape, length);
    const Explanation ex = m->explain(x.data(), kN, shape);
    CHECK(ex.n_samples() == kN);
    CHECK(ex.input_length() == length);
    CHECK(static_cast<int64_t>(ex.target().size()) == kN);
    CHECK(ex.layer_names().size() == m->layers().size());
    for (size_t i = 0; i < m->layers().size() && i < ex.layer_names().size(); ++i) {
        CHECK(ex.layer_names()[i] == m->layers()[i].name);
        CHECK(ex.n_filters(ex.layer_names()[i]) == m->layers()[i].n_filters);
    }
    check_importance(ex);
    check_dead(ex);
    check_saliency(*m, ex);
    check_trace(*m, ex);
    check_keep(ex);

    // An explanation keeps what it needs of its model: it works after the Model is gone.
    const std::vector<float> before = ex.saliency(ex.layer_names().front(), {0});
    const std::string input = m->input().name;
    m.reset();
    CHECK(ex.saliency(ex.layer_names().front(), {0}) == before);
    CHECK(ex.trace(ex.layer_names().front(), 0, 0).count(input) == 1);
}

}  // namespace

int main(int argc, char** argv) {
    const testing::Args a = testing::args(argc, argv);
    const std::vector<double> series = testing::b5m_standardised(a.b5m);
    try {
        check_model(a, series, "paper_net_op17", 50);
        check_model(a, series, "keras_paper_net_op17", 50);
        check_model(a, series, "fcn_op17", 150);
        check_model(a, series, "fcn_op17", 64);
        // Residual blocks: sums of two branches, a ReLU after each sum (fused into the sum's
        // tangent in forward mode), a 1x1 shortcut convolution, global average pooling.
        check_model(a, series, "resnet_op17", 96);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "unexpected exception: %s\n", e.what());
        return 1;
    }
    return testing::report("test_explain");
}
