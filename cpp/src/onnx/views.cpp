// Ops that change how a tensor is viewed and emit no IR node: Reshape and Flatten that move
// size-1 axes (a real flatten emits an IR Flatten), Squeeze, Unsqueeze, Transpose, and a zero
// Pad, which is held on the tensor until the Conv after it absorbs it.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "onnx/lowering.hpp"

namespace tsviz::onnx {

void Lowering::reshape_to(const Tensor& t, std::vector<int64_t> target, const std::vector<uint8_t>& sym) {
    const size_t rank = t.axes.size();
    if (kind(t.axes[0]) != Ax::N) fail_node("its input's axis 0 is not the batch axis");
    // Per-sample sizes of the input's non-batch axes.
    int64_t total = 1;
    bool total_known = true;
    for (size_t i = 1; i < rank; ++i) {
        const int64_t s = size_of(t, i);
        if (s < 0) total_known = false; else total *= s;
    }
    const bool allow_zero = attr_int("allowzero", 0) != 0;
    if (target.empty()) fail_node("reshapes to a scalar");
    for (size_t i = 0; i < target.size(); ++i) {
        if (!sym.empty() && sym[i] == kBatch) { target[i] = -2; continue; }  // -2: the batch
        if (!sym.empty() && sym[i] != kKnown) fail_node("target shape has an entry that depends on the input length");
        if (target[i] == 0 && !allow_zero) {
            if (i >= rank) fail_node("target shape copies axis " + std::to_string(i) + " that the input lacks");
            target[i] = i == 0 ? -2 : size_of(t, i);
            if (target[i] < 0 && i != 0) fail_node("target shape copies an axis of unknown size");
        }
    }
    if (target[0] != -2 && target[0] != -1)
        fail_node("target shape " + join(target) + " fixes the batch size; TSViz needs a free batch axis");
    std::vector<int64_t> sample(target.begin() + 1, target.end());
    int infer = -1;
    int64_t prod = 1;
    for (size_t i = 0; i < sample.size(); ++i) {
        if (sample[i] == -2) fail_node("target shape moves the batch axis");
        if (sample[i] == -1) {
            if (infer >= 0 || target[0] == -1) fail_node("target shape has more than one -1");
            infer = static_cast<int>(i);
        } else if (sample[i] < 0) {
            fail_node("target shape " + join(target) + " has a negative entry");
        } else {
            prod = checked_mul(prod, sample[i], "target shape " + join(target));
        }
    }
    if (target[0] == -1 && total_known && prod != total)
        fail_node("target shape " + join(target) + " does not keep the per-sample size " + std::to_string(total));
    if (infer >= 0 && total_known) {
        if (prod == 0 || total % prod) fail_node("cannot infer -1 in target shape " + join(target));
        sample[infer] = total / prod;
    }
    // The input's axes that are not of size 1, and the target's.
    std::vector<size_t> in_axes;
    for (size_t i = 1; i < rank; ++i)
        if (size_of(t, i) != 1) in_axes.push_back(i);
    std::vector<size_t> out_pos;
    for (size_t i = 0; i < sample.size(); ++i)
        if (sample[i] != 1) out_pos.push_back(i);
    bool same = in_axes.size() == out_pos.size();
    for (size_t i = 0; same && i < in_axes.size(); ++i) {
        const int64_t s = size_of(t, in_axes[i]);
        same = sample[out_pos[i]] == s || (s < 0 && sample[out_pos[i]] == -1);
    }
    Tensor out = t;
    if (same) {
        out.axes.assign(sample.size() + 1, Ax::One);
        out.axes[0] = Ax::N;
        for (size_t i = 0; i < in_axes.size(); ++i) out.axes[out_pos[i] + 1] = t.axes[in_axes[i]];
        if ((t.pad_begin || t.pad_end)) {
            bool keeps_time = false;
            for (Ax a : out.axes) keeps_time |= kind(a) == Ax::L || a == Ax::In1 || a == Ax::In2;
            if (!keeps_time) fail(t.pad_node + ": zero padding is supported only directly before a Conv; it feeds " + where());
        }
        set_tensor(out);
        return;
    }
    if (sample.size() == 1 && (sample[0] == -1 || !total_known || sample[0] == total)) {
        if (t.pad_begin || t.pad_end) fail(t.pad_node + ": zero padding is supported only directly before a Conv; it feeds " + where());
        // A flatten: channel-major unless time comes first in the view (channels-last).
        int ci = -1, li = -1;
        for (size_t i : in_axes) {
            bind(t.axes[i], ci < 0 && li < 0);
            if (layout_ == Layout::Undecided) decide_default();
            const Ax k = kind(t.axes[i]);
            if (k == Ax::C) ci = static_cast<int>(i);
            if (k == Ax::L) li = static_cast<int>(i);
        }
        Node n = make(OpKind::Flatten, t);
        n.position_major = li >= 0 && ci >= 0 && li < ci;
        out.node = add_node(std::move(n));
        out.axes = {Ax::N, Ax::C};
        set_tensor(out);
        return;
    }
    std::vector<int64_t> in_shape;
    for (size_t i = 1; i < rank; ++i) in_shape.push_back(size_of(t, i));
    fail_node("reshapes a tensor of per-sample shape " + join(in_shape) + " to " + join(sample) +
              "; only flattening and adding or removing size-1 axes are supported");
}

void Lowering::squeeze(bool un) {
    const Value& d = input(0);
    std::vector<int64_t> axes;
    const bool have = axes_arg(1, axes);
    if (un && !have) fail_node("has no axes");
    if (d.is_const) {
        Const k = d.k;
        std::vector<int64_t> dims;
        if (un) {
            const int64_t r = static_cast<int64_t>(k.dims.size() + axes.size());
            std::vector<bool> ins(static_cast<size_t>(r), false);
            for (int64_t a : axes) mark_axis(ins, norm_axis(a, r));
            size_t j = 0;
            for (int64_t i = 0; i < r; ++i) dims.push_back(ins[i] ? 1 : k.dims[j++]);
        } else {
            const int64_t r = static_cast<int64_t>(k.dims.size());
            std::vector<bool> drop(static_cast<size_t>(r), false);
            for (int64_t a : axes) {
                const int64_t i = norm_axis(a, r);
                if (k.dims[i] != 1) fail_node("squeezes axis " + std::to_string(a) + ", which is not of size 1");
                mark_axis(drop, i);
            }
            for (int64_t i = 0; i < r; ++i)
                if (!(have ? drop[i] : k.dims[i] == 1)) dims.push_back(k.dims[i]);
        }
        k.dims = dims;
        set_const(k);
        return;
    }
    Tensor t = tensor_input(0, true);
    std::vector<Ax> out;
    if (un) {
        const int64_t r = static_cast<int64_t>(t.axes.size() + axes.size());
        std::vector<bool> ins(static_cast<size_t>(r), false);
        for (int64_t a : axes) mark_axis(ins, norm_axis(a, r));
        size_t j = 0;
        for (int64_t i = 0; i < r; ++i) out.push_back(ins[i] ? Ax::One : t.axes[j++]);
    } else {
        const int64_t r = static_cast<int64_t>(t.axes.size());
        std::vector<bool> drop(static_cast<size_t>(r), false);
        for (int64_t a : axes) {
            const int64_t i = norm_axis(a, r);
            if (kind(t.axes[i]) == Ax::N) fail_node("squeezes the batch axis");
            if (size_of(t, static_cast<size_t>(i)) != 1)
                fail_node("squeezes axis " + std::to_string(a) + ", which is not of size 1");
            mark_axis(drop, i);
        }
        for (int64_t i = 0; i < r; ++i) {
            const bool d1 = have ? drop[i] : (kind(t.axes[i]) != Ax::N && size_of(t, static_cast<size_t>(i)) == 1);
            if (!d1) out.push_back(t.axes[i]);
        }
    }
    t.axes = out;
    set_tensor(t);
}

void Lowering::transpose() {
    const Value& d = input(0);
    std::vector<int64_t> perm;
    const size_t rank = d.is_const ? d.k.dims.size() : d.t.axes.size();
    if (!attr_ints("perm", perm))
        for (size_t i = 0; i < rank; ++i) perm.push_back(static_cast<int64_t>(rank - 1 - i));
    if (perm.size() != rank) fail_node("attribute 'perm' " + join(perm) + " does not fit rank " + std::to_string(rank));
    std::vector<bool> seen(rank, false);
    for (int64_t p : perm) {
        if (p < 0 || p >= static_cast<int64_t>(rank) || seen[p]) fail_node("attribute 'perm' " + join(perm) + " is not a permutation");
        seen[p] = true;
    }
    if (d.is_const) {
        const Const& k = d.k;
        Const out = k;
        out.dims.clear();
        for (int64_t p : perm) out.dims.push_back(k.dims[p]);
        std::vector<int64_t> in_stride(rank, 1);
        for (size_t i = rank; i-- > 1;) in_stride[i - 1] = in_stride[i] * k.dims[i];
        std::vector<int64_t> idx(rank, 0);
        for (int64_t i = 0; i < k.count(); ++i) {
            int64_t src = 0;
            for (size_t j = 0; j < rank; ++j) src += idx[j] * in_stride[perm[j]];
            out.v[i] = k.v[src];
            if (!k.sym.empty()) out.sym[i] = k.sym[src];
            for (size_t j = rank; j-- > 0;) {
                if (++idx[j] < out.dims[j]) break;
                idx[j] = 0;
            }
        }
        set_const(out);
        return;
    }
    Tensor t = tensor_input(0, true);
    if (perm[0] != 0) fail_node("attribute 'perm' " + join(perm) + " moves the batch axis");
    std::vector<Ax> out;
    for (int64_t p : perm) out.push_back(t.axes[p]);
    t.axes = out;
    set_tensor(t);
}

void Lowering::pad() {
    Tensor t = tensor_input(0, true);
    const std::string mode = attr_string("mode", "constant");
    if (mode != "constant") fail_node("attribute 'mode': only 'constant' (zero) padding is supported, got '" + mode + "'");
    std::vector<int64_t> pads;
    double fill = 0;
    if (opset_ < 11) {
        if (!attr_ints("pads", pads)) fail_node("attribute 'pads' is missing");
        fill = attr_float("value", 0.f);
    } else {
        pads = const_ints(const_input(1, "pads"), "pads");
        if (has_input(2)) {
            const Const& v = const_input(2, "the constant value");
            if (v.count() > 0) fill = v.v[0];
        }
    }
    if (fill != 0) fail_node("pads with the value " + std::to_string(fill) + "; only zero padding is supported");
    const size_t rank = t.axes.size();
    std::vector<int64_t> axes;
    if (has_input(3)) {
        for (int64_t a : const_ints(const_input(3, "axes"), "axes")) axes.push_back(norm_axis(a, static_cast<int64_t>(rank)));
    } else {
        for (size_t i = 0; i < rank; ++i) axes.push_back(static_cast<int64_t>(i));
    }
    if (pads.size() != 2 * axes.size()) fail_node("'pads' " + join(pads) + " does not fit rank " + std::to_string(rank));
    for (size_t j = 0; j < axes.size(); ++j) {
        const int64_t b = pads[j], e = pads[j + axes.size()];
        if (!b && !e) continue;
        if (b < 0 || e < 0) fail_node("negative padding " + join(pads) + " (cropping) is not supported");
        if (b > kMaxExtent || e > kMaxExtent || t.pad_begin + b > kMaxExtent || t.pad_end + e > kMaxExtent)
            fail_node("'pads' " + join(pads) + ": padding larger than " + std::to_string(kMaxExtent) + " is not supported");
        const Ax a = t.axes[axes[j]];
        bind(a, false);
        if (kind(a) != Ax::L) fail_node("'pads' " + join(pads) + " pads an axis other than time; not supported");
        t.pad_begin += b;
        t.pad_end += e;
    }
    t.pad_node = where();
    set_tensor(t);
}

// Identity, and Dropout at inference: the output is the input.
void Lowering::pass_through() {
    if (cur_->op_type == "Dropout") {
        refuse_extra_outputs(1);
        if (has_input(2)) {
            const Const& training = const_input(2, "training_mode");
            if (training.count() && training.v[0] != 0) fail_node("runs in training mode");
        }
    }
    set_output(0, input(0));
}

}  // namespace tsviz::onnx
