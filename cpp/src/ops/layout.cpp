// Layout ops: Concat along channels, and Flatten of (C, L) into (C * L, 1), channel-major as
// ONNX Flatten/Reshape writes it, or position-major after a channels-last Transpose (Keras).
#include <algorithm>
#include <string>

#include "onnx/lowering.hpp"
#include "ops/gemm.hpp"
#include "ops/op.hpp"
#include "ops/simd.hpp"
#include "tsviz/error.hpp"

namespace tsviz::ops {

namespace {

// Index of input element (c, l) in the flattened output.
inline int64_t flat_index(const Node& node, int64_t c, int64_t l, int64_t channels, int64_t length) {
    return node.position_major ? l * channels + c : c * length + l;
}

// to[j * ld + i] = from[i * cols + j] (added to what is there unless `set`): the transpose
// of a position-major Flatten (ld = rows) and of its gradient, by plain loops.
void transpose_rows(const float* from, int64_t rows, int64_t cols, float* to, int64_t ld, bool set) {
    for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) {
            float& d = to[j * ld + i];
            d = set ? from[i * cols + j] : d + from[i * cols + j];
        }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// The same (ld = rows) in 8 x 8 blocks transposed in registers: rows in whole eights, columns
// in eights and a last part (read through a lane mask, its rows of `to` stored whole); the
// rows left over by the plain loop. A Keras net's flatten (32 channels by 12 positions) and
// its gradient had been 4% of explaining 64 windows, element by element.
__attribute__((target("avx2"))) void transpose_rows_avx2(const float* from, int64_t rows, int64_t cols, float* to,
                                                         bool set) {
    const int64_t whole_rows = rows / 8 * 8;
    for (int64_t i0 = 0; i0 < whole_rows; i0 += 8)
        for (int64_t j0 = 0; j0 < cols; j0 += 8) {
            const int64_t w = std::min<int64_t>(8, cols - j0);
            const __m256i lanes = lanes_inside8(0, w);
            __m256 x[8];
            for (int r = 0; r < 8; ++r) x[r] = _mm256_maskload_ps(from + (i0 + r) * cols + j0, lanes);
            transpose8(x);
            for (int64_t r = 0; r < w; ++r) {
                float* d = to + (j0 + r) * rows + i0;
                _mm256_storeu_ps(d, set ? x[r] : _mm256_add_ps(_mm256_loadu_ps(d), x[r]));
            }
        }
    transpose_rows(from + whole_rows * cols, rows - whole_rows, cols, to + whole_rows, rows, set);
}
#endif

void transpose(const float* from, int64_t rows, int64_t cols, float* to, bool set) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (isa_level() >= 1) return transpose_rows_avx2(from, rows, cols, to, set);
#endif
    transpose_rows(from, rows, cols, to, rows, set);
}

}  // namespace

Resolved infer_concat(const Node& node, const std::vector<Shape>& in) {
    Resolved r;
    r.out = {0, in.at(0).l};
    for (const Shape& s : in) {
        if (s.l != r.out.l)
            throw ShapeError("node '" + node.onnx_node + "' (" + node.onnx_op +
                             "): concatenates tensors of lengths " +
                             std::to_string(in.at(0).l) + " and " + std::to_string(s.l));
        r.out.c += s.c;
    }
    return r;
}

void forward_concat(const ForwardArgs& a) {
    for (int64_t n = 0; n < a.out.n; ++n) {
        float* dst = a.out.sample(n);
        for (const ConstView& x : a.in) {
            std::copy_n(x.sample(n), x.c * x.l, dst);
            dst += x.c * x.l;
        }
    }
}

Resolved infer_flatten(const Node& node, const std::vector<Shape>& in) {
    Resolved r;
    r.out = {in.at(0).size(), 1};
    // Channel-major order is the tensor's own: the output is the input as it lies, and the
    // arena lays both out on the same memory (a tenth of the paper net's tensors, and a copy).
    if (!node.position_major && !node.inputs.empty()) r.view_of = node.inputs[0];
    return r;
}

void forward_flatten(const ForwardArgs& a) {
    const ConstView& x = a.in[0];
    if (!a.node.position_major) {
        // The batch as it lies, unless the arena gave both the same memory (Resolved::view_of).
        if (a.out.data != x.data) std::copy_n(x.data, x.n * x.c * x.l, a.out.data);
        return;
    }
    // Position-major: (C, L) to (L, C).
    for (int64_t n = 0; n < x.n; ++n) transpose(x.sample(n), x.c, x.l, a.out.sample(n), true);
}


