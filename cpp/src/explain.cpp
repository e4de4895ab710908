// Explanations (SPEC.md, "Influences", "Percentile filter", "Recursive highlighting"):
// one forward pass keeps every tensor and the caches of the backward; importance and the
// output saliency come from one backward pass from the target; the saliency of all filters
// of a layer from one batched backward pass with one cotangent row per (sample, filter).
#include "tsviz/explain.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <string>
#include <type_traits>

#include "engine.hpp"
#include "model_impl.hpp"
#include "ops/gemm.hpp"
#include "ops/op.hpp"
#include "ops/simd.hpp"
#include "tsviz/error.hpp"

namespace tsviz {

namespace {

// sum_p |g[p]| and sum_p z[p] g[p] of one filter's row: importance and the Taylor criterion.
// Four-lane vectors with two accumulators each (the baseline's SSE; a plain loop in double
// is a chain of dependent additions), summed in double at the end.
void abs_and_dot(const float* g, const float* z, int64_t len, double& abs_sum, double& dot) {
    typedef float v4 __attribute__((vector_size(16)));
    typedef int32_t i4 __attribute__((vector_size(16)));
    const i4 no_sign = {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff};
    v4 a0{}, a1{}, d0{}, d1{};
    int64_t p = 0;
    for (; p + 8 <= len; p += 8) {
        v4 g0, g1, z0, z1;
        std::memcpy(&g0, g + p, sizeof g0);
        std::memcpy(&g1, g + p + 4, sizeof g1);
        std::memcpy(&z0, z + p, sizeof z0);
        std::memcpy(&z1, z + p + 4, sizeof z1);
        a0 += reinterpret_cast<v4>(reinterpret_cast<i4>(g0) & no_sign);
        a1 += reinterpret_cast<v4>(reinterpret_cast<i4>(g1) & no_sign);
        d0 += z0 * g0;
        d1 += z1 * g1;
    }
    const v4 a = a0 + a1, d = d0 + d1;
    abs_sum = static_cast<double>(a[0]) + a[1] + a[2] + a[3];
    dot = static_cast<double>(d[0]) + d[1] + d[2] + d[3];
    for (; p < len; ++p) {
        abs_sum += std::fabs(g[p]);
        dot += static_cast<double>(z[p]) * g[p];
    }
}

// docs/definitions.md, dead filters: dead[r] = 1 where row r of `rows` rows of len
// activations is 0 at every position (NaN counts as not 0, as in numpy).
void dead_rows(const float* a, int64_t rows, int64_t len, uint8_t* dead) {
    for (int64_t r = 0; r < rows; ++r, a += len) {
        int nonzero = 0;  // an OR of ints, which vectorises
        for (int64_t p = 0; p < len; ++p) nonzero |= static_cast<int>(a[p] != 0.f);
        dead[r] = static_cast<uint8_t>(nonzero == 0);
    }
}

// Importance and Taylor criterion of `rows` filter rows of `len` positions (SPEC.md eq. 15),
// raw[r] = sum |g| and taylor[r] = |sum z g| from the rows of d a^L / d z^l (g) and z^l, and
// whether the filter is dead from the rows of a^l.
void importance_rows(const float* g, const float* z, const float* a, int64_t rows, int64_t len, float* raw,
                     float* taylor, uint8_t* dead) {
    for (int64_t r = 0; r < rows; ++r) {
        double sum = 0, first_order = 0;
        abs_and_dot(g + r * len, z + r * len, len, sum, first_order);
        raw[r] = static_cast<float>(sum);
        taylor[r] = static_cast<float>(std::fabs(first_order));
    }
    dead_rows(a, rows, len, dead);
}

#if defined(__x86_64__) && defined(__GNUC__)
// The same with vectors, for rows of 12-50 positions: each row's sums in 8 lanes (one
// instruction set's Sums: its vector width, each row's end a masked step), then eight rows'
// lanes added across in one tree of horizontal adds, eight totals stored at once. Adding each
// row's lanes on its own (permutes, stores, a sum in double) took longer than the row itself,
// a tenth of the paper net's explanation of 64 windows. The totals are summed in float: rows
// of at most a few hundred values. The dead check reads a^l in the same steps (a loop of its
// own cost a twentieth of the explanation).
// sums(g, z, act, a8, d8): one row's sums into a8 and d8, and whether its activations are not
// all 0 (the row's length bound into it).
template <class Sums>
__attribute__((target("avx2"))) inline void importance_rows_by8(const float* g, const float* z, const float* act,
                                                                int64_t rows, int64_t len, float* raw, float* taylor,
                                                                uint8_t* dead, Sums sums) {
    const __m256 no_sign = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 a[8], d[8];
    for (int64_t r0 = 0; r0 < rows; r0 += 8) {
        const int64_t n = std::min<int64_t>(8, rows - r0);
        for (int64_t i = 0; i < 8; ++i) {
            if (i < n) {
                const int64_t at = (r0 + i) * len;
                dead[r0 + i] = static_cast<uint8_t>(!sums(g + at, z + at, act + at, a[i], d[i]));
            } else {
                a[i] = _mm256_setzero_ps();
                d[i] = _mm256_setzero_ps();
            }
        }
        ops::store_span8(raw + r0, ops::row_totals8(a), 0, n);
        ops::store_span8(taylor + r0, _mm256_and_ps(ops::row_totals8(d), no_sign), 0, n);
    }
}

// One row's sum |g| (a) and sum z g (d) in 8 lanes, and whether its activations are not all
// 0 (NaN is not 0): 16 lanes a step on AVX-512, the halves added at the end; 8 on AVX2.
// Whole steps unmasked, the last through `tail` (made once per call, not per step: a row of
// 25 positions had spent as many instructions on its loop and masks as on its sums); Steps > 0
// fixes their number (rows of 12-64 positions, the small nets' layers), so there is no loop.
// Every form adds the same lanes in the same order.
template <int Steps>
__attribute__((target("avx512f"), always_inline)) inline bool row_sums_avx512(const float* g, const float* z,
                                                                             const float* act, int64_t len,
                                                                             __mmask16 tail, __m256& a8, __m256& d8) {
    __m512 a = _mm512_setzero_ps(), d = _mm512_setzero_ps();
    __mmask16 nonzero = 0;
    auto step = [&](int64_t p, __mmask16 in) __attribute__((target("avx512f"), always_inline)) {
        const __m512 gv = _mm512_maskz_loadu_ps(in, g + p), zv = _mm512_maskz_loadu_ps(in, z + p);
        nonzero |= _mm512_mask_cmp_ps_mask(in, _mm512_maskz_loadu_ps(in, act + p), _mm512_setzero_ps(), _CMP_NEQ_UQ);
        a = _mm512_add_ps(a, _mm512_abs_ps(gv));
        d = _mm512_fmadd_ps(zv, gv, d);
    };
    const int64_t steps = Steps > 0 ? Steps : (len + 15) / 16;
    if (steps > 0) {
        for (int64_t s = 0; s + 1 < steps; ++s) step(16 * s, 0xffff);
        step(16 * (steps - 1), tail);
    }
    a8 = ops::halves_added(a);
    d8 = ops::halves_added(d);
    return nonzero != 0;
}
__attribute__((target("avx2,fma"))) inline bool row_sums_avx2(const float* g, const float* z, const float* act,
                                                              int64_t len, __m256& a_out, __m256& d_out) {
    const __m256 no_sign = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    // The sums in locals, stored once: through the references (which may alias the rows, for
    // all the compiler knows) every step was a store and a reload, a chain through memory.
    __m256 a = _mm256_setzero_ps(), d = _mm256_setzero_ps(), nonzero = _mm256_setzero_ps();
    // Whole steps by plain loads, the row's end by one masked step: the same sums in the same
    // order as a masked load at every step (whose masks were most of the loop's instructions).
    auto step = [&](__m256 gv, __m256 zv, __m256 av) __attribute__((target("avx2,fma"), always_inline)) {
        nonzero = _mm256_or_ps(nonzero, _mm256_cmp_ps(av, _mm256_setzero_ps(), _CMP_NEQ_UQ));
        a = _mm256_add_ps(a, _mm256_and_ps(gv, no_sign));
        d = _mm256_fmadd_ps(zv, gv, d);
    };
    const int64_t whole = len & ~int64_t{7};
    for (int64_t p = 0; p < whole; p += 8) step(_mm256_loadu_ps(g + p), _mm256_loadu_ps(z + p), _mm256_loadu_ps(act + p));
    if (whole < len) {
        const __m256i in = ops::lanes_inside8(whole, len);  // masked-off lanes load 0, which is not counted
        step(_mm256_maskload_ps(g + whole, in), _mm256_maskload_ps(z + whole, in), _mm256_maskload_ps(act + whole, in));
    }
    a_out = a;
    d_out = d;
    return _mm256_movemask_ps(nonzero) != 0;
}

__attribute__((target("avx512f"), flatten)) void importance_rows_avx512(const float* g, const float* z,
                                                                         const float* a, int64_t rows, int64_t len,
                                                                         float* raw, float* taylor, uint8_t* dead) {
    const __mmask16 tail = ops::lanes_inside(16 * ((len + 15) / 16 - 1), len);
    auto by8 = [&](auto steps) __attribute__((target("avx512f"), always_inline)) {
        importance_rows_by8(g, z, a, rows, len, raw, taylor, dead,
                            [&](const float* gr, const float* zr, const float* ar, __m256& a8, __m256& d8)
                                __attribute__((target("avx512f"))) {
                                    return row_sums_avx512<decltype(steps)::value>(gr, zr, ar, len, tail, a8, d8);
                                });
    };
    switch ((len + 15) / 16) {
        case 1: return by8(std::integral_constant<int, 1>{});
        case 2: return by8(std::integral_constant<int, 2>{});
        case 3: return by8(std::integral_constant<int, 3>{});
        case 4: return by8(std::integral_constant<int, 4>{});
        default: return by8(std::integral_constant<int, 0>{});
    }
}
__attribute__((target("avx2,fma"), flatten)) void importance_rows_avx2(const float* g, const float* z, const float* a,
                                                                       int64_t rows, int64_t len, float* raw,
                                                                       float* taylor, uint8_t* dead) {
    importance_rows_by8(g, z, a, rows, len, raw, taylor, dead,
                        [len](const float* gr, const float* zr, const float* ar, __m256& a8, __m256& d8)
                            __attribute__((target("avx2,fma"))) {
                                return row_sums_avx2(gr, zr, ar, len, a8, d8);
                            });
}
#endif

// Floats of cotangents one chunk of a backward pass works on: small enough to stay in cache.
constexpr int64_t kChunkFloats = int64_t{1} << 20;
// The same for one work item of a reverse-mode sweep (explain's tensors are in memory
// already): 1 MiB, half the L2 of the machines measured. The paper net then takes one sample's
// rows (every filter of a layer) per item: as fast as 4 MiB items in separate builds (best of
// 5 runs), on a quarter of the memory; alternating call by call in one process, 4 MiB items
// measured 3-5% slower.
constexpr int64_t kSweepChunkFloats = int64_t{1} << 18;
// Explain's forward and backward, a chunk of samples at a time: 256 KiB of tensors, whose
// cotangents then stay in L2 from one chunk to the next. Against 4 MiB chunks: 3% faster on
// batches of 1024 windows (data-set analysis) and the same on 64 (separate builds, best of 5
// runs); alternating call by call in one process it measured 10% and 2-13% (caches flushed).
constexpr int64_t kExplainChunkFloats = int64_t{1} << 16;
// Explain keeps every tensor it computes when they take at most this many floats (1 MiB, half
// the L2 of the machines measured: writing them costs little even out of cache, and a later
// saliency or trace then needs no second forward pass); larger batches stream their chunks,
// unless the model's last large explanation had its tensors asked for (Model::Impl::keep_tensors).
constexpr int64_t kKeptTensorFloats = int64_t{1} << 18;

// Where a backward pass of the output or of the loss starts, and with what.
struct Seeding {
    bool wrt_loss = false;
    Loss loss = Loss::Mse;
    bool probability = false;
    const std::vector<int64_t>& target;
};

// SPEC.md: when the graph ends in Softmax the target is the logit unless asked otherwise;
// the cross-entropy loss is of the logits too, mse of the output.
int target_node(const Graph& g, const Seeding& how) {
    const Node& last = g.nodes[g.output];
    const bool softmax_end = last.kind == OpKind::Softmax;
    if (how.wrt_loss) return softmax_end && how.loss == Loss::CrossEntropy ? last.inputs[0] : g.output;
    return softmax_end && !how.probability ? last.inputs[0] : g.output;
}

// The option checks of explain and input_gradient, before any backward pass.
void check_seeding(const Graph& g, const std::vector<ops::Resolved>& geo, int64_t k, int64_t n, const Seeding& how,
                   const std::vector<float>& y_true) {
    const Node& last = g.nodes[g.output];
    if (how.wrt_loss) {
        if (!how.target.empty())
            throw ArgumentError("a target unit does not apply to the loss: every output enters it");
        if (how.probability)
            throw ArgumentError("output='prob' does not apply to the loss: cross_entropy is of the logits, mse of "
                                "the output");
        const int64_t cols = loss_target_columns(how.loss, k);
        if (static_cast<int64_t>(y_true.size()) != n * cols)
            throw ArgumentError(std::string("the ") + loss_name(how.loss) + " loss needs " + std::to_string(cols) +
                                (cols == 1 ? " target value" : " target values") + " per sample (" +
                                std::to_string(n * cols) + " for " + std::to_string(n) + " samples), got " +
                                std::to_string(y_true.size()));
        // The targets' own checks (finite; a class index in [0, K)), naming the sample.
        const std::vector<float> zeros(static_cast<size_t>(n * k), 0.f);
        batch_loss(how.loss, zeros.data(), n, k, y_true.data());
        const int tn = target_node(g, how);
        if (geo[tn].out.size() != k)
            throw ArgumentError("the loss needs " + std::to_string(k) + " values per sample at '" + g.nodes[tn].name +
                                "', which has " + std::to_string(geo[tn].out.size()));
        return;
    }
    if (how.probability && last.kind != OpKind::Softmax)
        throw ArgumentError("output='prob' needs a model that ends in Softmax; '" + g.output_name + "' comes from " +
                            last.onnx_op);
    if (how.target.size() > 1 && static_cast<int64_t>(how.target.size()) != n)
        throw ArgumentError("target has " + std::to_string(how.target.size()) + " entries for " + std::to_string(n) +
                            " samples");
    for (int64_t t : how.target)
        if (t < 0 || t >= k)
            throw ArgumentError("target " + std::to_string(t) + " is out of range for a model with " +
                                std::to_string(k) + (k == 1 ? " output" : " outputs"));
}

// The cotangent rows at node tn for forward samples [first, first + m): one-hot at each
// sample's target unit, or d loss_i / d v_i against y (m rows of the loss's target columns),
// with loss_i written to `loss`. Samples [first, first + m) must have run forward.
void seed_rows(const Activations& act, int tn, int64_t first, int64_t m, const Seeding& how, const int64_t* target,
               const float* y, GradBuffer& seed, float* loss) {
    const int64_t size = act.geo[tn].out.size();
    ops::assign_zeros(seed, static_cast<size_t>(m * size));
    if (how.wrt_loss) {
        const float* v = act.arena.data() + act.offset[tn] + first * size;
        batch_loss(how.loss, v, m, size, y, seed.data(), loss);
        return;
    }
    for (int64_t i = 0; i < m; ++i) seed[i * size + target[i]] = 1.f;
}

}  // namespace

struct Explanation::Impl {
    struct Layer {
        int z = 0;  // node of z^l
        int a = 0;  // node of a^l (z itself when no activation follows)
        std::vector<float> importance_raw, importance, taylor;
        std::vector<uint8_t> dead;  // (N, F)
    };
    std::shared_ptr<const Model::Impl> model;
    // Every node's output for every sample, laid out with the input in place at explain time
    // and computed on first use (tensors()): explain itself streams its chunks through a
    // thread's own arena, so that an explanation nobody asks the tensors of never writes them.
    mutable Activations act;
    mutable std::once_flag tensors_once;
    int64_t chunk = 1;  // samples per chunk of explain's pass; the tensors' pass takes the same
    bool large = false;  // more tensors than explain keeps by default (kKeptTensorFloats)
    bool kept = false;   // explain wrote the tensors as it computed them
    mutable std::atomic<bool> tensors_used{false};
    int64_t t = 0;
    int target_node = 0;
    std::vector<float> output;
    std::vector<int64_t> target;
    std::vector<Layer> layers;  // the model's filter layers, in its order
    std::vector<float> output_saliency;
    std::vector<float> loss;  // loss_i when explaining the loss
    // The model's parameters and the input are finite (the input was checked: no
    // allow_nonfinite).
    bool finite = false;

