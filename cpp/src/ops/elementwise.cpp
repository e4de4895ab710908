// Per-channel affine maps and sums of tensors. Affine is what a BatchNormalization
// (inference) or a Mul/Add/Sub/Div by a per-channel or scalar constant becomes; after a
// convolution or dense layer it is folded into the weights at import. Add sums two tensors of
// one shape (ONNX Add of two activations: residual connections).
#include <algorithm>
#include <cmath>
#include <string>

#include "onnx/lowering.hpp"
#include "ops/buffer.hpp"
#include "ops/fast_math.hpp"
#include "ops/gemm.hpp"
#include "ops/op.hpp"
#include "ops/simd.hpp"
#include "tsviz/error.hpp"

namespace tsviz::ops {

void forward_affine(const ForwardArgs& a) {
    const ConstView& x = a.in[0];
    const std::vector<float>& scale = a.node.scale;
    const std::vector<float>& shift = a.node.shift;
    for (int64_t n = 0; n < x.n; ++n)
        for (int64_t c = 0; c < x.c; ++c) {
            const float* __restrict xc = x.sample(n) + c * x.l;
            float* __restrict yc = a.out.sample(n) + c * x.l;
            const float s = scale[c], b = shift[c];  // read once, not per position
            for (int64_t i = 0; i < x.l; ++i) yc[i] = xc[i] * s + b;
        }
}

Resolved infer_add(const Node& node, const std::vector<Shape>& in) {
    const Shape& p = in.at(0);
    const Shape& q = in.at(1);
    if (p.c != q.c || p.l != q.l)
        throw ShapeError("node '" + node.onnx_node + "' (" + node.onnx_op +
                         "): adds tensors of shapes (" + std::to_string(p.c) + ", " +
                         std::to_string(p.l) + ") and (" + std::to_string(q.c) + ", " +
                         std::to_string(q.l) + ")");
    Resolved r;
    r.out = p;
    return r;
}

// ops/buffer.hpp. The loop stays a loop: GCC would otherwise call memset for it. (Clang does
// not take no_builtin("memset") on a multiversioned function; a Clang build may call memset.)
#if defined(__GNUC__) && !defined(__clang__)
#define TSVIZ_NO_MEMSET __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define TSVIZ_NO_MEMSET
#endif
TSVIZ_SIMD TSVIZ_NO_MEMSET void zero_floats(float* p, int64_t n) {
    for (int64_t i = 0; i < n; ++i) p[i] = 0.f;
}

TSVIZ_SIMD void abs_floats(const float* __restrict src, int64_t n, float* __restrict dst) {
    for (int64_t i = 0; i < n; ++i) dst[i] = std::fabs(src[i]);
}

// Compiled per instruction set (ops/simd.hpp): one add per element, the same in every lane;
// with a fused ReLU (ForwardArgs::relu), the ReLU of the sum as forward_relu makes it.
TSVIZ_SIMD void forward_add(const ForwardArgs& a) {
    const int64_t total = a.out.n * a.out.c * a.out.l;
    const float* __restrict p = a.in[0].data;
    const float* __restrict q = a.in[1].data;
    float* __restrict y = a.out.data;
    if (a.relu) {
        for (int64_t i = 0; i < total; ++i) y[i] = relu(p[i] + q[i]);
        return;
    }
    for (int64_t i = 0; i < total; ++i) y[i] = p[i] + q[i];
}

void backward_affine(const BackwardArgs& a) {
    const View& gx = a.grad_in[0];
    if (!gx.data) return;
    for (int64_t r = 0; r < gx.n; ++r)
        for (int64_t c = 0; c < gx.c; ++c) {
            const float* g = a.grad_out.sample(r) + c * gx.l;
            float* dst = gx.sample(r) + c * gx.l;
            const float s = a.node.scale[c];
            for (int64_t i = 0; i < gx.l; ++i) dst[i] += g[i] * s;
        }
}

// Same position; with active_only, not through a channel scaled by exactly 0.
void trace_affine(const TraceArgs& a) {
    const int64_t len = a.out.l;
    for (int64_t c = 0; c < a.out.c; ++c) {
        if (a.active_only && a.node.scale[c] == 0.f) continue;
        for (int64_t i = 0; i < len; ++i)
            if (a.mask_out[c * len + i]) a.mask_in[0][c * len + i] = 1;
    }
}

// Every input's gradient is the output's: copied into an input's fresh buffer (the zero fill
// and the add over it had been a twentieth of explaining 64 windows of the residual net),
// added to one that holds values.
void backward_add(const BackwardArgs& a) {
    const int64_t total = a.grad_out.n * a.grad_out.c * a.grad_out.l;
    for (size_t k = 0; k < a.grad_in.size(); ++k) {
        const View& gx = a.grad_in[k];
        if (!gx.data) continue;
        if (a.fresh(k))
            std::copy_n(a.grad_out.data, total, gx.data);
        else
            for (int64_t i = 0; i < total; ++i) gx.data[i] += a.grad_out.data[i];
    }
}

// SPEC.md: elementwise ops mark the same position on every input.
void trace_add(const TraceArgs& a) {
    const int64_t size = a.out.c * a.out.l;
    for (uint8_t* m : a.mask_in)
        for (int64_t i = 0; i < size; ++i)
            if (a.mask_out[i]) m[i] = 1;
}


Band band_affine(const BandArgs& a) { return band_same(a); }
Band band_add(const BandArgs& a) { return band_hull(a); }

void tangent_affine(const TangentArgs& a) {
    const int64_t c_n = a.out.c, w = a.w_out;
    for (int64_t t = 0; t < a.count; ++t)
        for (int64_t c = 0; c < c_n; ++c) {
            const float* src = a.t_in[0] + (t * c_n + c) * w;
            float* dst = a.t_out + (t * c_n + c) * w;
            const float s = a.node.scale[c];
            for (int64_t j = 0; j < w; ++j) dst[j] = src[j] * s;
        }
}

// Each input's band lies inside the output's (the hull), at its own offset. Every output
// position is written: the first input's band, zeros around it, then the others added. With
// a fused ReLU (TangentArgs::relu_gate) the sum is kept where the forward sum is positive.
// Tangent by tangent, so that its rows stay in cache over the inputs and the gate; an input
// on the output's own band (the residual branch) is one stretch of c_n * w_out floats.
void tangent_add_reference(const TangentArgs& a) {
    const int64_t c_n = a.out.c, w_out = a.w_out, len = a.out.l, block = c_n * w_out;
    for (int64_t t = 0; t < a.count; ++t) {
        float* __restrict out = a.t_out + t * block;
        bool first = true;
        for (size_t k = 0; k < a.t_in.size(); ++k) {
            if (!a.t_in[k]) continue;
            const int64_t w_in = a.w_in[k];
            const float* __restrict in = a.t_in[k] + t * c_n * w_in;
            // Input position r lands at output position r + shift; the overlap [r0, r1) once.
            const int64_t shift = a.start_in[k][t] - a.start_out[t];
            if (shift == 0 && w_in == w_out) {
                if (first) {
                    std::copy_n(in, block, out);
                } else {
                    for (int64_t i = 0; i < block; ++i) out[i] += in[i];
                }
            } else {
                const int64_t r0 = std::max<int64_t>(0, -shift), r1 = std::min<int64_t>(w_in, w_out - shift);
                const int64_t j0 = r0 + shift, j1 = std::max(r1 + shift, j0);
                for (int64_t c = 0; c < c_n; ++c) {
                    const float* __restrict src = in + c * w_in - shift;  // src[j]: position j - shift
                    float* __restrict dst = out + c * w_out;
                    if (first) {
                        std::fill(dst, dst + j0, 0.f);
                        for (int64_t j = j0; j < j1; ++j) dst[j] = src[j];
                        std::fill(dst + j1, dst + w_out, 0.f);
                    } else {
                        for (int64_t j = j0; j < j1; ++j) dst[j] += src[j];
                    }
                }
            }
            first = false;
        }
        if (first) std::fill(out, out + block, 0.f);  // no input reaches the sum
        if (!a.relu_gate) continue;
        for (int64_t c = 0; c < c_n; ++c) {
            float* __restrict dst = out + c * w_out;
            const float* __restrict sum = a.out.data + c * len + a.start_out[t];
            for (int64_t j = 0; j < w_out; ++j) dst[j] = sum[j] > 0.f ? dst[j] : 0.f;
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
// The same in vectors, a step of lanes at a time over the output's band: each input's overlap
// is one masked load (lanes outside it read 0), the gate a compare, the row one masked store.
// The masks and offsets depend on the tangent and the step only, so they are set once for all
// channels. The reference's copies, zero fills, adds and gate were passes of their own over
// rows of 5-20 positions, a tenth of a full analysis of the residual net. The sum is the
// same, 0 + p + q (only the sign of a zero may differ).
constexpr size_t kVectorAddInputs = 4;  // more inputs take the reference

__attribute__((target("avx512f"))) void tangent_add_avx512(const TangentArgs& a) {
    const int64_t c_n = a.out.c, w_out = a.w_out, len = a.out.l;
    const size_t inputs = a.t_in.size();
    __mmask16 mask[kVectorAddInputs];
    const float* src[kVectorAddInputs];
    int64_t ld[kVectorAddInputs];
    for (int64_t t = 0; t < a.count; ++t)
        for (int64_t p = 0; p < w_out; p += 16) {
            const __mmask16 m = lanes_inside(p, w_out);
            for (size_t k = 0; k < inputs; ++k) {
                // Input position r lands at output position r + shift.
                const int64_t w_in = a.w_in[k], r = p - (a.start_in[k][t] - a.start_out[t]);
                mask[k] = a.t_in[k] ? m & lanes_inside(r, w_in) : 0;
                src[k] = a.t_in[k] ? a.t_in[k] + t * c_n * w_in + r : nullptr;
                ld[k] = w_in;
            }
            float* dst = a.t_out + t * c_n * w_out + p;
            const float* gate = a.relu_gate ? a.out.data + a.start_out[t] + p : nullptr;
            for (int64_t c = 0; c < c_n; ++c) {
                __m512 sum = _mm512_setzero_ps();
                for (size_t k = 0; k < inputs; ++k)
                    if (mask[k]) sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(mask[k], src[k] + c * ld[k]));
                if (gate)
                    sum = _mm512_maskz_mov_ps(_mm512_mask_cmp_ps_mask(m, _mm512_maskz_loadu_ps(m, gate + c * len),
                                                                      _mm512_setzero_ps(), _CMP_GT_OQ),
                                              sum);
                _mm512_mask_storeu_ps(dst + c * w_out, m, sum);
            }
        }
}
// On AVX2: 8 lanes a step, the masks as maskload takes them.
__attribute__((target("avx2"))) void tangent_add_avx2(const TangentArgs& a) {
    const int64_t c_n = a.out.c, w_out = a.w_out, len = a.out.l;
    const size_t inputs = a.t_in.size();
    __m256i mask[kVectorAddInputs];
    const float* src[kVectorAddInputs];
    int64_t ld[kVectorAddInputs];
    for (int64_t t = 0; t < a.count; ++t)
        for (int64_t p = 0; p < w_out; p += 8) {
            const __m256i m = lanes_inside8(p, w_out);
            for (size_t k = 0; k < inputs; ++k) {
                const int64_t w_in = a.w_in[k], r = p - (a.start_in[k][t] - a.start_out[t]);
                mask[k] = a.t_in[k] ? _mm256_and_si256(m, lanes_inside8(r, w_in)) : _mm256_setzero_si256();
                src[k] = a.t_in[k] ? a.t_in[k] + t * c_n * w_in + r : nullptr;
                ld[k] = w_in;
            }
            float* dst = a.t_out + t * c_n * w_out + p;
            const float* gate = a.relu_gate ? a.out.data + a.start_out[t] + p : nullptr;
            for (int64_t c = 0; c < c_n; ++c) {
                __m256 sum = _mm256_setzero_ps();
                for (size_t k = 0; k < inputs; ++k)
                    if (src[k]) sum = _mm256_add_ps(sum, _mm256_maskload_ps(src[k] + c * ld[k], mask[k]));
                if (gate)
                    sum = _mm256_and_ps(sum, _mm256_cmp_ps(_mm256_maskload_ps(gate + c * len, m), _mm256_setzero_ps(),
                                                           _CMP_GT_OQ));
                store_inside8(dst + c * w_out, sum, p, w_out);
            }
        }
}
#endif

void tangent_add(const TangentArgs& a) {
#if defined(__x86_64__) && defined(__GNUC__)
    const int isa = a.t_in.size() <= kVectorAddInputs ? isa_level() : 0;
    if (isa == 2) return tangent_add_avx512(a);
    if (isa == 1) return tangent_add_avx2(a);
#endif
    tangent_add_reference(a);
}

// --- Products, differences and quotients of two tensors -----------------------------------
// ONNX Mul, Sub, Div of two tensors of one shape, as exporters write them for gating
// (x * sigmoid(g)), differences of branches and normalisations. Each input's partial
// derivative at a position is d_p (for input 0) and d_q (input 1), from the forward values.

namespace {

Resolved infer_pair(const Node& node, const std::vector<Shape>& in, const char* verb) {
    const Shape& p = in.at(0);
    const Shape& q = in.at(1);
    if (p.c != q.c || p.l != q.l)
        throw ShapeError("node '" + node.onnx_node + "' (" + node.onnx_op + "): " + verb + " tensors of shapes (" +
                         std::to_string(p.c) + ", " + std::to_string(p.l) + ") and (" + std::to_string(q.c) +
                         ", " + std::to_string(q.l) + ")");
    Resolved r;
    r.out = p;
    return r;
}

// y = f(p, q); partials d(k, p, q, y) for input k.
struct MulOp {
    static float f(float p, float q) { return p * q; }
    static float d(int k, float p, float q, float) { return k == 0 ? q : p; }
};
struct SubOp {
    static float f(float p, float q) { return p - q; }
    static float d(int k, float, float, float) { return k == 0 ? 1.f : -1.f; }
};
struct DivOp {
    static float f(float p, float q) { return p / q; }
    static float d(int k, float, float q, float y) { return k == 0 ? 1.f / q : -y / q; }
};

template <class Op>
void pair_forward(const ForwardArgs& a) {
    const int64_t total = a.out.n * a.out.c * a.out.l;
    const float* p = a.in[0].data;
    const float* q = a.in[1].data;
    for (int64_t i = 0; i < total; ++i) a.out.data[i] = Op::f(p[i], q[i]);
}

template <class Op>
void pair_backward(const BackwardArgs& a) {
    const int64_t size = a.grad_out.c * a.grad_out.l;
    for (int k = 0; k < 2; ++k) {
        const View& gx = a.grad_in[static_cast<size_t>(k)];
        if (!gx.data) continue;
        for (int64_t r = 0; r < gx.n; ++r) {
            const float* p = a.in[0].sample(r / a.rep);
            const float* q = a.in[1].sample(r / a.rep);
            const float* y = a.out.sample(r / a.rep);
            const float* g = a.grad_out.sample(r);
            float* dst = gx.sample(r);
            for (int64_t i = 0; i < size; ++i) dst[i] += g[i] * Op::d(k, p[i], q[i], y[i]);
        }
    }
}

// SPEC.md: elementwise ops mark the same position on every input; with active_only, only
// an input whose partial derivative there is not exactly 0.
template <class Op>
void pair_trace(const TraceArgs& a) {
    const int64_t size = a.out.c * a.out.l;
    const float* p = a.in[0].sample(a.sample);
    const float* q = a.in[1].sample(a.sample);
    const float* y = a.out.sample(a.sample);
    for (int k = 0; k < 2; ++k)
        for (int64_t i = 0; i < size; ++i)
            if (a.mask_out[i] && (!a.active_only || Op::d(k, p[i], q[i], y[i]) != 0.f))
                a.mask_in[static_cast<size_t>(k)][i] = 1;
}

// Each input's band lies inside the output's (the hull), at its own offset.
template <class Op>
void pair_tangent(const TangentArgs& a) {
    const int64_t c_n = a.out.c, len = a.out.l, w_out = a.w_out;
    for (int k = 0; k < 2; ++k) {
        if (!a.t_in[static_cast<size_t>(k)]) continue;
        const int64_t w_in = a.w_in[static_cast<size_t>(k)];
        for (int64_t t = 0; t < a.count; ++t) {
            const int64_t s_in = a.start_in[static_cast<size_t>(k)][t];
            const int64_t shift = s_in - a.start_out[t];
            for (int64_t c = 0; c < c_n; ++c) {
                const float* src = a.t_in[static_cast<size_t>(k)] + (t * c_n + c) * w_in;
                float* dst = a.t_out + (t * c_n + c) * w_out;
                const float* p = a.in[0].data + c * len + s_in;
                const float* q = a.in[1].data + c * len + s_in;
                const float* y = a.out.data + c * len + s_in;
                for (int64_t r = 0; r < w_in; ++r) {
                    const int64_t j = r + shift;
                    if (j >= 0 && j < w_out) dst[j] += src[r] * Op::d(k, p[r], q[r], y[r]);
                }
            }
        }
    }
}

}  // namespace

Resolved infer_mul(const Node& node, const std::vector<Shape>& in) { return infer_pair(node, in, "multiplies"); }
Resolved infer_sub(const Node& node, const std::vector<Shape>& in) { return infer_pair(node, in, "subtracts"); }
Resolved infer_div(const Node& node, const std::vector<Shape>& in) { return infer_pair(node, in, "divides"); }

#define TSVIZ_PAIR_RULES(op, Op)                                                        \
    void forward_##op(const ForwardArgs& a) { pair_forward<Op>(a); }                     \
    void backward_##op(const BackwardArgs& a) { pair_backward<Op>(a); }                  \
    void trace_##op(const TraceArgs& a) { pair_trace<Op>(a); }                           \
    Band band_##op(const BandArgs& a) { return band_hull(a); }                           \
    void tangent_##op(const TangentArgs& a) { pair_tangent<Op>(a); }
TSVIZ_PAIR_RULES(mul, MulOp)
TSVIZ_PAIR_RULES(sub, SubOp)
TSVIZ_PAIR_RULES(div, DivOp)
#undef TSVIZ_PAIR_RULES


// --- ONNX lowering and registry entries ------------------------------------------------------

namespace {

using namespace ::tsviz::onnx;

void lower_batch_norm(Lowering& im) {
    Tensor x = im.tensor_input(0);
    if (im.attr_int("training_mode", 0) != 0) im.fail_node("attribute 'training_mode': expected 0, got 1");
    if (im.opset_ < 9) im.expect_attr("spatial", 1, 1);
    im.refuse_extra_outputs(1);
    const float eps = im.attr_float("epsilon", 1e-5f);
    if (x.axes.size() < 2) im.fail_node("expects an input of rank >= 2");
    im.bind(x.axes[1], true);
    if (im.layout_ == Layout::Undecided) im.decide_default();
    const Ax ck = im.kind(x.axes[1]);
    if (!(ck == Ax::C || (ck == Ax::One && im.channels_of(x) == 1)))
        im.fail_node("axis 1 of its input is not the channel axis");
    const int64_t c = im.channels_of(x);
    const char* names[] = {"scale", "bias", "mean", "var"};
    std::vector<const Const*> p;
    for (int i = 0; i < 4; ++i) {
        p.push_back(&im.float_input(i + 1, names[i]));
        if (p.back()->count() != c)
            im.fail_node(std::string("'") + names[i] + "' has shape " + join(p.back()->dims) +
                      "; expected (" + std::to_string(c) + ",)");
    }
    Node n = im.make(OpKind::Affine, x);
    for (int64_t i = 0; i < c; ++i) {
        const double s = p[0]->v[i] / std::sqrt(p[3]->v[i] + static_cast<double>(eps));
        n.scale.push_back(to_f32(s));
        n.shift.push_back(to_f32(p[1]->v[i] - p[2]->v[i] * s));
    }
    x.node = im.add_node(std::move(n));
    im.set_tensor(x);
}

void affine_with_const(Lowering& im, const Tensor& t, const Const& k, const std::string& op, bool const_first) {
    if (!k.all_known()) im.fail_node("a constant operand depends on the batch size");
    if (k.type != kFloat)
        im.fail_node("constant operand ('" + im.cur_->input[const_first ? 0 : 1] + "') has type " + type_name(k.type) +
                  "; " + op + " with a FLOAT tensor takes a FLOAT constant");
    const size_t rank = t.axes.size();
    if (k.dims.size() > rank)
        im.fail_node("constant of shape " + join(k.dims) + " has a higher rank than the tensor (" + std::to_string(rank) + ")");
    bool varies = false;
    size_t varying_axis = 0;
    for (size_t j = 0; j < k.dims.size(); ++j) {
        if (k.dims[j] == 1) continue;
        const size_t i = rank - k.dims.size() + j;
        if (varies) im.fail_node("constant of shape " + join(k.dims) + " varies along more than one axis; only per-channel constants are supported");
        varies = true;
        varying_axis = i;
    }
    if (varies) im.bind(t.axes[varying_axis], true);
    if (im.layout_ == Layout::Undecided) im.decide_default();
    const int64_t channels = im.channels_of(t);
    std::vector<double> per(static_cast<size_t>(channels), 0.0);
    if (varies) {
        const Ax kk = im.kind(t.axes[varying_axis]);
        if (kk != Ax::C)
            im.fail_node("constant of shape " + join(k.dims) + " varies along the " +
                      std::string(kk == Ax::L ? "time" : "batch") + " axis; only per-channel constants are supported");
        if (k.count() != channels)
            im.fail_node("constant has " + std::to_string(k.count()) + " values for " + std::to_string(channels) + " channels");
        per = k.v;
    } else {
        std::fill(per.begin(), per.end(), k.v.empty() ? 0.0 : k.v[0]);
        if (k.v.empty()) im.fail_node("constant operand is empty");
    }
    Node n = im.make(OpKind::Affine, t);
    n.scale.assign(static_cast<size_t>(channels), 1.f);
    n.shift.assign(static_cast<size_t>(channels), 0.f);
    for (int64_t c = 0; c < channels; ++c) {
        const double v = per[c];
        if (op == "Add") n.shift[c] = to_f32(v);
        else if (op == "Mul") n.scale[c] = to_f32(v);
        else if (op == "Sub") {
            if (const_first) { n.scale[c] = -1.f; n.shift[c] = to_f32(v); }
            else n.shift[c] = to_f32(-v);
        } else {
            if (const_first) im.fail_node("divides a constant by a tensor; not supported");
            n.scale[c] = to_f32(1.0 / v);
        }
    }
    Tensor out = t;
    out.node = im.add_node(std::move(n));
    im.set_tensor(out);
}

void lower_binary(Lowering& im) {
    const std::string& op = im.cur_->op_type;
    const Value& a = im.input(0);
    const Value& b = im.input(1);
    if (a.is_const && b.is_const) {
        im.set_const(im.fold_binary(a.k, b.k, op));
        return;
    }
    if (!a.is_const && !b.is_const) {
        const OpKind kind = op == "Add" ? OpKind::Add : op == "Mul" ? OpKind::Mul : op == "Sub" ? OpKind::Sub : OpKind::Div;
        const std::string verb = op == "Add" ? "adds" : op == "Mul" ? "multiplies" : op == "Sub" ? "subtracts" : "divides";
        Tensor p = im.tensor_input(0), q = im.tensor_input(1);
        if (p.axes.size() != q.axes.size()) im.fail_node(verb + " tensors of different ranks");
        for (size_t i = 0; i < p.axes.size(); ++i)
            if (im.kind(p.axes[i]) != im.kind(q.axes[i]) && im.size_of(p, i) != 1 && im.size_of(q, i) != 1)
                im.fail_node(verb + " tensors whose axes do not line up");
        if (p.node == 0 || q.node == 0) im.decide_default();
        Node n = im.make(kind, p);
        n.inputs.push_back(q.node);
        p.node = im.add_node(std::move(n));
        im.set_tensor(p);
        return;
    }
    const bool const_first = a.is_const;
    affine_with_const(im, im.tensor_input(const_first ? 1 : 0), const_first ? a.k : b.k, op, const_first);
}

// Neg(x) is x * -1 + 0 (tf2onnx writes Keras' PReLU as Relu(x) - alpha * Relu(Neg(x))).
void lower_neg(Lowering& im) {
    Tensor x = im.tensor_input(0);
    if (im.layout_ == Layout::Undecided) im.decide_default();
    Node n = im.make(OpKind::Affine, x);
    n.scale.assign(static_cast<size_t>(n.channels), -1.f);
    n.shift.assign(static_cast<size_t>(n.channels), 0.f);
    x.node = im.add_node(std::move(n));
    im.set_tensor(x);
}

// Pow(x, 2) and Pow(x, 3) (tf2onnx writes x^3 of the tanh Gelu so) are products of x with
// itself: Mul(x, x), then Mul(Mul(x, x), x); other exponents are refused.
void lower_pow(Lowering& im) {
    Tensor x = im.tensor_input(0);
    const Const& e = im.const_input(1, "the exponent");
    if (e.count() != 1 || !e.all_known() || !(e.v[0] == 2.0 || e.v[0] == 3.0))
        im.fail_node("raises to the power " + (e.count() == 1 && e.all_known() ? std::to_string(e.v[0]) : "of shape " + join(e.dims)) +
                     "; only the constant exponents 2 and 3 (x * x, x * x * x) are supported");
    if (im.layout_ == Layout::Undecided) im.decide_default();
    Tensor y = x;
    for (int k = 1; k < static_cast<int>(e.v[0]); ++k) {
        Node n = im.make(OpKind::Mul, y);
        n.inputs.push_back(x.node);
        y.node = im.add_node(std::move(n));
    }
    im.set_tensor(y);
}

}  // namespace

// Affine comes from BatchNormalization and Neg here and from a Mul/Add/Sub/Div with a constant
// in the Add entry's lowering. Pruning handles BatchNormalization itself (its parameters are pruned).
OpRules affine_rules() {
    OpRules r = TSVIZ_RULES(Affine, affine, infer_same);
    r.onnx = {{"BatchNormalization", lower_batch_norm}, {"Neg", lower_neg, true}};
    return r;
}

// Add, Sub, Mul, Div: folded when both operands are constants, an Affine when one is, the op
// of two tensors of one shape otherwise. Pow with exponent 2 or 3 becomes Muls.
OpRules add_rules() {
    OpRules r = TSVIZ_RULES(Add, add, infer_add);
    r.backward_writes_all = true;
    r.tangent_writes_all = true;  // tangent_add writes every position of every row
    r.tangent_relu_gate = true;
    r.forward_relu = true;
    r.onnx = {{"Add", lower_binary}};
    return r;
}
OpRules mul_rules() {
    OpRules r = TSVIZ_RULES(Mul, mul, infer_mul);
    r.onnx = {{"Mul", lower_binary}, {"Pow", lower_pow}};
    return r;
}
OpRules sub_rules() {
    OpRules r = TSVIZ_RULES(Sub, sub, infer_sub);
    r.onnx = {{"Sub", lower_binary}};
    return r;
}
OpRules div_rules() {
    OpRules r = TSVIZ_RULES(Div, div, infer_div);
    r.onnx = {{"Div", lower_binary}};
    return r;
}

}  // namespace tsviz::ops