void backward_concat(const BackwardArgs& a) {
    for (int64_t r = 0; r < a.grad_out.n; ++r) {
        const float* src = a.grad_out.sample(r);
        for (const View& gx : a.grad_in) {
            const int64_t size = gx.c * gx.l;
            if (gx.data) {
                float* dst = gx.sample(r);
                for (int64_t i = 0; i < size; ++i) dst[i] += src[i];
            }
            src += size;
        }
    }
}

void trace_concat(const TraceArgs& a) {
    const uint8_t* src = a.mask_out;
    for (size_t k = 0; k < a.mask_in.size(); ++k) {
        const int64_t size = a.in[k].c * a.in[k].l;
        for (int64_t i = 0; i < size; ++i)
            if (src[i]) a.mask_in[k][i] = 1;
        src += size;
    }
}


void backward_flatten(const BackwardArgs& a) {
    const View& gx = a.grad_in[0];
    if (!gx.data) return;
    if (!a.node.position_major) {
        // Channel-major order is the tensor's own, as in the forward: the rows as they lie.
        const int64_t total = gx.n * gx.c * gx.l;
        const float* g = a.grad_out.data;
        if (a.overwrite) {
            std::copy_n(g, total, gx.data);
        } else {
            for (int64_t i = 0; i < total; ++i) gx.data[i] += g[i];
        }
        return;
    }
    // Position-major: the gradient (L, C) back to (C, L).
    for (int64_t r = 0; r < gx.n; ++r) transpose(a.grad_out.sample(r), gx.l, gx.c, gx.sample(r), a.overwrite);
}

void trace_flatten(const TraceArgs& a) {
    const int64_t channels = a.in[0].c, length = a.in[0].l;
    for (int64_t c = 0; c < channels; ++c)
        for (int64_t l = 0; l < length; ++l)
            if (a.mask_out[flat_index(a.node, c, l, channels, length)]) a.mask_in[0][c * length + l] = 1;
}


Band band_concat(const BandArgs& a) { return band_hull(a); }
Band band_flatten(const BandArgs& a) { return band_full(a); }

void tangent_concat(const TangentArgs& a) {
    const int64_t c_out = a.out.c, w_out = a.w_out;
    int64_t c0 = 0;
    for (size_t k = 0; k < a.in.size(); ++k) {
        const int64_t c_n = a.in[k].c, w_in = a.w_in[k];
        if (a.t_in[k])
            for (int64_t t = 0; t < a.count; ++t) {
                const int64_t shift = a.start_in[k][t] - a.start_out[t];
                for (int64_t c = 0; c < c_n; ++c) {
                    const float* src = a.t_in[k] + (t * c_n + c) * w_in;
                    float* dst = a.t_out + (t * c_out + c0 + c) * w_out;
                    for (int64_t r = 0; r < w_in; ++r) {
                        const int64_t j = r + shift;
                        if (j >= 0 && j < w_out) dst[j] = src[r];
                    }
                }
            }
        c0 += c_n;
    }
}

void tangent_flatten(const TangentArgs& a) {
    const int64_t channels = a.in[0].c, length = a.in[0].l, w_in = a.w_in[0], size = a.out.c;
    for (int64_t t = 0; t < a.count; ++t) {
        const int64_t s = a.start_in[0][t];
        for (int64_t c = 0; c < channels; ++c)
            for (int64_t r = 0; r < w_in && s + r < length; ++r)
                a.t_out[t * size + flat_index(a.node, c, s + r, channels, length)] = a.t_in[0][(t * channels + c) * w_in + r];
    }
}

// --- Slice: a window of the time axis ------------------------------------------------------
// ONNX Slice of a tensor along its time axis (step 1), as TCNs chomp the end of a causally
// padded convolution, and Gather of one time step (a head on the last step). The window is
// [start, end) with ONNX's negative indices and clamping, resolved per input length.

namespace {

// The first position and the length of the window for an input of length `len`.
void slice_window(const Node& node, int64_t len, int64_t& first, int64_t& count) {
    int64_t s = node.start < 0 ? node.start + len : node.start;
    int64_t e = node.end < 0 ? node.end + len : node.end;
    s = std::clamp<int64_t>(s, 0, len);
    e = std::clamp<int64_t>(e, 0, len);
    first = s;
    count = e > s ? e - s : 0;
}

}  // namespace