    // Forward-mode saliency, computed on first use: the model's plan for this length, and the
    // signed (N, F, C, T) sums of the layers computed so far, by layer index.
    mutable std::mutex forward_mutex;
    mutable std::shared_ptr<const SaliencyPlan> plan;
    mutable std::map<size_t, std::vector<float>> forward_sums;
    // Layers whose sums were handed out whole (a request for every filter takes them instead
    // of a copy); a later request computes that layer again, and a sweep skips it otherwise.
    mutable std::vector<bool> forward_given;

    const Graph& graph() const { return model->graph; }
    ~Impl() {
        // A large explanation kept its tensors for nothing: the next one streams again.
        if (large && kept && !tensors_used.load(std::memory_order_relaxed)) model->keep_tensors.store(false);
        model->give_arena(std::move(act.arena));
        for (auto& [k, sums] : forward_sums) model->give_block(std::move(sums));
    }
    // The model's lookup (find_layer): its layers are these, in the same order.
    size_t layer_index(const std::string& name) const { return find_layer(model->layers, name); }
    const Layer& layer(const std::string& name) const { return layers[layer_index(name)]; }
    int64_t size(int node) const { return act.geo[node].out.size(); }
    // Runs the forward pass into act once, in explain's chunks (the kernels then see the same
    // batches as explain's pass did: the same values, whatever the thread count); thread-safe.
    const Activations& tensors() const {
        if (large && !tensors_used.exchange(true, std::memory_order_relaxed)) model->keep_tensors.store(true);
        std::call_once(tensors_once, [this] {
            parallel_for((act.n + chunk - 1) / chunk, [&](int64_t part) {
                const int64_t first = part * chunk;
                forward_samples(graph(), act, first, std::min(act.n, first + chunk));
            });
        });
        return act;
    }
};

Explanation::Explanation(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

Explanation Model::explain(const float* x, int64_t n, const std::vector<int64_t>& sample_shape,
                           const ExplainOptions& options) const {
    const Graph& g = impl_->graph;
    if (n < 1) throw ArgumentError("explain needs at least one sample, got " + std::to_string(n));
    auto ex = std::make_shared<Explanation::Impl>();
    ex->model = impl_;
    ex->t = impl_->check_input(x, n, sample_shape, options.allow_nonfinite);
    // Checks the memory for every sample's tensors, which later calls may ask for.
    ex->act = impl_->load_input(x, 0, n, ex->t);
    ex->finite = impl_->finite_parameters && !options.allow_nonfinite;
    // The forward runs chunk by chunk just before each chunk's backward (below), in the
    // thread's own arena, while the chunk's tensors are in cache.
    const int64_t k = impl_->n_outputs;
    int64_t per_sample = 0;
    for (const auto& r : ex->act.geo) per_sample += r.out.size();
    const int64_t chunk = std::clamp<int64_t>(kExplainChunkFloats / std::max<int64_t>(per_sample, 1), 1, n);
    ex->chunk = chunk;
    const bool wrt_loss = options.loss.has_value();
    // A classifier's default target is its argmax, set chunk by chunk from the outputs.
    const bool argmax_target = options.target.empty() && k > 1 && !wrt_loss;

    Seeding how = {wrt_loss, options.loss.value_or(Loss::Mse), options.output == ExplainOutput::Prob, options.target};
    check_seeding(g, ex->act.geo, k, n, how, options.y_true);
    ex->target_node = target_node(g, how);
    ex->target.reserve(static_cast<size_t>(n));
    if (wrt_loss) {
        ex->loss.assign(static_cast<size_t>(n), 0.f);
        for (int64_t i = 0; i < n; ++i)
            ex->target.push_back(how.loss == Loss::CrossEntropy ? static_cast<int64_t>(options.y_true[i]) : -1);
    } else if (!argmax_target) {
        for (int64_t i = 0; i < n; ++i) ex->target.push_back(options.target.size() == 1 ? options.target[0]
                                                             : options.target.empty() ? 0 : options.target[i]);
    } else {
        ex->target.assign(static_cast<size_t>(n), 0);
    }
    ex->output.assign(static_cast<size_t>(n * k), 0.f);

    // Filter layers and their activations (SPEC.md: a^l is z^l after the elementwise
    // activation that is its only consumer).
    std::vector<bool> keep(g.nodes.size(), false);
    keep[0] = true;
    ex->layers.reserve(impl_->layers.size());
    for (const LayerInfo& info : impl_->layers) {
        Explanation::Impl::Layer l;
        l.z = static_cast<int>(info.node);
        l.a = static_cast<int>(info.activation_node);
        keep[l.z] = true;
        ex->layers.push_back(std::move(l));
    }

    // One backward pass from the target: d a^L / d z^l for every layer and d a^L / d x,
    // each thread on its own range of samples, writing its own rows.
    const int tn = ex->target_node;
    const int64_t in_size = ex->size(0);
    for (auto& l : ex->layers) {
        l.importance_raw.assign(static_cast<size_t>(n * ex->act.geo[l.z].out.c), 0.f);
        l.taylor.assign(l.importance_raw.size(), 0.f);
        l.dead.assign(l.importance_raw.size(), 0);
    }
    ex->output_saliency.assign(static_cast<size_t>(n * in_size), 0.f);
#if defined(__x86_64__) && defined(__GNUC__)
    const int isa = ops::isa_level();  // importance_rows_avx512 or _avx2
#endif
    // One chunk of samples [first, first + m), which lie from sample `at` on in act (0 in a
    // thread's chunk arena, `first` in the explanation's): forward, backward, sums.
    // A pass that keeps no tensors runs each ReLU inside the convolution or sum before it, as
    // predict does: z^l of such a layer is not written, and its ReLU's pass goes. Nothing
    // else reads it: the ReLU's backward gates by its output (a > 0 exactly where z > 0), and
    // the Taylor sum takes a^l for z^l, the same sum where the cotangent is gated (z g = a g
    // wherever g is not 0, and both are 0 elsewhere). Only with finite parameters and input: a
    // z of -inf (an overflow) would make z g NaN where a g is 0.
    // Whether it streams is known after pass is defined; pass reads it at its calls.
    bool fuse = false;
    const std::vector<int>& fused = impl_->relu_fusion;
    auto pass = [&](Activations& act, int64_t at, int64_t first, int64_t m) {
        thread_local Cotangents ct;  // buffers kept between calls (a chunk's worth)
        ct.grad.resize(g.nodes.size());
        forward_samples(g, act, at, at + m, nullptr, 0, fuse ? &fused : nullptr);
        const float* y = act.arena.data() + act.offset[g.output] + at * k;
        std::copy(y, y + m * k, ex->output.begin() + first * k);
        if (argmax_target)
            for (int64_t i = 0; i < m; ++i)
                ex->target[first + i] = std::max_element(y + i * k, y + (i + 1) * k) - (y + i * k);
        seed_rows(act, tn, at, m, how, ex->target.data() + first,
                  wrt_loss ? options.y_true.data() + first * loss_target_columns(how.loss, k) : nullptr,
                  ct.buffer(tn), wrt_loss ? ex->loss.data() + first : nullptr);
        backward(g, act, at, m, tn, 1, keep, ct);
        for (auto& l : ex->layers) {
            const int64_t f_n = act.geo[l.z].out.c, len = act.geo[l.z].out.l;
            const float* a = act.arena.data() + act.offset[l.a] + at * f_n * len;
            uint8_t* dead = l.dead.data() + first * f_n;
            const GradBuffer& gz = ct.grad[l.z];
            if (gz.empty()) {  // the target does not depend on the layer: importance 0
                dead_rows(a, m * f_n, len, dead);
                continue;
            }
            // A fused layer's z^l is not written: its Taylor sum takes a^l (see fuse).
            const int z_node = fuse && fused[l.z] >= 0 ? l.a : l.z;
            const float* z = act.arena.data() + act.offset[z_node] + at * f_n * len;
            float* raw = l.importance_raw.data() + first * f_n;
            float* taylor = l.taylor.data() + first * f_n;
#if defined(__x86_64__) && defined(__GNUC__)
            if (isa == 2) {
                importance_rows_avx512(gz.data(), z, a, m * f_n, len, raw, taylor, dead);
                continue;
            }
            if (isa == 1) {
                importance_rows_avx2(gz.data(), z, a, m * f_n, len, raw, taylor, dead);
                continue;
            }
#endif
            importance_rows(gz.data(), z, a, m * f_n, len, raw, taylor, dead);
        }
        const GradBuffer& gx = ct.grad[0];
        if (!gx.empty())
            ops::abs_floats(gx.data(), m * in_size, ex->output_saliency.data() + first * in_size);
    };
    // Either way the threads claim chunks as they come free, so a worker the system runs late
    // (woken from sleep at the call's start) takes fewer, and none waits for it. Few tensors,
    // or a large batch after one whose tensors were asked for (a full analysis explains and
    // then asks for every layer's saliency, batch after batch): in the explanation's own
    // arena, which then holds them.
    ex->large = n * per_sample > kKeptTensorFloats;
    ex->kept = !ex->large || impl_->keep_tensors.load();
    if (ex->kept) {
        parallel_for((n + chunk - 1) / chunk, [&](int64_t part) {
            const int64_t first = part * chunk;
            pass(ex->act, first, first, std::min(chunk, n - first));
        });
        std::call_once(ex->tensors_once, [] {});
    } else {
        fuse = ex->finite;
        // Chunks whose tensors and cotangents stay in cache, each thread reusing its arena and
        // buffers (for_each_chunk). Writing every chunk's tensors into the explanation's arena
        // instead cost a third more on the paper net's 64 windows (1.2 MB of tensors) when
        // that arena was out of cache (after other work, as in an application); a later call
        // that needs them runs the forward pass again (Impl::tensors).
        impl_->for_each_chunk(x, n, ex->t, chunk,
                              [&](Activations& act, int64_t first, int64_t m) { pass(act, 0, first, m); });
    }

    // SPEC.md eq. 16: min-max scaling within the layer. When every filter has the same raw
    // importance (always so for a layer of one filter), each gets 1 if it is positive (all
    // matter equally) and 0 if it is 0 (all dead).
    for (auto& l : ex->layers) {
        const int64_t f_n = ex->act.geo[l.z].out.c;
        l.importance.assign(l.importance_raw.size(), 0.f);
        for (int64_t i = 0; i < n; ++i) {
            const float* raw = l.importance_raw.data() + i * f_n;
            float* scaled = l.importance.data() + i * f_n;
            const auto [lo_at, hi_at] = std::minmax_element(raw, raw + f_n);
            const float lo = *lo_at, hi = *hi_at;
            // The branch hoisted out of the loop, which then runs in vector lanes (a division
            // per filter in scalar code was a twentieth of explaining 64 windows of the paper net).
            if (hi > lo) {
                const float range = hi - lo;
                for (int64_t f = 0; f < f_n; ++f) scaled[f] = (raw[f] - lo) / range;
            } else {
                std::fill(scaled, scaled + f_n, hi > 0.f ? 1.f : 0.f);
            }
        }
    }
    return Explanation(ex);
}

int64_t Explanation::n_samples() const { return impl_->act.n; }
int64_t Explanation::n_outputs() const { return impl_->model->n_outputs; }
int64_t Explanation::input_channels() const { return impl_->act.geo[0].out.c; }
int64_t Explanation::input_length() const { return impl_->t; }
const std::vector<float>& Explanation::output() const { return impl_->output; }
const std::vector<int64_t>& Explanation::target() const { return impl_->target; }
const std::vector<std::string>& Explanation::layer_names() const { return impl_->model->layer_names; }
int64_t Explanation::n_filters(const std::string& layer) const {
    return impl_->act.geo[impl_->layer(layer).z].out.c;
}
int64_t Explanation::layer_length(const std::string& layer) const {
    return impl_->act.geo[impl_->layer(layer).z].out.l;
}
const float* Explanation::preactivations(const std::string& layer) const {
    const int z = impl_->layer(layer).z;
    const Activations& act = impl_->tensors();
    return act.arena.data() + act.offset[z];
}
const float* Explanation::activations(const std::string& layer) const {
    const int a = impl_->layer(layer).a;
    const Activations& act = impl_->tensors();
    return act.arena.data() + act.offset[a];
}
const std::string& Explanation::activation_name(const std::string& layer) const {
    return impl_->graph().nodes[impl_->layer(layer).a].name;
}
const std::vector<float>& Explanation::importance_raw(const std::string& layer) const {
    return impl_->layer(layer).importance_raw;
}
const std::vector<float>& Explanation::taylor(const std::string& layer) const { return impl_->layer(layer).taylor; }
const std::vector<uint8_t>& Explanation::dead(const std::string& layer) const { return impl_->layer(layer).dead; }
const std::vector<float>& Explanation::importance(const std::string& layer) const {
    return impl_->layer(layer).importance;
}
const std::vector<float>& Explanation::output_saliency() const { return impl_->output_saliency; }
const std::vector<float>& Explanation::loss() const { return impl_->loss; }

namespace {

// The cost of one node for one row (a cotangent, or a tangent) over `len` positions, in FLOPs
// plus fixed costs: each (source row, tap) of a product's segment costs about kPieceCost FLOPs
// (the zero-padded source copy and the tile set-up of the narrow-segment kernel), and every
// channel row of a node's output kRowCost (the loop and memory work of a pass over a short
// row), which is what makes many narrow tangent bands dearer than their FLOPs on small layers.
// In reverse mode the product reads the cotangent's channels, in forward mode the input's.
// Calibrated on the committed models against the measured time of each mode.
constexpr double kPieceCost = 100.0, kRowCost = 20.0;
// Forward mode's tangent bands are narrow and many: per FLOP they cost about 1.5 times a
// reverse pass's rows (measured on the paper net and the residual net, 1 and 64 samples).
constexpr double kForwardScale = 1.5;
double node_cost(const Node& node, const Shape& in, const Shape& out, int64_t len, bool reverse) {
    const double rows = kRowCost * static_cast<double>(out.c);
    if (node.kind == OpKind::Conv)
        return 2.0 * static_cast<double>(out.c) * static_cast<double>(in.c / node.group) * node.kernel * len +
               kPieceCost * node.kernel * static_cast<double>(reverse ? out.c : in.c) + rows;
    if (node.kind == OpKind::Dense) return 2.0 * static_cast<double>(out.c) * static_cast<double>(in.size()) + rows;
    return static_cast<double>(out.c) * static_cast<double>(len) + rows;
}

// Whether reverse mode starts a convolution layer's pass with its one-hot step: the cotangent
// of filter f's row is zero outside channel f (the activation is elementwise), so its input
// gradient reads filter f's weights only, 1 / F of the dense product. With few filters per
// group the blocked product of the dense step is as fast.
bool one_hot_step(const Node& z) { return z.kind == OpKind::Conv && z.channels / z.group >= 8; }

// Reverse mode: |d sum_i a^l[f, i] / d x| for the chosen filters, one batched backward pass
// per chunk of samples, one cotangent row per (sample, filter).
// out: (N, F', C, T), every element written.
void reverse_saliency(const Explanation::Impl& ex, const Explanation::Impl::Layer& l, const std::vector<int64_t>& chosen,
                      float* out) {
    const Graph& g = ex.graph();
    const int64_t f_n = ex.act.geo[l.a].out.c, len = ex.act.geo[l.a].out.l;
    const int64_t n = ex.act.n, reps = static_cast<int64_t>(chosen.size()), in_size = ex.size(0);

    // Rows of one chunk of samples: each sample's filters are its rows, d sum_i a^l[f, i] / d x.
    const std::vector<bool> reach = ancestors(g, l.a);
    int64_t per_row = 0;
    for (size_t i = 0; i < reach.size(); ++i)
        if (reach[i]) per_row += ex.size(static_cast<int>(i));
    std::vector<bool> keep(g.nodes.size(), false);
    keep[0] = true;
    // The one-hot step of a convolution layer; the rest of the pass starts from its input.
    const Node& conv = g.nodes[l.z];
    const bool one_hot = one_hot_step(conv);
    if (one_hot) keep[l.z] = true;
    // Work items: a run of samples and a block of their filters, as many rows as stay in
    // cache; several samples per item when a layer has few filters, so that the products stay
    // wide. Enough items to feed the threads.
    // Items of kSweepChunkFloats, unless eight samples' rows of the layer take less: then
    // items of at least a quarter of it. A small net's rows then come in 256 KiB items, not
    // 1 MiB, which is what comes back from memory when other work has evicted the buffers
    // (channels-last net, full analysis of 64 windows after a 64 MiB read: 0.93-0.94 of its
    // time; the same when the caches are warm). The larger nets' items do not change.
    const int64_t sweep_chunk = std::clamp<int64_t>(8 * per_row * reps, kSweepChunkFloats / 4, kSweepChunkFloats);
    const int64_t block = std::clamp<int64_t>(sweep_chunk / std::max<int64_t>(1, per_row), 1, reps);
    const int64_t blocks = (reps + block - 1) / block;
    int64_t span = std::clamp<int64_t>(sweep_chunk / std::max<int64_t>(1, per_row * block), 1, n);
    span = std::min(span, std::max<int64_t>(1, n * blocks / engine_threads()));
    const int64_t spans = (n + span - 1) / span;
    // Each thread claims the next item when it is free (parallel_for's parts).
    parallel_for(spans * blocks, [&](int64_t item) {
        thread_local Cotangents ct_scratch;  // buffers kept between calls (a chunk's worth)
        thread_local std::vector<ops::FilterRow> rows_scratch;
        thread_local std::vector<int64_t> slots_scratch;
        Cotangents& ct = ct_scratch;  // bound once: a thread_local access is a call
        std::vector<ops::FilterRow>& filter_rows = rows_scratch;
        std::vector<int64_t>& slot_scratch = slots_scratch;
        ct.grad.resize(g.nodes.size());
        const int64_t first = (item / blocks) * span, count = std::min(span, n - first);
        const int64_t f0 = (item % blocks) * block, rows = std::min(reps, f0 + block) - f0;
        GradBuffer& seed = ct.buffer(l.a);
        // Row (i, r) of the item is row slot[i * rows + r] of sample i in the pass, which
        // carries `live` rows per sample; -1: left out, its saliency 0.
        std::vector<int64_t>& slot = slot_scratch;
        slot.resize(static_cast<size_t>(count * rows));
        int64_t live = rows;
        if (one_hot) {
            // Row (i, f)'s cotangent at z is d a^l[f, :] / d z[f, :] of sample i (the
            // activation is elementwise): one pass with a seed of ones gives every filter's.
            seed.assign(static_cast<size_t>(count * f_n * len), 1.f);
            if (l.a != l.z) backward(g, ex.act, first, count, l.a, 1, keep, ct, l.z);
            const GradBuffer& dz = ct.grad[l.z];
            const int p = conv.inputs[0];
            const int64_t p_size = ex.size(p);
            // A filter whose activation has zero derivative at every position of a sample (a
            // ReLU that is off all along: a quarter to a third of the deeper filters of the
            // paper net on real windows) has a saliency of exactly 0 there. Its row is left
            // out of the pass: each sample keeps its live rows, padded with zero rows to the
            // item's most. Only with finite parameters and input, where the pass would also
            // give 0 (0 times a NaN or an infinity below would not).
            live = 0;
            for (int64_t i = 0; i < count; ++i) {
                int64_t k = 0;
                for (int64_t r = 0; r < rows; ++r) {
                    const float* row = dz.data() + (i * f_n + chosen[f0 + r]) * len;
                    const bool kept = !ex.finite || std::any_of(row, row + len, [](float v) { return v != 0.f; });
                    slot[i * rows + r] = kept ? k++ : -1;
                }
                live = std::max(live, k);
            }
            if (live > 0) {
                GradBuffer& gx = ct.buffer(p);
                gx.resize(static_cast<size_t>(count * live * p_size));  // written whole below
                std::vector<ops::FilterRow>& steps = filter_rows;
                steps.clear();
                for (int64_t i = 0; i < count; ++i) {
                    int64_t k = 0;
                    for (int64_t r = 0; r < rows; ++r) {
                        if (slot[i * rows + r] < 0) continue;
                        const int64_t f = chosen[f0 + r];
                        steps.push_back({f, dz.data() + (i * f_n + f) * len, gx.data() + (i * live + k++) * p_size});
                    }
                    std::fill(gx.data() + (i * live + k) * p_size, gx.data() + (i + 1) * live * p_size, 0.f);
                }
                ops::conv_filter_input_grad(conv, ex.act.geo[l.z], ex.act.geo[p].out, steps.data(),
                                            static_cast<int64_t>(steps.size()));
                backward(g, ex.act, first, count, p, live, keep, ct, 0, true);
            }
        } else {
            ops::assign_zeros(seed, static_cast<size_t>(count * rows * f_n * len));
            for (int64_t i = 0; i < count; ++i)
                for (int64_t r = 0; r < rows; ++r) {
                    float* row = seed.data() + ((i * rows + r) * f_n + chosen[f0 + r]) * len;
                    std::fill(row, row + len, 1.f);
                    slot[i * rows + r] = r;
                }
            backward(g, ex.act, first, count, l.a, rows, keep, ct, 0, true);
        }
        const GradBuffer& gx = ct.grad[0];
        for (int64_t i = 0; i < count; ++i)
            for (int64_t r = 0; r < rows; ++r) {
                float* dst = out + ((first + i) * reps + f0 + r) * in_size;
                const int64_t k = slot[i * rows + r];
                // No pass (every row left out), the input does not reach the layer, or a row
                // left out.
                if (live == 0 || gx.empty() || k < 0) {
                    std::fill(dst, dst + in_size, 0.f);
                    continue;
                }
                const float* src = gx.data() + (i * live + k) * in_size;
                ops::abs_floats(src, in_size, dst);
            }
    });
}

// Whether the saliency of `chosen` filters of layer l is the explanation's output saliency: the
// layer's a^l is the explained node (an explanation of the output, not of the loss), one
// position long, and the one filter asked for is every sample's explained unit (a regression
// head with one output, as the paper's forecaster has). |d sum_i a^l[f, i] / d x| is then
// |d a^L / d x|.
bool is_output_saliency(const Explanation::Impl& ex, const Explanation::Impl::Layer& l,
                        const std::vector<int64_t>& chosen) {
    if (!ex.loss.empty() || l.a != ex.target_node || ex.act.geo[l.a].out.l != 1 || chosen.size() != 1) return false;
    return std::all_of(ex.target.begin(), ex.target.end(), [&](int64_t t) { return t == chosen[0]; });
}

// Where Explanation::saliency puts its answer: a vector it may fill by moving kept sums into
// it, or the caller's memory.
struct SaliencySink {
    std::vector<float>* vec = nullptr;
    float* ptr = nullptr;
    float* buffer(size_t size) const {
        if (!vec) return ptr;
        vec->resize(size);
        return vec->data();
    }
};

void saliency_into(const Explanation::Impl& ex, const std::string& layer, const std::vector<int64_t>& filters,
                   SaliencyMethod method, const SaliencySink& sink);

}  // namespace

std::vector<float> Explanation::saliency(const std::string& layer, const std::vector<int64_t>& filters,
                                         SaliencyMethod method) const {
    std::vector<float> out;
    saliency_into(*impl_, layer, filters, method, {&out, nullptr});
    return out;
}

void Explanation::saliency(const std::string& layer, const std::vector<int64_t>& filters, SaliencyMethod method,
                           float* out) const {
    if (!out) throw ArgumentError("saliency: the output pointer is null");
    saliency_into(*impl_, layer, filters, method, {nullptr, out});
}

namespace {

void saliency_into(const Explanation::Impl& ex, const std::string& layer, const std::vector<int64_t>& filters,
                   SaliencyMethod method, const SaliencySink& sink) {
    const size_t li = ex.layer_index(layer);
    const Explanation::Impl::Layer& l = ex.layers[li];
    const Graph& g = ex.graph();
    const int64_t f_n = ex.act.geo[l.a].out.c;
    std::vector<int64_t> chosen = filters;
    if (chosen.empty()) {
        chosen.resize(static_cast<size_t>(f_n));
        for (int64_t f = 0; f < f_n; ++f) chosen[f] = f;
    }
    for (int64_t f : chosen)
        if (f < 0 || f >= f_n)
            throw ArgumentError("filter " + std::to_string(f) + " is out of range for layer '" + layer +
                                "' with " + std::to_string(f_n) + " filters");
    const int64_t in_size = ex.size(0), reps = static_cast<int64_t>(chosen.size()), n = ex.act.n;
    const size_t out_size = static_cast<size_t>(n * reps * in_size);
    if (method == SaliencyMethod::Auto && is_output_saliency(ex, l, chosen)) {
        // The explanation has it already: output_saliency is |d a^L / d x|, one backward pass
        // from the same unit (a fifteenth of the paper net's full analysis was this pass), and
        // no forward pass is needed for it.
        std::copy(ex.output_saliency.begin(), ex.output_saliency.end(), sink.buffer(out_size));
        return;
    }
    ex.tensors();  // both modes read the forward pass (a streamed explanation runs it now)
    if (method == SaliencyMethod::Reverse) return reverse_saliency(ex, l, chosen, sink.buffer(out_size));

    std::lock_guard<std::mutex> lock(ex.forward_mutex);
    auto shape = [&](int v) -> const Shape& { return ex.act.geo[v].out; };
    // The forward sweep's bands: the model's plan, or the one being made.
    const BandPlan* bands = ex.plan ? &ex.plan->bands : nullptr;
    // Per-sample FLOPs of reverse mode for `rows` filters of layer k, and of a forward sweep
    // up to the layers in `set`.
    auto reverse_cost = [&](size_t k, int64_t rows) {
        const Explanation::Impl::Layer& lk = ex.layers[k];
        const std::vector<bool> reach = ancestors(g, lk.a);
        const bool one_hot = one_hot_step(g.nodes[lk.z]);
        double sum = 0, once = 0;
        for (size_t v = 1; v < reach.size(); ++v) {
            if (!reach[v]) continue;
            const Node& node = g.nodes[v];
            const Shape& in = shape(node.inputs[0]);
            if (one_hot && static_cast<int>(v) > lk.z) {
                // The activation's derivative, once per sample.
                once += node_cost(node, in, shape(v), shape(v).l, true);
            } else if (one_hot && static_cast<int>(v) == lk.z) {
                // Filter f's weights over its group's channels: one filter's product.
                sum += 2.0 * static_cast<double>(in.c / node.group) * node.kernel * static_cast<double>(in.l) +
                       kPieceCost * node.kernel + kRowCost * static_cast<double>(in.c);
            } else {
                sum += node_cost(node, in, shape(v), shape(v).l, true);
            }
        }
        return sum * static_cast<double>(rows) + once;
    };
    auto forward_cost = [&](const std::vector<bool>& set) {
        std::vector<int> starts;
        for (size_t k = 0; k < set.size(); ++k)
            if (set[k]) starts.push_back(ex.layers[k].a);
        std::vector<bool> reach;
        ancestors(g, starts, reach);
        double sum = 0;
        for (size_t v = 1; v < reach.size(); ++v)
            if (reach[v])
                sum += node_cost(g.nodes[v], shape(g.nodes[v].inputs[0]), shape(v), bands->width[v], false);
        return kForwardScale * sum * static_cast<double>(in_size);
    };
    if (!ex.plan) ex.plan = ex.model->saliency_plan(ex.t, [&](SaliencyPlan& plan) {
        bands = &plan.bands;
        std::vector<int> every_layer;
        for (const auto& layer_k : ex.layers) every_layer.push_back(layer_k.a);
        std::vector<bool> all;
        ancestors(g, every_layer, all);
        plan.bands = plan_bands(g, ex.act.geo, all);
        // The prefix of layers (topological order of a^l) that forward mode serves best when
        // every filter of every layer is asked for.
        std::vector<size_t> order(ex.layers.size());
        for (size_t k = 0; k < order.size(); ++k) order[k] = k;
        std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ex.layers[a].a < ex.layers[b].a; });
        std::vector<double> rev(ex.layers.size());
        for (size_t k = 0; k < rev.size(); ++k) rev[k] = reverse_cost(k, shape(ex.layers[k].a).c);
        std::vector<bool> set(ex.layers.size(), false), best_set = set;
        double best = 0;
        for (double r : rev) best += r;
        for (size_t m = 0; m < order.size(); ++m) {
            set[order[m]] = true;
            double cost = forward_cost(set);
            for (size_t k = m + 1; k < order.size(); ++k) cost += rev[order[k]];
            if (cost < best) {
                best = cost;
                best_set = set;
            }
        }
        plan.forward_layers = best_set;
    });
    bands = &ex.plan->bands;
    auto it = ex.forward_sums.find(li);
    if (it == ex.forward_sums.end()) {
        const std::vector<bool>& planned = ex.plan->forward_layers;
        if (method == SaliencyMethod::Auto) {
            // A few filters of a layer may cost less in reverse mode than a sweep that reaches
            // it. Every filter of a planned layer follows the plan: that is a full analysis,
            // whose later layers the sweep serves too (judged one call at a time, each early
            // layer would go reverse and the sweep would still run for the deep ones).
            if (!planned[li]) return reverse_saliency(ex, l, chosen, sink.buffer(out_size));
            if (reps < f_n) {
                std::vector<bool> alone(ex.layers.size(), false);
                alone[li] = true;
                if (reverse_cost(li, reps) <= forward_cost(alone))
                    return reverse_saliency(ex, l, chosen, sink.buffer(out_size));
            }
        }
        std::vector<bool> sweep = planned;
        sweep[li] = true;
        ex.forward_given.resize(ex.layers.size(), false);
        for (size_t k = 0; k < sweep.size(); ++k)
            if (ex.forward_sums.count(k) || (ex.forward_given[k] && k != li)) sweep[k] = false;
        std::vector<int> targets;
        std::vector<float*> outs;
        for (size_t k = 0; k < sweep.size(); ++k) {
            if (!sweep[k]) continue;
            // tangent_sums writes every element: a block of the right size is not cleared.
            const size_t size = static_cast<size_t>(n * shape(ex.layers[k].a).c * in_size);
            std::vector<float>& dst = ex.forward_sums[k] = ex.model->take_block(size);
            dst.resize(size);
            targets.push_back(ex.layers[k].a);
            outs.push_back(dst.data());
        }
        tangent_sums(g, ex.act, *bands, targets, outs);
        it = ex.forward_sums.find(li);
    }
    bool every_filter = reps == f_n;
    for (int64_t r = 0; r < reps && every_filter; ++r) every_filter = chosen[r] == r;
    if (every_filter && sink.vec) {
        // The sums are the answer's layout: |.| in place and hand them out, rather than copy
        // N x F x C x T floats into a new array and keep both.
        *sink.vec = std::move(it->second);
        ex.forward_sums.erase(it);
        ex.forward_given[li] = true;
        for (float& v : *sink.vec) v = std::fabs(v);
        return;
    }
    const std::vector<float>& sums = it->second;
    float* out = sink.buffer(out_size);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t r = 0; r < reps; ++r) {
            const float* src = sums.data() + (i * f_n + chosen[r]) * in_size;
            float* dst = out + (i * reps + r) * in_size;
            ops::abs_floats(src, in_size, dst);
        }
    if (every_filter) {  // given whole, as above: not kept twice
        ex.model->give_block(std::move(it->second));
        ex.forward_sums.erase(it);
        ex.forward_given[li] = true;
    }
}

}  // namespace

