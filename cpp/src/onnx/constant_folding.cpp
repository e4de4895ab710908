// Constant folding: values computed from initializers and Constant nodes alone, including the
// shape arithmetic exporters put around Reshape (Shape, Gather, Cast, Slice, Constant,
// ConstantOfShape, and Add/Sub/Mul/Div of two constants). Shape entries that depend on the
// batch size stay symbolic.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "onnx/lowering.hpp"

namespace tsviz::onnx {

std::vector<int64_t> Lowering::broadcast_dims(const std::vector<int64_t>& a, const std::vector<int64_t>& b) const {
    const size_t r = std::max(a.size(), b.size());
    std::vector<int64_t> out(r, 1);
    for (size_t i = 0; i < r; ++i) {
        const int64_t x = i + a.size() >= r ? a[i + a.size() - r] : 1;
        const int64_t y = i + b.size() >= r ? b[i + b.size() - r] : 1;
        if (x != y && x != 1 && y != 1)
            fail_node("cannot broadcast shapes " + join(a) + " and " + join(b));
        out[i] = x == 1 ? y : x;
    }
    return out;
}

Const Lowering::fold_binary(const Const& a, const Const& b, const std::string& op) {
    Const out;
    out.dims = broadcast_dims(a.dims, b.dims);
    out.type = a.type;
    int64_t count = 1;
    for (int64_t d : out.dims) count = checked_mul(count, d, "the broadcast result " + join(out.dims));
    reserve_const(count);
    const size_t r = out.dims.size();
    auto strides = [&](const Const& k) {
        std::vector<int64_t> s(r, 0);
        int64_t acc = 1;
        for (size_t i = 0; i < k.dims.size(); ++i) {
            const size_t j = k.dims.size() - 1 - i, o = r - 1 - i;
            s[o] = k.dims[j] == 1 ? 0 : acc;
            acc *= k.dims[j];
        }
        return s;
    };
    const auto sa = strides(a), sb = strides(b);
    const bool symbolic = !a.sym.empty() || !b.sym.empty();
    if (symbolic) out.sym.assign(static_cast<size_t>(count), kKnown);
    std::vector<int64_t> idx(r, 0);
    for (int64_t i = 0; i < count; ++i) {
        int64_t ia = 0, ib = 0;
        for (size_t d = 0; d < r; ++d) {
            ia += idx[d] * sa[d];
            ib += idx[d] * sb[d];
        }
        const double x = a.v[ia], y = b.v[ib];
        double z = 0;
        if (op == "Add") z = x + y;
        else if (op == "Sub") z = x - y;
        else if (op == "Mul") z = x * y;
        else {
            if (is_int_type(a.type)) z = y == 0 ? 0 : std::trunc(x / y);
            else z = x / y;
        }
        out.v.push_back(z);
        if (symbolic && (!a.known(ia) || !b.known(ib))) out.sym[i] = kUnknown;
        for (size_t d = r; d-- > 0;) {
            if (++idx[d] < out.dims[d]) break;
            idx[d] = 0;
        }
    }
    return out;
}

void Lowering::shape_of() {
    const Value& d = input(0);
    Const k;
    k.type = kInt64;
    if (d.is_const) {
        for (int64_t x : d.k.dims) k.v.push_back(static_cast<double>(x));
    } else {
        for (size_t i = 0; i < d.t.axes.size(); ++i) {
            const int64_t s = size_of(d.t, i);
            k.v.push_back(static_cast<double>(s));
            k.sym.push_back(kind(d.t.axes[i]) == Ax::N ? kBatch : (s < 0 ? kUnknown : kKnown));
        }
    }
    const int64_t r = k.count();
    int64_t start = attr_int("start", 0), end = attr_int("end", r);
    if (start < 0) start += r;
    if (end < 0) end += r;
    start = std::clamp<int64_t>(start, 0, r);
    end = std::clamp<int64_t>(end, start, r);
    k.v = std::vector<double>(k.v.begin() + start, k.v.begin() + end);
    if (!k.sym.empty()) k.sym = std::vector<uint8_t>(k.sym.begin() + start, k.sym.begin() + end);
    k.dims = {end - start};
    set_const(k);
}

void Lowering::gather() {
    const Value& d = input(0);
    if (!d.is_const) fail_node("gathers from a tensor computed from the input; only constant shape arithmetic is supported");
    const Const& data = d.k;
    const Const& idx = const_input(1, "indices");
    const int64_t r = static_cast<int64_t>(data.dims.size());
    const int64_t axis = norm_axis(attr_int("axis", 0), r);
    if (axis != 0 || r != 1) fail_node("gathers from a constant of shape " + join(data.dims) + "; only 1-D constants are supported");
    Const out;
    out.type = data.type;
    out.dims = idx.dims;
    for (int64_t i = 0; i < idx.count(); ++i) {
        int64_t j = to_int(idx.v[i], "an index");
        if (j < 0) j += data.count();
        if (j < 0 || j >= data.count()) fail_node("index " + std::to_string(j) + " is out of range");
        out.v.push_back(data.v[j]);
        if (!data.sym.empty()) {
            out.sym.resize(static_cast<size_t>(i), kKnown);
            out.sym.push_back(data.sym[j]);
        }
    }
    set_const(out);
}

void Lowering::cast() {
    const Value& d = input(0);
    const int64_t to = attr_int("to", 0);
    if (!d.is_const) {
        if (to != kFloat && to != kDouble)
            fail_node("casts a tensor to " + std::string(type_name(static_cast<int32_t>(to))) + "; not supported");
        set_tensor(tensor_input(0, true));
        return;
    }
    Const k = d.k;
    k.type = static_cast<int32_t>(to);
    if (is_int_type(k.type))
        for (double& v : k.v) v = std::trunc(v);
    if (to == kFloat)
        for (double& v : k.v) v = to_f32(v);
    set_const(k);
}

void Lowering::slice_args(std::vector<int64_t>& starts, std::vector<int64_t>& ends, std::vector<int64_t>& axes,
                          std::vector<int64_t>& steps) const {
    if (opset_ < 10) {
        attr_ints("starts", starts);
        attr_ints("ends", ends);
        attr_ints("axes", axes);
    } else {
        starts = const_ints(const_input(1, "starts"), "starts");
        ends = const_ints(const_input(2, "ends"), "ends");
        if (has_input(3)) axes = const_ints(const_input(3, "axes"), "axes");
        if (has_input(4)) steps = const_ints(const_input(4, "steps"), "steps");
    }
    if (starts.size() != ends.size()) fail_node("'starts' and 'ends' differ in length");
    if (axes.empty())
        for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    if (steps.empty()) steps.assign(starts.size(), 1);
    if (axes.size() != starts.size() || steps.size() != starts.size())
        fail_node("'axes' or 'steps' do not match 'starts'");
}

void Lowering::slice() {
    const Value& d = input(0);
    if (!d.is_const) fail_node("slices a tensor computed from the input; only constant shape arithmetic is supported");
    const Const& data = d.k;
    const int64_t rank = static_cast<int64_t>(data.dims.size());
    std::vector<int64_t> starts, ends, axes, steps;
    slice_args(starts, ends, axes, steps);
    // Per axis: first index, step and count, with ONNX's clamping rules.
    std::vector<int64_t> first(static_cast<size_t>(rank), 0), step(static_cast<size_t>(rank), 1), count(data.dims);
    for (size_t j = 0; j < axes.size(); ++j) {
        const int64_t a = norm_axis(axes[j], rank), n = data.dims[a], st = steps[j];
        if (st == 0) fail_node("'steps' contains 0");
        int64_t s = starts[j] < 0 ? starts[j] + n : starts[j];
        int64_t e = ends[j] < 0 ? ends[j] + n : ends[j];
        if (st > 0) {
            s = std::clamp<int64_t>(s, 0, n);
            e = std::clamp<int64_t>(e, 0, n);
            count[a] = e > s ? (e - s - 1) / st + 1 : 0;
        } else {
            s = std::clamp<int64_t>(s, -1, n - 1);
            e = std::clamp<int64_t>(e, -1, n - 1);
            count[a] = s > e ? (s - e - 1) / -st + 1 : 0;
        }
        first[a] = s;
        step[a] = st;
    }
    std::vector<int64_t> stride(static_cast<size_t>(rank), 1);
    for (int64_t i = rank - 1; i > 0; --i) stride[i - 1] = stride[i] * data.dims[i];
    Const out;
    out.type = data.type;
    out.dims = count;
    int64_t total = 1;
    for (int64_t c : count) total *= c;
    std::vector<int64_t> idx(static_cast<size_t>(rank), 0);
    for (int64_t i = 0; i < total; ++i) {
        int64_t src = 0;
        for (int64_t a = 0; a < rank; ++a) src += (first[a] + idx[a] * step[a]) * stride[a];
        out.v.push_back(data.v[src]);
        if (!data.sym.empty()) out.sym.push_back(data.sym[src]);
        for (int64_t a = rank; a-- > 0;) {
            if (++idx[a] < count[a]) break;
            idx[a] = 0;
        }
    }
    set_const(out);
}

void Lowering::constant() {
    if (cur_->attribute.size() != 1) fail_node("expects exactly one attribute");
    const AttributeProto& a = cur_->attribute[0];
    Const k;
    if (a.name == "value") {
        if (a.t.empty()) fail_node("attribute 'value' holds no tensor");
        k = to_const(a.t[0]);
    } else if (a.name == "value_float") {
        k.v = {a.f};
    } else if (a.name == "value_floats") {
        k.v.assign(a.floats.begin(), a.floats.end());
        k.dims = {k.count()};
    } else if (a.name == "value_int") {
        k.type = kInt64;
        k.v = {static_cast<double>(a.i)};
    } else if (a.name == "value_ints") {
        k.type = kInt64;
        for (int64_t v : a.ints) k.v.push_back(static_cast<double>(v));
        k.dims = {k.count()};
    } else {
        fail_node("attribute '" + a.name + "' is not supported");
    }
    set_const(k);
}

void Lowering::constant_of_shape() {
    const std::vector<int64_t> dims = const_ints(const_input(0, "the shape"), "the shape");
    Const k;
    k.dims = dims;
    int64_t count = 1;
    for (int64_t d : dims) {
        if (d < 0 || (d && count > (1 << 24) / d)) fail_node("shape " + join(dims) + " is too large");
        count *= d;
    }
    double fill = 0;
    if (const AttributeProto* a = attr("value")) {
        if (a->t.empty()) fail_node("attribute 'value' holds no tensor");
        Const v = to_const(a->t[0]);
        if (v.count() != 1) fail_node("attribute 'value' must hold one value");
        fill = v.v[0];
        k.type = v.type;
    }
    reserve_const(count);
    k.v.assign(static_cast<size_t>(count), fill);
    set_const(k);
}

}  // namespace tsviz::onnx