Resolved infer_slice(const Node& node, const std::vector<Shape>& in) {
    int64_t first = 0, count = 0;
    slice_window(node, in.at(0).l, first, count);
    if (count == 0)
        throw ShapeError("node '" + node.onnx_node + "' (" + node.onnx_op + "): keeps positions [" +
                         std::to_string(node.start) + ", " + std::to_string(node.end) + ") of a time axis of length " +
                         std::to_string(in.at(0).l) + ", which is nothing");
    Resolved r;
    r.out = {in.at(0).c, count};
    r.pad_begin = first;
    return r;
}

void forward_slice(const ForwardArgs& a) {
    const ConstView& x = a.in[0];
    const int64_t first = a.geo.pad_begin, w = a.out.l;
    for (int64_t n = 0; n < x.n; ++n)
        for (int64_t c = 0; c < x.c; ++c)
            std::copy_n(x.sample(n) + c * x.l + first, w, a.out.sample(n) + c * w);
}

void backward_slice(const BackwardArgs& a) {
    const View& gx = a.grad_in[0];
    if (!gx.data) return;
    const int64_t first = a.geo.pad_begin, w = a.grad_out.l;
    for (int64_t r = 0; r < gx.n; ++r)
        for (int64_t c = 0; c < gx.c; ++c) {
            const float* g = a.grad_out.sample(r) + c * w;
            float* dst = gx.sample(r) + c * gx.l + first;
            for (int64_t i = 0; i < w; ++i) dst[i] += g[i];
        }
}

void trace_slice(const TraceArgs& a) {
    const int64_t first = a.geo.pad_begin, w = a.out.l, len = a.in[0].l;
    for (int64_t c = 0; c < a.out.c; ++c)
        for (int64_t i = 0; i < w; ++i)
            if (a.mask_out[c * w + i]) a.mask_in[0][c * len + first + i] = 1;
}

Band band_slice(const BandArgs& a) {
    const Band& in = a.in_band.at(0);
    Band b;
    if (in.empty()) return b;
    b.lo = std::max<int64_t>(in.lo - a.geo.pad_begin, 0);
    b.hi = std::min<int64_t>(in.hi - a.geo.pad_begin, a.geo.out.l - 1);
    return b;
}

void tangent_slice(const TangentArgs& a) {
    const int64_t c_n = a.out.c, w_in = a.w_in[0], w_out = a.w_out, first = a.geo.pad_begin;
    for (int64_t t = 0; t < a.count; ++t) {
        const int64_t shift = a.start_out[t] + first - a.start_in[0][t];  // input index of output j = 0
        for (int64_t c = 0; c < c_n; ++c) {
            const float* src = a.t_in[0] + (t * c_n + c) * w_in;
            float* dst = a.t_out + (t * c_n + c) * w_out;
            for (int64_t j = 0; j < w_out; ++j) {
                const int64_t r = j + shift;
                dst[j] = r >= 0 && r < w_in ? src[r] : 0.f;
            }
        }
    }
}


// --- ONNX lowering and registry entries ------------------------------------------------------