std::vector<uint8_t> Explanation::keep(const std::string& layer, double percentile) const {
    if (!(percentile >= 0.0 && percentile <= 100.0))
        throw ArgumentError("percentile must be between 0 and 100, got " + std::to_string(percentile));
    const std::vector<float>& imp = importance(layer);
    const int64_t f_n = n_filters(layer), n = n_samples();
    std::vector<uint8_t> out(imp.size(), 0);
    std::vector<float> sorted(static_cast<size_t>(f_n));
    for (int64_t i = 0; i < n; ++i) {
        const float* row = imp.data() + i * f_n;
        std::copy(row, row + f_n, sorted.begin());
        // NaN last (numpy's order): std::sort with a plain < on NaN is undefined behaviour and
        // may read out of bounds; a NaN importance (allow_nonfinite, NaN weights) keeps nothing.
        std::sort(sorted.begin(), sorted.end(),
                  [](float p, float q) { return p < q || (std::isnan(q) && !std::isnan(p)); });
        // numpy's default percentile: linear interpolation between the neighbouring ranks,
        // with numpy's two-sided lerp so that the threshold is bit-identical.
        const double rank = percentile / 100.0 * static_cast<double>(f_n - 1);
        const int64_t lo = static_cast<int64_t>(std::floor(rank));
        const int64_t hi = std::min<int64_t>(lo + 1, f_n - 1);
        const double frac = rank - static_cast<double>(lo);
        const double a = sorted[lo], b = sorted[hi], diff = b - a;
        const double threshold = frac >= 0.5 ? b - diff * (1.0 - frac) : a + diff * frac;
        for (int64_t f = 0; f < f_n; ++f) out[i * f_n + f] = static_cast<double>(row[f]) >= threshold;
    }
    return out;
}