namespace {

using namespace ::tsviz::onnx;

void lower_concat(Lowering& im) {
    const int64_t axis_attr = im.attr_int("axis", 0);
    bool all_const = true, any_const = false;
    for (size_t i = 0; i < im.cur_->input.size(); ++i) {
        const bool c = im.input(i).is_const;
        all_const &= c;
        any_const |= c;
    }
    if (all_const) {
        Const out = im.input(0).k;
        const int64_t r = static_cast<int64_t>(out.dims.size());
        const int64_t axis = im.norm_axis(axis_attr, r);
        // Outer blocks along `axis`: copy each input's slab in turn.
        int64_t outer = 1;
        for (int64_t i = 0; i < axis; ++i) outer *= out.dims[i];
        Const res;
        res.type = out.type;
        res.dims = out.dims;
        res.dims[axis] = 0;
        bool symbolic = false;
        for (size_t j = 0; j < im.cur_->input.size(); ++j) {
            const Const& k = im.input(j).k;
            if (static_cast<int64_t>(k.dims.size()) != r) im.fail_node("concatenates constants of different ranks");
            for (int64_t d = 0; d < r; ++d)
                if (d != axis && k.dims[d] != out.dims[d])
                    im.fail_node("concatenates constants of shapes " + join(out.dims) + " and " + join(k.dims) +
                              ", which differ off the axis " + std::to_string(axis));
            res.dims[axis] += k.dims[axis];
            symbolic |= !k.sym.empty();
        }
        for (int64_t o = 0; o < outer; ++o)
            for (size_t j = 0; j < im.cur_->input.size(); ++j) {
                const Const& k = im.input(j).k;
                const int64_t slab = outer ? k.count() / outer : 0;
                for (int64_t i = 0; i < slab; ++i) {
                    res.v.push_back(k.v[o * slab + i]);
                    if (symbolic) res.sym.push_back(k.sym.empty() ? static_cast<uint8_t>(kKnown) : k.sym[o * slab + i]);
                }
            }
        im.set_const(res);
        return;
    }
    if (any_const) im.fail_node("concatenates constants with tensors computed from the input; not supported");
    Tensor first = im.tensor_input(0);
    const int64_t axis = im.norm_axis(axis_attr, static_cast<int64_t>(first.axes.size()));
    im.bind(first.axes[axis], true);
    if (im.layout_ == Layout::Undecided) im.decide_default();
    Node n = im.make(OpKind::Concat, first);
    n.channels = 0;
    for (size_t i = 0; i < im.cur_->input.size(); ++i) {
        Tensor t = im.tensor_input(i);
        if (t.axes.size() != first.axes.size()) im.fail_node("concatenates tensors of different ranks");
        const Ax k = im.kind(t.axes[axis]);
        if (!(k == Ax::C || (k == Ax::One && im.channels_of(t) == 1)))
            im.fail_node("concatenates along an axis that is not the channel axis; only channel concatenation is supported");
        if (i) n.inputs.push_back(t.node);
        n.channels += im.channels_of(t);
    }
    first.node = im.add_node(std::move(n));
    for (auto& a : first.axes) a = im.kind(a);
    first.axes[axis] = Ax::C;
    im.set_tensor(first);
}

void lower_reshape(Lowering& im) {
    const Value& d = im.input(0);
    const Const& shape = im.const_input(1, "the target shape");
    if (d.is_const) {
        Const k = d.k;
        std::vector<int64_t> target = im.const_ints(shape, "the target shape");
        int infer = -1;
        int64_t prod = 1;
        for (size_t i = 0; i < target.size(); ++i) {
            if (target[i] == 0 && !im.attr_int("allowzero", 0)) target[i] = i < k.dims.size() ? k.dims[i] : 1;
            if (target[i] < -1) im.fail_node("target shape " + join(target) + " has a negative entry");
            if (target[i] == -1) {
                if (infer >= 0) im.fail_node("target shape " + join(target) + " has more than one -1");
                infer = static_cast<int>(i);
            } else {
                prod = im.checked_mul(prod, target[i], "target shape " + join(target));
            }
        }
        if (infer >= 0) target[infer] = prod ? k.count() / prod : 0;
        int64_t total = 1;
        for (int64_t d : target) total = im.checked_mul(total, d, "target shape " + join(target));
        if (total != k.count())
            im.fail_node("reshapes a constant of shape " + join(k.dims) + " (" + std::to_string(k.count()) +
                      " values) to " + join(target) + "; the dims do not multiply out");
        k.dims = target;
        im.set_const(k);
        return;
    }
    std::vector<int64_t> raw;
    for (double v : shape.v) raw.push_back(im.to_int(v, "the target shape"));
    im.reshape_to(im.tensor_input(0, true), raw, shape.sym);
}

void lower_flatten(Lowering& im) {
    const Value& d = im.input(0);
    const int64_t axis_attr = im.attr_int("axis", 1);
    if (d.is_const) {
        Const k = d.k;
        const int64_t r = static_cast<int64_t>(k.dims.size());
        const int64_t axis = axis_attr < 0 ? axis_attr + r : axis_attr;
        int64_t outer = 1;
        for (int64_t i = 0; i < axis && i < r; ++i) outer *= k.dims[i];
        k.dims = {outer, outer ? k.count() / outer : 0};
        im.set_const(k);
        return;
    }
    Tensor t = im.tensor_input(0);
    const int64_t axis = im.norm_axis(axis_attr, static_cast<int64_t>(t.axes.size()) + 1);
    if (axis != 1) im.fail_node("attribute 'axis': expected 1 (flatten each sample), got " + std::to_string(axis_attr));
    im.reshape_to(t, {0, -1}, {});
}


// The sliced time axis of a tensor becomes a Slice; size-1 axes, and channel or batch axes
// kept whole, only change the view.
void lower_slice(Lowering& im) {
    if (im.input(0).is_const) return im.slice();
    Tensor x = im.tensor_input(0);
    std::vector<int64_t> starts, ends, axes, steps;
    im.slice_args(starts, ends, axes, steps);
    const int64_t rank = static_cast<int64_t>(x.axes.size());
    constexpr int64_t kEnd = int64_t{1} << 62;  // "to the end", as to_int saturates INT64_MAX
    int time = -1;
    int64_t start = 0, end = 0;
    for (size_t j = 0; j < axes.size(); ++j) {
        const int64_t a = im.norm_axis(axes[j], rank);
        if (steps[j] != 1) im.fail_node("slices with step " + std::to_string(steps[j]) + "; only step 1 is supported");
        const bool whole = starts[j] == 0 && ends[j] >= kEnd;
        const Ax k = im.kind(x.axes[a]);
        if (whole || k == Ax::One) continue;
        if (k == Ax::N) im.fail_node("slices the batch axis; not supported");
        im.bind(x.axes[a], false);
        if (im.kind(x.axes[a]) != Ax::L)
            im.fail_node("slices the channel axis; only slices of the time axis are supported");
        if (time >= 0) im.fail_node("slices the time axis twice");
        time = static_cast<int>(a);
        start = starts[j];
        end = ends[j];
    }
    if (time < 0) return im.set_tensor(x);
    Node n = im.make(OpKind::Slice, x);
    n.start = start;
    n.end = end;
    x.node = im.add_node(std::move(n));
    for (auto& a : x.axes) a = im.kind(a);
    im.set_tensor(x);
}

// One time step of a tensor: a Slice of length 1, the axis dropped for a scalar index.
void lower_gather(Lowering& im) {
    if (im.input(0).is_const) return im.gather();
    Tensor x = im.tensor_input(0);
    const Const& idx = im.const_input(1, "indices");
    const int64_t rank = static_cast<int64_t>(x.axes.size());
    const int64_t axis = im.norm_axis(im.attr_int("axis", 0), rank);
    if (idx.count() != 1 || idx.dims.size() > 1)
        im.fail_node("gathers indices of shape " + join(idx.dims) +
                     " from a tensor computed from the input; only one time step is supported");
    im.bind(x.axes[axis], false);
    if (im.kind(x.axes[axis]) != Ax::L)
        im.fail_node("gathers along an axis that is not the time axis; only one time step is supported");
    const int64_t i = im.to_int(idx.v[0], "an index");
    Node n = im.make(OpKind::Slice, x);
    n.start = i;
    n.end = i == -1 ? int64_t{1} << 62 : i + 1;
    x.node = im.add_node(std::move(n));
    for (auto& a : x.axes) a = im.kind(a);
    if (idx.dims.empty()) x.axes.erase(x.axes.begin() + axis);
    im.set_tensor(x);
}

}  // namespace

OpRules concat_rules() {
    OpRules r = TSVIZ_RULES(Concat, concat, infer_concat);
    r.onnx = {{"Concat", lower_concat}};
    return r;
}

// Reshape and Flatten emit a Flatten only when they really flatten; otherwise they change the
// view (onnx/views.cpp).
OpRules flatten_rules() {
    OpRules r = TSVIZ_RULES(Flatten, flatten, infer_flatten);
    r.backward_writes_all = true;
    r.onnx = {{"Flatten", lower_flatten}, {"Reshape", lower_reshape}};
    return r;
}

// Slice and Gather of constants fold at import (onnx/constant_folding.cpp); of a tensor,
// they cut its time axis. Gather may drop the time axis, which moves a channels-last
// tensor's channel axis, so pruning does not pass through it.
OpRules slice_rules() {
    OpRules r = TSVIZ_RULES(Slice, slice, infer_slice);
    r.onnx = {{"Slice", lower_slice, true}, {"Gather", lower_gather}};
    return r;
}

}  // namespace tsviz::ops