std::map<std::string, TraceMask> Explanation::trace(const std::string& name, int64_t filter, int64_t position,
                                                    int64_t sample, bool active_only) const {
    const Impl& ex = *impl_;
    const Graph& g = ex.graph();
    int start = -1;
    for (size_t k = 0; k < ex.layers.size(); ++k)
        if (ex.model->layer_names[k] == name) start = ex.layers[k].a;
    for (size_t i = 0; start < 0 && i < g.nodes.size(); ++i)
        if (g.nodes[i].name == name) start = static_cast<int>(i);
    if (start < 0) start = ex.layer(name).a;  // a label or an index; throws, naming the filter layers
    if (sample < 0 || sample >= ex.act.n)
        throw ArgumentError("sample " + std::to_string(sample) + " is out of range for " +
                            std::to_string(ex.act.n) + " samples");
    const Shape& s = ex.act.geo[start].out;
    if (filter < 0 || filter >= s.c)
        throw ArgumentError("filter " + std::to_string(filter) + " is out of range for '" + name + "' with " +
                            std::to_string(s.c) + " filters");
    if (position < 0 || position >= s.l)
        throw ArgumentError("position " + std::to_string(position) + " is out of range for '" + name +
                            "' of length " + std::to_string(s.l));

    ex.tensors();
    const std::vector<bool> reach = ancestors(g, start);
    std::vector<std::vector<uint8_t>> masks(g.nodes.size());
    for (size_t i = 0; i < g.nodes.size(); ++i)
        if (reach[i]) masks[i].assign(static_cast<size_t>(ex.size(static_cast<int>(i))), 0);
    masks[start][filter * s.l + position] = 1;
    for (int i = start; i > 0; --i) {
        if (!reach[i]) continue;
        const Node& node = g.nodes[i];
        ops::TraceArgs args{node, ex.act.geo[i], {}, ex.act.view(i), ex.act.aux.data() + ex.act.aux_offset[i],
                            sample, masks[i].data(), {}, active_only};
        for (int p : node.inputs) {
            args.in.push_back(ex.act.view(p));
            args.mask_in.push_back(masks[p].data());
        }
        ops::rules(node.kind).trace(args);
    }
    std::map<std::string, TraceMask> out;
    for (size_t i = 0; i < g.nodes.size(); ++i)
        if (reach[i]) out[g.nodes[i].name] = {ex.act.geo[i].out.c, ex.act.geo[i].out.l, std::move(masks[i])};
    return out;
}

InputGradient Model::input_gradient(const float* x, int64_t n, const std::vector<int64_t>& sample_shape,
                                   const GradientOptions& options) const {
    const Graph& g = impl_->graph;
    if (n < 1) throw ArgumentError("input_gradient needs at least one sample, got " + std::to_string(n));
    const int64_t t = impl_->check_input(x, n, sample_shape, options.allow_nonfinite);
    const int64_t k = impl_->n_outputs, c = impl_->input.channels, in_size = c * t;
    const auto kept_geo = impl_->geometry(t);
    const std::vector<ops::Resolved>& geo = *kept_geo;
    const bool of_loss = options.of == GradientOf::Loss, of_filter = options.of == GradientOf::Filter;
    const Seeding how{of_loss, options.loss, options.output == ExplainOutput::Prob, options.target};
    int start = 0;
    if (of_filter) {
        start = activation_node(g, filter_layer_node(g, options.layer));
        if (options.filter < 0 || options.filter >= geo[start].out.c)
            throw ArgumentError("filter " + std::to_string(options.filter) + " is out of range for layer '" +
                                options.layer + "' with " + std::to_string(geo[start].out.c) + " filters");
    } else {
        check_seeding(g, geo, k, n, how, options.y_true);
        start = target_node(g, how);
    }
    const int64_t cols = loss_target_columns(options.loss, k);
    InputGradient out;
    out.output.resize(static_cast<size_t>(n * k));
    out.value.resize(static_cast<size_t>(n));
    out.gradient.resize(static_cast<size_t>(n * in_size));
    // Chunks as predict's, each thread reusing its arena and cotangent buffers.
    impl_->check_memory(1, t);
    int64_t per_sample = 0;
    for (const auto& r : geo) per_sample += r.out.size();
    const int64_t chunk = std::clamp<int64_t>(kChunkFloats / std::max<int64_t>(per_sample, 1), 1, n);
    std::vector<bool> keep(g.nodes.size(), false);
    keep[0] = true;
    const int64_t size = geo[start].out.size(), len = geo[start].out.l;
    impl_->for_each_chunk(x, n, t, chunk, [&](Activations& act, int64_t first, int64_t m) {
        thread_local Cotangents ct;  // buffers kept between calls
        ct.grad.resize(g.nodes.size());
        std::vector<int64_t> target(static_cast<size_t>(m));
        forward_samples(g, act, 0, m);
        const float* y = act.arena.data() + act.offset[g.output];
        std::copy(y, y + m * k, out.output.begin() + first * k);
        const float* v = act.arena.data() + act.offset[start];
        GradBuffer& seed = ct.buffer(start);
        if (of_filter) {
            ops::assign_zeros(seed, static_cast<size_t>(m * size));
            for (int64_t i = 0; i < m; ++i) {
                std::fill_n(seed.data() + i * size + options.filter * len, len, 1.f);
                double sum = 0;
                for (int64_t p = 0; p < len; ++p) sum += v[i * size + options.filter * len + p];
                out.value[first + i] = static_cast<float>(sum);
            }
        } else {
            for (int64_t i = 0; i < m; ++i) {
                if (!options.target.empty())
                    target[i] = options.target.size() == 1 ? options.target[0] : options.target[first + i];
                else
                    target[i] = k == 1 ? 0 : std::max_element(y + i * k, y + (i + 1) * k) - (y + i * k);
            }
            seed_rows(act, start, 0, m, how, target.data(), of_loss ? options.y_true.data() + first * cols : nullptr,
                      seed, of_loss ? out.value.data() + first : nullptr);
            if (!of_loss)
                for (int64_t i = 0; i < m; ++i) out.value[first + i] = v[i * size + target[i]];
        }
        backward(g, act, 0, m, start, 1, keep, ct);
        const GradBuffer& gx = ct.grad[0];
        float* dst = out.gradient.data() + first * in_size;
        if (gx.empty()) {
            std::fill_n(dst, m * in_size, 0.f);
        } else if (impl_->input.layout == "NTC") {
            for (int64_t i = 0; i < m; ++i)
                for (int64_t ch = 0; ch < c; ++ch)
                    for (int64_t p = 0; p < t; ++p) dst[(i * t + p) * c + ch] = gx[(i * c + ch) * t + p];
        } else {
            std::copy(gx.begin(), gx.begin() + m * in_size, dst);
        }
    });
    return out;
}

}  // namespace tsviz
